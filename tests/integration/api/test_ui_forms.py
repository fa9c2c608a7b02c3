"""The web UI over HTTP (SQLite and PostgreSQL): the sign-in cookie, forms that came
from elsewhere, error pages, redirects that stay on the site."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from ccat_hpc.db.models import Campaign, StagingJob
from tests.integration.api.conftest import Api


def sign_in(api: Api, user: str, target: str = "/ui/observations") -> str:
    answer = api.client.post(
        "/ui/signin", data={"token": api.tokens[user], "next": target}, follow_redirects=False
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert api.tokens[user] not in answer.text
    return str(answer.headers["location"])


def csrf(api: Api, page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{32})"', api.client.get(page).text)
    assert found, page
    return found.group(1)


def count(api: Api, model: type) -> int:
    with api.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_sign_in_sets_an_httponly_cookie_and_stays_on_the_site(api: Api) -> None:
    first = api.client.get("/ui/monitor", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/ui/signin?next=")
    assert sign_in(api, "alice", "/ui/monitor") == "/ui/monitor"
    assert "Pipeline monitor" in api.client.get("/ui/monitor").text
    api.client.cookies.clear()
    assert sign_in(api, "alice", "https://evil.example/") == "/ui/observations"
    assert sign_in(api, "alice", "//evil.example/ui") == "/ui/observations"
    assert api.client.get("/api/v1/me").json()["username"] == "alice"  # reading: the cookie
    write = api.client.post("/api/v1/staging", json={"obs_unit": "ECDFS-deep-001"})
    assert write.status_code == 401  # a write through the API names its token
    bad = api.client.post("/ui/signin", data={"token": "nope"})
    assert bad.status_code == 401 and "not a ccat-hpc API token" in bad.text


def test_forms_from_elsewhere_are_refused_and_nothing_is_done(archived_api: Api) -> None:
    sign_in(archived_api, "alice")
    forged = archived_api.client.post(
        "/ui/staging", data={"obs_unit": "ECDFS-deep-001", "csrf": "0" * 32}
    )
    assert forged.status_code == 400 and "came from elsewhere" in forged.text
    assert count(archived_api, StagingJob) == 0
    token = csrf(archived_api, "/ui/staging")
    made = archived_api.client.post(
        "/ui/staging", data={"obs_unit": "ECDFS-deep-001", "csrf": token}
    )
    assert made.status_code == 200 and "staging request 1: 5 file(s)" in made.text
    refused = archived_api.client.post("/ui/campaigns", data={"kind": "re-verify", "csrf": token})
    assert refused.status_code == 400 and "campaigns" in refused.text
    assert count(archived_api, Campaign) == 0


def test_problems_on_pages_are_pages(api: Api) -> None:
    sign_in(api, "op")
    missing = api.client.get("/ui/files/424242")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in missing.text and "Traceback" not in missing.text
    bad = api.client.get("/ui/files/not-a-number")
    assert bad.status_code == 422 and "<h1>" in bad.text
    assert api.client.get("/api/v1/files/424242").headers["content-type"] == (
        "application/problem+json"
    )
    token = csrf(api, "/ui/observations")
    out = api.client.post("/ui/signout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and 'ccat_token=""' in out.headers["set-cookie"]
