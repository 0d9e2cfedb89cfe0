"""concepts: an index on (app_id, lower(name)), for the case-insensitive lookup of a concept by name

Feedback resolves concept names on every request; without it the lookup read every concept of the app.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_concepts_app_lower_name', 'concepts', ['app_id', sa.text('lower(name)')])


def downgrade() -> None:
    op.drop_index('ix_concepts_app_lower_name', table_name='concepts')
