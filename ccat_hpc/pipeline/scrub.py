"""The integrity scrub: a slice of the archive read again every scheduler interval.

Each site's ``scrub_bytes_per_day`` is the budget: a run takes the slice one interval
is worth (``bytes_per_day × interval / 1 day``), never more than what is left of the
last 24 hours' budget, and reads in full the site's archive copies whose verification
is oldest (never verified first). A copy found damaged or gone is recorded CORRUPT or
MISSING (a PhysicalCopyCheck row either way), and when another VERIFIED copy of the
package exists a repair is opened: a one-package re-archive campaign onto the damaged
location, run by the campaign step within its share of the slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    Campaign,
    CampaignItem,
    DataLocation,
    PhysicalCopy,
    PhysicalCopyCheck,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import (
    CampaignItemState,
    CampaignState,
    LocationType,
    PhysicalCopyState,
    StorageType,
)
from ccat_hpc.logline import log_line
from ccat_hpc.pipeline import archive_integrity as integrity
from ccat_hpc.pipeline.campaigns import max_share
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.storage.base import StorageError

C = PhysicalCopyState
SCRUB = "scrub"
DAY = timedelta(days=1)
#: copies looked at per run at most (a slice is far smaller in practice)
CANDIDATES = 10_000
#: a copy the scrub takes: verified or written, not known bad (repairs deal with those)
SCRUBBED_STATES = (C.VERIFIED, C.PRESENT)
#: "verified within one pass" looks back at most this far (a pass that takes longer
#: is a budget far too small for the archive; status says how long it takes)
MAX_PASS_DAYS = 3650.0


@dataclass(frozen=True)
class Candidate:
    copy_id: int
    size: int


def slice_bytes(bytes_per_day: int, interval_minutes: float) -> int:
    """What one run may read: the budget of one interval."""
    return int(bytes_per_day * min(interval_minutes, 1440.0) / 1440.0)


def take_slice(
    candidates: Sequence[Candidate], allowance: int, day_left: int, day_budget: int | None = None
) -> list[int]:
    """The copies of one run, oldest verification first, within ``allowance`` bytes.

    A copy larger than one slice is taken alone once the day's budget left allows it,
    and a copy larger than the whole day's budget (``day_budget``) once none of the
    day's budget is spent, so no copy is skipped for ever; the order is never jumped
    (the oldest goes first).
    """
    allowance = min(allowance, day_left)
    taken: list[int] = []
    total = 0
    for candidate in candidates:
        if total + candidate.size > allowance:
            whole_day = day_budget is not None and day_left >= day_budget > 0
            if not taken and (candidate.size <= day_left or whole_day):
                taken.append(candidate.copy_id)
            break
        taken.append(candidate.copy_id)
        total += candidate.size
    return taken


@dataclass(frozen=True)
class SiteBudget:
    site_id: int
    name: str
    bytes_per_day: int
    interval_minutes: float


def budgets(session: Session, site: str | None = None) -> list[SiteBudget]:
    query = select(Site.id, Site.name, Site.settings).order_by(Site.id)
    if site is not None:
        query = query.where(Site.name == site)
    found = []
    for site_id, name, settings in session.execute(query):
        pipeline = (settings or {}).get("pipeline", {})
        found.append(
            SiteBudget(
                site_id,
                name,
                int(pipeline.get("scrub_bytes_per_day", 10**12)),
                float(pipeline.get("scrub_interval_minutes", 60.0)),
            )
        )
    return found


def _archive_copies(site_id: int) -> Any:
    """The site's package copies at its active archive locations that can be read here
    (folders and S3; not tape)."""
    return (
        select(RawDataPackagePhysicalCopy)
        .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
        .where(
            DataLocation.site_id == site_id,
            DataLocation.location_type == LocationType.LONG_TERM_ARCHIVE,
            DataLocation.active.is_(True),
            DataLocation.storage_type != StorageType.TAPE,
        )
    )


def read_by_scrub(session: Session, site_id: int, since: datetime) -> int:
    """Bytes the scrub read at the site's archive since then."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(PhysicalCopyCheck.bytes_read), 0))
            .join(PhysicalCopy, PhysicalCopy.id == PhysicalCopyCheck.physical_copy_id)
            .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
            .where(
                DataLocation.site_id == site_id,
                PhysicalCopyCheck.checked_by == SCRUB,
                PhysicalCopyCheck.checked_at > since,
            )
        )
        or 0
    )


def plan_run(session: Session, budget: SiteBudget, now: datetime) -> list[int]:
    """The copy ids this run reads at the site."""
    if budget.bytes_per_day <= 0:
        return []
    day_left = budget.bytes_per_day - read_by_scrub(session, budget.site_id, now - DAY)
    if day_left <= 0:
        return []
    query = (
        _archive_copies(budget.site_id)
        .where(RawDataPackagePhysicalCopy.state.in_(SCRUBBED_STATES))
        .order_by(
            RawDataPackagePhysicalCopy.verified_at.is_not(None),
            RawDataPackagePhysicalCopy.verified_at,
            RawDataPackagePhysicalCopy.id,
        )
        .limit(CANDIDATES)
    )
    candidates = [
        Candidate(copy.id, size)
        for copy, size in session.execute(
            query.add_columns(RawDataPackage.size).join(
                RawDataPackage, RawDataPackage.id == RawDataPackagePhysicalCopy.raw_data_package_id
            )
        )
    ]
    allowance = slice_bytes(budget.bytes_per_day, budget.interval_minutes)
    return take_slice(candidates, allowance, day_left, budget.bytes_per_day)


def _copy(session: Session, copy_id: int) -> integrity.PackageCopy | None:
    row = session.get(RawDataPackagePhysicalCopy, copy_id)
    if row is None or row.state not in SCRUBBED_STATES:
        return None
    found = integrity.package_copies(
        session,
        row.raw_data_package_id,
        states=SCRUBBED_STATES,
        location_ids=(row.data_location_id,),
    )
    return found[0] if found else None


def open_repair(session: Session, copy: integrity.PackageCopy) -> int | None:
    """Queue the package's repair when another VERIFIED copy exists and none is queued:
    an item of the location's open repair campaign (a re-archive onto the location, by
    the scrub; made when there is none). The campaign's id, or None."""
    others = integrity.package_copies(session, copy.package_id, states=(C.VERIFIED,))
    if not [c for c in others if c.location_id != copy.location_id]:
        return None
    open_states = (CampaignState.ACTIVE, CampaignState.PAUSED)
    already = session.scalar(
        select(CampaignItem.id)
        .join(Campaign, Campaign.id == CampaignItem.campaign_id)
        .where(
            CampaignItem.raw_data_package_id == copy.package_id,
            Campaign.target_location_id == copy.location_id,
            Campaign.state.in_(open_states),
            CampaignItem.state.in_((CampaignItemState.PENDING, CampaignItemState.RUNNING)),
        )
        .limit(1)
    )
    if already is not None:
        return None
    repair = session.scalars(
        select(Campaign).where(
            Campaign.created_by == SCRUB,
            Campaign.target_location_id == copy.location_id,
            Campaign.state.in_(open_states),
        )
    ).first()
    if repair is None:
        repair = Campaign(
            kind="re-archive",
            name=f"repairs at {copy.location_name}",
            selection={"opened_by": SCRUB},
            target_location_id=copy.location_id,
            slot_share=max_share(session, copy.location_name),
            created_by=SCRUB,
            item_count=0,
            total_bytes=0,
        )
        session.add(repair)
        session.flush()
    repair.item_count += 1
    repair.total_bytes += copy.size
    session.add(
        CampaignItem(
            campaign_id=repair.id,
            raw_data_package_id=copy.package_id,
            size=copy.size,
            state=CampaignItemState.PENDING,
        )
    )
    return int(repair.id)


def scrub_site(context: TaskContext, budget: SiteBudget, counts: dict[str, int]) -> None:
    """Read the site's slice. A storage that is out ends the reads at that location for
    this run; an object the storage refuses (access, not a regular file) is passed over
    with the reason logged and counted; neither is recorded against the copy, which
    stays first in line. A copy whose bytes the disk cannot give is CORRUPT."""
    factory = context.factory
    storage_of = integrity.storages(factory, context.environ)
    with transaction(factory) as session:
        planned = plan_run(session, budget, utcnow())
    failing: set[int] = set()
    for copy_id in planned:
        context.stop.check()
        with transaction(factory) as session:
            copy = _copy(session, copy_id)
        if copy is None or copy.location_id in failing:
            continue
        try:
            result = integrity.read_in_full(storage_of(copy.location_id), copy)
        except StorageError as exc:
            counts["errors"] += 1
            if exc.transient:
                failing.add(copy.location_id)
                log_line(f"scrub: {copy.location_name} is out, left for the next run: {exc}")
            else:  # this object only (refused, not a regular file): the others go on
                log_line(f"scrub: {copy.package_name} at {copy.location_name} not read: {exc}")
            continue
        _found(factory, copy, result, counts)


def _found(
    factory: Any, copy: integrity.PackageCopy, result: integrity.CheckResult, counts: dict[str, int]
) -> None:
    counts["checked"] += 1
    counts["bytes_read"] += result.bytes_read
    with transaction(factory) as session:
        integrity.record_check(session, copy, result, SCRUB)
        if result.state is C.VERIFIED:
            return
        counts[result.state.value] += 1
        repair = open_repair(session, copy)
    what = f"{copy.package_name} at {copy.location_name} is {result.state.value}"
    if repair is None:
        log_line(f"scrub: {what} ({result.reason}); no other verified copy to repair it from")
    else:
        counts["repairs_opened"] += 1
        log_line(f"scrub: {what} ({result.reason}); repair campaign {repair}")


def scrub_task(context: TaskContext) -> dict[str, Any]:
    counts = {
        "checked": 0,
        "bytes_read": 0,
        "corrupt": 0,
        "missing": 0,
        "repairs_opened": 0,
        "errors": 0,
    }
    site = context.parameters.get("site")
    with transaction(context.factory) as session:
        sites = budgets(session, None if site is None else str(site))
    for budget in sites:
        scrub_site(context, budget, counts)
    return counts


def scrub_progress(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Per site with an archive: its size, the budget and what the scrub read of it,
    how much of the archive was verified within one full pass at that budget, the
    oldest verification, and what the scrub found in the last 30 days."""
    shown = []
    for budget in budgets(session):
        copy = RawDataPackagePhysicalCopy
        size = func.coalesce(func.sum(RawDataPackage.size), 0)
        scrubbed = (
            _archive_copies(budget.site_id)
            .with_only_columns(func.count(copy.id), size, func.min(copy.verified_at))
            .join(RawDataPackage, RawDataPackage.id == copy.raw_data_package_id)
            .where(copy.state.in_(SCRUBBED_STATES))
        )
        count, total_bytes, oldest = session.execute(scrubbed).one()
        total_bytes = int(total_bytes)  # a Decimal from PostgreSQL's sum
        found = _findings(session, budget.site_id, now - timedelta(days=30))
        if not count and not found["count"]:
            continue
        pass_days = total_bytes / budget.bytes_per_day if budget.bytes_per_day else None
        window = now - timedelta(days=min(max(pass_days or 0.0, 1.0), MAX_PASS_DAYS))
        recent = session.execute(scrubbed.where(copy.verified_at >= window)).one()
        shown.append(
            {
                "site": budget.name,
                "copies": int(count),
                "bytes": int(total_bytes),
                "bytes_per_day": budget.bytes_per_day,
                "read_last_day": read_by_scrub(session, budget.site_id, now - DAY),
                "full_pass_days": pass_days,
                "verified_within_pass": int(recent[0]),
                "verified_bytes_within_pass": int(recent[1]),
                "oldest_verification": None if oldest is None else oldest.isoformat(),
                "found": found["latest"],
                "found_count": found["count"],
                "repairs": _repairs(session, budget.site_id),
            }
        )
    return shown


def _findings(session: Session, site_id: int, since: datetime) -> dict[str, Any]:
    """How many copies the scrub found damaged or missing since then, and the latest 20."""
    query = (
        select(PhysicalCopyCheck, RawDataPackage.name, DataLocation.name)
        .join(
            RawDataPackagePhysicalCopy,
            RawDataPackagePhysicalCopy.id == PhysicalCopyCheck.physical_copy_id,
        )
        .join(RawDataPackage, RawDataPackage.id == RawDataPackagePhysicalCopy.raw_data_package_id)
        .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
        .where(
            DataLocation.site_id == site_id,
            PhysicalCopyCheck.checked_by == SCRUB,
            PhysicalCopyCheck.checked_at > since,
            PhysicalCopyCheck.outcome != C.VERIFIED,
        )
    )
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(PhysicalCopyCheck.checked_at.desc()).limit(20))
    latest = [
        {
            "package": package,
            "location": location,
            "outcome": check.outcome.value,
            "checked_at": check.checked_at.isoformat(),
            "reason": check.reason,
        }
        for check, package, location in rows
    ]
    return {"count": int(count), "latest": latest}


def _repairs(session: Session, site_id: int) -> dict[str, int]:
    rows = session.execute(
        select(CampaignItem.state, func.count(CampaignItem.id))
        .join(Campaign, Campaign.id == CampaignItem.campaign_id)
        .join(DataLocation, DataLocation.id == Campaign.target_location_id)
        .where(Campaign.created_by == SCRUB, DataLocation.site_id == site_id)
        .group_by(CampaignItem.state)
    )
    return {state.value: int(count) for state, count in rows}
