"""The supervisor process of one local job array (started by :class:`LocalExecutor`).

    python -m ccat_hpc.executors.local_runner STATE_FOLDER

It waits for the arrays this one depends on, then runs the tasks as child processes
(at most ``parallel`` at a time, each started by :func:`ccat_hpc.executors.process.start_task`)
with the environment a Slurm array task sees, kills a task that outlives its time limit
(TIMEOUT), and writes every task's status to ``STATE_FOLDER/task-N.json``. SIGTERM
(cancel) stops the children and marks the tasks CANCELLED. Task files are replaced
atomically, so readers never see half a file.

It writes a line (ISO 8601 UTC time first) to its own log, ``STATE_FOLDER/runner.log``,
for each thing it does, and to a task's log (the file Slurm would write,
:func:`~ccat_hpc.executors.base.task_log_file`) when the task starts and ends; the end
line is written before the task's status, so a reader who sees the end finds the line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccat_hpc.executors.base import FINAL_STATUSES, task_log_file
from ccat_hpc.executors.process import TaskStarter, signal_group, start_task
from ccat_hpc.executors.validate import check_kind

POLL_SECONDS = 0.1
KILL_GRACE_SECONDS = 5.0


def write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def task_file(folder: Path, index: int) -> Path:
    return folder / f"task-{index}.json"


def process_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks after boot) of process ``pid`` from /proc;
    None when it does not exist or there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the name in parentheses may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


def record_runner(folder: Path, pid: int) -> None:
    """``runner.pid``: the supervisor's pid and start time (a later process with the same
    pid has another start time), replaced atomically."""
    stat = process_stat(pid)
    partial = folder / ".runner.pid.tmp"
    partial.write_text(f"{pid} {stat[1] if stat else '-'}\n")
    os.replace(partial, folder / "runner.pid")


def recorded_runner(folder: Path) -> tuple[int, str | None] | None:
    """(pid, start time or None) from ``runner.pid``; None when there is none."""
    try:
        words = (folder / "runner.pid").read_text().split()
    except FileNotFoundError:
        return None
    if not words or not words[0].isdigit() or int(words[0]) <= 0:
        return None
    started = words[1] if len(words) > 1 and words[1] != "-" else None
    return int(words[0]), started


def stamp(moment: datetime | None = None) -> str:
    """``2026-03-01T12:00:00Z``: ISO 8601, UTC, to the second (as the Slurm scripts write)."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def append_line(path: Path, message: str) -> None:
    """``message`` as one timestamped line at the end of ``path``."""
    with path.open("a") as handle:
        handle.write(f"{stamp()} {message}\n")


def exit_code_of(returncode: int) -> int:
    """A process's return code as a shell's exit code (killed by signal N → 128 + N)."""
    return returncode if returncode >= 0 else 128 - returncode


@dataclass
class Running:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    killed_for_time: bool = False


class Runner:
    def __init__(self, folder: Path, start: TaskStarter = start_task) -> None:
        self.folder = folder
        self.spec = json.loads((folder / "spec.json").read_text())
        check_kind(self.spec["kind"])
        self._forget_secrets()
        self.start = start
        self.running: dict[int, Running] = {}
        self.stopping = False

    def _forget_secrets(self) -> None:
        """Keep the tasks' environment (it may hold the ops-db password) in memory only:
        the spec left on disk for later readers has none."""
        on_disk = {key: value for key, value in self.spec.items() if key != "environment"}
        write_json(self.folder / "spec.json", on_disk)

    def run(self) -> None:
        self.note(self._summary())
        if not self._wait_for_dependencies():
            reason = "cancelled" if self.stopping else "DependencyNeverSatisfied"
            self._mark_rest("CANCELLED", reason)
        else:
            self._run_tasks()
        self.note("supervisor ends")

    def stop(self) -> None:
        """Cancel: stop the running tasks, start no more (the SIGTERM handler)."""
        self.stopping = True

    def note(self, message: str) -> None:
        append_line(self.folder / "runner.log", message)

    def _summary(self) -> str:
        spec = self.spec
        return (
            f"supervisor of {spec['job_id']} ({spec['name']}) started: "
            f"{spec['task_count']} task(s), at most {spec['parallel']} at a time, "
            f"time limit {spec['time_limit_seconds']} s"
        )

    def _task_id(self, index: int) -> str:
        return f"{self.spec['job_id']}_{index}"

    def task_log(self, index: int) -> Path:
        spec = self.spec
        working_dir = Path(spec["working_dir"])
        return task_log_file(working_dir, spec["kind"], spec["batch_id"], spec["job_id"], index)

    def _note_task(self, index: int, message: str) -> None:
        """A line about task ``index`` in its own log and in the supervisor's."""
        self.note(f"task {index} {message}")
        try:
            append_line(self.task_log(index), f"ccat-hpc: task {self._task_id(index)} {message}")
        except OSError as exc:
            self.note(f"task {index}: cannot write to its log: {exc}")

    def _wait_for_dependencies(self) -> bool:
        for other in self.spec["depends_on"]:
            self.note(f"waiting for {Path(other).name}")
            while not self.stopping:
                statuses = _statuses(Path(other))
                if statuses is not None and all(s in FINAL_STATUSES for s in statuses):
                    if any(s != "COMPLETED" for s in statuses):
                        self.note(f"{Path(other).name} did not complete: no task runs")
                        return False
                    break
                time.sleep(POLL_SECONDS)
        return not self.stopping

    def _run_tasks(self) -> None:
        waiting = list(range(self.spec["task_count"]))
        while (waiting or self.running) and not self.stopping:
            while waiting and len(self.running) < self.spec["parallel"] and not self.stopping:
                self._start(waiting.pop(0))
            self._reap()
            time.sleep(POLL_SECONDS)
        if self.stopping:
            self.note("cancelled: stopping the running tasks")
            self._stop_all()
            self._mark_rest("CANCELLED", "cancelled")

    def _start(self, index: int) -> None:
        env = {**os.environ, **self.spec["environment"], "SLURM_ARRAY_TASK_ID": str(index)}
        log = self.task_log(index)
        self._note_task(index, f"started on {socket.gethostname()}")
        try:
            process = self.start(
                self.spec["command"], cwd=Path(self.spec["working_dir"]), env=env, log=log
            )
        except OSError as exc:
            reason = f"could not start: {exc}"
            self._note_task(index, f"ended: FAILED ({reason})")
            write_json(task_file(self.folder, index), {"status": "FAILED", "reason": reason})
            return
        self.running[index] = Running(index, process, time.monotonic())
        write_json(task_file(self.folder, index), {"status": "RUNNING", "pid": process.pid})
        self.note(f"task {index} has pid {process.pid}; its log: {log}")

    def _reap(self) -> None:
        limit = self.spec["time_limit_seconds"]
        for index, task in list(self.running.items()):
            code = task.process.poll()
            if code is None:
                if time.monotonic() - task.started > limit and not task.killed_for_time:
                    task.killed_for_time = True
                    self.note(f"task {index} is past its time limit of {limit} s: stopping it")
                    _terminate(task.process)
                continue
            del self.running[index]
            self._record_end(index, code, task.killed_for_time)

    def _record_end(self, index: int, returncode: int, killed_for_time: bool) -> None:
        code = exit_code_of(returncode)
        if killed_for_time:
            status, reason = "TIMEOUT", "time limit"
        else:
            status, reason = ("COMPLETED", "") if code == 0 else ("FAILED", "exit code")
        detail = f" ({reason} of {self.spec['time_limit_seconds']} s)" if killed_for_time else ""
        self._note_task(index, f"ended: {status}{detail}, exit code {code}")
        write_json(
            task_file(self.folder, index), {"status": status, "exit_code": code, "reason": reason}
        )

    def _stop_all(self) -> None:
        for task in self.running.values():
            _terminate(task.process)
        for task in self.running.values():
            code = exit_code_of(task.process.wait())
            self._note_task(task.index, f"ended: CANCELLED, exit code {code}")
            write_json(
                task_file(self.folder, task.index),
                {"status": "CANCELLED", "exit_code": code, "reason": "cancelled"},
            )
        self.running.clear()

    def _mark_rest(self, status: str, reason: str) -> None:
        """Tasks that never started end as ``status``; their logs say so."""
        for index in range(self.spec["task_count"]):
            path = task_file(self.folder, index)
            current = read_json(path)
            if current is None or current.get("status") not in FINAL_STATUSES:
                self._note_task(index, f"ended before it started: {status} ({reason})")
                write_json(path, {"status": status, "exit_code": None, "reason": reason})


def _statuses(folder: Path) -> list[str] | None:
    spec = read_json(folder / "spec.json")
    if spec is None:
        return None
    records = [read_json(task_file(folder, i)) for i in range(spec["task_count"])]
    return [r["status"] if r else "PENDING" for r in records]


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the task's process group, SIGKILL after a grace period."""
    if not signal_group(process.pid, signal.SIGTERM):
        return
    try:
        process.wait(KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)


def main() -> None:
    folder = Path(sys.argv[1])
    runner = Runner(folder)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: runner.stop())
    record_runner(folder, os.getpid())
    runner.run()


if __name__ == "__main__":
    main()
