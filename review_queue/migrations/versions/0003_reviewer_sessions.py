"""reviewer sessions held server-side (logout ends them)

Revision ID: 0003_reviewer_sessions
Revises: 0002_api
Create Date: 2026-12-04 07:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import review_queue.db


revision: str = '0003_reviewer_sessions'
down_revision: Union[str, Sequence[str], None] = '0002_api'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('reviewer_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=False),
    sa.Column('created_at', review_queue.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', review_queue.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reviewer_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviewer_sessions_reviewer_id'), ['reviewer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reviewer_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviewer_sessions_reviewer_id'))
    op.drop_table('reviewer_sessions')
