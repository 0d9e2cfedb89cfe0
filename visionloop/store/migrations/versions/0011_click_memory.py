"""searches.scope / identity / query_digests / ranking, search_hits.propensity: the click memory

Search remembers which query a search asked (its identity, and the scope of non-visual terms its
near-duplicates and neighbours must share) so that clicks on earlier searches of the same query
re-rank the next one, and what ranked it (search metrics per ranking version); a hit placed by
exploration keeps the probability it was shown there.
Earlier searches keep NULL: they predate identities and count for no query.

Revision ID: 0011
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('searches', sa.Column('scope', sa.String(length=64), nullable=True))
    op.add_column('searches', sa.Column('identity', sa.String(length=64), nullable=True))
    op.add_column('searches', sa.Column('query_digests', sa.Text(), nullable=True))
    op.add_column('searches', sa.Column('ranking', sa.String(length=64), nullable=True))
    op.create_index('ix_searches_app_scope', 'searches', ['app_id', 'scope'])
    op.add_column('search_hits', sa.Column('propensity', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('search_hits', 'propensity')
    op.drop_index('ix_searches_app_scope', table_name='searches')
    op.drop_column('searches', 'ranking')
    op.drop_column('searches', 'query_digests')
    op.drop_column('searches', 'identity')
    op.drop_column('searches', 'scope')
