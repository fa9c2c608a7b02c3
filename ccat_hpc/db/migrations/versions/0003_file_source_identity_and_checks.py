"""file source identity, checksum check history, new states

A path at a SOURCE location, and a file on disk (device and inode) at it, belong to
one RawDataFile only: new columns on raw_data_file, filled for files filed before
this revision from their SOURCE copy (their device and inode stay unknown), and two
unique constraints. A database that already holds a path filed twice at one location
is not changed: the upgrade stops and names the paths to resolve first.

raw_data_file_check keeps every checksum outcome of a file (re-checks add rows), and
raw_data_file.claimed_by_batch_id names the job batch working on a file.
The new state values (raw data file "checksumming", job batch "running") need no
schema change: states are stored as plain strings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 17:18:28.055476
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ccat_hpc.errors import MigrationRefused

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

FILL_SOURCE_LOCATION = sa.text(
    "UPDATE raw_data_file SET source_location_id = ("
    " SELECT min(pc.data_location_id) FROM raw_data_file_physical_copy r"
    " JOIN physical_copy pc ON pc.id = r.id"
    " JOIN data_location dl ON dl.id = pc.data_location_id"
    " WHERE r.raw_data_file_id = raw_data_file.id AND dl.location_type = 'SOURCE')"
)
FILED_TWICE = sa.text(
    "SELECT dl.name, f.relative_path, count(*) FROM raw_data_file f"
    " JOIN data_location dl ON dl.id = f.source_location_id"
    " GROUP BY dl.name, f.relative_path HAVING count(*) > 1"
    " ORDER BY dl.name, f.relative_path LIMIT 5"
)


def upgrade() -> None:
    _create_check_table()
    with op.batch_alter_table('raw_data_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_location_id', BIGINT, nullable=True))
        batch_op.add_column(sa.Column('source_device', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('source_inode', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('source_mtime_ns', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('claimed_by_batch_id', BIGINT, nullable=True))
        batch_op.create_index(batch_op.f('ix_raw_data_file_claimed_by_batch_id'), ['claimed_by_batch_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_raw_data_file_claimed_by_batch_id'), 'job_batch', ['claimed_by_batch_id'], ['id'])
    _fill_source_locations()
    with op.batch_alter_table('raw_data_file', schema=None) as batch_op:
        batch_op.alter_column('source_location_id', existing_type=BIGINT, nullable=False)
        batch_op.create_unique_constraint(
            'uq_raw_data_file_source_identity',
            ['source_location_id', 'source_device', 'source_inode'],
        )
        batch_op.create_unique_constraint(
            batch_op.f('uq_raw_data_file_source_location_id_relative_path'),
            ['source_location_id', 'relative_path'],
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_raw_data_file_source_location_id'),
            'data_location',
            ['source_location_id'],
            ['id'],
        )


def _create_check_table() -> None:
    op.create_table(
        'raw_data_file_check',
        sa.Column('raw_data_file_id', BIGINT, nullable=False),
        sa.Column('physical_copy_id', BIGINT, nullable=True),
        sa.Column('job_batch_id', BIGINT, nullable=True),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.Enum('filed', 'checksumming', 'checksummed', 'packaged', 'archived', 'missing', 'corrupt', name='rawdatafilestate', native_enum=False, length=32), nullable=False),
        sa.Column('computed_checksum', sa.String(length=128), nullable=True),
        sa.Column('expected_checksum', sa.String(length=128), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('id', BIGINT, nullable=False),
        sa.ForeignKeyConstraint(['job_batch_id'], ['job_batch.id'], name=op.f('fk_raw_data_file_check_job_batch_id')),
        sa.ForeignKeyConstraint(['physical_copy_id'], ['physical_copy.id'], name=op.f('fk_raw_data_file_check_physical_copy_id')),
        sa.ForeignKeyConstraint(['raw_data_file_id'], ['raw_data_file.id'], name=op.f('fk_raw_data_file_check_raw_data_file_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_data_file_check')),
    )
    op.create_index(op.f('ix_raw_data_file_check_job_batch_id'), 'raw_data_file_check', ['job_batch_id'], unique=False)
    op.create_index(op.f('ix_raw_data_file_check_raw_data_file_id'), 'raw_data_file_check', ['raw_data_file_id'], unique=False)


def _fill_source_locations() -> None:
    """Every filed file's SOURCE location, from its SOURCE copy; stop on what cannot hold."""
    bind = op.get_bind()
    bind.execute(FILL_SOURCE_LOCATION)
    orphans = bind.execute(
        sa.text("SELECT count(*) FROM raw_data_file WHERE source_location_id IS NULL")
    ).scalar_one()
    if orphans:
        raise MigrationRefused(
            f"{orphans} raw data file(s) have no copy at a SOURCE location; "
            "ops-db needs one per file before this upgrade"
        )
    twice = bind.execute(FILED_TWICE).all()
    if twice:
        shown = ", ".join(f"{name}:{path} ({count}x)" for name, path, count in twice)
        raise MigrationRefused(
            f"cannot upgrade to 0003: paths filed more than once at one location: {shown}; "
            "remove the wrong raw data files before this upgrade"
        )


def downgrade() -> None:
    with op.batch_alter_table('raw_data_file', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_raw_data_file_claimed_by_batch_id'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_raw_data_file_claimed_by_batch_id'))
        batch_op.drop_column('claimed_by_batch_id')
        batch_op.drop_constraint(batch_op.f('fk_raw_data_file_source_location_id'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_raw_data_file_source_location_id_relative_path'), type_='unique')
        batch_op.drop_constraint('uq_raw_data_file_source_identity', type_='unique')
        batch_op.drop_column('source_mtime_ns')
        batch_op.drop_column('source_inode')
        batch_op.drop_column('source_device')
        batch_op.drop_column('source_location_id')
    op.drop_index(op.f('ix_raw_data_file_check_raw_data_file_id'), table_name='raw_data_file_check')
    op.drop_index(op.f('ix_raw_data_file_check_job_batch_id'), table_name='raw_data_file_check')
    op.drop_table('raw_data_file_check')
