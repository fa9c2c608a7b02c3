"""staging requests and cleanup: what a staging asked for, expiry of staged copies, quotas

staging_job gets the scientist's selection, its file count and bytes, and the batch
that claims it; staging_job_file links a staging to the files it asked for;
physical_copy gets expires_at (staged data is kept until then); data_location gets
user_quota_bytes (what one user's stagings may hold at a PROCESSING location);
job_batch an index on (kind, created_at) (the scheduler asks when cleanup last ran).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 20:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'staging_job_file',
        sa.Column('staging_job_id', BIGINT, nullable=False),
        sa.Column('raw_data_file_id', BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ['raw_data_file_id'], ['raw_data_file.id'],
            name=op.f('fk_staging_job_file_raw_data_file_id'),
        ),
        sa.ForeignKeyConstraint(
            ['staging_job_id'], ['staging_job.id'], name=op.f('fk_staging_job_file_staging_job_id')
        ),
        sa.PrimaryKeyConstraint(
            'staging_job_id', 'raw_data_file_id', name=op.f('pk_staging_job_file')
        ),
    )
    with op.batch_alter_table('staging_job_file', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_staging_job_file_raw_data_file_id'), ['raw_data_file_id'], unique=False
        )
    with op.batch_alter_table('staging_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('selection', JSON, nullable=False, server_default='{}'))
        batch_op.add_column(
            sa.Column('file_count', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(
            sa.Column('total_bytes', sa.BigInteger(), nullable=False, server_default='0')
        )
        batch_op.add_column(sa.Column('claimed_by_batch_id', BIGINT, nullable=True))
        batch_op.create_index(
            batch_op.f('ix_staging_job_claimed_by_batch_id'), ['claimed_by_batch_id'], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_staging_job_claimed_by_batch_id'), 'job_batch',
            ['claimed_by_batch_id'], ['id'],
        )
    with op.batch_alter_table('staging_job', schema=None) as batch_op:
        for column in ('selection', 'file_count', 'total_bytes'):
            batch_op.alter_column(column, server_default=None)
    with op.batch_alter_table('physical_copy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('data_location', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_quota_bytes', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('job_batch', schema=None) as batch_op:
        batch_op.create_index('ix_job_batch_kind_created_at', ['kind', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_job_batch_kind_created_at')
    with op.batch_alter_table('data_location', schema=None) as batch_op:
        batch_op.drop_column('user_quota_bytes')
    with op.batch_alter_table('physical_copy', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('staging_job', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_staging_job_claimed_by_batch_id'), type_='foreignkey'
        )
        batch_op.drop_index(batch_op.f('ix_staging_job_claimed_by_batch_id'))
        for column in ('claimed_by_batch_id', 'total_bytes', 'file_count', 'selection'):
            batch_op.drop_column(column)
    with op.batch_alter_table('staging_job_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staging_job_file_raw_data_file_id'))
    op.drop_table('staging_job_file')
