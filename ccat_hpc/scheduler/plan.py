"""What the scheduler does next, decided from a snapshot of ops-db (pure: no I/O).

A pass follows every batch that has not ended (so the tasks that died give their items
back), then submits one batch per step that has items waiting and no batch of its own
still running, in pipeline order. One batch per step at a time keeps a step's claims
simple and its job arrays large; a step whose batch runs simply waits for the next
pass. Items are claimed by the submission itself (atomically, in ops-db), so two
schedulers planning the same submission never submit one item twice: the second finds
nothing left to claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: the steps in pipeline order (a pass submits them in this order)
STEPS = ("checksum", "package", "bundle", "transfer", "archive")


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

    def describe(self) -> str:
        return f"submit {self.step}: {self.waiting} item(s) waiting"


@dataclass(frozen=True)
class Plan:
    follow: list[Follow] = field(default_factory=list)
    submit: list[Submit] = field(default_factory=list)
    #: why a step with waiting items is not submitted this pass
    held_back: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.follow or self.submit)


def plan(snapshot: Snapshot) -> Plan:
    """The actions of one pass."""
    follow = [Follow(b.batch_id, b.kind, b.executor) for b in snapshot.open_batches]
    running = {b.kind for b in snapshot.open_batches}
    submit: list[Submit] = []
    held_back: dict[str, str] = {}
    for step in STEPS:
        waiting = snapshot.waiting.get(step, 0)
        if step not in snapshot.steps or waiting <= 0:
            continue
        if step in running:
            held_back[step] = "its batch is still running"
            continue
        submit.append(Submit(step, waiting))
    return Plan(follow, submit, held_back)
