"""Operators' campaigns: create, list, inspect, pause, resume, cancel (scope
``campaigns``; reading them needs ``read``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.policy import Caller, require_scope
from ccat_hpc.api.deps import SessionsDep, audit, needs
from ccat_hpc.api.routes.common import MAX_ID, Body, existing_user, time_field
from ccat_hpc.db.session import transaction
from ccat_hpc.jobs.campaign_batch import queue_campaign
from ccat_hpc.pipeline import campaigns as campaign_rules
from ccat_hpc.pipeline.campaigns import CampaignRequest, CampaignSelection

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])
Operator = Annotated[Caller, Depends(needs("campaigns"))]
Reader = Annotated[Caller, Depends(needs("read"))]
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class CampaignBody(Body):
    """A campaign of ``kind`` over a selection (every field given narrows it)."""

    kind: Literal["re-archive", "re-verify", "re-stage"]
    site: Name | None = None
    location: Name | None = None
    since: Annotated[str, Field(max_length=64)] | None = None
    until: Annotated[str, Field(max_length=64)] | None = None
    instrument: Name | None = None
    state: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    packages: list[Name] = Field(default_factory=list, max_length=10_000)
    to: Name | None = None
    share: Annotated[float, Field(gt=0, le=1)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    user: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    days: Annotated[float, Field(gt=0, le=3650)] | None = None


class Queued(BaseModel):
    id: int
    kind: str
    items: int
    bytes: int
    share: float
    tasks_at_once: int


class Note(Body):
    reason: Annotated[str, Field(max_length=500)] | None = None


class Control(BaseModel):
    id: int
    state: str
    cancelled_items: int | None = None


@router.post("", response_model=Queued, status_code=201)
def create(request: Request, body: CampaignBody, caller: Operator, factory: SessionsDep) -> Any:
    """Queue a campaign; the scheduler runs its items as throttled job arrays."""
    return queue_for(request, caller, factory, body)


def queue_for(
    request: Request, caller: Caller, factory: sessionmaker[Session], body: CampaignBody
) -> dict[str, Any]:
    """Queue the campaign ``body`` asks for, by ``caller``, recorded in SystemLog."""
    require_scope(caller, "campaigns")
    selection = CampaignSelection(
        site=body.site,
        location=body.location,
        since=time_field("since", body.since),
        until=time_field("until", body.until, end_of_day=True),
        instrument=body.instrument,
        state=body.state,
        packages=tuple(body.packages),
    )
    wanted = CampaignRequest(
        kind=body.kind,
        selection=selection,
        to=body.to,
        share=body.share,
        created_by=caller.username,
        name=body.name,
        user=body.user,
        keep_days=body.days,
    )
    with transaction(factory) as session:
        if body.user is not None and body.user != caller.username:
            existing_user(session, body.user)
        shown = queue_campaign(session, wanted)
        audit(
            session, caller, request, f"campaign {shown['id']} ({body.kind})", campaign=shown["id"]
        )
    return shown


@router.get("", response_model=list[dict[str, Any]])
def list_campaigns(
    caller: Reader,
    factory: SessionsDep,
    everyone: Annotated[bool, Query(alias="all", description="Also finished ones")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Campaigns with their progress, newest first: open ones unless ``all``."""
    with transaction(factory) as session:
        found = campaign_rules.campaigns(session, open_only=not everyone, limit=limit)
        return [c.as_json() for c in found]


@router.get("/{campaign_id}", response_model=dict[str, Any])
def show(caller: Reader, factory: SessionsDep, campaign_id: CampaignId) -> dict[str, Any]:
    """One campaign: items by state and outcome, bytes done, failures with reasons."""
    with transaction(factory) as session:
        return campaign_rules.progress(session, campaign_id).as_json()


def control(
    request: Request,
    caller: Caller,
    factory: sessionmaker[Session],
    campaign_id: int,
    verb: str,
    note: Note | None,
) -> Control:
    """Pause, resume or cancel a campaign, recorded in SystemLog."""
    require_scope(caller, "campaigns")
    reason = None if note is None else note.reason
    cancelled = None
    with transaction(factory) as session:
        if verb == "pause":
            campaign_rules.pause(session, campaign_id, reason)
        elif verb == "resume":
            campaign_rules.resume(session, campaign_id)
        else:
            cancelled = campaign_rules.cancel(session, campaign_id, reason)
        state = campaign_rules.campaign(session, campaign_id).state
        audit(session, caller, request, f"campaign {campaign_id} {verb}", campaign=campaign_id)
    return Control(id=campaign_id, state=str(state), cancelled_items=cancelled)


@router.post("/{campaign_id}/pause", response_model=Control)
def pause(
    request: Request,
    caller: Operator,
    factory: SessionsDep,
    campaign_id: CampaignId,
    note: Note | None = None,
) -> Control:
    """Stop claiming items; running tasks give back the items they have not started."""
    return control(request, caller, factory, campaign_id, "pause", note)


@router.post("/{campaign_id}/resume", response_model=Control)
def resume(
    request: Request, caller: Operator, factory: SessionsDep, campaign_id: CampaignId
) -> Control:
    """Claim items again."""
    return control(request, caller, factory, campaign_id, "resume", None)


@router.post("/{campaign_id}/cancel", response_model=Control)
def cancel(
    request: Request,
    caller: Operator,
    factory: SessionsDep,
    campaign_id: CampaignId,
    note: Note | None = None,
) -> Control:
    """Cancel every item not done."""
    return control(request, caller, factory, campaign_id, "cancel", note)
