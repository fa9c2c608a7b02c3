"""Jobs and checksums through the CLI, as an operator drives them (local executor)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import JobBatch, JobTask
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState
from ccat_hpc.db.transitions import move_row
from ccat_hpc.executors.base import SubmittedArray
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.integration.test_executors import FOREVER

WAIT = 180
Ccat = Callable[..., subprocess.CompletedProcess[str]]
SPEC = SyntheticObservation("PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 4, 500)


@pytest.fixture
def ccat(db_url: str, tmp_path: Path) -> Ccat:
    """`ccat-hpc` as a process, on the test's ops-db, with the local executor."""
    env = dict(
        os.environ,
        CCAT_HPC_DB=db_url,
        CCAT_HPC_EXECUTOR="local",
        CCAT_HPC_LOCAL_JOBS=str(tmp_path / "local-jobs"),
        CCAT_HPC_JOBS_DIR=str(tmp_path / "jobs"),
    )

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ccat_hpc", *args],
            capture_output=True,
            text=True,
            env=env | (extra or {}),
            timeout=WAIT,
            cwd=tmp_path,
        )

    run.db_url = db_url  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("job", "submit", "nosuchkind"), "Invalid value for 'KIND'"),
        (("job", "submit", "checksum"), "Invalid value for 'KIND'"),
        (("job", "submit", "noop", "--throttle", "-1"), "--throttle"),
        (("job", "submit", "noop", "--throttle", "0"), "--throttle"),
        (("job", "submit", "noop", "--param", "novalue"), "expected KEY=JSON"),
        (("job", "submit", "noop", "--param", "seconds=[1,"), "is not JSON"),
        (("job", "submit", "noop", "--param", "bogus=1"), "unknown parameter 'bogus'"),
        (("job", "submit", "sleep", "--param", "seconds=-5"), "parameter seconds"),
        (("job", "submit", "noop", "--param", 'fail_tasks="1"'), "parameter fail_tasks"),
        (("job", "run", "../evil", "--batch", "1", "--task", "0"), "unknown job kind"),
    ],
)
def test_bad_job_options_are_refused_before_anything_runs(
    ccat: Ccat, loaded_factory: sessionmaker[Session], args: tuple[str, ...], message: str
) -> None:
    result = ccat(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "internal error" not in result.stderr
    with loaded_factory() as session:
        assert session.scalars(select(JobBatch)).first() is None


def test_submit_prints_json_or_the_id_and_list_shows_batches(
    ccat: Ccat, loaded_factory: sessionmaker[Session]
) -> None:
    as_json = ccat("job", "submit", "noop", "--tasks", "2", "--json", "--wait")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"batch": 1, "tasks": 2, "executor": "local"}
    parsable = ccat("job", "submit", "noop", "--parsable", "--param", "fail_tasks=[0]", "--wait")
    assert parsable.returncode == 1 and parsable.stdout == "2\n"
    listing = json.loads(ccat("job", "list", "--json").stdout)
    assert [(b["batch"], b["state"], b["tasks"]) for b in listing] == [
        (2, "done", {"failed": 1}),
        (1, "done", {"succeeded": 2}),
    ]
    text = ccat("job", "list", "--state", "done").stdout.splitlines()
    assert len(text) == 2 and "1 failed" in text[0] and "2 succeeded" in text[1]


def test_status_shows_log_files_with_timestamped_lines_and_a_running_batch(
    ccat: Ccat, loaded_factory: sessionmaker[Session]
) -> None:
    assert ccat("job", "submit", "sleep", "--param", f"seconds={FOREVER}").returncode == 0
    deadline = time.monotonic() + 60
    while "running" not in ccat("job", "status", "1").stdout:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.3)
    with loaded_factory() as session:
        assert session.scalars(select(JobBatch.state)).one() == JobBatchState.RUNNING
    assert ccat("job", "cancel", "1").returncode == 0
    waited = ccat("job", "wait", "1")
    assert waited.returncode == 1 and "batch 1: cancelled (1 cancelled)" in waited.stdout
    shown = json.loads(ccat("job", "status", "1", "--json").stdout)
    log = Path(shown["tasks"][0]["log"])
    started = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ task 0 of batch 1 \(sleep\): started on "
    stopped = r"Z task 0 of batch 1 \(sleep\): stopped by signal 15"
    text = log.read_text()
    assert re.search(started, text, re.MULTILINE) and re.search(stopped, text), text
    assert f"log {log}" in ccat("job", "status", "1").stdout


def test_corrupt_files_are_named_by_status_and_checked_again_after_a_repair(
    ccat: Ccat, loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = write_observation(SPEC, data_root / SPEC.location)
    assert ccat("file", str(drop_manifest(manifest, tmp_path / "inbox"))).returncode == 0
    damaged = data_root / SPEC.location / manifest["files"][1]["path"]
    original = damaged.read_bytes()
    damaged.write_bytes(b"\0" * len(original))
    checked = ccat("checksum", "--wait")
    assert checked.returncode == 1
    assert f"corrupt: {damaged}: xxh3-128 on disk is" in checked.stderr
    assert ccat("checksum").stdout.startswith("nothing to checksum")

    text = ccat("status").stdout
    assert "files needing attention: 1 corrupt" in text
    assert "ccat-hpc files list --state corrupt --state missing" in text
    problems = json.loads(ccat("status", "--json").stdout)["problem_files"]
    assert [(p["state"], p["path"]) for p in problems] == [
        ("corrupt", manifest["files"][1]["path"])
    ]
    assert "the manifest says" in problems[0]["reason"]

    damaged.write_bytes(original)
    again = ccat("checksum", "--recheck-state", "corrupt", "--wait", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[0])["files"] == 1
    assert "files needing attention" not in ccat("status").stdout
    shown = json.loads(ccat("files", "show", str(problems[0]["id"]), "--json").stdout)
    assert [c["outcome"] for c in shown["checks"]] == ["corrupt", "checksummed"]
    assert shown["state"] == "checksummed" and shown["copies"][0]["state"] == "verified"
    assert "checksum checks" in ccat("files", "show", str(problems[0]["id"])).stdout
    missing = ccat("checksum", "--recheck-file", "999")
    assert missing.returncode == 4 and "no raw data file with id 999" in missing.stderr


def test_job_commands_submit_follow_and_cancel(
    ccat: Ccat, loaded_factory: sessionmaker[Session]
) -> None:
    done = ccat("job", "submit", "noop", "--tasks", "2", "--param", "fail_tasks=[1]", "--wait")
    assert done.returncode == 1
    assert "batch 1: done (1 failed, 1 succeeded)" in done.stdout
    assert "task 1: failed: task 1 was asked to fail" in done.stderr
    shown = ccat("job", "status", "1", "--json")
    assert [t["state"] for t in json.loads(shown.stdout)["tasks"]] == ["succeeded", "failed"]
    assert ccat("job", "submit", "sleep", "--param", f"seconds={FOREVER}").returncode == 0
    deadline = time.monotonic() + 60
    while "running" not in ccat("job", "status", "2").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert ccat("job", "cancel", "2").stdout == "batch 2: cancelled\n"
    waited = ccat("job", "wait", "2")
    assert waited.returncode == 1 and "batch 2: cancelled (1 cancelled)" in waited.stdout
    missing = ccat("job", "status", "99")
    assert missing.returncode == 4 and "no job batch 99" in missing.stderr
    assert ccat("job", "submit", "noop", "--tasks", "0").returncode == 2


def test_a_rerun_finishes_what_a_killed_checksum_task_left(
    ccat: Ccat, loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = write_observation(SPEC, data_root / SPEC.location)
    big = data_root / SPEC.location / "big.g3"
    with big.open("wb") as handle:  # sparse: costs no disk, but takes seconds to hash
        handle.truncate(32 * 1024**3)  # 16 GiB was hashed before the kill under load
    manifest["files"].insert(0, {"path": "big.g3", "size": big.stat().st_size})
    assert ccat("file", str(drop_manifest(manifest, tmp_path / "inbox"))).returncode == 0
    assert ccat("checksum").returncode == 0
    task_file = tmp_path / "local-jobs"
    deadline = time.monotonic() + 60
    while not list(task_file.glob("*/task-0.json")) or "pid" not in _task_record(task_file):
        assert time.monotonic() < deadline, "the checksum task never started"
        time.sleep(0.02)
    _kill_task(int(_task_record(task_file)["pid"]))  # the node dies mid-file
    rerun = ccat("checksum", "--wait", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.splitlines()[0])["files"] == 1  # the big file, its own task
    listing = json.loads(ccat("files", "list", "--json").stdout)["items"]
    assert {f["state"] for f in listing} == {"checksummed"} and len(listing) == 5
    first = json.loads(ccat("job", "status", "1", "--json").stdout)["tasks"][0]
    assert first["state"] == "failed" and "ended without recording an outcome" in first["reason"]


def _kill_task(pid: int) -> None:
    """SIGKILL a checksum task process, after making sure that is what ``pid`` still is."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"run" in command and b"checksum" in command, command
    os.kill(pid, signal.SIGKILL)


def _task_record(state_root: Path) -> dict[str, object]:
    return dict(json.loads(next(state_root.glob("*/task-0.json")).read_text()))


def _one_big_file(data_root: Path, inbox: Path) -> Path:
    """A manifest of one sparse 48 GiB file: no disk, but seconds to hash."""
    manifest = write_observation(dataclasses.replace(SPEC, file_count=0), data_root / SPEC.location)
    big = data_root / SPEC.location / "big.g3"
    with big.open("wb") as handle:
        handle.truncate(48 * 1024**3)
    manifest["files"] = [{"path": "big.g3", "size": big.stat().st_size}]
    return drop_manifest(manifest, inbox)


def test_a_batch_the_executor_forgot_is_closed_by_a_forced_cancel(
    ccat: Ccat, loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    assert ccat("file", str(_one_big_file(data_root, tmp_path / "inbox"))).returncode == 0
    assert ccat("checksum", "--parsable").stdout == "1\n"
    state_root = tmp_path / "local-jobs"
    deadline = time.monotonic() + 60
    while not list(state_root.glob("*/task-0.json")) or "pid" not in _task_record(state_root):
        assert time.monotonic() < deadline, "the checksum task never started"
        time.sleep(0.1)
    _kill_task(int(_task_record(state_root)["pid"]))  # the node is lost …
    local = LocalExecutor(state_root=state_root)
    local.cancel([SubmittedArray(next(state_root.iterdir()).name, 0, 1)])  # (its supervisor)
    shutil.rmtree(state_root)  # … with the executor's state
    shown = ccat("job", "status", "1")
    assert shown.returncode == 0 and "job cancel 1 --force" in shown.stderr
    refused = ccat("job", "cancel", "1")
    assert refused.returncode == 8 and "internal error" not in refused.stderr
    forced = ccat("job", "cancel", "1", "--force")
    assert forced.returncode == 0 and forced.stdout == "batch 1: cancelled\n"
    listing = json.loads(ccat("files", "list", "--json").stdout)["items"]
    assert [f["state"] for f in listing] == ["filed"]  # given back, ready for the next run


def test_an_interrupted_submission_gives_its_files_back(
    ccat: Ccat, loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    manifest = write_observation(SPEC, data_root / SPEC.location)
    assert ccat("file", str(drop_manifest(manifest, tmp_path / "inbox"))).returncode == 0
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sbatch").write_text("#!/bin/sh\nsleep 60\n")  # a batch system that hangs
    (shim / "sbatch").chmod(0o755)
    (shim / "scontrol").write_text("#!/bin/sh\necho MaxArraySize=1001\n")
    (shim / "scontrol").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", CCAT_HPC_DB=str(ccat.db_url))
    command = [sys.executable, "-m", "ccat_hpc", "checksum", "--executor", "slurm"]
    submitting = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _batch_exists(loaded_factory):
        assert time.monotonic() < deadline and submitting.poll() is None
        time.sleep(0.1)
    submitting.send_signal(signal.SIGTERM)  # e.g. the time limit of sbatch/checksum.sbatch
    _, err = submitting.communicate(timeout=60)
    assert submitting.returncode == 143 and "terminated" in err
    with loaded_factory() as session:
        batch = session.scalars(select(JobBatch)).one()
    assert batch.state == JobBatchState.SUBMIT_FAILED and "Terminated" in (
        batch.failure_reason or ""
    )
    listing = json.loads(ccat("files", "list", "--json").stdout)["items"]
    assert {f["state"] for f in listing} == {"filed"}


def _batch_exists(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        return session.scalars(select(JobBatch)).first() is not None


def test_running_a_task_that_already_ended_says_so(
    ccat: Ccat, loaded_factory: sessionmaker[Session]
) -> None:
    assert ccat("job", "submit", "noop", "--wait").returncode == 0
    again = ccat("job", "run", "noop", "--batch", "1", "--task", "0")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "error: batch 1 is done: its tasks do not run any more (submit the work again)"
    )
    with transaction(loaded_factory) as session:  # a task record alone, its batch still open
        batch = session.get(JobBatch, 1)
        assert batch is not None
        move_row(session, batch, JobBatchState.SUBMITTED)
    again = ccat("job", "run", "noop", "--batch", "1", "--task", "0")
    assert again.stderr.strip() == (
        "error: task 0 of batch 1 is already succeeded: nothing to run (submit the work again)"
    )


def test_a_running_task_is_not_run_a_second_time(
    ccat: Ccat, loaded_factory: sessionmaker[Session]
) -> None:
    assert ccat("job", "submit", "sleep", "--param", f"seconds={FOREVER}").returncode == 0
    deadline = time.monotonic() + 60
    while "running" not in ccat("job", "status", "1").stdout:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.3)
    twice = ccat("job", "run", "sleep", "--batch", "1", "--task", "0")
    assert twice.returncode == 1 and "is running already (as local-" in twice.stderr
    assert "refusing to run it twice" in twice.stderr
    assert ccat("job", "cancel", "1").returncode == 0
    with loaded_factory() as session:
        task = session.scalars(select(JobTask)).one()
        assert task.attempts == 1 and (task.external_id or "").startswith("local-")


@pytest.mark.parametrize(
    ("args", "environ", "code", "message"),
    [
        (("--task", "2147483648"), {}, 2, "--task"),
        ((), {"SLURM_ARRAY_TASK_ID": "abc"}, 1, "SLURM_ARRAY_TASK_ID='abc' is not a task number"),
        ((), {"SLURM_ARRAY_TASK_ID": "9" * 20}, 1, "is not a task number"),
        ((), {"SLURM_ARRAY_TASK_ID": "1", "CCAT_HPC_TASK_OFFSET": "2147483647"}, 1, "out of range"),
    ],
)
def test_bad_task_numbers_are_one_line_errors(
    ccat: Ccat,
    loaded_factory: sessionmaker[Session],
    args: tuple[str, ...],
    environ: dict[str, str],
    code: int,
    message: str,
) -> None:
    result = ccat("job", "run", "noop", "--batch", "1", *args, extra=environ)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("files", "list", "--path", os.fsdecode(b"\xff")), 2, "not UTF-8 text"),
        (("obs", "list", "--instrument", os.fsdecode(b"\xff")), 2, "not UTF-8 text"),
        (("catalog", "load", "/dev/zero"), 3, "/dev/zero: cannot read: not a regular file"),
        (("job", "submit", "noop", "--workdir", "/dev/null/x"), 2, "--workdir /dev/null/x"),
        (("checksum", "--workdir", "/dev/null/x"), 2, "cannot use it: Not a directory"),
        (("simulate-observation", "--drop-into", "/dev/null"), 2, "cannot write the observation"),
        (("job", "submit", "sleep", "--param", "seconds=" + "[" * 100_000), 2, "is not JSON"),
    ],
)
def test_odd_arguments_are_one_line_errors_not_internal_ones(
    ccat: Ccat,
    loaded_factory: sessionmaker[Session],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    result = ccat(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "internal error" not in result.stderr
    with loaded_factory() as session:
        assert session.scalars(select(JobBatch)).first() is None
