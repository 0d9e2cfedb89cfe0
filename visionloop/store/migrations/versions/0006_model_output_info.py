"""models.output_info: the concepts and output_config an app chose for its own concept model

Nullable, so the built-in models (which list their concepts from their runtime) have none.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('models', sa.Column('output_info', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('models', 'output_info')  # in place on SQLite 3.35+ (no table rebuild)
