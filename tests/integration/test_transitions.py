"""The guarded state change: only rows still in the expected state move, each exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, JobTaskState
from ccat_hpc.db.transitions import move, move_row
from ccat_hpc.errors import InvalidStateTransition


def _batch_with_tasks(factory: sessionmaker[Session], count: int) -> list[int]:
    with transaction(factory) as session:
        batch = JobBatch(kind="noop", executor="local", task_count=count, external_ids=[])
        batch.tasks = [JobTask(task_index=i, items=[]) for i in range(count)]
        session.add(batch)
        session.flush()
        return [task.id for task in batch.tasks]


def _states(factory: sessionmaker[Session]) -> dict[int, JobTaskState]:
    with factory() as session:
        return {t.id: t.state for t in session.scalars(select(JobTask))}


def test_only_rows_in_the_expected_state_move(factory: sessionmaker[Session]) -> None:
    ids = _batch_with_tasks(factory, 4)
    with transaction(factory) as session:
        assert (
            move(session, JobTask, ids[:2], JobTaskState.PENDING, JobTaskState.RUNNING) == ids[:2]
        )
    with transaction(factory) as session:
        moved = move(session, JobTask, ids, JobTaskState.PENDING, JobTaskState.RUNNING)
    assert sorted(moved) == ids[2:]
    with transaction(factory) as session:
        assert move(session, JobTask, ids, JobTaskState.PENDING, JobTaskState.RUNNING) == []
    assert set(_states(factory).values()) == {JobTaskState.RUNNING}


def test_values_are_set_on_moved_rows_only(factory: sessionmaker[Session]) -> None:
    ids = _batch_with_tasks(factory, 2)
    with transaction(factory) as session:
        move(session, JobTask, ids[:1], JobTaskState.PENDING, JobTaskState.RUNNING)
    with transaction(factory) as session:
        move(
            session,
            JobTask,
            ids,
            JobTaskState.RUNNING,
            JobTaskState.FAILED,
            reason="node lost",
        )
    with factory() as session:
        reasons = {t.id: t.reason for t in session.scalars(select(JobTask))}
    assert reasons == {ids[0]: "node lost", ids[1]: None}


def test_a_forbidden_edge_raises_before_anything_is_written(
    factory: sessionmaker[Session],
) -> None:
    ids = _batch_with_tasks(factory, 1)
    with (
        pytest.raises(InvalidStateTransition, match="succeeded → running"),
        transaction(factory) as session,
    ):
        move(session, JobTask, ids, JobTaskState.SUCCEEDED, JobTaskState.RUNNING)
    assert _states(factory) == {ids[0]: JobTaskState.PENDING}


def test_move_row_updates_the_loaded_object_or_tells_who_was_first(
    factory: sessionmaker[Session],
) -> None:
    ids = _batch_with_tasks(factory, 1)
    with transaction(factory) as session:
        task = session.get(JobTask, ids[0])
        assert task is not None
        assert move_row(session, task, JobTaskState.RUNNING, host="n1")
        assert (task.state, task.host) == (JobTaskState.RUNNING, "n1")
    with transaction(factory) as session:
        move(session, JobTask, ids, JobTaskState.RUNNING, JobTaskState.FAILED)
    with factory() as session:
        stale = session.get(JobTask, ids[0])  # this worker reads FAILED …
        assert stale is not None and stale.state == JobTaskState.FAILED
        session.commit()
        with transaction(factory) as other:  # … while another requeues it first
            move(other, JobTask, ids, JobTaskState.FAILED, JobTaskState.PENDING)
        with session.begin():
            assert not move_row(session, stale, JobTaskState.PENDING)
        assert stale.state == JobTaskState.PENDING  # refreshed: it sees who was first


def test_concurrent_claims_take_every_row_exactly_once(
    factory: sessionmaker[Session], backend: str, tmp_path: Path
) -> None:
    ids = _batch_with_tasks(factory, 200)
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        mine: list[int] = []
        barrier.wait()
        for start in range(0, len(ids), 20):
            with transaction(factory) as session:
                mine += move(
                    session,
                    JobTask,
                    ids[start : start + 20],
                    JobTaskState.PENDING,
                    JobTaskState.RUNNING,
                )
        claimed.append(mine)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [task_id for mine in claimed for task_id in mine]
    assert sorted(everything) == ids  # each row once, none lost
    with factory() as session:
        batch_state = session.scalars(select(JobBatch.state)).one()
    assert batch_state == JobBatchState.PENDING
