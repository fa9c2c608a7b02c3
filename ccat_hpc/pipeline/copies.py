"""PhysicalCopy rows of packages as the steps write them: PENDING while the bytes are
written, then VERIFIED (or FAILED), one row per item and location, reused on a rerun."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataTransferPackagePhysicalCopy,
    PhysicalCopy,
    RawDataPackagePhysicalCopy,
)
from ccat_hpc.db.states import PhysicalCopyState
from ccat_hpc.db.transitions import move

CopyModel = type[RawDataPackagePhysicalCopy] | type[DataTransferPackagePhysicalCopy]
_ITEM_COLUMN = {
    RawDataPackagePhysicalCopy: "raw_data_package_id",
    DataTransferPackagePhysicalCopy: "data_transfer_package_id",
}
#: states a copy may be in when its bytes are written again and verified
_REWRITABLE = (
    PhysicalCopyState.PENDING,
    PhysicalCopyState.PRESENT,
    PhysicalCopyState.VERIFIED,
    PhysicalCopyState.CORRUPT,
    PhysicalCopyState.MISSING,
)


def copy_at(session: Session, model: CopyModel, item_id: int, location_id: int) -> Any:
    """The item's copy row at the location, or None."""
    column = getattr(model, _ITEM_COLUMN[model])
    return session.scalars(
        select(model).where(column == item_id, model.data_location_id == location_id)
    ).first()


def pending_copy(session: Session, model: CopyModel, item_id: int, location_id: int) -> int:
    """The copy row at the location, PENDING while it is written (reused on a rerun)."""
    copy = copy_at(session, model, item_id, location_id)
    if copy is None:
        copy = model(
            **{_ITEM_COLUMN[model]: item_id},
            data_location_id=location_id,
            state=PhysicalCopyState.PENDING,
        )
        session.add(copy)
        session.flush()
    elif copy.state == PhysicalCopyState.FAILED:
        move(session, PhysicalCopy, [copy.id], copy.state, PhysicalCopyState.PENDING)
    return int(copy.id)


def verified(session: Session, copy_id: int) -> None:
    """The copy's bytes were checked against the checksum just now."""
    move(
        session,
        PhysicalCopy,
        [copy_id],
        _REWRITABLE,
        PhysicalCopyState.VERIFIED,
        verified_at=utcnow(),
        failure_reason=None,
    )


def failed(session: Session, copy_id: int, reason: str) -> None:
    """Writing the copy failed: nothing is under its final name."""
    move(
        session,
        PhysicalCopy,
        [copy_id],
        PhysicalCopyState.PENDING,
        PhysicalCopyState.FAILED,
        failure_reason=reason,
    )


def found_bad(session: Session, copy_id: int, state: PhysicalCopyState, reason: str) -> None:
    """A check found the copy CORRUPT or MISSING."""
    move(
        session,
        PhysicalCopy,
        [copy_id],
        (PhysicalCopyState.PRESENT, PhysicalCopyState.VERIFIED, state),
        state,
        failure_reason=reason,
    )


def vanished(reason: str) -> bool:
    """Whether the engine's message says the file was gone (MISSING), not damaged."""
    return "cannot open" in reason and "No such file" in reason


def problem_state(reason: str) -> PhysicalCopyState:
    """The state of a copy found bad for ``reason``: MISSING when gone, else CORRUPT."""
    return PhysicalCopyState.MISSING if vanished(reason) else PhysicalCopyState.CORRUPT
