"""One item of a step that builds a package with the engine (package, bundle): the shared
course of prepare → build → record, and how each ending is recorded.

- prepare (one transaction): the engine's member list and output path, and a PENDING
  copy row at the target location; None when the batch no longer holds the item;
- build: outside any transaction (minutes to hours);
- record (one transaction): built → the item done with size, checksum and member
  index, the copy VERIFIED, then what the step adds (files PACKAGED, RDPs
  TRANSFERRING); a problem → back to waiting (retryable) or FAILED, the copy FAILED,
  and for a permanent one what the step does to free the other members.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from ccat_hpc.db.session import transaction
from ccat_hpc.engine.build import BuildResult
from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.layout import MemberSpec
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import copies, failures, step_items
from ccat_hpc.pipeline.tasks import TaskContext


class BuildProblem(Exception):
    """Why an item could not be built, and whether a retry can help (``postpone``: not
    a failure at all, the item waits for room and its try is not counted)."""

    def __init__(self, reason: str, *, retryable: bool, postpone: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.postpone = postpone


class BuildJob(Protocol):
    @property
    def item_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def output(self) -> Path: ...
    @property
    def copy_id(self) -> int: ...
    @property
    def specs(self) -> list[MemberSpec]: ...


J = TypeVar("J", bound=BuildJob)


@dataclass(frozen=True)
class BuildStep(Generic[J]):
    model: step_items.StepItem
    states: step_items.StepStates
    noun: str
    prepare: Callable[[Session, int, int], J | None]
    build: Callable[[J], BuildResult]
    #: what the step records besides the item and its copy when the build succeeded
    after_built: Callable[[Session, J], None]
    #: what the step does after a permanent failure (free the other members)
    after_failed: Callable[[Session, J, str], None]


def new_counts() -> dict[str, int]:
    return {"built": 0, "failed": 0, "retry": 0, "skipped": 0, "bytes": 0}


def engine_build(build: Callable[[], BuildResult]) -> BuildResult:
    """Run the engine; a source that changed or does not match is a permanent problem."""
    try:
        return build()
    except EngineError as exc:  # a changed or mismatching source is permanent
        raise BuildProblem(str(exc), retryable=failures.retryable(exc)) from None


def run_item(
    context: TaskContext, step: BuildStep[J], item_id: int, counts: dict[str, int]
) -> None:
    """Prepare, build and record one item (every ending recorded; nothing raised for it)."""
    try:
        with transaction(context.factory) as session:
            job = step.prepare(session, item_id, context.batch_id)
    except BuildProblem as problem:
        record_problem(context, step, item_id, None, problem, counts)
        return
    if job is None:
        counts["skipped"] += 1
        return
    started = time.monotonic()
    try:
        result = step.build(job)
    except BuildProblem as problem:
        record_problem(context, step, item_id, job, problem, counts)
        return
    with transaction(context.factory) as session:
        recorded = record_built(session, step, job, result, context.batch_id)
    if not recorded:
        counts["skipped"] += 1
        return
    counts["built"] += 1
    counts["bytes"] += result.size
    rate = result.size / max(time.monotonic() - started, 1e-6) / 1e6
    log_line(
        f"{job.name}: built in {job.output.parent}: {len(job.specs)} member(s), "
        f"{result.size} bytes, {rate:.0f} MB/s"
    )


def record_built(
    session: Session, step: BuildStep[J], job: J, result: BuildResult, batch_id: int
) -> bool:
    """The item done, its copy VERIFIED, and the step's own records; False if not held."""
    done = step_items.finish(
        session,
        step.model,
        job.item_id,
        step.states,
        batch_id,
        size=result.size,
        checksum=result.xxh3_128,
        member_index={"members": [entry.as_json() for entry in result.index.members]},
    )
    if done:
        copies.verified(session, job.copy_id)
        step.after_built(session, job)
    return done


def record_problem(
    context: TaskContext,
    step: BuildStep[J],
    item_id: int,
    job: J | None,
    problem: BuildProblem,
    counts: dict[str, int],
) -> None:
    reason = str(problem)
    if problem.postpone:
        with transaction(context.factory) as session:
            if (
                step_items.postpone(
                    session, step.model, item_id, step.states, context.batch_id, reason
                )
                and job is not None
            ):
                copies.failed(session, job.copy_id, reason)
        counts["retry"] += 1
        log_line(f"{step.noun} {item_id}: waits: {reason}")
        return
    with transaction(context.factory) as session:
        held = step_items.fail(
            session,
            step.model,
            item_id,
            step.states,
            context.batch_id,
            reason,
            retryable=problem.retryable,
        )
        if held and job is not None:
            copies.failed(session, job.copy_id, reason)
            if not problem.retryable:
                step.after_failed(session, job, reason)
    counts["retry" if problem.retryable else "failed"] += 1
    verdict = "will be retried" if problem.retryable else "failed"
    log_line(f"{step.noun} {item_id}: {verdict}: {reason}")


def culprit(specs: list[MemberSpec], ids: list[Any], reason: str) -> Any | None:
    """The id of the member whose source path the engine's message starts with."""
    matches = [
        (len(spec.source), item)
        for item, spec in zip(ids, specs, strict=True)
        if reason.startswith(spec.source + ":")
    ]
    return max(matches)[1] if matches else None
