"""Reading ops-db: the catalog, observations, files with every copy, packages with their
members, transfers, locations with their usage, the chain of custody, pipeline status.

Every list is paged by keyset: ``next_after`` of one page is ``after`` of the next.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from ccat_hpc.access.policy import Caller
from ccat_hpc.api.deps import SessionsDep, needs
from ccat_hpc.api.routes.common import DEFAULT_PAGE, MAX_ID, Limit, NameQuery, time_field
from ccat_hpc.api.snapshot import StatusSnapshots
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import ObservationStatus, PackageState, RawDataFileState, TransferState
from ccat_hpc.inventory.catalog import CatalogOverview, catalog_overview
from ccat_hpc.inventory.files import FileDetail, FileFilter, FileRow, list_files, show_file
from ccat_hpc.inventory.observations import (
    ObservationDetail,
    ObservationFilter,
    ObservationRow,
    list_observations,
    show_observation,
)
from ccat_hpc.inventory.packages import (
    PackageRow,
    TransferRow,
    list_packages,
    list_transfers,
    show_package,
)
from ccat_hpc.inventory.sites import SitesOverview, sites_overview
from ccat_hpc.inventory.trace import trace
from ccat_hpc.inventory.transfer_rates import MAX_HOURS, RateSeries, transfer_rates
from ccat_hpc.status import copy_counts

router = APIRouter(prefix="/api/v1", tags=["read"])
Reader = Annotated[Caller, Depends(needs("read"))]
FileId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ObservationPage(BaseModel):
    items: list[ObservationRow]
    next_after: str | None


class FilePage(BaseModel):
    items: list[FileRow]
    next_after: int | None


class PackagePage(BaseModel):
    items: list[PackageRow]
    next_after: int | None


class TransferPage(BaseModel):
    items: list[TransferRow]
    next_after: int | None


class Me(BaseModel):
    username: str
    roles: list[str]
    scopes: list[str]
    instrument: str | None
    token: str | None


@router.get("/me", response_model=Me, tags=["access"])
def me(caller: Reader) -> Me:
    """Who the token belongs to, their roles and the scopes in effect."""
    return Me(
        username=caller.username,
        roles=sorted(caller.roles),
        scopes=sorted(caller.scopes),
        instrument=caller.instrument,
        token=caller.token,
    )


@router.get("/catalog", response_model=CatalogOverview)
def catalog(caller: Reader, factory: SessionsDep) -> CatalogOverview:
    """Instruments with modules, observing programs with obs units, sources."""
    with transaction(factory) as session:
        return catalog_overview(session)


@router.get("/observations", response_model=ObservationPage)
def observations(
    caller: Reader,
    factory: SessionsDep,
    program: NameQuery = None,
    obs_unit: NameQuery = None,
    instrument: NameQuery = None,
    module: NameQuery = None,
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601 or a date")] = None,
    until: Annotated[str | None, Query(max_length=64, description="a date: that whole day")] = None,
    status: Annotated[list[ObservationStatus] | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
    after: uuid.UUID | None = None,
) -> ObservationPage:
    """Executions of obs units, oldest first, with their file counts."""
    wanted = ObservationFilter(
        program,
        obs_unit,
        instrument,
        module,
        time_field("since", since),
        time_field("until", until, end_of_day=True),
        tuple(status or ()),
    )
    with transaction(factory) as session:
        page = list_observations(session, wanted, limit, after)
    return ObservationPage(items=page.items, next_after=_text(page.next_after))


@router.get("/observations/{execution_id}", response_model=ObservationDetail)
def observation(caller: Reader, factory: SessionsDep, execution_id: uuid.UUID) -> ObservationDetail:
    """One execution: its filings per module, files by state, copies, packages."""
    with transaction(factory) as session:
        return show_observation(session, execution_id)


@router.get("/files", response_model=FilePage)
def files(
    caller: Reader,
    factory: SessionsDep,
    execution: uuid.UUID | None = None,
    state: Annotated[list[RawDataFileState] | None, Query()] = None,
    location: NameQuery = None,
    module: NameQuery = None,
    path: Annotated[str | None, Query(min_length=1, max_length=1024, description="a glob")] = None,
    limit: Limit = DEFAULT_PAGE,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> FilePage:
    """Raw data files in id order, with the locations that hold them."""
    wanted = FileFilter(tuple(state or ()), location, execution, module, path)
    with transaction(factory) as session:
        page = list_files(session, wanted, limit, after)
    return FilePage(items=page.items, next_after=_number(page.next_after))


@router.get("/files/{file_id}", response_model=FileDetail)
def file(caller: Reader, factory: SessionsDep, file_id: FileId) -> FileDetail:
    """One file: every physical copy with its state and last verification, its package
    and its checksum checks."""
    with transaction(factory) as session:
        return show_file(session, file_id)


@router.get("/files/{file_id}/trace", response_model=dict[str, Any])
def file_trace(caller: Reader, factory: SessionsDep, file_id: FileId) -> dict[str, Any]:
    """The chain of custody of one file: copies, package, transfers, archive uploads."""
    with transaction(factory) as session:
        return trace(session, str(file_id))


@router.get("/trace", response_model=dict[str, Any])
def trace_anything(
    caller: Reader,
    factory: SessionsDep,
    what: Annotated[str, Query(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    """The chain of custody of a file (id or path) or a package (rdp:ID, name, path)."""
    with transaction(factory) as session:
        return trace(session, what)


@router.get("/packages", response_model=PackagePage)
def packages(
    caller: Reader,
    factory: SessionsDep,
    execution: uuid.UUID | None = None,
    state: PackageState | None = None,
    limit: Limit = DEFAULT_PAGE,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> PackagePage:
    """RawDataPackages in id order, with their member counts."""
    with transaction(factory) as session:
        page = list_packages(session, execution=execution, state=state, limit=limit, after=after)
    return PackagePage(items=page.items, next_after=_number(page.next_after))


@router.get("/packages/{package}", response_model=dict[str, Any])
def package(
    caller: Reader,
    factory: SessionsDep,
    package: Annotated[str, Path(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    """One package (rdp:ID or its name): copies, transfers and its members."""
    with transaction(factory) as session:
        return show_package(session, package)


@router.get("/transfers", response_model=TransferPage)
def transfers(
    caller: Reader,
    factory: SessionsDep,
    state: TransferState | None = None,
    limit: Limit = DEFAULT_PAGE,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> TransferPage:
    """Buffer-to-buffer transfers, newest first."""
    with transaction(factory) as session:
        page = list_transfers(session, state=state, limit=limit, after=after)
    return TransferPage(items=page.items, next_after=_number(page.next_after))


@router.get("/transfers/rates", response_model=list[RateSeries])
def rates(
    caller: Reader,
    factory: SessionsDep,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS)] = 24,
) -> list[RateSeries]:
    """Bytes per second of finished transfers per route, hour by hour."""
    with transaction(factory) as session:
        return transfer_rates(session, utcnow(), hours)


class Locations(BaseModel):
    sites: SitesOverview
    usage: list[dict[str, Any]]


@router.get("/locations", response_model=Locations)
def locations(caller: Reader, factory: SessionsDep) -> Locations:
    """Sites and their locations, and the copies (count and bytes) each holds by state."""
    with transaction(factory) as session:
        return Locations(sites=sites_overview(session), usage=copy_counts(session))


@router.get("/status", response_model=dict[str, Any])
def status(request: Request, caller: Reader, factory: SessionsDep) -> dict[str, Any]:
    """The pipeline: items per step and state, failures, running batches, open breakers,
    buffer fill, campaigns and the scrub (as ``ccat-hpc status --json``), taken at
    ``as_of``: at most the server's ``status_max_age_seconds`` old."""
    snapshots: StatusSnapshots = request.app.state.status
    return snapshots.get(factory)


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _number(value: str | int | None) -> int | None:
    return None if value is None else int(value)
