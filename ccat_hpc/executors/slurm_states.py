"""What Slurm's commands say about array tasks, read and merged (pure).

Three sources, each with its blind spot:

- ``squeue --states=all`` asks the controller: pending, running and recently ended tasks
  (until ``MinJobAge``), without exit codes. It is the freshest source.
- ``sacct`` (where accounting exists) has exit codes and older tasks, but lags: right after
  a task ends it may still say RUNNING, or not know the task at all.
- ``scontrol show job`` has the controller's exit codes of tasks it still remembers.

The merge: where squeue and sacct both say a task ended, sacct's record is used (it has the
exit code; squeue's reason fills in where sacct has none); where only one of them knows a
task, that one; where squeue says a task is pending or running, squeue (sacct may still
hold the attempt before a requeue). Ended tasks
that have no exit code yet (or an exit code of 0 for an unsuccessful end, which is how
accounting records a killed batch step) take the controller's from scontrol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ccat_hpc.executors.base import SubmittedArray, TaskReport, TaskStatus

TaskKey = tuple[str, int]  # (array job id, array index)

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
_TASK_ID = re.compile(r"(\d+)_(\d+)")


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


def _task_key(text: str) -> TaskKey | None:
    match = _TASK_ID.fullmatch(text.strip())
    return (match.group(1), int(match.group(2))) if match else None


def parse_squeue(text: str) -> dict[TaskKey, TaskReport]:
    """Lines ``JOBID_INDEX|STATE|REASON`` (squeue -r -o '%i|%T|%r') → reports."""
    reports = {}
    for line in text.splitlines():
        parts = line.split("|", 2)
        key = _task_key(parts[0]) if len(parts) >= 2 else None
        if key is not None:
            reason = _reason(parts[2].strip()) if len(parts) > 2 else ""
            reports[key] = TaskReport(task_status(parts[1]), None, reason)
    return reports


def parse_sacct(text: str) -> dict[TaskKey, TaskReport]:
    """Lines ``JobID|State|ExitCode|Reason`` (sacct -n -P -X) → reports of array tasks.

    Arrays whose tasks have not been split off yet (``12_[0-9]``) are left out: squeue
    lists their tasks one by one."""
    reports = {}
    for line in text.splitlines():
        parts = line.split("|", 3)
        key = _task_key(parts[0]) if len(parts) >= 3 else None
        if key is not None:
            reason = _reason(parts[3].strip()) if len(parts) > 3 else ""
            reports[key] = TaskReport(task_status(parts[1]), parse_exit_code(parts[2]), reason)
    return reports


def _fields(line: str) -> dict[str, str]:
    """``Key=Value`` words of one ``scontrol -o`` line; the first of a key counts (later
    values such as WorkDir may hold spaces and ``=``)."""
    fields: dict[str, str] = {}
    for word in line.split():
        key, equals, value = word.partition("=")
        if equals and key not in fields:
            fields[key] = value
    return fields


def parse_scontrol_jobs(text: str) -> dict[TaskKey, TaskReport]:
    """``scontrol show job -o`` lines of array tasks → reports (with exit codes)."""
    reports = {}
    for line in text.splitlines():
        fields = _fields(line)
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


def parse_job_id(sbatch_output: str) -> str | None:
    """The job id of ``sbatch --parsable`` (``123`` or ``123;cluster``); None otherwise."""
    job_id = sbatch_output.strip().split(";")[0]
    return job_id if job_id.isdigit() else None


def _merged(
    key: TaskKey, queued: Mapping[TaskKey, TaskReport], accounted: Mapping[TaskKey, TaskReport]
) -> TaskReport:
    in_accounting = accounted.get(key)
    if in_accounting is None:
        return queued[key]
    in_queue = queued.get(key)
    if in_queue is None:
        return in_accounting
    if not (in_queue.final and in_accounting.final):
        return in_queue
    reason = in_accounting.reason or in_queue.reason
    return TaskReport(in_accounting.status, in_accounting.exit_code, reason)


def merge_reports(
    queued: Mapping[TaskKey, TaskReport], accounted: Mapping[TaskKey, TaskReport]
) -> dict[TaskKey, TaskReport]:
    """squeue's and sacct's reports as one (see the module's docstring)."""
    return {key: _merged(key, queued, accounted) for key in {*queued, *accounted}}


def needs_exit_code(report: TaskReport) -> bool:
    if not report.final:
        return False
    return report.exit_code is None or (
        report.exit_code == 0 and report.status != TaskStatus.COMPLETED
    )


def jobs_needing_exit_codes(reports: Mapping[TaskKey, TaskReport]) -> list[str]:
    """Array job ids with an ended task that lacks its exit code (sorted, once each)."""
    return sorted({job for (job, _), report in reports.items() if needs_exit_code(report)})


def add_exit_codes(
    reports: Mapping[TaskKey, TaskReport], shown: Mapping[TaskKey, TaskReport]
) -> dict[TaskKey, TaskReport]:
    """``reports`` with exit codes from scontrol where it agrees that the task ended so."""
    result = dict(reports)
    for key, report in reports.items():
        known = shown.get(key)
        if (
            needs_exit_code(report)
            and known is not None
            and known.status == report.status
            and known.exit_code is not None
        ):
            result[key] = TaskReport(report.status, known.exit_code, report.reason or known.reason)
    return result


def by_batch_task(
    arrays: Sequence[SubmittedArray], reports: Mapping[TaskKey, TaskReport]
) -> dict[int, TaskReport]:
    """Batch task index → report, UNKNOWN for tasks no source knows."""
    result = {}
    for array in arrays:
        for index in range(array.task_count):
            report = reports.get((array.job_id, index), TaskReport(TaskStatus.UNKNOWN))
            result[array.first_task + index] = report
    return result
