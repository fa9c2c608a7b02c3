"""operators' campaigns and the integrity checks of archive copies

campaign holds one bulk campaign (kind, selection, target location, share of the
slots, state); campaign_item one package or observation of it with its outcome;
physical_copy_check one full re-read of a copy (by the scrub or a re-verify campaign).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 23:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _state(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    op.create_table(
        'campaign',
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column(
            'state',
            _state('campaignstate', 'active', 'paused', 'done', 'cancelled'),
            nullable=False,
        ),
        sa.Column('selection', JSON, nullable=False),
        sa.Column('target_location_id', BIGINT, nullable=True),
        sa.Column('slot_share', sa.Float(), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('item_count', sa.Integer(), nullable=False),
        sa.Column('total_bytes', sa.BigInteger(), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('id', BIGINT, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['target_location_id'], ['data_location.id'],
            name=op.f('fk_campaign_target_location_id'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign')),
    )
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_state', ['state'], unique=False)

    op.create_table(
        'physical_copy_check',
        sa.Column('physical_copy_id', BIGINT, nullable=False),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            'outcome',
            _state(
                'physicalcopystate', 'pending', 'present', 'verified', 'corrupt', 'missing',
                'failed', 'deletion_pending', 'deleted',
            ),
            nullable=False,
        ),
        sa.Column('bytes_read', sa.BigInteger(), nullable=False),
        sa.Column('checked_by', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('id', BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ['physical_copy_id'], ['physical_copy.id'],
            name=op.f('fk_physical_copy_check_physical_copy_id'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_physical_copy_check')),
    )
    with op.batch_alter_table('physical_copy_check', schema=None) as batch_op:
        batch_op.create_index('ix_physical_copy_check_checked_at', ['checked_at'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_physical_copy_check_physical_copy_id'), ['physical_copy_id'],
            unique=False,
        )

    op.create_table(
        'campaign_item',
        sa.Column('campaign_id', BIGINT, nullable=False),
        sa.Column('raw_data_package_id', BIGINT, nullable=True),
        sa.Column('executed_obs_unit_id', sa.Uuid(), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column(
            'state',
            _state('campaignitemstate', 'pending', 'running', 'done', 'failed', 'cancelled'),
            nullable=False,
        ),
        sa.Column('outcome', sa.String(length=40), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('claimed_by_batch_id', BIGINT, nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('retry_after', sa.DateTime(timezone=True), nullable=True),
        sa.Column('staging_job_id', BIGINT, nullable=True),
        sa.Column('bytes_read', sa.BigInteger(), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_item_campaign_id')
        ),
        sa.ForeignKeyConstraint(
            ['claimed_by_batch_id'], ['job_batch.id'],
            name=op.f('fk_campaign_item_claimed_by_batch_id'),
        ),
        sa.ForeignKeyConstraint(
            ['executed_obs_unit_id'], ['executed_obs_unit.id'],
            name=op.f('fk_campaign_item_executed_obs_unit_id'),
        ),
        sa.ForeignKeyConstraint(
            ['raw_data_package_id'], ['raw_data_package.id'],
            name=op.f('fk_campaign_item_raw_data_package_id'),
        ),
        sa.ForeignKeyConstraint(
            ['staging_job_id'], ['staging_job.id'], name=op.f('fk_campaign_item_staging_job_id')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_item')),
    )
    with op.batch_alter_table('campaign_item', schema=None) as batch_op:
        batch_op.create_index(
            'ix_campaign_item_campaign_id_state', ['campaign_id', 'state'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_campaign_item_claimed_by_batch_id'), ['claimed_by_batch_id'],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f('ix_campaign_item_raw_data_package_id'), ['raw_data_package_id'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('campaign_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_item_raw_data_package_id'))
        batch_op.drop_index(batch_op.f('ix_campaign_item_claimed_by_batch_id'))
        batch_op.drop_index('ix_campaign_item_campaign_id_state')
    op.drop_table('campaign_item')
    with op.batch_alter_table('physical_copy_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_physical_copy_check_physical_copy_id'))
        batch_op.drop_index('ix_physical_copy_check_checked_at')
    op.drop_table('physical_copy_check')
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_state')
    op.drop_table('campaign')
