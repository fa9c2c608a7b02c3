"""The auth matrix: every endpoint × every role, allowed and refused as documented;
no token, an expired, a revoked and a deactivated user's token are refused (401); a
token never appears in a log or a response."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import update

from ccat_hpc.access.tokens import create_token, revoke
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import ApiToken, User
from ccat_hpc.db.session import transaction
from tests.integration.api.conftest import Api

EVERYONE = {"alice", "primecam-daq", "op", "root"}
STAGERS = {"alice", "op", "root"}
OPERATORS = {"op", "root"}
FILERS = {"primecam-daq", "op", "root"}
MANIFEST = {"manifest_version": 1}  # refused as a manifest (422) once the caller may file
#: (method, route, concrete path, JSON body, who may) for every endpoint of the API
MATRIX: list[tuple[str, str, str, object, set[str]]] = [
    ("GET", "/api/v1/me", "/api/v1/me", None, EVERYONE),
    ("GET", "/api/v1/catalog", "/api/v1/catalog", None, EVERYONE),
    ("GET", "/api/v1/observations", "/api/v1/observations", None, EVERYONE),
    (
        "GET",
        "/api/v1/observations/{execution_id}",
        "/api/v1/observations/5b7a4a4e-0000-4000-8000-000000000000",
        None,
        EVERYONE,
    ),
    ("POST", "/api/v1/observations", "/api/v1/observations", MANIFEST, FILERS),
    ("GET", "/api/v1/files", "/api/v1/files", None, EVERYONE),
    ("GET", "/api/v1/files/{file_id}", "/api/v1/files/1", None, EVERYONE),
    ("GET", "/api/v1/files/{file_id}/trace", "/api/v1/files/1/trace", None, EVERYONE),
    ("GET", "/api/v1/trace", "/api/v1/trace?what=1", None, EVERYONE),
    ("GET", "/api/v1/packages", "/api/v1/packages", None, EVERYONE),
    ("GET", "/api/v1/packages/{package}", "/api/v1/packages/rdp:1", None, EVERYONE),
    ("GET", "/api/v1/transfers", "/api/v1/transfers", None, EVERYONE),
    ("GET", "/api/v1/transfers/rates", "/api/v1/transfers/rates", None, EVERYONE),
    ("GET", "/api/v1/locations", "/api/v1/locations", None, EVERYONE),
    ("GET", "/api/v1/status", "/api/v1/status", None, EVERYONE),
    ("POST", "/api/v1/staging", "/api/v1/staging", {"obs_unit": "ECDFS-deep-001"}, STAGERS),
    ("GET", "/api/v1/staging", "/api/v1/staging", None, STAGERS),
    ("GET", "/api/v1/staging/{staging_id}", "/api/v1/staging/1", None, STAGERS),
    (
        "GET",
        "/api/v1/staging/{staging_id}/wait",
        "/api/v1/staging/1/wait?timeout=0",
        None,
        STAGERS,
    ),
    ("POST", "/api/v1/staging/{staging_id}/release", "/api/v1/staging/1/release", None, STAGERS),
    ("POST", "/api/v1/campaigns", "/api/v1/campaigns", {"kind": "re-verify"}, OPERATORS),
    ("GET", "/api/v1/campaigns", "/api/v1/campaigns", None, EVERYONE),
    ("GET", "/api/v1/campaigns/{campaign_id}", "/api/v1/campaigns/1", None, EVERYONE),
    ("POST", "/api/v1/campaigns/{campaign_id}/pause", "/api/v1/campaigns/1/pause", None, OPERATORS),
    (
        "POST",
        "/api/v1/campaigns/{campaign_id}/resume",
        "/api/v1/campaigns/1/resume",
        None,
        OPERATORS,
    ),
    (
        "POST",
        "/api/v1/campaigns/{campaign_id}/cancel",
        "/api/v1/campaigns/1/cancel",
        None,
        OPERATORS,
    ),
]
OPEN = {("GET", "/health"), ("GET", "/ready")}


def test_the_matrix_names_every_endpoint(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    routes = {(m.upper(), path) for path, item in schema["paths"].items() for m in item}
    assert routes == {(m, r) for m, r, *_ in MATRIX} | OPEN


def test_every_role_on_every_endpoint(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for method, _route, path, body, allowed in MATRIX:
        for user in sorted(EVERYONE):
            answer = api.client.request(
                method, path, headers=api.headers(user), json=body if body is not None else None
            )
            if user in allowed:
                assert answer.status_code not in (401, 403), (method, path, user, answer.text)
                assert answer.status_code < 500, (method, path, user, answer.text)
            else:
                assert answer.status_code == 403, (method, path, user, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
        anonymous = api.client.request(method, path, json=body)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    for method, path in OPEN:
        assert api.client.request(method, path).status_code == 200
    logged = caplog.text
    assert not any(token in logged for token in api.tokens.values())


def test_expired_revoked_malformed_and_deactivated_tokens_are_refused(api: Api) -> None:
    with transaction(api.factory) as session:
        expired = create_token(session, "alice").token
        revoked = create_token(session, "alice").token
        inactive = create_token(session, "bob").token
        session.execute(
            update(ApiToken)
            .where(ApiToken.prefix == expired.split("_")[1])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        revoke(session, revoked.split("_")[1])
        session.execute(update(User).where(User.username == "bob").values(active=False))
    cases = {
        expired: "expired",
        revoked: "revoked",
        inactive: "deactivated",
        "ccat_00000000_" + "A" * 43: "not known",
        "hunter2": "not a ccat-hpc API token",
    }
    for token, reason in cases.items():
        answer = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and reason in answer.json()["detail"], answer.text
        assert token not in answer.text
    basic = api.client.get("/api/v1/me", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    assert api.get("/api/v1/me", user="alice").json()["scopes"] == ["read", "staging:own"]


def test_a_narrow_token_carries_only_its_scopes(api: Api) -> None:
    with transaction(api.factory) as session:
        read_only = create_token(session, "op", scopes=["read"]).token
    headers = {"Authorization": f"Bearer {read_only}"}
    assert api.client.get("/api/v1/status", headers=headers).status_code == 200
    refused = api.client.post("/api/v1/campaigns", headers=headers, json={"kind": "re-verify"})
    assert refused.status_code == 403 and "campaigns" in refused.json()["detail"]
