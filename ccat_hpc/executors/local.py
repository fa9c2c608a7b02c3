"""The embedded default executor: job arrays as processes on this machine.

Each submitted array gets a state folder below ``state_root`` and a detached
supervisor process (:mod:`ccat_hpc.executors.local_runner`), so submitting returns at
once and states can be read from any later process, as with Slurm. Tasks run the
same command with the same ``SLURM_*`` variables as under Slurm.
"""

from __future__ import annotations

import json
import os
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
from ccat_hpc.executors.local_runner import read_json, task_file
from ccat_hpc.executors.process import ExecutorError, start_detached
from ccat_hpc.executors.slurm_time import seconds_of

STATE_ROOT_ENV = "CCAT_HPC_LOCAL_JOBS"


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
    ) -> None:
        self.state_root = state_root or default_state_root()
        self.parallel = parallel or os.cpu_count() or 1
        self.command_prefix = list(command_prefix or [sys.executable, "-m", "ccat_hpc"])

    def submit(self, job: ArrayJob) -> list[SubmittedArray]:
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        folder = self.state_root / job_id
        folder.mkdir(parents=True)
        job.working_dir.mkdir(parents=True, exist_ok=True)
        throttle = job.effective_throttle
        spec = {
            "job_id": job_id,
            "task_count": job.task_count,
            "parallel": min(self.parallel, throttle) if throttle else self.parallel,
            "time_limit_seconds": seconds_of(job.profile.time),
            "depends_on": [str(self.state_root / a.job_id) for a in job.depends_on],
            "environment": task_environment(job, job_id, 0, 0),
            "command": [*self.command_prefix, "job", "run", job.kind, "--batch", str(job.batch_id)],
            "working_dir": str(job.working_dir),
            "log_name": f"{job.kind}-{job.batch_id}-{job_id}",
            "name": job_name(job),
        }
        # the environment may hold the ops-db URL with its password: owner-only file
        spec_fd = os.open(folder / "spec.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(spec_fd, "w") as handle:
            handle.write(json.dumps(spec))
        runner = [sys.executable, "-m", "ccat_hpc.executors.local_runner", str(folder)]
        pid = start_detached(runner, folder / "runner.log")
        (folder / "runner.pid").write_text(str(pid))
        return [SubmittedArray(job_id, 0, job.task_count)]

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
            if _runner_alive(folder):
                os.kill(int((folder / "runner.pid").read_text()), signal.SIGTERM)

    def _folder(self, array: SubmittedArray) -> Path:
        folder = self.state_root / array.job_id
        if not (folder / "spec.json").exists():
            raise ExecutorError(f"no local job {array.job_id} in {self.state_root}")
        return folder


def _runner_alive(folder: Path) -> bool:
    try:
        pid = int((folder / "runner.pid").read_text())
    except (FileNotFoundError, ValueError):
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, now reaped
    except ChildProcessError:
        pass  # started by another process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


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
