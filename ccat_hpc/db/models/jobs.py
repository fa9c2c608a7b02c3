"""Job batches: work sent to an executor as one job array, and its tasks' outcomes.

ops-db is the truth, the executor is the engine: a task reads its work items from
its row (batch id, task index), does the work and records the outcome here. The
tracker compares these rows with what the executor says to find tasks that died
without a word.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, CreatedMixin, IdMixin, JSONType, state_enum
from ccat_hpc.db.states import JobBatchState, JobTaskState


class JobBatch(IdMixin, CreatedMixin, Base):
    """One job array of one job kind: N tasks, one resource profile, one executor."""

    __tablename__ = "job_batch"
    __table_args__ = (
        Index("ix_job_batch_state", "state"),
        # the scheduler asks when a kind (cleanup) last ran
        Index("ix_job_batch_kind_created_at", "kind", "created_at"),
    )
    kind: Mapped[str] = mapped_column(String(40))
    executor: Mapped[str] = mapped_column(String(20))
    state: Mapped[JobBatchState] = mapped_column(
        state_enum(JobBatchState), default=JobBatchState.PENDING
    )
    task_count: Mapped[int]
    site_name: Mapped[str | None] = mapped_column(String(100))
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    working_dir: Mapped[str] = mapped_column(String(1024), default="")
    #: the executor's job ids (several when an array was split at MaxArraySize)
    external_ids: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    submitted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    tasks: Mapped[list[JobTask]] = relationship(
        back_populates="batch", order_by="JobTask.task_index", cascade="all, delete-orphan"
    )


class JobTask(IdMixin, Base):
    """One array task: its work items and its outcome."""

    __tablename__ = "job_task"
    __table_args__ = (
        UniqueConstraint("batch_id", "task_index"),
        Index("ix_job_task_state", "state"),
    )
    batch_id: Mapped[int] = mapped_column(ForeignKey("job_batch.id"))
    task_index: Mapped[int]
    #: ids of the work items (e.g. RawDataFile ids for the checksum job)
    items: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    state: Mapped[JobTaskState] = mapped_column(
        state_enum(JobTaskState), default=JobTaskState.PENDING
    )
    external_id: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    #: the executor's final state when it differs from a plain exit (TIMEOUT, NODE_FAIL, …)
    executor_state: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool | None]
    result: Mapped[dict[str, Any] | None]
    batch: Mapped[JobBatch] = relationship(back_populates="tasks")
