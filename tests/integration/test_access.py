"""Users and API tokens in ops-db (SQLite and PostgreSQL), through the CLI: a token is
shown once, stored only as a hash, refused when expired or revoked, and never printed
again by any command."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.tokens import TokenRefused, caller_of
from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import ApiToken
from ccat_hpc.db.session import transaction
from tests.integration.test_cli import InProcess


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


@pytest.fixture
def catalog(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(factory) as session:
        load_catalog_file(session, example_catalog_path())
    return factory


def test_users_and_tokens_through_the_cli(
    catalog: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    assert cli(db_url, "user", "add", "alice", "--role", "scientist").returncode == 0
    added = cli(
        db_url, "user", "add", "primecam-daq", "--role", "instrument", "--instrument", "PrimeCam"
    )
    assert added.returncode == 0, added.stderr
    made = cli(db_url, "token", "create", "alice", "--name", "ramses jobs")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ccat_") and "shown this once" in made.stderr
    prefix = token.split("_")[1]

    with catalog() as session:  # only the hash is stored, nowhere the token
        row = session.scalars(select(ApiToken)).one()
        assert row.prefix == prefix and row.token_hash != token and token not in row.token_hash
        dumped = "\n".join(str(r) for r in session.execute(text("SELECT * FROM api_token")).all())
        assert token not in dumped and token.split("_", 2)[2] not in dumped
    with transaction(catalog) as session:
        who = caller_of(session, token)
    assert who.username == "alice" and who.scopes == {"read", "staging:own"}

    listed = cli(db_url, "token", "list")
    assert prefix in listed.stdout and token not in listed.stdout and "valid" in listed.stdout
    users = json.loads(cli(db_url, "user", "list", "--json").stdout)
    assert {u["username"]: u["roles"] for u in users} == {
        "alice": ["scientist"],
        "primecam-daq": ["instrument"],
    }
    assert [u["instrument"] for u in users if u["username"] == "primecam-daq"] == ["PrimeCam"]

    revoked = cli(db_url, "token", "revoke", prefix)
    assert revoked.returncode == 0 and token not in revoked.stdout
    with transaction(catalog) as session, pytest.raises(TokenRefused, match="revoked") as refused:
        caller_of(session, token)
    assert token not in str(refused.value)
    assert "revoked" in cli(db_url, "token", "list").stdout


def test_expired_unknown_and_malformed_tokens_are_refused(
    catalog: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    assert cli(db_url, "user", "add", "op", "--role", "operator").returncode == 0
    made = json.loads(cli(db_url, "token", "create", "op", "--scope", "read", "--json").stdout)
    token = made["token"]
    assert made["scopes"] == ["read"]
    with transaction(catalog) as session:
        assert caller_of(session, token).scopes == {"read"}
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    with transaction(catalog) as session, pytest.raises(TokenRefused, match="expired"):
        caller_of(session, token)
    for bad in ("", "ccat_", "x" * 5000, token[:-1] + ("A" if token[-1] != "A" else "B")):
        with transaction(catalog) as session, pytest.raises(TokenRefused) as refused:
            caller_of(session, bad)
        assert bad[6:] == "" or bad[14:] not in str(refused.value)
    assert "expired" in cli(db_url, "token", "list").stdout


def test_bad_user_and_token_requests_are_refused(
    catalog: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    assert cli(db_url, "user", "add", "sci", "--role", "scientist").returncode == 0
    cases = [
        (("user", "add", "../x", "--role", "scientist"), "not a user name"),
        (("user", "add", "sci", "--role", "scientist"), "already"),
        (("user", "add", "daq", "--role", "instrument"), "names its instrument"),
        (("user", "add", "daq", "--role", "instrument", "--instrument", "Nope"), "Nope"),
        (("token", "create", "nobody"), "no user nobody"),
        (("token", "create", "sci", "--scope", "campaigns"), "not granted"),
        (("token", "revoke", "deadbeef"), "no token deadbeef"),
    ]
    for argv, message in cases:
        result = cli(db_url, *argv)
        assert result.returncode != 0, argv
        assert message in result.stderr, (argv, result.stderr)
        assert "Traceback" not in result.stderr
