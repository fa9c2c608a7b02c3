"""Claim the items waiting for a step and submit them as one job array (any step).

Claiming (waiting → working state) and creating the batch happen in one transaction,
so two submissions at once never take one item twice; the batch is named on its items,
and only its tasks record them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.executors.base import Executor
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.checksum import plan_tasks
from ccat_hpc.pipeline.endpoints import Gate
from ccat_hpc.sites.schema import SlurmProfile

#: (id, bytes) of the items waiting for the step, oldest first
WaitingItems = Callable[[Session], Sequence[tuple[int, int]]]


@dataclass(frozen=True)
class StepSubmission:
    batch_id: int
    item_ids: list[int]
    tasks: int
    #: items created by this submission's planning (e.g. new RDPs)
    planned: int = 0


@dataclass(frozen=True)
class JobSetup:
    """Where and how a step's batch runs."""

    executor: Executor
    environment: Mapping[str, str]
    working_dir: Path
    profile: SlurmProfile
    site: str | None = None
    #: endpoints whose circuit breaker holds work back (the scheduler's; open: none)
    gate: Gate = field(default_factory=Gate)


def claim_batch(
    session: Session,
    kind: str,
    model: step_items.StepItem,
    states: step_items.StepStates,
    items: Sequence[tuple[int, int]],
    bytes_per_task: int,
    *,
    executor: str,
    profile: SlurmProfile,
    working_dir: Path,
    site: str | None = None,
) -> tuple[int, list[int], int] | None:
    """Claim the waiting ``items`` (id, bytes) into one new batch (the caller commits):
    (batch, items claimed, tasks), or None when another claimed them all first. Probe
    items of a breaker's gate (:class:`ccat_hpc.pipeline.endpoints.Admitted`) are
    claimed without counting a try."""
    claimed = set(step_items.claim(session, model, [i for i, _ in items], states))
    if not claimed:
        return None
    tasks = plan_tasks([(i, size) for i, size in items if i in claimed], bytes_per_task)
    batch = create_batch(
        session,
        kind,
        tasks,
        executor=executor,
        profile=profile,
        working_dir=working_dir,
        site_name=site,
    )
    probes: frozenset[int] = getattr(items, "probes", frozenset())
    step_items.assign(session, model, sorted(claimed), batch.id, uncounted=probes)
    return int(batch.id), sorted(claimed), len(tasks)


def claim_and_submit(
    factory: sessionmaker[Session],
    kind: str,
    model: step_items.StepItem,
    states: step_items.StepStates,
    waiting: WaitingItems,
    bytes_per_task: int,
    setup: JobSetup,
) -> tuple[int, list[int], int] | None:
    """Claim the waiting items into one batch and submit it: (batch, items, tasks) or None."""
    with transaction(factory) as session:
        claimed = claim_batch(
            session,
            kind,
            model,
            states,
            waiting(session),
            bytes_per_task,
            executor=setup.executor.name,
            profile=setup.profile,
            working_dir=setup.working_dir,
            site=setup.site,
        )
    if claimed is not None:
        submit_batch(factory, claimed[0], setup.executor, setup.environment)
    return claimed
