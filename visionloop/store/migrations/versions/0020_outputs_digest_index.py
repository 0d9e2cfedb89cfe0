"""outputs.digest index: deleting an image asks whether any output still shows it

Blob garbage collection (:mod:`visionloop.services.blob_gc`) deletes an image only when no row
names its digest; without this index that question read every stored prediction.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_outputs_digest', 'outputs', ['digest'])


def downgrade() -> None:
    op.drop_index('ix_outputs_digest', table_name='outputs')
