"""inputs.url_key: the SHA-256 of the URL, indexed with the app

Adding an input by URL checks whether the app has one with that URL already, and search and
click learning look inputs up by URL: each read every input of the app. The key is a hash so the
index entry stays small whatever the URL's length. Existing inputs are backfilled.

Revision ID: 0009
Revises: 0008
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INPUTS = sa.table('inputs', sa.column('app_id'), sa.column('id'), sa.column('url'), sa.column('url_key'))


def upgrade() -> None:
    op.add_column('inputs', sa.Column('url_key', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    last = ("", "")
    while True:  # in pages by primary key: an app may hold millions of inputs
        page = conn.execute(sa.select(_INPUTS.c.app_id, _INPUTS.c.id, _INPUTS.c.url)
                            .where(sa.tuple_(_INPUTS.c.app_id, _INPUTS.c.id) > sa.tuple_(*last))
                            .order_by(_INPUTS.c.app_id, _INPUTS.c.id).limit(10_000)).all()
        if not page:
            break
        last = (page[-1].app_id, page[-1].id)
        rows = [{"a": r.app_id, "i": r.id, "k": hashlib.sha256(r.url.encode()).hexdigest()}
                for r in page if r.url is not None]
        if rows:
            conn.execute(_INPUTS.update().where(_INPUTS.c.app_id == sa.bindparam('a'),
                                                _INPUTS.c.id == sa.bindparam('i')).values(url_key=sa.bindparam('k')),
                         rows)
    op.create_index('ix_inputs_app_url_key', 'inputs', ['app_id', 'url_key'])


def downgrade() -> None:
    op.drop_index('ix_inputs_app_url_key', table_name='inputs')
    op.drop_column('inputs', 'url_key')  # in place on SQLite 3.35+ (no table rebuild)
