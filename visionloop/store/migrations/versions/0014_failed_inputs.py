"""inputs whose download failed: digest, width and height nullable; status_details

``POST /v2/inputs`` keeps an input whose URL could not be fetched or decoded, as Clarifai did: its
id, URL, concepts and metadata, status 30002 and the cause in ``status_details``, with no image.

SQLite cannot drop NOT NULL in place, so the table is rebuilt (batch mode); dropping the old table
would empty ``input_concepts`` and ``input_concept_scores`` through their ON DELETE CASCADE foreign
keys (on in every connection, and not to be turned off inside the migration's transaction), so
their rows are kept aside and put back.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHILDREN = ('input_concepts', 'input_concept_scores')


def _rebuild_inputs(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        for table in _CHILDREN:
            op.execute(f'CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}')
    with op.batch_alter_table('inputs', schema=None) as batch_op:
        batch_op.alter_column('digest', existing_type=sa.String(length=64), nullable=nullable)
        batch_op.alter_column('width', existing_type=sa.Integer(), nullable=nullable)
        batch_op.alter_column('height', existing_type=sa.Integer(), nullable=nullable)
        if nullable:
            batch_op.add_column(sa.Column('status_details', sa.Text(), nullable=True))
        else:
            batch_op.drop_column('status_details')
    if sqlite:
        for table in _CHILDREN:
            op.execute(f'DELETE FROM {table}')  # what the cascade left (none), so nothing is doubled
            op.execute(f'INSERT INTO {table} SELECT * FROM kept_{table}')
            op.execute(f'DROP TABLE kept_{table}')


def upgrade() -> None:
    _rebuild_inputs(nullable=True)


def downgrade() -> None:
    # the inputs without an image cannot exist in the old schema (their annotations go by cascade)
    op.execute('DELETE FROM inputs WHERE digest IS NULL')
    _rebuild_inputs(nullable=False)
