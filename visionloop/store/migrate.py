"""Run the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from visionloop.store.db import exclusive

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema; safe to call on every start, also by several
    processes starting at once on one PostgreSQL (they take turns: the first migrates, the
    others find the schema current)."""
    with exclusive(engine, "visionloop:migrations"):
        command.upgrade(alembic_config(engine), "head")
