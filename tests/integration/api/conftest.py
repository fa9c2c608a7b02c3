"""Fixtures of the REST API tests: an application on ops-db (SQLite and PostgreSQL) with
one user of each role and their tokens, reached in-process through HTTP."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.tokens import add_user, create_token
from ccat_hpc.api.app import create_app
from ccat_hpc.api.settings import ApiSettings
from ccat_hpc.db.session import transaction
from tests.integration.test_sbatch_wrappers import CCAT_BIN
from tests.integration.test_staging import PROCESSING

#: user name → (roles, instrument)
USERS = {
    "alice": (["scientist"], None),
    "bob": (["scientist"], None),
    "primecam-daq": (["instrument"], "PrimeCam"),
    "chai-daq": (["instrument"], "CHAI"),
    "op": (["operator"], None),
    "root": (["admin"], None),
}


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    factory: sessionmaker[Session]

    def headers(self, user: str | None, extra: object = None) -> dict[str, str]:
        given = dict(extra) if isinstance(extra, dict) else {}
        return given | ({} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"})

    def get(
        self, path: str, user: str | None = "op", **kw: Any
    ) -> Any:  # the test client's response
        headers = self.headers(user, kw.pop("headers", None))
        return self.client.get(path, headers=headers, **kw)

    def post(
        self, path: str, user: str | None = "op", **kw: Any
    ) -> Any:  # the test client's response
        headers = self.headers(user, kw.pop("headers", None))
        return self.client.post(path, headers=headers, **kw)


def add_users(factory: sessionmaker[Session]) -> dict[str, str]:
    tokens = {}
    with transaction(factory) as session:
        for name, (roles, instrument) in USERS.items():
            add_user(session, name, roles, instrument=instrument)
            tokens[name] = create_token(session, name).token
    return tokens


def make_api(
    factory: sessionmaker[Session], engine: Engine, settings: ApiSettings | None = None
) -> Iterator[Api]:
    tokens = add_users(factory)
    app = create_app(factory, engine, settings or ApiSettings(rate_per_second=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, tokens, factory)


@pytest.fixture
def api(sites: sessionmaker[Session], engine: Engine) -> Iterator[Api]:
    """The API on ops-db with the sites and the catalog, nothing filed."""
    yield from make_api(sites, engine)


@pytest.fixture
def archived_api(
    archived: dict[str, bytes], sites: sessionmaker[Session], engine: Engine
) -> Iterator[Api]:
    """The API on ops-db with two packages of one observation archived in Cologne."""
    yield from make_api(sites, engine)


SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    log: Path
    factory: sessionmaker[Session]


RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def wait_until_ready(server: subprocess.Popen[Any], log: Path) -> str:
    """The URL of a server started with ``--port 0`` (the port the system gave it, as
    its log says), once it answers /ready; AssertionError if it exits or never does."""
    deadline = time.monotonic() + 30
    url = None
    while True:
        if url is None:
            found = RUNNING.search(log.read_text())
            url = found.group(1) if found else None
        try:
            if url is not None:
                with urllib.request.urlopen(f"{url}/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return url
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(log.read_text())
        time.sleep(0.1)


def serve(
    db_url: str, factory: sessionmaker[Session], tmp_path: Path, *options: str
) -> Iterator[Served]:
    """``ccat-hpc api serve`` on a port of its own, with a user of each role."""
    tokens = add_users(factory)
    log = tmp_path / "api.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [CCAT_BIN, "--db", db_url, "api", "serve", "--port", "0", *options],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(wait_until_ready(server, log), tokens, log, factory)
    finally:
        server.terminate()
        server.wait(20)


@pytest.fixture
def served(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> Iterator[Served]:
    (data_root / PROCESSING).mkdir()
    yield from serve(db_url, sites, tmp_path)
