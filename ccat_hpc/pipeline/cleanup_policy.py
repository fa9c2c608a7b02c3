"""Whether one copy may be deleted, and the proof that it is safe (pure: no I/O).

A copy at SOURCE, BUFFER or PROCESSING may go when, and only when, its location's
retention has passed (its minimum age; for PROCESSING, the staging's expiry or release)
and the data has at least ``required`` VERIFIED copies in a LONG_TERM_ARCHIVE. Nothing
in a LONG_TERM_ARCHIVE is ever deleted here. The verdict names the archive copies that
make it safe; whoever deletes re-checks them on the archive first (existence, size,
checksum) and marks the copy deleted only after its bytes are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ccat_hpc.db.states import LocationType, PhysicalCopyState

C = PhysicalCopyState
#: copy states with bytes that cleanup may remove (a copy still being written may not;
#: DELETION_PENDING: one whose deletion started and did not finish)
REMOVABLE = frozenset({C.PRESENT, C.VERIFIED, C.CORRUPT, C.DELETION_PENDING})


@dataclass(frozen=True)
class ArchiveCopy:
    """A copy of the same data in a LONG_TERM_ARCHIVE, as ops-db holds it."""

    location: str
    state: PhysicalCopyState
    verified_at: datetime | None = None
    #: for the re-check on the archive: the copy's row, its location, the package it
    #: holds (its key there, size and checksum)
    copy_id: int = 0
    location_id: int = 0
    package: str = ""
    key: str = ""
    size: int = 0
    checksum: str = ""


@dataclass(frozen=True)
class CopyToClean:
    """A copy cleanup looks at: where it is, since when, and its location's retention."""

    copy_id: int
    location: str
    location_type: LocationType
    state: PhysicalCopyState
    created_at: datetime
    #: days a copy stays at its location; None: the location keeps its data
    retention_days: int | None
    #: PROCESSING: when the staging that made it expires (or was released: then, now)
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    delete: bool
    reason: str
    #: the verified archive copies that make the deletion safe (when it is allowed)
    proof: tuple[ArchiveCopy, ...] = ()


def _keep(reason: str) -> Verdict:
    return Verdict(False, reason)


def retention_passed(copy: CopyToClean, now: datetime) -> tuple[bool, str]:
    """Whether the location's retention lets the copy go now, and why (not)."""
    if copy.location_type is LocationType.PROCESSING:
        if copy.expires_at is None:
            return False, "staged data without an expiry is kept"
        if now < copy.expires_at:
            return False, f"staged until {copy.expires_at.isoformat()}"
        return True, "its staging expired or was released"
    if copy.retention_days is None:
        return False, f"{copy.location} keeps its data (no retention)"
    until = copy.created_at + timedelta(days=copy.retention_days)
    if now < until:
        return False, f"kept at {copy.location} until {until.isoformat()}"
    return True, f"older than the {copy.retention_days} day(s) {copy.location} keeps data"


def decide(
    copy: CopyToClean, archive: Sequence[ArchiveCopy], now: datetime, required: int = 1
) -> Verdict:
    """May ``copy`` be deleted now, given the data's ``archive`` copies?"""
    if copy.location_type is LocationType.LONG_TERM_ARCHIVE:
        return _keep("nothing in a long-term archive is deleted by cleanup")
    if copy.state not in REMOVABLE:
        return _keep(f"a {copy.state.value} copy has nothing to delete yet")
    passed, why = retention_passed(copy, now)
    if not passed:
        return _keep(why)
    verified = tuple(a for a in archive if a.state is C.VERIFIED)
    if len(verified) < max(1, required):
        return _keep(
            f"{len(verified)} verified long-term archive copy(ies), {max(1, required)} needed"
        )
    return Verdict(True, why, verified)


def decide_for_packages(
    copy: CopyToClean,
    archive_by_package: Sequence[tuple[str, Sequence[ArchiveCopy]]],
    now: datetime,
    required: int = 1,
) -> Verdict:
    """May ``copy`` go, when it holds the data of several packages (a transfer package
    holds RDPs; a file is in one RDP)? Only when every package's archive copies allow
    it; the proof names them all. A copy that holds no package ops-db knows of is kept:
    nothing proves its data is archived."""
    if not archive_by_package:
        return _keep("holds no archived package ops-db knows of")
    proof: list[ArchiveCopy] = []
    verdict = _keep("")
    for package, archive in archive_by_package:
        verdict = decide(copy, archive, now, required)
        if not verdict.delete:
            return verdict if not package else _keep(f"{package}: {verdict.reason}")
        proof.extend(verdict.proof)
    return Verdict(True, verdict.reason, tuple(proof))
