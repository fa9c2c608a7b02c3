"""The scheduler's plan on hand-made snapshots (golden actions)."""

from __future__ import annotations

from ccat_hpc.scheduler.plan import Follow, OpenBatch, Plan, Snapshot, Submit, plan


def test_nothing_waiting_and_nothing_running_is_an_empty_plan() -> None:
    assert plan(Snapshot(waiting={})) == Plan()
    assert plan(Snapshot(waiting={"checksum": 0, "archive": 0})).empty


def test_every_step_with_items_waiting_is_submitted_in_pipeline_order() -> None:
    snapshot = Snapshot(waiting={"archive": 1, "checksum": 40, "bundle": 2})
    assert plan(snapshot) == Plan(
        submit=[Submit("checksum", 40), Submit("bundle", 2), Submit("archive", 1)]
    )


def test_open_batches_are_followed_and_hold_back_their_step() -> None:
    snapshot = Snapshot(
        waiting={"checksum": 5, "package": 3},
        open_batches=[OpenBatch(7, "checksum", "slurm"), OpenBatch(9, "noop", "local")],
    )
    assert plan(snapshot) == Plan(
        follow=[Follow(7, "checksum", "slurm"), Follow(9, "noop", "local")],
        submit=[Submit("package", 3)],
        held_back={"checksum": "its batch is still running"},
    )


def test_only_the_steps_asked_for_are_submitted() -> None:
    snapshot = Snapshot(waiting={"checksum": 1, "transfer": 1, "archive": 1}, steps=("archive",))
    assert plan(snapshot).submit == [Submit("archive", 1)]


def test_actions_describe_themselves_for_dry_runs() -> None:
    assert Submit("bundle", 2).describe() == "submit bundle: 2 item(s) waiting"
    assert Follow(3, "archive", "slurm").describe() == "follow batch 3 (archive)"
