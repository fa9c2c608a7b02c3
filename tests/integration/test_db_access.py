"""When ops-db cannot be used: missing, no schema, another schema, locked, unreachable.

Every case is one line and exit code 6 at the CLI; a read-only command never creates
a SQLite file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text

from ccat_hpc.cli.context import AppContext
from ccat_hpc.db import migrate, session
from ccat_hpc.db.revision import SCHEMA_HEAD
from ccat_hpc.db.session import check_schema, make_engine, schema_revisions
from ccat_hpc.errors import DatabaseUnavailable
from tests.integration.test_cli import InProcess, one_line_error


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def set_revision(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def schema_error(engine: Engine) -> str:
    with pytest.raises(DatabaseUnavailable) as error:
        check_schema(engine, "THE-URL")
    return str(error.value)


def test_engine_without_create_never_makes_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite"
    app = AppContext(db_option=str(path))
    with pytest.raises(DatabaseUnavailable) as error:
        app.engine()
    assert str(error.value) == f"no ops-db at {path} (to create it, run `ccat-hpc db upgrade`)"
    assert list(tmp_path.iterdir()) == []
    created = app.engine(create=True)
    with created.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    app.close()
    assert path.is_file()


def test_an_existing_file_deleted_later_is_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "ops.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.close()
    engine = make_engine(str(path), create=False)
    path.unlink()
    with pytest.raises(Exception, match="unable to open database file"):
        engine.connect()
    engine.dispose()
    assert not path.exists()


def test_current_schema_passes_with_one_query(engine: Engine) -> None:
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    check_schema(engine, "THE-URL")
    assert [s for s in statements if not s.startswith("BEGIN")] == [
        "SELECT version_num FROM alembic_version"
    ]


def test_no_schema_at_all(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert schema_revisions(engine) == []
    assert schema_error(engine) == "ops-db at THE-URL has no schema: run `ccat-hpc db upgrade`"
    engine.dispose()


def test_older_schema_names_both_revisions(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, "0001")
    assert schema_error(engine) == (
        f"ops-db at THE-URL: schema is at 0001, this ccat-hpc needs {SCHEMA_HEAD}: "
        "run `ccat-hpc db upgrade`"
    )
    engine.dispose()


def test_unknown_revision_is_newer(db_url: str) -> None:
    set_revision(db_url, "9f9f")
    engine = make_engine(db_url)
    message = schema_error(engine)
    assert "schema 9f9f is newer than this ccat-hpc" in message
    assert message.endswith("upgrade ccat-hpc") and SCHEMA_HEAD in message
    engine.dispose()


def test_known_revision_above_ours_is_newer(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "SCHEMA_HEAD", "0001")
    assert f"schema {migrate.head_revision()} is newer" in schema_error(engine)


def test_missing_sqlite_file_is_exit_6_and_stays_missing(run: InProcess, tmp_path: Path) -> None:
    path = tmp_path / "ops.sqlite"
    for args in (("status",), ("db", "current"), ("sites", "list"), ("db", "downgrade", "-1")):
        result = run(str(path), *args)
        assert result.returncode == 6, result.stderr
        assert one_line_error(result) == (
            f"error: no ops-db at {path} (to create it, run `ccat-hpc db upgrade`)"
        )
        assert not path.exists() and list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_the_sqlite_file(run: InProcess, tmp_path: Path) -> None:
    path = tmp_path / "ops.sqlite"
    assert run(str(path), "db", "upgrade").returncode == 0
    assert path.is_file()
    assert run(str(path), "db", "current").stdout.strip() == f"{SCHEMA_HEAD} (up to date)"


def create_file(url: str) -> None:
    """An existing ops-db without tables: on SQLite, a file must exist."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).touch()


def test_cli_schema_errors_are_one_line_exit_6(run: InProcess, empty_db_url: str) -> None:
    create_file(empty_db_url)
    result = run(empty_db_url, "status")
    assert result.returncode == 6
    assert one_line_error(result).endswith("has no schema: run `ccat-hpc db upgrade`")
    assert run(empty_db_url, "db", "upgrade", "0001").returncode == 0
    older = run(empty_db_url, "sites", "list")
    assert older.returncode == 6
    assert f"schema is at 0001, this ccat-hpc needs {SCHEMA_HEAD}" in one_line_error(older)
    assert run(empty_db_url, "db", "upgrade").returncode == 0
    set_revision(empty_db_url, "zz99")
    newer = run(empty_db_url, "status")
    assert newer.returncode == 6 and "newer than this ccat-hpc" in one_line_error(newer)
    current = run(empty_db_url, "db", "current")
    assert current.stdout.startswith("zz99 (newer than this ccat-hpc")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_locked_past_the_busy_timeout_is_one_line(
    run: InProcess, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "SQLITE_BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run(db_url, "status")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 6
    assert one_line_error(result).endswith("database is locked")


@pytest.mark.postgres
def test_postgres_connection_refused_is_one_line(run: InProcess) -> None:
    result = run("postgresql://ops:Secr3tZq@127.0.0.1:1/ops", "status")
    assert result.returncode == 6
    line = one_line_error(result)
    assert "cannot use ops-db at postgresql+psycopg://ops:***@127.0.0.1:1/ops" in line
    assert "Connection refused" in line and "Secr3tZq" not in result.stderr


def test_a_file_that_is_no_database_is_exit_6(run: InProcess, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    for args in (("status",), ("db", "upgrade"), ("db", "current")):
        result = run(str(path), *args)
        assert result.returncode == 6
        assert one_line_error(result).endswith("file is not a database")
    assert path.read_text() == "not a database\n" * 100


@pytest.mark.postgres
def test_a_bad_connection_option_is_exit_6(run: InProcess, pg_template: str) -> None:
    url = pg_template.rsplit("/", 1)[0] + "/postgres?no_such_option=1"
    result = run(url, "status")
    assert result.returncode == 6
    assert 'invalid connection option "no_such_option"' in one_line_error(result)
