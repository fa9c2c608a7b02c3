"""Operators' campaigns: bulk work over a selection, tracked item by item.

Kinds:

- ``re-verify``: every byte of each selected package's archive copies is read again;
  a copy found CORRUPT or MISSING is restored from another VERIFIED copy where one
  exists (outcomes: verified, repaired, unrepairable);
- ``re-archive``: each selected package is written to the target archive location
  from a VERIFIED copy (after an S3 migration, onto a new or repaired store); a target
  copy already there with the right size is left (outcomes: copied, present);
- ``re-stage``: each selected observation is staged again to a PROCESSING location
  for a user, as a staging request (outcome: staged).

A campaign is created with its items (PENDING); the scheduler's campaign step claims
items of the oldest ACTIVE campaign into job arrays throttled to the campaign's share
of the site's task slots. Pausing stops new claims (running tasks give back the items
they have not started); cancelling also cancels the items not done.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    Campaign,
    CampaignItem,
    DataLocation,
    ExecutedObsUnit,
    ObsUnit,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.states import (
    CampaignItemState,
    CampaignState,
    LocationType,
    PackageState,
    PhysicalCopyState,
)
from ccat_hpc.db.transitions import in_chunks, move
from ccat_hpc.errors import NotFoundError, StateConflict, UsageError
from ccat_hpc.inventory import lookup
from ccat_hpc.inventory.observations import (
    ObservationFilter,
    catalog_conditions,
    time_conditions,
)
from ccat_hpc.names import unknown_name_message
from ccat_hpc.pipeline.archive_integrity import CHECKABLE
from ccat_hpc.pipeline.staging_request import (
    check_username,
    given_fields,
    processing_location,
)

KINDS = ("re-archive", "re-verify", "re-stage")
K = CampaignState
I = CampaignItemState  # noqa: E741
#: an item in these states is still to be done
OPEN_ITEMS = (I.PENDING, I.RUNNING)


@dataclass(frozen=True)
class CampaignSelection:
    """Which packages (or observations) a campaign covers; every given field narrows it."""

    site: str | None = None
    location: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    instrument: str | None = None
    #: the state of the packages' copies at the selected locations (re-verify,
    #: re-archive), e.g. ``missing``
    state: str | None = None
    packages: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return given_fields(self.__dict__)


@dataclass(frozen=True)
class CampaignRequest:
    kind: str
    selection: CampaignSelection
    #: the archive written (re-archive) or the PROCESSING location (re-stage)
    to: str | None = None
    share: float | None = None
    created_by: str = "operator"
    name: str = ""
    #: the user a re-stage stages for (default: who created it)
    user: str | None = None
    keep_days: float | None = None


@dataclass
class Progress:
    """Where a campaign stands: items by state and outcome, bytes done of the total."""

    campaign_id: int
    kind: str
    name: str
    state: str
    share: float
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    note: str | None
    items: int
    total_bytes: int
    by_state: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    done_bytes: int = 0
    bytes_read: int = 0
    target: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished_items(self) -> int:
        return sum(n for s, n in self.by_state.items() if s not in {i.value for i in OPEN_ITEMS})

    def as_json(self) -> dict[str, Any]:
        shown = dict(self.__dict__)
        for key in ("created_at", "finished_at"):
            value = shown[key]
            shown[key] = value.isoformat() if value is not None else None
        shown["failures"] = [{"item": i, "detail": d} for i, d in self.failures]
        shown["finished_items"] = self.finished_items
        return shown


def create_campaign(session: Session, request: CampaignRequest, max_share: float) -> Campaign:
    """Record the campaign and its items (the caller commits); UsageError for a kind,
    target or share that does not fit, NotFoundError when nothing is selected."""
    if request.kind not in KINDS:
        raise UsageError(f"unknown campaign kind {request.kind!r}; known: {', '.join(KINDS)}")
    share = max_share if request.share is None else request.share
    if not 0 < share <= max_share:
        raise UsageError(
            f"a campaign may take at most {max_share:.0%} of the task slots (the site's "
            f"campaign_share); asked for {share:.0%}"
        )
    _check_options(request)
    target = _target(session, request)
    selection = request.selection.as_json()
    locations = _selected_locations(session, request.selection, request.kind)
    if locations is not None:
        selection["location_ids"] = locations
    if request.kind == "re-stage":
        selection["user"] = check_username(request.user or request.created_by)
        if request.keep_days is not None:
            selection["keep_days"] = request.keep_days
        rows: list[tuple[Any, int]] = list(_observations(session, request.selection))
    else:
        rows = _packages(session, request.selection, request.kind, locations)
    if not rows:
        raise NotFoundError(f"the selection {request.selection.as_json()} matches nothing")
    _check_packages_known(session, request.selection.packages)
    campaign = Campaign(
        kind=request.kind,
        name=request.name[:200] or f"{request.kind} by {request.created_by}",
        selection=selection,
        target_location_id=None if target is None else target.id,
        slot_share=share,
        created_by=request.created_by[:100],
        item_count=len(rows),
        total_bytes=sum(size for _, size in rows),
    )
    session.add(campaign)
    session.flush()
    _check_share(session, campaign)
    column = "executed_obs_unit_id" if request.kind == "re-stage" else "raw_data_package_id"
    session.execute(
        insert(CampaignItem),
        [
            {
                "campaign_id": campaign.id,
                column: key,
                "size": size,
                "state": I.PENDING,
                "attempts": 0,
                "bytes_read": 0,
            }
            for key, size in rows
        ],
    )
    return campaign


def _check_options(request: CampaignRequest) -> None:
    if request.kind != "re-stage" and (request.user is not None or request.keep_days is not None):
        raise UsageError("--user and --days are for a re-stage campaign")
    state = request.selection.state
    checkable = {c.value for c in CHECKABLE}
    if request.kind == "re-verify" and state and state.lower() not in checkable:
        known = ", ".join(sorted(checkable))
        raise UsageError(f"a re-verify campaign reads copies that are {known}: not {state!r}")


def _check_packages_known(session: Session, names: tuple[str, ...]) -> None:
    if not names:
        return
    known = set(session.scalars(select(RawDataPackage.name).where(RawDataPackage.name.in_(names))))
    unknown = sorted(set(names) - known)
    if unknown:
        raise NotFoundError(f"no package named {', '.join(unknown)}")


def _check_share(session: Session, campaign_row: Campaign) -> None:
    """A share that is less than one task of the site's slots would be rounded up to a
    whole task: more than asked for. Refused."""
    slots = int(site_settings(session, campaign_row, None).get("task_slots", 8))
    if slots * campaign_row.slot_share < 1:
        raise UsageError(
            f"a share of {campaign_row.slot_share:.0%} of {slots} task slots is less than "
            f"one task: give at least {math.ceil(100 / slots)}% (--share; the site's "
            "pipeline.campaign_share is the most, raise it or task_slots on a small site)"
        )


def _target(session: Session, request: CampaignRequest) -> DataLocation | None:
    if request.kind == "re-stage":
        return processing_location(session, request.to)
    if request.kind == "re-verify":
        if request.to is not None:
            raise UsageError("a re-verify campaign checks copies where they are: no --to")
        return None
    if request.to is None:
        raise UsageError("a re-archive campaign needs --to ARCHIVE_LOCATION")
    target = session.get_one(DataLocation, lookup.location_id(session, request.to))
    if target.location_type != LocationType.LONG_TERM_ARCHIVE:
        raise UsageError(
            f"{target.name} is a {target.location_type} location; re-archive writes to a "
            "LONG_TERM_ARCHIVE"
        )
    return target


def _selected_locations(session: Session, wanted: CampaignSelection, kind: str) -> list[int] | None:
    """Ids of the locations the selection names (re-verify: always archive locations)."""
    query = select(DataLocation.id)
    named = False
    if wanted.location is not None:
        query = query.where(DataLocation.id == lookup.location_id(session, wanted.location))
        named = True
    if wanted.site is not None:
        query = query.where(DataLocation.site_id == lookup.site(session, wanted.site).id)
        named = True
    if kind == "re-verify":
        query = query.where(DataLocation.location_type == LocationType.LONG_TERM_ARCHIVE)
    elif not named:
        return None
    found = sorted(session.scalars(query))
    if not found:
        raise NotFoundError("the selection names no location to work on")
    return found


def _copy_states(wanted: CampaignSelection, kind: str) -> tuple[PhysicalCopyState, ...]:
    if wanted.state is None:
        return CHECKABLE if kind == "re-verify" else (*CHECKABLE, PhysicalCopyState.FAILED)
    try:
        return (PhysicalCopyState(wanted.state.lower()),)
    except ValueError:
        known = [s.value for s in PhysicalCopyState]
        raise UsageError(unknown_name_message("copy state", wanted.state, known)) from None


def _observation_conditions(
    session: Session, wanted: CampaignSelection
) -> list[ColumnElement[bool]]:
    observations = ObservationFilter(
        instrument=wanted.instrument, since=wanted.since, until=wanted.until
    )
    return catalog_conditions(session, observations) + time_conditions(observations)


def _packages(
    session: Session, wanted: CampaignSelection, kind: str, locations: list[int] | None
) -> list[tuple[int, int]]:
    query = (
        select(RawDataPackage.id, RawDataPackage.size)
        .join(ExecutedObsUnit, ExecutedObsUnit.id == RawDataPackage.executed_obs_unit_id)
        .join(ObsUnit, ObsUnit.id == ExecutedObsUnit.obs_unit_id)
        .where(*_observation_conditions(session, wanted))
    )
    if kind == "re-archive":
        query = query.where(RawDataPackage.state == PackageState.ARCHIVED)
    if wanted.packages:
        query = query.where(RawDataPackage.name.in_(wanted.packages))
    if locations is not None or wanted.state is not None:
        at = select(RawDataPackagePhysicalCopy.id).where(
            RawDataPackagePhysicalCopy.raw_data_package_id == RawDataPackage.id,
            RawDataPackagePhysicalCopy.state.in_(_copy_states(wanted, kind)),
        )
        if locations is not None:
            at = at.where(RawDataPackagePhysicalCopy.data_location_id.in_(locations))
        query = query.where(at.exists())
    return [(i, size) for i, size in session.execute(query.order_by(RawDataPackage.id))]


def _observations(session: Session, wanted: CampaignSelection) -> list[tuple[uuid.UUID, int]]:
    """Observations with archived packages (and their archived bytes)."""
    if wanted.state is not None or wanted.location is not None or wanted.site is not None:
        raise UsageError(
            "a re-stage campaign selects observations: --instrument, --since, --until, "
            "--package; --to names the PROCESSING location"
        )
    query = (
        select(ExecutedObsUnit.id, func.sum(RawDataPackage.size))
        .join(RawDataPackage, RawDataPackage.executed_obs_unit_id == ExecutedObsUnit.id)
        .join(ObsUnit, ObsUnit.id == ExecutedObsUnit.obs_unit_id)
        .where(RawDataPackage.state == PackageState.ARCHIVED)
        .where(*_observation_conditions(session, wanted))
        .group_by(ExecutedObsUnit.id)
        .order_by(ExecutedObsUnit.id)
    )
    if wanted.packages:
        query = query.where(RawDataPackage.name.in_(wanted.packages))
    return [(i, int(size or 0)) for i, size in session.execute(query)]


def campaign(session: Session, campaign_id: int) -> Campaign:
    found = session.get(Campaign, campaign_id)
    if found is None:
        raise NotFoundError(f"no campaign {campaign_id}")
    return found


def pause(session: Session, campaign_id: int, note: str | None = None) -> None:
    _change(session, campaign_id, (K.ACTIVE,), K.PAUSED, "pause", note)


def resume(session: Session, campaign_id: int) -> None:
    _change(session, campaign_id, (K.PAUSED,), K.ACTIVE, "resume", None)


def cancel(session: Session, campaign_id: int, note: str | None = None) -> int:
    """Cancel the campaign and its items not started; the number of items cancelled.
    Items running now are cancelled by their task before it starts the next one."""
    _change(session, campaign_id, (K.ACTIVE, K.PAUSED), K.CANCELLED, "cancel", note)
    return _move_items(session, campaign_id, I.PENDING, I.CANCELLED, finished_at=utcnow())


def _move_items(
    session: Session,
    campaign_id: int,
    old: CampaignItemState,
    new: CampaignItemState,
    **values: Any,
) -> int:
    """Every item of the campaign in ``old`` to ``new``; how many moved."""
    ids = list(
        session.scalars(
            select(CampaignItem.id).where(
                CampaignItem.campaign_id == campaign_id, CampaignItem.state == old
            )
        )
    )
    return sum(
        len(move(session, CampaignItem, chunk, old, new, **values)) for chunk in in_chunks(ids)
    )


def _change(
    session: Session,
    campaign_id: int,
    old: tuple[CampaignState, ...],
    new: CampaignState,
    verb: str,
    note: str | None,
) -> None:
    found = campaign(session, campaign_id)
    values: dict[str, Any] = {} if note is None else {"note": note[:2000]}
    if new is K.CANCELLED:
        values["finished_at"] = utcnow()
    if not move(session, Campaign, [campaign_id], old, new, **values):
        raise StateConflict(f"campaign {campaign_id} is {found.state.value}: cannot {verb} it")


def retry(session: Session, campaign_id: int) -> int:
    """Its FAILED items are tried again (tries counted from zero); a DONE campaign is
    ACTIVE again. The number of items."""
    found = campaign(session, campaign_id)
    if found.state is K.CANCELLED:
        raise StateConflict(f"campaign {campaign_id} is cancelled: create a new one")
    again = _move_items(
        session,
        campaign_id,
        I.FAILED,
        I.PENDING,
        attempts=0,
        retry_after=None,
        outcome=None,
        finished_at=None,
    )
    still_open = session.scalar(
        select(func.count(CampaignItem.id)).where(
            CampaignItem.campaign_id == campaign_id, CampaignItem.state.in_(OPEN_ITEMS)
        )
    )
    if still_open and found.state is K.DONE:
        move(session, Campaign, [campaign_id], K.DONE, K.ACTIVE, finished_at=None)
    return again


def campaign_has_open_items() -> Any:
    """A condition on Campaign: it has an item still to do."""
    return (
        select(CampaignItem.id)
        .where(CampaignItem.campaign_id == Campaign.id, CampaignItem.state.in_(OPEN_ITEMS))
        .exists()
    )


def close_finished(session: Session) -> list[int]:
    """Active campaigns with no item left to do are DONE; their ids. The UPDATE checks
    again that no item is open, so an item added meanwhile (a retry, a repair) keeps
    its campaign ACTIVE."""
    open_items = campaign_has_open_items()
    finished = list(
        session.scalars(select(Campaign.id).where(Campaign.state == K.ACTIVE, ~open_items))
    )
    if not finished:
        return []
    return move(
        session, Campaign, finished, K.ACTIVE, K.DONE, only=[~open_items], finished_at=utcnow()
    )


def progress(session: Session, campaign_id: int, failures: int = 10) -> Progress:
    found = campaign(session, campaign_id)
    shown = Progress(
        campaign_id=found.id,
        kind=found.kind,
        name=found.name,
        state=found.state.value,
        share=found.slot_share,
        created_by=found.created_by,
        created_at=found.created_at,
        finished_at=found.finished_at,
        note=found.note,
        items=found.item_count,
        total_bytes=found.total_bytes,
        target=None if found.target_location is None else found.target_location.name,
        selection=dict(found.selection),
    )
    rows = session.execute(
        select(
            CampaignItem.state,
            CampaignItem.outcome,
            func.count(CampaignItem.id),
            func.coalesce(func.sum(CampaignItem.size), 0),
            func.coalesce(func.sum(CampaignItem.bytes_read), 0),
        )
        .where(CampaignItem.campaign_id == campaign_id)
        .group_by(CampaignItem.state, CampaignItem.outcome)
    )
    states: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for state, outcome, count, size, read in rows:
        states[state.value] += count
        if outcome is not None:
            outcomes[outcome] += count
        if state not in OPEN_ITEMS:
            shown.done_bytes += int(size)
        shown.bytes_read += int(read)
    shown.by_state = dict(sorted(states.items()))
    shown.by_outcome = dict(sorted(outcomes.items()))
    shown.failures = _failures(session, campaign_id, failures)
    return shown


def _failures(session: Session, campaign_id: int, limit: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(CampaignItem, RawDataPackage.name)
        .outerjoin(RawDataPackage, RawDataPackage.id == CampaignItem.raw_data_package_id)
        .where(CampaignItem.campaign_id == campaign_id, CampaignItem.state == I.FAILED)
        .order_by(CampaignItem.id)
        .limit(limit)
    )
    return [(name or str(item.executed_obs_unit_id), item.detail or "") for item, name in rows]


def campaigns(
    session: Session, *, open_only: bool = False, limit: int | None = None
) -> list[Progress]:
    """Campaigns with their progress, oldest first; with ``limit``, the newest that many,
    newest first."""
    query = select(Campaign.id).order_by(Campaign.id)
    if limit is not None:
        query = select(Campaign.id).order_by(Campaign.id.desc()).limit(limit)
    if open_only:
        query = query.where(Campaign.state.in_((K.ACTIVE, K.PAUSED)))
    return [progress(session, i, failures=0) for i in session.scalars(query)]


def campaign_site(session: Session, campaign_row: Campaign) -> str | None:
    """The site whose settings govern the campaign: that of its target, else that of the
    first location it selected; None for neither."""
    located = campaign_row.target_location_id or next(
        iter(campaign_row.selection.get("location_ids") or ()), None
    )
    if located is None:
        return None
    return session.scalar(
        select(Site.name)
        .join(DataLocation, DataLocation.site_id == Site.id)
        .where(DataLocation.id == located)
    )


def site_settings(session: Session, campaign_row: Campaign, site: str | None) -> dict[str, Any]:
    """The pipeline settings that govern the campaign: its site's (see
    :func:`campaign_site`), else ``site``'s, else those of the first site."""
    name = campaign_site(session, campaign_row) or site
    query = select(Site.settings)
    if name is not None:
        query = query.where(Site.name == name)
    settings = session.scalars(query.order_by(Site.id)).first() or {}
    return dict(settings.get("pipeline", {}))


def max_share(session: Session, to: str | None) -> float:
    """The site's campaign_share (that of the target's site when one is named)."""
    query = select(Site.settings)
    if to is not None:
        query = query.join(DataLocation, DataLocation.site_id == Site.id).where(
            DataLocation.name == to
        )
    values = [
        float((s or {}).get("pipeline", {}).get("campaign_share", 0.25))
        for s in session.scalars(query)
    ]
    if not values:
        if to is not None:
            lookup.location_id(session, to)  # raises NotFoundError with the known names
        return 0.25
    return min(values)
