"""The local executor and its supervisor with small real task processes (no ops-db).

Tasks here are ``python -c`` programs in place of ``ccat-hpc job run``; tests that stop a
task wait for it to say it runs (a handshake file) before they cancel, and never for a
fixed time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccat_hpc.executors.base import ArrayJob, SubmittedArray, TaskStatus, task_log_path
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.executors.local_runner import Runner, task_file
from ccat_hpc.executors.process import DetachedStarter, start_detached, start_task
from ccat_hpc.executors.validate import InvalidArrayJob
from ccat_hpc.sites.schema import SlurmProfile

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
#: the task program: says hello (handshake file), then exits with its task index, or
#: sleeps when asked to
TASK = """
import os, sys, time
index = int(os.environ["SLURM_ARRAY_TASK_ID"])
print("task", index, "of", os.environ["SLURM_ARRAY_JOB_ID"], "args", sys.argv[1:], flush=True)
ready = os.environ.get("READY_DIR")
if ready:
    open(os.path.join(ready, f"ready-{index}"), "w").close()
if os.environ.get("SLEEP"):
    time.sleep(float(os.environ["SLEEP"]))
sys.exit(index)
"""


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def executor(
    tmp_path: Path, start: DetachedStarter = start_detached, parallel: int | None = None
) -> LocalExecutor:
    return LocalExecutor(
        state_root=tmp_path / "state",
        parallel=parallel,
        command_prefix=[sys.executable, "-c", TASK],
        start=start,
    )


def job(
    tmp_path: Path,
    tasks: int,
    environment: Mapping[str, str] | None = None,
    time_limit: str = "01:00:00",
    depends_on: Sequence[SubmittedArray] = (),
) -> ArrayJob:
    return ArrayJob(
        "noop",
        42,
        tasks,
        tmp_path / "job logs",
        SlurmProfile(time=time_limit),
        depends_on=depends_on,
        environment=dict(environment or {}),
    )


def log_of(tmp_path: Path, array: SubmittedArray, index: int) -> Path:
    path = task_log_path(tmp_path / "job logs", "noop", 42, [array], index)
    assert path is not None
    return path


def ended(local: LocalExecutor, arrays: list[SubmittedArray]) -> dict[int, TaskStatus]:
    wait_until(lambda: all(r.final for r in local.states(arrays).values()), "end of the tasks")
    return {index: report.status for index, report in local.states(arrays).items()}


@dataclass(frozen=True)
class Started:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path


class Recorder:
    """Starters that keep what they were asked to start."""

    def __init__(self) -> None:
        self.detached: list[list[str]] = []
        self.tasks: list[Started] = []

    def start_detached(self, argv: Sequence[str], log: Path) -> int:
        self.detached.append(list(argv))
        return 0  # nothing started: the test runs the supervisor itself

    def start_task(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        self.tasks.append(Started(list(argv), cwd, dict(env), log))
        return start_task(argv, cwd=cwd, env=env, log=log)


def test_the_supervisor_starts_every_task_through_the_starter_it_is_given(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    local = executor(tmp_path, start=recorder.start_detached)
    [array] = local.submit(job(tmp_path, 2))
    [runner_argv] = recorder.detached
    folder = Path(runner_argv[-1])
    assert runner_argv[1:3] == ["-m", "ccat_hpc.executors.local_runner"]
    assert folder == tmp_path / "state" / array.job_id
    assert oct(os.stat(folder / "spec.json").st_mode & 0o777) == "0o600"

    Runner(folder, start=recorder.start_task).run()

    started = sorted(recorder.tasks, key=lambda t: str(t.log))
    assert [t.log for t in started] == [log_of(tmp_path, array, i) for i in (0, 1)]
    assert all(t.cwd == tmp_path / "job logs" for t in started)
    assert [t.argv[-5:] for t in started] == [["job", "run", "noop", "--batch", "42"]] * 2
    assert [t.env["SLURM_ARRAY_TASK_ID"] for t in started] == ["0", "1"]
    assert {t.env["SLURM_ARRAY_JOB_ID"] for t in started} == {array.job_id}
    states = local.states([array])
    assert (states[0].status, states[0].exit_code) == (TaskStatus.COMPLETED, 0)
    assert (states[1].status, states[1].exit_code) == (TaskStatus.FAILED, 1)


def test_task_logs_hold_the_output_between_timestamped_start_and_end_lines(
    tmp_path: Path,
) -> None:
    local = executor(tmp_path)
    [array] = local.submit(job(tmp_path, 2))
    assert ended(local, [array]) == {0: TaskStatus.COMPLETED, 1: TaskStatus.FAILED}
    for index in (0, 1):
        first, output, last = log_of(tmp_path, array, index).read_text().splitlines()
        task = f"{array.job_id}_{index}"
        assert re.fullmatch(rf"{STAMP} ccat-hpc: task {task} started on \S+", first)
        assert output.startswith(f"task {index} of {array.job_id} args ['job', 'run', 'noop'")
        assert re.fullmatch(rf"{STAMP} ccat-hpc: task {task} ended: \w+, exit code {index}", last)
    runner_log_path = tmp_path / "state" / array.job_id / "runner.log"
    wait_until(lambda: "supervisor ends" in runner_log_path.read_text(), "supervisor's end")
    runner_log = runner_log_path.read_text()
    assert re.search(
        rf"^{STAMP} supervisor of {array.job_id} \(ccat-noop-42\) started", runner_log, re.M
    )
    assert re.search(rf"^{STAMP} task 1 ended: FAILED, exit code 1$", runner_log, re.M)
    assert re.search(rf"^{STAMP} supervisor ends$", runner_log, re.M)


def test_cancel_stops_running_tasks_and_says_so_in_their_logs(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    local = executor(tmp_path, parallel=1)
    environment = {"READY_DIR": str(ready), "SLEEP": "600"}
    [array] = local.submit(job(tmp_path, 2, environment))
    wait_until((ready / "ready-0").exists, "handshake of task 0")
    local.cancel([array])
    assert ended(local, [array]) == {0: TaskStatus.CANCELLED, 1: TaskStatus.CANCELLED}
    assert local.states([array])[0].exit_code == 143  # SIGTERM
    running = log_of(tmp_path, array, 0).read_text().splitlines()
    assert running[-1].endswith(f"task {array.job_id}_0 ended: CANCELLED, exit code 143")
    never = log_of(tmp_path, array, 1).read_text().splitlines()
    assert len(never) == 1 and never[0].endswith("ended before it started: CANCELLED (cancelled)")
    assert not (ready / "ready-1").exists()


def test_a_task_past_its_time_limit_is_stopped_and_logged(tmp_path: Path) -> None:
    local = executor(tmp_path)
    [array] = local.submit(job(tmp_path, 1, {"SLEEP": "600"}, time_limit="0:01"))
    assert ended(local, [array]) == {0: TaskStatus.TIMEOUT}
    last = log_of(tmp_path, array, 0).read_text().splitlines()[-1]
    assert last.endswith("ended: TIMEOUT (time limit of 1 s), exit code 143")


def test_tasks_after_a_failed_array_never_start_and_their_logs_say_why(tmp_path: Path) -> None:
    local = executor(tmp_path)
    [first] = local.submit(job(tmp_path, 2))  # task 1 exits 1
    [after] = local.submit(job(tmp_path, 1, depends_on=[first]))
    assert ended(local, [after]) == {0: TaskStatus.CANCELLED}
    assert local.states([after])[0].reason == "DependencyNeverSatisfied"
    lines = log_of(tmp_path, after, 0).read_text().splitlines()
    assert (
        len(lines) == 1
        and "ended before it started: CANCELLED (DependencyNeverSatisfied)" in lines[0]
    )


def test_a_pid_taken_by_another_process_is_neither_trusted_nor_signalled(tmp_path: Path) -> None:
    recorder = Recorder()
    local = executor(tmp_path, start=recorder.start_detached)
    [array] = local.submit(job(tmp_path, 1))
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        # as if the supervisor had this pid earlier: another start time
        (tmp_path / "state" / array.job_id / "runner.pid").write_text(f"{stranger.pid} 1\n")
        local.cancel([array])
        report = local.states([array])[0]
        assert stranger.poll() is None  # still alive: it was not sent SIGTERM
        assert report.status == TaskStatus.NODE_FAIL and "runner ended" in report.reason
    finally:
        stranger.kill()
        stranger.wait()


def test_ids_that_are_not_local_job_ids_never_become_paths(tmp_path: Path) -> None:
    local = executor(tmp_path)
    for job_id in ("314", "local-..", "local-0123456789ab.x"):
        with pytest.raises(InvalidArrayJob):
            local.states([SubmittedArray(job_id, 0, 1)])
    with pytest.raises(InvalidArrayJob, match="parallel"):
        executor(tmp_path, parallel=-1)


def test_the_supervisor_refuses_a_tampered_kind(tmp_path: Path) -> None:
    recorder = Recorder()
    [array] = executor(tmp_path, start=recorder.start_detached).submit(job(tmp_path, 1))
    spec_path = tmp_path / "state" / array.job_id / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec_path.write_text(json.dumps({**spec, "kind": "../../etc"}))
    with pytest.raises(InvalidArrayJob):
        Runner(spec_path.parent)
    assert not task_file(spec_path.parent, 0).exists()


def test_the_tasks_environment_does_not_stay_on_disk(tmp_path: Path) -> None:
    """It may hold the ops-db password: the supervisor keeps it in memory only."""
    secret = "postgresql://ops:Sup3rSecret@db/ops"
    local = executor(tmp_path)
    [array] = local.submit(job(tmp_path, 2, {"CCAT_HPC_DB": secret}))
    wait_until(lambda: local.states([array])[1].final, "end of the array")
    spec = json.loads((tmp_path / "state" / array.job_id / "spec.json").read_text())
    assert "environment" not in spec and spec["task_count"] == 2
    on_disk = [p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert on_disk and not any(b"Sup3rSecret" in data for data in on_disk)
