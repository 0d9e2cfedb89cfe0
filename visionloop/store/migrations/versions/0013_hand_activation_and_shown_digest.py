"""active_versions.by_hand and search_hits.digest

``by_hand``: the operator chose this version (activate, rollback); automatic promotion does not
replace it unless a later version wins on feedback given since. ``digest``: the image a search hit
showed, so a click counts for that image and never for another stored later under the same input
id. Existing activations count as automatic (what they were taken for until now); existing hits
have no digest and their clicks count as before.

Revision ID: 0013
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('active_versions', sa.Column('by_hand', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('search_hits', sa.Column('digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops columns in place (see 0004)
    op.drop_column('search_hits', 'digest')
    op.drop_column('active_versions', 'by_hand')
