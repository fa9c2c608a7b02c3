"""The supervisor process of one local job array (started by :class:`LocalExecutor`).

    python -m ccat_hpc.executors.local_runner STATE_FOLDER

It waits for the arrays this one depends on, then runs the tasks as child processes
(at most ``parallel`` at a time), each with the environment a Slurm array task sees,
kills a task that outlives its time limit (TIMEOUT), and writes every task's status to
``STATE_FOLDER/task-N.json``. SIGTERM (cancel) stops the children and marks the tasks
CANCELLED. Task files are replaced atomically, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccat_hpc.executors.base import FINAL_STATUSES

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


@dataclass
class Running:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    killed_for_time: bool = False


class Runner:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec = json.loads((folder / "spec.json").read_text())
        self.running: dict[int, Running] = {}
        self.stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        (self.folder / "runner.pid").write_text(str(os.getpid()))
        if not self._wait_for_dependencies():
            self._mark_rest("CANCELLED", "DependencyNeverSatisfied")
            return
        waiting = list(range(self.spec["task_count"]))
        while (waiting or self.running) and not self.stopping:
            while waiting and len(self.running) < self.spec["parallel"] and not self.stopping:
                self._start(waiting.pop(0))
            self._reap()
            time.sleep(POLL_SECONDS)
        if self.stopping:
            self._stop_all()
            self._mark_rest("CANCELLED", "cancelled")

    def _on_term(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _wait_for_dependencies(self) -> bool:
        for other in self.spec["depends_on"]:
            while not self.stopping:
                statuses = _statuses(Path(other))
                if statuses is not None and all(s in FINAL_STATUSES for s in statuses):
                    if any(s != "COMPLETED" for s in statuses):
                        return False
                    break
                time.sleep(POLL_SECONDS)
        return not self.stopping

    def _start(self, index: int) -> None:
        env = {**os.environ, **self.spec["environment"], "SLURM_ARRAY_TASK_ID": str(index)}
        log = (Path(self.spec["working_dir"]) / f"{self.spec['log_name']}_{index}.out").open("ab")
        process = subprocess.Popen(
            self.spec["command"],
            cwd=self.spec["working_dir"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.running[index] = Running(index, process, time.monotonic())
        write_json(task_file(self.folder, index), {"status": "RUNNING", "pid": process.pid})

    def _reap(self) -> None:
        limit = self.spec["time_limit_seconds"]
        for index, task in list(self.running.items()):
            code = task.process.poll()
            if code is None:
                if time.monotonic() - task.started > limit and not task.killed_for_time:
                    task.killed_for_time = True
                    _terminate(task.process)
                continue
            del self.running[index]
            status = "TIMEOUT" if task.killed_for_time else ("COMPLETED" if code == 0 else "FAILED")
            reason = "time limit" if task.killed_for_time else ("" if code == 0 else "exit code")
            record = {"status": status, "exit_code": code if code >= 0 else 128 - code}
            write_json(task_file(self.folder, index), {**record, "reason": reason})

    def _stop_all(self) -> None:
        for task in self.running.values():
            _terminate(task.process)
        for task in self.running.values():
            code = task.process.wait()
            write_json(
                task_file(self.folder, task.index),
                {"status": "CANCELLED", "exit_code": code, "reason": "cancelled"},
            )
        self.running.clear()

    def _mark_rest(self, status: str, reason: str) -> None:
        for index in range(self.spec["task_count"]):
            path = task_file(self.folder, index)
            current = read_json(path)
            if current is None or current.get("status") not in FINAL_STATUSES:
                write_json(path, {"status": status, "exit_code": None, "reason": reason})


def _statuses(folder: Path) -> list[str] | None:
    spec = read_json(folder / "spec.json")
    if spec is None:
        return None
    records = [read_json(task_file(folder, i)) for i in range(spec["task_count"])]
    return [r["status"] if r else "PENDING" for r in records]


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the task's process group, SIGKILL after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    Runner(Path(sys.argv[1])).run()


if __name__ == "__main__":
    main()
