"""What became of a task's items, as the metrics count them (pure)."""

from __future__ import annotations

import pytest

from ccat_hpc.db.states import PackageState, RawDataFileState
from ccat_hpc.pipeline.item_outcomes import file_outcome, package_outcome

P = PackageState
F = RawDataFileState


@pytest.mark.parametrize(
    ("state", "retryable", "expected"),
    [
        (P.TRANSFERRED, None, ("done", "")),  # moved on past the transfer step
        (P.ARCHIVED, None, ("done", "")),
        (P.BUILT, True, ("retry", "transient")),  # waiting out a backoff
        (P.BUILT, None, ("retry", "")),  # given back by a task that died
        (P.TRANSFERRING, None, ("retry", "")),  # still claimed: not recorded by its task
        (P.BUILT, False, ("operator", "")),  # waits for a person
        (P.FAILED, False, ("failed", "permanent")),
    ],
)
def test_a_transfer_item(state: PackageState, retryable: bool | None, expected: tuple) -> None:  # type: ignore[type-arg]
    assert package_outcome(state, P.BUILT, P.TRANSFERRING, retryable) == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (F.CHECKSUMMED, ("done", "")),
        (F.PACKAGED, ("done", "")),
        (F.MISSING, ("operator", "permanent")),
        (F.CORRUPT, ("operator", "permanent")),
        (F.FILED, ("retry", "")),
    ],
)
def test_a_checksummed_file(state: RawDataFileState, expected: tuple) -> None:  # type: ignore[type-arg]
    assert file_outcome(state) == expected
