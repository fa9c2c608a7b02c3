"""Site configs and catalogs load into ops-db idempotently, with clear errors."""

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db.models import (
    DataLocation,
    DataTransferRoute,
    DiskDataLocation,
    FixedSource,
    InstrumentModule,
    ObsUnit,
    S3DataLocation,
    Site,
    SolarSystemObject,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import LocationType, RouteType
from ccat_hpc.errors import ConfigError
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from tests.conftest import SITE_CONFIGS, table_counts

TABLES = ("site", "data_location", "disk_data_location", "s3_data_location", "data_transfer_route")


def load_sites(factory: sessionmaker[Session], paths: list[Path]) -> str:
    with transaction(factory) as session:
        return load_site_configs(session, read_site_configs(paths)).summary()


def test_sites_load_twice_changes_nothing(factory: sessionmaker[Session], data_root: Path) -> None:
    paths = [*shipped_site_configs(), SITE_CONFIGS / "examples/cornell.yaml"]
    first = load_sites(factory, paths)
    created = int(first.split()[0])
    assert first == f"{created} created" and created >= 15
    before = table_counts(factory, *TABLES)
    assert load_sites(factory, paths) == f"{created} unchanged"
    assert table_counts(factory, *TABLES) == before


def test_sites_rows_match_the_config(factory: sessionmaker[Session], data_root: Path) -> None:
    load_sites(factory, shipped_site_configs())
    with factory() as session:
        archive = session.scalars(select(DataLocation).filter_by(name="cologne-archive")).one()
        assert isinstance(archive, DiskDataLocation)  # CCAT_ARCHIVE_STORAGE=disk in tests
        assert archive.location_type is LocationType.LONG_TERM_ARCHIVE
        assert archive.path == str(data_root / "cologne-archive")
        buffer = session.scalars(select(DataLocation).filter_by(name="chile-buffer-01")).one()
        assert buffer.retention_days == 7 and buffer.site.name == "chile"
        source = session.scalars(select(DataLocation).filter_by(name="chile-source-chai")).one()
        assert source.instrument_name == "CHAI" and source.retention_days == 30
        route = session.scalars(select(DataTransferRoute)).one()
        assert (route.origin_site.name, route.destination_site.name) == ("chile", "cologne")
        chile = session.scalars(select(Site).filter_by(name="chile")).one()
        assert chile.settings["slurm_profiles"]["checksum"]["array_throttle"] == 8


def test_archive_as_s3_and_changed_values_update(
    factory: sessionmaker[Session], data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCAT_ARCHIVE_STORAGE", "s3")
    monkeypatch.setenv("CCAT_S3_ENDPOINT", "http://127.0.0.1:9000")
    load_sites(factory, shipped_site_configs())
    with factory() as session:
        archive = session.scalars(select(S3DataLocation)).one()
        assert archive.endpoint_url == "http://127.0.0.1:9000" and archive.bucket == "ccat-archive"
    monkeypatch.setenv("CCAT_S3_BUCKET", "other-bucket")
    assert load_sites(factory, shipped_site_configs()).startswith("1 updated")
    monkeypatch.setenv("CCAT_ARCHIVE_STORAGE", "disk")
    with pytest.raises(ConfigError, match="exists as a S3DataLocation"):
        load_sites(factory, shipped_site_configs())


def test_relay_and_custom_routes(factory: sessionmaker[Session], data_root: Path) -> None:
    load_sites(factory, [*shipped_site_configs(), SITE_CONFIGS / "examples/cornell.yaml"])
    with factory() as session:
        relay = session.scalars(
            select(DataTransferRoute).filter_by(route_type=RouteType.RELAY)
        ).one()
        assert relay.relay_site is not None and relay.relay_site.name == "cologne"
        custom = session.scalars(
            select(DataTransferRoute).filter_by(route_type=RouteType.CUSTOM)
        ).one()
        assert custom.origin_location is not None
        assert custom.origin_location.name == "chile-buffer-01"


def test_route_to_unknown_site_rolls_back(factory: sessionmaker[Session], data_root: Path) -> None:
    with pytest.raises(
        ConfigError, match="routes\\[0\\] \\(chile-to-cologne\\): to: no site named 'cologne'"
    ):
        load_sites(factory, shipped_site_configs()[:1])
    assert table_counts(factory, "site", "data_location")["site"] == 0


def test_catalog_loads_twice_without_change(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        first = load_catalog_file(session, example_catalog_path())
    with transaction(factory) as session:
        second = load_catalog_file(session, example_catalog_path())
    assert first["created"] > 20 and second["created"] == second["updated"] == 0
    with factory() as session:
        modules = session.scalars(select(InstrumentModule.name)).all()
        assert {"280GHz", "350GHz", "850GHz", "EoR-Spec", "LFA", "HFA"} <= set(modules)
        ecdfs = session.scalars(select(ObsUnit).filter_by(name="ECDFS-deep-001")).one()
        assert ecdfs.instrument.name == "PrimeCam" and isinstance(ecdfs.source, FixedSource)
        orion = session.scalars(select(ObsUnit).filter_by(name="OrionKL-map-001")).one()
        assert orion.instrument.name == "CHAI"
        assert session.scalars(select(SolarSystemObject)).first() is not None


def test_catalog_with_unknown_instrument_names_file(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "cat.yaml"
    path.write_text(
        "observatory: {name: CCAT}\n"
        "observing_programs:\n"
        "  - name: P\n"
        "    obs_units: [{name: U1, instrument: NoSuchCam}]\n"
    )
    expected = re.escape("cat.yaml: obs unit U1: instrument: no Instrument named 'NoSuchCam'")
    with pytest.raises(ConfigError, match=expected), transaction(factory) as session:
        load_catalog_file(session, path)
    assert table_counts(factory, "observatory")["observatory"] == 0
