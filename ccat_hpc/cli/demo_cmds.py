"""``ccat-hpc demo``: the main job end to end on the embedded default (SQLite + folders)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.job_support import JOBS_DIR_ENV
from ccat_hpc.config import DB_ENV_VAR, redact_url
from ccat_hpc.db import migrate
from ccat_hpc.db.session import transaction
from ccat_hpc.executors.local import STATE_ROOT_ENV
from ccat_hpc.pipeline.watcher import check_inbox, watch_once
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.status import collect_status, render_status
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation

DEMO_OBSERVATIONS = (
    ("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam"),
    ("CHAI", "LFA", "OrionKL-map-001", "chile-source-chai"),
)


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


def _checksum(app: AppContext, workdir: Path) -> None:
    from ccat_hpc.executors.local import LocalExecutor
    from ccat_hpc.jobs.checksum_batch import submit_checksum
    from ccat_hpc.jobs.tracking import wait_for_batch
    from ccat_hpc.sites.schema import SlurmProfile

    factory = app.sessions()
    executor = LocalExecutor(state_root=Path(os.environ[STATE_ROOT_ENV]))
    environment = {"CCAT_HPC_DB": app.db_url}
    jobs = Path(os.environ[JOBS_DIR_ENV])
    submitted = submit_checksum(factory, executor, environment, jobs, SlurmProfile())
    if submitted is None:
        click.echo("no file is waiting for its checksum")
        return
    summary = wait_for_batch(factory, submitted.batch_id, executor, poll_seconds=0.5)
    click.echo(
        f"batch {submitted.batch_id}: {len(submitted.file_ids)} file(s) in "
        f"{submitted.tasks} task(s): {summary.counts_text()}"
    )


def _demo_environment(workdir: Path) -> dict[str, str]:
    """Where the demo keeps everything: below its folder, whatever the environment says
    (a shell with exports for another ops-db never leaks into a demo); returned for the
    next steps."""
    defaults = {
        "CCAT_DATA_ROOT": str(workdir / "data"),
        "CCAT_ARCHIVE_STORAGE": "disk",
        STATE_ROOT_ENV: str(workdir / "local-jobs"),
        JOBS_DIR_ENV: str(workdir / "jobs"),
    }
    for name, value in defaults.items():
        os.environ[name] = value
    return {name: os.environ[name] for name in defaults}


def _next_steps(app: AppContext, environment: dict[str, str], inbox: Path) -> None:
    """What a newcomer types next, against the demo's ops-db."""
    command = Path(sys.executable).with_name("ccat-hpc")
    exports = {DB_ENV_VAR: app.shown_db_url(), **environment}
    lines = [f'export PATH={shlex.quote(str(command.parent))}:"$PATH"   # this ccat-hpc']
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
    lines += [
        "ccat-hpc status                            # what ops-db holds",
        "ccat-hpc obs list                          # the observations filed",
        "ccat-hpc files list --limit 5              # their files (ids, states, where)",
        "ccat-hpc files show 1                      # one file: copies and checksum checks",
        "ccat-hpc job list                          # the checksum job array",
        f"ccat-hpc simulate-observation --drop-into {shlex.quote(str(inbox))}",
        f"ccat-hpc watch {shlex.quote(str(inbox))} --once --stable-seconds 0",
        "ccat-hpc checksum --wait                   # checksum the new files",
    ]
    click.echo("\n".join(f"  {line}" for line in lines))
    click.echo(
        "Not built yet: packaging files into RawDataPackages, transfer to Cologne, the "
        "S3 archive, staging and cleanup (README: What exists today)."
    )


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-run"),
    show_default=True,
    help="Folder for the demo's database, data and manifests.",
)
@click.option("--files", "file_count", default=20, show_default=True, help="Files per observation.")
@click.option("--file-size", default=1_000_000, show_default=True, help="Bytes per file.")
@pass_app
def demo(app: AppContext, workdir: Path, file_count: int, file_size: int) -> None:
    """Set up ops-db, load sites and catalog, observe, file, checksum, show status.

    Everything stays below WORKDIR: its own SQLite ops-db (unless --db is given
    explicitly), data, manifests and job files; $CCAT_HPC_DB and $CCAT_DATA_ROOT of the
    shell are not used.
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    environment = _demo_environment(workdir)
    if app.db_option is None:  # only an explicit --db moves it; $CCAT_HPC_DB does not
        app.db_option = str(workdir / "ccat-hpc.sqlite")
    _step(f"ops-db at {redact_url(app.db_url)}: migrating to the newest schema")
    migrate.upgrade(app.engine(create=True))
    factory = app.sessions()
    _step(f"loading site configs (data below {os.environ['CCAT_DATA_ROOT']})")
    with transaction(factory) as session:
        click.echo(load_site_configs(session, read_site_configs(shipped_site_configs())).summary())
    _step("loading the FYST example catalog")
    with transaction(factory) as session:
        click.echo(load_catalog_file(session, example_catalog_path()).summary())
    inbox = workdir / "manifests"
    data_root = Path(os.environ["CCAT_DATA_ROOT"])
    for instrument, module, obs_unit, location in DEMO_OBSERVATIONS:
        _step(f"observing {obs_unit} with {instrument}/{module}: {file_count} files")
        spec = SyntheticObservation(instrument, module, obs_unit, location, file_count, file_size)
        root = data_root / location
        root.mkdir(parents=True, exist_ok=True)
        drop_manifest(write_observation(spec, root), inbox)
    _step(f"manifest watcher: one pass over {inbox}")
    check_inbox(inbox)
    for outcome in watch_once(factory, inbox, stable_seconds=0.0).outcomes:
        click.echo(f"{outcome.status.value} {outcome.path.name}: {outcome.message}")
    _step("checksum job array on the local executor (xxh3-128 of every new file)")
    _checksum(app, workdir)
    _step("status")
    with transaction(factory) as session:
        click.echo(render_status(collect_status(session)))
    _step("next: go on with the demo's ops-db")
    _next_steps(app, environment, inbox)
    app.close()
