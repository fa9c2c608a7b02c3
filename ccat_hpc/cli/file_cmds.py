"""``ccat-hpc file`` / ``watch`` / ``simulate-observation``: manifests from instruments."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType

import click
from sqlalchemy import select

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.params import MAX_SECONDS, SECONDS, finite
from ccat_hpc.cli.remote import api_options
from ccat_hpc.client import ApiClient, file_through
from ccat_hpc.db.models import DiskDataLocation
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import (
    CcatHpcError,
    DatabaseUnavailable,
    ManifestError,
    NotFoundError,
    Terminated,
    UsageError,
)
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline.filing import FilingResult
from ccat_hpc.pipeline.intake import IntakeOutcome, IntakeStatus, file_path
from ccat_hpc.pipeline.manifest import read_manifest_text
from ccat_hpc.pipeline.watcher import Filer, PassResult, check_inbox, shown_name, watch_once
from ccat_hpc.pipeline.watcher import watch as watch_folder
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from ccat_hpc.text import one_line


class ManifestsRejected(CcatHpcError):
    exit_code = 5


def _outcome_line(outcome: IntakeOutcome) -> str:
    return f"{outcome.status.value} {shown_name(outcome.path.name)}: {outcome.message}"


def _echo_outcome(outcome: IntakeOutcome) -> None:
    click.echo(_outcome_line(outcome), err=not outcome.accepted)


def _log_outcome(outcome: IntakeOutcome) -> None:
    log_line(_outcome_line(outcome), error=not outcome.accepted)


def _raise_for(outcomes: list[IntakeOutcome], total: int) -> None:
    """Exit 6 when ops-db could not be used for some manifest, else 5 when any was rejected."""
    deferred = sum(o.status == IntakeStatus.DEFERRED for o in outcomes)
    rejected = sum(o.rejected for o in outcomes)
    if deferred:
        raise DatabaseUnavailable(f"{deferred} of {total} manifest(s) not filed: ops-db unusable")
    if rejected:
        raise ManifestsRejected(f"{rejected} of {total} manifest(s) rejected")


@click.command("file")
@api_options
@click.argument(
    "manifests", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per manifest.")
@pass_app
def file_command(app: AppContext, manifests: tuple[Path, ...], as_json: bool) -> None:
    """File MANIFESTS into ops-db, each all-or-nothing; one line per manifest.

    Exit status: 0 all filed (or already filed), 5 a manifest was rejected, 6 ops-db
    could not be used (nothing lost: file them again later).
    """
    filing = _filer(app, follow_links=True)
    outcomes: list[IntakeOutcome] = []
    stop = threading.Event()
    _install_stop_handlers(stop, "file")
    for path in manifests:
        if stop.is_set():
            raise Terminated(f"{len(outcomes)} of {len(manifests)} manifest(s) done")
        outcome = filing(path)
        outcomes.append(outcome)
        if as_json:
            click.echo(json.dumps(outcome.to_json()))
        else:
            _echo_outcome(outcome)
    _raise_for(outcomes, len(manifests))


def _filer(app: AppContext, follow_links: bool) -> Filer:
    """Files one manifest: into ops-db, or through the REST API with --api."""
    client = app.api_client()
    if client is None:
        factory = app.sessions()
        return lambda path: file_path(factory, path, follow_links=follow_links)
    return lambda path: _file_through_api(client, path, follow_links)


def _file_through_api(client: ApiClient, path: Path, follow_links: bool) -> IntakeOutcome:
    try:
        text = read_manifest_text(path, follow_links)
    except ManifestError as exc:
        return IntakeOutcome(path, IntakeStatus.REJECTED, one_line(str(exc)))
    status, message, body = file_through(client, path, text)
    result = None
    if status in ("filed", "unchanged"):
        result = FilingResult(
            str(body["execution"]), int(body["files"]), int(body["bytes"]), status == "filed"
        )
    return IntakeOutcome(path, IntakeStatus(status), message, result)


def _warn(text: str) -> None:
    log_line(f"watch: {text}")


def _install_stop_handlers(stop: threading.Event, command: str = "watch") -> None:
    """SIGTERM and SIGINT finish the manifest at hand (never stop in a database call)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log_line(f"{command}: signal {signum}, stopping after the current manifest")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _summary(result: PassResult) -> str:
    counts = ", ".join(
        f"{result.count(status)} {status.value}" for status in IntakeStatus if result.count(status)
    )
    waiting = f"; {result.waiting} left waiting (not yet stable)" if result.waiting else ""
    return f"watch: {len(result.outcomes)} manifest(s) processed ({counts or 'none'}){waiting}"


@click.command("watch")
@api_options
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--once", is_flag=True, help="One pass over FOLDER, then exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1, max=MAX_SECONDS),
    callback=finite,
    default=10.0,
    show_default=True,
    help="Seconds between passes.",
)
@click.option(
    "--stable-seconds",
    type=SECONDS,
    callback=finite,
    default=5.0,
    show_default=True,
    help="Leave a manifest alone until it has not changed for this long.",
)
@click.option(
    "--max-runtime",
    type=SECONDS,
    callback=finite,
    default=None,
    help="Exit cleanly after this many seconds (a Slurm job re-queues itself then).",
)
@pass_app
def watch_command(
    app: AppContext,
    folder: Path,
    once: bool,
    interval: float,
    stable_seconds: float,
    max_runtime: float | None,
) -> None:
    """File every *.json manifest dropped into FOLDER; move it to filed/ or rejected/.

    A manifest that cannot be filed goes to rejected/ with NAME.error.txt (one line:
    why); the watcher goes on with the others. With --once the exit status is 6 when
    ops-db could not be used (the manifests stay for the next pass).
    """
    check_inbox(folder)
    factory = _filer(app, follow_links=False)
    stop = threading.Event()
    _install_stop_handlers(stop)
    if once:
        result = watch_once(factory, folder, stable_seconds, stop, _log_outcome, _warn)
        log_line(_summary(result), error=False)
        deferred = result.count(IntakeStatus.DEFERRED)
        if deferred:
            raise DatabaseUnavailable(f"{deferred} manifest(s) not filed: ops-db unusable")
        return
    log_line(f"watch: watching {folder} every {interval:g} s")
    passes = watch_folder(
        factory,
        folder,
        interval=interval,
        stable_seconds=stable_seconds,
        stop=stop,
        max_runtime=max_runtime,
        report=_log_outcome,
        warn=_warn,
    )
    log_line(f"watch: stopped after {passes} pass(es)")


@click.command("simulate-observation")
@click.option("--location", default="chile-source-primecam", show_default=True)
@click.option("--instrument", default="PrimeCam", show_default=True)
@click.option("--module", "instrument_module", default="280GHz", show_default=True)
@click.option("--obs-unit", default="ECDFS-deep-001", show_default=True)
@click.option("--files", "file_count", default=10, show_default=True)
@click.option("--file-size", default=1_000_000, show_default=True, help="Bytes per file.")
@click.option(
    "--drop-into",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to drop the manifest into (the watched folder).",
)
@pass_app
def simulate_observation(
    app: AppContext,
    location: str,
    instrument: str,
    instrument_module: str,
    obs_unit: str,
    file_count: int,
    file_size: int,
    drop_into: Path,
) -> None:
    """Write a synthetic observation to a SOURCE location and drop its manifest."""
    with transaction(app.sessions()) as session:
        row = session.scalars(select(DiskDataLocation).filter_by(name=location)).first()
        if row is None:
            raise NotFoundError(f"no folder-backed location named {location!r}")
        root = Path(row.path)
    spec = SyntheticObservation(
        instrument, instrument_module, obs_unit, location, file_count, file_size
    )
    try:
        root.mkdir(parents=True, exist_ok=True)
        manifest = write_observation(spec, root)
        path = drop_manifest(manifest, drop_into)
    except OSError as exc:
        where = exc.filename or drop_into
        raise UsageError(f"cannot write the observation: {where}: {exc.strerror or exc}") from None
    click.echo(f"wrote {file_count} files to {root}; manifest {path}")
