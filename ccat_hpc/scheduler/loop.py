"""The scheduler loop: snapshot → plan → apply, then sleep; SIGTERM ends it after a pass.

Applying a plan writes the breaker changes, follows each open batch (its dead tasks
give their items back) and calls each step's submission, which claims what it takes
atomically in ops-db (through the breakers' gate). Nothing here decides anything:
:func:`ccat_hpc.scheduler.plan.plan` does.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import Site
from ccat_hpc.db.reasons import operational_error_reason
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import CcatHpcError, DatabaseUnavailable
from ccat_hpc.executors.base import Executor
from ccat_hpc.executors.factory import make_executor
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.jobs.tracking import track_batch
from ccat_hpc.logline import log_line
from ccat_hpc.metrics import MetricsSink, NullSink
from ccat_hpc.pipeline.endpoints import EndpointKey, Gate
from ccat_hpc.scheduler.breaker_records import apply_change
from ccat_hpc.scheduler.breakers import BreakerPolicy
from ccat_hpc.scheduler.pass_metrics import emit_pass
from ccat_hpc.scheduler.plan import STEPS, Follow, Plan, Snapshot, plan
from ccat_hpc.scheduler.snapshot import take_snapshot

#: step → "module:function" of its submission (each takes a factory and a JobSetup)
SUBMITTERS = {
    "checksum": "ccat_hpc.jobs.checksum_batch:submit_checksum_step",
    "package": "ccat_hpc.jobs.package_batch:submit_package",
    "bundle": "ccat_hpc.jobs.bundle_batch:submit_bundle",
    "transfer": "ccat_hpc.jobs.transfer_batch:submit_transfer",
    "archive": "ccat_hpc.jobs.archive_batch:submit_archive",
    "stage": "ccat_hpc.jobs.stage_batch:submit_stage",
    "cleanup": "ccat_hpc.jobs.periodic_batch:submit_cleanup",
    "scrub": "ccat_hpc.jobs.periodic_batch:submit_scrub",
    "campaign": "ccat_hpc.jobs.campaign_batch:submit_campaign",
}


@dataclass
class PassReport:
    plan: Plan
    snapshot: Snapshot
    submitted: dict[str, int] = field(default_factory=dict)  # step → batch id
    idle: list[str] = field(default_factory=list)  # steps that found nothing to claim
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def breaker_policy(factory: sessionmaker[Session], site: str | None) -> BreakerPolicy:
    """The breaker settings of ``site`` (the defaults without one)."""
    if site is None:
        return BreakerPolicy()
    with transaction(factory) as session:
        settings = session.scalar(select(Site.settings).where(Site.name == site)) or {}
    return BreakerPolicy.from_settings(settings.get("pipeline", {}))


def submitter(step: str) -> Callable[..., Any]:
    module, function = SUBMITTERS[step].split(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def one_pass(
    factory: sessionmaker[Session],
    setup_for: Callable[[str], JobSetup],
    *,
    steps: Sequence[str] = STEPS,
    dry_run: bool = False,
    policy: BreakerPolicy | None = None,
) -> PassReport:
    """Take a snapshot, plan, and (unless ``dry_run``) apply the plan."""
    started = time.monotonic()
    with transaction(factory) as session:
        snapshot = take_snapshot(session, steps, policy)
        actions = plan(snapshot)
    report = PassReport(actions, snapshot)
    if not dry_run:
        _apply(factory, setup_for, report)
    report.seconds = time.monotonic() - started
    return report


def _apply(
    factory: sessionmaker[Session], setup_for: Callable[[str], JobSetup], report: PassReport
) -> None:
    actions = report.plan
    lost: set[EndpointKey] = set()
    if actions.breakers:
        with transaction(factory) as session:
            for change in actions.breakers:
                if not apply_change(session, change, report.snapshot.now):
                    lost.add(change.endpoint)
    for follow in actions.follow:
        try:
            track_batch(factory, follow.batch_id, _executor(setup_for, follow))
        except CcatHpcError as exc:
            report.errors.append(f"batch {follow.batch_id}: {exc}")
    for action in actions.submit:
        setup = dataclasses.replace(setup_for(action.step), gate=_held(action.gate, lost))
        try:
            submitted = submitter(action.step)(factory, setup)
        except CcatHpcError as exc:
            report.errors.append(f"{action.step}: {exc}")
            continue
        if submitted is None:
            report.idle.append(action.step)
        else:
            report.submitted[action.step] = submitted.batch_id


def _held(gate: Gate, lost: set[EndpointKey]) -> Gate:
    """The gate, with the endpoints whose change another scheduler wrote first blocked for
    this pass (it sends their probe, if any): never two probes at once."""
    if not lost:
        return gate
    return Gate(blocked=gate.blocked | lost, probing=gate.probing - lost)


def _executor(setup_for: Callable[[str], JobSetup], follow: Follow) -> Executor:
    """The scheduler's own executor when the batch was submitted to one of its kind (it
    knows where its jobs are); otherwise the named one as configured."""
    mine = setup_for(follow.kind).executor
    return mine if mine.name == follow.executor else make_executor(follow.executor)


def describe(report: PassReport, dry_run: bool) -> list[str]:
    """What a pass did (or, dry, would do), one line each."""
    verb = "would" if dry_run else "did"
    lines = [f"{verb}: {change.describe()}" for change in report.plan.breakers]
    lines += [f"{verb}: {action.describe()}" for action in report.plan.follow]
    for action in report.plan.submit:
        outcome = ""
        if not dry_run:
            batch = report.submitted.get(action.step)
            outcome = f" → batch {batch}" if batch else " → nothing ready to claim yet"
        lines.append(f"{verb}: {action.describe()}{outcome}")
    lines += [f"held back: {step}: {why}" for step, why in report.plan.held_back.items()]
    lines += [f"warning: {warning}" for warning in report.plan.warnings]
    lines += [f"error: {error}" for error in report.errors]
    return lines or ["nothing to do"]


def _emit(sink: MetricsSink, factory: sessionmaker[Session], report: PassReport) -> None:
    try:
        emit_pass(
            sink,
            factory,
            report.snapshot,
            seconds=report.seconds,
            submitted=len(report.submitted),
            errors=len(report.errors),
        )
    except Exception as exc:  # ops-db busy or gone: metrics never stop the scheduler
        log_line(f"metrics of this pass skipped: {type(exc).__name__}: {exc}")


def _pass_or_outage(
    factory: sessionmaker[Session],
    setup_for: Callable[[str], JobSetup],
    steps: Sequence[str],
    dry_run: bool,
    policy: BreakerPolicy | None,
    number: int,
    once: bool,
) -> PassReport | None:
    """One pass; None when ops-db could not be reached (a restart, a failover): the
    loop goes on and the next pass tries again (the connection pool is renewed). With
    ``once`` the error is raised (a single pass must say that it failed)."""
    try:
        return one_pass(factory, setup_for, steps=steps, dry_run=dry_run, policy=policy)
    except (DatabaseUnavailable, OperationalError, InterfaceError) as exc:
        if once:
            raise
        reason = operational_error_reason(exc) if isinstance(exc, DBAPIError) else str(exc)
        log_line(f"pass {number}: ops-db unavailable ({reason}); trying again next pass")
        return None


def _idle(report: PassReport) -> bool:
    """Nothing to follow, no breaker moved, and nothing submitted (nothing waiting, or
    nothing a submission could claim: items of another site, an archive not deployed)."""
    actions = report.plan
    return not (actions.follow or actions.breakers or report.submitted)


def run(
    factory: sessionmaker[Session],
    setup_for: Callable[[str], JobSetup],
    *,
    interval: float,
    once: bool,
    dry_run: bool,
    stop: threading.Event,
    steps: Sequence[str] = STEPS,
    policy: BreakerPolicy | None = None,
    metrics: MetricsSink | None = None,
    until_idle: bool = False,
) -> int:
    """Passes until ``stop`` is set (after the pass at hand) or, with ``once``, one pass;
    with ``until_idle`` until a pass finds nothing to follow, submit or change (items
    still waiting out a backoff are left for a later run)."""
    passes = 0
    while True:
        started = time.monotonic()
        passes += 1
        report = _pass_or_outage(factory, setup_for, steps, dry_run, policy, passes, once)
        if report is not None:
            if not dry_run:
                _emit(metrics or NullSink(), factory, report)
            for line in describe(report, dry_run):
                log_line(f"pass {passes}: {line}", error=False)
        idle = report is not None and _idle(report)
        if once or stop.is_set() or (until_idle and idle):
            return passes
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
        if stop.is_set():
            return passes
