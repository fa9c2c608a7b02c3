"""The embedded default executor: job arrays as processes on this machine.

Each submitted array gets a state folder below ``state_root`` and a detached
supervisor process (:mod:`ccat_hpc.executors.local_runner`), so submitting returns at
once and states can be read from any later process, as with Slurm. Tasks run the
same command with the same ``SLURM_*`` variables as under Slurm, and write to the same
log files (:func:`~ccat_hpc.executors.base.task_log_file`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from ccat_hpc.executors.base import (
    ArrayJob,
    SubmittedArray,
    TaskReport,
    TaskStatus,
    job_name,
    task_environment,
)
from ccat_hpc.executors.local_runner import (
    process_stat,
    read_json,
    record_runner,
    recorded_runner,
    task_file,
)
from ccat_hpc.executors.process import DetachedStarter, UnknownJob, start_detached
from ccat_hpc.executors.slurm_time import seconds_of
from ccat_hpc.executors.validate import InvalidArrayJob, check_count

STATE_ROOT_ENV = "CCAT_HPC_LOCAL_JOBS"
_LOCAL_JOB_ID = re.compile(r"local-[0-9a-f]{12}")
RUNNER_MODULE = "ccat_hpc.executors.local_runner"


def default_state_root() -> Path:
    configured = os.environ.get(STATE_ROOT_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "ccat-hpc" / "local-jobs"


class LocalExecutor:
    name = "local"

    def __init__(
        self,
        state_root: Path | None = None,
        parallel: int | None = None,
        command_prefix: Sequence[str] | None = None,
        start: DetachedStarter = start_detached,
    ) -> None:
        self.state_root = state_root or default_state_root()
        self.parallel = (
            check_count("parallel", parallel) if parallel is not None else os.cpu_count() or 1
        )
        self.command_prefix = list(command_prefix or [sys.executable, "-m", "ccat_hpc"])
        self.start = start

    def submit(self, job: ArrayJob) -> list[SubmittedArray]:
        depends_on = [str(self._folder(a)) for a in job.depends_on]
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        folder = self.state_root / job_id
        folder.mkdir(parents=True)
        job.working_dir.mkdir(parents=True, exist_ok=True)
        _write_private(folder / "spec.json", self._spec(job, job_id, depends_on))
        runner = [sys.executable, "-m", RUNNER_MODULE, str(folder)]
        record_runner(folder, self.start(runner, folder / "runner.log"))
        return [SubmittedArray(job_id, 0, job.task_count)]

    def _spec(self, job: ArrayJob, job_id: str, depends_on: list[str]) -> dict[str, object]:
        throttle = job.effective_throttle
        return {
            "job_id": job_id,
            "kind": job.kind,
            "batch_id": job.batch_id,
            "task_count": job.task_count,
            "parallel": min(self.parallel, throttle) if throttle else self.parallel,
            "time_limit_seconds": seconds_of(job.profile.time),
            "depends_on": depends_on,
            "environment": task_environment(job, job_id, 0, 0),
            "command": [*self.command_prefix, "job", "run", job.kind, "--batch", str(job.batch_id)],
            "working_dir": str(job.working_dir),
            "name": job_name(job),
        }

    def states(self, arrays: Sequence[SubmittedArray]) -> dict[int, TaskReport]:
        reports: dict[int, TaskReport] = {}
        for array in arrays:
            folder = self._folder(array)
            alive = _runner_alive(folder)
            for index in range(array.task_count):
                reports[array.first_task + index] = _report(
                    read_json(task_file(folder, index)), alive
                )
        return reports

    def cancel(self, arrays: Sequence[SubmittedArray]) -> None:
        for array in arrays:
            folder = self._folder(array)
            pid = _live_runner(folder)
            if pid is not None:
                os.kill(pid, signal.SIGTERM)

    def _folder(self, array: SubmittedArray) -> Path:
        if not _LOCAL_JOB_ID.fullmatch(array.job_id):
            raise InvalidArrayJob(f"{array.job_id!r} is not a local job id")
        folder = self.state_root / array.job_id
        if not (folder / "spec.json").exists():
            raise UnknownJob(f"no local job {array.job_id} in {self.state_root}")
        return folder


def _write_private(path: Path, data: dict[str, object]) -> None:
    """The environment may hold the ops-db URL with its password: an owner-only file."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(data))


def _runner_alive(folder: Path) -> bool:
    return _live_runner(folder) is not None


def _live_runner(folder: Path) -> int | None:
    """The pid of the array's supervisor while it runs, else None (also when its pid now
    belongs to a later process: the start times differ)."""
    recorded = recorded_runner(folder)
    if recorded is None:
        return None
    pid, started = recorded
    if _reaped(pid):
        return None
    stat = process_stat(pid)
    if stat is None:  # gone, or no /proc to ask
        return pid if _exists(pid) else None
    state, start_time = stat
    if state == "Z" or (started is not None and start_time != started):
        return None
    return pid


def _reaped(pid: int) -> bool:
    """True when ``pid`` was our own child and has ended (now reaped)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False  # started by another process


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's by now
        return False
    return True


def _report(record: dict[str, object] | None, runner_alive: bool) -> TaskReport:
    if record is None:
        if runner_alive:
            return TaskReport(TaskStatus.PENDING)
        return TaskReport(TaskStatus.NODE_FAIL, reason="the local runner ended before the task ran")
    status = TaskStatus(str(record["status"]))
    if status in (TaskStatus.RUNNING, TaskStatus.PENDING) and not runner_alive:
        return TaskReport(TaskStatus.NODE_FAIL, reason="the local runner is gone")
    code = record.get("exit_code")
    return TaskReport(
        status, int(code) if isinstance(code, int) else None, str(record.get("reason", ""))
    )
