from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.config import DbUrl, normalize_db_url, parse_db_url, redact_url, resolve_db_url
from ccat_hpc.errors import ConfigError


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_db_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    assert normalize_db_url("ops.sqlite", cwd=tmp_path) == f"sqlite:///{tmp_path}/ops.sqlite"
    assert normalize_db_url("/abs/ops.sqlite") == "sqlite:////abs/ops.sqlite"


def test_option_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"CCAT_HPC_DB": "postgresql://env/db"}
    assert resolve_db_url("postgresql://opt/db", env) == "postgresql+psycopg://opt/db"
    assert resolve_db_url(None, env) == "postgresql+psycopg://env/db"
    assert resolve_db_url(None, {}, cwd=tmp_path) == f"sqlite:///{tmp_path}/ccat-hpc.sqlite"


def test_passwords_are_redacted() -> None:
    assert redact_url("postgresql://ops:secret@h/db") == "postgresql://ops:***@h/db"
    assert redact_url("postgresql://ops@h/db") == "postgresql://ops@h/db"


def test_lock_key_is_a_signed_64_bit_integer() -> None:
    import uuid

    from ccat_hpc.db.bulk import lock_key

    for value in (0, 1, (1 << 128) - 1, 1 << 127, (1 << 63) << 64):
        key = lock_key(uuid.UUID(int=value))
        assert -(1 << 63) <= key < (1 << 63)
    assert lock_key(uuid.UUID(int=5 << 64)) == 5
    assert lock_key(uuid.UUID(int=(1 << 128) - 1)) == -1


PASSWORD = "p@ss:w/rd%?#&= Zq9"


def assert_no_password(text: str) -> None:
    for form in (PASSWORD, quote(PASSWORD, safe=""), "Zq9", "rd%?#"):
        assert form not in text, text


def test_every_accepted_form_and_its_driver(tmp_path: Path) -> None:
    for url in ("postgresql://h/db", "postgres://h/db", "postgresql+psycopg://h/db"):
        parsed = parse_db_url(url)
        assert (parsed.backend, parsed.drivername, parsed.host) == (
            "postgresql",
            "postgresql+psycopg",
            "h",
        )
    assert parse_db_url("sqlite:///ops.sqlite", cwd=tmp_path).database == str(
        tmp_path / "ops.sqlite"
    )
    assert parse_db_url("sqlite:////abs/ops.sqlite").database == "/abs/ops.sqlite"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("mysql://u:hunter2@h/db", "mysql"),
        ("sqlite+pysqlite:///x", "sqlite+pysqlite"),
        ("postgresql+psycopg2://u:hunter2@h/db", "postgresql+psycopg2"),
        ("HTTP://u:hunter2@h/db", "http"),
    ],
)
def test_unsupported_schemes_are_named_without_the_password(url: str, scheme: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_db_url(url)
    message = str(error.value)
    assert f"scheme {scheme!r} is not supported" in message
    assert "postgresql://" in message and "sqlite:///PATH" in message
    assert "hunter2" not in message


def test_encoded_user_and_password_are_decoded_once() -> None:
    parsed = parse_db_url(f"postgresql://o%40ps:{quote(PASSWORD, safe='')}@db:6543/my%20db")
    assert (parsed.username, parsed.password) == ("o@ps", PASSWORD)
    assert (parsed.host, parsed.port, parsed.database) == ("db", 6543, "my db")
    assert "Zq9" not in repr(parsed)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ops:p@ss:w/rd%?#&= Zq9@db/ops",
        "postgresql://ops:Zq9@x@db/ops",
        "postgresql://ops:rd/Zq9@db/ops",
        "postgresql://ops:rd?Zq9@db/ops",
    ],
)
def test_unencoded_at_or_slash_in_password_is_refused_with_advice(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_db_url(url)
    message = str(error.value)
    assert "%40" in message and "%-encode" in message
    assert_no_password(message)
    assert "Zq9" not in message and "ss:w" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://ops:Zq9@db:notaport/x", "port of the ops-db URL must be a number"),
        ("postgresql://ops:Zq9@db:99999/x", "from 1 to 65535"),
        ("postgresql://ops:Zq9%ff@db/x", "password in the ops-db URL is not valid"),
        ("postgresql://ops:Zq9@[::1/x", "unclosed '['"),
        ("sqlite://", "sqlite:///PATH"),
        ("sqlite://host/x", "three slashes"),
        ("sqlite:///ops.sqlite?mode=ro", "%3F"),
        ("ops:Zq9@db/x", "without its scheme"),
        ("   ", "is empty"),
    ],
)
def test_malformed_urls_are_config_errors(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_db_url(url)
    assert expected in str(error.value)
    assert "Zq9" not in str(error.value)


@pytest.mark.parametrize("name", ["a?b.sqlite", "c#d.sqlite", "100%.sqlite", "e f.sqlite", "%41"])
def test_a_bare_path_is_taken_literally_and_round_trips(tmp_path: Path, name: str) -> None:
    parsed = parse_db_url(str(tmp_path / name))
    assert parsed.database == f"{tmp_path}/{name}"
    assert parse_db_url(parsed.render()) == parsed
    assert parse_db_url(f"./{name}", cwd=tmp_path).database == f"{tmp_path}/{name}"


def test_sqlite_url_paths_are_percent_decoded(tmp_path: Path) -> None:
    assert parse_db_url("sqlite:////data/a%3Fb%20c.sqlite").database == "/data/a?b c.sqlite"
    assert parse_db_url("~/ops.sqlite").database == str(Path.home() / "ops.sqlite")


def test_ipv6_hosts_and_query_round_trip() -> None:
    parsed = parse_db_url("postgresql://ops@[::1]:5433/db?sslmode=require&application_name=a%26b")
    assert (parsed.host, parsed.port) == ("::1", 5433)
    assert parsed.query == (("sslmode", "require"), ("application_name", "a&b"))
    assert parse_db_url(parsed.render()) == parsed


def test_the_job_environment_round_trips(tmp_path: Path) -> None:
    """What a job task gets in CCAT_HPC_DB parses to the same URL as the submitter's."""
    option = f"postgres://ops:{quote(PASSWORD, safe='')}@db/ops?sslpassword=x%2By"
    handed_on = resolve_db_url(option)
    assert resolve_db_url(None, {"CCAT_HPC_DB": handed_on}) == handed_on
    assert parse_db_url(handed_on) == parse_db_url(option)
    literal = str(tmp_path / "we?ird #%20name.sqlite")
    handed_on = resolve_db_url(literal)
    assert parse_db_url(resolve_db_url(None, {"CCAT_HPC_DB": handed_on})).database == literal


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc",)), max_size=20)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:Sup3r%00Secret@127.0.0.1:1/db",  # libpq would stop at the NUL
        "postgresql://u:p%0Aw@h/db",
        "postgresql://u%01@h/db",
        "postgresql://u@h/d%00b",
        "postgresql://u@h/db?password=a%0Db",
        "sqlite:////tmp/a%00b.sqlite",
    ],
)
def test_nul_and_control_characters_in_a_url_are_refused_without_showing_them(url: str) -> None:
    with pytest.raises(ConfigError, match="holds a NUL") as caught:
        parse_db_url(url)
    assert "Secret" not in str(caught.value) and "%" not in str(caught.value)


@given(user=TEXT, password=st.none() | TEXT, database=TEXT, value=TEXT)
def test_any_postgres_url_renders_to_itself(
    user: str, password: str | None, database: str, value: str
) -> None:
    url = DbUrl("postgresql", database or None, user or None, password, "db", 5432, (("k", value),))
    assert parse_db_url(url.render()) == url


@given(
    name=st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1).filter(
        lambda name: name not in (".", "..")
    )
)
def test_any_file_name_is_one_sqlite_file(name: str) -> None:
    cwd = Path("/srv/ops")
    parsed = parse_db_url(f"./{name}", cwd=cwd)
    assert parsed.database == f"/srv/ops/{name}"
    assert parse_db_url(parsed.render()) == parsed
