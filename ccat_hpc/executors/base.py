"""The executor interface: submit a job array, ask the states of its tasks, cancel it.

Every implementation runs the same job code (``ccat-hpc job run KIND --batch ID``)
with the same environment a Slurm array task sees, so nothing else in the system
knows which executor ran a task. The shared conformance suite is
``tests/integration/test_executors.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ccat_hpc.executors.validate import (
    InvalidArrayJob,
    check_count,
    check_environment,
    check_job_id,
    check_job_request,
)
from ccat_hpc.sites.schema import SlurmProfile

__all__ = ["InvalidArrayJob"]  # re-exported: the error of ArrayJob and SubmittedArray


class TaskStatus(enum.StrEnum):
    """What the executor says about one array task (Slurm's vocabulary)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    UNKNOWN = "UNKNOWN"


FINAL_STATUSES = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.TIMEOUT,
        TaskStatus.NODE_FAIL,
        TaskStatus.PREEMPTED,
        TaskStatus.OUT_OF_MEMORY,
    }
)
#: Ended for reasons outside the task's own code: worth running again.
RETRYABLE_STATUSES = frozenset({TaskStatus.NODE_FAIL, TaskStatus.PREEMPTED})


@dataclass(frozen=True)
class TaskReport:
    status: TaskStatus
    exit_code: int | None = None
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class ArrayJob:
    """A job array to run: ``task_count`` tasks of ``ccat-hpc job run KIND --batch ID``.

    Checked when made (:class:`InvalidArrayJob`): everything here reaches a script, a
    file name or a process.
    """

    kind: str
    batch_id: int
    task_count: int
    working_dir: Path
    profile: SlurmProfile = field(default_factory=SlurmProfile)
    throttle: int | None = None
    depends_on: Sequence[SubmittedArray] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_job_request(self.kind, self.task_count, self.working_dir, self.profile, self.throttle)
        check_count("batch id", self.batch_id)
        check_environment(self.environment)
        for array in self.depends_on:
            if not isinstance(array, SubmittedArray):
                raise InvalidArrayJob(f"depends_on holds {array!r}, not a SubmittedArray")

    @property
    def effective_throttle(self) -> int | None:
        return self.throttle if self.throttle is not None else self.profile.array_throttle


@dataclass(frozen=True)
class SubmittedArray:
    """One submitted array: tasks first_task … first_task + task_count - 1 of a batch."""

    job_id: str
    first_task: int
    task_count: int

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        check_count("first task", self.first_task, minimum=0)
        check_count("task count", self.task_count)

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "first_task": self.first_task, "task_count": self.task_count}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmittedArray:
        """From what ops-db holds (InvalidArrayJob when it is not a submitted array)."""
        try:
            return cls(data["job_id"], data["first_task"], data["task_count"])
        except (KeyError, TypeError):
            raise InvalidArrayJob(f"not a submitted array: {data!r}") from None


class Executor(Protocol):
    name: str

    def submit(self, job: ArrayJob) -> list[SubmittedArray]:
        """Submit the array (split into several when too large); return what was submitted."""

    def states(self, arrays: Sequence[SubmittedArray]) -> dict[int, TaskReport]:
        """Batch task index → report, for every task of ``arrays`` (one call for many)."""

    def cancel(self, arrays: Sequence[SubmittedArray]) -> None:
        """Cancel every task of ``arrays`` that has not ended."""


def task_environment(
    job: ArrayJob, job_id: str, array_index: int, first_task: int
) -> dict[str, str]:
    """The variables a task of ``job`` sees, as under a Slurm array (for non-Slurm executors)."""
    return {
        **job.environment,
        "SLURM_JOB_ID": job_id,
        "SLURM_ARRAY_JOB_ID": job_id,
        "SLURM_ARRAY_TASK_ID": str(array_index),
        "SLURM_ARRAY_TASK_COUNT": str(job.task_count),
        "SLURM_JOB_NAME": job_name(job),
        "CCAT_HPC_TASK_OFFSET": str(first_task),
    }


def job_name(job: ArrayJob) -> str:
    return f"ccat-{job.kind}-{job.batch_id}"


def task_log_name(kind: str, batch_id: int, array_job_id: str, array_index: int | str) -> str:
    """``KIND-BATCH-JOB_INDEX.out``; Slurm's ``--output`` uses it with ``%A`` and ``%a``."""
    return f"{kind}-{batch_id}-{array_job_id}_{array_index}.out"


def task_log_file(
    working_dir: Path, kind: str, batch_id: int, array_job_id: str, array_index: int | str
) -> Path:
    """The log file of one array task (both executors write task output there)."""
    return working_dir / task_log_name(kind, batch_id, array_job_id, array_index)


def locate_task(
    arrays: Sequence[SubmittedArray], task_index: int
) -> tuple[SubmittedArray, int] | None:
    """The submitted array holding batch task ``task_index`` and its index in that array."""
    for array in arrays:
        if array.first_task <= task_index < array.first_task + array.task_count:
            return array, task_index - array.first_task
    return None


def task_log_path(
    working_dir: Path | str,
    kind: str,
    batch_id: int,
    arrays: Sequence[SubmittedArray],
    task_index: int,
) -> Path | None:
    """The log of batch task ``task_index`` from ops-db data (the batch's working dir,
    kind, id and submitted arrays); None when no submitted array holds the task."""
    found = locate_task(arrays, task_index)
    if found is None:
        return None
    array, array_index = found
    return task_log_file(Path(working_dir), kind, batch_id, array.job_id, array_index)
