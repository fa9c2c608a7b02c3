"""Plan and submit the checksum job array for every file waiting for its checksum."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.executors.base import Executor
from ccat_hpc.jobs.batches import create_and_submit
from ccat_hpc.pipeline.checksum import DEFAULT_BYTES_PER_TASK, files_to_checksum, plan_tasks
from ccat_hpc.sites.schema import SlurmProfile


@dataclass(frozen=True)
class ChecksumSubmission:
    batch_id: int
    file_ids: list[int]
    tasks: int


def submit_checksum(
    factory: sessionmaker[Session],
    executor: Executor,
    environment: Mapping[str, str],
    working_dir: Path,
    profile: SlurmProfile,
    bytes_per_task: int = DEFAULT_BYTES_PER_TASK,
    site_name: str | None = None,
) -> ChecksumSubmission | None:
    """Submit one batch for every FILED file; None when no file is waiting."""
    with transaction(factory) as session:
        files = files_to_checksum(session)
    if not files:
        return None
    tasks = plan_tasks(files, bytes_per_task)
    batch_id, _ = create_and_submit(
        factory,
        executor,
        "checksum",
        tasks,
        working_dir=working_dir,
        environment=environment,
        profile=profile,
        site_name=site_name,
    )
    return ChecksumSubmission(batch_id, [file_id for file_id, _ in files], len(tasks))
