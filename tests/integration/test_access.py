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
    other = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in ("", "ccat_", "x" * 5000, token + "\n", other):
        with transaction(catalog) as session, pytest.raises(TokenRefused) as refused:
            caller_of(session, bad)
        assert token[14:] not in str(refused.value) and other[14:] not in str(refused.value)
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
    cases += [
        (("token", "create", "sci", "--days", days), "a token lives 0.01 to 3650 days")
        for days in ("inf", "nan", "0", "1e7", "-1")
    ]
    cases += [(("token", "revoke", "../../etc"), "8 hex digits")]
    for argv, message in cases:
        result = cli(db_url, *argv)
        assert result.returncode in (2, 4), (argv, result.returncode, result.stderr)
        assert message in result.stderr, (argv, result.stderr)
        assert "internal error" not in result.stderr
    with catalog() as session:
        assert session.scalars(select(ApiToken)).all() == []


def test_a_token_follows_its_user_roles_taken_away_and_deactivation(
    catalog: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    from ccat_hpc.db.models import Role, User

    twice = cli(db_url, "user", "add", "bob", "--role", "admin", "--role", "admin")
    assert twice.returncode == 0, twice.stderr
    made = json.loads(cli(db_url, "token", "create", "bob", "--no-expiry", "--json").stdout)
    assert "users:admin" in made["scopes"] and made["expires_at"] is None
    with transaction(catalog) as session:  # bob is an operator now, no longer an admin
        bob = session.scalars(select(User).where(User.username == "bob")).one()
        bob.roles = [Role(name="operator")]
    with transaction(catalog) as session:
        assert "users:admin" not in caller_of(session, made["token"]).scopes
    listed = json.loads(cli(db_url, "token", "list", "--json").stdout)
    assert "users:admin" not in listed[0]["scopes"] and "campaigns" in listed[0]["scopes"]
    with transaction(catalog) as session:
        session.execute(update(User).values(active=False))
    with transaction(catalog) as session, pytest.raises(TokenRefused, match="deactivated"):
        caller_of(session, made["token"])
    # revoking by the whole token works, and never prints it
    revoked = cli(db_url, "token", "revoke", made["token"])
    assert revoked.returncode == 0 and made["token"] not in revoked.stdout + revoked.stderr
    unknown = "ccat_0123abcd_" + "A" * 43
    missing = cli(db_url, "token", "revoke", unknown)
    assert (
        missing.returncode == 4 and unknown not in missing.stderr and "0123abcd" in missing.stderr
    )
