"""Fixtures of the REST API tests: an application on ops-db (SQLite and PostgreSQL) with
one user of each role and their tokens, reached in-process through HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.tokens import add_user, create_token
from ccat_hpc.api.app import create_app
from ccat_hpc.api.settings import ApiSettings
from ccat_hpc.db.session import transaction

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

    def get(self, path: str, user: str | None = "op", **kw: Any) -> httpx.Response:
        headers = self.headers(user, kw.pop("headers", None))
        return self.client.get(path, headers=headers, **kw)

    def post(self, path: str, user: str | None = "op", **kw: Any) -> httpx.Response:
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
