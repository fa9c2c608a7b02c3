"""``ccat-hpc campaign``: operators' bulk work over a selection, tracked item by item."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.inventory_cmds import time_option
from ccat_hpc.cli.stage_cmds import WAIT_TIMED_OUT, current_user
from ccat_hpc.db.session import transaction
from ccat_hpc.units import human_bytes

KIND_CHOICE = click.Choice(["re-archive", "re-verify", "re-stage"])


@click.group()
def campaign() -> None:
    """Bulk work over thousands of packages, without starving the live pipeline.

    \b
    Kinds:
      re-verify   read every byte of the selected archive copies again; a CORRUPT or
                  MISSING one is repaired from another VERIFIED copy where one exists
      re-archive  write the selected packages to the archive location --to, from a
                  VERIFIED copy (after an S3 migration, onto a repaired store)
      re-stage    stage the selected observations to a PROCESSING location (--to)
                  for a user (--user), as staging requests

    \b
    The scheduler runs a campaign's items as job arrays throttled to its share of the
    site's task slots (pipeline.task_slots × pipeline.campaign_share, or --share), one
    batch at a time; `campaign status` shows the progress and each failed item's reason.

    \b
    Example:
      ccat-hpc campaign create re-verify --location cologne-archive --until 2027-01-01
      ccat-hpc campaign status 1
      ccat-hpc campaign pause 1 --reason "S3 maintenance"; ccat-hpc campaign resume 1
      ccat-hpc campaign retry 1          # its failed items again, once the cause is mended
    """


@campaign.command("create")
@click.argument("kind", type=KIND_CHOICE)
@click.option("--site", metavar="NAME", help="Copies at this site's locations.")
@click.option("--location", metavar="NAME", help="Copies at this location.")
@time_option("--since", False, "Observations started at or after this time.")
@time_option("--until", True, "Observations started before this time (a date: that whole day).")
@click.option("--instrument", metavar="NAME", help="Instrument (e.g. PrimeCam, CHAI).")
@click.option(
    "--state",
    metavar="STATE",
    help="Only packages whose copy at the selected locations is in this state (e.g. missing).",
)
@click.option("--package", "packages", multiple=True, metavar="NAME", help="Package (repeatable).")
@click.option("--to", metavar="LOCATION", help="re-archive: the archive; re-stage: PROCESSING.")
@click.option(
    "--share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Share of the task slots (at most the site's campaign_share, the default).",
)
@click.option("--name", default="", help="A name operators recognise.")
@click.option("--user", metavar="NAME", help="re-stage: stage for this user (default: you).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="re-stage: keep days.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--id-only", is_flag=True, help="Print only the campaign id (for scripts).")
@pass_app
def create_command(app: AppContext, /, kind: str, **options: Any) -> None:
    """Queue a campaign of KIND over the selection (every option given narrows it)."""
    from ccat_hpc.jobs.campaign_batch import queue_campaign
    from ccat_hpc.pipeline.campaigns import CampaignRequest, CampaignSelection

    as_json = options.pop("as_json")
    id_only = options.pop("id_only")
    selection = CampaignSelection(
        site=options["site"],
        location=options["location"],
        since=options["since"],
        until=options["until"],
        instrument=options["instrument"],
        state=options["state"],
        packages=tuple(options["packages"]),
    )
    request = CampaignRequest(
        kind=kind,
        selection=selection,
        to=options["to"],
        share=options["share"],
        created_by=current_user(),
        name=options["name"],
        user=options["user"],
        keep_days=options["days"],
    )
    with transaction(app.sessions()) as session:
        shown = queue_campaign(session, request)
    if as_json or id_only:
        click.echo(json.dumps(shown) if as_json else str(shown["id"]))
        return
    click.echo(
        f"campaign {shown['id']}: {kind} of {shown['items']} item(s), "
        f"{human_bytes(shown['bytes'])}; at most {shown['tasks_at_once']} task(s) at once "
        f"({shown['share']:.0%} of the slots)"
    )
    click.echo(f"  follow it with: ccat-hpc campaign status {shown['id']}")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _status_lines(shown: Any) -> list[str]:
    states = ", ".join(f"{n} {s}" for s, n in shown.by_state.items()) or "none"
    outcomes = ", ".join(f"{n} {o}" for o, n in shown.by_outcome.items()) or "none yet"
    percent = shown.finished_items / shown.items if shown.items else 1.0
    lines = [
        f"campaign {shown.campaign_id} ({shown.kind}) {shown.name!r}: {shown.state}",
        f"  created by {shown.created_by} at {_when(shown.created_at)}; "
        f"finished {_when(shown.finished_at)}",
        f"  selection: {json.dumps(shown.selection, sort_keys=True)}"
        + (f"; target {shown.target}" if shown.target else ""),
        f"  progress: {shown.finished_items} of {shown.items} item(s) ({percent:.0%}), "
        f"{human_bytes(shown.done_bytes)} of {human_bytes(shown.total_bytes)}; "
        f"{human_bytes(shown.bytes_read)} read",
        f"  items: {states}",
        f"  outcomes: {outcomes}",
        f"  share of the slots: {shown.share:.0%}",
    ]
    if shown.note:
        lines.append(f"  note: {shown.note}")
    lines += [f"  failed {item}: {detail}" for item, detail in shown.failures]
    return lines


@campaign.command("status")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status_command(app: AppContext, campaign_id: int, as_json: bool) -> None:
    """Progress, outcomes and failed items of one campaign."""
    from ccat_hpc.pipeline.campaigns import progress

    with transaction(app.sessions()) as session:
        shown = progress(session, campaign_id)
    if as_json:
        click.echo(json.dumps(shown.as_json(), indent=2))
        return
    click.echo("\n".join(_status_lines(shown)))


@campaign.command("wait")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True)
@pass_app
def wait_command(app: AppContext, campaign_id: int, timeout: float | None, interval: float) -> None:
    """Print its progress every --interval until it ends: exit 0 when DONE with every
    item done, 1 when an item FAILED or the campaign was cancelled, 75 on --timeout
    (a paused campaign is waited for)."""
    from ccat_hpc.pipeline.campaigns import progress

    started = time.monotonic()
    while True:
        with transaction(app.sessions()) as session:
            shown = progress(session, campaign_id)
        click.echo(_progress_line(shown))
        if shown.state in ("done", "cancelled"):
            failed = shown.by_state.get("failed", 0)
            for item, detail in shown.failures:
                click.echo(f"failed {item}: {detail}", err=True)
            raise SystemExit(0 if shown.state == "done" and not failed else 1)
        if timeout is not None and time.monotonic() - started >= timeout:
            click.echo(f"campaign {campaign_id} still {shown.state} after {timeout} s", err=True)
            raise SystemExit(WAIT_TIMED_OUT)
        time.sleep(interval)


def _progress_line(shown: Any) -> str:
    outcomes = ", ".join(f"{n} {o}" for o, n in shown.by_outcome.items()) or "none yet"
    return (
        f"{datetime.now(UTC).isoformat(timespec='seconds')} campaign {shown.campaign_id} "
        f"{shown.state}: {shown.finished_items}/{shown.items} items, "
        f"{human_bytes(shown.done_bytes)}/{human_bytes(shown.total_bytes)} ({outcomes})"
    )


@campaign.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also campaigns that ended.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_command(app: AppContext, show_all: bool, as_json: bool) -> None:
    """The active and paused campaigns (--all: every one)."""
    from ccat_hpc.pipeline.campaigns import campaigns

    with transaction(app.sessions()) as session:
        found = campaigns(session, open_only=not show_all)
    if as_json:
        click.echo(json.dumps([c.as_json() for c in found], indent=2))
        return
    if not found:
        click.echo("no campaign" + ("" if show_all else " active or paused (--all: every one)"))
    for c in found:
        click.echo(
            f"{c.campaign_id:>5} {c.kind:<10} {c.state:<9} {c.finished_items}/{c.items} items  "
            f"{human_bytes(c.done_bytes)}/{human_bytes(c.total_bytes)}  {c.name}"
        )


def _control(app: AppContext, campaign_id: int, verb: str, note: str | None) -> None:
    from ccat_hpc.pipeline import campaigns

    with transaction(app.sessions()) as session:
        if verb == "pause":
            campaigns.pause(session, campaign_id, note)
            click.echo(f"campaign {campaign_id} paused: running tasks finish their current item")
        elif verb == "resume":
            campaigns.resume(session, campaign_id)
            click.echo(f"campaign {campaign_id} active again")
        else:
            cancelled = campaigns.cancel(session, campaign_id, note)
            click.echo(f"campaign {campaign_id} cancelled: {cancelled} item(s) not started")


@campaign.command("pause")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.option("--reason", help="Why (shown in status).")
@pass_app
def pause_command(app: AppContext, campaign_id: int, reason: str | None) -> None:
    """Take no more of its items; the items being worked on finish."""
    _control(app, campaign_id, "pause", reason)


@campaign.command("resume")
@click.argument("campaign_id", type=click.IntRange(min=1))
@pass_app
def resume_command(app: AppContext, campaign_id: int) -> None:
    """Go on with a paused campaign."""
    _control(app, campaign_id, "resume", None)


@campaign.command("retry")
@click.argument("campaign_id", type=click.IntRange(min=1))
@pass_app
def retry_command(app: AppContext, campaign_id: int) -> None:
    """Try its FAILED items again (after the cause is mended); a DONE campaign goes on."""
    from ccat_hpc.pipeline.campaigns import retry

    with transaction(app.sessions()) as session:
        again = retry(session, campaign_id)
    click.echo(f"campaign {campaign_id}: {again} failed item(s) queued again")


@campaign.command("cancel")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.option("--reason", help="Why (shown in status).")
@pass_app
def cancel_command(app: AppContext, campaign_id: int, reason: str | None) -> None:
    """Cancel it: its items not started are CANCELLED; what was done stays done."""
    _control(app, campaign_id, "cancel", reason)
