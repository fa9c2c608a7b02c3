"""What ops-db holds right now: counts by state and location (``ccat-hpc status``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    CircuitBreaker,
    DataLocation,
    DataTransfer,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    ExecutedObsUnit,
    JobBatch,
    LongTermArchiveTransfer,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    StagingJob,
)
from ccat_hpc.db.states import BreakerState, JobBatchState, RawDataFileState
from ccat_hpc.pipeline.campaigns import campaigns
from ccat_hpc.pipeline.placement import buffer_fills
from ccat_hpc.pipeline.scrub import scrub_progress
from ccat_hpc.step_status import render_steps, step_counts, step_failures
from ccat_hpc.units import human_bytes


def _counts(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).all()
    return {str(key): int(count) for key, count in sorted(rows, key=lambda r: str(r[0]))}


def _file_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(
            RawDataFile.state, func.count(), func.coalesce(func.sum(RawDataFile.size), 0)
        ).group_by(RawDataFile.state)
    ).all()
    return {str(s): {"count": int(c), "bytes": int(b)} for s, c, b in sorted(rows)}


def copy_counts(session: Session) -> list[dict[str, Any]]:
    file_copy = RawDataFilePhysicalCopy.__table__
    package_copy = RawDataPackagePhysicalCopy.__table__
    transfer_copy = DataTransferPackagePhysicalCopy.__table__
    size = func.coalesce(RawDataFile.size, RawDataPackage.size, DataTransferPackage.size, 0)
    rows = session.execute(
        select(
            DataLocation.name,
            PhysicalCopy.type,
            PhysicalCopy.state,
            func.count(),
            func.coalesce(func.sum(size), 0),
        )
        .select_from(PhysicalCopy)
        .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
        .outerjoin(file_copy, file_copy.c.id == PhysicalCopy.id)
        .outerjoin(RawDataFile, RawDataFile.id == file_copy.c.raw_data_file_id)
        .outerjoin(package_copy, package_copy.c.id == PhysicalCopy.id)
        .outerjoin(RawDataPackage, RawDataPackage.id == package_copy.c.raw_data_package_id)
        .outerjoin(transfer_copy, transfer_copy.c.id == PhysicalCopy.id)
        .outerjoin(
            DataTransferPackage,
            DataTransferPackage.id == transfer_copy.c.data_transfer_package_id,
        )
        .group_by(DataLocation.name, PhysicalCopy.type, PhysicalCopy.state)
        .order_by(DataLocation.name, PhysicalCopy.type, PhysicalCopy.state)
    ).all()
    return [
        {"location": loc, "kind": kind, "state": str(state), "count": int(n), "bytes": int(b)}
        for loc, kind, state, n, b in rows
    ]


PROBLEM_STATES = (RawDataFileState.CORRUPT, RawDataFileState.MISSING)
SHOWN_PROBLEMS = 10
PROBLEM_COMMAND = "ccat-hpc files list --state corrupt --state missing"


def _problem_files(session: Session, limit: int = SHOWN_PROBLEMS) -> list[dict[str, Any]]:
    """The newest corrupt or missing files with where they are and why (from ops-db)."""
    rows = session.execute(
        select(
            RawDataFile.id,
            DataLocation.name,
            RawDataFile.relative_path,
            RawDataFile.state,
            RawDataFile.failure_reason,
        )
        .join(DataLocation, DataLocation.id == RawDataFile.source_location_id)
        .where(RawDataFile.state.in_(PROBLEM_STATES))
        .order_by(RawDataFile.id.desc())
        .limit(limit)
    ).all()
    return [
        {"id": i, "location": loc, "path": path, "state": str(state), "reason": reason}
        for i, loc, path, state, reason in rows
    ]


OPEN_BATCHES = (JobBatchState.PENDING, JobBatchState.SUBMITTED, JobBatchState.RUNNING)


def _running_batches(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(JobBatch).where(JobBatch.state.in_(OPEN_BATCHES)).order_by(JobBatch.id)
    )
    return [
        {
            "id": b.id,
            "kind": b.kind,
            "executor": b.executor,
            "state": b.state.value,
            "tasks": b.task_count,
            "submitted_at": b.submitted_at.isoformat() if b.submitted_at else None,
        }
        for b in rows
    ]


def _open_breakers(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(CircuitBreaker)
        .where(CircuitBreaker.state != BreakerState.CLOSED)
        .order_by(CircuitBreaker.name)
    )
    return [
        {
            "scope": b.scope,
            "name": b.name,
            "state": b.state.value,
            "opened_at": b.opened_at.isoformat() if b.opened_at else None,
            "failures": b.failures,
            "reason": b.reason,
        }
        for b in rows
    ]


def _buffers(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "site": f.site,
            "location": f.location,
            "used_bytes": f.used_bytes,
            "capacity_bytes": f.capacity_bytes,
            "fill": round(f.fill, 4),
            "full": f.full,
        }
        for f in buffer_fills(session)
        if f.capacity_bytes
    ]


def collect_status(session: Session) -> dict[str, Any]:
    """A JSON-ready snapshot of ops-db."""
    return {
        "problem_files": _problem_files(session),
        "executed_obs_units": _counts(session, ExecutedObsUnit.status),
        "raw_data_files": _file_counts(session),
        "raw_data_packages": _counts(session, RawDataPackage.state),
        "data_transfer_packages": _counts(session, DataTransferPackage.state),
        "data_transfers": _counts(session, DataTransfer.state),
        "long_term_archive_transfers": _counts(session, LongTermArchiveTransfer.state),
        "staging_jobs": _counts(session, StagingJob.state),
        "physical_copies": copy_counts(session),
        "steps": step_counts(session),
        "step_failures": step_failures(session),
        "running_batches": _running_batches(session),
        "open_breakers": _open_breakers(session),
        "buffers": _buffers(session),
        "campaigns": [c.as_json() for c in campaigns(session, open_only=True)],
        "scrub": scrub_progress(session, utcnow()),
    }


def _section(title: str, counts: dict[str, int]) -> list[str]:
    total = sum(counts.values())
    detail = ", ".join(f"{state} {n}" for state, n in counts.items())
    return [f"{title:<28} {total:>8}" + (f"   ({detail})" if detail else "")]


def _problem_lines(status: dict[str, Any]) -> list[str]:
    files = status["raw_data_files"]
    counts = {s.value: files.get(s.value, {}).get("count", 0) for s in PROBLEM_STATES}
    total = sum(counts.values())
    if not total:
        return []
    detail = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    lines = ["", f"files needing attention: {detail} (all: `{PROBLEM_COMMAND}`)"]
    for row in status["problem_files"]:
        lines.append(f"  {row['state']:<8} file {row['id']}: {row['reason']}")
    if total > len(status["problem_files"]):
        lines.append(f"  … and {total - len(status['problem_files'])} more")
    return lines


def render_status(status: dict[str, Any]) -> str:
    """The snapshot as a short text report for operators."""
    lines = _section("executed obs units", status["executed_obs_units"])
    files = status["raw_data_files"]
    file_total = sum(v["count"] for v in files.values())
    byte_total = sum(v["bytes"] for v in files.values())
    detail = ", ".join(f"{s} {v['count']}" for s, v in files.items())
    lines.append(
        f"{'raw data files':<28} {file_total:>8}   {human_bytes(byte_total)}"
        + (f"   ({detail})" if detail else "")
    )
    for key, title in (
        ("raw_data_packages", "raw data packages"),
        ("data_transfer_packages", "data transfer packages"),
        ("data_transfers", "data transfers"),
        ("long_term_archive_transfers", "long-term archive transfers"),
        ("staging_jobs", "staging jobs"),
    ):
        lines += _section(title, status[key])
    lines += _problem_lines(status)
    lines += render_steps(status["steps"], status["step_failures"])
    lines += _scheduler_lines(status)
    lines += _campaign_lines(status["campaigns"])
    lines += scrub_lines(status["scrub"])
    lines.append("")
    lines.append("physical copies by location:")
    if not status["physical_copies"]:
        lines.append("  (none)")
    for row in status["physical_copies"]:
        lines.append(
            f"  {row['location']:<28} {row['kind']:<22} {row['state']:<17} "
            f"{row['count']:>8}   {human_bytes(row['bytes'])}"
        )
    return "\n".join(lines)


def _scheduler_lines(status: dict[str, Any]) -> list[str]:
    """Running batches, open breakers and buffer fill (each only when there is any)."""
    lines: list[str] = []
    if status["running_batches"]:
        lines += ["", "running batches:"]
        lines += [
            f"  batch {b['id']:<6} {b['kind']:<10} {b['executor']:<6} {b['state']:<10} "
            f"{b['tasks']} task(s)"
            for b in status["running_batches"]
        ]
    if status["open_breakers"]:
        lines += ["", "open breakers (no work goes there; `ccat-hpc breaker reset NAME`):"]
        lines += [
            f"  {b['scope']} {b['name']}: {b['state']} since {b['opened_at']}, "
            f"{b['failures']} failure(s), last: {b['reason']}"
            for b in status["open_breakers"]
        ]
    if status["buffers"]:
        lines += ["", "buffers:"]
        lines += [
            f"  {b['location']:<28} {b['fill']:>6.0%} of {human_bytes(b['capacity_bytes'])}"
            + ("   FULL: new data goes elsewhere" if b["full"] else "")
            for b in status["buffers"]
        ]
    return lines


def _campaign_lines(open_campaigns: list[dict[str, Any]]) -> list[str]:
    if not open_campaigns:
        return []
    lines = ["", "campaigns (`ccat-hpc campaign status ID`):"]
    for c in open_campaigns:
        lines.append(
            f"  {c['campaign_id']:<5} {c['kind']:<10} {c['state']:<7} "
            f"{c['finished_items']}/{c['items']} items, "
            f"{human_bytes(c['done_bytes'])} of {human_bytes(c['total_bytes'])}  {c['name']}"
        )
    return lines


def scrub_lines(sites: list[dict[str, Any]]) -> list[str]:
    """The scrub's progress through each site's archive and what it found."""
    if not sites:
        return []
    lines = ["", "integrity scrub of the archive:"]
    for s in sites:
        budget = s["bytes_per_day"]
        if not budget:
            lines.append(f"  {s['site']}: off (pipeline.scrub_bytes_per_day is 0)")
            continue
        share = s["verified_bytes_within_pass"] / s["bytes"] if s["bytes"] else 0.0
        lines.append(
            f"  {s['site']}: {s['copies']} archive copies, {human_bytes(s['bytes'])}; budget "
            f"{human_bytes(budget)}/day ({human_bytes(s['read_last_day'])} read in the last "
            f"24 h); a full pass takes {max(s['full_pass_days'], 0.0):.2f} day(s)"
        )
        lines.append(
            f"    verified within one pass: {s['verified_within_pass']} of {s['copies']} "
            f"copies ({share:.0%} of the bytes); oldest verification "
            f"{s['oldest_verification'] or 'never'}"
        )
        repairs = ", ".join(f"{n} {state}" for state, n in sorted(s["repairs"].items()))
        found = s["found"]
        lines.append(
            f"    found in 30 days: {s['found_count']} damaged or missing"
            + (f"; repairs: {repairs}" if repairs else "")
        )
        lines += [
            f"      {f['outcome']:<8} {f['package']} at {f['location']} "
            f"({f['checked_at'][:19]}): {f['reason']}"
            for f in found[:5]
        ]
    return lines
