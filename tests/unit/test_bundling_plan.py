"""Grouping waiting RDPs into transfer packages (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.pipeline.bundling import WaitingPackage, plan_bundles

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def waiting(*sizes_and_ages: tuple[int, float]) -> list[WaitingPackage]:
    return [
        WaitingPackage(i, size, NOW - timedelta(minutes=age))
        for i, (size, age) in enumerate(sizes_and_ages, start=1)
    ]


def ids(bundles: list[list[WaitingPackage]]) -> list[list[int]]:
    return [[w.package_id for w in bundle] for bundle in bundles]


def test_bundles_close_at_the_target_and_the_rest_waits() -> None:
    items = waiting((40, 5), (70, 4), (30, 3), (20, 2))  # oldest first
    assert ids(plan_bundles(items, 100, HOUR, NOW)) == [[1, 2]]


def test_the_rest_goes_when_its_oldest_waited_long_enough() -> None:
    items = waiting((40, 90), (10, 1))
    assert ids(plan_bundles(items, 100, HOUR, NOW)) == [[1, 2]]
    assert ids(plan_bundles(items, 100, timedelta(hours=2), NOW)) == []


def test_an_rdp_larger_than_the_target_goes_alone() -> None:
    assert ids(plan_bundles(waiting((500, 1), (10, 1)), 100, HOUR, NOW)) == [[1]]


@given(
    st.lists(st.tuples(st.integers(0, 300), st.floats(0, 200)), max_size=40),
    st.integers(1, 400),
    st.floats(0, 120),
)
def test_no_rdp_is_bundled_twice_and_only_the_last_bundle_is_short(
    raw: list[tuple[int, float]], target: int, wait_minutes: float
) -> None:
    items = waiting(*raw)
    bundles = plan_bundles(items, target, timedelta(minutes=wait_minutes), NOW)
    flat = [w.package_id for bundle in bundles for w in bundle]
    assert len(flat) == len(set(flat))
    for bundle in bundles[:-1]:
        assert sum(w.size for w in bundle) >= target
    for bundle in bundles:
        assert sum(w.size for w in bundle[:-1]) < target  # closed as soon as it was full
