"""initial ops-db schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:22:32.529701
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('chai_inpar_parameter',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chai_inpar_parameter')),
    sa.UniqueConstraint('name', name=op.f('uq_chai_inpar_parameter_name'))
    )
    op.create_table('chai_tiling',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('tiles_x', sa.Integer(), nullable=False),
    sa.Column('tiles_y', sa.Integer(), nullable=False),
    sa.Column('step_arcsec', sa.Float(), nullable=False),
    sa.Column('position_angle_deg', sa.Float(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chai_tiling')),
    sa.UniqueConstraint('name', name=op.f('uq_chai_tiling_name'))
    )
    op.create_table('line',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('species', sa.String(length=50), nullable=False),
    sa.Column('transition', sa.String(length=50), nullable=False),
    sa.Column('rest_frequency_ghz', sa.Float(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line')),
    sa.UniqueConstraint('name', name=op.f('uq_line_name'))
    )
    op.create_table('obs_mode',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_obs_mode')),
    sa.UniqueConstraint('name', name=op.f('uq_obs_mode_name'))
    )
    op.create_table('observation_configuration',
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observation_configuration'))
    )
    op.create_table('observatory',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observatory')),
    sa.UniqueConstraint('name', name=op.f('uq_observatory_name'))
    )
    op.create_table('observing_program',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('short_name', sa.String(length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('principal_investigator', sa.String(length=200), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observing_program')),
    sa.UniqueConstraint('name', name=op.f('uq_observing_program_name'))
    )
    op.create_table('role',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role')),
    sa.UniqueConstraint('name', name=op.f('uq_role_name'))
    )
    op.create_table('site',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('short_name', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('geographic_location', sa.String(length=200), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site')),
    sa.UniqueConstraint('name', name=op.f('uq_site_name'))
    )
    op.create_table('source',
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source')),
    sa.UniqueConstraint('name', name=op.f('uq_source_name'))
    )
    op.create_table('system_log',
    sa.Column('level', sa.Enum('debug', 'info', 'warning', 'error', name='loglevel', native_enum=False, length=32), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_system_log'))
    )
    op.create_index('ix_system_log_created_at', 'system_log', ['created_at'], unique=False)
    op.create_table('user',
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('username', name=op.f('uq_user_username'))
    )
    op.create_table('api_token',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_api_token_user_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    op.create_index(op.f('ix_api_token_user_id'), 'api_token', ['user_id'], unique=False)
    op.create_table('chai_observation_configuration',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chai_tiling_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('chai_inpar_parameter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['chai_inpar_parameter_id'], ['chai_inpar_parameter.id'], name=op.f('fk_chai_observation_configuration_chai_inpar_parameter_id')),
    sa.ForeignKeyConstraint(['chai_tiling_id'], ['chai_tiling.id'], name=op.f('fk_chai_observation_configuration_chai_tiling_id')),
    sa.ForeignKeyConstraint(['id'], ['observation_configuration.id'], name=op.f('fk_chai_observation_configuration_id')),
    sa.ForeignKeyConstraint(['line_id'], ['line.id'], name=op.f('fk_chai_observation_configuration_line_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chai_observation_configuration'))
    )
    op.create_index(op.f('ix_chai_observation_configuration_chai_inpar_parameter_id'), 'chai_observation_configuration', ['chai_inpar_parameter_id'], unique=False)
    op.create_index(op.f('ix_chai_observation_configuration_chai_tiling_id'), 'chai_observation_configuration', ['chai_tiling_id'], unique=False)
    op.create_index(op.f('ix_chai_observation_configuration_line_id'), 'chai_observation_configuration', ['line_id'], unique=False)
    op.create_table('constant_elevation_source',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ra_min_deg', sa.Float(), nullable=False),
    sa.Column('ra_max_deg', sa.Float(), nullable=False),
    sa.Column('dec_min_deg', sa.Float(), nullable=False),
    sa.Column('dec_max_deg', sa.Float(), nullable=False),
    sa.Column('elevation_deg', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['source.id'], name=op.f('fk_constant_elevation_source_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_constant_elevation_source'))
    )
    op.create_table('data_archive',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_data_archive_site_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_archive')),
    sa.UniqueConstraint('name', name=op.f('uq_data_archive_name'))
    )
    op.create_index(op.f('ix_data_archive_site_id'), 'data_archive', ['site_id'], unique=False)
    op.create_table('fixed_source',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ra_deg', sa.Float(), nullable=False),
    sa.Column('dec_deg', sa.Float(), nullable=False),
    sa.Column('frame', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['source.id'], name=op.f('fk_fixed_source_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fixed_source'))
    )
    op.create_table('prime_cam_observation_configuration',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scan_parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['observation_configuration.id'], name=op.f('fk_prime_cam_observation_configuration_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prime_cam_observation_configuration'))
    )
    op.create_table('solar_system_object',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ephemeris_name', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['source.id'], name=op.f('fk_solar_system_object_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_solar_system_object'))
    )
    op.create_table('sub_observing_program',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('observing_program_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['observing_program_id'], ['observing_program.id'], name=op.f('fk_sub_observing_program_observing_program_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sub_observing_program')),
    sa.UniqueConstraint('observing_program_id', 'name', name=op.f('uq_sub_observing_program_observing_program_id_name'))
    )
    op.create_index(op.f('ix_sub_observing_program_observing_program_id'), 'sub_observing_program', ['observing_program_id'], unique=False)
    op.create_table('telescope',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('observatory_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('longitude_deg', sa.Float(), nullable=True),
    sa.Column('latitude_deg', sa.Float(), nullable=True),
    sa.Column('altitude_m', sa.Float(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['observatory_id'], ['observatory.id'], name=op.f('fk_telescope_observatory_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telescope')),
    sa.UniqueConstraint('name', name=op.f('uq_telescope_name'))
    )
    op.create_index(op.f('ix_telescope_observatory_id'), 'telescope', ['observatory_id'], unique=False)
    op.create_table('user_role',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['role.id'], name=op.f('fk_user_role_role_id')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_user_role_user_id')),
    sa.PrimaryKeyConstraint('user_id', 'role_id', name=op.f('pk_user_role'))
    )
    op.create_table('data_location',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('storage_type', sa.Enum('disk', 's3', 'tape', name='storagetype', native_enum=False, length=32), nullable=False),
    sa.Column('location_type', sa.Enum('SOURCE', 'BUFFER', 'LONG_TERM_ARCHIVE', 'PROCESSING', name='locationtype', native_enum=False, length=32), nullable=False),
    sa.Column('site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('instrument_name', sa.String(length=100), nullable=True),
    sa.Column('data_archive_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['data_archive_id'], ['data_archive.id'], name=op.f('fk_data_location_data_archive_id')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_data_location_site_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_location')),
    sa.UniqueConstraint('name', name=op.f('uq_data_location_name'))
    )
    op.create_index(op.f('ix_data_location_data_archive_id'), 'data_location', ['data_archive_id'], unique=False)
    op.create_index('ix_data_location_site_type', 'data_location', ['site_id', 'location_type'], unique=False)
    op.create_table('instrument',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('telescope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('instrument_type', sa.Enum('primecam', 'chai', 'other', name='instrumenttype', native_enum=False, length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['telescope_id'], ['telescope.id'], name=op.f('fk_instrument_telescope_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instrument')),
    sa.UniqueConstraint('name', name=op.f('uq_instrument_name'))
    )
    op.create_index(op.f('ix_instrument_telescope_id'), 'instrument', ['telescope_id'], unique=False)
    op.create_table('data_transfer_package',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('relative_path', sa.String(length=1024), nullable=False),
    sa.Column('state', sa.Enum('planned', 'building', 'built', 'transferring', 'transferred', 'archiving', 'archived', 'failed', name='packagestate', native_enum=False, length=32), nullable=False),
    sa.Column('origin_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('member_index', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('checksum', sa.String(length=128), nullable=True),
    sa.Column('checksum_algorithm', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['origin_location_id'], ['data_location.id'], name=op.f('fk_data_transfer_package_origin_location_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_transfer_package')),
    sa.UniqueConstraint('name', name=op.f('uq_data_transfer_package_name'))
    )
    op.create_index(op.f('ix_data_transfer_package_origin_location_id'), 'data_transfer_package', ['origin_location_id'], unique=False)
    op.create_index('ix_data_transfer_package_state', 'data_transfer_package', ['state'], unique=False)
    op.create_table('data_transfer_route',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('route_type', sa.Enum('direct', 'relay', 'custom', name='routetype', native_enum=False, length=32), nullable=False),
    sa.Column('origin_site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('destination_site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('relay_site_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('origin_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('destination_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['destination_location_id'], ['data_location.id'], name=op.f('fk_data_transfer_route_destination_location_id')),
    sa.ForeignKeyConstraint(['destination_site_id'], ['site.id'], name=op.f('fk_data_transfer_route_destination_site_id')),
    sa.ForeignKeyConstraint(['origin_location_id'], ['data_location.id'], name=op.f('fk_data_transfer_route_origin_location_id')),
    sa.ForeignKeyConstraint(['origin_site_id'], ['site.id'], name=op.f('fk_data_transfer_route_origin_site_id')),
    sa.ForeignKeyConstraint(['relay_site_id'], ['site.id'], name=op.f('fk_data_transfer_route_relay_site_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_transfer_route')),
    sa.UniqueConstraint('name', name=op.f('uq_data_transfer_route_name'))
    )
    op.create_index(op.f('ix_data_transfer_route_destination_location_id'), 'data_transfer_route', ['destination_location_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_route_destination_site_id'), 'data_transfer_route', ['destination_site_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_route_origin_location_id'), 'data_transfer_route', ['origin_location_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_route_origin_site_id'), 'data_transfer_route', ['origin_site_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_route_relay_site_id'), 'data_transfer_route', ['relay_site_id'], unique=False)
    op.create_table('disk_data_location',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['data_location.id'], name=op.f('fk_disk_data_location_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disk_data_location'))
    )
    op.create_table('instrument_module',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('instrument_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('pixels', sa.Integer(), nullable=True),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'], name=op.f('fk_instrument_module_instrument_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instrument_module')),
    sa.UniqueConstraint('instrument_id', 'name', name=op.f('uq_instrument_module_instrument_id_name'))
    )
    op.create_index(op.f('ix_instrument_module_instrument_id'), 'instrument_module', ['instrument_id'], unique=False)
    op.create_table('obs_unit',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('observing_program_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sub_observing_program_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('instrument_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('obs_mode_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('observation_configuration_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('min_elevation_deg', sa.Float(), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'], name=op.f('fk_obs_unit_instrument_id')),
    sa.ForeignKeyConstraint(['obs_mode_id'], ['obs_mode.id'], name=op.f('fk_obs_unit_obs_mode_id')),
    sa.ForeignKeyConstraint(['observation_configuration_id'], ['observation_configuration.id'], name=op.f('fk_obs_unit_observation_configuration_id')),
    sa.ForeignKeyConstraint(['observing_program_id'], ['observing_program.id'], name=op.f('fk_obs_unit_observing_program_id')),
    sa.ForeignKeyConstraint(['source_id'], ['source.id'], name=op.f('fk_obs_unit_source_id')),
    sa.ForeignKeyConstraint(['sub_observing_program_id'], ['sub_observing_program.id'], name=op.f('fk_obs_unit_sub_observing_program_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_obs_unit')),
    sa.UniqueConstraint('name', name=op.f('uq_obs_unit_name'))
    )
    op.create_index(op.f('ix_obs_unit_instrument_id'), 'obs_unit', ['instrument_id'], unique=False)
    op.create_index(op.f('ix_obs_unit_obs_mode_id'), 'obs_unit', ['obs_mode_id'], unique=False)
    op.create_index(op.f('ix_obs_unit_observation_configuration_id'), 'obs_unit', ['observation_configuration_id'], unique=False)
    op.create_index(op.f('ix_obs_unit_observing_program_id'), 'obs_unit', ['observing_program_id'], unique=False)
    op.create_index(op.f('ix_obs_unit_source_id'), 'obs_unit', ['source_id'], unique=False)
    op.create_index(op.f('ix_obs_unit_sub_observing_program_id'), 'obs_unit', ['sub_observing_program_id'], unique=False)
    op.create_table('physical_copy',
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('data_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.Enum('pending', 'present', 'verified', 'corrupt', 'missing', 'failed', 'deletion_pending', 'deleted', name='physicalcopystate', native_enum=False, length=32), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['data_location_id'], ['data_location.id'], name=op.f('fk_physical_copy_data_location_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_physical_copy'))
    )
    op.create_index('ix_physical_copy_location_state', 'physical_copy', ['data_location_id', 'state'], unique=False)
    op.create_table('s3_data_location',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('endpoint_url', sa.String(length=1024), nullable=False),
    sa.Column('bucket', sa.String(length=255), nullable=False),
    sa.Column('prefix', sa.String(length=1024), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['data_location.id'], name=op.f('fk_s3_data_location_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_s3_data_location'))
    )
    op.create_table('staging_job',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.Enum('pending', 'submitted', 'staging', 'retry_wait', 'staged', 'released', 'failed', 'cancelled', name='stagingjobstate', native_enum=False, length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('destination_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('destination_path', sa.String(length=1024), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('retry_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('release_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['destination_location_id'], ['data_location.id'], name=op.f('fk_staging_job_destination_location_id')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_staging_job_user_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staging_job'))
    )
    op.create_index(op.f('ix_staging_job_destination_location_id'), 'staging_job', ['destination_location_id'], unique=False)
    op.create_index('ix_staging_job_state', 'staging_job', ['state'], unique=False)
    op.create_index(op.f('ix_staging_job_user_id'), 'staging_job', ['user_id'], unique=False)
    op.create_table('tape_data_location',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('library', sa.String(length=255), nullable=False),
    sa.Column('mount_path', sa.String(length=1024), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['data_location.id'], name=op.f('fk_tape_data_location_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tape_data_location'))
    )
    op.create_table('data_transfer',
    sa.Column('data_transfer_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('route_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('origin_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('destination_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('pending', 'submitted', 'running', 'verifying', 'retry_wait', 'succeeded', 'failed', 'cancelled', name='transferstate', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('retry_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('bytes_transferred', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['data_transfer_package_id'], ['data_transfer_package.id'], name=op.f('fk_data_transfer_data_transfer_package_id')),
    sa.ForeignKeyConstraint(['destination_location_id'], ['data_location.id'], name=op.f('fk_data_transfer_destination_location_id')),
    sa.ForeignKeyConstraint(['origin_location_id'], ['data_location.id'], name=op.f('fk_data_transfer_origin_location_id')),
    sa.ForeignKeyConstraint(['route_id'], ['data_transfer_route.id'], name=op.f('fk_data_transfer_route_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_transfer'))
    )
    op.create_index(op.f('ix_data_transfer_data_transfer_package_id'), 'data_transfer', ['data_transfer_package_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_destination_location_id'), 'data_transfer', ['destination_location_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_origin_location_id'), 'data_transfer', ['origin_location_id'], unique=False)
    op.create_index(op.f('ix_data_transfer_route_id'), 'data_transfer', ['route_id'], unique=False)
    op.create_index('ix_data_transfer_state', 'data_transfer', ['state'], unique=False)
    op.create_table('data_transfer_package_physical_copy',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('data_transfer_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['data_transfer_package_id'], ['data_transfer_package.id'], name=op.f('fk_data_transfer_package_physical_copy_data_transfer_package_id')),
    sa.ForeignKeyConstraint(['id'], ['physical_copy.id'], name=op.f('fk_data_transfer_package_physical_copy_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_transfer_package_physical_copy'))
    )
    op.create_index(op.f('ix_data_transfer_package_physical_copy_data_transfer_package_id'), 'data_transfer_package_physical_copy', ['data_transfer_package_id'], unique=False)
    op.create_table('executed_obs_unit',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('obs_unit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('success', 'partial', 'failed', 'aborted', name='observationstatus', native_enum=False, length=32), nullable=False),
    sa.Column('mean_pwv_mm', sa.Float(), nullable=True),
    sa.Column('mean_elevation_deg', sa.Float(), nullable=True),
    sa.Column('extra_metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['obs_unit_id'], ['obs_unit.id'], name=op.f('fk_executed_obs_unit_obs_unit_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_executed_obs_unit'))
    )
    op.create_index(op.f('ix_executed_obs_unit_obs_unit_id'), 'executed_obs_unit', ['obs_unit_id'], unique=False)
    op.create_index('ix_executed_obs_unit_start_time', 'executed_obs_unit', ['start_time'], unique=False)
    op.create_table('instrument_module_configuration',
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('instrument_module_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['instrument_module_id'], ['instrument_module.id'], name=op.f('fk_instrument_module_configuration_instrument_module_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instrument_module_configuration'))
    )
    op.create_index(op.f('ix_instrument_module_configuration_instrument_module_id'), 'instrument_module_configuration', ['instrument_module_id'], unique=False)
    op.create_table('pre_scheduled_slot',
    sa.Column('obs_unit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['obs_unit_id'], ['obs_unit.id'], name=op.f('fk_pre_scheduled_slot_obs_unit_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pre_scheduled_slot'))
    )
    op.create_index(op.f('ix_pre_scheduled_slot_obs_unit_id'), 'pre_scheduled_slot', ['obs_unit_id'], unique=False)
    op.create_table('staging_job_log',
    sa.Column('staging_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.Enum('debug', 'info', 'warning', 'error', name='loglevel', native_enum=False, length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('log_path', sa.String(length=1024), nullable=True),
    sa.ForeignKeyConstraint(['staging_job_id'], ['staging_job.id'], name=op.f('fk_staging_job_log_staging_job_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staging_job_log'))
    )
    op.create_index(op.f('ix_staging_job_log_staging_job_id'), 'staging_job_log', ['staging_job_id'], unique=False)
    op.create_table('chai_module_configuration',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('lo_frequency_ghz', sa.Float(), nullable=True),
    sa.Column('sideband', sa.String(length=8), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['instrument_module_configuration.id'], name=op.f('fk_chai_module_configuration_id')),
    sa.ForeignKeyConstraint(['line_id'], ['line.id'], name=op.f('fk_chai_module_configuration_line_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chai_module_configuration'))
    )
    op.create_index(op.f('ix_chai_module_configuration_line_id'), 'chai_module_configuration', ['line_id'], unique=False)
    op.create_table('data_transfer_log',
    sa.Column('data_transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.Enum('debug', 'info', 'warning', 'error', name='loglevel', native_enum=False, length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('log_path', sa.String(length=1024), nullable=True),
    sa.ForeignKeyConstraint(['data_transfer_id'], ['data_transfer.id'], name=op.f('fk_data_transfer_log_data_transfer_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_transfer_log'))
    )
    op.create_index(op.f('ix_data_transfer_log_data_transfer_id'), 'data_transfer_log', ['data_transfer_id'], unique=False)
    op.create_table('filed_manifest',
    sa.Column('executed_obs_unit_id', sa.Uuid(), nullable=False),
    sa.Column('instrument_module_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('data_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('source_name', sa.String(length=255), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['data_location_id'], ['data_location.id'], name=op.f('fk_filed_manifest_data_location_id')),
    sa.ForeignKeyConstraint(['executed_obs_unit_id'], ['executed_obs_unit.id'], name=op.f('fk_filed_manifest_executed_obs_unit_id')),
    sa.ForeignKeyConstraint(['instrument_module_id'], ['instrument_module.id'], name=op.f('fk_filed_manifest_instrument_module_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_filed_manifest')),
    sa.UniqueConstraint('executed_obs_unit_id', 'instrument_module_id', name=op.f('uq_filed_manifest_executed_obs_unit_id_instrument_module_id'))
    )
    op.create_index(op.f('ix_filed_manifest_data_location_id'), 'filed_manifest', ['data_location_id'], unique=False)
    op.create_index(op.f('ix_filed_manifest_instrument_module_id'), 'filed_manifest', ['instrument_module_id'], unique=False)
    op.create_table('obs_unit_module_configuration',
    sa.Column('obs_unit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('instrument_module_configuration_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['instrument_module_configuration_id'], ['instrument_module_configuration.id'], name='fk_obs_unit_module_configuration_configuration_id'),
    sa.ForeignKeyConstraint(['obs_unit_id'], ['obs_unit.id'], name=op.f('fk_obs_unit_module_configuration_obs_unit_id')),
    sa.PrimaryKeyConstraint('obs_unit_id', 'instrument_module_configuration_id', name=op.f('pk_obs_unit_module_configuration'))
    )
    op.create_table('prime_cam_module_configuration',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('center_frequency_ghz', sa.Float(), nullable=True),
    sa.Column('bandwidth_ghz', sa.Float(), nullable=True),
    sa.Column('detector_count', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['id'], ['instrument_module_configuration.id'], name=op.f('fk_prime_cam_module_configuration_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prime_cam_module_configuration'))
    )
    op.create_table('raw_data_package',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('relative_path', sa.String(length=1024), nullable=False),
    sa.Column('part_number', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('planned', 'building', 'built', 'transferring', 'transferred', 'archiving', 'archived', 'failed', name='packagestate', native_enum=False, length=32), nullable=False),
    sa.Column('executed_obs_unit_id', sa.Uuid(), nullable=False),
    sa.Column('instrument_module_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('data_transfer_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_index', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('checksum', sa.String(length=128), nullable=True),
    sa.Column('checksum_algorithm', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['data_transfer_package_id'], ['data_transfer_package.id'], name=op.f('fk_raw_data_package_data_transfer_package_id')),
    sa.ForeignKeyConstraint(['executed_obs_unit_id'], ['executed_obs_unit.id'], name=op.f('fk_raw_data_package_executed_obs_unit_id')),
    sa.ForeignKeyConstraint(['instrument_module_id'], ['instrument_module.id'], name=op.f('fk_raw_data_package_instrument_module_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_data_package')),
    sa.UniqueConstraint('executed_obs_unit_id', 'instrument_module_id', 'part_number', name='uq_raw_data_package_part'),
    sa.UniqueConstraint('name', name=op.f('uq_raw_data_package_name'))
    )
    op.create_index(op.f('ix_raw_data_package_data_transfer_package_id'), 'raw_data_package', ['data_transfer_package_id'], unique=False)
    op.create_index(op.f('ix_raw_data_package_instrument_module_id'), 'raw_data_package', ['instrument_module_id'], unique=False)
    op.create_index('ix_raw_data_package_state', 'raw_data_package', ['state'], unique=False)
    op.create_table('long_term_archive_transfer',
    sa.Column('raw_data_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('origin_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('destination_location_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('pending', 'submitted', 'running', 'verifying', 'retry_wait', 'succeeded', 'failed', 'cancelled', name='transferstate', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('retry_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('bytes_transferred', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['destination_location_id'], ['data_location.id'], name=op.f('fk_long_term_archive_transfer_destination_location_id')),
    sa.ForeignKeyConstraint(['origin_location_id'], ['data_location.id'], name=op.f('fk_long_term_archive_transfer_origin_location_id')),
    sa.ForeignKeyConstraint(['raw_data_package_id'], ['raw_data_package.id'], name=op.f('fk_long_term_archive_transfer_raw_data_package_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_long_term_archive_transfer'))
    )
    op.create_index(op.f('ix_long_term_archive_transfer_destination_location_id'), 'long_term_archive_transfer', ['destination_location_id'], unique=False)
    op.create_index(op.f('ix_long_term_archive_transfer_origin_location_id'), 'long_term_archive_transfer', ['origin_location_id'], unique=False)
    op.create_index(op.f('ix_long_term_archive_transfer_raw_data_package_id'), 'long_term_archive_transfer', ['raw_data_package_id'], unique=False)
    op.create_index('ix_long_term_archive_transfer_state', 'long_term_archive_transfer', ['state'], unique=False)
    op.create_table('raw_data_file',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('relative_path', sa.String(length=1024), nullable=False),
    sa.Column('file_type', sa.String(length=40), nullable=False),
    sa.Column('state', sa.Enum('filed', 'checksummed', 'packaged', 'archived', 'missing', 'corrupt', name='rawdatafilestate', native_enum=False, length=32), nullable=False),
    sa.Column('executed_obs_unit_id', sa.Uuid(), nullable=False),
    sa.Column('instrument_module_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_data_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('extra_metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('checksum', sa.String(length=128), nullable=True),
    sa.Column('checksum_algorithm', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['executed_obs_unit_id'], ['executed_obs_unit.id'], name=op.f('fk_raw_data_file_executed_obs_unit_id')),
    sa.ForeignKeyConstraint(['instrument_module_id'], ['instrument_module.id'], name=op.f('fk_raw_data_file_instrument_module_id')),
    sa.ForeignKeyConstraint(['raw_data_package_id'], ['raw_data_package.id'], name=op.f('fk_raw_data_file_raw_data_package_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_data_file')),
    sa.UniqueConstraint('executed_obs_unit_id', 'relative_path', name=op.f('uq_raw_data_file_executed_obs_unit_id_relative_path'))
    )
    op.create_index(op.f('ix_raw_data_file_instrument_module_id'), 'raw_data_file', ['instrument_module_id'], unique=False)
    op.create_index(op.f('ix_raw_data_file_raw_data_package_id'), 'raw_data_file', ['raw_data_package_id'], unique=False)
    op.create_index('ix_raw_data_file_state', 'raw_data_file', ['state'], unique=False)
    op.create_table('raw_data_package_metadata',
    sa.Column('raw_data_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dataproduct_type', sa.String(length=32), nullable=False),
    sa.Column('calib_level', sa.Integer(), nullable=False),
    sa.Column('obs_collection', sa.String(length=100), nullable=False),
    sa.Column('obs_id', sa.String(length=100), nullable=False),
    sa.Column('target_name', sa.String(length=100), nullable=False),
    sa.Column('facility_name', sa.String(length=100), nullable=False),
    sa.Column('instrument_name', sa.String(length=100), nullable=False),
    sa.Column('s_ra', sa.Float(), nullable=True),
    sa.Column('s_dec', sa.Float(), nullable=True),
    sa.Column('t_min', sa.Float(), nullable=True),
    sa.Column('t_max', sa.Float(), nullable=True),
    sa.Column('t_exptime', sa.Float(), nullable=True),
    sa.Column('em_min', sa.Float(), nullable=True),
    sa.Column('em_max', sa.Float(), nullable=True),
    sa.Column('extra', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['raw_data_package_id'], ['raw_data_package.id'], name=op.f('fk_raw_data_package_metadata_raw_data_package_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_data_package_metadata')),
    sa.UniqueConstraint('raw_data_package_id', name=op.f('uq_raw_data_package_metadata_raw_data_package_id'))
    )
    op.create_table('raw_data_package_physical_copy',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_data_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['physical_copy.id'], name=op.f('fk_raw_data_package_physical_copy_id')),
    sa.ForeignKeyConstraint(['raw_data_package_id'], ['raw_data_package.id'], name=op.f('fk_raw_data_package_physical_copy_raw_data_package_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_data_package_physical_copy'))
    )
    op.create_index(op.f('ix_raw_data_package_physical_copy_raw_data_package_id'), 'raw_data_package_physical_copy', ['raw_data_package_id'], unique=False)
    op.create_table('staging_job_raw_data_package',
    sa.Column('staging_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_data_package_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['raw_data_package_id'], ['raw_data_package.id'], name=op.f('fk_staging_job_raw_data_package_raw_data_package_id')),
    sa.ForeignKeyConstraint(['staging_job_id'], ['staging_job.id'], name=op.f('fk_staging_job_raw_data_package_staging_job_id')),
    sa.PrimaryKeyConstraint('staging_job_id', 'raw_data_package_id', name=op.f('pk_staging_job_raw_data_package'))
    )
    op.create_table('long_term_archive_transfer_log',
    sa.Column('long_term_archive_transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.Enum('debug', 'info', 'warning', 'error', name='loglevel', native_enum=False, length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('log_path', sa.String(length=1024), nullable=True),
    sa.ForeignKeyConstraint(['long_term_archive_transfer_id'], ['long_term_archive_transfer.id'], name=op.f('fk_long_term_archive_transfer_log_long_term_archive_transfer_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_long_term_archive_transfer_log'))
    )
    op.create_index(op.f('ix_long_term_archive_transfer_log_long_term_archive_transfer_id'), 'long_term_archive_transfer_log', ['long_term_archive_transfer_id'], unique=False)
    op.create_table('raw_data_file_physical_copy',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_data_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['physical_copy.id'], name=op.f('fk_raw_data_file_physical_copy_id')),
    sa.ForeignKeyConstraint(['raw_data_file_id'], ['raw_data_file.id'], name=op.f('fk_raw_data_file_physical_copy_raw_data_file_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_data_file_physical_copy'))
    )
    op.create_index(op.f('ix_raw_data_file_physical_copy_raw_data_file_id'), 'raw_data_file_physical_copy', ['raw_data_file_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_raw_data_file_physical_copy_raw_data_file_id'), table_name='raw_data_file_physical_copy')
    op.drop_table('raw_data_file_physical_copy')
    op.drop_index(op.f('ix_long_term_archive_transfer_log_long_term_archive_transfer_id'), table_name='long_term_archive_transfer_log')
    op.drop_table('long_term_archive_transfer_log')
    op.drop_table('staging_job_raw_data_package')
    op.drop_index(op.f('ix_raw_data_package_physical_copy_raw_data_package_id'), table_name='raw_data_package_physical_copy')
    op.drop_table('raw_data_package_physical_copy')
    op.drop_table('raw_data_package_metadata')
    op.drop_index('ix_raw_data_file_state', table_name='raw_data_file')
    op.drop_index(op.f('ix_raw_data_file_raw_data_package_id'), table_name='raw_data_file')
    op.drop_index(op.f('ix_raw_data_file_instrument_module_id'), table_name='raw_data_file')
    op.drop_table('raw_data_file')
    op.drop_index('ix_long_term_archive_transfer_state', table_name='long_term_archive_transfer')
    op.drop_index(op.f('ix_long_term_archive_transfer_raw_data_package_id'), table_name='long_term_archive_transfer')
    op.drop_index(op.f('ix_long_term_archive_transfer_origin_location_id'), table_name='long_term_archive_transfer')
    op.drop_index(op.f('ix_long_term_archive_transfer_destination_location_id'), table_name='long_term_archive_transfer')
    op.drop_table('long_term_archive_transfer')
    op.drop_index('ix_raw_data_package_state', table_name='raw_data_package')
    op.drop_index(op.f('ix_raw_data_package_instrument_module_id'), table_name='raw_data_package')
    op.drop_index(op.f('ix_raw_data_package_data_transfer_package_id'), table_name='raw_data_package')
    op.drop_table('raw_data_package')
    op.drop_table('prime_cam_module_configuration')
    op.drop_table('obs_unit_module_configuration')
    op.drop_index(op.f('ix_filed_manifest_instrument_module_id'), table_name='filed_manifest')
    op.drop_index(op.f('ix_filed_manifest_data_location_id'), table_name='filed_manifest')
    op.drop_table('filed_manifest')
    op.drop_index(op.f('ix_data_transfer_log_data_transfer_id'), table_name='data_transfer_log')
    op.drop_table('data_transfer_log')
    op.drop_index(op.f('ix_chai_module_configuration_line_id'), table_name='chai_module_configuration')
    op.drop_table('chai_module_configuration')
    op.drop_index(op.f('ix_staging_job_log_staging_job_id'), table_name='staging_job_log')
    op.drop_table('staging_job_log')
    op.drop_index(op.f('ix_pre_scheduled_slot_obs_unit_id'), table_name='pre_scheduled_slot')
    op.drop_table('pre_scheduled_slot')
    op.drop_index(op.f('ix_instrument_module_configuration_instrument_module_id'), table_name='instrument_module_configuration')
    op.drop_table('instrument_module_configuration')
    op.drop_index('ix_executed_obs_unit_start_time', table_name='executed_obs_unit')
    op.drop_index(op.f('ix_executed_obs_unit_obs_unit_id'), table_name='executed_obs_unit')
    op.drop_table('executed_obs_unit')
    op.drop_index(op.f('ix_data_transfer_package_physical_copy_data_transfer_package_id'), table_name='data_transfer_package_physical_copy')
    op.drop_table('data_transfer_package_physical_copy')
    op.drop_index('ix_data_transfer_state', table_name='data_transfer')
    op.drop_index(op.f('ix_data_transfer_route_id'), table_name='data_transfer')
    op.drop_index(op.f('ix_data_transfer_origin_location_id'), table_name='data_transfer')
    op.drop_index(op.f('ix_data_transfer_destination_location_id'), table_name='data_transfer')
    op.drop_index(op.f('ix_data_transfer_data_transfer_package_id'), table_name='data_transfer')
    op.drop_table('data_transfer')
    op.drop_table('tape_data_location')
    op.drop_index(op.f('ix_staging_job_user_id'), table_name='staging_job')
    op.drop_index('ix_staging_job_state', table_name='staging_job')
    op.drop_index(op.f('ix_staging_job_destination_location_id'), table_name='staging_job')
    op.drop_table('staging_job')
    op.drop_table('s3_data_location')
    op.drop_index('ix_physical_copy_location_state', table_name='physical_copy')
    op.drop_table('physical_copy')
    op.drop_index(op.f('ix_obs_unit_sub_observing_program_id'), table_name='obs_unit')
    op.drop_index(op.f('ix_obs_unit_source_id'), table_name='obs_unit')
    op.drop_index(op.f('ix_obs_unit_observing_program_id'), table_name='obs_unit')
    op.drop_index(op.f('ix_obs_unit_observation_configuration_id'), table_name='obs_unit')
    op.drop_index(op.f('ix_obs_unit_obs_mode_id'), table_name='obs_unit')
    op.drop_index(op.f('ix_obs_unit_instrument_id'), table_name='obs_unit')
    op.drop_table('obs_unit')
    op.drop_index(op.f('ix_instrument_module_instrument_id'), table_name='instrument_module')
    op.drop_table('instrument_module')
    op.drop_table('disk_data_location')
    op.drop_index(op.f('ix_data_transfer_route_relay_site_id'), table_name='data_transfer_route')
    op.drop_index(op.f('ix_data_transfer_route_origin_site_id'), table_name='data_transfer_route')
    op.drop_index(op.f('ix_data_transfer_route_origin_location_id'), table_name='data_transfer_route')
    op.drop_index(op.f('ix_data_transfer_route_destination_site_id'), table_name='data_transfer_route')
    op.drop_index(op.f('ix_data_transfer_route_destination_location_id'), table_name='data_transfer_route')
    op.drop_table('data_transfer_route')
    op.drop_index('ix_data_transfer_package_state', table_name='data_transfer_package')
    op.drop_index(op.f('ix_data_transfer_package_origin_location_id'), table_name='data_transfer_package')
    op.drop_table('data_transfer_package')
    op.drop_index(op.f('ix_instrument_telescope_id'), table_name='instrument')
    op.drop_table('instrument')
    op.drop_index('ix_data_location_site_type', table_name='data_location')
    op.drop_index(op.f('ix_data_location_data_archive_id'), table_name='data_location')
    op.drop_table('data_location')
    op.drop_table('user_role')
    op.drop_index(op.f('ix_telescope_observatory_id'), table_name='telescope')
    op.drop_table('telescope')
    op.drop_index(op.f('ix_sub_observing_program_observing_program_id'), table_name='sub_observing_program')
    op.drop_table('sub_observing_program')
    op.drop_table('solar_system_object')
    op.drop_table('prime_cam_observation_configuration')
    op.drop_table('fixed_source')
    op.drop_index(op.f('ix_data_archive_site_id'), table_name='data_archive')
    op.drop_table('data_archive')
    op.drop_table('constant_elevation_source')
    op.drop_index(op.f('ix_chai_observation_configuration_line_id'), table_name='chai_observation_configuration')
    op.drop_index(op.f('ix_chai_observation_configuration_chai_tiling_id'), table_name='chai_observation_configuration')
    op.drop_index(op.f('ix_chai_observation_configuration_chai_inpar_parameter_id'), table_name='chai_observation_configuration')
    op.drop_table('chai_observation_configuration')
    op.drop_index(op.f('ix_api_token_user_id'), table_name='api_token')
    op.drop_table('api_token')
    op.drop_table('user')
    op.drop_index('ix_system_log_created_at', table_name='system_log')
    op.drop_table('system_log')
    op.drop_table('source')
    op.drop_table('site')
    op.drop_table('role')
    op.drop_table('observing_program')
    op.drop_table('observatory')
    op.drop_table('observation_configuration')
    op.drop_table('obs_mode')
    op.drop_table('line')
    op.drop_table('chai_tiling')
    op.drop_table('chai_inpar_parameter')
