"""The checksum step checks what is on disk now, as filing did, and never loses an outcome."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import JobBatch, JobTask, PhysicalCopy, RawDataFile, RawDataFileCheck
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState, PhysicalCopyState, RawDataFileState
from ccat_hpc.db.transitions import move
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.jobs.batches import abandon_unsubmitted, cancel_batch, create_batch
from ccat_hpc.jobs.checksum_batch import RecheckSelection, requeue_selection, submit_checksum
from ccat_hpc.jobs.runner import give_back, run_task
from ccat_hpc.jobs.tracking import ABANDONED_AFTER
from ccat_hpc.pipeline import checksum
from ccat_hpc.pipeline.checksum import checksum_task, plan_tasks
from ccat_hpc.pipeline.checksum_records import (
    assign_claims,
    claim_files,
    files_to_checksum,
    release_files,
)
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.pipeline.tasks import TaskContext, TaskFailure
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 5, 100)
F = RawDataFileState
NOT_THE_FILED_FILE = (
    "is not the file that was filed: another file, or a link to one, is at its path now"
)


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
        assign_claims(session, [file_id for file_id, _ in claimed], batch_id)
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


def _hard_link_from_outside(path: Path) -> None:
    outside = path.parents[5] / "outside.g3"
    outside.write_bytes(b"e" * path.stat().st_size)  # same size, other bytes, other inode
    path.unlink()
    os.link(outside, path)


def _link_to_a_sibling(path: Path) -> None:
    sibling = path.with_name("det_000000.g3")  # another filed file of the same size
    path.unlink()
    path.symlink_to(sibling)


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [
        (_truncate, F.CORRUPT, "is 0 bytes on disk, it was filed with 100"),
        (_grow, F.CORRUPT, "is 104 bytes on disk, it was filed with 100"),
        (_escaping_link, F.CORRUPT, "is a symbolic link that leaves the location root"),
        (_fifo, F.CORRUPT, "is a FIFO, not a regular file"),
        (_folder, F.CORRUPT, "is a folder, not a regular file"),
        (_hard_link_from_outside, F.CORRUPT, NOT_THE_FILED_FILE),
        (_link_to_a_sibling, F.CORRUPT, NOT_THE_FILED_FILE),
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


def _claimed_but_never_submitted(factory: sessionmaker[Session]) -> int:
    """What a `checksum` killed between claiming and submitting leaves behind."""
    with transaction(factory) as session:
        claimed = claim_files(session, files_to_checksum(session))
        batch = create_batch(
            session,
            "checksum",
            plan_tasks(claimed),
            executor="local",
            profile=SlurmProfile(),
            working_dir=Path(".").resolve(),
        )
        assign_claims(session, [file_id for file_id, _ in claimed], batch.id)
        return batch.id


def test_cancelling_a_batch_never_submitted_gives_its_files_back(
    loaded_factory: sessionmaker[Session], filed: list[Path], tmp_path: Path
) -> None:
    batch_id = _claimed_but_never_submitted(loaded_factory)
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.CHECKSUMMING}
    executor = LocalExecutor(state_root=tmp_path / "local-jobs")
    assert cancel_batch(loaded_factory, batch_id, executor) == JobBatchState.CANCELLED
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.FILED}


def test_a_batch_abandoned_before_submission_gives_its_files_back_later(
    loaded_factory: sessionmaker[Session], filed: list[Path], tmp_path: Path
) -> None:
    batch_id = _claimed_but_never_submitted(loaded_factory)
    executor = LocalExecutor(state_root=tmp_path / "local-jobs", command_prefix=["true"])
    assert submit_checksum(loaded_factory, executor, {}, tmp_path / "w", SlurmProfile()) is None
    with transaction(loaded_factory) as session:  # ten minutes later, nobody submitted it
        batch = session.get(JobBatch, batch_id)
        assert batch is not None
        batch.created_at = batch.created_at - ABANDONED_AFTER
    again = submit_checksum(loaded_factory, executor, {}, tmp_path / "w", SlurmProfile())
    assert again is not None and len(again.file_ids) == 5
    with loaded_factory() as session:
        abandoned = session.get(JobBatch, batch_id)
        assert abandoned is not None and abandoned.state == JobBatchState.SUBMIT_FAILED
        assert "never submitted" in (abandoned.failure_reason or "")


def test_sigterm_while_outcomes_are_being_recorded_loses_none(
    loaded_factory: sessionmaker[Session], filed: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = checksum.record_outcomes

    def record_under_signal(session: Session, group: Any, batch_id: int | None) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the database work
        real(session, group, batch_id)

    monkeypatch.setattr(checksum, "record_outcomes", record_under_signal)
    monkeypatch.setattr(checksum, "RECORD_EVERY", 2)
    run_batch(loaded_factory, exit_codes=[143])
    states = [state for state, _ in outcomes(loaded_factory).values()]
    assert states == [F.CHECKSUMMED] * 2 + [F.FILED] * 3  # the group in flight is kept


def test_a_task_already_recorded_ended_gives_back_nothing(
    loaded_factory: sessionmaker[Session], filed: list[Path]
) -> None:
    """A zombie of a task the tracker closed must not release files another batch holds."""
    first = _claimed_but_never_submitted(loaded_factory)
    with transaction(loaded_factory) as session:
        task = session.scalars(select(JobTask).filter_by(batch_id=first)).one()
        items = list(task.items)
        move(session, JobTask, [task.id], JobTaskState.PENDING, JobTaskState.FAILED)
        release_files(session, items, first)  # what the tracker does for a task that died
    second = _claimed_but_never_submitted(loaded_factory)
    assert second != first
    zombie = TaskContext(loaded_factory, first, 0, items, {}, {})
    give_back(loaded_factory, zombie, "checksum")
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.CHECKSUMMING}


def test_tasks_of_a_batch_whose_submission_failed_do_not_run(
    loaded_factory: sessionmaker[Session], filed: list[Path]
) -> None:
    """The batch system may have taken the job just before the submitter was stopped."""
    batch_id = _claimed_but_never_submitted(loaded_factory)
    assert abandon_unsubmitted(loaded_factory, "checksum", utcnow() + ABANDONED_AFTER) == 1
    with pytest.raises(TaskFailure, match=f"batch {batch_id} is submit_failed: its tasks do not"):
        run_task(loaded_factory, "checksum", batch_id, 0, {"checksum": checksum_task}, {})
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.FILED}


def test_a_file_whose_inode_went_to_another_is_still_told_from_a_newcomer(
    loaded_factory: sessionmaker[Session], filed: list[Path], tmp_path: Path
) -> None:
    """Filed, deleted, its inode given to a new file that is filed too, then another file
    put at its old path: that one is not the file that was filed."""
    with transaction(loaded_factory) as session:  # as filing does when it finds the inode reused
        session.execute(
            update(RawDataFile).where(RawDataFile.name == filed[0].name).values(source_device=None)
        )
    newcomer = tmp_path / "newcomer.g3"
    newcomer.write_bytes(b"n" * 100)  # made while the filed file exists: another inode
    os.replace(newcomer, filed[0])
    run_batch(loaded_factory)
    state, reason = outcomes(loaded_factory)[filed[0].name]
    assert state == F.CORRUPT and NOT_THE_FILED_FILE in (reason or "")


def test_a_task_of_a_batch_closed_under_it_records_nothing(
    loaded_factory: sessionmaker[Session], filed: list[Path]
) -> None:
    """An operator forced a batch closed while its task still ran; the files went to a
    new batch. The old task's outcomes must not be recorded: each file is checked once."""
    first = _claimed_but_never_submitted(loaded_factory)
    with transaction(loaded_factory) as session:  # what job cancel --force does
        task = session.scalars(select(JobTask).filter_by(batch_id=first)).one()
        items = list(task.items)
        release_files(session, items, first)
    second = _claimed_but_never_submitted(loaded_factory)
    context = TaskContext(loaded_factory, first, 0, items, {}, {})
    assert checksum_task(context) == {"checksummed": 0, "corrupt": 0, "missing": 0, "bytes": 0}
    assert {state for state, _ in outcomes(loaded_factory).values()} == {F.CHECKSUMMING}
    with loaded_factory() as session:
        holders = set(session.scalars(select(RawDataFile.claimed_by_batch_id)))
        assert holders == {second}
        assert session.scalars(select(RawDataFileCheck)).first() is None


def test_one_file_on_disk_filed_as_two_records_is_not_verified_twice(
    loaded_factory: sessionmaker[Session], filed: list[Path], data_root: Path, tmp_path: Path
) -> None:
    """A filed folder moved and touched, its files filed again under the new name, the
    folder moved back and the new name linked to it: two records, one file on disk."""
    part = filed[0].parent
    moved = part.with_name("moved")
    os.rename(part, moved)
    (moved / filed[0].name).touch()  # a new modification time: filing cannot tell
    manifest = write_observation(SPEC, data_root / SPEC.location)
    relative = str((moved / filed[0].name).relative_to(data_root / SPEC.location))
    manifest["files"] = [{"path": relative, "size": 100}]
    assert file_path(loaded_factory, drop_manifest(manifest, tmp_path, "again")).status == "filed"
    os.rename(moved, part)
    moved.symlink_to(part.name, target_is_directory=True)
    run_batch(loaded_factory, tasks=1)
    with loaded_factory() as session:
        first, second = session.scalars(
            select(RawDataFile).where(RawDataFile.name == filed[0].name).order_by(RawDataFile.id)
        ).all()
    assert first.state == F.CHECKSUMMED
    assert second.state == F.CORRUPT
    assert f"is the same file on disk as {first.relative_path} (file {first.id})" in (
        second.failure_reason or ""
    )


def test_a_refused_submission_leaves_no_pending_task(
    loaded_factory: sessionmaker[Session], filed: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "jobs").write_text("in the way")
    with pytest.raises(OSError):
        submit_checksum(
            loaded_factory,
            LocalExecutor(state_root=tmp_path / "lj"),
            {},
            tmp_path / "jobs",
            SlurmProfile(),
        )
    with loaded_factory() as session:
        states = {task.state for task in session.scalars(select(JobTask))}
    assert states == {JobTaskState.CANCELLED}
