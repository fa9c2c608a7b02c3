"""``ccat-hpc breaker``: the circuit breakers of routes and locations (list, reset)."""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.session import transaction


@click.group()
def breaker() -> None:
    """Circuit breakers: a route or location whose attempts keep failing gets no work.

    The scheduler opens a breaker after a run of failures, lets one probe item through
    after the cool-down, and closes it when the probe succeeds (settings: the site's
    pipeline.breaker_* keys). An operator who fixed the endpoint resets it at once.
    """


def _as_dict(row: Any) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "scope": row.scope,
        "name": row.name,
        "state": row.state.value,
        "failures": row.failures,
        "reason": row.reason,
        "opened_at": when(row.opened_at),
        "half_opened_at": when(row.half_opened_at),
        "closed_at": when(row.closed_at),
    }


@breaker.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """Every breaker that ever tripped, with its state and last reason."""
    from ccat_hpc.scheduler.breaker_records import all_breakers

    with transaction(app.sessions()) as session:
        rows = [_as_dict(row) for row in all_breakers(session)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no breaker has tripped (every route and location gets work)")
    for row in rows:
        since = row["opened_at"] if row["state"] != "closed" else row["closed_at"]
        click.echo(
            f"{row['scope']:<8} {row['name']:<28} {row['state']:<9} since {since}"
            + (f"   last: {row['reason']}" if row["state"] != "closed" else "")
        )


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in this environment
        return "an operator"


@breaker.command("reset")
@click.argument("names", nargs=-1)
@click.option("--all", "reset_all", is_flag=True, help="Every open or half-open breaker.")
@pass_app
def reset_command(app: AppContext, names: tuple[str, ...], reset_all: bool) -> None:
    """Close the breakers of NAMES (routes or locations): work goes there again now."""
    from ccat_hpc.scheduler.breaker_records import reset

    if bool(names) == reset_all:
        raise click.UsageError("give breaker NAMES, or --all")
    with transaction(app.sessions()) as session:
        closed = reset(session, names, utcnow(), who=_who())
    click.echo(f"closed: {', '.join(closed)}" if closed else "nothing to reset (all closed)")
