"""Passwords of ops-db URLs never show: redact_url, scrub and the URL parser."""

from __future__ import annotations

import string
import subprocess
import sys
from urllib.parse import quote, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.config import parse_db_url
from ccat_hpc.db.reasons import operational_error_reason
from ccat_hpc.redact import redact_url, scrub, secret_forms

PASSWORDS = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " ",
    min_size=1,
    max_size=40,
)
REDACTED = "postgresql://ops:***@db.example:5432/opsdb"
REDACTED_QUERY = "postgresql://ops@db.example/opsdb?sslmode=require&password=***"


def forms(password: str) -> set[str]:
    """What a password may look like in text, computed here independently of redact.py."""
    encoded = {
        quote(password, safe=""),
        quote(password),
        quote(password, safe=" +"),
        quote_plus(password, safe=""),
        quote_plus(password),
    }
    return {password, repr(password)[1:-1]} | encoded | {form.lower() for form in encoded}


def userinfo_url(password: str) -> str:
    return f"postgresql://ops:{quote(password, safe='')}@db.example:5432/opsdb"


def query_url(password: str) -> str:
    return f"postgresql://ops@db.example/opsdb?sslmode=require&password={quote_plus(password)}"


def assert_hidden(text: str, password: str) -> None:
    for form in forms(password):
        assert form not in text, (form, text)


@given(PASSWORDS)
def test_encoded_password_never_shows_in_redact_url(password: str) -> None:
    assert redact_url(userinfo_url(password)) == REDACTED
    assert redact_url(query_url(password)) == REDACTED_QUERY


@given(PASSWORDS)
def test_scrub_removes_every_form_of_the_password(password: str) -> None:
    for url in (userinfo_url(password), query_url(password)):
        noisy = " | ".join([*sorted(forms(password)), url, f"password={password}!"])
        assert_hidden(scrub(noisy, url), password)


@given(PASSWORDS)
def test_encoded_password_round_trips_through_the_parser(password: str) -> None:
    parsed = parse_db_url(userinfo_url(password))
    assert parsed.password == password and parsed.username == "ops"
    assert parsed.host == "db.example" and parsed.port == 5432 and parsed.database == "opsdb"
    assert parse_db_url(parsed.render()) == parsed
    from_query = parse_db_url(query_url(password))
    assert dict(from_query.query)["password"] == password
    assert parse_db_url(from_query.render()) == from_query


def test_redact_url_keeps_what_is_not_secret() -> None:
    assert (
        redact_url("postgresql://ops@h/db?sslmode=require")
        == "postgresql://ops@h/db?sslmode=require"
    )
    assert redact_url("/var/lib/ops.sqlite") == "/var/lib/ops.sqlite"
    assert redact_url("sqlite:////a/b%3Fc.sqlite") == "sqlite:////a/b%3Fc.sqlite"


def test_redact_url_hides_secret_query_keys_of_every_spelling() -> None:
    url = "postgresql://h/db?sslpassword=a1&TOKEN=b2&api_key=c3&passwd=d4&application_name=x"
    shown = redact_url(url)
    assert shown == (
        "postgresql://h/db?sslpassword=***&TOKEN=***&api_key=***&passwd=***&application_name=x"
    )


def test_unclear_urls_are_hidden_whole() -> None:
    assert redact_url("postgresql://ops:p@ss@h/db") == "postgresql://***"
    assert redact_url("postgresql://ops:pa/ss@h/db") == "postgresql://***"


def test_raw_at_in_password_is_scrubbed_whole() -> None:
    url = "postgresql://ops:Zx7@Qw9@h/db"
    assert scrub("failed: Zx7@Qw9 and zx7%40qw9", url) == "failed: *** and ***"


def test_scrub_picks_a_marker_the_password_does_not_contain() -> None:
    url = userinfo_url("a*")
    assert scrub("x a* y", url) == "x ~~~ y"
    assert "a*" not in scrub("aa**", url)


def test_scrub_hides_the_whole_text_when_no_marker_is_safe() -> None:
    password = "*~^|\u2026"
    result = scrub(f"secret is {password}", userinfo_url(password))
    assert password not in result and "secret is" not in result


def test_scrub_without_password_changes_nothing() -> None:
    text = "connection to 127.0.0.1:1 refused"
    assert scrub(text, "postgresql://ops@h/db") == text
    assert scrub(text, None, "") == text
    assert secret_forms("/a/path/ops:x@y") == set()


def test_scrub_takes_several_urls_at_once() -> None:
    text = "one Alpha77 two Bravo88"
    assert scrub(text, userinfo_url("Alpha77"), query_url("Bravo88")) == "one *** two ***"


def test_operational_error_reason_scrubs_with_the_url() -> None:
    class Driver(Exception):
        pass

    class Wrapped(Exception):
        orig = Driver('password "Secr3t!" rejected\nDETAIL: more')

    assert operational_error_reason(Wrapped()) == 'password "Secr3t!" rejected'
    reason = operational_error_reason(Wrapped(), userinfo_url("Secr3t!"))
    assert reason == 'password "***" rejected'


def test_missing_database_is_not_called_a_schema_problem() -> None:
    missing_db = Exception('connection failed: FATAL:  database "x" does not exist')
    assert "schema" not in operational_error_reason(missing_db)
    missing_table = Exception('relation "raw_data_file" does not exist')
    assert "run `ccat-hpc db upgrade`" in operational_error_reason(missing_table)


def test_redaction_and_url_parsing_import_no_sqlalchemy() -> None:
    code = (
        "import sys, ccat_hpc.redact, ccat_hpc.config, ccat_hpc.db.reasons; "
        "print(any(m.split('.')[0] == 'sqlalchemy' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
