"""Staging and campaigns through the REST API, every write in SystemLog with its user,
and the limits: body size, request rate, the long-poll."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.api.settings import ApiSettings
from ccat_hpc.db.models import SystemLog
from tests.integration.api.conftest import Api, make_api
from tests.integration.test_staging import PROCESSING, stage_now


@pytest.fixture
def processing(data_root: Path) -> Path:
    root = data_root / PROCESSING
    root.mkdir()
    return root


def api_logs(factory: sessionmaker[Session]) -> list[SystemLog]:
    with factory() as session:
        found = list(session.scalars(select(SystemLog).where(SystemLog.source == "api")))
        session.expunge_all()
        return found


def test_a_scientist_requests_waits_for_and_releases_a_staging(
    archived_api: Api, processing: Path, tmp_path: Path
) -> None:
    made = archived_api.post(
        "/api/v1/staging", user="alice", json={"obs_unit": "ECDFS-deep-001", "files": "*280GHz*"}
    )
    assert made.status_code == 201, made.text
    staging = made.json()
    assert staging["files"] == 3 and staging["folder"].endswith(f"alice/{staging['id']}")
    waiting = archived_api.get(
        f"/api/v1/staging/{staging['id']}/wait", user="alice", params={"timeout": 0.2}
    ).json()
    assert waiting["state"] == "pending" and waiting["marker"] == "STAGING"

    assert stage_now(archived_api.factory, tmp_path) is not None
    ready = archived_api.get(f"/api/v1/staging/{staging['id']}/wait", user="alice").json()
    assert ready["state"] == "staged" and ready["marker"] == "READY"
    assert (Path(ready["folder"]) / "READY").exists()
    mine = archived_api.get("/api/v1/staging", user="alice").json()["items"]
    assert [s["id"] for s in mine] == [staging["id"]]
    assert archived_api.get("/api/v1/staging", user="bob").json() == {
        "items": [],
        "next_after": None,
    }

    other = archived_api.get(f"/api/v1/staging/{staging['id']}", user="bob")
    assert other.status_code == 403
    assert (
        archived_api.post(f"/api/v1/staging/{staging['id']}/release", user="bob").status_code == 403
    )
    released = archived_api.post(f"/api/v1/staging/{staging['id']}/release", user="alice")
    assert released.status_code == 200 and released.json()["state"] == "released"
    assert not Path(ready["folder"]).exists()

    logs = api_logs(archived_api.factory)
    assert [(log.details["user"], log.details["staging"]) for log in logs] == [
        ("alice", staging["id"]),
        ("alice", staging["id"]),
    ]
    assert all(archived_api.tokens["alice"] not in str(log.details) for log in logs)


def test_an_operator_stages_for_a_scientist_and_a_scientist_not_for_another(
    archived_api: Api, processing: Path
) -> None:
    refused = archived_api.post(
        "/api/v1/staging", user="alice", json={"obs_unit": "ECDFS-deep-001", "user": "bob"}
    )
    assert refused.status_code == 403
    made = archived_api.post(
        "/api/v1/staging", user="op", json={"obs_unit": "ECDFS-deep-001", "user": "bob"}
    )
    assert made.status_code == 201
    listed = archived_api.get("/api/v1/staging", user="bob").json()["items"]
    assert [s["user"] for s in listed] == ["bob"]
    everyone = archived_api.get("/api/v1/staging", user="op").json()["items"]
    assert [s["user"] for s in everyone] == ["bob"]
    unknown = archived_api.post("/api/v1/staging", user="alice", json={"obs_unit": "nope"})
    assert unknown.status_code == 404
    nothing = archived_api.post("/api/v1/staging", user="alice", json={"files": "*"})
    assert nothing.status_code == 400 and nothing.json()["detail"]
    extra = archived_api.post("/api/v1/staging", user="alice", json={"obs_unit": "x", "rm": 1})
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "body.rm"


def test_an_operator_runs_a_campaign_and_a_scientist_may_not(archived_api: Api) -> None:
    body = {"kind": "re-verify", "location": "cologne-archive"}
    assert archived_api.post("/api/v1/campaigns", user="alice", json=body).status_code == 403
    made = archived_api.post("/api/v1/campaigns", user="op", json=body)
    assert made.status_code == 201, made.text
    queued = made.json()
    assert queued["items"] == 2 and queued["tasks_at_once"] >= 1
    shown = archived_api.get(f"/api/v1/campaigns/{queued['id']}", user="alice").json()
    assert shown["state"] == "active" and shown["created_by"] == "op"
    for verb, state in (("pause", "paused"), ("resume", "active"), ("cancel", "cancelled")):
        answer = archived_api.post(f"/api/v1/campaigns/{queued['id']}/{verb}", user="op")
        assert answer.status_code == 200 and answer.json()["state"] == state, answer.text
    again = archived_api.post(f"/api/v1/campaigns/{queued['id']}/resume", user="op")
    assert again.status_code == 409 and again.json()["detail"]
    assert archived_api.get("/api/v1/campaigns", user="op").json() == []
    assert len(archived_api.get("/api/v1/campaigns", params={"all": True}).json()) == 1
    logs = api_logs(archived_api.factory)
    assert [log.details["user"] for log in logs] == ["op"] * 4


@pytest.fixture
def limited(sites: sessionmaker[Session], engine: Engine) -> Iterator[Api]:
    settings = ApiSettings(rate_per_second=1, rate_burst=3, max_body_bytes=1000)
    yield from make_api(sites, engine, settings)


def test_request_size_and_rate_limits(limited: Api) -> None:
    big = limited.post("/api/v1/staging", user="alice", json={"name": "x" * 2000})
    assert big.status_code == 413 and big.json()["type"].endswith("too-large")

    def chunks() -> Iterator[bytes]:
        yield b"{" + b" " * 900
        yield b" " * 900 + b"}"

    streamed = limited.post("/api/v1/staging", user="bob", content=chunks())
    assert streamed.status_code == 413
    answers = [limited.get("/api/v1/me", user="op").status_code for _ in range(6)]
    assert answers[:3] == [200, 200, 200] and 429 in answers[3:]
    late = limited.get("/api/v1/me", user="op")
    assert late.status_code == 429 and int(late.headers["retry-after"]) >= 1
    assert limited.get("/api/v1/me", user="root").status_code == 200  # its own bucket
