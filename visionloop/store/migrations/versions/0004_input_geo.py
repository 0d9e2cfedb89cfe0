"""inputs.geo_latitude / geo_longitude: where an image was taken (data.geo.geo_point)

Nullable columns, so existing inputs simply have no location; an index on (app, latitude) for
geo searches.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('inputs', sa.Column('geo_latitude', sa.Float(), nullable=True))
    op.add_column('inputs', sa.Column('geo_longitude', sa.Float(), nullable=True))
    op.create_index('ix_inputs_app_latitude', 'inputs', ['app_id', 'geo_latitude'])


def downgrade() -> None:
    op.drop_index('ix_inputs_app_latitude', table_name='inputs')
    # SQLite (3.35+) drops columns in place; batch mode would rebuild the table, and dropping the
    # old one would empty input_concepts through its ON DELETE CASCADE foreign key.
    op.drop_column('inputs', 'geo_longitude')
    op.drop_column('inputs', 'geo_latitude')
