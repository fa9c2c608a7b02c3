"""Plan and submit the checksum job array for the files waiting for their checksum.

The files are claimed (FILED → CHECKSUMMING) in the same transaction that creates the
batch, so two submissions at once never hash a file twice: the second finds nothing
left. When the executor refuses the batch, the claims are given back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import RawDataFileState
from ccat_hpc.errors import NotFoundError
from ccat_hpc.executors.base import Executor
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline.checksum import DEFAULT_BYTES_PER_TASK, plan_tasks
from ccat_hpc.pipeline.checksum_records import (
    RECHECKABLE_STATES,
    assign_claims,
    claim_files,
    files_to_checksum,
    requeue_for_check,
)
from ccat_hpc.sites.schema import SlurmProfile


@dataclass(frozen=True)
class ChecksumSubmission:
    batch_id: int
    file_ids: list[int]
    tasks: int


def submit_checksum(
    factory: sessionmaker[Session],
    executor: Executor,
    environment: Mapping[str, str],
    working_dir: Path,
    profile: SlurmProfile,
    bytes_per_task: int = DEFAULT_BYTES_PER_TASK,
    site_name: str | None = None,
) -> ChecksumSubmission | None:
    """Claim every FILED file and submit one batch for them; None when none is waiting.

    Unfinished checksum batches of this executor are tracked first, so files that a
    dead task held are given back and claimed again here.
    """
    track_unfinished(factory, "checksum", executor)
    with transaction(factory) as session:
        claimed = claim_files(session, files_to_checksum(session))
        if not claimed:
            return None
        tasks = plan_tasks(claimed, bytes_per_task)
        batch = create_batch(
            session,
            "checksum",
            tasks,
            executor=executor.name,
            profile=profile,
            working_dir=working_dir,
            site_name=site_name,
        )
        batch_id = batch.id
        assign_claims(session, [file_id for file_id, _ in claimed], batch_id)
    submit_batch(factory, batch_id, executor, environment)
    return ChecksumSubmission(batch_id, [file_id for file_id, _ in claimed], len(tasks))


@dataclass(frozen=True)
class RecheckSelection:
    """Which checked files an operator wants checked again (any combination)."""

    file_ids: Sequence[int] = ()
    execution_ids: Sequence[uuid.UUID] = ()
    states: Sequence[RawDataFileState] = ()

    @property
    def empty(self) -> bool:
        return not (self.file_ids or self.execution_ids or self.states)


def requeue_selection(session: Session, selection: RecheckSelection) -> int:
    """Put the selected checked files back to FILED; returns how many (caller commits).

    Unknown file or execution ids are a NotFoundError; files in other states (still
    waiting, being checked, packaged) are left alone.
    """
    _require_known(session, selection)
    query = select(RawDataFile.id).where(RawDataFile.state.in_(RECHECKABLE_STATES))
    if selection.file_ids:
        query = query.where(RawDataFile.id.in_(selection.file_ids))
    if selection.execution_ids:
        query = query.where(RawDataFile.executed_obs_unit_id.in_(selection.execution_ids))
    if selection.states:
        query = query.where(RawDataFile.state.in_(selection.states))
    return requeue_for_check(session, list(session.scalars(query.order_by(RawDataFile.id))))


def _require_known(session: Session, selection: RecheckSelection) -> None:
    if selection.file_ids:
        found = set(
            session.scalars(select(RawDataFile.id).where(RawDataFile.id.in_(selection.file_ids)))
        )
        missing = sorted(set(selection.file_ids) - found)
        if missing:
            raise NotFoundError(f"no raw data file with id {', '.join(map(str, missing))}")
    for execution in selection.execution_ids:
        if session.scalar(select(RawDataFile.id).filter_by(executed_obs_unit_id=execution)) is None:
            raise NotFoundError(f"no files filed for execution {execution}")


def submit_checksum_step(factory: sessionmaker[Session], setup: JobSetup) -> StepSubmission | None:
    """:func:`submit_checksum` in the shape every step's submission has."""
    found = submit_checksum(
        factory,
        setup.executor,
        setup.environment,
        setup.working_dir,
        setup.profile,
        site_name=setup.site,
    )
    return None if found is None else StepSubmission(found.batch_id, found.file_ids, found.tasks)
