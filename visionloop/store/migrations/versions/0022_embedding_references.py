"""Embedding references: feedback_events.digest, search_query_images, search_hits.digest index

Stored embeddings follow the output retention (:mod:`visionloop.services.embedding_gc`): an
image's embedding is deleted once no input, output, feedback event or remembered search needs it.
Each question is asked by digest, so each table gets an index on it: a feedback event's image was
only inside its JSON body (now also a column, backfilled from ``body.normalized.digest``), and a
search's query images only '+'-joined in ``searches.query_digests`` (now also one row per image,
backfilled).

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEARCHES = sa.table('searches', sa.column('id'), sa.column('query_digests'))
_QUERY_IMAGES = sa.table('search_query_images', sa.column('search_id'), sa.column('digest'))
_DIGEST_OF_BODY = {"sqlite": "json_extract(body, '$.normalized.digest')",
                   "postgresql": "(body -> 'normalized' ->> 'digest')"}


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column('feedback_events', sa.Column('digest', sa.String(length=64), nullable=True))
    conn.execute(sa.text(f"UPDATE feedback_events SET digest = {_DIGEST_OF_BODY[conn.dialect.name]}"))
    op.create_index('ix_feedback_events_digest', 'feedback_events', ['digest'])
    op.create_table('search_query_images',
                    sa.Column('search_id', sa.String(length=64), nullable=False),
                    sa.Column('digest', sa.String(length=64), nullable=False),
                    sa.ForeignKeyConstraint(['search_id'], ['searches.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('search_id', 'digest'))
    last = ""
    while True:  # in pages by primary key: an app may have remembered millions of searches
        page = conn.execute(sa.select(_SEARCHES.c.id, _SEARCHES.c.query_digests)
                            .where(_SEARCHES.c.id > last, _SEARCHES.c.query_digests.is_not(None))
                            .order_by(_SEARCHES.c.id).limit(10_000)).all()
        if not page:
            break
        last = page[-1].id
        rows = [{"search_id": r.id, "digest": d} for r in page for d in sorted(set(r.query_digests.split("+"))) if d]
        if rows:
            conn.execute(_QUERY_IMAGES.insert(), rows)
    op.create_index('ix_search_query_images_digest', 'search_query_images', ['digest'])
    op.create_index('ix_search_hits_digest', 'search_hits', ['digest'])


def downgrade() -> None:
    op.drop_index('ix_search_hits_digest', table_name='search_hits')
    op.drop_table('search_query_images')
    op.drop_index('ix_feedback_events_digest', table_name='feedback_events')
    op.drop_column('feedback_events', 'digest')  # in place on SQLite 3.35+ (no table rebuild)
