"""CLI conventions: no password in any output, global options before or after the
command, downgrades that ask first, documented exit codes, a top-level help that
imports no command."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import click
import pytest

from ccat_hpc.cli import db_cmds
from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.main import COMMANDS
from ccat_hpc.db import migrate
from ccat_hpc.db.revision import SCHEMA_HEAD
from ccat_hpc.errors import EXIT_CODES, CcatHpcError, NotFoundError
from tests.integration.test_cli import InProcess, one_line_error

PASSWORD = "Pw@:/%?#&= Zq9x"
PG = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
SQLITE = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment without CCAT_HPC_DB (the default ops-db is then a missing file)."""
    return {k: v for k, v in os.environ.items() if k != "CCAT_HPC_DB"}


def secret_forms(password: str) -> set[str]:
    encoded = {quote(password, safe=""), quote(password), quote_plus(password)}
    return {password, "Zq9x"} | encoded | {form.lower() for form in encoded}


def assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for form in secret_forms(PASSWORD):
        assert form not in result.stdout and form not in result.stderr, (form, result)


def with_password(url: str, password: str = PASSWORD) -> str:
    """``url`` (``SCHEME://USER@…``) with a %-encoded password."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://" + rest.replace("@", f":{quote(password, safe='')}@", 1)


def with_query_password(url: str, password: str = PASSWORD) -> str:
    return f"{url}?application_name=ccat&password={quote_plus(password)}"


def unreachable(password: str = PASSWORD) -> str:
    return f"postgresql://ops:{quote(password, safe='')}@127.0.0.1:1/ops"


@PG
def test_encoded_password_works_everywhere_and_never_shows(
    run: InProcess, empty_db_url: str
) -> None:
    url = with_password(empty_db_url)
    upgrade = run(url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.startswith("ops-db at postgresql+psycopg://postgres:***@")
    current = run(url, "db", "current")
    assert current.stdout.strip() == f"{SCHEMA_HEAD} (up to date)"
    results = [upgrade, current, run(url, "status"), run(url, "-v", "status", "--json")]
    results.append(run(url, "db", "downgrade", "-1", "--yes"))
    assert [r.returncode for r in results] == [0] * 5
    for result in results:
        assert_no_secret(result)


@PG
def test_password_in_the_query_works_and_never_shows(run: InProcess, empty_db_url: str) -> None:
    url = with_query_password(empty_db_url)
    upgrade = run(url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "password=***" in upgrade.stdout and "application_name=ccat" in upgrade.stdout
    results = [upgrade, run(url, "db", "current"), run(url, "status")]
    assert [r.returncode for r in results] == [0, 0, 0]
    for result in results:
        assert_no_secret(result)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "url", [unreachable(), with_query_password("postgresql://ops@127.0.0.1:1/x")]
)
@pytest.mark.parametrize("args", [("status",), ("db", "upgrade"), ("db", "current")])
def test_driver_errors_never_show_the_password(
    run: InProcess, url: str, args: tuple[str, ...]
) -> None:
    short = run(url, *args)
    assert short.returncode == 6
    assert "Connection refused" in one_line_error(short)
    verbose = run(url, *args, "--verbose")
    assert verbose.returncode == 6 and "Traceback" in verbose.stderr
    assert "psycopg.OperationalError" in verbose.stderr
    for result in (short, verbose):
        assert_no_secret(result)


@PG
def test_missing_database_on_the_server_never_shows_the_password(
    run: InProcess, empty_db_url: str
) -> None:
    url = with_password(empty_db_url.rsplit("/", 1)[0] + "/no_such_ops_db")
    for result in (run(url, "status"), run(url, "-v", "db", "current")):
        assert result.returncode == 6
        assert 'database "no_such_ops_db" does not exist' in result.stderr
        assert_no_secret(result)


@click.command()
def explode() -> None:
    raise RuntimeError(f"boom {PASSWORD} {quote(PASSWORD, safe='')}")


@click.command()
def refuse() -> None:
    raise NotFoundError(f"no such thing as {quote_plus(PASSWORD)}")


@click.command()
@pass_app
def fake_demo(app: AppContext) -> None:
    with app.engine().connect() as connection:
        connection.exec_driver_sql("CREATE TABLE made (x INTEGER)")


def add_command(monkeypatch: pytest.MonkeyPatch, name: str, attribute: str) -> None:
    monkeypatch.setitem(COMMANDS, name, (f"{__name__}:{attribute}", "A test command."))


def test_internal_and_domain_errors_are_scrubbed(
    run: InProcess, monkeypatch: pytest.MonkeyPatch, clean_env: dict[str, str]
) -> None:
    add_command(monkeypatch, "explode", "explode")
    add_command(monkeypatch, "refuse", "refuse")
    internal = run(unreachable(), "explode", "-v")
    assert internal.returncode == 70
    assert "internal error: RuntimeError: boom" in internal.stderr
    assert "Traceback" in internal.stderr
    from_env = run(None, "refuse", env={**clean_env, "CCAT_HPC_DB": unreachable()})
    assert from_env.returncode == 4 and one_line_error(from_env).startswith("error: no such thing")
    for result in (internal, from_env):
        assert_no_secret(result)


def test_unencoded_at_in_password_is_refused_without_echo(run: InProcess) -> None:
    url = "postgresql://ops:Zq9x@Wv8k@127.0.0.1:1/ops"
    for result in (run(url, "status"), run(url, "db", "upgrade", "-v")):
        assert result.returncode == 3
        assert "%40" in result.stderr.splitlines()[-1]
        assert "Zq9x" not in result.stderr and "Wv8k" not in result.stderr


@pytest.mark.parametrize("url", ["mysql://u:Zq9x@h/db", "sqlite+pysqlite:///x.sqlite"])
def test_unsupported_url_scheme_is_a_config_error(run: InProcess, url: str) -> None:
    result = run(url, "status")
    assert result.returncode == 3
    line = one_line_error(result)
    assert "is not supported" in line and "postgresql://" in line
    assert "Traceback" not in result.stderr and "Zq9x" not in result.stderr


def test_sqlite_path_is_taken_literally(run: InProcess, tmp_path: Path) -> None:
    name = "ops?db#1 %41 x.sqlite"
    path = tmp_path / name
    upgrade = run(str(path), "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert path.is_file() and name in {p.name for p in tmp_path.iterdir()}
    assert {p.name for p in tmp_path.iterdir()} <= {name, f"{name}-wal", f"{name}-shm"}
    as_url = "sqlite:///" + quote(str(path))
    for db in (str(path), as_url):
        assert run(db, "status").returncode == 0
        assert run(db, "db", "current").stdout.strip() == f"{SCHEMA_HEAD} (up to date)"
    assert run(name, "status", cwd=tmp_path).returncode == 0


def test_global_options_after_the_command(
    run: InProcess, db_url: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return run(None, *args, env=clean_env, cwd=tmp_path)

    assert here("status", "--db", db_url).returncode == 0
    assert here("status", f"--db={db_url}", "--json").returncode == 0
    current = here("db", "current", "--db", db_url, "-v")
    assert current.stdout.strip() == f"{SCHEMA_HEAD} (up to date)"
    assert here("db", "--db", db_url, "current").stdout.startswith(f"{SCHEMA_HEAD} ")
    missing = here("job", "status", "3", "--db", db_url, "-v")
    assert missing.returncode == 4 and "no job batch 3" in missing.stderr
    assert "Traceback" in missing.stderr
    later_wins = here("--db", str(tmp_path / "absent.sqlite"), "status", "--db", db_url)
    assert later_wins.returncode == 0 and not (tmp_path / "absent.sqlite").exists()
    assert here("status").returncode == 6  # without --db: the default, a missing file


def test_a_command_that_does_not_ask_to_create_ops_db_never_does(
    run: InProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only `db upgrade` and `demo` ask for engine(create=True) (both tested end to end)."""
    add_command(monkeypatch, "other", "fake_demo")
    refused = run(str(tmp_path / "a.sqlite"), "other")
    assert refused.returncode == 6 and not (tmp_path / "a.sqlite").exists()
    assert "no ops-db at" in refused.stderr


def previous_revision() -> str:
    below = migrate.script_directory().get_revision(SCHEMA_HEAD)
    assert below is not None and isinstance(below.down_revision, str)
    return below.down_revision


def test_downgrade_refuses_without_yes_and_a_terminal(run: InProcess, db_url: str) -> None:
    refused = run(db_url, "db", "downgrade", "-1")
    assert refused.returncode == 2
    line = one_line_error(refused)
    assert f"undoes {SCHEMA_HEAD} (" in line and "drops" in line and "--yes" in line
    assert run(db_url, "db", "current").stdout.strip() == f"{SCHEMA_HEAD} (up to date)"


def test_downgrade_asks_on_a_terminal(
    run: InProcess, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_cmds, "_can_ask", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    declined = run(db_url, "db", "downgrade", "-1")
    assert declined.returncode == 130 and "this drops" in declined.stdout
    assert "Continue?" in declined.stdout
    assert run(db_url, "db", "current").stdout.startswith(f"{SCHEMA_HEAD} ")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    accepted = run(db_url, "db", "downgrade", "-1")
    assert accepted.returncode == 0 and f"ops-db is at {previous_revision()}" in accepted.stdout


def test_downgrade_minus_one_with_yes(run: InProcess, db_url: str) -> None:
    one = run(db_url, "db", "downgrade", "-1", "--yes")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == f"ops-db is at {previous_revision()}"
    assert run(db_url, "db", "upgrade").returncode == 0
    base = run(db_url, "db", "downgrade", "-y", "base")
    assert base.stdout.strip() == "ops-db is at base (empty)"
    again = run(db_url, "db", "downgrade", "base")
    assert again.returncode == 0 and "nothing to undo" in again.stdout


@SQLITE
@pytest.mark.parametrize("revision", ["nosuch", "-99", "--yse"])
def test_bad_downgrade_targets_are_usage_errors(run: InProcess, db_url: str, revision: str) -> None:
    result = run(db_url, "db", "downgrade", revision, "--yes")
    assert result.returncode == 2
    assert revision in result.stderr and "internal error" not in result.stderr
    assert run(db_url, "db", "current").stdout.startswith(f"{SCHEMA_HEAD} ")


@SQLITE
def test_bad_upgrade_target_is_a_usage_error(run: InProcess, db_url: str) -> None:
    result = run(db_url, "db", "upgrade", "nosuch")
    assert result.returncode == 2 and "nosuch" in one_line_error(result)


def python_after(code: str) -> dict[str, object]:
    """Runs ``code`` in a fresh interpreter; returns what it printed last as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


HELP_PROBE = """
import json, sys
from ccat_hpc.cli.main import main
try:
    main({args!r})
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def loaded(modules: object, prefix: str) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if m == prefix or m.startswith(prefix + ".")]


def test_top_level_help_imports_no_command_and_no_sqlalchemy() -> None:
    probe = python_after(HELP_PROBE.format(args=["--help"]))
    assert probe["code"] == 0
    modules = probe["modules"]
    commands = [m for m in loaded(modules, "ccat_hpc.cli") if m.endswith("_cmds")]
    assert commands == []
    for heavy in ("sqlalchemy", "alembic", "pydantic", "psycopg"):
        assert loaded(modules, heavy) == [], heavy


def test_command_help_imports_that_command_only() -> None:
    probe = python_after(HELP_PROBE.format(args=["status", "--help"]))
    commands = [m for m in loaded(probe["modules"], "ccat_hpc.cli") if m.endswith("_cmds")]
    assert probe["code"] == 0 and commands == ["ccat_hpc.cli.status_cmds"]


def test_help_lists_every_exit_code_and_every_command(run: InProcess) -> None:
    text = run(None, "--help").stdout
    assert [code for code, _ in EXIT_CODES] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 70, 75, 130, 143]
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^ +{code}  {re.escape(meaning)}$", text, re.MULTILINE), code
    flat = " ".join(text.split())
    for name, (_, help_line) in COMMANDS.items():
        assert f" {name} {help_line}" in flat
    assert "files List and show raw data files" in flat and "obs List and show observations" in flat


def test_every_error_class_has_a_documented_exit_code() -> None:
    import ccat_hpc.cli.file_cmds
    import ccat_hpc.engine.errors
    import ccat_hpc.executors.process
    import ccat_hpc.jobs.runner
    import ccat_hpc.pipeline.staging_request
    import ccat_hpc.storage.base  # noqa: F401

    documented = {code for code, _ in EXIT_CODES}
    pending: list[type[CcatHpcError]] = [CcatHpcError]
    seen = []
    while pending:
        error = pending.pop()
        seen.append(error)
        assert error.exit_code in documented, error
        pending += error.__subclasses__()
    assert len(seen) > 8


@pytest.mark.parametrize("name", ["catalog", "db", "job", "sites", "status", "file", "package"])
def test_every_command_takes_the_global_options(run: InProcess, name: str) -> None:
    main_help = run(None, name, "--help")
    assert main_help.returncode == 0
    command = COMMANDS[name][0]
    assert command.split(":")[0].startswith("ccat_hpc.cli.")
    leaves = re.findall(r"^  ([a-z-]+)  ", main_help.stdout.split("Commands:")[-1], re.MULTILINE)
    for leaf in leaves if "Commands:" in main_help.stdout else [""]:
        text = run(None, *([name, leaf] if leaf else [name]), "--help").stdout
        assert "--db URL" in text and "-v, --verbose" in text, (name, leaf)


def test_a_missing_command_module_is_a_usage_error(
    run: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(COMMANDS, "ghost", ("ccat_hpc.cli.ghost_cmds:ghost", "Not there."))
    result = run(None, "ghost")
    assert result.returncode == 2 and "'ghost' is not part of this installation" in result.stderr
