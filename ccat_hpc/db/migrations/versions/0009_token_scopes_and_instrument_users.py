"""API token scopes and revocation time; instrument users bound to their instrument

api_token gets scopes (what the token may do, at most its user's roles' scopes),
revoked_at and a unique prefix (a token is named by it); user gets instrument_id (an instrument user files for that instrument only).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 01:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('scopes', JSON, nullable=False, server_default='[]'))
        batch_op.create_unique_constraint(batch_op.f('uq_api_token_prefix'), ['prefix'])
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('scopes', server_default=None)
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instrument_id', BIGINT, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_user_instrument_id'), 'instrument', ['instrument_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_user_instrument_id'), type_='foreignkey')
        batch_op.drop_column('instrument_id')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_api_token_prefix'), type_='unique')
        batch_op.drop_column('scopes')
        batch_op.drop_column('revoked_at')
