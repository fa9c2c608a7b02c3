"""The checksum step checks what is on disk now, as filing did, and never loses an outcome."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import JobBatch, JobTask, PhysicalCopy, RawDataFile, RawDataFileCheck
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState, PhysicalCopyState, RawDataFileState
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.jobs.batches import create_batch
from ccat_hpc.jobs.checksum_batch import RecheckSelection, requeue_selection, submit_checksum
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.pipeline import checksum
from ccat_hpc.pipeline.checksum import checksum_task, claim_files, files_to_checksum, plan_tasks
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 5, 100)
F = RawDataFileState


@pytest.fixture
def filed(loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path) -> list[Path]:
    """Five filed files (with checksums in their manifest), in manifest order."""
    manifest = write_observation(SPEC, data_root / SPEC.location)
    assert file_path(loaded_factory, drop_manifest(manifest, tmp_path, "m")).status == "filed"
    return [data_root / SPEC.location / entry["path"] for entry in manifest["files"]]


def run_batch(
    factory: sessionmaker[Session], tasks: int = 1, exit_codes: list[int] | None = None
) -> int:
    """Claim every FILED file into a batch and run its tasks here, as `job run` does;
    the tasks' exit codes must be ``exit_codes`` (all 0 unless given)."""
    with transaction(factory) as session:
        claimed = claim_files(session, files_to_checksum(session))
        plan = plan_tasks(claimed, files_per_task=-(-len(claimed) // tasks))
        batch = create_batch(
            session,
            "checksum",
            plan,
            executor="local",
            profile=SlurmProfile(),
            working_dir=Path(".").resolve(),
        )
        batch_id = batch.id
    codes = [
        run_task(factory, "checksum", batch_id, index, {"checksum": checksum_task}, {})
        for index in range(len(plan))
    ]
    assert codes == (exit_codes or [0] * len(plan))
    return batch_id


def outcomes(factory: sessionmaker[Session]) -> dict[str, tuple[F, str | None]]:
    with factory() as session:
        return {
            f.name: (f.state, f.failure_reason)
            for f in session.scalars(select(RawDataFile).order_by(RawDataFile.id))
        }


def copy_states(factory: sessionmaker[Session]) -> list[PhysicalCopyState]:
    with factory() as session:
        return list(session.scalars(select(PhysicalCopy.state).order_by(PhysicalCopy.id)))


def test_files_as_filed_are_checksummed_and_verified(
    loaded_factory: sessionmaker[Session], filed: list[Path]
) -> None:
    run_batch(loaded_factory)
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.CHECKSUMMED}
    assert set(copy_states(loaded_factory)) == {PhysicalCopyState.VERIFIED}


def _truncate(path: Path) -> None:
    path.write_bytes(b"")


def _grow(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b"more")


def _escaping_link(path: Path) -> None:
    outside = path.parents[5] / "outside.g3"
    outside.write_bytes(path.read_bytes())  # the same bytes, but outside the root
    path.unlink()
    path.symlink_to(outside)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [
        (_truncate, F.CORRUPT, "is 0 bytes on disk, it was filed with 100"),
        (_grow, F.CORRUPT, "is 104 bytes on disk, it was filed with 100"),
        (_escaping_link, F.CORRUPT, "is a symbolic link that leaves the location root"),
        (_fifo, F.CORRUPT, "is a FIFO, not a regular file"),
        (_folder, F.CORRUPT, "is a folder, not a regular file"),
        (Path.unlink, F.MISSING, "no such file"),
    ],
)
def test_a_file_changed_after_filing_is_recorded_with_the_reason(
    loaded_factory: sessionmaker[Session],
    filed: list[Path],
    change: Callable[[Path], None],
    state: F,
    reason: str,
) -> None:
    change(filed[2])
    runner = threading.Thread(target=run_batch, args=(loaded_factory,), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the checksum task blocked"
    result = outcomes(loaded_factory)
    assert result[filed[2].name][0] == state
    assert f"{filed[2]}: {reason}" == result[filed[2].name][1]
    others = [v for name, v in result.items() if name != filed[2].name]
    assert others == [(F.CHECKSUMMED, None)] * 4
    assert copy_states(loaded_factory).count(PhysicalCopyState(state.value)) == 1


def test_outcomes_before_an_error_are_recorded_and_the_rest_released(
    loaded_factory: sessionmaker[Session], filed: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = checksum.Hasher.outcome
    seen: list[str] = []

    def failing(self: checksum.Hasher, target: checksum.Target) -> checksum.FileOutcome:
        seen.append(target.relative_path)
        if len(seen) == 3:
            raise RuntimeError("a bug in the third file's handling")
        return real(self, target)

    monkeypatch.setattr(checksum.Hasher, "outcome", failing)
    with pytest.raises(RuntimeError):
        run_batch(loaded_factory)
    states = [state for state, _ in outcomes(loaded_factory).values()]
    assert states == [F.CHECKSUMMED, F.CHECKSUMMED, F.FILED, F.FILED, F.FILED]
    with loaded_factory() as session:
        task = session.scalars(select(JobTask)).one()
        assert (task.state, task.retryable) == (JobTaskState.FAILED, True)
        assert "a bug in the third file's handling" in (task.reason or "")


def test_sigterm_records_what_was_done_and_gives_back_the_rest(
    loaded_factory: sessionmaker[Session], filed: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = checksum.Hasher.outcome
    seen: list[str] = []

    def terminated(self: checksum.Hasher, target: checksum.Target) -> checksum.FileOutcome:
        seen.append(target.relative_path)
        if len(seen) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # the time limit arrives mid-file
        return real(self, target)

    monkeypatch.setattr(checksum.Hasher, "outcome", terminated)
    assert run_batch(loaded_factory, exit_codes=[143])
    states = [state for state, _ in outcomes(loaded_factory).values()]
    assert states == [F.CHECKSUMMED] * 3 + [F.FILED] * 2
    with loaded_factory() as session:
        task = session.scalars(select(JobTask)).one()
    assert task.state == JobTaskState.RUNNING  # the executor's verdict (TIMEOUT, …) will tell


def test_a_second_submission_finds_nothing_to_do(
    loaded_factory: sessionmaker[Session], filed: list[Path], tmp_path: Path
) -> None:
    executor = LocalExecutor(state_root=tmp_path / "jobs", command_prefix=["true"])
    results: list[Any] = []

    def submit() -> None:
        results.append(
            submit_checksum(loaded_factory, executor, {}, tmp_path / "work", SlurmProfile())
        )

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    submitted = [r for r in results if r is not None]
    assert len(submitted) == 1 and len(results) == 3
    assert sorted(submitted[0].file_ids) == sorted(range(1, 6))
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.CHECKSUMMING}


def test_a_repaired_file_is_checked_again_and_the_history_kept(
    loaded_factory: sessionmaker[Session], filed: list[Path]
) -> None:
    original = filed[1].read_bytes()
    filed[1].write_bytes(b"x" * 100)  # damaged in place: same size, other bytes
    first_batch = run_batch(loaded_factory)
    assert outcomes(loaded_factory)[filed[1].name][0] == F.CORRUPT
    filed[1].write_bytes(original)  # the operator restores it
    with transaction(loaded_factory) as session:
        assert requeue_selection(session, RecheckSelection(states=[F.CORRUPT])) == 1
    second_batch = run_batch(loaded_factory)
    assert outcomes(loaded_factory)[filed[1].name] == (F.CHECKSUMMED, None)
    with loaded_factory() as session:
        history = session.execute(
            select(RawDataFileCheck.outcome, RawDataFileCheck.job_batch_id)
            .join(RawDataFile, RawDataFile.id == RawDataFileCheck.raw_data_file_id)
            .where(RawDataFile.name == filed[1].name)
            .order_by(RawDataFileCheck.id)
        ).all()
    assert [tuple(row) for row in history] == [
        (F.CORRUPT, first_batch),
        (F.CHECKSUMMED, second_batch),
    ]
    assert copy_states(loaded_factory) == [PhysicalCopyState.VERIFIED] * 5


def test_a_refused_submission_gives_the_files_back(
    loaded_factory: sessionmaker[Session], filed: list[Path], tmp_path: Path
) -> None:
    blocked = tmp_path / "jobs"
    blocked.write_text("a file where the jobs folder should be")
    executor = LocalExecutor(state_root=tmp_path / "local-jobs")
    with pytest.raises(OSError):
        submit_checksum(loaded_factory, executor, {}, blocked, SlurmProfile())
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.FILED}
    with loaded_factory() as session:
        batch = session.scalars(select(JobBatch)).one()
    assert batch.state == JobBatchState.SUBMIT_FAILED and "FileExistsError" in (
        batch.failure_reason or ""
    )
    retried = submit_checksum(loaded_factory, executor, {}, tmp_path / "work", SlurmProfile())
    assert retried is not None and len(retried.file_ids) == 5
