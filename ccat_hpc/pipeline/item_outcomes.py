"""What became of a step task's items, read back from ops-db after the task (for metrics).

Each item is in one of four outcomes: done (it moved on), retry (waiting again after a
failure a retry can help, or given back), operator (waiting for a person) or failed
(given up). The class of the failure follows from the same fields ``status`` reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import RawDataFile
from ccat_hpc.db.states import PackageState, RawDataFileState
from ccat_hpc.db.transitions import in_chunks
from ccat_hpc.pipeline.step_items import STEP_ITEMS

F = RawDataFileState


@dataclass(frozen=True)
class Outcome:
    outcome: str
    failure_class: str
    items: int
    files: int
    bytes: int


def package_outcome(
    state: PackageState, waiting: PackageState, working: PackageState, retryable: bool | None
) -> tuple[str, str]:
    """(outcome, failure class) of one package-like item (pure)."""
    if state is PackageState.FAILED:
        return "failed", "permanent"
    if state not in (waiting, working):
        return "done", ""
    if retryable is False:
        return "operator", ""
    return "retry", "transient" if retryable else ""


def file_outcome(state: RawDataFileState) -> tuple[str, str]:
    """(outcome, failure class) of one file after its checksum task (pure)."""
    if state in (F.MISSING, F.CORRUPT):
        return "operator", "permanent"
    if state in (F.FILED, F.CHECKSUMMING):
        return "retry", ""
    return "done", ""


def outcomes(session: Session, kind: str, item_ids: Sequence[Any]) -> list[Outcome]:
    """The task's items grouped by outcome ([] for a kind without items in ops-db)."""
    ids = [int(i) for i in item_ids]
    if kind == "checksum":
        return _file_outcomes(session, ids)
    if kind in STEP_ITEMS:
        return _package_outcomes(session, kind, ids)
    return []


def _grouped(found: Sequence[tuple[tuple[str, str], int]], files: bool) -> list[Outcome]:
    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[tuple[str, str]] = Counter()
    for key, size in found:
        counts[key] += 1
        sizes[key] += size
    return [
        Outcome(outcome, failure, n, n if files else 0, sizes[(outcome, failure)])
        for (outcome, failure), n in sorted(counts.items())
    ]


def _file_outcomes(session: Session, ids: Sequence[int]) -> list[Outcome]:
    found: list[tuple[tuple[str, str], int]] = []
    for chunk in in_chunks(ids):
        query = select(RawDataFile.state, RawDataFile.size).where(RawDataFile.id.in_(chunk))
        found += [(file_outcome(state), size) for state, size in session.execute(query)]
    return _grouped(found, files=True)


def _package_outcomes(session: Session, kind: str, ids: Sequence[int]) -> list[Outcome]:
    model, states = STEP_ITEMS[kind]
    found: list[tuple[tuple[str, str], int]] = []
    for chunk in in_chunks(ids):
        query = select(model.state, model.failure_retryable, model.size).where(model.id.in_(chunk))
        found += [
            (package_outcome(state, states.waiting, states.working, retryable), size)
            for state, retryable, size in session.execute(query)
        ]
    return _grouped(found, files=False)
