"""Migration 0003 on a database that already holds filed files, both ways."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db import migrate
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.errors import MigrationRefused
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.integration.test_cli import InProcess, one_line_error

SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 3, 10)


@pytest.fixture
def filed_at_0002(empty_db_url: str, data_root: Path, tmp_path: Path) -> Engine:
    """A database with three files filed, then taken back to revision 0002."""
    engine = make_engine(empty_db_url, create=True)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
        load_catalog_file(session, example_catalog_path())
    manifest = write_observation(SPEC, data_root / SPEC.location)
    assert file_path(factory, drop_manifest(manifest, tmp_path, "m")).status == "filed"
    migrate.downgrade(engine, "0002")
    return engine


def test_upgrade_fills_the_source_location_of_files_filed_before(filed_at_0002: Engine) -> None:
    migrate.upgrade(filed_at_0002)
    with filed_at_0002.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT dl.name, f.source_device, f.source_inode FROM raw_data_file f "
                "JOIN data_location dl ON dl.id = f.source_location_id"
            )
        ).all()
        checks = connection.execute(text("SELECT count(*) FROM raw_data_file_check")).scalar()
    assert [tuple(row) for row in rows] == [("chile-source-primecam", None, None)] * 3
    assert checks == 0
    filed_at_0002.dispose()


def test_upgrade_stops_on_a_path_filed_twice_and_changes_nothing(
    filed_at_0002: Engine, empty_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = InProcess(capsys)
    second = uuid.uuid4()  # stored as 32 hex digits on SQLite, as a uuid on PostgreSQL
    _file_one_path_twice(
        filed_at_0002, second.hex if filed_at_0002.dialect.name == "sqlite" else str(second)
    )
    with pytest.raises(
        MigrationRefused,
        match="paths filed more than once at one location: "
        r"chile-source-primecam:.*det_000000\.g3 \(2x\)",
    ):
        migrate.upgrade(filed_at_0002)
    assert migrate.current_revision(filed_at_0002) == "0002"
    refused = run(empty_db_url, "db", "upgrade")  # the operator's view: one line, exit 6
    assert refused.returncode == 6
    assert one_line_error(refused).startswith("error: cannot upgrade to 0003: paths filed more")
    filed_at_0002.dispose()


def _file_one_path_twice(engine: Engine, execution_id: str) -> None:
    """What ops-db could hold before 0003: a second execution filing a path already filed."""
    statements = [
        "INSERT INTO executed_obs_unit (id, obs_unit_id, start_time, end_time, status, "
        "extra_metadata, created_at) SELECT :new, obs_unit_id, start_time, end_time, status, "
        "extra_metadata, created_at FROM executed_obs_unit",
        "INSERT INTO raw_data_file (name, relative_path, file_type, state, executed_obs_unit_id, "
        "instrument_module_id, size, checksum, checksum_algorithm, created_at) "
        "SELECT name, relative_path, file_type, state, :new, instrument_module_id, size, "
        "checksum, checksum_algorithm, created_at FROM raw_data_file WHERE name = 'det_000000.g3'",
        "INSERT INTO physical_copy (type, data_location_id, state, created_at) "
        "SELECT type, data_location_id, state, created_at FROM physical_copy WHERE id = 1",
        "INSERT INTO raw_data_file_physical_copy (id, raw_data_file_id) "
        "SELECT max(pc.id), max(f.id) FROM physical_copy pc, raw_data_file f",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {"new": execution_id})
