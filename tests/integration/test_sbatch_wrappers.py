"""The sbatch/ wrappers people submit, run by the real Slurm cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.db.states import RawDataFileState
from ccat_hpc.synthetic import drop_manifest, write_observation
from tests.conftest import REPO, table_counts
from tests.integration.test_executors import SPEC, slurm_ready

pytestmark = pytest.mark.slurm

CCAT_BIN = str(Path(sys.executable).with_name("ccat-hpc"))


def sbatch(
    script: str,
    *args: str,
    env: dict[str, str],
    name: str,
    cwd: Path,
    options: tuple[str, ...] = (),
) -> str:
    command = ["sbatch", "--parsable", f"--job-name={name}", "--mem=500M", *options]
    finished = subprocess.run(
        [*command, str(REPO / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    return finished.stdout.strip().split(";")[0]


def job_end(job_id: str, timeout: float = 180) -> tuple[str, str]:
    """(state, exit code) once the job has ended, from scontrol (MinJobAge keeps it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True
        ).stdout
        state = re.search(r"JobState=(\S+)", shown)
        code = re.search(r"ExitCode=(\S+)", shown)
        if state and state.group(1) not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
            return state.group(1), code.group(1) if code else ""
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end within {timeout} s")


def wrapper_env(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        CCAT_HPC_DB=db_url,
        CCAT_HPC_BIN=CCAT_BIN,
        CCAT_HPC_JOBS_DIR=str(tmp_path / "jobs"),
        **extra,
    )


def test_watcher_job_files_manifests_and_submits_its_successor_only_when_time_is_up(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    slurm_ready()
    inbox = tmp_path / "inbox"
    drop_manifest(write_observation(SPEC, data_root / SPEC.location), inbox, "one")
    name = f"ccat-watch-test-{uuid.uuid4().hex[:8]}"
    env = wrapper_env(db_url, tmp_path, CCAT_WATCH_REQUEUE="1", CCAT_WATCH_INTERVAL="0.5")
    options = ("--stable-seconds", "0")
    job_id = sbatch(
        "sbatch/watch-manifests.sbatch", str(inbox), *options, env=env, name=name, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 120
        while not (inbox / "filed" / "one.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert (inbox / "filed" / "one.json").is_file()
        assert table_counts(loaded_factory, "executed_obs_unit")["executed_obs_unit"] == 1
        # what Slurm sends two minutes before the time limit (#SBATCH --signal=B:USR1@120)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
        assert job_end(job_id) == ("COMPLETED", "0:0")
        (successor,) = _queued(name)  # the next watcher of the same name
        assert successor != job_id
        subprocess.run(["scancel", successor], check=True)  # an operator stops it
        assert job_end(successor)[0] == "CANCELLED"
        time.sleep(2)
        assert _queued(name) == []  # and no successor follows a cancel
    finally:
        subprocess.run(["scancel", "--name", name], check=False)


def test_checksum_wrapper_runs_the_array_and_waits(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    slurm_ready()
    from ccat_hpc.db.session import transaction
    from ccat_hpc.pipeline.filing import file_manifest
    from ccat_hpc.pipeline.manifest import read_manifest

    manifest = write_observation(SPEC, data_root / SPEC.location)
    with transaction(loaded_factory) as session:
        file_manifest(session, *read_manifest(drop_manifest(manifest, tmp_path / "inbox")))
    shown = subprocess.run(
        ["bash", str(REPO / "sbatch/checksum.sbatch"), "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "Usage: sbatch" in shown.stdout
    name = f"ccat-checksum-test-{uuid.uuid4().hex[:8]}"
    job_id = sbatch(
        "sbatch/checksum.sbatch",
        "--bytes-per-task",
        "6000",
        env=wrapper_env(db_url, tmp_path),
        name=name,
        cwd=tmp_path,
    )
    assert job_end(job_id) == ("COMPLETED", "0:0")
    log = (tmp_path / f"ccat-checksum-submit-{job_id}.log").read_text()
    assert "6 file(s) in 3 task(s)" in log and "files: 6 checksummed" in log
    with loaded_factory() as session:
        states = set(session.scalars(select(RawDataFile.state)))
    assert states == {RawDataFileState.CHECKSUMMED}


def test_scheduler_job_takes_dropped_manifests_to_the_archive(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    """Manifests dropped into the inbox; the watcher job files them, the scheduler job
    runs every step until nothing is left to do; nothing else is run by hand."""
    slurm_ready()
    from tests.integration.test_bundle_step import set_pipeline
    from tests.integration.test_transfer_archive import assert_archived_exactly, set_method

    for name in ("chile-buffer-01", "cologne-buffer-01", "cologne-archive"):
        (data_root / name).mkdir()
    set_pipeline(loaded_factory, bundle_max_wait_minutes=0)
    set_method(loaded_factory, "copy")
    inbox = tmp_path / "inbox"
    drop_manifest(write_observation(SPEC, data_root / SPEC.location), inbox, "one")
    env = wrapper_env(
        db_url, tmp_path, CCAT_WATCH_REQUEUE="0", CCAT_SCHEDULER_REQUEUE="0", PYTHONPATH=str(REPO)
    )
    tag = uuid.uuid4().hex[:8]
    watcher = sbatch(
        "sbatch/watch-manifests.sbatch",
        str(inbox),
        "--once",
        "--stable-seconds",
        "0",
        env=env,
        name=f"ccat-watch-{tag}",
        cwd=tmp_path,
    )
    assert job_end(watcher) == ("COMPLETED", "0:0")
    scheduler = sbatch(
        "sbatch/scheduler.sbatch",
        "--until-idle",
        "--executor",
        "local",
        "--workdir",
        str(tmp_path / "jobs"),
        env=dict(env, CCAT_SCHEDULER_INTERVAL="1"),
        name=f"ccat-scheduler-{tag}",
        cwd=tmp_path,
    )
    try:
        assert job_end(scheduler, timeout=300) == ("COMPLETED", "0:0")
    finally:
        subprocess.run(["scancel", "--name", f"ccat-scheduler-{tag}"], check=False)
    sources = sorted((data_root / SPEC.location).rglob("*.g3"))
    assert sources, "the observation wrote no files"
    assert_archived_exactly(loaded_factory, sources, data_root)
    log = (tmp_path / f"ccat-scheduler-{scheduler}.log").read_text()
    for step in ("checksum", "package", "bundle", "transfer", "archive"):
        assert f"did: submit {step}:" in log, log


def test_scheduler_wrapper_usage() -> None:
    shown = subprocess.run(
        ["bash", str(REPO / "sbatch/scheduler.sbatch"), "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "Usage: sbatch" in shown.stdout
    assert "--until-idle" in shown.stdout


def _wait_for_log(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.3)
    raise AssertionError(f"{path} never said {text!r}")


def _queued(name: str) -> list[str]:
    return subprocess.run(
        ["squeue", "-h", "--name", name, "-o", "%i"], capture_output=True, text=True
    ).stdout.split()


def test_scheduler_job_submits_a_successor_when_its_time_is_up_but_not_when_cancelled(
    loaded_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    slurm_ready()
    name = f"ccat-scheduler-{uuid.uuid4().hex[:8]}"
    env = wrapper_env(db_url, tmp_path, CCAT_SCHEDULER_INTERVAL="0.5", PYTHONPATH=str(REPO))
    options = ("--executor", "local", "--workdir", str(tmp_path / "jobs"))
    first = sbatch(
        "sbatch/scheduler.sbatch",
        *options,
        env=env,
        name=name,
        cwd=tmp_path,
        options=("--time=00:20:00",),  # an operator's choice the successor keeps
    )
    try:
        _wait_for_log(tmp_path / f"ccat-scheduler-{first}.log", "pass 1:")
        # what Slurm sends two minutes before the time limit (#SBATCH --signal=B:USR1@120)
        subprocess.run(["scancel", "--signal=USR1", "--batch", first], check=True)
        assert job_end(first) == ("COMPLETED", "0:0")
        (successor,) = _queued(name)
        assert successor != first
        shown = subprocess.run(
            ["scontrol", "show", "job", successor], capture_output=True, text=True
        ).stdout
        assert "TimeLimit=00:20:00" in shown, shown
        _wait_for_log(tmp_path / f"ccat-scheduler-{successor}.log", "pass 1:")
        subprocess.run(["scancel", successor], check=True)  # an operator stops it
        assert job_end(successor)[0] == "CANCELLED"
        time.sleep(2)
        assert _queued(name) == []  # and no successor follows a cancel
    finally:
        subprocess.run(["scancel", "--name", name], check=False)
