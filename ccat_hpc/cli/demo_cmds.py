"""``ccat-hpc demo``: the main job end to end on the embedded default (SQLite + folders)."""

from __future__ import annotations

import os
import shlex
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.catalog.loader import example_catalog_path, load_catalog_file
from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.job_support import JOBS_DIR_ENV
from ccat_hpc.config import DB_ENV_VAR, redact_url
from ccat_hpc.db import migrate
from ccat_hpc.db.models import JobBatch
from ccat_hpc.db.session import transaction
from ccat_hpc.executors.local import STATE_ROOT_ENV
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.pipeline.watcher import check_inbox, watch_once
from ccat_hpc.sites.loader import load_site_configs, read_site_configs, shipped_site_configs
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.status import collect_status, render_status
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from ccat_hpc.units import human_bytes

PIPELINE = (
    ("checksum", "xxh3-128 of every new file on SOURCE"),
    ("package", "files into RawDataPackages in the Chile buffer"),
    ("bundle", "packages into a DataTransferPackage for the route to Cologne"),
    ("transfer", "Chile buffer to Cologne buffer, verified on arrival"),
    ("archive", "verify, unpack, and upload every package into the long-term archive"),
)
PIPELINE_STEPS = tuple(name for name, _ in PIPELINE)
#: folders each site's config names (created here: a real site mounts them)
FOLDERS = ("chile-buffer-01", "cologne-buffer-01", "cologne-archive", "cologne-processing-ramses")
DEMO_OBSERVATIONS = (
    ("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam"),
    ("CHAI", "LFA", "OrionKL-map-001", "chile-source-chai"),
)


def _make_folders(data_root: Path) -> None:
    for name in FOLDERS:
        (data_root / name).mkdir(parents=True, exist_ok=True)


def _summary(snapshot: dict[str, Any], runs: list[StepRun]) -> str:
    files = snapshot["raw_data_files"]
    archived = files.get("archived", {"count": 0, "bytes": 0})
    total = sum(v["count"] for v in files.values())
    packages = snapshot["raw_data_packages"]
    verified = sum(
        row["count"] for row in snapshot["physical_copies"] if row["state"] == "verified"
    )
    lines = [
        f"files: {archived['count']} of {total} archived ({human_bytes(archived['bytes'])})",
        f"packages: {packages.get('archived', 0)} archived of {sum(packages.values())}",
        f"copies with a verified checksum: {verified}",
        "per step: "
        + ", ".join(f"{r.name} {human_bytes(r.size)} in {r.seconds:.1f} s" for r in runs),
    ]
    lines += [
        f"scrub of the {site['site']} archive: {site['verified_within_pass']} of "
        f"{site['copies']} copies verified within one pass, "
        f"{human_bytes(site['read_last_day'])} read again, {site['found_count']} damaged or missing"
        for site in snapshot.get("scrub", [])
    ]
    return "\n".join(lines)


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


@dataclass(frozen=True)
class StepRun:
    name: str
    seconds: float
    items: int
    #: bytes its tasks reported (hashed, packed, sent or uploaded)
    size: int = 0


def _setup(executor_name: str, app: AppContext, kind: str) -> JobSetup:
    from ccat_hpc.executors.factory import make_executor

    executor = make_executor(executor_name)
    ranks = 2 if executor_name == "slurm" and kind == "package" else 1
    environment = {"CCAT_HPC_DB": app.db_url}
    environment |= {k: v for k, v in os.environ.items() if k.startswith(("CCAT_S3_", "AWS_"))}
    return JobSetup(
        executor, environment, Path(os.environ[JOBS_DIR_ENV]), SlurmProfile(ntasks=ranks)
    )


def _run_scheduler(app: AppContext, executor_name: str) -> list[StepRun]:
    """The scheduler loop, until a pass finds nothing to do; the time each step took."""
    from ccat_hpc.scheduler.loop import run as run_loop

    factory = app.sessions()
    passes = run_loop(
        factory,
        lambda step: _setup(executor_name, app, step),
        interval=0.5,
        once=False,
        dry_run=False,
        stop=threading.Event(),
        until_idle=True,
    )
    click.echo(f"the scheduler is idle after {passes} pass(es)")
    return _step_runs(factory)


def _step_runs(factory: sessionmaker[Session]) -> list[StepRun]:
    """Per step: from its first batch's submission to its last batch's end, and items."""
    runs = []
    with transaction(factory) as session:
        for step in PIPELINE_STEPS:
            batches = session.scalars(select(JobBatch).where(JobBatch.kind == step)).all()
            starts = [b.submitted_at for b in batches if b.submitted_at]
            ends = [b.finished_at for b in batches if b.finished_at]
            seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
            items = sum(len(task.items) for b in batches for task in b.tasks)
            size = sum(int((t.result or {}).get("bytes", 0)) for b in batches for t in b.tasks)
            runs.append(StepRun(step, seconds, items, size))
    return runs


def _demo_environment(workdir: Path) -> dict[str, str]:
    """Where the demo keeps everything: below its folder, whatever the environment says
    (a shell with exports for another ops-db never leaks into a demo); returned for the
    next steps."""
    defaults = {
        "CCAT_DATA_ROOT": str(workdir / "data"),
        # a folder archive, unless an S3 endpoint is configured
        "CCAT_ARCHIVE_STORAGE": "s3" if os.environ.get("CCAT_S3_ENDPOINT") else "disk",
        # the demo's few megabytes go at once, by a copy between the two sites' folders
        "CCAT_BUNDLE_MAX_WAIT_MINUTES": "0",
        "CCAT_TRANSFER_METHOD": "copy",
        STATE_ROOT_ENV: str(workdir / "local-jobs"),
        JOBS_DIR_ENV: str(workdir / "jobs"),
    }
    for name, value in defaults.items():
        os.environ[name] = value
    return {name: os.environ[name] for name in defaults}


#: the demo's scientist stages one whole observation and a few files of the other
SCIENTIST = "scientist"
STAGED_FILES_GLOB = "*det_00000[0-2]*"
#: cleanup runs as if this many days had passed (SOURCE keeps data 30 days, buffers 7)
CLEANUP_AFTER_DAYS = 31


@dataclass(frozen=True)
class LifecycleRun:
    name: str
    seconds: float
    detail: str


def _lifecycle(app: AppContext, executor_name: str) -> list[LifecycleRun]:
    """Stage for a scientist (a whole observation, and a few files of the other by
    ranged reads), release, then clean up SOURCE, BUFFER and PROCESSING copies as the
    retention policy allows a month later."""
    import time
    from datetime import timedelta

    from ccat_hpc.db.base import utcnow
    from ccat_hpc.pipeline.cleanup import run_cleanup
    from ccat_hpc.pipeline.staging_request import Selection, create_request, release

    factory = app.sessions()
    obs_unit, chai_unit = DEMO_OBSERVATIONS[0][2], DEMO_OBSERVATIONS[1][2]
    with transaction(factory) as session:
        whole = create_request(session, Selection(obs_unit=obs_unit), SCIENTIST)
        some = create_request(
            session, Selection(obs_unit=chai_unit, files=STAGED_FILES_GLOB), SCIENTIST
        )
    for made, what in (
        (whole, f"all of {obs_unit}"),
        (some, f"{STAGED_FILES_GLOB} of {chai_unit}"),
    ):
        click.echo(f"staging request {made.id} ({what}): {made.files} file(s) -> {made.folder}")
    started = time.monotonic()
    _run_scheduler(app, executor_name)
    staged = _staged(factory, (whole.id, some.id))
    runs = [LifecycleRun("stage", time.monotonic() - started, staged)]
    _step("the scientist is done: release both stagings")
    started = time.monotonic()
    with transaction(factory) as session:
        for made in (whole, some):
            click.echo(f"staging request {made.id}: {release(session, made.id).state.value}")
    runs.append(LifecycleRun("release", time.monotonic() - started, "2 request(s)"))
    _step(f"cleanup as it will run {CLEANUP_AFTER_DAYS} days from now (retention passed)")
    started = time.monotonic()
    later = utcnow() + timedelta(days=CLEANUP_AFTER_DAYS)
    report = run_cleanup(factory, dict(os.environ), now=later)
    for problem in report.problems:
        click.echo(problem)
    by_place = "; ".join(
        f"{where} {count} copies {human_bytes(size)}"
        for where, (count, size) in sorted(report.by_location.items())
    )
    click.echo(f"deleted {report.deleted} copies ({human_bytes(report.deleted_bytes)}): {by_place}")
    runs.append(
        LifecycleRun(
            "cleanup",
            time.monotonic() - started,
            f"{report.deleted} copies, {human_bytes(report.deleted_bytes)} freed",
        )
    )
    return runs


def _staged(factory: sessionmaker[Session], ids: tuple[int, ...]) -> str:
    """What the stage batches did: files, bytes staged and bytes read from the archive."""
    from ccat_hpc.db.models import StagingJob

    with transaction(factory) as session:
        jobs = [session.get_one(StagingJob, i) for i in ids]
        states = {j.state.value for j in jobs}
        files = sum(j.file_count for j in jobs)
        size = sum(j.total_bytes for j in jobs)
        batches = session.scalars(select(JobBatch).where(JobBatch.kind == "stage")).all()
        read = sum(int((t.result or {}).get("bytes_read", 0)) for b in batches for t in b.tasks)
    return (
        f"{len(jobs)} request(s) {'/'.join(sorted(states))}: {files} files, "
        f"{human_bytes(size)} staged, {human_bytes(read)} read from the archive"
    )


OPERATOR = "demo-operator"


def _api_token(factory: sessionmaker[Session], workdir: Path) -> Path:
    """A token of the demo's operator in WORKDIR/api-token (owner-only), to sign in to
    the web UI and call the REST API with; made anew on every run."""
    from ccat_hpc.access.tokens import add_user, create_token, user_named
    from ccat_hpc.errors import NotFoundError

    with transaction(factory) as session:
        try:
            user_named(session, OPERATOR)
        except NotFoundError:
            add_user(session, OPERATOR, ["operator"], full_name="the demo's operator")
        made = create_token(session, OPERATOR, name="demo", days=30)
    path = workdir / "api-token"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(made.token + "\n")
    return path


def _next_steps(
    app: AppContext, environment: dict[str, str], inbox: Path, token_file: Path
) -> None:
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
        "ccat-hpc trace 1                           # file 1: every copy, package, transfer",
        "ccat-hpc job list                          # the job arrays of the steps",
        f"ccat-hpc simulate-observation --drop-into {shlex.quote(str(inbox))}",
        f"ccat-hpc watch {shlex.quote(str(inbox))} --once --stable-seconds 0",
        "ccat-hpc scheduler run --until-idle        # every step for what is ready, then exit",
        "ccat-hpc breaker list                      # routes and archives that stopped taking work",
        "ccat-hpc stage list --all                  # the scientist's stagings",
        f"ccat-hpc stage request --obs-unit {DEMO_OBSERVATIONS[0][2]} --user {SCIENTIST}",
        "ccat-hpc cleanup plan --kept               # what retention lets go, and why not",
        "ccat-hpc api serve --port 8000 &           # REST API + web UI: http://127.0.0.1:8000/ui",
        f"cat {shlex.quote(str(token_file))}   # the operator's token: sign in to the UI with it",
        f"ccat-hpc status --api http://127.0.0.1:8000 --token-file {shlex.quote(str(token_file))}",
    ]
    click.echo("\n".join(f"  {line}" for line in lines))


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
@click.option(
    "--executor",
    type=click.Choice(["local", "slurm"]),
    default="local",
    show_default=True,
    help="Where the steps' job arrays run.",
)
@pass_app
def demo(app: AppContext, workdir: Path, file_count: int, file_size: int, executor: str) -> None:
    """The whole data lifecycle: observe and file; the scheduler loop checksums,
    packages, bundles, transfers and archives until nothing is left; a scientist stages
    an observation (and a few files of another by ranged reads) and releases them;
    cleanup, run as a month later, frees SOURCE, BUFFER and PROCESSING; then status.

    Everything stays below WORKDIR: its own SQLite ops-db (unless --db is given
    explicitly), the sites' folders, manifests and job files; $CCAT_HPC_DB and
    $CCAT_DATA_ROOT of the shell are not used. The archive is a folder, or the S3
    bucket of $CCAT_S3_ENDPOINT/$CCAT_S3_BUCKET when they are set. With --executor
    slurm (and --db for a PostgreSQL ops-db) the steps run as Slurm job arrays, the
    package step with two MPI ranks.
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
    _make_folders(data_root)
    _step(
        "the scheduler loop: "
        + "; ".join(f"{name}: {what}" for name, what in PIPELINE)
        + f" ({executor} executor)"
    )
    runs = _run_scheduler(app, executor)
    _step(f"a scientist on RAMSES stages data to PROCESSING ({executor} executor)")
    lifecycle = _lifecycle(app, executor)
    _step("status")
    with transaction(factory) as session:
        snapshot = collect_status(session)
        click.echo(render_status(snapshot))
    _step("summary")
    click.echo(_summary(snapshot, runs))
    for run in lifecycle:
        click.echo(f"{run.name}: {run.detail} in {run.seconds:.1f} s")
    token_file = _api_token(factory, workdir)
    _step("next: go on with the demo's ops-db (and its web UI)")
    _next_steps(app, environment, inbox, token_file)
    app.close()
