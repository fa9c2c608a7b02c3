"""The scheduler loop: snapshot → plan → apply, then sleep; SIGTERM ends it after a pass.

Applying a plan follows each open batch (its dead tasks give their items back) and calls
each step's submission, which claims what it takes atomically in ops-db. Nothing here
decides anything: :func:`ccat_hpc.scheduler.plan.plan` does.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.errors import CcatHpcError
from ccat_hpc.executors.base import Executor
from ccat_hpc.executors.factory import make_executor
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.jobs.tracking import track_batch
from ccat_hpc.logline import log_line
from ccat_hpc.scheduler.plan import STEPS, Follow, Plan, plan
from ccat_hpc.scheduler.snapshot import take_snapshot

#: step → "module:function" of its submission (each takes a factory and a JobSetup)
SUBMITTERS = {
    "checksum": "ccat_hpc.jobs.checksum_batch:submit_checksum_step",
    "package": "ccat_hpc.jobs.package_batch:submit_package",
    "bundle": "ccat_hpc.jobs.bundle_batch:submit_bundle",
    "transfer": "ccat_hpc.jobs.transfer_batch:submit_transfer",
    "archive": "ccat_hpc.jobs.archive_batch:submit_archive",
}


@dataclass
class PassReport:
    plan: Plan
    submitted: dict[str, int] = field(default_factory=dict)  # step → batch id
    idle: list[str] = field(default_factory=list)  # steps that found nothing to claim
    errors: list[str] = field(default_factory=list)


def submitter(step: str) -> Callable[..., Any]:
    module, function = SUBMITTERS[step].split(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def one_pass(
    factory: sessionmaker[Session],
    setup_for: Callable[[str], JobSetup],
    *,
    steps: Sequence[str] = STEPS,
    dry_run: bool = False,
) -> PassReport:
    """Take a snapshot, plan, and (unless ``dry_run``) apply the plan."""
    with transaction(factory) as session:
        actions = plan(take_snapshot(session, steps))
    report = PassReport(actions)
    if dry_run:
        return report
    for follow in actions.follow:
        try:
            track_batch(factory, follow.batch_id, _executor(setup_for, follow))
        except CcatHpcError as exc:
            report.errors.append(f"batch {follow.batch_id}: {exc}")
    for action in actions.submit:
        try:
            submitted = submitter(action.step)(factory, setup_for(action.step))
        except CcatHpcError as exc:
            report.errors.append(f"{action.step}: {exc}")
            continue
        if submitted is None:
            report.idle.append(action.step)
        else:
            report.submitted[action.step] = submitted.batch_id
    return report


def _executor(setup_for: Callable[[str], JobSetup], follow: Follow) -> Executor:
    """The scheduler's own executor when the batch was submitted to one of its kind (it
    knows where its jobs are); otherwise the named one as configured."""
    mine = setup_for(follow.kind).executor
    return mine if mine.name == follow.executor else make_executor(follow.executor)


def describe(report: PassReport, dry_run: bool) -> list[str]:
    """What a pass did (or, dry, would do), one line each."""
    verb = "would" if dry_run else "did"
    lines = [f"{verb}: {action.describe()}" for action in report.plan.follow]
    for action in report.plan.submit:
        outcome = ""
        if not dry_run:
            batch = report.submitted.get(action.step)
            outcome = f" → batch {batch}" if batch else " → nothing ready to claim yet"
        lines.append(f"{verb}: {action.describe()}{outcome}")
    lines += [f"held back: {step}: {why}" for step, why in report.plan.held_back.items()]
    lines += [f"error: {error}" for error in report.errors]
    return lines or ["nothing to do"]


def run(
    factory: sessionmaker[Session],
    setup_for: Callable[[str], JobSetup],
    *,
    interval: float,
    once: bool,
    dry_run: bool,
    stop: threading.Event,
    steps: Sequence[str] = STEPS,
) -> int:
    """Passes until ``stop`` is set (after the pass at hand) or, with ``once``, one pass."""
    passes = 0
    while True:
        started = time.monotonic()
        report = one_pass(factory, setup_for, steps=steps, dry_run=dry_run)
        passes += 1
        for line in describe(report, dry_run):
            log_line(f"pass {passes}: {line}", error=False)
        if once or stop.is_set():
            return passes
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
        if stop.is_set():
            return passes
