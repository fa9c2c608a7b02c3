"""circuit breakers, the capacity of a location, recent attempts by finish time

circuit_breaker holds one row per route or location whose breaker ever tripped;
data_location gets capacity_bytes (a BUFFER past its fill level is passed over);
data_transfer and long_term_archive_transfer get an index on finished_at (the
scheduler reads each endpoint's recent attempts); raw_data_file_check an index on
physical_copy_id (removing a copy checks that foreign key: a full scan without it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 18:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TRANSFERS = ('data_transfer', 'long_term_archive_transfer')
BREAKER_STATES = ('closed', 'open', 'half_open')


def upgrade() -> None:
    op.create_table(
        'circuit_breaker',
        sa.Column('scope', sa.String(length=20), nullable=False),
        sa.Column('target_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column(
            'state',
            sa.Enum(*BREAKER_STATES, name='breakerstate', native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('half_opened_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', BIGINT, autoincrement=True, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_circuit_breaker')),
        sa.UniqueConstraint(
            'scope', 'target_id', name=op.f('uq_circuit_breaker_scope_target_id')
        ),
    )
    with op.batch_alter_table('data_location', schema=None) as batch_op:
        batch_op.add_column(sa.Column('capacity_bytes', sa.BigInteger(), nullable=True))
    for table in TRANSFERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f(f'ix_{table}_finished_at'), ['finished_at'], unique=False
            )
    with op.batch_alter_table('raw_data_file_check', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_raw_data_file_check_physical_copy_id'), ['physical_copy_id'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('raw_data_file_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_raw_data_file_check_physical_copy_id'))
    for table in TRANSFERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_finished_at'))
    with op.batch_alter_table('data_location', schema=None) as batch_op:
        batch_op.drop_column('capacity_bytes')
    op.drop_table('circuit_breaker')
