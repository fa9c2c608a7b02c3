"""pipeline step claims and failures on packages and transfers

raw_data_package and data_transfer_package get claimed_by_batch_id (the job batch
working on the item: only it records the outcome), attempts and failure_retryable;
data_transfer_package the route it travels; data_transfer and
long_term_archive_transfer the batch that did the move and failure_retryable, and
their byte counts become 64-bit (a transfer package is larger than 2 GB).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 15:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
PACKAGES = ('raw_data_package', 'data_transfer_package')
TRANSFERS = ('data_transfer', 'long_term_archive_transfer')


def upgrade() -> None:
    for table in PACKAGES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('claimed_by_batch_id', BIGINT, nullable=True))
            batch_op.add_column(
                sa.Column('attempts', sa.Integer(), nullable=False, server_default='0')
            )
            batch_op.add_column(sa.Column('failure_retryable', sa.Boolean(), nullable=True))
            batch_op.create_index(
                batch_op.f(f'ix_{table}_claimed_by_batch_id'), ['claimed_by_batch_id'], unique=False
            )
            batch_op.create_foreign_key(
                batch_op.f(f'fk_{table}_claimed_by_batch_id'), 'job_batch',
                ['claimed_by_batch_id'], ['id'],
            )
    with op.batch_alter_table('data_transfer_package', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route_id', BIGINT, nullable=True))
        batch_op.create_index(
            batch_op.f('ix_data_transfer_package_route_id'), ['route_id'], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_data_transfer_package_route_id'), 'data_transfer_route',
            ['route_id'], ['id'],
        )
    for table in TRANSFERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('failure_retryable', sa.Boolean(), nullable=True))
            batch_op.add_column(sa.Column('job_batch_id', BIGINT, nullable=True))
            batch_op.create_index(
                batch_op.f(f'ix_{table}_job_batch_id'), ['job_batch_id'], unique=False
            )
            batch_op.create_foreign_key(
                batch_op.f(f'fk_{table}_job_batch_id'), 'job_batch', ['job_batch_id'], ['id']
            )
            batch_op.alter_column(
                'bytes_transferred', existing_type=sa.Integer(), type_=sa.BigInteger(),
                existing_nullable=False,
            )


def downgrade() -> None:
    for table in TRANSFERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                'bytes_transferred', existing_type=sa.BigInteger(), type_=sa.Integer(),
                existing_nullable=False,
            )
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_job_batch_id'), type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_{table}_job_batch_id'))
            batch_op.drop_column('job_batch_id')
            batch_op.drop_column('failure_retryable')
    with op.batch_alter_table('data_transfer_package', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_data_transfer_package_route_id'), type_='foreignkey'
        )
        batch_op.drop_index(batch_op.f('ix_data_transfer_package_route_id'))
        batch_op.drop_column('route_id')
    for table in PACKAGES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f'fk_{table}_claimed_by_batch_id'), type_='foreignkey'
            )
            batch_op.drop_index(batch_op.f(f'ix_{table}_claimed_by_batch_id'))
            batch_op.drop_column('failure_retryable')
            batch_op.drop_column('attempts')
            batch_op.drop_column('claimed_by_batch_id')
