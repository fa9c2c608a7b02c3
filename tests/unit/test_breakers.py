"""The circuit breaker state machine, the gate it makes and what the plan does with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ccat_hpc.db.states import BreakerState
from ccat_hpc.pipeline.endpoints import EndpointKey, Gate, admit
from ccat_hpc.pipeline.placement import BufferFill
from ccat_hpc.scheduler.breakers import (
    Attempt,
    Breaker,
    BreakerChange,
    BreakerPolicy,
    change,
    changes,
    gate,
)
from ccat_hpc.scheduler.plan import Plan, Snapshot, Submit, buffer_warnings, plan

B = BreakerState
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ROUTE = EndpointKey("route", 1, "chile-to-cologne")
ARCHIVE = EndpointKey("location", 7, "cologne-archive")
POLICY = BreakerPolicy(failures=3, window_seconds=600, cooldown_seconds=300)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def failed(seconds_ago: float, key: EndpointKey = ROUTE, why: str = "link down") -> Attempt:
    return Attempt(key, ago(seconds_ago), ok=False, reason=why)


def succeeded(seconds_ago: float, key: EndpointKey = ROUTE) -> Attempt:
    return Attempt(key, ago(seconds_ago), ok=True)


CLOSED = Breaker(ROUTE, ROUTE.name)


def test_a_run_of_failures_within_the_window_opens_the_breaker() -> None:
    attempts = [failed(100), failed(50), failed(10, why="no route to host")]
    assert change(CLOSED, attempts, NOW, POLICY) == BreakerChange(
        ROUTE, ROUTE.name, B.CLOSED, B.OPEN, 3, "no route to host"
    )


@pytest.mark.parametrize(
    "attempts",
    [
        [failed(100), failed(50)],  # too few
        [failed(900), failed(50), failed(10)],  # one is outside the window
        [failed(100), succeeded(60), failed(50), failed(10)],  # not in a row
    ],
)
def test_fewer_failures_in_a_row_leave_it_closed(attempts: list[Attempt]) -> None:
    assert change(CLOSED, attempts, NOW, POLICY) is None


def test_failures_before_the_last_close_do_not_count() -> None:
    reset = Breaker(ROUTE, ROUTE.name, closed_at=ago(30))
    assert change(reset, [failed(100), failed(50), failed(40), failed(10)], NOW, POLICY) is None
    assert change(reset, [failed(20), failed(15), failed(10)], NOW, POLICY) is not None


def test_an_open_breaker_goes_half_open_after_the_cool_down_only() -> None:
    fresh = Breaker(ROUTE, ROUTE.name, B.OPEN, opened_at=ago(299))
    assert change(fresh, [failed(10)], NOW, POLICY) is None
    cooled = Breaker(ROUTE, ROUTE.name, B.OPEN, opened_at=ago(300))
    assert change(cooled, [], NOW, POLICY) == BreakerChange(ROUTE, ROUTE.name, B.OPEN, B.HALF_OPEN)


def test_the_probe_decides_a_half_open_breaker() -> None:
    probing = Breaker(ROUTE, ROUTE.name, B.HALF_OPEN, opened_at=ago(400), half_opened_at=ago(60))
    # attempts before it went half-open say nothing about the probe
    assert change(probing, [failed(100), failed(90)], NOW, POLICY) is None
    closed = change(probing, [failed(100), succeeded(5)], NOW, POLICY)
    assert closed is not None and (closed.new, closed.reason) == (B.CLOSED, "a probe succeeded")
    opened = change(probing, [failed(5, why="503 Slow Down")], NOW, POLICY)
    assert opened is not None and opened.new is B.OPEN
    assert opened.reason == "the probe failed: 503 Slow Down"


def test_changes_cover_endpoints_with_attempts_but_no_row_yet() -> None:
    attempts = [failed(30, ARCHIVE, "S3 unreachable")] * 3 + [failed(20)]
    (opened,) = changes([], attempts, NOW, POLICY)
    assert (opened.endpoint, opened.name, opened.new) == (ARCHIVE, "cologne-archive", B.OPEN)


def test_the_gate_blocks_open_and_probes_half_open_endpoints() -> None:
    other = EndpointKey("route", 2, "chile-to-bonn")
    breakers = [
        Breaker(ROUTE, ROUTE.name, B.OPEN),
        Breaker(ARCHIVE, ARCHIVE.name, B.OPEN),
        Breaker(other, other.name, B.HALF_OPEN),
    ]
    half = BreakerChange(ARCHIVE, ARCHIVE.name, B.OPEN, B.HALF_OPEN)
    assert gate(breakers, [half]) == Gate(
        blocked=frozenset({ROUTE}), probing=frozenset({ARCHIVE, other})
    )
    assert gate([Breaker(ROUTE, ROUTE.name)], []).open


def test_admit_lets_nothing_to_a_blocked_endpoint_and_one_item_to_a_probing_one() -> None:
    items = [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
    endpoints = {1: ROUTE, 2: ARCHIVE, 3: ARCHIVE, 4: ROUTE}  # item 5 has no endpoint
    the_gate = Gate(blocked=frozenset({ROUTE}), probing=frozenset({ARCHIVE}))
    admitted = admit(items, endpoints, the_gate)
    assert admitted == [(2, 20), (5, 50)]
    assert admitted.probes == {2}  # its try does not count against it
    assert admit(items, endpoints, Gate()) == items


def test_the_plan_opens_breakers_and_holds_back_their_items() -> None:
    snapshot = Snapshot(
        waiting={"package": 2, "transfer": 5, "archive": 3},
        now=NOW,
        policy=POLICY,
        attempts=[failed(30, ARCHIVE, "S3 down")] * 3,
        waiting_at={"archive": {ARCHIVE: 3}, "transfer": {ROUTE: 5}},
    )
    the_plan = plan(snapshot)
    assert the_plan.breakers == [
        BreakerChange(ARCHIVE, ARCHIVE.name, B.CLOSED, B.OPEN, 3, "S3 down")
    ]
    # packaging and transfers go on; nothing goes to the archive
    blocked = Gate(blocked=frozenset({ARCHIVE}))
    assert the_plan.submit == [Submit("package", 2), Submit("transfer", 5, blocked)]
    assert the_plan.held_back == {"archive": "open breaker: location cologne-archive (3 item(s))"}


def test_a_half_open_endpoint_gets_one_probe_item() -> None:
    snapshot = Snapshot(
        waiting={"archive": 4},
        now=NOW,
        policy=POLICY,
        breakers=[Breaker(ARCHIVE, ARCHIVE.name, B.OPEN, opened_at=ago(301))],
        waiting_at={"archive": {ARCHIVE: 4}},
    )
    the_plan = plan(snapshot)
    (probe,) = the_plan.submit
    assert (probe.step, probe.waiting) == ("archive", 1)
    assert probe.gate == Gate(probing=frozenset({ARCHIVE}))


def test_breakers_never_hold_back_steps_without_endpoints() -> None:
    snapshot = Snapshot(
        waiting={"checksum": 9},
        breakers=[Breaker(ROUTE, ROUTE.name, B.OPEN, opened_at=NOW)],
        now=NOW,
    )
    assert plan(snapshot) == Plan(submit=[Submit("checksum", 9)])


def fill(location: str, used: int, capacity: int, site: str = "chile") -> BufferFill:
    return BufferFill(site, location, hash(location) % 100, 1, used, capacity, 0.9)


def test_a_full_buffer_is_passed_over_and_the_operator_warned() -> None:
    assert fill("b1", 95, 100).full and not fill("b2", 89, 100).full
    assert not fill("unlimited", 10**15, 0).full
    assert buffer_warnings([fill("b1", 95, 100), fill("b2", 10, 100)]) == [
        "buffer b1 at site chile is 95% full (limit 90%): new data goes to b2"
    ]
    assert buffer_warnings([fill("b1", 95, 100), fill("b2", 99, 100)]) == [
        "buffer b1 at site chile is 95% full (limit 90%): no buffer has room",
        "buffer b2 at site chile is 99% full (limit 90%): no buffer has room",
        "site chile: every buffer is full; packaging and transfers to the site wait "
        "until cleanup frees room",
    ]
    assert buffer_warnings([fill("b1", 10, 100)]) == []


def test_the_probe_rotates_to_the_item_tried_longest_ago() -> None:
    items = [(1, 10), (2, 20), (3, 30)]
    endpoints = {1: ARCHIVE, 2: ARCHIVE, 3: ARCHIVE}
    probing = Gate(probing=frozenset({ARCHIVE}))
    # item 1 was the last probe (its backoff ends last): item 3, never tried, goes
    tried = {1: NOW + timedelta(seconds=90), 2: NOW + timedelta(seconds=30), 3: None}
    assert admit(items, endpoints, probing, tried).probes == {3}
    tried[3] = NOW + timedelta(seconds=60)
    assert admit(items, endpoints, probing, tried) == [(2, 20)]


def test_a_probe_whose_task_died_opens_the_breaker_again() -> None:
    probing = Breaker(ROUTE, ROUTE.name, B.HALF_OPEN, opened_at=ago(400), half_opened_at=ago(60))
    died = Attempt(ROUTE, ago(5), ok=False, reason="its task ended", died=True)
    opened = change(probing, [died], NOW, POLICY)
    assert opened is not None and opened.new is B.OPEN
    assert opened.reason == "the probe failed: the probe's task died: its task ended"
    # and dead tasks never open a closed breaker
    assert change(CLOSED, [died, died, died, died], NOW, POLICY) is None


def test_an_endpoint_whose_change_another_scheduler_wrote_first_gets_nothing_this_pass() -> None:
    from ccat_hpc.scheduler.loop import _held

    probing = Gate(probing=frozenset({ARCHIVE}))
    assert _held(probing, set()) is probing
    assert _held(probing, {ARCHIVE}) == Gate(blocked=frozenset({ARCHIVE}))
