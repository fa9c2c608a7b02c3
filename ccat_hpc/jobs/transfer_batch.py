"""Submit the transfer job array: every BUILT DTP with a route, claimed for one batch."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import DataTransferPackage
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission, claim_and_submit
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline.endpoints import gated, route_endpoints
from ccat_hpc.pipeline.transfer_task import TRANSFER_STATES
from ccat_hpc.pipeline.transferring import transfers_waiting

#: a task moves DTPs up to this many bytes
BYTES_PER_TASK = 400 * 10**9


def submit_transfer(
    factory: sessionmaker[Session], setup: JobSetup, bytes_per_task: int | None = None
) -> StepSubmission | None:
    """Claim every DTP ready to travel (on a route its breaker lets work through) and
    submit one batch; None when none waits."""
    track_unfinished(factory, "transfer", setup.executor)
    submitted = claim_and_submit(
        factory,
        "transfer",
        DataTransferPackage,
        TRANSFER_STATES,
        lambda session: gated(
            session, transfers_waiting(session, setup.site), route_endpoints, setup.gate
        ),
        bytes_per_task or BYTES_PER_TASK,
        setup,
    )
    return None if submitted is None else StepSubmission(*submitted)
