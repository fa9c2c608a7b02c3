"""`ccat-hpc job run` imports what its kind needs, and records exactly what it recorded.

An array task pays Python's start-up for every task, so a task whose handler needs no
ORM (noop, sleep, mpi) records its start and end through the driver alone
(ccat_hpc.jobs.direct_db, ccat_hpc.jobs.task_rows). These tests guard the import
budget (a module list, not a timing), that the direct path writes the rows the ORM
path writes on both backends, and that everything the direct path copies from
SQLAlchemy's set-up (SQLite pragmas, psycopg parameters, MPI launcher variables)
still agrees with it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.config import parse_db_url
from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import make_engine, sqlalchemy_url, transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.db.transitions import move
from ccat_hpc.engine import mpi
from ccat_hpc.jobs.batches import create_batch
from ccat_hpc.jobs.direct_db import SQLITE_PRAGMAS, open_direct, postgres_params
from ccat_hpc.jobs.kinds import job_kinds
from ccat_hpc.jobs.ranks import LAUNCHER_VARIABLES
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.jobs.task_rows import JSON_COLUMNS, TIME_COLUMNS, WRITABLE, TaskStore
from ccat_hpc.pipeline.tasks import LazySessions
from ccat_hpc.sites.schema import SlurmProfile
from tests.conftest import _require

#: what a noop task must not load: the ORM and the models, SQLAlchemy at all, MPI
NOT_FOR_NOOP = ("sqlalchemy", "sqlalchemy.orm", "ccat_hpc.db.models", "ccat_hpc.engine.mpi")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")
HANDLERS = {name: kind.handler for name, kind in job_kinds().items()}


def submitted_batch(
    factory: sessionmaker[Session], kind: str, tasks: int, parameters: dict[str, Any]
) -> int:
    """A batch as the executor has just been given it (SUBMITTED, its tasks PENDING)."""
    with transaction(factory) as session:
        batch = create_batch(
            session,
            kind,
            [[] for _ in range(tasks)],
            executor="local",
            profile=SlurmProfile(),
            working_dir=Path("/tmp"),
            parameters=parameters,
        )
        move(session, JobBatch, [batch.id], JobBatchState.PENDING, JobBatchState.SUBMITTED)
        return batch.id


def task_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    return env | {"CCAT_HPC_DB": db_url}


def imported_modules(stderr: str) -> set[str]:
    return {m.group(1) for line in stderr.splitlines() if (m := IMPORT_LINE.match(line))}


def test_a_noop_task_imports_neither_sqlalchemy_nor_the_models_nor_mpi(
    db_url: str, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    batch_id = submitted_batch(factory, "noop", 1, {})
    command = [sys.executable, "-X", "importtime", "-m", "ccat_hpc", "job", "run", "noop"]
    done = subprocess.run(
        [*command, "--batch", str(batch_id), "--task", "0"],
        capture_output=True,
        text=True,
        env=task_env(db_url),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = imported_modules(done.stderr)
    assert "ccat_hpc.jobs.runner" in modules  # the list is read right
    assert not set(NOT_FOR_NOOP) & modules
    with transaction(factory) as session:
        task = session.query(JobTask).filter_by(batch_id=batch_id).one()
        assert (task.state, task.attempts, task.result) == (JobTaskState.SUCCEEDED, 1, {"items": 0})
        batch = session.get(JobBatch, batch_id)
        assert batch is not None and batch.state == JobBatchState.RUNNING


def raw_rows(engine: Engine, batch_id: int) -> list[tuple[Any, ...]]:
    """The task rows as stored (JSON and timestamps as the database holds them)."""
    if engine.dialect.name == "sqlite":
        stored = "typeof(t.result), t.result, typeof(t.started_at), length(t.finished_at)"
    else:
        stored = "jsonb_typeof(t.result), t.result::text, pg_typeof(t.started_at)::text, 0"
    sql = (
        "SELECT t.task_index, t.state, t.attempts, t.host, t.external_id, t.exit_code,"
        f" t.reason, t.retryable, {stored}, t.finished_at >= t.started_at, b.state"
        " FROM job_task t JOIN job_batch b ON b.id = t.batch_id"
        " WHERE t.batch_id = :b ORDER BY t.task_index"
    )
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), {"b": batch_id})]


def test_the_direct_path_writes_the_rows_the_orm_path_writes(
    db_url: str, engine: Engine, factory: sessionmaker[Session]
) -> None:
    parameters = {"fail_tasks": [1]}
    through_orm = submitted_batch(factory, "noop", 3, parameters)
    direct_batch = submitted_batch(factory, "noop", 3, parameters)
    made: list[bool] = []

    def make_sessions() -> sessionmaker[Session]:
        made.append(True)
        return factory

    direct = open_direct(parse_db_url(db_url))
    assert direct is not None
    store = TaskStore(LazySessions(make_sessions), direct)
    for index in range(3):
        code = 1 if index == 1 else 0
        assert run_task(factory, "noop", through_orm, index, HANDLERS, {}) == code
        assert run_task(store, "noop", direct_batch, index, HANDLERS, {}) == code
    store.close()
    assert made == []  # a noop task never needed the ORM
    assert raw_rows(engine, direct_batch) == raw_rows(engine, through_orm)
    with transaction(factory) as session:  # and the ORM reads them back alike
        for index in range(3):
            rows = session.query(JobTask).filter_by(task_index=index)
            a, b = (rows.filter_by(batch_id=batch).one() for batch in (through_orm, direct_batch))
            assert (a.result, a.retryable, a.reason) == (b.result, b.retryable, b.reason)
            assert b.started_at is not None and b.started_at.tzinfo is not None


def test_a_task_that_ran_is_not_run_again_through_the_direct_path(
    db_url: str, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    batch_id = submitted_batch(factory, "noop", 1, {})
    command = [sys.executable, "-m", "ccat_hpc", "job", "run", "noop", "--batch", str(batch_id)]
    env = task_env(db_url)
    first = subprocess.run([*command, "--task", "0"], capture_output=True, text=True, env=env)
    again = subprocess.run([*command, "--task", "0"], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 1 and "is already succeeded: nothing to run" in again.stderr


def ccat(db: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccat_hpc", *args],
        capture_output=True,
        text=True,
        env=task_env(db),
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize("damage", ["missing file", "old schema", "tables dropped"])
def test_an_ops_db_the_direct_path_cannot_use_gives_the_error_every_command_gives(
    damage: str, sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ops.sqlite"
    if damage != "missing file":
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            if damage == "old schema":
                connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
            else:
                connection.execute(text("DROP TABLE job_task"))
                connection.execute(text("DROP TABLE job_batch"))
        engine.dispose()
    run = ccat(str(path), tmp_path, "job", "run", "noop", "--batch", "1", "--task", "0")
    status = ccat(str(path), tmp_path, "job", "status", "1")
    assert run.returncode == status.returncode != 0
    assert run.stderr == status.stderr
    assert run.stderr.startswith("error: ") and len(run.stderr.splitlines()) == 1


def test_sqlite_connections_are_set_up_as_the_engine_sets_them_up(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ops.sqlite"
    shutil.copy(sqlite_template, path)
    names = [re.sub(r"PRAGMA (\w+) = .*", r"\1", pragma) for pragma in SQLITE_PRAGMAS]
    engine = make_engine(f"sqlite:///{path}", create=False)
    with engine.connect() as connection:
        expected = [connection.exec_driver_sql(f"PRAGMA {n}").scalar() for n in names]
        begin = connection.exec_driver_sql("SELECT 1")  # the engine begins IMMEDIATE
        begin.close()
    engine.dispose()
    direct = open_direct(parse_db_url(str(path)))
    assert direct is not None
    assert [direct.execute(f"PRAGMA {n}")[0][0] for n in names] == expected
    assert set(names) == {"busy_timeout", "journal_mode", "foreign_keys", "synchronous"}
    direct.close()


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("postgresql://ccat:s3cret@db.example:5433/ops", True),
        ("postgresql://ccat@db.example/ops?sslmode=require&connect_timeout=5", True),
        ("postgresql:///ops?host=/run/postgresql", True),
        ("postgresql://u:p@h1,h2/ops?target_session_attrs=read-write", True),
        ("postgresql://h/ops?host=h1:5432", False),  # SQLAlchemy splits it: left to it
        ("postgresql://h/ops?host=a&host=b", False),
    ],
)
def test_psycopg_gets_the_parameters_sqlalchemy_gives_it(url: str, direct: bool) -> None:
    db = parse_db_url(url)
    params = postgres_params(db)
    assert (params is not None) == direct
    if params is not None:
        engine = make_engine(sqlalchemy_url(db, create=False))
        _, expected = engine.dialect.create_connect_args(engine.url)
        engine.dispose()
        expected.pop("context", None)
        assert params == expected


def test_the_columns_written_directly_are_the_models() -> None:
    columns = JobTask.__table__.columns
    for name in WRITABLE["job_task"]:
        assert name in columns
    for name in JSON_COLUMNS:
        table = JobTask.__table__ if name in JobTask.__table__.columns else JobBatch.__table__
        assert table.columns[name].type.__class__.__name__ == "JSON"
    for name in TIME_COLUMNS:
        assert columns[name].type.__class__.__name__ == "UTCDateTime"


def test_a_task_asks_mpi_under_the_launchers_the_engine_knows() -> None:
    assert set(LAUNCHER_VARIABLES) == set(mpi._LAUNCHER_VARIABLES)
    for name in LAUNCHER_VARIABLES:
        assert mpi.launched_ranks({name: "1"}) is not None


@pytest.mark.mpi
def test_under_two_mpi_ranks_a_single_rank_kind_runs_once(
    db_url: str, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    launcher = shutil.which("mpiexec")
    if launcher is None or importlib.util.find_spec("mpi4py") is None:
        if _require("mpi"):
            pytest.fail("mpiexec or mpi4py is missing")
        pytest.skip("mpiexec or mpi4py is missing")
    batch_id = submitted_batch(factory, "noop", 1, {})
    env = task_env(db_url) | {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    args = ["job", "run", "noop", "--batch", str(batch_id), "--task", "0"]
    done = subprocess.run(
        [launcher, "--oversubscribe", "-n", "2", sys.executable, "-m", "ccat_hpc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("succeeded") == 1  # rank 1 did nothing, quietly
    with transaction(factory) as session:
        task = session.query(JobTask).filter_by(batch_id=batch_id).one()
        assert (task.state, task.attempts) == (JobTaskState.SUCCEEDED, 1)
