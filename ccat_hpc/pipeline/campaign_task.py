"""A campaign task: the items its batch claimed, one after the other.

Before each item the task looks at its campaign: paused, it gives the item back
(PENDING, taken by a later batch after the resume); cancelled, the item is CANCELLED.
Each item ends DONE with its outcome or FAILED with the reason; an outage of a storage
gives it back for a later batch after a backoff (the site's retry settings; FAILED after
``MAX_TRIES``). A stop (time limit, cancel, node shutdown) ends the task at once, and the
items of a task that ended without their outcome are given back by the scheduler
(:func:`release_items`): PENDING after the backoff, CANCELLED if the campaign was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import Campaign, CampaignItem, DataLocation, StagingJob
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import CampaignItemState, CampaignState, StagingJobState
from ccat_hpc.db.transitions import move
from ccat_hpc.errors import CcatHpcError
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import archive_integrity as integrity
from ccat_hpc.pipeline.campaigns import close_finished, site_settings
from ccat_hpc.pipeline.retry import RetryPolicy
from ccat_hpc.pipeline.staging_request import Selection, create_request
from ccat_hpc.pipeline.tasks import TaskContext, TaskInterrupted
from ccat_hpc.storage.base import ObjectNotFound, StorageError

I = CampaignItemState  # noqa: E741
#: tries of an item whose storage was out (the item then FAILED with the reason)
MAX_TRIES = 3


@dataclass(frozen=True)
class Item:
    id: int
    campaign_id: int
    kind: str
    campaign_state: CampaignState
    package_id: int | None
    execution: Any
    target_location_id: int | None
    selection: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Outcome:
    ok: bool
    outcome: str
    detail: str
    bytes_read: int = 0


def campaign_task(context: TaskContext) -> dict[str, Any]:
    counts: dict[str, int] = {"done": 0, "failed": 0, "given_back": 0, "cancelled": 0}
    storage_of = integrity.storages(context.factory, context.environ)
    rest = _rest_seconds(context)
    ids = [int(i) for i in context.items]
    for number, item_id in enumerate(ids):
        try:
            context.stop.check()
        except TaskInterrupted:
            _unstarted_back(context, ids[number:])
            raise
        try:
            _one(context, item_id, storage_of, counts)
            if rest:
                context.stop.wait(rest)
        except TaskInterrupted:
            # the item at hand is given back by the runner (release_items: its try
            # counts); the ones not started go back as they were
            _unstarted_back(context, ids[number + 1 :])
            raise
    with transaction(context.factory) as session:
        close_finished(session)
    return counts


def _one(
    context: TaskContext, item_id: int, storage_of: integrity.StorageOf, counts: dict[str, int]
) -> None:
    item = _load(context, item_id)
    if item is None:
        return
    if item.campaign_state is not CampaignState.ACTIVE:
        counts[_set_aside(context, item)] += 1
        return
    try:
        outcome = _run(context, item, storage_of)
    except TaskInterrupted:
        raise
    except (StorageError, OSError) as exc:
        counts[_outage(context, item, exc)] += 1
        return
    except _Later as later:
        counts[_give_back(context, item, later)] += 1
        return
    except CcatHpcError as exc:
        outcome = Outcome(False, "error", str(exc))
    _record(context, item, outcome)
    counts["done" if outcome.ok else "failed"] += 1


def _unstarted_back(context: TaskContext, item_ids: list[int]) -> None:
    """Items this task held but never started: PENDING again, no try counted."""
    if not item_ids:
        return
    with transaction(context.factory) as session:
        for item_id in item_ids:
            leave(session, item_id, context.batch_id, I.PENDING)


def _rest_seconds(context: TaskContext) -> float:
    """The pause after each item (the campaign's site's campaign_item_rest_seconds)."""
    with transaction(context.factory) as session:
        first = session.get(CampaignItem, int(context.items[0])) if context.items else None
        if first is None:
            return 0.0
        owner = session.get_one(Campaign, first.campaign_id)
        settings = site_settings(session, owner, None)
    return float(settings.get("campaign_item_rest_seconds", 0.0))


def _load(context: TaskContext, item_id: int) -> Item | None:
    with transaction(context.factory) as session:
        row = session.get(CampaignItem, item_id)
        if row is None or row.claimed_by_batch_id != context.batch_id or row.state is not I.RUNNING:
            return None
        owner = session.get_one(Campaign, row.campaign_id)
        return Item(
            id=row.id,
            campaign_id=owner.id,
            kind=owner.kind,
            campaign_state=owner.state,
            package_id=row.raw_data_package_id,
            execution=row.executed_obs_unit_id,
            target_location_id=owner.target_location_id,
            selection=dict(owner.selection),
            attempts=row.attempts,
        )


def _set_aside(context: TaskContext, item: Item) -> str:
    """A paused campaign's item goes back to PENDING; a cancelled one's is CANCELLED."""
    paused = item.campaign_state is CampaignState.PAUSED
    with transaction(context.factory) as session:
        if paused:
            leave(session, item.id, context.batch_id, I.PENDING)
        else:
            leave(session, item.id, context.batch_id, I.CANCELLED, finished_at=utcnow())
    return "given_back" if paused else "cancelled"


def leave(
    session: Session, item_id: int, batch_id: int, new: CampaignItemState, **values: Any
) -> bool:
    """The batch's RUNNING item leaves it, in ``new`` (with ``values``); False when the
    batch no longer holds it."""
    moved = move(
        session,
        CampaignItem,
        [item_id],
        I.RUNNING,
        new,
        only=[CampaignItem.claimed_by_batch_id == batch_id],
        claimed_by_batch_id=None,
        **values,
    )
    return bool(moved)


def failed_try(
    session: Session, campaign_id: int, tries: int, reason: str, last: bool
) -> dict[str, Any]:
    """What an item's row says after a try that ended without an outcome: FAILED for
    good after the last try, else a backoff by the site's retry settings."""
    if last:
        return {"attempts": tries, "outcome": "error", "detail": reason, "finished_at": utcnow()}
    owner = session.get_one(Campaign, campaign_id)
    policy = RetryPolicy.from_settings(site_settings(session, owner, None))
    return {
        "attempts": tries,
        "detail": reason,
        "retry_after": utcnow() + timedelta(seconds=policy.delay(tries)),
    }


def _outage(context: TaskContext, item: Item, exc: Exception) -> str:
    tries = item.attempts + 1
    transient = getattr(exc, "transient", isinstance(exc, OSError))
    last = tries >= MAX_TRIES or not transient
    reason = f"{type(exc).__name__}: {exc} (try {tries} of {MAX_TRIES})"
    with transaction(context.factory) as session:
        values = failed_try(session, item.campaign_id, tries, reason, last)
        leave(session, item.id, context.batch_id, I.FAILED if last else I.PENDING, **values)
    log_line(f"campaign {item.campaign_id} item {item.id}: {reason}")
    return "failed" if last else "given_back"


class _Later(Exception):
    """The item cannot go on now (its staging is in flight elsewhere, or waits out a
    backoff): back to PENDING until then, without counting a try."""

    def __init__(self, reason: str, until: datetime) -> None:
        super().__init__(reason)
        self.until = until


def _give_back(context: TaskContext, item: Item, later: _Later) -> str:
    with transaction(context.factory) as session:
        leave(
            session,
            item.id,
            context.batch_id,
            I.PENDING,
            detail=str(later),
            retry_after=later.until,
        )
    return "given_back"


def _record(context: TaskContext, item: Item, outcome: Outcome) -> None:
    with transaction(context.factory) as session:
        leave(
            session,
            item.id,
            context.batch_id,
            I.DONE if outcome.ok else I.FAILED,
            attempts=item.attempts + 1,
            outcome=outcome.outcome,
            detail=outcome.detail[:4000],
            bytes_read=outcome.bytes_read,
            finished_at=utcnow(),
        )


def _run(context: TaskContext, item: Item, storage_of: integrity.StorageOf) -> Outcome:
    if item.kind == "re-verify":
        return _reverify(context, item, storage_of)
    if item.kind == "re-archive":
        return _rearchive(context, item, storage_of)
    return _restage(context, item)


def _checked_by(item: Item) -> str:
    return f"campaign {item.campaign_id}"


def _reverify(context: TaskContext, item: Item, storage_of: integrity.StorageOf) -> Outcome:
    """Read every archive copy of the package at the selected locations again; restore
    the bad ones from a good copy."""
    assert item.package_id is not None
    locations = tuple(item.selection.get("location_ids") or ())
    with transaction(context.factory) as session:
        found = integrity.package_copies(session, item.package_id, location_ids=locations)
    if not found:
        return Outcome(False, "no-copy", "no archive copy of it at the selected locations")
    read = 0
    notes: list[str] = []
    repaired = unrepairable = 0
    for copy in found:
        context.stop.check()
        result = integrity.check_and_record(
            context.factory, storage_of(copy.location_id), copy, _checked_by(item)
        )
        read += result.bytes_read
        if result.state is integrity.C.VERIFIED:
            notes.append(f"{copy.location_name}: verified")
            continue
        restored = integrity.restore(
            context.factory, item.package_id, copy.location_id, storage_of, _checked_by(item)
        )
        read += restored.bytes_read
        notes.append(
            f"{copy.location_name}: {result.state.value} ({result.reason}); {restored.detail}"
        )
        if restored.ok:
            repaired += 1
        else:
            unrepairable += 1
    outcome = "unrepairable" if unrepairable else "repaired" if repaired else "verified"
    return Outcome(not unrepairable, outcome, "; ".join(notes), read)


def _rearchive(context: TaskContext, item: Item, storage_of: integrity.StorageOf) -> Outcome:
    """Write the package to the target archive from a verified copy, unless a VERIFIED
    copy is there already with the package's size and recorded checksum."""
    assert item.package_id is not None and item.target_location_id is not None
    with transaction(context.factory) as session:
        there = integrity.package_copies(
            session,
            item.package_id,
            states=(integrity.C.VERIFIED,),
            location_ids=(item.target_location_id,),
        )
    if there:
        target = storage_of(item.target_location_id)
        if _records_checksums(target, there[0]):
            problem = _not_there(target, there[0])
            if problem is None:
                return Outcome(True, "present", f"already at {there[0].location_name}")
            with transaction(context.factory) as session:
                integrity.record_check(session, there[0], problem, _checked_by(item))
        else:  # nothing recorded to compare with: every byte is read
            result = integrity.check_and_record(
                context.factory, target, there[0], _checked_by(item)
            )
            if result.state is integrity.C.VERIFIED:
                where = there[0].location_name
                return Outcome(True, "present", f"already at {where}", result.bytes_read)
    restored = integrity.restore(
        context.factory,
        item.package_id,
        item.target_location_id,
        storage_of,
        _checked_by(item),
    )
    return Outcome(
        restored.ok, "copied" if restored.ok else "no-source", restored.detail, restored.bytes_read
    )


def _records_checksums(storage: Any, copy: integrity.PackageCopy) -> bool:
    """Whether the store recorded a checksum for the object (or has no object there)."""
    try:
        return storage.stat(copy.key).checksum is not None
    except ObjectNotFound:
        return True


def _not_there(storage: Any, copy: integrity.PackageCopy) -> integrity.CheckResult | None:
    """None when the store has the object with the package's size and recorded checksum;
    else what is wrong."""
    try:
        info = storage.stat(copy.key)
    except ObjectNotFound:
        return integrity.CheckResult(integrity.C.MISSING, 0, f"no object {copy.key}")
    if info.size != copy.size or info.checksum != copy.checksum:
        return integrity.CheckResult(
            integrity.C.CORRUPT,
            0,
            f"the store has {info.size} bytes with xxh3-128 {info.checksum}, the package "
            f"{copy.size} with {copy.checksum}",
        )
    return None


def _restage(context: TaskContext, item: Item) -> Outcome:
    """A staging request for the observation, staged by this task; a staging in flight
    elsewhere (the stage step took it after a death), or waiting out its backoff, is
    waited for: the item comes back once it has ended."""
    from ccat_hpc.pipeline.stage_task import stage_task

    with transaction(context.factory) as session:
        staging_id, ours = _staging_for(session, context, item)
    if ours:
        stage_task(dataclasses.replace(context, items=[staging_id]))
    with transaction(context.factory) as session:
        staging = session.get_one(StagingJob, staging_id)
        state, reason, size = staging.state, staging.failure_reason, staging.total_bytes
        retry_after = staging.retry_after
    if state is StagingJobState.STAGED:
        return Outcome(True, "staged", f"staging {staging_id} is READY", size)
    if state in (StagingJobState.FAILED, StagingJobState.CANCELLED, StagingJobState.RELEASED):
        return Outcome(
            False, "not-staged", f"staging {staging_id} is {state.value}: {reason or 'no reason'}"
        )
    until = max(retry_after or utcnow(), utcnow() + timedelta(seconds=30))
    raise _Later(f"staging {staging_id} is {state.value}: {reason or 'in flight'}", until)


def _staging_for(session: Session, context: TaskContext, item: Item) -> tuple[int, bool]:
    """The item's staging request (made on its first try), and whether this batch now
    holds it (it does unless the staging is in flight elsewhere or has ended)."""
    row = session.get_one(CampaignItem, item.id)
    ended = (StagingJobState.FAILED, StagingJobState.CANCELLED, StagingJobState.RELEASED)
    if (
        row.staging_job_id is not None
        and session.get_one(StagingJob, row.staging_job_id).state in ended
    ):
        row.staging_job_id = None  # tried again (campaign retry): a new request
    if row.staging_job_id is None:
        assert item.target_location_id is not None
        place = session.get_one(DataLocation, item.target_location_id)
        new = create_request(
            session,
            Selection(executions=(item.execution,)),
            str(item.selection["user"]),
            location=place.name,
            days=item.selection.get("keep_days"),
            name=f"campaign {item.campaign_id}",
        )
        row.staging_job_id = new.id
        session.flush()
    staging_id = int(row.staging_job_id)
    taken = move(
        session,
        StagingJob,
        [staging_id],
        (StagingJobState.PENDING, StagingJobState.RETRY_WAIT),
        StagingJobState.SUBMITTED,
        only=[
            (StagingJob.retry_after.is_(None)) | (StagingJob.retry_after <= utcnow()),
        ],
        claimed_by_batch_id=context.batch_id,
    )
    return staging_id, bool(taken)


def release_items(session: Session, items: Sequence[Any], batch_id: int) -> int:
    """Give back the items of a task that ended without their outcome: PENDING after a
    backoff (the try counts; FAILED after MAX_TRIES), CANCELLED when their campaign was
    cancelled; and the staging a re-stage item held."""
    from ccat_hpc.jobs.stage_batch import release_stagings

    given = 0
    rows = session.execute(
        select(CampaignItem, Campaign.state)
        .join(Campaign, Campaign.id == CampaignItem.campaign_id)
        .where(
            CampaignItem.id.in_([int(i) for i in items]),
            CampaignItem.claimed_by_batch_id == batch_id,
            CampaignItem.state == I.RUNNING,
        )
    ).all()
    for row, campaign_state in rows:
        if row.staging_job_id is not None:
            release_stagings(session, [row.staging_job_id], batch_id)
        if campaign_state is CampaignState.CANCELLED:
            given += leave(session, row.id, batch_id, I.CANCELLED, finished_at=utcnow())
            continue
        tries = row.attempts + 1
        last = tries >= MAX_TRIES
        reason = f"its task ended without an outcome (try {tries} of {MAX_TRIES})"
        values = failed_try(session, row.campaign_id, tries, reason, last)
        given += leave(session, row.id, batch_id, I.FAILED if last else I.PENDING, **values)
    return given
