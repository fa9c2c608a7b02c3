"""Per pipeline step: how many items wait, run, wait again after a failure, failed for
good, and are done; and the items whose last try failed, with the reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DataTransferPackage, RawDataFile, RawDataPackage
from ccat_hpc.db.states import PackageState, RawDataFileState

F = RawDataFileState
P = PackageState
SHOWN_FAILURES = 10
#: step → (model, waiting state, working state, done states)
_PACKAGE_STEPS: dict[str, tuple[Any, PackageState, PackageState, tuple[PackageState, ...]]] = {
    "package": (
        RawDataPackage,
        P.PLANNED,
        P.BUILDING,
        (P.BUILT, P.TRANSFERRING, P.TRANSFERRED, P.ARCHIVING, P.ARCHIVED),
    ),
    "bundle": (
        DataTransferPackage,
        P.PLANNED,
        P.BUILDING,
        (P.BUILT, P.TRANSFERRING, P.TRANSFERRED, P.ARCHIVING, P.ARCHIVED),
    ),
    "transfer": (
        DataTransferPackage,
        P.BUILT,
        P.TRANSFERRING,
        (P.TRANSFERRED, P.ARCHIVING, P.ARCHIVED),
    ),
    "archive": (DataTransferPackage, P.TRANSFERRED, P.ARCHIVING, (P.ARCHIVED,)),
}


def _states(
    session: Session, model: Any, only: tuple[PackageState, ...] = ()
) -> dict[PackageState, tuple[int, int, int]]:
    """state → (count, waiting out a backoff, waiting for an operator); ``only``: just
    these states (through the state index, not the whole history)."""
    retrying = func.sum(case((model.failure_retryable.is_(True), 1), else_=0))
    held = func.sum(case((model.failure_retryable.is_(False), 1), else_=0))
    query = select(model.state, func.count(), retrying, held).group_by(model.state)
    if only:
        query = query.where(model.state.in_(only))
    rows = session.execute(query).all()
    return {state: (int(n), int(r or 0), int(h or 0)) for state, n, r, h in rows}


def _checksum_step(session: Session, only: tuple[RawDataFileState, ...] = ()) -> dict[str, int]:
    query = select(RawDataFile.state, func.count()).group_by(RawDataFile.state)
    if only:
        query = query.where(RawDataFile.state.in_(only))
    rows = dict(session.execute(query).all())
    return {
        "waiting": int(rows.get(F.FILED, 0)),
        "running": int(rows.get(F.CHECKSUMMING, 0)),
        "retrying": 0,
        "operator": int(rows.get(F.CORRUPT, 0)) + int(rows.get(F.MISSING, 0)),
        "done": sum(int(rows.get(s, 0)) for s in (F.CHECKSUMMED, F.PACKAGED, F.ARCHIVED)),
    }


def _package_step(states: dict[PackageState, tuple[int, int, int]], step: str) -> dict[str, int]:
    _, waiting, working, done = _PACKAGE_STEPS[step]
    count, retrying, held = states.get(waiting, (0, 0, 0))
    permanent = states.get(P.FAILED, (0, 0, 0))[0] if waiting == P.PLANNED else 0
    return {
        "waiting": count - retrying - held,
        "running": states.get(working, (0, 0, 0))[0],
        "retrying": retrying,
        "operator": held + permanent,
        "done": sum(states.get(s, (0, 0, 0))[0] for s in done),
    }


def step_counts(session: Session) -> dict[str, dict[str, int]]:
    """Items per step: waiting, running, retrying (a backoff), needing an operator, done."""
    packages = _states(session, RawDataPackage)
    transfers = _states(session, DataTransferPackage)
    counts = {"checksum": _checksum_step(session)}
    for step, (model, *_rest) in _PACKAGE_STEPS.items():
        counts[step] = _package_step(packages if model is RawDataPackage else transfers, step)
    counts["package"]["files_waiting"] = int(
        session.scalar(
            select(func.count()).where(
                RawDataFile.state == F.CHECKSUMMED, RawDataFile.raw_data_package_id.is_(None)
            )
        )
        or 0
    )
    return counts


#: the states an item is in before its steps are done (what queue depths count)
UNFINISHED_PACKAGES = tuple(s for s in PackageState if s is not P.ARCHIVED)
UNFINISHED_FILES = (F.FILED, F.CHECKSUMMING, F.CORRUPT, F.MISSING)


def queue_counts(session: Session) -> dict[str, dict[str, int]]:
    """As :func:`step_counts` without "done": only unfinished items are read, so the cost
    follows the work waiting, not the archived history (for every scheduler pass)."""
    packages = _states(session, RawDataPackage, UNFINISHED_PACKAGES)
    transfers = _states(session, DataTransferPackage, UNFINISHED_PACKAGES)
    counts = {"checksum": _checksum_step(session, UNFINISHED_FILES)}
    for step, (model, *_rest) in _PACKAGE_STEPS.items():
        counts[step] = _package_step(packages if model is RawDataPackage else transfers, step)
    return counts


def step_failures(session: Session, limit: int = SHOWN_FAILURES) -> list[dict[str, Any]]:
    """The packages whose last try failed (waiting again, or FAILED), newest first."""
    found: list[dict[str, Any]] = []
    for kind, model in (("package", RawDataPackage), ("transfer package", DataTransferPackage)):
        rows = session.execute(
            select(model.id, model.name, model.state, model.failure_retryable, model.failure_reason)
            .where(
                model.failure_reason.is_not(None),
                or_(model.state == P.FAILED, model.claimed_by_batch_id.is_(None)),
                model.state.not_in((P.ARCHIVED,)),
            )
            .order_by(model.id.desc())
            .limit(limit)
        ).all()
        found += [
            {
                "kind": kind,
                "id": i,
                "name": name,
                "state": str(state),
                "retryable": retryable,
                "reason": reason,
            }
            for i, name, state, retryable, reason in rows
        ]
    return found[:limit]


def render_steps(counts: dict[str, dict[str, int]], failures: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        f"{'pipeline steps':<28} {'waiting':>8} {'running':>8} {'retrying':>9} "
        f"{'operator':>8} {'done':>8}",
    ]
    for step, row in counts.items():
        lines.append(
            f"  {step:<26} {row['waiting']:>8} {row['running']:>8} {row['retrying']:>9} "
            f"{row['operator']:>8} {row['done']:>8}"
        )
    if counts.get("package", {}).get("files_waiting"):
        lines.append(
            f"  ({counts['package']['files_waiting']} checksummed file(s) wait for a package)"
        )
    if failures:
        lines.append("")
        lines.append(
            "last failures (retrying: tried again after a backoff; operator: needs a person):"
        )
        for failure in failures:
            verdict = "retrying" if failure["retryable"] else "operator"
            lines.append(f"  {verdict:<8} {failure['kind']} {failure['name']}: {failure['reason']}")
    return lines
