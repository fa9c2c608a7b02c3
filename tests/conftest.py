"""Shared fixtures: an ops-db on SQLite and on a real PostgreSQL server, data folders.

PostgreSQL comes from ``scripts/services.sh up`` (``CCAT_HPC_TEST_PG_URL``). When the
test command sets ``CCAT_HPC_REQUIRE_SERVICES`` (as ``scripts/test.sh`` and CI do), a
missing server fails the tests instead of skipping them.
"""

from __future__ import annotations

import inspect
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db import migrate
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.sites.loader import (
    load_site_configs,
    read_site_configs,
    shipped_site_configs,
    shipped_site_configs_dir,
)

REPO = Path(__file__).resolve().parents[1]
SITE_CONFIGS = shipped_site_configs_dir()
PG_ENV = "CCAT_HPC_TEST_PG_URL"
#: one per test run, so two runs against the same server do not clone each other's
TEMPLATE_DB = f"ccat_hpc_template_{os.getpid()}"


def _require(service: str) -> bool:
    required = os.environ.get("CCAT_HPC_REQUIRE_SERVICES", "")
    return service in {s.strip() for s in required.split(",")}


def _pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        message = f"{PG_ENV} is not set: start PostgreSQL with scripts/services.sh up"
        if _require("postgres"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database at the newest migration, cloned for every test."""
    admin_url = _pg_admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}"))
        connection.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
    admin.dispose()
    engine = make_engine(_with_database(admin_url, TEMPLATE_DB))
    migrate.upgrade(engine)
    engine.dispose()
    yield admin_url
    drop_pg_database(admin_url, _with_database(admin_url, TEMPLATE_DB))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def new_pg_database(admin_url: str, template: str | None = TEMPLATE_DB) -> str:
    name = f"ccat_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        clause = f" TEMPLATE {template}" if template else ""
        connection.execute(text(f"CREATE DATABASE {name}{clause}"))
    admin.dispose()
    return _with_database(admin_url, name)


def drop_pg_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    admin_url = _pg_admin_url()
    url = new_pg_database(admin_url, template=None)
    yield url
    drop_pg_database(admin_url, url)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh ops-db at the newest schema, on the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "ops.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin_url = request.getfixturevalue("pg_template")
    url = new_pg_database(admin_url)
    yield url
    drop_pg_database(admin_url, url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CCAT_DATA_ROOT", str(root))
    monkeypatch.setenv("CCAT_ARCHIVE_STORAGE", "disk")
    return root


@pytest.fixture
def loaded_factory(factory: sessionmaker[Session], data_root: Path) -> sessionmaker[Session]:
    """ops-db with the shipped site configs and the FYST example catalog loaded."""
    with transaction(factory) as session:
        load_site_configs(session, read_site_configs(shipped_site_configs()))
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())
    for name in ("chile-source-primecam", "chile-source-chai"):
        (data_root / name).mkdir()
    return factory


def table_counts(factory: sessionmaker[Session], *tables: str) -> dict[str, Any]:
    with factory() as session:
        return {
            table: session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in tables
        }


def _uses(item: pytest.Item, service: str) -> bool:
    """Whether a test uses ``service``: its marker, its parameters or its own code say so."""
    if item.get_closest_marker(service) is not None or service in item.name.lower():
        return True
    function = getattr(item, "function", None)
    try:
        return function is not None and service in inspect.getsource(function).lower()
    except (OSError, TypeError):
        return False


@pytest.hookimpl(tryfirst=True)  # before -m deselects: it selects on these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``serial`` every test of the one-node Slurm cluster or the shared metrics
    server: scripts/test.sh runs them one after another in one pytest process, beside
    another that runs the rest (``-m "not serial and not exclusive"``), then the tests
    marked ``exclusive`` (they stop a shared service) alone."""
    for item in items:
        if _uses(item, "slurm") or _uses(item, "metrics"):
            item.add_marker(pytest.mark.serial)
    shard = os.environ.get(SHARD_ENV)
    if shard:
        _keep_shard(config, items, shard)


#: "I/N": of the tests neither serial nor exclusive, keep the modules of share I of N
SHARD_ENV = "CCAT_HPC_TEST_SHARD"


def _keep_shard(config: pytest.Config, items: list[pytest.Item], shard: str) -> None:
    """Every Nth module (in path order) of the tests that may run beside others: N
    pytest processes at once take the suite's modules in turn (scripts/test.sh)."""
    index, count = (int(part) for part in shard.split("/"))
    shared = [i for i in items if not i.get_closest_marker("serial")]
    shared = [i for i in shared if not i.get_closest_marker("exclusive")]
    modules = sorted({item.nodeid.split("::")[0] for item in shared})
    mine = set(modules[index::count])
    dropped = [i for i in shared if i.nodeid.split("::")[0] not in mine]
    if dropped:
        gone = set(map(id, dropped))
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if id(i) not in gone]
