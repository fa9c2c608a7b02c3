"""``ccat-hpc cleanup``: what retention lets go, with the proof that it is safe; and doing it."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.units import human_bytes


@click.group()
def cleanup() -> None:
    """Free SOURCE, BUFFER and PROCESSING storage by each location's retention policy.

    A copy goes when its location's retention has passed (retention_days; on
    PROCESSING, its staging's expiry or release) and its data has the site's
    pipeline.archive_copies_required VERIFIED copies in the LONG_TERM_ARCHIVE, checked
    again on the archive right before the bytes are deleted. Nothing in a
    LONG_TERM_ARCHIVE is ever deleted. The scheduler runs cleanup every
    pipeline.cleanup_interval_minutes.
    """


def _proof(decision: Any) -> list[dict[str, Any]]:
    return [
        {
            "package": a.package,
            "archive": a.location,
            "verified_at": a.verified_at.isoformat() if a.verified_at else None,
        }
        for a in decision.verdict.proof
    ]


def _row(decision: Any) -> dict[str, Any]:
    candidate = decision.candidate
    return {
        "location": candidate.copy.location,
        "what": candidate.what,
        "name": candidate.name,
        "bytes": candidate.size,
        "copy_id": candidate.copy.copy_id,
        "delete": decision.verdict.delete,
        "reason": decision.verdict.reason,
        "proof": _proof(decision) if decision.verdict.delete else [],
    }


def _proof_text(row: dict[str, Any]) -> str:
    seen = sorted({(p["archive"], (p["verified_at"] or "")[:19]) for p in row["proof"]})
    return ", ".join(f"{where} (verified {when})" for where, when in seen)


@cleanup.command("plan")
@click.option("--location", metavar="NAME", help="Only this location.")
@click.option(
    "--kept", is_flag=True, help="Also list copies past retention that are kept, and why."
)
@click.option("--limit", type=click.IntRange(min=1), help="List at most this many copies.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def plan_command(
    app: AppContext, location: str | None, kept: bool, limit: int | None, as_json: bool
) -> None:
    """What cleanup would delete now, where, how many bytes, and the archive copies
    that make it safe (read-only)."""
    from ccat_hpc.pipeline.cleanup import plan_cleanup

    rows: list[dict[str, Any]] = []
    totals: dict[str, list[int]] = {}
    kept_reasons: dict[str, int] = {}
    for decision in plan_cleanup(app.sessions(), location=location):
        row = _row(decision)
        if row["delete"]:
            tally = totals.setdefault(row["location"], [0, 0])
            tally[0] += 1
            tally[1] += row["bytes"]
        else:
            kept_reasons[row["reason"]] = kept_reasons.get(row["reason"], 0) + 1
        if (row["delete"] or kept) and (limit is None or len(rows) < limit):
            rows.append(row)
    if as_json:
        summary = {k: {"copies": n, "bytes": b} for k, (n, b) in totals.items()}
        click.echo(json.dumps({"copies": rows, "delete": summary, "kept": kept_reasons}, indent=2))
        return
    for row in rows:
        verb = "delete" if row["delete"] else "keep  "
        why = _proof_text(row) if row["delete"] else row["reason"]
        click.echo(
            f"{verb} {row['location']:<26} {row['what']:<16} {row['name']}  "
            f"{human_bytes(row['bytes'])}  {why}"
        )
    if not totals:
        click.echo("nothing to delete now")
    for where, (count, size) in sorted(totals.items()):
        click.echo(f"would delete at {where}: {count} copies, {human_bytes(size)}")
    for reason, count in sorted(kept_reasons.items(), key=lambda item: -item[1])[:10]:
        click.echo(f"kept past retention: {count} copies: {reason}")


@cleanup.command("run")
@click.option("--location", metavar="NAME", help="Only this location.")
@click.option("--limit", type=click.IntRange(min=1), help="Delete at most this many copies.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def run_command(app: AppContext, location: str | None, limit: int | None, as_json: bool) -> None:
    """Delete what `cleanup plan` lists, each copy after its archive copies are checked
    again on the archive; exit 1 when a deletion failed (it is taken again next run)."""
    from ccat_hpc.pipeline.cleanup import run_cleanup

    report = run_cleanup(app.sessions(), dict(os.environ), location=location, limit=limit)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            click.echo(problem)
        for where, (count, size) in sorted(report.by_location.items()):
            click.echo(f"deleted at {where}: {count} copies, {human_bytes(size)}")
        click.echo(
            f"cleanup: {report.deleted} deleted ({human_bytes(report.deleted_bytes)}), "
            f"{report.kept} kept by policy, {report.refused} refused by the re-check, "
            f"{report.failed} failed"
        )
    if report.failed:
        raise SystemExit(1)
