"""What a hostile or careless client tries, refused with a clear answer and nothing
done: pages without the scope, a sign-in forced by another site, tokens made up to get
a fresh rate, too many long-polls or filings at once, NUL characters, users that do
not exist, huge selections, ids out of range, a readiness probe asked by anyone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.tokens import create_token
from ccat_hpc.api.app import create_app
from ccat_hpc.api.settings import ApiSettings
from ccat_hpc.db.models import StagingJob, User
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.pipeline import staging_request
from tests.integration.api.conftest import Api, make_api
from tests.integration.api.test_ui_forms import csrf, sign_in
from tests.integration.test_staging import PROCESSING


@pytest.fixture
def processing(data_root: Path) -> Path:
    root = data_root / PROCESSING
    root.mkdir()
    return root


def test_pages_need_the_scope_the_api_needs(api: Api) -> None:
    with transaction(api.factory) as session:
        api.tokens["filer"] = create_token(
            session, "primecam-daq", scopes=["observations:file"]
        ).token
    sign_in(api, "filer")
    for page in ("/ui/monitor", "/ui/observations", "/ui/campaigns", "/ui/files/1"):
        answer = api.client.get(page)
        assert answer.status_code == 403 and "needs the scope &#39;read&#39;" in answer.text, page
    assert api.client.get("/ui/staging").status_code == 403


def test_a_sign_in_forced_by_another_site_is_refused(api: Api) -> None:
    forced = api.client.post(
        "/ui/signin",
        data={"token": api.tokens["alice"]},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert forced.status_code == 403 and "set-cookie" not in forced.headers
    shown = api.client.get("/ui/signin?reason=<b>call+0800-EVIL</b>").text
    assert "0800" not in shown
    refused = api.client.get("/ui/signin?reason=refused").text
    assert "Your token was refused" in refused


@pytest.fixture
def limited(sites: sessionmaker[Session], engine: Engine) -> Iterator[Api]:
    settings = ApiSettings(rate_per_second=0.01, rate_burst=2, waits_per_token=1)
    yield from make_api(sites, engine, settings)


def test_made_up_tokens_buy_no_fresh_rate(limited: Api) -> None:
    answers = []
    for number in range(12):  # each a new made-up token: the address's bucket still counts
        fake = {"Authorization": f"Bearer ccat_{number:08x}_" + "A" * 43}
        answers.append(limited.client.get("/api/v1/me", headers=fake).status_code)
    assert answers[:8] == [401] * 8 and set(answers[8:]) == {429}


def test_a_token_over_its_rate_waits_whatever_cookie_it_sends(limited: Api) -> None:
    codes = [
        limited.get("/api/v1/me", user="op", headers={"Cookie": f"x=ccat_{n:08x}_"}).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 429, 429]


def test_a_token_holds_one_long_poll_at_a_time_here(archived_api: Api, processing: Path) -> None:
    app = create_app(
        archived_api.factory,
        archived_api.factory.kw["bind"],
        ApiSettings(rate_per_second=0, waits_per_token=1, wait_max_seconds=3),
    )
    from fastapi.testclient import TestClient

    made = archived_api.post("/api/v1/staging", user="alice", json={"obs_unit": "ECDFS-deep-001"})
    path = f"/api/v1/staging/{made.json()['id']}/wait"
    headers = archived_api.headers("alice")
    with TestClient(app) as client:
        first = threading.Thread(target=lambda: client.get(path, headers=headers))
        first.start()
        deadline = threading.Event()
        deadline.wait(0.5)
        second = client.get(path, headers=headers, params={"timeout": 0})
        first.join()
    assert second.status_code == 429 and second.headers["retry-after"]


def test_filings_at_once_are_bounded(api: Api) -> None:
    app = create_app(
        api.factory,
        api.factory.kw["bind"],
        ApiSettings(rate_per_second=0, max_concurrent_filings=1),
    )
    app.state.filings.acquire()  # one filing in progress
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        busy = client.post("/api/v1/observations", headers=api.headers("op"), json={})
    assert busy.status_code == 429 and "being filed" in busy.json()["detail"]


def test_bodies_with_nul_unknown_users_and_huge_selections(
    archived_api: Api, processing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nul = archived_api.post(
        "/api/v1/staging", user="alice", json={"obs_unit": "ECDFS-deep-001", "name": "a\x00"}
    )
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "body.name"
    nobody = archived_api.post(
        "/api/v1/staging", user="op", json={"obs_unit": "ECDFS-deep-001", "user": "nobody"}
    )
    assert nobody.status_code == 404 and "no active user nobody" in nobody.json()["detail"]
    with archived_api.factory() as session:
        assert session.scalar(select(User.id).where(User.username == "nobody")) is None
    monkeypatch.setattr(staging_request, "MAX_SELECTED_FILES", 2)
    huge = archived_api.post("/api/v1/staging", user="alice", json={"program": "DEEP"})
    assert huge.status_code in (400, 404), huge.text
    huge = archived_api.post("/api/v1/staging", user="alice", json={"obs_unit": "ECDFS-deep-001"})
    assert huge.status_code == 400 and "more than 2" in huge.json()["detail"]
    with archived_api.factory() as session:
        assert session.scalar(select(func.count(StagingJob.id))) == 0


def test_ids_out_of_range_and_oversized_forms_on_pages(api: Api) -> None:
    sign_in(api, "op")
    token = csrf(api, "/ui/campaigns")
    for path in (
        "/ui/staging/99999999999999999999/release",
        "/ui/campaigns/99999999999999999999/pause",
    ):
        answer = api.client.post(path, data={"csrf": token})
        assert answer.status_code == 422 and "<h1>" in answer.text, path
    crowded = api.client.post(
        "/ui/signin",
        content=b"a=1&" * 60,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert crowded.status_code == 400 and "at most 50 fields" in crowded.text


def test_readiness_names_no_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")  # no schema
    app = create_app(
        make_session_factory(engine), engine, shown_db="postgresql://ops@db-host/opsdb"
    )
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        answer = client.get("/ready")
    assert answer.status_code == 503
    assert "db-host" not in answer.text and "not ready" in answer.json()["detail"]
    assert client.get("/health").status_code == 200


def test_a_large_body_without_a_length_is_counted_as_it_streams(api: Api) -> None:
    app = create_app(
        api.factory,
        api.factory.kw["bind"],
        ApiSettings(rate_per_second=0, max_manifest_bytes=10_000),
    )
    from fastapi.testclient import TestClient

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 1000

    with TestClient(app) as client:
        big = client.post("/api/v1/observations", headers=api.headers("op"), content=chunks())
        anonymous = client.post("/api/v1/observations", content=chunks())
    assert big.status_code == 413 and big.json()["type"].endswith("too-large")
    assert anonymous.status_code == 401


def test_the_status_summary_is_shared_stale_while_one_computes_and_failures_wait(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccat_hpc.api import snapshot

    now = [0.0]
    computed: list[int] = []

    def counted(session: Session) -> dict[str, int]:
        computed.append(1)
        return {"n": len(computed)}

    monkeypatch.setattr(snapshot, "collect_status", counted)
    snapshots = snapshot.StatusSnapshots(15, lambda: now[0])
    assert snapshots.get(api.factory)["n"] == 1
    now[0] = 10
    assert snapshots.get(api.factory)["n"] == 1  # fresh: not computed again
    now[0] = 20
    with snapshots._lock:  # another request computes: this one gets the last one
        assert snapshots.get(api.factory)["n"] == 1
    assert snapshots.get(api.factory)["n"] == 2

    def failing(session: Session) -> dict[str, int]:
        computed.append(1)
        raise RuntimeError("ops-db went away")

    monkeypatch.setattr(snapshot, "collect_status", failing)
    now[0] = 40
    for _ in range(3):  # the failure is answered, not retried, for a few seconds
        with pytest.raises(RuntimeError):
            snapshots.get(api.factory)
    assert len(computed) == 3


def test_forms_behind_a_proxy_and_from_browsers_that_say_where_they_come_from(api: Api) -> None:
    sign_in(api, "op")
    token = csrf(api, "/ui/campaigns")
    behind_proxy = api.client.post(
        "/ui/campaigns",
        data={"kind": "re-verify", "csrf": token},
        headers={"Origin": "https://ops-db.example.org", "X-Forwarded-Host": "ops-db.example.org"},
    )
    assert "another site" not in behind_proxy.text
    elsewhere = api.client.post(
        "/ui/campaigns",
        data={"kind": "re-verify", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 400 and "another site" in elsewhere.text
    same = api.client.post(
        "/ui/campaigns",
        data={"kind": "re-verify", "csrf": token},
        headers={"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "same-origin"},
    )
    assert "another site" not in same.text


def test_a_file_only_token_opens_the_filing_page_and_probes_are_never_limited(
    limited: Api,
) -> None:
    with transaction(limited.factory) as session:
        limited.tokens["filer"] = create_token(
            session, "primecam-daq", scopes=["observations:file"]
        ).token
    sign_in(limited, "filer")
    assert limited.client.get("/ui/file").status_code == 200
    probes = [limited.client.get("/health").status_code for _ in range(30)]
    assert set(probes) == {200}
