"""The Slurm executor: sbatch scripts from templates, states from squeue and sacct.

Commands only (sbatch --parsable, squeue, sacct, scontrol, scancel), each through
:func:`run_command`; they find the cluster as any user's would (``SLURM_CONF`` or
``/etc/slurm``). pyslurm is not needed (it must match the installed Slurm exactly).
States: ``squeue --states=all`` knows pending, running and recently ended tasks;
``sacct`` (where accounting exists) adds exit codes and older tasks and wins for
ended tasks.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ccat_hpc.executors.base import ArrayJob, SubmittedArray, TaskReport, TaskStatus
from ccat_hpc.executors.process import ExecutorError, run_command
from ccat_hpc.executors.render import render_script, split_array, template_name, templates_dir

_STATE_MAP = {
    "PENDING": TaskStatus.PENDING,
    "REQUEUED": TaskStatus.PENDING,
    "REQUEUE_HOLD": TaskStatus.PENDING,
    "REQUEUE_FED": TaskStatus.PENDING,
    "RUNNING": TaskStatus.RUNNING,
    "COMPLETING": TaskStatus.RUNNING,
    "CONFIGURING": TaskStatus.RUNNING,
    "SUSPENDED": TaskStatus.RUNNING,
    "STOPPED": TaskStatus.RUNNING,
    "RESIZING": TaskStatus.RUNNING,
    "SIGNALING": TaskStatus.RUNNING,
    "STAGE_OUT": TaskStatus.RUNNING,
    "COMPLETED": TaskStatus.COMPLETED,
    "FAILED": TaskStatus.FAILED,
    "CANCELLED": TaskStatus.CANCELLED,
    "TIMEOUT": TaskStatus.TIMEOUT,
    "DEADLINE": TaskStatus.TIMEOUT,
    "NODE_FAIL": TaskStatus.NODE_FAIL,
    "BOOT_FAIL": TaskStatus.NODE_FAIL,
    "PREEMPTED": TaskStatus.PREEMPTED,
    "OUT_OF_MEMORY": TaskStatus.OUT_OF_MEMORY,
}
_TASK_ID = re.compile(r"^(\d+)_(\d+)$")


def task_status(slurm_state: str) -> TaskStatus:
    """Our status for a Slurm job state (``CANCELLED by 0`` → CANCELLED)."""
    word = slurm_state.split()[0].rstrip("+") if slurm_state.strip() else ""
    return _STATE_MAP.get(word, TaskStatus.FAILED if word else TaskStatus.UNKNOWN)


def parse_exit_code(text: str) -> int | None:
    """Slurm's ``CODE:SIGNAL`` as one exit code (killed by signal N → 128 + N)."""
    code, _, signal = text.partition(":")
    exit_code = int(code) if code.isdigit() else None
    if exit_code == 0 and signal.isdigit() and int(signal):
        exit_code = 128 + int(signal)
    return exit_code


def _reason(text: str) -> str:
    return "" if text == "None" else text


def parse_squeue(text: str) -> dict[tuple[str, int], TaskReport]:
    """Lines ``JOBID_INDEX|STATE|REASON`` (squeue -r -o '%i|%T|%r') → reports."""
    reports = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        match = _TASK_ID.match(parts[0]) if len(parts) >= 2 else None
        if match:
            reason = _reason(parts[2]) if len(parts) > 2 else ""
            key = (match.group(1), int(match.group(2)))
            reports[key] = TaskReport(task_status(parts[1]), None, reason)
    return reports


def parse_sacct(text: str) -> dict[tuple[str, int], TaskReport]:
    """Lines ``JobID|State|ExitCode|Reason`` (sacct -n -P -X) → reports of array tasks."""
    reports = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        match = _TASK_ID.match(parts[0]) if len(parts) >= 3 else None
        if match:
            reason = _reason(parts[3]) if len(parts) > 3 else ""
            key = (match.group(1), int(match.group(2)))
            reports[key] = TaskReport(task_status(parts[1]), parse_exit_code(parts[2]), reason)
    return reports


def parse_scontrol_jobs(text: str) -> dict[tuple[str, int], TaskReport]:
    """``scontrol show job -o`` lines of array tasks → reports (with exit codes)."""
    reports = {}
    for line in text.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        array_job, task = fields.get("ArrayJobId", ""), fields.get("ArrayTaskId", "")
        if not (array_job.isdigit() and task.isdigit()):
            continue
        reports[(array_job, int(task))] = TaskReport(
            task_status(fields.get("JobState", "")),
            parse_exit_code(fields.get("ExitCode", "")),
            _reason(fields.get("Reason", "")),
        )
    return reports


def parse_max_array_size(config_text: str) -> int:
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", config_text, re.MULTILINE)
    return int(match.group(1)) if match else 1001


class SlurmExecutor:
    name = "slurm"

    def __init__(
        self,
        ccat_command: str | None = None,
        templates: Path | None = None,
        max_array_size: int | None = None,
    ) -> None:
        self.ccat_command = ccat_command or shlex.join([sys.executable, "-m", "ccat_hpc"])
        self.templates = templates or templates_dir()
        self._max_array_size = max_array_size

    def max_array_size(self) -> int:
        if self._max_array_size is None:
            config = run_command(["scontrol", "show", "config"]).stdout
            self._max_array_size = parse_max_array_size(config)
        return self._max_array_size

    def render(self, job: ArrayJob) -> list[tuple[int, int, str]]:
        """(first task, task count, script) of every piece of ``job``."""
        available = {p.name for p in self.templates.glob("*.sbatch")}
        name = template_name(job.kind, job.profile.ntasks, available)
        template = (self.templates / name).read_text()
        return [
            (
                piece.first_task,
                piece.task_count,
                render_script(template, job, piece, self.ccat_command),
            )
            for piece in split_array(job.task_count, self.max_array_size())
        ]

    def submit(self, job: ArrayJob) -> list[SubmittedArray]:
        job.working_dir.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **job.environment}
        submitted: list[SubmittedArray] = []
        try:
            for first, count, script in self.render(job):
                path = job.working_dir / f"{job.kind}-{job.batch_id}-{first}.sbatch"
                path.write_text(script)
                answer = run_command(["sbatch", "--parsable", str(path)], env=environment)
                job_id = answer.stdout.strip().split(";")[0]
                submitted.append(SubmittedArray(job_id, first, count))
        except ExecutorError:
            self.cancel(submitted)
            raise
        return submitted

    def states(self, arrays: Sequence[SubmittedArray]) -> dict[int, TaskReport]:
        if not arrays:
            return {}
        ids = ",".join(a.job_id for a in arrays)
        seen = parse_squeue(
            run_command(
                ["squeue", "-h", "-r", "--states=all", "-j", ids, "-o", "%i|%T|%r"], check=False
            ).stdout
        )
        accounted = run_command(
            ["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode,Reason"],
            check=False,
        )
        for key, report in parse_sacct(accounted.stdout).items():
            if report.final or key not in seen:
                seen[key] = report
        self._add_exit_codes(seen)
        return _by_batch_task(arrays, seen)

    def _add_exit_codes(self, seen: dict[tuple[str, int], TaskReport]) -> None:
        """Exit codes of ended tasks that accounting has not heard of yet (it lags)."""
        lacking = sorted({job for (job, _), r in seen.items() if r.final and r.exit_code is None})
        for job_id in lacking:
            shown = run_command(["scontrol", "show", "job", "-o", job_id], check=False).stdout
            for key, report in parse_scontrol_jobs(shown).items():
                if key in seen and report.final and seen[key].exit_code is None:
                    seen[key] = report

    def cancel(self, arrays: Sequence[SubmittedArray]) -> None:
        if arrays:
            run_command(["scancel", *(a.job_id for a in arrays)])


def _by_batch_task(
    arrays: Sequence[SubmittedArray], reports: Mapping[tuple[str, int], TaskReport]
) -> dict[int, TaskReport]:
    result = {}
    for array in arrays:
        for index in range(array.task_count):
            report = reports.get((array.job_id, index), TaskReport(TaskStatus.UNKNOWN))
            result[array.first_task + index] = report
    return result
