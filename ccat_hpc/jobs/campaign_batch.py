"""Claim items of the oldest active campaign and submit them as one throttled job array.

The array's throttle is the campaign's share of the site's task slots (``%N`` on
Slurm's ``--array``, the local executor's parallelism), and the scheduler keeps one
campaign batch at a time, so a campaign never runs more than that many tasks at once
and the live pipeline keeps the rest of the slots. Claiming (PENDING → RUNNING, the
batch named on each item) and creating the batch are one transaction.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import Campaign, CampaignItem
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import CampaignItemState, CampaignState
from ccat_hpc.db.transitions import move
from ccat_hpc.jobs.batches import create_batch, submit_batch
from ccat_hpc.jobs.step_batches import JobSetup, StepSubmission
from ccat_hpc.jobs.tracking import track_unfinished
from ccat_hpc.pipeline.campaigns import (
    CampaignRequest,
    campaign_site,
    close_finished,
    create_campaign,
    max_share,
    site_settings,
)
from ccat_hpc.pipeline.checksum import plan_tasks
from ccat_hpc.pipeline.scrub import SCRUB

I = CampaignItemState  # noqa: E741
#: a batch takes at most this many tasks' worth of items (the next batch the rest)
TASKS_PER_BATCH = 64
BYTES_PER_TASK = 200 * 10**9


def throttle_for(settings: dict[str, Any], share: float) -> int:
    """Tasks a campaign may run at once: its share of the site's slots (at least one)."""
    slots = int(settings.get("task_slots", 8))
    share = min(share, float(settings.get("campaign_share", 0.25)))
    return max(1, math.floor(slots * share))


def queue_campaign(session: Session, request: CampaignRequest) -> dict[str, Any]:
    """Create the campaign (the caller commits) and say what was queued: its id, kind,
    items, bytes, share and how many tasks it runs at once."""
    made = create_campaign(session, request, max_share(session, request.to))
    return {
        "id": made.id,
        "kind": made.kind,
        "items": made.item_count,
        "bytes": made.total_bytes,
        "share": made.slot_share,
        "tasks_at_once": throttle_for(site_settings(session, made, None), made.slot_share),
    }


def ready_items() -> Any:
    """Items waiting, and not waiting out a backoff."""
    return (CampaignItem.state == I.PENDING) & (
        CampaignItem.retry_after.is_(None) | (CampaignItem.retry_after <= utcnow())
    )


def next_campaign(session: Session, site: str | None) -> Campaign | None:
    """The ACTIVE campaign whose items go next: repairs the scrub opened first, then the
    oldest; with ``site``, only campaigns of that site (or of none)."""
    ready = select(CampaignItem.id).where(CampaignItem.campaign_id == Campaign.id, ready_items())
    query = (
        select(Campaign)
        .where(Campaign.state == CampaignState.ACTIVE, ready.exists())
        .order_by((Campaign.created_by != SCRUB), Campaign.id)
    )
    for candidate in session.scalars(query):
        if site is None or campaign_site(session, candidate) in (None, site):
            return candidate
    return None


def claim_items(session: Session, setup: JobSetup) -> tuple[int, list[int], int, int] | None:
    """(batch, items, tasks, throttle) of a new batch of the next campaign's waiting
    items (the caller commits), or None when none waits."""
    close_finished(session)
    owner = next_campaign(session, setup.site)
    if owner is None:
        return None
    settings = site_settings(session, owner, setup.site)
    per_task = int(settings.get("campaign_items_per_task", 10))
    waiting = list(
        session.execute(
            select(CampaignItem.id, CampaignItem.size)
            .where(CampaignItem.campaign_id == owner.id, ready_items())
            .order_by(CampaignItem.id)
            .limit(per_task * TASKS_PER_BATCH)
        )
    )
    claimed = set(move(session, CampaignItem, [i for i, _ in waiting], I.PENDING, I.RUNNING))
    if not claimed:
        return None
    tasks = plan_tasks([(i, n) for i, n in waiting if i in claimed], BYTES_PER_TASK, per_task)
    batch = create_batch(
        session,
        "campaign",
        tasks,
        executor=setup.executor.name,
        profile=setup.profile,
        working_dir=setup.working_dir,
        parameters={"campaign": owner.id},
        site_name=setup.site,
    )
    session.execute(
        update(CampaignItem)
        .where(CampaignItem.id.in_(sorted(claimed)))
        .values(claimed_by_batch_id=batch.id)
    )
    return int(batch.id), sorted(claimed), len(tasks), throttle_for(settings, owner.slot_share)


def submit_campaign(factory: sessionmaker[Session], setup: JobSetup) -> StepSubmission | None:
    """One throttled batch of the oldest active campaign; None when nothing waits."""
    track_unfinished(factory, "campaign", setup.executor)
    with transaction(factory) as session:
        claimed = claim_items(session, setup)
    if claimed is None:
        return None
    batch_id, items, tasks, throttle = claimed
    submit_batch(factory, batch_id, setup.executor, setup.environment, throttle=throttle)
    return StepSubmission(batch_id, items, tasks)
