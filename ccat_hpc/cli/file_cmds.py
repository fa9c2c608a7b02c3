"""``ccat-hpc file`` / ``watch`` / ``simulate-observation``: manifests from instruments."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click
from sqlalchemy import select

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.db.models import DiskDataLocation
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import CcatHpcError, NotFoundError
from ccat_hpc.pipeline.intake import IntakeOutcome, file_path, watch_once
from ccat_hpc.pipeline.intake import watch as watch_folder
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation


class ManifestsRejected(CcatHpcError):
    exit_code = 5


def _echo_outcome(outcome: IntakeOutcome) -> None:
    click.echo(f"{outcome.status} {outcome.path.name}: {outcome.message}", err=outcome.rejected)


@click.command("file")
@click.argument(
    "manifests", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@pass_app
def file_command(app: AppContext, manifests: tuple[Path, ...]) -> None:
    """File MANIFESTS into ops-db, each all-or-nothing; one line per manifest."""
    factory = app.sessions()
    failed = 0
    for path in manifests:
        outcome = file_path(factory, path)
        _echo_outcome(outcome)
        failed += outcome.status in ("rejected", "deferred")
    if failed:
        raise ManifestsRejected(f"{failed} of {len(manifests)} manifest(s) not filed")


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"watch: signal {signum}, stopping after the current manifest", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command("watch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--once", is_flag=True, help="One pass over FOLDER, then exit.")
@click.option("--interval", default=10.0, show_default=True, help="Seconds between passes.")
@click.option(
    "--stable-seconds",
    default=5.0,
    show_default=True,
    help="Leave a manifest alone until it has not changed for this long.",
)
@click.option(
    "--max-runtime",
    type=float,
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
    """File every *.json manifest dropped into FOLDER; move it to filed/ or rejected/."""
    factory = app.sessions()
    stop = threading.Event()
    _install_stop_handlers(stop)
    if once:
        outcomes = watch_once(factory, folder, stable_seconds, stop, _echo_outcome)
        rejected = sum(o.rejected for o in outcomes)
        click.echo(f"watch: {len(outcomes)} manifest(s) processed, {rejected} rejected")
        return
    click.echo(f"watch: watching {folder} every {interval:g} s", err=True)
    passes = watch_folder(
        factory,
        folder,
        interval=interval,
        stable_seconds=stable_seconds,
        stop=stop,
        max_runtime=max_runtime,
        report=_echo_outcome,
    )
    click.echo(f"watch: stopped after {passes} pass(es)", err=True)


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
    root.mkdir(parents=True, exist_ok=True)
    manifest = write_observation(spec, root)
    path = drop_manifest(manifest, drop_into)
    click.echo(f"wrote {file_count} files to {root}; manifest {path}")
