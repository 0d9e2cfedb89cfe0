"""apps.inputs_generation: a counter of input changes, so every process's visual index stays current

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('apps', sa.Column('inputs_generation', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('apps', 'inputs_generation')  # in place on SQLite 3.35+ (no table rebuild)
