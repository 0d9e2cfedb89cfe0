"""rate_buckets: the feedback rate limit's token buckets, shared by every API process of a database

One row per API key and per app the limit has seen; processes lease a few tokens at a time from it
(visionloop/services/ratelimit.py), so N processes behind a load balancer enforce one limit instead
of N.

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rate_buckets',
                    sa.Column('kind', sa.String(length=32), nullable=False),
                    sa.Column('owner_id', sa.String(length=64), nullable=False),
                    sa.Column('tokens', sa.Float(), nullable=False),
                    sa.Column('refilled', sa.Float(), nullable=False),
                    sa.Column('granted', sa.Float(), nullable=False),
                    sa.PrimaryKeyConstraint('kind', 'owner_id'))


def downgrade() -> None:
    op.drop_table('rate_buckets')
