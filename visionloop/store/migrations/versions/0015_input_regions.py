"""input_regions: the boxes an input is annotated with, and the concepts each shows or not

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('input_regions',
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('input_id', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('top_row', sa.Float(), nullable=False),
    sa.Column('left_col', sa.Float(), nullable=False),
    sa.Column('bottom_row', sa.Float(), nullable=False),
    sa.Column('right_col', sa.Float(), nullable=False),
    sa.Column('concepts', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['app_id', 'input_id'], ['inputs.app_id', 'inputs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('app_id', 'input_id', 'id')
    )


def downgrade() -> None:
    op.drop_table('input_regions')
