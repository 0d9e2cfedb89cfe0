"""The Alembic migrations build exactly the schema ``store/tables.py`` declares, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import String

from visionloop.core import VisionLoop
from visionloop.store.tables import Base


def _compare_type(context: Any, inspected_column: Any, metadata_column: Any, inspected_type: Any,
                  metadata_type: Any) -> bool | None:
    """SQLite ignores VARCHAR widths, so a migration may leave them as they were there."""
    if context.dialect.name == "sqlite" and isinstance(inspected_type, String) and isinstance(metadata_type, String):
        return False
    return None  # Alembic's own comparison


# SQLite cannot reflect an expression index (ix_concepts_app_lower_name): PostgreSQL compares it,
# and tests/test_concept_lookup.py sees SQLite's query plan use it.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrated_schema_matches_the_tables(core: VisionLoop) -> None:
    with core.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": _compare_type}),
                                Base.metadata)
    assert diff == []
