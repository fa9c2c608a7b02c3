"""Which failures a retry can help: the one table every step consults (pure).

Transient failures are tried again after a backoff (:mod:`ccat_hpc.pipeline.retry`);
permanent ones are not retried blindly: the item fails, or waits for an operator. The
first rule that matches decides; a failure no rule knows is treated as transient (a
retry is cheap, and the tries are limited).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ccat_hpc.engine.errors import ChecksumMismatch, EngineError, PackageCorrupt, SourceChanged
from ccat_hpc.errors import DatabaseUnavailable
from ccat_hpc.pipeline.tasks import TaskInterrupted
from ccat_hpc.storage.base import StorageError, StorageNotDeployed
from ccat_hpc.transfer.methods import TransferError


class FailureClass(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


T = FailureClass.TRANSIENT
P = FailureClass.PERMANENT


@dataclass(frozen=True)
class Rule:
    what: str
    matches: Callable[[BaseException], bool]
    failure: FailureClass


def _is(kind: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, kind)


def _storage(transient: bool) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, StorageError) and exc.transient is transient


def _transfer(retryable: bool) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, TransferError) and exc.retryable is retryable


RULES: tuple[Rule, ...] = (
    Rule("stopped by its time limit, a cancel or a node going down", _is(TaskInterrupted), T),
    Rule("ops-db busy, locked or unreachable", _is(DatabaseUnavailable), T),
    Rule("a source file changed or vanished since its checksum", _is(SourceChanged), P),
    Rule("a file's bytes are not its recorded checksum (read again)", _is(ChecksumMismatch), P),
    Rule("a package copy damaged (a good copy is fetched or built again)", _is(PackageCorrupt), T),
    Rule("storage of a kind not deployed (tape)", _is(StorageNotDeployed), P),
    Rule(
        "storage: S3 5xx, throttling, dropped connection, a full or stale disk", _storage(True), T
    ),
    Rule("storage: access denied, no such bucket, a refused configuration", _storage(False), P),
    Rule("transfer: the link dropped or the method failed", _transfer(True), T),
    Rule("transfer: the method is not installed or cannot reach that host", _transfer(False), P),
    Rule("the engine: a disk that is full, unmounted or failing", _is(EngineError), T),
)


def classify(exc: BaseException) -> FailureClass:
    """The class of ``exc`` by the first rule that matches (unknown: transient)."""
    for rule in RULES:
        if rule.matches(exc):
            return rule.failure
    return T


def retryable(exc: BaseException) -> bool:
    return classify(exc) is T
