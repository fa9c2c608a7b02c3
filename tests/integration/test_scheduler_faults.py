"""Faults under the scheduler loop: each ends with everything archived exactly once,
nothing lost, and the failure visible in ops-db with its reason."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.cli.main import cli
from ccat_hpc.db.models import (
    CircuitBreaker,
    DataLocation,
    DataTransferPackage,
    DiskDataLocation,
    JobBatch,
    JobTask,
    PhysicalCopy,
    RawDataFile,
    RawDataFileCheck,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    SystemLog,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import (
    BreakerState,
    LocationType,
    PackageState,
    PhysicalCopyState,
    RawDataFileState,
    StorageType,
)
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.executors.slurm import SlurmExecutor
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.scheduler.breakers import BreakerPolicy
from ccat_hpc.scheduler.loop import describe, one_pass
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.step_status import queue_counts, step_counts
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import REPO
from tests.integration.test_executors import slurm_ready
from tests.integration.test_package_step import backoff_passed, observe
from tests.integration.test_transfer_archive import (
    assert_archived_exactly,
    set_method,
    start_s3_server,
    stop_s3_server,
)

#: every fault here runs on PostgreSQL, as the data center does
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]
B = BreakerState
FAST_BREAKER = BreakerPolicy(failures=2, window_seconds=600, cooldown_seconds=2)


def task_setup(db_url: str, tmp_path: Path) -> JobSetup:
    executor = LocalExecutor(state_root=tmp_path / "local-jobs")
    environment = {
        **os.environ,
        "CCAT_HPC_DB": db_url,
        "PYTHONPATH": str(REPO),
        "CCAT_S3_MAX_ATTEMPTS": "1",  # an S3 outage fails an upload at once
    }
    return JobSetup(executor, environment, tmp_path / "jobs", SlurmProfile())


def passes_until(
    factory: sessionmaker[Session],
    setup: JobSetup,
    done: Callable[[], bool],
    *,
    policy: BreakerPolicy = FAST_BREAKER,
    limit: int = 60,
) -> list[str]:
    """Scheduler passes (backoffs skipped) until ``done``; the lines they logged."""
    log: list[str] = []
    for _ in range(limit):
        report = one_pass(factory, lambda _step: setup, policy=policy)
        log += describe(report, dry_run=False)
        if done():
            return log
        backoff_passed(factory)
        threading.Event().wait(0.3)
    pytest.fail(f"not done after {limit} passes: {log[-8:]}")


def two_observations(factory: sessionmaker[Session], data_root: Path, tmp_path: Path) -> list[Path]:
    """The copy method on every route, and two observations filed (5 files)."""
    set_method(factory, "copy")
    sources = observe(factory, data_root, tmp_path, "280GHz", files=3)
    return sources + observe(factory, data_root, tmp_path, "350GHz", files=2)


def breaker_state(factory: sessionmaker[Session], name: str) -> BreakerState:
    with factory() as session:
        found = session.scalar(select(CircuitBreaker.state).where(CircuitBreaker.name == name))
    return found or B.CLOSED


def file_states(factory: sessionmaker[Session]) -> dict[str, set[RawDataFileState]]:
    with factory() as session:
        rows = session.execute(select(RawDataFile.relative_path, RawDataFile.state)).all()
    found: dict[str, set[RawDataFileState]] = {}
    for path, state in rows:
        found.setdefault(path.split("/")[0], set()).add(state)
    return found


def count(factory: sessionmaker[Session], query: object) -> int:
    with factory() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def all_archived(factory: sessionmaker[Session]) -> Callable[[], bool]:
    def check() -> bool:
        with factory() as session:
            return set(session.scalars(select(RawDataFile.state))) == {RawDataFileState.ARCHIVED}

    return check


@pytest.mark.exclusive  # stops a shared service: run alone
@pytest.mark.s3
@pytest.mark.parametrize("archive_kind", ["s3"], indirect=True)
def test_s3_down_opens_the_archive_breaker_chile_keeps_going_and_work_resumes(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
    archive_kind: str,
) -> None:
    set_method(sites, "copy")
    setup = task_setup(db_url, tmp_path)
    first = observe(sites, data_root, tmp_path, "280GHz", files=2)
    stop_s3_server()
    try:
        passes_until(sites, setup, lambda: breaker_state(sites, "cologne-archive") is B.OPEN)
        last_before = count(sites, select(func.max(JobBatch.id)))
        # Chile keeps filing, checksumming, packaging, bundling and sending meanwhile
        second = observe(sites, data_root, tmp_path, "350GHz", files=2)

        def second_arrived() -> bool:
            with sites() as session:
                files = set(session.scalars(select(RawDataFile.state)))
                dtps = list(session.scalars(select(DataTransferPackage.state)))
            packaged = files == {RawDataFileState.PACKAGED}
            return packaged and len(dtps) == 2 and set(dtps) == {PackageState.TRANSFERRED}

        log = passes_until(sites, setup, second_arrived)
        # while open nothing went to the archive but one probe item per cool-down
        with sites() as session:
            probes = session.scalars(
                select(JobBatch).where(JobBatch.kind == "archive", JobBatch.id > last_before)
            ).all()
            assert [sum(len(t.items) for t in batch.tasks) for batch in probes] == [1] * len(probes)
        assert any(
            line.startswith("held back: archive: open breaker: location cologne-archive")
            for line in log
        ), log
        # nothing is marked lost: every file waits PACKAGED, no package failed
        assert {s for states in file_states(sites).values() for s in states} == {
            RawDataFileState.PACKAGED
        }
        lost = select(func.count()).where(
            PhysicalCopy.state.in_((PhysicalCopyState.MISSING, PhysicalCopyState.CORRUPT))
        )
        assert count(sites, lost) == 0
        shown = CliRunner().invoke(cli, ["--db", db_url, "status", "--json"])
        (opened,) = json.loads(shown.output)["open_breakers"]
        assert (opened["name"], opened["state"]) == ("cologne-archive", "open")
        assert opened["reason"]
    finally:
        start_s3_server()
    passes_until(sites, setup, all_archived(sites))
    assert_archived_exactly(sites, first + second, data_root)
    assert breaker_state(sites, "cologne-archive") is B.CLOSED
    with sites() as session:
        history = list(
            session.scalars(
                select(SystemLog.message)
                .where(SystemLog.source == "breaker")
                .order_by(SystemLog.id)
            )
        )
    changes = [m.split(" breaker")[0] for m in history]
    probes_failed = (len(changes) - 3) // 2
    assert changes == ["open", *(["half-open", "open"] * probes_failed), "half-open", "close"]
    assert all("the probe failed" in m for m in history[2:-2:2]), history


def test_a_full_buffer_sends_new_packages_to_the_next_buffer_and_warns(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    set_method(sites, "copy")
    (data_root / "chile-buffer-02").mkdir()
    with transaction(sites) as session:
        first_buffer = session.scalars(
            select(DataLocation).where(DataLocation.name == "chile-buffer-01")
        ).one()
        first_buffer.capacity_bytes = 10_000  # one observation of 2 × 4000 bytes fills it
        session.add(
            DiskDataLocation(
                name="chile-buffer-02",
                location_type=LocationType.BUFFER,
                storage_type=StorageType.DISK,
                site_id=first_buffer.site_id,
                priority=first_buffer.priority + 1,
                path=str(data_root / "chile-buffer-02"),
            )
        )
    setup = task_setup(db_url, tmp_path)
    first = observe(sites, data_root, tmp_path, "280GHz", files=2, size=4000)
    passes_until(sites, setup, all_archived(sites))
    second = observe(sites, data_root, tmp_path, "350GHz", files=2, size=4000)
    log = passes_until(sites, setup, all_archived(sites))
    assert_archived_exactly(sites, first + second, data_root)
    with sites() as session:
        where = dict(
            session.execute(
                select(RawDataPackage.name, DataLocation.name)
                .join(
                    RawDataPackagePhysicalCopy,
                    RawDataPackagePhysicalCopy.raw_data_package_id == RawDataPackage.id,
                )
                .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
                .where(DataLocation.location_type == LocationType.BUFFER)
            ).all()
        )
    assert sorted(where.values()) == ["chile-buffer-01", "chile-buffer-02"], where
    assert any(
        line.startswith("warning: buffer chile-buffer-01 at site chile is")
        and line.endswith("new data goes to chile-buffer-02")
        for line in log
    ), log


def set_capacity(factory: sessionmaker[Session], location: str, capacity: int) -> None:
    with transaction(factory) as session:
        session.execute(
            update(DataLocation)
            .where(DataLocation.name == location)
            .values(capacity_bytes=capacity)
        )


def test_with_every_buffer_full_packages_wait_without_using_up_their_tries(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    set_method(sites, "copy")
    set_capacity(sites, "chile-buffer-01", 10_000)  # one observation fills it
    setup = task_setup(db_url, tmp_path)
    first = observe(sites, data_root, tmp_path, "280GHz", files=2, size=4000)
    passes_until(sites, setup, all_archived(sites))
    second = observe(sites, data_root, tmp_path, "350GHz", files=2, size=4000)

    def postponed() -> list[RawDataPackage]:
        with sites() as session:
            return list(
                session.scalars(
                    select(RawDataPackage).where(
                        RawDataPackage.state == PackageState.PLANNED,
                        RawDataPackage.failure_reason.is_not(None),
                    )
                )
            )

    package_batches = select(func.count()).where(JobBatch.kind == "package")
    # more claims of the waiting package than its step's limit of tries (5)
    log = passes_until(
        sites, setup, lambda: bool(postponed()) and count(sites, package_batches) > 7
    )
    (waiting,) = postponed()
    assert (waiting.attempts, waiting.failure_retryable) == (0, True)
    assert "no active BUFFER with room at site chile" in (waiting.failure_reason or "")
    assert any("site chile: every buffer is full" in line for line in log), log
    with sites() as session:  # the queue depths a pass writes: the status' counts
        full, queue = step_counts(session), queue_counts(session)
    for step, numbers in queue.items():
        for name in ("waiting", "running", "retrying", "operator"):
            assert numbers[name] == full[step][name], (step, name)
    assert queue["package"]["retrying"] == 1
    set_capacity(sites, "chile-buffer-01", 10**9)  # cleanup (or an operator) made room
    passes_until(sites, setup, all_archived(sites))
    assert_archived_exactly(sites, first + second, data_root)


def passes_until_idle(
    factory: sessionmaker[Session], setup: JobSetup, limit: int = 60
) -> list[str]:
    """Scheduler passes (backoffs skipped) until one finds nothing to do."""
    log: list[str] = []
    for _ in range(limit):
        report = one_pass(factory, lambda _step: setup, policy=FAST_BREAKER)
        log += describe(report, dry_run=False)
        if report.plan.empty:
            return log
        backoff_passed(factory)
        threading.Event().wait(0.3)
    pytest.fail(f"still busy after {limit} passes: {log[-8:]}")


def test_a_source_file_deleted_after_filing_needs_an_operator_and_the_rest_is_archived(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    set_method(sites, "copy")
    setup = task_setup(db_url, tmp_path)
    broken = observe(sites, data_root, tmp_path, "280GHz", files=2)
    intact = observe(sites, data_root, tmp_path, "350GHz", files=2)
    broken[0].unlink()
    log = passes_until_idle(sites, setup)
    with sites() as session:
        rows = {f.relative_path: (f.state, f.id) for f in session.scalars(select(RawDataFile))}
        gone = next(
            (state, file_id)
            for path, (state, file_id) in rows.items()
            if broken[0].as_posix().endswith(path)
        )
        checks = session.scalars(
            select(RawDataFileCheck).where(RawDataFileCheck.raw_data_file_id == gone[1])
        ).all()
    assert gone[0] is RawDataFileState.MISSING
    assert len(checks) == 1 and "no such file" in (checks[0].reason or "").lower(), checks
    others = {state for state, file_id in rows.values() if file_id != gone[1]}
    assert others == {RawDataFileState.ARCHIVED} and len(rows) == len(intact + broken)
    assert sum("submit checksum" in line for line in log) == 1  # no blind retries
    shown = CliRunner().invoke(cli, ["--db", db_url, "status"])
    assert "missing" in shown.output


def ccat_hpc_process(db_url: str, tmp_path: Path, *arguments: str) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).with_name("ccat-hpc")), "--db", db_url, *arguments]
    environment = dict(
        os.environ, PYTHONPATH=str(REPO), CCAT_HPC_LOCAL_JOBS=str(tmp_path / "local-jobs")
    )
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )


def scheduler_process(db_url: str, tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    run = ["scheduler", "run", "--executor", "local", "--workdir", str(tmp_path / "jobs")]
    return ccat_hpc_process(db_url, tmp_path, *run, *options)


def test_a_scheduler_killed_mid_pass_is_started_again_and_finishes_exactly_once(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    """Manifests dropped into the watched folder; the watcher and the scheduler run as
    processes, nothing else by hand; the scheduler is killed and started again."""
    set_method(sites, "copy")
    inbox, sources = tmp_path / "inbox", []
    for module, files in (("280GHz", 3), ("350GHz", 2)):
        spec = SyntheticObservation(
            "PrimeCam", module, "ECDFS-deep-001", "chile-source-primecam", files, 3000
        )
        manifest = write_observation(spec, data_root / spec.location)
        drop_manifest(manifest, inbox, module)
        sources += [data_root / spec.location / entry["path"] for entry in manifest["files"]]
    watcher = ccat_hpc_process(db_url, tmp_path, "watch", str(inbox), "--interval", "0.2")
    try:
        wait_until(lambda: len(list((inbox / "filed").glob("*.json"))) == 2, 60, "filed")
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.communicate(timeout=60)
    first = scheduler_process(db_url, tmp_path, "--interval", "0.2")
    assert first.stdout is not None
    try:
        for line in first.stdout:  # killed right after it submitted its first batch
            if "did: submit" in line:
                break
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    again = scheduler_process(db_url, tmp_path, "--interval", "0.3", "--until-idle")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert_archived_exactly(sites, sources, data_root)
    with sites() as session:  # no item in two batches of one step
        for kind in ("checksum", "package", "bundle", "transfer", "archive"):
            items = [
                item
                for task in session.scalars(
                    select(JobTask).join(JobBatch).where(JobBatch.kind == kind)
                )
                if task.state.value == "succeeded"
                for item in task.items
            ]
            assert sorted(items) == sorted(set(items)), kind


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OperationalError:  # ops-db restarting
            pass
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout} s")


@pytest.mark.exclusive  # stops a shared service: run alone
def test_postgresql_restarted_mid_run_the_scheduler_goes_on(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    sources = two_observations(sites, data_root, tmp_path)
    scheduler = scheduler_process(db_url, tmp_path, "--interval", "0.3")
    assert scheduler.stdout is not None
    try:
        for line in scheduler.stdout:  # the first batch is out: ops-db goes away
            if "did: submit" in line:
                break
        subprocess.run(
            [str(REPO / "scripts/services.sh"), "restart-postgres"], check=True, timeout=120
        )
        wait_until(all_archived(sites), 240, "everything archived after the restart")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        output, _ = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, output
    assert_archived_exactly(sites, sources, data_root)
    assert "ops-db unavailable" in output, output[-3000:]


def set_node(state: str) -> None:
    """The node DOWN (its jobs fail: NODE_FAIL), or back (a node that registers again may
    already have returned to service by itself: that is no error)."""
    reason = ["reason=fault test"] if state == "down" else []
    subprocess.run(
        ["scontrol", "update", "nodename=localhost", f"state={state}", *reason],
        check=state == "down",
        capture_output=True,
    )


@pytest.mark.exclusive  # stops a shared service: run alone
@pytest.mark.slurm
def test_a_node_going_down_under_a_task_requeues_it_and_the_work_finishes(
    sites: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    slurm_ready()
    set_method(sites, "copy")
    sources = observe(sites, data_root, tmp_path, "280GHz", files=3, size=300_000_000)
    setup = dataclasses.replace(task_setup(db_url, tmp_path), executor=SlurmExecutor())
    package_task = select(JobTask).join(JobBatch).where(JobBatch.kind == "package")

    def package_running() -> bool:
        with sites() as session:
            task = session.scalars(package_task).first()
        return task is not None and task.state.value == "running"

    for _ in range(60):  # passes until the package task runs, then its node goes down
        one_pass(sites, lambda _step: setup, policy=FAST_BREAKER)
        with sites() as session:
            submitted = session.scalars(package_task).first() is not None
        if submitted:
            wait_until(package_running, 120, "the package task running", every=0.05)
            break
        threading.Event().wait(0.5)
    # the node hangs under the task (it cannot finish first, however fast the disk), then
    # goes down: Slurm kills the job (NODE_FAIL) and requeues it
    subprocess.run(["pkill", "-STOP", "-f", "job run package --batch"], check=True)
    set_node("down")
    try:
        threading.Event().wait(2)
    finally:
        set_node("resume")
    passes_until(sites, setup, all_archived(sites), limit=600)
    assert_archived_exactly(sites, sources, data_root)
    with sites() as session:
        tasks = session.scalars(package_task.order_by(JobTask.id)).all()
        seen = [(t.id, t.state.value, t.attempts, t.reason, t.external_id) for t in tasks]
    # the task under the node: Slurm ran it again (requeue), or the tracker gave its
    # package back for a new batch; either way it was retried, with the reason kept
    first = tasks[0]
    assert first.attempts >= 2 or "NODE_FAIL" in (first.reason or ""), seen
    assert tasks[-1].state.value == "succeeded", seen
    history = subprocess.run(
        [
            "sacct",
            "-D",
            "-n",
            "-X",
            "-P",
            "-o",
            "State",
            "-j",
            (first.external_id or "").split("_")[0],
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert "NODE_FAIL" in history, history
