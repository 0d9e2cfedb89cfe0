"""searches.kind wide enough for every combination of query kinds

'annotated+metadata+predicted+url+visual' is 39 characters: VARCHAR(32) refused it on
PostgreSQL (SQLite does not enforce lengths).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite ignores VARCHAR widths; rebuilding the table (batch mode) would even empty
        # search_hits through its ON DELETE CASCADE foreign key.
        return
    op.alter_column('searches', 'kind', existing_type=sa.String(length=32), type_=sa.String(length=64),
                    existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column('searches', 'kind', existing_type=sa.String(length=64), type_=sa.String(length=32),
                    existing_nullable=False)
