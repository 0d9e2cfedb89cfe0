"""concepts.name_key: the casefolded name that names are compared by, indexed with the app

SQL's lower() folds only A-Z on SQLite and depends on the locale on PostgreSQL, so "ÉCLAIR" did
not find "Éclair" (nor "STRASSE" "Straße"); name_key is str.casefold(name), set by the
application. Replaces the (app_id, lower(name)) index of 0007. Existing names are backfilled.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONCEPTS = sa.table('concepts', sa.column('app_id'), sa.column('id'), sa.column('name'), sa.column('name_key'))


def upgrade() -> None:
    op.drop_index('ix_concepts_app_lower_name', table_name='concepts')
    op.add_column('concepts', sa.Column('name_key', sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = [{"a": r.app_id, "i": r.id, "k": r.name.casefold()}
            for r in conn.execute(sa.select(_CONCEPTS.c.app_id, _CONCEPTS.c.id, _CONCEPTS.c.name))]
    if rows:
        conn.execute(_CONCEPTS.update().where(_CONCEPTS.c.app_id == sa.bindparam('a'),
                                              _CONCEPTS.c.id == sa.bindparam('i')).values(name_key=sa.bindparam('k')),
                     rows)
    op.create_index('ix_concepts_app_name_key', 'concepts', ['app_id', 'name_key'])


def downgrade() -> None:
    op.drop_index('ix_concepts_app_name_key', table_name='concepts')
    op.drop_column('concepts', 'name_key')  # in place on SQLite 3.35+ (no table rebuild)
    op.create_index('ix_concepts_app_lower_name', 'concepts', ['app_id', sa.text('lower(name)')])
