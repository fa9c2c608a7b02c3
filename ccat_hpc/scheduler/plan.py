"""What the scheduler does next, decided from a snapshot of ops-db (pure: no I/O).

A pass first moves the circuit breakers (:mod:`ccat_hpc.scheduler.breakers`): an
endpoint whose attempts keep failing gets no more work until a probe succeeds. It
follows every batch that has not ended (so the tasks that died give their items
back), then submits one batch per step that has items waiting and no batch of its own
still running, in pipeline order; the transfer and archive batches take only items
whose endpoint's breaker lets them go. It warns about buffers past their fill level.

One batch per step at a time keeps a step's claims simple and its job arrays large; a
step whose batch runs simply waits for the next pass. Items are claimed by the
submission itself (atomically, in ops-db), so two schedulers planning the same
submission never submit one item twice: the second finds nothing left to claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ccat_hpc.pipeline.endpoints import EndpointKey, Gate
from ccat_hpc.pipeline.placement import BufferFill
from ccat_hpc.scheduler.breakers import (
    Attempt,
    Breaker,
    BreakerChange,
    BreakerPolicy,
    changes,
    gate,
)

#: the steps in pipeline order (a pass submits them in this order); cleanup and scrub
#: "wait" (one item) when their interval has passed since their last batch; campaign
#: items are operators' bulk work, throttled to the campaign's share of the slots
STEPS = (
    "checksum",
    "package",
    "bundle",
    "transfer",
    "archive",
    "stage",
    "cleanup",
    "scrub",
    "campaign",
)
#: steps that run every so often rather than for items waiting
PERIODIC_STEPS = ("cleanup", "scrub")


@dataclass(frozen=True)
class OpenBatch:
    """A batch that has not ended: its id, its step, its executor."""

    batch_id: int
    kind: str
    executor: str


@dataclass(frozen=True)
class Snapshot:
    """What the plan needs of ops-db: items waiting per step, and the open batches."""

    waiting: Mapping[str, int]
    open_batches: Sequence[OpenBatch] = ()
    #: steps the scheduler may submit (all, unless limited by the operator)
    steps: Sequence[str] = STEPS
    now: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    breakers: Sequence[Breaker] = ()
    #: recent attempts at each endpoint (transfer hops by route, uploads by location)
    attempts: Sequence[Attempt] = ()
    #: step → endpoint → items ready for it (transfer by route, archive by location)
    waiting_at: Mapping[str, Mapping[EndpointKey, int]] = field(default_factory=dict)
    buffers: Sequence[BufferFill] = ()


@dataclass(frozen=True)
class Follow:
    batch_id: int
    kind: str
    executor: str

    def describe(self) -> str:
        return f"follow batch {self.batch_id} ({self.kind})"


@dataclass(frozen=True)
class Submit:
    step: str
    waiting: int
    gate: Gate = field(default_factory=Gate)

    def describe(self) -> str:
        if self.step in PERIODIC_STEPS:
            return f"submit {self.step}: its interval has passed"
        return f"submit {self.step}: {self.waiting} item(s) waiting"


@dataclass(frozen=True)
class Plan:
    follow: list[Follow] = field(default_factory=list)
    submit: list[Submit] = field(default_factory=list)
    #: why a step with waiting items is not submitted this pass
    held_back: dict[str, str] = field(default_factory=dict)
    breakers: list[BreakerChange] = field(default_factory=list)
    #: what an operator should know (buffers filling up)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.follow or self.submit or self.breakers)


#: the steps whose items go to an endpoint with a breaker
GATED_STEPS = ("transfer", "archive")


def plan(snapshot: Snapshot) -> Plan:
    """The actions of one pass."""
    follow = [Follow(b.batch_id, b.kind, b.executor) for b in snapshot.open_batches]
    running = {b.kind for b in snapshot.open_batches}
    moved = changes(snapshot.breakers, snapshot.attempts, snapshot.now, snapshot.policy)
    the_gate = gate(snapshot.breakers, moved)
    submit: list[Submit] = []
    held_back: dict[str, str] = {}
    for step in STEPS:
        waiting = snapshot.waiting.get(step, 0)
        if step not in snapshot.steps or waiting <= 0:
            continue
        if step in running:
            held_back[step] = "its batch is still running"
            continue
        step_gate = the_gate if step in GATED_STEPS else Gate()
        admitted, blocked = _through_gate(waiting, snapshot.waiting_at.get(step, {}), step_gate)
        if blocked:
            held_back[step] = "open breaker: " + ", ".join(
                f"{key} ({count} item(s))" for key, count in blocked
            )
        if admitted > 0:
            submit.append(Submit(step, admitted, step_gate))
    return Plan(follow, submit, held_back, moved, buffer_warnings(snapshot.buffers))


def _through_gate(
    waiting: int, at: Mapping[EndpointKey, int], step_gate: Gate
) -> tuple[int, list[tuple[EndpointKey, int]]]:
    """Items the gate lets go (of ``waiting``), and the blocked endpoints with their items."""
    blocked = sorted((key, n) for key, n in at.items() if key in step_gate.blocked and n > 0)
    held = sum(n for _, n in blocked)
    held += sum(n - 1 for key, n in at.items() if key in step_gate.probing and n > 1)
    return max(0, waiting - held), blocked


def buffer_warnings(buffers: Sequence[BufferFill]) -> list[str]:
    """A line for every buffer past its fill level, and for every site with none left."""
    warnings: list[str] = []
    by_site: dict[str, list[BufferFill]] = {}
    for fill in buffers:
        by_site.setdefault(fill.site, []).append(fill)
    for site, fills in sorted(by_site.items()):
        room = [f for f in fills if not f.full]
        for fill in (f for f in fills if f.full):
            where = f"new data goes to {room[0].location}" if room else "no buffer has room"
            warnings.append(
                f"buffer {fill.location} at site {site} is {fill.fill:.0%} full "
                f"(limit {fill.max_fill:.0%}): {where}"
            )
        if not room:
            warnings.append(
                f"site {site}: every buffer is full; packaging and transfers to the "
                "site wait until cleanup frees room"
            )
    return warnings
