"""The shared executor suite: the same job arrays on `local` and on the real Slurm cluster.

Tasks are real processes (`ccat-hpc job run …`) that read their work from ops-db and
record their outcomes there; the tracker records what they could not (kills, timeouts).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import xxhash
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import JobBatch, JobTask, RawDataFile, RawDataFilePhysicalCopy
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState, PhysicalCopyState, RawDataFileState
from ccat_hpc.executors.base import Executor, SubmittedArray, task_log_path
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.executors.slurm import SlurmExecutor
from ccat_hpc.jobs.batches import arrays_of, cancel_batch, create_and_submit, tasks_of
from ccat_hpc.jobs.tracking import BatchSummary, wait_for_batch
from ccat_hpc.pipeline.filing import file_manifest
from ccat_hpc.pipeline.manifest import read_manifest
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import REPO, _require

WAIT = 180
#: ISO 8601 UTC time at the start of the executors' lines in task logs
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
#: long enough that a task still runs when a test stops it, whatever the machine's speed:
#: the tests wait for the task to say it runs (ops-db RUNNING), never for a fixed time
FOREVER = 3600


def slurm_ready() -> None:
    problem = None
    if not os.environ.get("SLURM_CONF") or shutil.which("sbatch") is None:
        problem = "no Slurm cluster: start it with scripts/services.sh up"
    elif subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        problem = "the Slurm controller does not answer (scripts/services.sh up)"
    if problem is not None:
        if _require("slurm"):
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Executor:
    if request.param == "slurm":
        slurm_ready()
        return SlurmExecutor()
    return LocalExecutor(state_root=tmp_path / "local-jobs")


@pytest.fixture
def jobs_db(tmp_path: Path, sqlite_template: Path) -> tuple[str, sessionmaker[Session]]:
    path = tmp_path / "ops.sqlite"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    return url, make_session_factory(make_engine(url))


def submit(
    db: tuple[str, sessionmaker[Session]],
    executor: Executor,
    workdir: Path,
    kind: str = "noop",
    tasks: int = 1,
    parameters: dict[str, Any] | None = None,
    profile: SlurmProfile | None = None,
    throttle: int | None = None,
    depends_on: Sequence[SubmittedArray] = (),
    items: list[list[Any]] | None = None,
) -> tuple[int, list[SubmittedArray]]:
    url, factory = db
    return create_and_submit(
        factory,
        executor,
        kind,
        items or [[] for _ in range(tasks)],
        working_dir=workdir,
        environment={"CCAT_HPC_DB": url, "PYTHONPATH": str(REPO)},
        profile=profile or SlurmProfile(mem="200M"),
        parameters=parameters,
        throttle=throttle,
        depends_on=depends_on,
    )


def finish(
    db: tuple[str, sessionmaker[Session]], batch_id: int, executor: Executor
) -> BatchSummary:
    summary = wait_for_batch(db[1], batch_id, executor, poll_seconds=0.5, timeout=WAIT)
    assert summary.done, f"batch {batch_id} not done after {WAIT} s: {summary}"
    return summary


def tasks(db: tuple[str, sessionmaker[Session]], batch_id: int) -> list[JobTask]:
    with db[1]() as session:
        rows = tasks_of(session, batch_id)
        session.expunge_all()
        return rows


def test_tasks_record_their_outcomes(
    executor: Executor, jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    parameters = {"fail_tasks": [1], "crash_tasks": [2], "exit_code": 3}
    batch_id, _ = submit(jobs_db, executor, tmp_path / "jobs", tasks=4, parameters=parameters)
    summary = finish(jobs_db, batch_id, executor)
    assert summary.state == JobBatchState.DONE
    rows = tasks(jobs_db, batch_id)
    assert [t.state for t in rows] == [
        JobTaskState.SUCCEEDED,
        JobTaskState.FAILED,
        JobTaskState.FAILED,
        JobTaskState.SUCCEEDED,
    ]
    assert rows[1].reason == "task 1 was asked to fail" and rows[1].exit_code == 1
    assert rows[1].retryable is False
    # task 2 died without a word: the tracker recorded the executor's verdict
    assert rows[2].executor_state == "FAILED" and rows[2].exit_code == 3
    assert "without recording an outcome" in (rows[2].reason or "")
    assert all(t.external_id and t.attempts == 1 and t.host for t in rows)
    assert len({t.external_id for t in rows}) == 4


def test_throttle_runs_one_task_at_a_time(
    executor: Executor, jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    batch_id, _ = submit(
        jobs_db, executor, tmp_path / "jobs", "sleep", 3, {"seconds": 1}, throttle=1
    )
    finish(jobs_db, batch_id, executor)
    rows = sorted(tasks(jobs_db, batch_id), key=lambda t: t.started_at or 0)
    assert all(t.state == JobTaskState.SUCCEEDED for t in rows)
    for earlier, later in itertools.pairwise(rows):
        assert earlier.finished_at is not None and later.started_at is not None
        assert later.started_at >= earlier.finished_at


def test_dependencies_wait_for_success_and_never_run_after_failure(
    executor: Executor, jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    workdir = tmp_path / "jobs"
    first, first_arrays = submit(jobs_db, executor, workdir, "sleep", 1, {"seconds": 1})
    after, _ = submit(jobs_db, executor, workdir, depends_on=first_arrays)
    failing, failing_arrays = submit(jobs_db, executor, workdir, parameters={"fail_tasks": [0]})
    never, _ = submit(jobs_db, executor, workdir, tasks=2, depends_on=failing_arrays)
    for batch_id in (first, after, failing, never):
        finish(jobs_db, batch_id, executor)
    [done_first], [done_after] = tasks(jobs_db, first), tasks(jobs_db, after)
    assert done_after.state == JobTaskState.SUCCEEDED
    assert done_after.started_at is not None and done_first.finished_at is not None
    assert done_after.started_at >= done_first.finished_at
    assert [t.state for t in tasks(jobs_db, never)] == [JobTaskState.CANCELLED] * 2
    assert all(t.attempts == 0 for t in tasks(jobs_db, never))


def wait_for_running(db: tuple[str, sessionmaker[Session]], batch_id: int) -> None:
    """Until a task has recorded that it runs (it does so before its work begins)."""
    deadline = time.monotonic() + 60
    while not any(t.state == JobTaskState.RUNNING for t in tasks(db, batch_id)):
        assert time.monotonic() < deadline, "no task started"
        time.sleep(0.2)


def test_cancelled_tasks_are_recorded(
    executor: Executor, jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    batch_id, _ = submit(jobs_db, executor, tmp_path / "jobs", "sleep", 2, {"seconds": FOREVER})
    wait_for_running(jobs_db, batch_id)
    assert cancel_batch(jobs_db[1], batch_id, executor) == JobBatchState.CANCELLED
    assert finish(jobs_db, batch_id, executor).state == JobBatchState.CANCELLED
    rows = tasks(jobs_db, batch_id)
    assert {t.state for t in rows} == {JobTaskState.CANCELLED}
    assert all(t.reason and "CANCELLED" in t.reason for t in rows)


def test_task_logs_are_found_from_ops_db_and_start_with_a_timestamped_line(
    executor: Executor, jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    workdir = tmp_path / "job logs of it's $HOME"  # sbatch and the shell see it unharmed
    batch_id, _ = submit(jobs_db, executor, workdir, tasks=2, parameters={"fail_tasks": [1]})
    finish(jobs_db, batch_id, executor)
    with jobs_db[1]() as session:
        batch = session.get(JobBatch, batch_id)
        assert batch is not None
        found = {
            t.task_index: (
                task_log_path(
                    batch.working_dir, batch.kind, batch.id, arrays_of(batch), t.task_index
                ),
                t.external_id,
            )
            for t in batch.tasks
        }
    assert [t.state for t in tasks(jobs_db, batch_id)] == [
        JobTaskState.SUCCEEDED,
        JobTaskState.FAILED,
    ]
    for path, external_id in found.values():
        assert path is not None and path.parent == workdir
        first = path.read_text().splitlines()[0]
        assert re.fullmatch(rf"{STAMP} ccat-hpc: task {external_id} started on \S+", first)


def test_a_task_past_its_time_limit_is_recorded_as_timeout(
    executor: Executor, jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    # Slurm counts whole minutes (and checks every ~30 s); the local executor seconds
    limit = "1" if executor.name == "slurm" else "0:02"
    profile = SlurmProfile(mem="200M", time=limit)
    batch_id, _ = submit(
        jobs_db, executor, tmp_path / "jobs", "sleep", 1, {"seconds": 600}, profile=profile
    )
    finish(jobs_db, batch_id, executor)
    [row] = tasks(jobs_db, batch_id)
    assert row.state == JobTaskState.FAILED and row.executor_state == "TIMEOUT"
    assert row.retryable is True and "TIMEOUT" in (row.reason or "")


@pytest.mark.slurm
def test_arrays_larger_than_max_array_size_are_split(
    jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    slurm_ready()
    executor = SlurmExecutor(max_array_size=3)
    batch_id, arrays = submit(jobs_db, executor, tmp_path / "jobs", tasks=7)
    assert [(a.first_task, a.task_count) for a in arrays] == [(0, 3), (3, 3), (6, 1)]
    finish(jobs_db, batch_id, executor)
    rows = tasks(jobs_db, batch_id)
    assert all(t.state == JobTaskState.SUCCEEDED for t in rows)
    job_of = {a.job_id: a for a in arrays}
    for row in rows:
        job_id, array_index = (row.external_id or "").split("_")
        assert job_of[job_id].first_task + int(array_index) == row.task_index


@pytest.mark.slurm
def test_two_mpi_ranks_through_srun_report_into_ops_db(
    jobs_db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    slurm_ready()
    executor = SlurmExecutor()
    profile = SlurmProfile(ntasks=2, mem="500M")
    batch_id, _ = submit(jobs_db, executor, tmp_path / "jobs", "mpi", 1, profile=profile)
    finish(jobs_db, batch_id, executor)
    [row] = tasks(jobs_db, batch_id)
    assert row.state == JobTaskState.SUCCEEDED, row.reason
    assert row.result is not None and row.result["ranks"] == 2
    assert (tmp_path / "jobs" / f"mpi-{batch_id}-0.sbatch").read_text().count("srun --mpi=pmix")


@pytest.mark.slurm
def test_packaging_engine_under_srun_writes_the_same_bytes(tmp_path: Path) -> None:
    slurm_ready()
    from ccat_hpc.engine.build import build_package
    from ccat_hpc.engine.sources import specs_from_folders
    from tests.integration.test_engine import make_tree

    src = make_tree(tmp_path)
    serial = build_package(specs_from_folders([src]), tmp_path / "serial.tar")
    out = tmp_path / "srun.tar"
    command = ["srun", "--mpi=pmix", "-n", "2", "--mem=500M", sys.executable, "-m", "ccat_hpc"]
    finished = subprocess.run(
        [*command, "package", "build", str(src), "-o", str(out), "--buffer-size", "65536"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=REPO,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split()[0] == serial.xxh3_128
    assert out.read_bytes() == (tmp_path / "serial.tar").read_bytes()


SPEC = SyntheticObservation(
    "PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 6, 3000
)


def test_checksum_job_array_end_to_end(
    executor: Executor,
    db_url: str,
    loaded_factory: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
) -> None:
    with_sums = write_observation(SPEC, data_root / SPEC.location)
    plain = dataclasses.replace(SPEC, with_checksums=False, file_count=3)
    without_sums = write_observation(plain, data_root / SPEC.location)
    for manifest in (with_sums, without_sums):
        with transaction(loaded_factory) as session:
            file_manifest(session, *read_manifest(drop_manifest(manifest, tmp_path / "inbox")))
    root = data_root / SPEC.location
    corrupt, missing = with_sums["files"][0]["path"], with_sums["files"][1]["path"]
    data = bytearray((root / corrupt).read_bytes())
    data[7] ^= 0xFF  # same size, other bytes
    (root / corrupt).write_bytes(bytes(data))
    (root / missing).unlink()

    command = [sys.executable, "-m", "ccat_hpc", "--db", db_url, "checksum", "--wait"]
    env = dict(
        os.environ,
        CCAT_HPC_EXECUTOR=executor.name,
        CCAT_HPC_JOBS_DIR=str(tmp_path / "jobs"),
        CCAT_HPC_LOCAL_JOBS=str(tmp_path / "local-jobs"),
        PYTHONPATH=str(REPO),
    )
    finished = subprocess.run(
        [*command, "--bytes-per-task", "7000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        cwd=tmp_path,
    )
    assert finished.returncode == 1, finished.stdout + finished.stderr  # a file is corrupt
    assert "9 file(s) in 5 task(s)" in finished.stdout  # 2 files of 3,000 bytes per task
    assert "files: 7 checksummed, 1 corrupt, 1 missing" in finished.stdout
    with loaded_factory() as session:
        files = {f.relative_path: f for f in session.scalars(select(RawDataFile))}
        copies = {c.raw_data_file_id: c for c in session.scalars(select(RawDataFilePhysicalCopy))}
        assert files[corrupt].state == RawDataFileState.CORRUPT
        assert "the manifest says" in (files[corrupt].failure_reason or "")
        assert copies[files[corrupt].id].state == PhysicalCopyState.CORRUPT
        assert files[missing].state == RawDataFileState.MISSING
        assert copies[files[missing].id].state == PhysicalCopyState.MISSING
        for entry in without_sums["files"]:
            row = files[entry["path"]]
            assert row.state == RawDataFileState.CHECKSUMMED
            assert row.checksum == xxhash.xxh3_128_hexdigest((root / entry["path"]).read_bytes())
            assert copies[row.id].state == PhysicalCopyState.VERIFIED
        batch = session.scalars(select(JobBatch)).one()
        assert batch.state == JobBatchState.DONE and batch.executor == executor.name
    again = subprocess.run([*command], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to checksum" in again.stdout
