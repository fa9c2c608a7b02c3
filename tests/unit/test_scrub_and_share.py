"""The pure decisions of the scrub (which slice of the archive a run reads) and of a
campaign's throttle (how many of the site's task slots it may take)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ccat_hpc.jobs.campaign_batch import throttle_for
from ccat_hpc.pipeline.scrub import Candidate, slice_bytes, take_slice

sizes = st.lists(st.integers(min_value=0, max_value=10**6), max_size=40)


def candidates(values: list[int]) -> list[Candidate]:
    return [Candidate(i, size) for i, size in enumerate(values)]


@given(sizes, st.integers(0, 5 * 10**6), st.integers(0, 5 * 10**6), st.integers(1, 5 * 10**6))
def test_a_slice_is_the_oldest_copies_within_the_allowance(
    values: list[int], allowance: int, day_left: int, day_budget: int
) -> None:
    taken = take_slice(candidates(values), allowance, day_left, day_budget)
    # the oldest first, none skipped
    assert taken == list(range(len(taken)))
    total = sum(values[i] for i in taken)
    if len(taken) == 1 and values[0] > min(allowance, day_left):
        # a copy larger than a slice, once the day allows; larger than the day's whole
        # budget, once none of it is spent
        assert values[0] <= day_left or day_left >= day_budget
    else:
        assert total <= min(allowance, day_left)
    # as much as fits: the next copy would not
    if len(taken) < len(values) and taken:
        assert total + values[len(taken)] > min(allowance, day_left)


def test_a_copy_larger_than_a_slice_waits_for_the_day_budget_not_for_ever() -> None:
    big = candidates([500, 10])
    assert take_slice(big, allowance=100, day_left=400) == []  # the day cannot afford it
    assert take_slice(big, allowance=100, day_left=600) == [0]  # alone, then the next run
    assert take_slice(big, allowance=1000, day_left=0) == []  # the day's budget is spent
    # larger than a whole day's budget: read alone once a whole day's budget is unspent
    huge = candidates([5000, 10])
    assert take_slice(huge, allowance=100, day_left=2400, day_budget=2400) == [0]
    assert take_slice(huge, allowance=100, day_left=2000, day_budget=2400) == []


def test_one_slice_is_the_budget_of_one_interval() -> None:
    assert slice_bytes(24 * 10**9, 60) == 10**9
    assert slice_bytes(24 * 10**9, 1440) == slice_bytes(24 * 10**9, 5000) == 24 * 10**9
    assert slice_bytes(0, 60) == 0


def test_a_campaign_takes_its_share_of_the_slots_and_never_more_than_the_site_allows() -> None:
    assert throttle_for({"task_slots": 8, "campaign_share": 0.25}, 0.25) == 2
    assert throttle_for({"task_slots": 8, "campaign_share": 0.25}, 1.0) == 2  # site's cap
    assert throttle_for({"task_slots": 8, "campaign_share": 0.5}, 0.25) == 2
    assert throttle_for({"task_slots": 3, "campaign_share": 0.25}, 0.25) == 1  # at least one
    assert throttle_for({}, 0.25) == 2  # the defaults: 8 slots, a quarter
