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

from ccat_hpc.sites.schema import SlurmProfile


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
    """A job array to run: ``task_count`` tasks of ``ccat-hpc job run KIND --batch ID``."""

    kind: str
    batch_id: int
    task_count: int
    working_dir: Path
    profile: SlurmProfile = field(default_factory=SlurmProfile)
    throttle: int | None = None
    depends_on: Sequence[SubmittedArray] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def effective_throttle(self) -> int | None:
        return self.throttle if self.throttle is not None else self.profile.array_throttle


@dataclass(frozen=True)
class SubmittedArray:
    """One submitted array: tasks first_task … first_task + task_count - 1 of a batch."""

    job_id: str
    first_task: int
    task_count: int

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "first_task": self.first_task, "task_count": self.task_count}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmittedArray:
        return cls(str(data["job_id"]), int(data["first_task"]), int(data["task_count"]))


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
