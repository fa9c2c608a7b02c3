"""Staging for scientists: request archived data to PROCESSING storage, follow it (a
long-poll waits for READY), release it, list one's requests.

A scientist acts on their own requests only, within their quota; an operator (scope
``staging:all``) on anyone's. Every write is recorded in SystemLog with its user.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.policy import AccessDenied, Caller, may_act_for
from ccat_hpc.api.deps import CallerDep, SessionsDep, SettingsDep, audit
from ccat_hpc.api.limits import WaitCounter
from ccat_hpc.api.routes.common import MAX_ID, Body, existing_user, time_field
from ccat_hpc.db.session import transaction
from ccat_hpc.inventory.staging import (
    FINAL,
    MAX_LISTED,
    describe,
    list_requests,
    location_root,
    owner_of,
)
from ccat_hpc.pipeline.staging_request import Selection, create_request, release

router = APIRouter(prefix="/api/v1/staging", tags=["staging"])
StagingId = Annotated[int, Path(ge=1, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
#: a long-poll looks at the request again after 0.5 s, then ever less often, up to 5 s
FIRST_POLL_SECONDS = 0.5
LAST_POLL_SECONDS = 5.0


class StagingBody(Body):
    """What to stage: every field given narrows the selection (one names observations)."""

    program: Name | None = None
    obs_unit: Name | None = None
    source: Name | None = None
    instrument: Name | None = None
    module: Name | None = None
    since: Annotated[str, Field(max_length=64)] | None = None
    until: Annotated[str, Field(max_length=64)] | None = None
    executions: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)
    files: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    location: Name | None = None
    days: Annotated[float, Field(gt=0, le=3650)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    user: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class NewStaging(BaseModel):
    id: int
    folder: str
    files: int
    bytes: int
    already_staged: int
    release_after: str


class StagingRow(BaseModel):
    id: int
    name: str
    user: str | None
    state: str
    marker: str
    folder: str
    location: str
    files: int
    bytes: int
    selection: dict[str, Any]
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    release_after: str | None
    retry_after: str | None
    reason: str | None


class Staging(StagingRow):
    log: list[str]


class Release(BaseModel):
    id: int
    state: str
    folder_problem: str | None


def _staging_caller(caller: CallerDep) -> Caller:
    if not may_act_for(caller, caller.username):
        raise AccessDenied(f"{caller.username} may not do this: it needs the scope 'staging:own'")
    return caller


Stager = Annotated[Caller, Depends(_staging_caller)]


def _check_owner(caller: Caller, owner: str | None) -> None:
    if owner is None and "staging:all" in caller.scopes:
        return  # a request of no one (its user was removed): operators act on it
    if owner is None or not may_act_for(caller, owner):
        raise AccessDenied(f"{caller.username} may act on their own staging requests only")


@router.post("", response_model=NewStaging, status_code=201)
def request_staging(
    request: Request, body: StagingBody, caller: Stager, factory: SessionsDep
) -> NewStaging:
    """Ask for data to be staged; the scheduler stages it as a job."""
    return stage_for(request, caller, factory, body)


def stage_for(
    request: Request, caller: Caller, factory: sessionmaker[Session], body: StagingBody
) -> NewStaging:
    """A staging request by ``caller`` (for themselves, or an operator for anyone),
    recorded in SystemLog: what the API and the web UI both do."""
    owner = body.user or caller.username
    _check_owner(caller, owner)
    wanted = Selection(
        body.program,
        body.obs_unit,
        body.source,
        body.instrument,
        body.module,
        time_field("since", body.since),
        time_field("until", body.until, end_of_day=True),
        tuple(body.executions),
        body.files,
    )
    with transaction(factory) as session:
        if owner != caller.username:
            existing_user(session, owner)
        made = create_request(
            session, wanted, owner, location=body.location, days=body.days, name=body.name
        )
        root = location_root(session, made.id)
        audit(session, caller, request, f"staging request {made.id} for {owner}", staging=made.id)
    return NewStaging(
        id=made.id,
        folder=f"{root}/{made.folder}" if root else made.folder,
        files=made.files,
        bytes=made.bytes,
        already_staged=made.already_staged,
        release_after=made.release_after.isoformat(timespec="seconds"),
    )


class StagingPage(BaseModel):
    items: list[StagingRow]
    next_after: int | None


@router.get("", response_model=StagingPage)
def list_staging(
    caller: Stager,
    factory: SessionsDep,
    user: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    everyone: Annotated[bool, Query(alias="all", description="Also finished ones")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> StagingPage:
    """Requests newest first: the caller's own, or (operators) a user's or everyone's."""
    if "staging:all" not in caller.scopes:
        _check_owner(caller, user or caller.username)
        user = caller.username
    with transaction(factory) as session:
        page = list_requests(session, user, show_all=everyone, limit=limit, after=after)
    rows = [StagingRow.model_validate(row) for row in page.items]
    return StagingPage(
        items=rows, next_after=None if page.next_after is None else int(page.next_after)
    )


@router.get("/{staging_id}", response_model=Staging)
def show_staging(caller: Stager, factory: SessionsDep, staging_id: StagingId) -> dict[str, Any]:
    """One request: state, folder (READY, FAILED or STAGING), files, times, log."""
    with transaction(factory) as session:
        _check_owner(caller, owner_of(session, staging_id))
        return describe(session, staging_id)


@router.get("/{staging_id}/wait", response_model=Staging)
async def wait_staging(
    request: Request,
    caller: Stager,
    factory: SessionsDep,
    settings: SettingsDep,
    staging_id: StagingId,
    timeout: Annotated[float, Query(ge=0, le=3600, description="Seconds to wait at most")] = 30,
) -> dict[str, Any]:
    """Long-poll: answers once the request is READY, FAILED, cancelled or released, or
    after ``timeout`` seconds (at most the server's limit) with its state then. A
    token holds at most a few waits at once (429 beyond)."""
    deadline = time.monotonic() + min(timeout, settings.wait_max_seconds)
    waits: WaitCounter = request.app.state.waits
    with waits.one(caller.token or caller.username):
        pause = FIRST_POLL_SECONDS
        while True:
            shown = await run_in_threadpool(_look, caller, factory, staging_id)
            left = deadline - time.monotonic()
            if shown["state"] in FINAL or left <= 0 or await request.is_disconnected():
                return shown
            await anyio.sleep(min(pause, left))
            pause = min(LAST_POLL_SECONDS, pause * 2)


def _look(caller: Caller, factory: sessionmaker[Session], staging_id: int) -> dict[str, Any]:
    with transaction(factory) as session:
        _check_owner(caller, owner_of(session, staging_id))
        return describe(session, staging_id)


@router.post("/{staging_id}/release", response_model=Release)
def release_staging(
    request: Request, caller: Stager, factory: SessionsDep, staging_id: StagingId
) -> Release:
    """Done with the data: its folder goes, its files are cleaned up once no other
    request uses them; a request still waiting is cancelled."""
    return release_for(request, caller, factory, staging_id)


def release_for(
    request: Request, caller: Caller, factory: sessionmaker[Session], staging_id: int
) -> Release:
    """Release the caller's request (or, for an operator, anyone's), recorded in SystemLog."""
    with transaction(factory) as session:
        _check_owner(caller, owner_of(session, staging_id))
        released = release(session, staging_id)
        audit(
            session,
            caller,
            request,
            f"released staging request {staging_id}",
            staging=staging_id,
            state=released.state.value,
        )
    return Release(
        id=staging_id, state=released.state.value, folder_problem=released.folder_problem
    )
