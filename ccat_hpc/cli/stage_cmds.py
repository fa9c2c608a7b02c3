"""``ccat-hpc stage``: scientists bring archived observations to PROCESSING storage."""

from __future__ import annotations

import getpass
import json
import os
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.inventory_cmds import time_option
from ccat_hpc.cli.remote import api_options
from ccat_hpc.db.session import transaction
from ccat_hpc.units import human_bytes

if TYPE_CHECKING:
    from ccat_hpc.pipeline.staging_request import Selection

#: `stage wait` exit statuses: READY 0; FAILED, cancelled or released 1; timed out 75
WAIT_TIMED_OUT = 75


def current_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@click.group()
def stage() -> None:
    """Stage archived data to PROCESSING storage for processing (on RAMSES).

    \b
    A request names observations (program, obs unit, source, instrument, module, time
    range or execution ids), optionally some of their files (--files GLOB). The
    scheduler stages it as a job: each file is fetched from the long-term archive
    (only its bytes, by ranged reads), checked against its checksum, and linked into
    the request's folder, which shows STAGING, then READY (the files' xxh3-128 sums:
    `xxh128sum -c READY`) or FAILED (the reason). Files staged already are reused.

    \b
    Example (sbatch/stage.sbatch --help shows the same as a Slurm job chain):
      ID=$(ccat-hpc stage request --obs-unit ECDFS-deep-001 --files '*/280GHz/*' --id-only)
      ccat-hpc stage wait "$ID" && ls "$(ccat-hpc stage status "$ID" --folder)"
      ccat-hpc stage release "$ID"      # when done: its files may be cleaned up
    """


@stage.command("request")
@api_options
@click.option("--program", metavar="NAME", help="Observing program (name or short name).")
@click.option("--obs-unit", metavar="NAME", help="Obs unit.")
@click.option("--source", metavar="NAME", help="Source (target) name.")
@click.option("--instrument", metavar="NAME", help="Instrument (e.g. PrimeCam, CHAI).")
@click.option("--module", metavar="NAME", help="Instrument module (of --instrument when given).")
@time_option("--since", False, "Started at or after this time (ISO 8601 or a UTC date).")
@time_option("--until", True, "Started before this time; a date includes that whole day (UTC).")
@click.option(
    "--execution", "executions", multiple=True, type=click.UUID, help="Execution id (repeatable)."
)
@click.option("--files", metavar="GLOB", help="Only files whose path matches, e.g. '*/det_0001*'.")
@click.option("--location", metavar="NAME", help="PROCESSING location (default: the only one).")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True, max=3650),
    help="Keep the data this long (default: the location's retention).",
)
@click.option("--name", default="", help="A name to recognise the request by.")
@click.option("--user", default=None, help="Whose request (default: $USER).")
@click.option("--id-only", is_flag=True, help="Print only the request id (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def request_command(
    app: AppContext,
    program: str | None,
    obs_unit: str | None,
    source: str | None,
    instrument: str | None,
    module: str | None,
    since: datetime | None,
    until: datetime | None,
    executions: tuple[uuid.UUID, ...],
    files: str | None,
    location: str | None,
    days: float | None,
    name: str,
    user: str | None,
    id_only: bool,
    as_json: bool,
) -> None:
    """Ask for data to be staged; prints the request id and its folder."""
    from ccat_hpc.pipeline.staging_request import Selection

    wanted = Selection(
        program, obs_unit, source, instrument, module, since, until, executions, files
    )
    asked = {"location": location, "days": days, "name": name}
    client = app.api_client()
    if client is not None:
        body = wanted.as_json() | {k: v for k, v in asked.items() if v} | {"user": user}
        made = client.post("/api/v1/staging", body={k: v for k, v in body.items() if v})
    else:
        made = _request_here(app, wanted, user or current_user(), location, days, name)
    if id_only:
        click.echo(made["id"])
    elif as_json:
        click.echo(
            json.dumps(
                {k: made[k] for k in ("id", "folder", "files", "bytes")}
                | {"release_after": made["release_after"]}
            )
        )
    else:
        click.echo(
            f"staging request {made['id']}: {made['files']} file(s), {human_bytes(made['bytes'])}"
        )
        if made["already_staged"]:
            click.echo(f"  {made['already_staged']} of them are staged already and are reused")
        click.echo(f"  folder: {made['folder']}")
        click.echo(f"  kept until {made['release_after']}")
        click.echo(f"  wait for it: ccat-hpc stage wait {made['id']}")


def _request_here(
    app: AppContext,
    wanted: Selection,
    user: str,
    location: str | None,
    days: float | None,
    name: str,
) -> dict[str, Any]:
    from ccat_hpc.inventory.staging import location_root
    from ccat_hpc.pipeline.staging_request import create_request

    with transaction(app.sessions()) as session:
        made = create_request(session, wanted, user, location=location, days=days, name=name)
        root = location_root(session, made.id)
    return {
        "id": made.id,
        "folder": f"{root}/{made.folder}" if root else made.folder,
        "files": made.files,
        "bytes": made.bytes,
        "already_staged": made.already_staged,
        "release_after": made.release_after.isoformat(timespec="seconds"),
    }


def _describe(app: AppContext, staging_id: int) -> dict[str, Any]:
    client = app.api_client()
    if client is not None:
        shown: dict[str, Any] = client.get(f"/api/v1/staging/{staging_id}")
        return shown
    from ccat_hpc.inventory.staging import describe

    with transaction(app.sessions()) as session:
        return describe(session, staging_id)


@stage.command("status")
@api_options
@click.argument("staging_id", type=int)
@click.option("--folder", "folder_only", is_flag=True, help="Print only the request's folder.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status_command(app: AppContext, staging_id: int, folder_only: bool, as_json: bool) -> None:
    """One request: its state, folder, files, times and log."""
    shown = _describe(app, staging_id)
    if folder_only:
        click.echo(shown["folder"])
    elif as_json:
        click.echo(json.dumps(shown, indent=2))
    else:
        click.echo(
            f"staging request {shown['id']} ({shown['user']}): {shown['state']} [{shown['marker']}]"
        )
        for key in ("folder", "location", "files", "bytes", "created_at", "started_at"):
            click.echo(f"  {key}: {shown[key]}")
        for key in ("finished_at", "release_after", "retry_after", "reason"):
            if shown[key]:
                click.echo(f"  {key}: {shown[key]}")
        click.echo(f"  selection: {json.dumps(shown['selection'])}")
        for line in shown["log"][-10:]:
            click.echo(f"  {line}")


@stage.command("wait")
@api_options
@click.argument("staging_id", type=int)
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@pass_app
def wait_command(app: AppContext, staging_id: int, timeout: float | None, interval: float) -> None:
    """Block until the request is READY (exit 0) or FAILED (exit 1; 75 on --timeout):
    the first step of a job that processes the data."""
    started = time.monotonic()
    client = app.api_client()
    while True:
        if client is not None:  # a long-poll: the API answers when it is done, or in 30 s
            left = 30.0 if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            shown = client.get(
                f"/api/v1/staging/{staging_id}/wait",
                params={"timeout": min(30.0, left)},
                timeout=min(30.0, left) + 60,
            )
        else:
            shown = _describe(app, staging_id)
        state = shown["state"]
        if state == "staged":
            click.echo(f"READY: {shown['folder']}")
            return
        if state in ("failed", "cancelled", "released"):
            click.echo(f"staging request {staging_id} {state}: {shown['reason'] or ''}", err=True)
            raise SystemExit(1)
        if timeout is not None and time.monotonic() - started >= timeout:
            click.echo(f"staging request {staging_id} still {state} after {timeout} s", err=True)
            raise SystemExit(WAIT_TIMED_OUT)
        if client is None:
            time.sleep(interval)


@stage.command("release")
@api_options
@click.argument("staging_ids", type=int, nargs=-1, required=True)
@pass_app
def release_command(app: AppContext, staging_ids: tuple[int, ...]) -> None:
    """Done with the data: remove the request's folder; its files are cleaned up once
    no other request uses them. A request still waiting is cancelled."""
    from ccat_hpc.pipeline.staging_request import release

    client = app.api_client()
    for staging_id in staging_ids:
        if client is not None:
            answer = client.post(f"/api/v1/staging/{staging_id}/release")
            state, problem = answer["state"], answer["folder_problem"]
        else:
            with transaction(app.sessions()) as session:
                released = release(session, staging_id)
            state, problem = released.state.value, released.folder_problem
        click.echo(f"staging request {staging_id}: {state}")
        if problem:
            click.echo(f"  its folder stays: {problem}", err=True)


@stage.command("list")
@api_options
@click.option("--mine", is_flag=True, help="Only my requests ($USER).")
@click.option("--user", default=None, help="Only this user's requests.")
@click.option("--all", "show_all", is_flag=True, help="Also released, failed and cancelled ones.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_command(
    app: AppContext, mine: bool, user: str | None, show_all: bool, as_json: bool
) -> None:
    """Staging requests, newest first (live ones unless --all)."""
    from ccat_hpc.inventory.staging import MAX_LISTED, list_requests

    client = app.api_client()
    if client is not None:  # the API lists the token user's own unless told another
        params = {"user": user, "all": show_all or None, "limit": MAX_LISTED}
        page = client.get("/api/v1/staging", params=params)
        rows, more = page["items"], page["next_after"] is not None
    else:
        who = current_user() if mine else user
        with transaction(app.sessions()) as session:
            found = list_requests(session, who, show_all=show_all)
        rows, more = found.items, found.next_after is not None
    if more:
        click.echo(f"(the newest {len(rows)} shown; there are more)", err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no staging requests")
    for row in rows:
        click.echo(
            f"{row['id']:>6} {row['user'] or '-':<12} {row['state']:<10} {row['files']:>6} files "
            f"{human_bytes(row['bytes']):>10}  {row['folder']}"
        )
