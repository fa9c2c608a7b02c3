"""State enums of ops-db and the state machines that connect them.

Every entity that moves has one state column and one small state machine here. A
pipeline step selects rows in state X, does its work and moves them to state Y in
one transaction; :func:`check_transition` is the single place that says whether
X → Y is allowed, and :func:`ccat_hpc.db.transitions.move` the single way a state is
written (a guarded UPDATE that reports which rows moved); rows are only created in
their first state. A step that dies half-way leaves its rows in a state the next
tick recognises and retries (RUNNING rows whose job is gone go back to a waiting
state; see the scheduler).

The diagrams below are the documentation; ``TRANSITIONS`` is the same thing as data
and is what the code checks.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ccat_hpc.errors import InvalidStateTransition


class ObservationStatus(enum.StrEnum):
    """Outcome of an execution, as the instrument reported it in the manifest."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    ABORTED = "aborted"


class InstrumentType(enum.StrEnum):
    PRIMECAM = "primecam"
    CHAI = "chai"
    OTHER = "other"


class LocationType(enum.StrEnum):
    SOURCE = "SOURCE"
    BUFFER = "BUFFER"
    LONG_TERM_ARCHIVE = "LONG_TERM_ARCHIVE"
    PROCESSING = "PROCESSING"


class StorageType(enum.StrEnum):
    DISK = "disk"
    S3 = "s3"
    TAPE = "tape"


class RouteType(enum.StrEnum):
    DIRECT = "direct"
    RELAY = "relay"
    CUSTOM = "custom"


class RawDataFileState(enum.StrEnum):
    """A file's progress.

    FILED ──▶ CHECKSUMMING ──▶ CHECKSUMMED ──▶ PACKAGED ──▶ ARCHIVED
      ▲  ◀─────────┤ (released: its task ended without an outcome)
      │            ├──▶ MISSING (gone or unreadable on SOURCE)
      │            └──▶ CORRUPT (not as filed: other checksum, size or kind of file)
      └──────────────── CHECKSUMMED, MISSING, CORRUPT (an operator asks for a re-check)

    CHECKSUMMING: claimed by a checksum batch; no second batch takes the file.
    CHECKSUMMED ──▶ CORRUPT | MISSING: packaging found the file changed or gone since
    it was checksummed (its package is not built; the other files are packaged again).
    """

    FILED = "filed"
    CHECKSUMMING = "checksumming"
    CHECKSUMMED = "checksummed"
    PACKAGED = "packaged"
    ARCHIVED = "archived"
    MISSING = "missing"
    CORRUPT = "corrupt"


class PhysicalCopyState(enum.StrEnum):
    """One copy of a file/package at one DataLocation.

    PENDING ──▶ PRESENT ──▶ VERIFIED ──▶ DELETION_PENDING ──▶ DELETED
       │           │  ▲         │              │
       ▼           ▼  └─────────┤ (re-verify)  └──▶ VERIFIED (deletion cancelled)
     FAILED     CORRUPT/MISSING ◀┘
    PRESENT and CORRUPT copies may be taken for deletion too (cleanup).

    PENDING: being written. PRESENT: written, not yet verified. VERIFIED: checksum
    matched at ``verified_at``. A CORRUPT or MISSING copy checked again (after a
    repair) takes the new outcome: VERIFIED, CORRUPT or MISSING. Only DELETION_PENDING
    copies are ever removed, and the cleanup step moves a copy there only when a
    VERIFIED long-term-archive copy exists.
    """

    PENDING = "pending"
    PRESENT = "present"
    VERIFIED = "verified"
    CORRUPT = "corrupt"
    MISSING = "missing"
    FAILED = "failed"
    DELETION_PENDING = "deletion_pending"
    DELETED = "deleted"


class PackageState(enum.StrEnum):
    """A RawDataPackage or DataTransferPackage.

    PLANNED ──▶ BUILDING ──▶ BUILT ──▶ TRANSFERRING ──▶ TRANSFERRED ──▶ ARCHIVING ──▶ ARCHIVED
                   │                       │                               │
                   └──▶ FAILED ◀───────────┴───────────────────────────────┘
    FAILED ──▶ PLANNED (operator or retry policy re-queues it)

    RawDataPackage: BUILT in its first BUFFER; TRANSFERRING once bundled into a DTP;
    TRANSFERRED when unpacked and verified at the destination; ARCHIVING while uploaded;
    ARCHIVED once its archive copy is verified. DataTransferPackage: BUILT in the origin
    BUFFER; TRANSFERRING while it moves (hop by hop on a relay route); TRANSFERRED when
    its checksum is verified at the destination BUFFER; ARCHIVING while its RDPs are
    archived; ARCHIVING ──▶ BUILT when the destination copy fails verification (it is
    transferred again). BUILDING ──▶ PLANNED and TRANSFERRING ──▶ BUILT give back an
    item whose task ended without an outcome; BUILT ──▶ PLANNED builds an RDP again
    whose copy in the buffer was found damaged before it left.
    """

    PLANNED = "planned"
    BUILDING = "building"
    BUILT = "built"
    TRANSFERRING = "transferring"
    TRANSFERRED = "transferred"
    ARCHIVING = "archiving"
    ARCHIVED = "archived"
    FAILED = "failed"


class TransferState(enum.StrEnum):
    """A DataTransfer or LongTermArchiveTransfer (one attempt chain of a move).

    PENDING ──▶ SUBMITTED ──▶ RUNNING ──▶ VERIFYING ──▶ SUCCEEDED
                    │            │            │
                    ▼            ▼            ▼
                 RETRY_WAIT ◀────┴────────────┘ (transient: timeout, node failure, S3 5xx)
                    │
                    ├──▶ SUBMITTED (after the backoff)
                    └──▶ FAILED (permanent, or attempts exhausted)
    any non-final ──▶ CANCELLED
    """

    PENDING = "pending"
    SUBMITTED = "submitted"
    RUNNING = "running"
    VERIFYING = "verifying"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StagingJobState(enum.StrEnum):
    """A scientist's request to stage data to PROCESSING storage.

    PENDING ──▶ SUBMITTED ──▶ STAGING ──▶ STAGED ──▶ RELEASED
                   │             │
                   ▼             ▼
                RETRY_WAIT ◀─────┘ ──▶ SUBMITTED | FAILED
    any non-final ──▶ CANCELLED
    """

    PENDING = "pending"
    SUBMITTED = "submitted"
    STAGING = "staging"
    RETRY_WAIT = "retry_wait"
    STAGED = "staged"
    RELEASED = "released"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobBatchState(enum.StrEnum):
    """A batch of work sent to an executor as one job array.

    PENDING ──▶ SUBMITTED ──▶ RUNNING ──▶ DONE (every task SUCCEEDED, FAILED or CANCELLED)
       │            │            │
       ├──▶ SUBMIT_FAILED (the executor refused it; reason kept)
       └────────────┴────────────┴──▶ CANCELLED

    RUNNING: at least one task has started.
    """

    PENDING = "pending"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DONE = "done"
    SUBMIT_FAILED = "submit_failed"
    CANCELLED = "cancelled"


class JobTaskState(enum.StrEnum):
    """One array task of a batch: its outcome is recorded by the task itself.

    PENDING ──▶ RUNNING ──▶ SUCCEEDED
       │           │
       ├───────────┴──▶ FAILED ──▶ PENDING (retried)
       └───────────┴──▶ CANCELLED

    A task that ends without recording anything (killed, timed out, node lost) is
    found by the tracker, which records the executor's reason (FAILED).
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CampaignState(enum.StrEnum):
    """An operator's bulk campaign (re-archive, re-verify, re-stage over a selection).

    ACTIVE ⇄ PAUSED
      │        │
      ├──▶ DONE (no item left to do) ──▶ ACTIVE (an operator retries its failed items)
      └────────┴──▶ CANCELLED (its items not started are CANCELLED)

    PAUSED: the scheduler takes no more of its items; items already running finish.
    """

    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class CampaignItemState(enum.StrEnum):
    """One item (a package, or an observation for re-stage) of a campaign.

    PENDING ──▶ RUNNING ──▶ DONE | FAILED
       ▲           │
       └───────────┘ (given back: paused, an outage (after a backoff), or its task
                      ended without an outcome)
    PENDING ──▶ CANCELLED; FAILED ──▶ PENDING (an operator's retry)
    DONE: the outcome says what was found and done (verified, repaired, copied, staged).
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BreakerState(enum.StrEnum):
    """A circuit breaker of one endpoint (a route, or a location such as an S3 archive).

    CLOSED ──▶ OPEN ──▶ HALF_OPEN ──▶ CLOSED
      ▲          ▲  │        │
      │          │  └────────┼──▶ CLOSED (an operator's reset)
      │          └───────────┘  (the probe failed)
      └─ (an operator's reset of a HALF_OPEN breaker too)

    OPEN: no work goes to the endpoint. HALF_OPEN: one probe item goes; its success
    closes the breaker, its failure opens it again for another cool-down.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _machine(
    edges: Mapping[str, tuple[str, ...]], enum_class: type[enum.StrEnum]
) -> dict[enum.StrEnum, frozenset[enum.StrEnum]]:
    return {enum_class(src): frozenset(enum_class(d) for d in dst) for src, dst in edges.items()}


_F = RawDataFileState
_C = PhysicalCopyState
_P = PackageState
_T = TransferState
_S = StagingJobState
_B = JobBatchState
_J = JobTaskState
_R = BreakerState
_K = CampaignState
_I = CampaignItemState

TRANSITIONS: dict[type[enum.StrEnum], dict[enum.StrEnum, frozenset[enum.StrEnum]]] = {
    _F: _machine(
        {
            "filed": ("checksumming",),
            "checksumming": ("checksummed", "missing", "corrupt", "filed"),
            "checksummed": ("packaged", "filed", "corrupt", "missing"),
            "packaged": ("archived", "checksummed"),
            "archived": (),
            "missing": ("filed",),
            "corrupt": ("filed",),
        },
        _F,
    ),
    _C: _machine(
        {
            "pending": ("present", "verified", "failed"),
            "present": ("verified", "corrupt", "missing", "deletion_pending"),
            "verified": ("verified", "corrupt", "missing", "deletion_pending"),
            "corrupt": ("corrupt", "missing", "deletion_pending", "verified"),
            "missing": ("missing", "corrupt", "present", "verified", "deleted"),
            "failed": ("pending", "deleted"),
            "deletion_pending": ("deleted", "verified"),
            "deleted": (),
        },
        _C,
    ),
    _P: _machine(
        {
            "planned": ("building",),
            "building": ("built", "failed", "planned"),
            "built": ("transferring", "archiving", "failed", "planned"),
            "transferring": ("transferred", "failed", "built"),
            "transferred": ("archiving", "failed"),
            "archiving": ("archived", "failed", "transferred", "built"),
            "archived": (),
            "failed": ("planned",),
        },
        _P,
    ),
    _T: _machine(
        {
            "pending": ("submitted", "cancelled"),
            "submitted": ("running", "retry_wait", "failed", "cancelled"),
            "running": ("verifying", "succeeded", "retry_wait", "failed", "cancelled"),
            "verifying": ("succeeded", "retry_wait", "failed", "cancelled"),
            "retry_wait": ("submitted", "failed", "cancelled"),
            "succeeded": (),
            "failed": (),
            "cancelled": (),
        },
        _T,
    ),
    _S: _machine(
        {
            "pending": ("submitted", "cancelled"),
            "submitted": ("staging", "retry_wait", "failed", "cancelled"),
            "staging": ("staged", "retry_wait", "failed", "cancelled"),
            "retry_wait": ("submitted", "failed", "cancelled"),
            "staged": ("released",),
            "released": (),
            "failed": (),
            "cancelled": (),
        },
        _S,
    ),
    _B: _machine(
        {
            "pending": ("submitted", "submit_failed", "cancelled"),
            "submitted": ("running", "done", "cancelled"),
            "running": ("done", "cancelled"),
            "done": ("submitted",),
            "submit_failed": ("pending",),
            "cancelled": (),
        },
        _B,
    ),
    _J: _machine(
        {
            "pending": ("running", "succeeded", "failed", "cancelled"),
            "running": ("succeeded", "failed", "cancelled", "running"),
            "succeeded": (),
            "failed": ("pending",),
            "cancelled": (),
        },
        _J,
    ),
    _R: _machine(
        {
            "closed": ("open",),
            "open": ("half_open", "closed"),
            "half_open": ("closed", "open"),
        },
        _R,
    ),
    _K: _machine(
        {
            "active": ("paused", "done", "cancelled"),
            "paused": ("active", "cancelled"),
            "done": ("active",),
            "cancelled": (),
        },
        _K,
    ),
    _I: _machine(
        {
            "pending": ("running", "cancelled"),
            "running": ("done", "failed", "pending", "cancelled"),
            "done": (),
            "failed": ("pending",),
            "cancelled": (),
        },
        _I,
    ),
}


def allowed_next(state: enum.StrEnum) -> frozenset[enum.StrEnum]:
    """The states that ``state`` may move to."""
    return TRANSITIONS[type(state)][state]


def is_final(state: enum.StrEnum) -> bool:
    return not allowed_next(state)


def check_transition(old: enum.StrEnum, new: enum.StrEnum) -> None:
    """Raise :class:`InvalidStateTransition` unless ``old → new`` is allowed."""
    if type(old) is not type(new):
        raise InvalidStateTransition(
            f"cannot move a {type(old).__name__} to a {type(new).__name__}"
        )
    if new not in allowed_next(old):
        raise InvalidStateTransition(
            f"{type(old).__name__}: {old.value} → {new.value} is not allowed"
        )
