"""The scheduler loop on both databases: manifests filed, passes until all is archived."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import JobBatch, JobTask, RawDataFile
from ccat_hpc.db.states import RawDataFileState
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.scheduler.loop import describe, one_pass, run
from ccat_hpc.sites.schema import SlurmProfile
from tests.conftest import REPO
from tests.integration.test_bundle_step import set_pipeline
from tests.integration.test_package_step import observe
from tests.integration.test_transfer_archive import assert_archived_exactly, set_method


@pytest.fixture
def ready(loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path) -> list[Path]:
    for name in ("chile-buffer-01", "cologne-buffer-01", "cologne-archive"):
        (data_root / name).mkdir()
    set_pipeline(loaded_factory, bundle_max_wait_minutes=0)
    set_method(loaded_factory, "copy")
    sources = observe(loaded_factory, data_root, tmp_path, "280GHz", files=3)
    sources += observe(loaded_factory, data_root, tmp_path, "350GHz", files=2)
    return sources


def local_setup(db_url: str, tmp_path: Path) -> JobSetup:
    executor = LocalExecutor(state_root=tmp_path / "local-jobs")
    environment = {"CCAT_HPC_DB": db_url, "PYTHONPATH": str(REPO)}
    return JobSetup(executor, environment, tmp_path / "jobs", SlurmProfile())


def passes_until_archived(
    factory: sessionmaker[Session], setup: JobSetup, limit: int = 40
) -> list[list[str]]:
    log = []
    for _ in range(limit):
        report = one_pass(factory, lambda _step: setup)
        log.append(describe(report, dry_run=False))
        with factory() as session:
            states = set(session.scalars(select(RawDataFile.state)))
        if states == {RawDataFileState.ARCHIVED} and report.plan.empty:
            return log
        threading.Event().wait(0.3)
    pytest.fail(f"not archived after {limit} passes: {log[-3:]}")


def test_the_scheduler_alone_takes_filed_files_to_the_archive(
    loaded_factory: sessionmaker[Session],
    db_url: str,
    ready: list[Path],
    data_root: Path,
    tmp_path: Path,
) -> None:
    log = passes_until_archived(loaded_factory, local_setup(db_url, tmp_path))
    assert_archived_exactly(loaded_factory, ready, data_root)
    done = [line for lines in log for line in lines if "→ batch" in line]
    for step in ("checksum", "package", "bundle", "transfer", "archive"):
        assert any(f"submit {step}:" in line for line in done), (step, done)
    with loaded_factory() as session:  # every batch followed to its end
        assert {b.state.value for b in session.scalars(select(JobBatch))} == {"done"}


def test_a_dry_run_changes_nothing(
    loaded_factory: sessionmaker[Session], db_url: str, ready: list[Path], tmp_path: Path
) -> None:
    report = one_pass(loaded_factory, lambda _s: local_setup(db_url, tmp_path), dry_run=True)
    # nothing is archived yet: cleanup is not due (it deletes nothing without an archive copy)
    assert describe(report, dry_run=True) == ["would: submit checksum: 5 item(s) waiting"]
    with loaded_factory() as session:
        assert session.scalars(select(JobBatch)).all() == []
        assert set(session.scalars(select(RawDataFile.state))) == {RawDataFileState.FILED}


def test_the_loop_stops_after_the_pass_at_hand(
    loaded_factory: sessionmaker[Session], db_url: str, ready: list[Path], tmp_path: Path
) -> None:
    stop = threading.Event()
    stop.set()  # as SIGTERM does: the pass runs to its end, then the loop returns
    passes = run(
        loaded_factory,
        lambda _s: local_setup(db_url, tmp_path),
        interval=60,
        once=False,
        dry_run=False,
        stop=stop,
    )
    assert passes == 1
    with loaded_factory() as session:
        kinds = [b.kind for b in session.scalars(select(JobBatch).order_by(JobBatch.id))]
        assert kinds == ["checksum"]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_two_schedulers_at_once_never_submit_an_item_twice(
    loaded_factory: sessionmaker[Session],
    db_url: str,
    ready: list[Path],
    data_root: Path,
    tmp_path: Path,
    backend: str,
) -> None:
    setup = local_setup(db_url, tmp_path)
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            for _ in range(25):
                one_pass(loaded_factory, lambda _s: setup)
                threading.Event().wait(0.3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    passes_until_archived(loaded_factory, setup)
    assert_archived_exactly(loaded_factory, ready, data_root)
    with loaded_factory() as session:  # no file in two checksum batches' items
        items = [
            item
            for task in session.scalars(
                select(JobTask).join(JobBatch).where(JobBatch.kind == "checksum")
            )
            for item in task.items
        ]
    assert sorted(items) == sorted(set(items))
