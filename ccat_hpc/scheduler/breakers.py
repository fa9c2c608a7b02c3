"""Circuit breakers, decided from the recent attempts of each endpoint (pure: no I/O).

An endpoint is a route (transfers) or a DataLocation (uploads to an archive, and so an
S3 endpoint). Its breaker:

- CLOSED → OPEN when its last ``failures`` attempts within ``window_seconds`` all
  failed (none succeeded after them; only attempts that ended after its last close
  count, and not attempts whose task died: that is no fault of the endpoint; nor
  failures of an item itself, which the snapshot leaves out);
- OPEN → HALF_OPEN after ``cooldown_seconds``: one probe item may go;
- HALF_OPEN → CLOSED when an attempt succeeds after it went half-open, → OPEN again
  (another cool-down) when one fails, or when the probe's task died (else a probe that
  kills its task would be sent again and again, holding everything else back).

While OPEN the scheduler submits nothing for the endpoint; items stay where they are,
waiting, and nothing is marked lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ccat_hpc.db.states import BreakerState
from ccat_hpc.pipeline.endpoints import EndpointKey, Gate

B = BreakerState


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5
    window_seconds: float = 600.0
    cooldown_seconds: float = 300.0

    @classmethod
    def from_settings(cls, pipeline: Mapping[str, Any]) -> BreakerPolicy:
        """From a site's ``pipeline`` settings (missing keys: the defaults)."""
        defaults = cls()
        return cls(
            failures=int(pipeline.get("breaker_failures", defaults.failures)),
            window_seconds=float(pipeline.get("breaker_window_seconds", defaults.window_seconds)),
            cooldown_seconds=float(
                pipeline.get("breaker_cooldown_seconds", defaults.cooldown_seconds)
            ),
        )


@dataclass(frozen=True)
class Attempt:
    """One finished attempt at an endpoint (a transfer hop, an upload)."""

    endpoint: EndpointKey
    finished_at: datetime
    ok: bool
    reason: str = ""
    #: its task died (a time limit, a lost node): not counted against a closed breaker
    died: bool = False


@dataclass(frozen=True)
class Breaker:
    """A breaker as ops-db holds it (an endpoint without a row is closed)."""

    endpoint: EndpointKey
    name: str
    state: BreakerState = B.CLOSED
    opened_at: datetime | None = None
    half_opened_at: datetime | None = None
    closed_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class BreakerChange:
    endpoint: EndpointKey
    name: str
    old: BreakerState
    new: BreakerState
    failures: int = 0
    reason: str = ""

    def describe(self) -> str:
        what = {
            B.OPEN: f"open breaker of {self.endpoint.scope} {self.name}: "
            f"{self.failures} failure(s), last: {self.reason}",
            B.HALF_OPEN: f"half-open breaker of {self.endpoint.scope} {self.name}: "
            "one probe item may go",
            B.CLOSED: f"close breaker of {self.endpoint.scope} {self.name}: {self.reason}",
        }
        return what[self.new]


def change(
    breaker: Breaker, attempts: Sequence[Attempt], now: datetime, policy: BreakerPolicy
) -> BreakerChange | None:
    """What the breaker does now, given its endpoint's recent ``attempts`` (or None)."""
    if breaker.state is B.CLOSED:
        return _maybe_open(breaker, attempts, now, policy)
    if breaker.state is B.OPEN:
        since = breaker.opened_at or now
        if now - since >= timedelta(seconds=policy.cooldown_seconds):
            return _to(breaker, B.HALF_OPEN)
        return None
    since = breaker.half_opened_at or now
    probe = [a for a in attempts if a.finished_at > since]
    failed = [a for a in probe if not a.ok]
    if failed:
        last = failed[-1]
        why = f"the probe's task died: {last.reason}" if last.died else last.reason
        return _to(breaker, B.OPEN, len(failed), f"the probe failed: {why}")
    if probe:
        return _to(breaker, B.CLOSED, reason="a probe succeeded")
    return None


def _maybe_open(
    breaker: Breaker, attempts: Sequence[Attempt], now: datetime, policy: BreakerPolicy
) -> BreakerChange | None:
    start = now - timedelta(seconds=policy.window_seconds)
    if breaker.closed_at is not None:
        start = max(start, breaker.closed_at)
    counted = sorted(
        (a for a in attempts if a.finished_at > start and not a.died), key=lambda a: a.finished_at
    )
    last_success = max((i for i, a in enumerate(counted) if a.ok), default=-1)
    failed = counted[last_success + 1 :]
    if len(failed) < policy.failures:
        return None
    return _to(breaker, B.OPEN, len(failed), failed[-1].reason)


def _to(breaker: Breaker, new: BreakerState, failures: int = 0, reason: str = "") -> BreakerChange:
    return BreakerChange(breaker.endpoint, breaker.name, breaker.state, new, failures, reason)


def changes(
    breakers: Iterable[Breaker],
    attempts: Sequence[Attempt],
    now: datetime,
    policy: BreakerPolicy,
) -> list[BreakerChange]:
    """Every breaker that changes now; an endpoint with attempts but no row is closed."""
    known = {b.endpoint: b for b in breakers}
    for attempt in attempts:
        known.setdefault(attempt.endpoint, Breaker(attempt.endpoint, attempt.endpoint.name))
    by_endpoint: dict[EndpointKey, list[Attempt]] = {}
    for attempt in attempts:
        by_endpoint.setdefault(attempt.endpoint, []).append(attempt)
    found = (change(b, by_endpoint.get(key, []), now, policy) for key, b in known.items())
    return sorted((c for c in found if c is not None), key=lambda c: c.endpoint)


def gate(breakers: Iterable[Breaker], applied: Iterable[BreakerChange]) -> Gate:
    """Which endpoints get no work (OPEN) and which one probe item (HALF_OPEN), after
    ``applied`` changes."""
    state = {b.endpoint: b.state for b in breakers}
    state |= {c.endpoint: c.new for c in applied}
    return Gate(
        blocked=frozenset(key for key, s in state.items() if s is B.OPEN),
        probing=frozenset(key for key, s in state.items() if s is B.HALF_OPEN),
    )
