"""Filing observations through the REST API: the same rows as a manifest file, the same
error texts, idempotent, all-or-nothing, and an instrument files its own data only."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db.models import SystemLog
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import drop_pg_database, new_pg_database, table_counts
from tests.integration.api.conftest import Api, make_api

FILED_TABLES = (
    "executed_obs_unit",
    "raw_data_file",
    "physical_copy",
    "raw_data_file_physical_copy",
    "filed_manifest",
)
#: columns that say when a row was written, not what it holds
WHEN = {"created_at", "updated_at"}


def spec(instrument: str = "PrimeCam", module: str = "280GHz", files: int = 4) -> Any:
    if instrument == "PrimeCam":
        return SyntheticObservation(
            instrument, module, "ECDFS-deep-001", "chile-source-primecam", files, 200
        )
    return SyntheticObservation(
        instrument, module, "OrionKL-map-001", "chile-source-chai", files, 200
    )


@pytest.fixture
def filing_api(loaded_factory: sessionmaker[Session], engine: Engine) -> Iterator[Api]:
    yield from make_api(loaded_factory, engine)


@pytest.fixture
def second_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Another ops-db like the first: the shipped sites and the catalog."""
    if backend == "sqlite":
        path = tmp_path / "second.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        admin_url = request.getfixturevalue("pg_template")
        url = new_pg_database(admin_url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())
    yield engine
    engine.dispose()
    if backend != "sqlite":
        drop_pg_database(request.getfixturevalue("pg_template"), url)


def rows(factory: sessionmaker[Session]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    with factory() as session:
        for table in FILED_TABLES:
            result = session.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))
            found[table] = [
                {k: v for k, v in row._mapping.items() if k not in WHEN} for row in result
            ]
    return found


def test_filing_through_the_api_and_a_manifest_give_the_same_rows(
    loaded_factory: sessionmaker[Session],
    engine: Engine,
    second_db: Engine,
    data_root: Path,
    tmp_path: Path,
) -> None:
    manifest = write_observation(spec(), data_root / "chile-source-primecam")
    path = drop_manifest(manifest, tmp_path / "inbox", "obs-1")
    assert file_path(loaded_factory, path).status == "filed"

    for api in make_api(make_session_factory(second_db), second_db):
        answer = api.post(
            "/api/v1/observations",
            user="primecam-daq",
            params={"name": path.name},
            content=path.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["files"] == 4
        through_api = rows(api.factory)
        again = api.post(
            "/api/v1/observations", user="primecam-daq", params={"name": path.name}, json=manifest
        )
        assert again.status_code == 200 and again.json()["status"] == "unchanged"
    through_file = rows(loaded_factory)
    assert through_api == through_file
    assert len(through_api["raw_data_file"]) == 4


def test_bad_manifests_get_the_same_error_text_and_nothing_is_written(
    filing_api: Api, data_root: Path, tmp_path: Path
) -> None:
    good = write_observation(spec(), data_root / "chile-source-primecam")
    bad_cases: list[bytes] = [
        json.dumps({**good, "files": []}).encode(),
        json.dumps({**good, "location": "no-such-place"}).encode(),
        json.dumps(
            {**good, "files": [*good["files"], {"path": "../etc/passwd", "size": 1}]}
        ).encode(),
        json.dumps(
            {**good, "files": [*good["files"], {"path": "not-there.dat", "size": 1}]}
        ).encode(),
        b'{"manifest_version": 1, "files": [NaN]}',
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b"{" * 5000,
    ]
    before = table_counts(filing_api.factory, *FILED_TABLES)
    for index, body in enumerate(bad_cases):
        path = tmp_path / f"bad-{index}.json"
        path.write_bytes(body)
        expected = file_path(filing_api.factory, path)
        assert expected.status == "rejected"
        answer = filing_api.post(
            "/api/v1/observations",
            user="primecam-daq",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == expected.message
    assert table_counts(filing_api.factory, *FILED_TABLES) == before


def test_an_instrument_files_only_its_own_observations_and_each_filing_names_its_user(
    filing_api: Api, data_root: Path
) -> None:
    chai = write_observation(spec("CHAI", "LFA", 2), data_root / "chile-source-chai")
    refused = filing_api.post("/api/v1/observations", user="primecam-daq", json=chai)
    assert refused.status_code == 403 and "CHAI" in refused.json()["detail"]
    scientist = filing_api.post("/api/v1/observations", user="alice", json=chai)
    assert scientist.status_code == 403 and "observations:file" in scientist.json()["detail"]
    filed = filing_api.post("/api/v1/observations", user="chai-daq", json=chai)
    assert filed.status_code == 201, filed.text
    by_operator = write_observation(
        spec("PrimeCam", "350GHz", 1), data_root / "chile-source-primecam"
    )
    assert filing_api.post("/api/v1/observations", user="op", json=by_operator).status_code == 201
    with filing_api.factory() as session:
        logs = session.scalars(select(SystemLog).where(SystemLog.source == "filing")).all()
        assert sorted(log.details.get("user") for log in logs) == ["chai-daq", "op"]
