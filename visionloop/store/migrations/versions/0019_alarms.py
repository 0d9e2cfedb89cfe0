"""alarms: input drift, feedback quality and search alarms per app, model and subject

The alarm check (visionloop/services/monitoring) keeps one row per alarm it ever fired, updated in
place as it fires and resolves; ``GET /v2/alarms`` lists them. The index on outputs by (app, model,
time) lets the check read a model's first and latest outputs since a promotion without a scan; the
one on feedback events by (app, model, type, seq) its newest verdicts.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alarms',
                    sa.Column('id', sa.String(length=64), nullable=False),
                    sa.Column('app_id', sa.String(length=64), nullable=False),
                    sa.Column('kind', sa.String(length=32), nullable=False),
                    sa.Column('model_pk', sa.Integer(), nullable=True),
                    sa.Column('subject', sa.String(length=255), nullable=True),
                    sa.Column('subject_name', sa.String(length=255), nullable=True),
                    sa.Column('state', sa.String(length=16), nullable=False),
                    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('figure', sa.Float(), nullable=False),
                    sa.Column('threshold', sa.Float(), nullable=False),
                    sa.Column('evidence', sa.Integer(), nullable=False),
                    sa.Column('p_value', sa.Float(), nullable=False),
                    sa.Column('baseline', sa.String(length=64), nullable=True),
                    sa.Column('last_outside', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_alarms_app_state', 'alarms', ['app_id', 'state'])
    op.create_index('ix_outputs_app_model_created', 'outputs', ['app_id', 'model_pk', 'created_at', 'id'])
    op.create_index('ix_feedback_events_app_model_type_seq', 'feedback_events',
                    ['app_id', 'model_pk', 'event_type', 'seq'])


def downgrade() -> None:
    op.drop_index('ix_feedback_events_app_model_type_seq', table_name='feedback_events')
    op.drop_index('ix_outputs_app_model_created', table_name='outputs')
    op.drop_index('ix_alarms_app_state', table_name='alarms')
    op.drop_table('alarms')
