"""The failure classification: one table, and the README shows it as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccat_hpc.engine.errors import ChecksumMismatch, EngineError, PackageCorrupt, SourceChanged
from ccat_hpc.errors import DatabaseUnavailable
from ccat_hpc.pipeline.failures import RULES, FailureClass, classify, retryable
from ccat_hpc.pipeline.tasks import TaskInterrupted
from ccat_hpc.storage.base import ChecksumMismatch as StoredBytesRefused
from ccat_hpc.storage.base import StorageError, StorageNotDeployed
from ccat_hpc.transfer.methods import TransferError

T = FailureClass.TRANSIENT
P = FailureClass.PERMANENT


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (TaskInterrupted(15), T),
        (DatabaseUnavailable("locked"), T),
        (SourceChanged("/src/a: changed"), P),
        (ChecksumMismatch("/src/a: xxh3-128 is 1, expected 2"), P),
        (PackageCorrupt("members do not match"), T),
        (StorageNotDeployed("tape is not deployed"), P),
        (StorageError("503 SlowDown", transient=True), T),
        (StorageError("AccessDenied"), P),
        (StoredBytesRefused("BadDigest", transient=True), T),
        (TransferError("exit status 12"), T),
        (TransferError("bbcp is not installed", retryable=False), P),
        (EngineError("disk full"), T),
        (ValueError("something nobody expected"), T),
    ],
)
def test_each_failure_has_its_class(failure: BaseException, expected: FailureClass) -> None:
    assert classify(failure) is expected
    assert retryable(failure) is (expected is T)


def test_the_readme_shows_the_table_as_it_is() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for rule in RULES:
        assert f"| {rule.what} | {rule.failure.value} |" in readme
