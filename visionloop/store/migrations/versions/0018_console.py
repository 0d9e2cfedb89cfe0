"""server_secrets, console_sessions and console_actions: the operator console's signing secret,
sign-ins and audit log

``server_secrets`` holds secrets every API process of one database must share, such as the key
the console signs session cookies with (so a session started on one process is valid on all).
``console_sessions`` holds each sign-in, so that signing out ends the session for every copy of
its cookie. ``console_actions`` records what operators did from the console (train, promote, roll back, erase
an end user's feedback).

Revision ID: 0018
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('server_secrets',
                    sa.Column('name', sa.String(length=32), nullable=False),
                    sa.Column('value', sa.String(length=128), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('name'))
    op.create_table('console_sessions',
                    sa.Column('nonce', sa.String(length=64), nullable=False),
                    sa.Column('key_id', sa.String(length=64), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
                    sa.PrimaryKeyConstraint('nonce'))
    op.create_index('ix_console_sessions_expires_at', 'console_sessions', ['expires_at'])
    op.create_table('console_actions',
                    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                              nullable=False),
                    sa.Column('app_id', sa.String(length=64), nullable=False),
                    sa.Column('key_id', sa.String(length=64), nullable=False),
                    sa.Column('action', sa.String(length=32), nullable=False),
                    sa.Column('model_id', sa.String(length=64), nullable=True),
                    sa.Column('version_id', sa.String(length=64), nullable=True),
                    sa.Column('detail', sa.String(length=255), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('seq'))
    op.create_index('ix_console_actions_app_created', 'console_actions', ['app_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_console_actions_app_created', table_name='console_actions')
    op.drop_table('console_actions')
    op.drop_index('ix_console_sessions_expires_at', table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_table('server_secrets')
