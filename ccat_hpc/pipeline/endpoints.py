"""The endpoint each waiting item goes to, and which items a circuit-breaker gate lets go.

A transfer goes along its route; an upload to the archive location of the site it
arrived at. The scheduler's breakers (:mod:`ccat_hpc.scheduler.breakers`) decide which
endpoints are blocked or probing; :func:`admit` applies that to the items a step would
claim (pure).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DataTransferPackage, DataTransferRoute
from ccat_hpc.db.states import LocationType
from ccat_hpc.db.transitions import in_chunks
from ccat_hpc.pipeline.placement import best_location

ROUTE = "route"
LOCATION = "location"


@dataclass(frozen=True, order=True)
class EndpointKey:
    """A route or a DataLocation, by id; ``name`` is for people and not compared."""

    scope: str
    target_id: int
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.scope} {self.name or self.target_id}"


@dataclass(frozen=True)
class Gate:
    """Endpoints that get no work, and endpoints that get one probe item."""

    blocked: frozenset[EndpointKey] = frozenset()
    probing: frozenset[EndpointKey] = frozenset()

    @property
    def open(self) -> bool:
        return not (self.blocked or self.probing)


Items = Sequence[tuple[int, int]]
#: the endpoint of each item id (items without one are never held back)
EndpointsOf = Callable[[Session, Sequence[int]], Mapping[int, EndpointKey]]


class Admitted(list[tuple[int, int]]):
    """Items a gate let go; ``probes`` are those sent to test a half-open endpoint (their
    try does not count towards their own retry limit: the endpoint is on trial)."""

    def __init__(self, items: Items = (), probes: frozenset[int] = frozenset()) -> None:
        super().__init__(items)
        self.probes = probes


def admit(
    items: Items,
    endpoints: Mapping[int, EndpointKey],
    gate: Gate,
    last_tried: Mapping[int, datetime | None] | None = None,
) -> Admitted:
    """The items the gate lets go, in their order: none to a blocked endpoint, one to a
    probing endpoint: the one tried longest ago (never tried first; by ``last_tried``,
    the end of each item's last backoff), so probes rotate and one item that keeps
    failing by itself does not hold its endpoint back."""
    tried = last_tried or {}
    probes: dict[EndpointKey, int] = {}
    for position, (item_id, _) in enumerate(items):
        key = endpoints.get(item_id)
        if key in gate.probing:
            chosen = probes.get(key)
            if chosen is None or _sooner(tried.get(item_id), tried.get(items[chosen][0])):
                probes[key] = position
    chosen_positions = set(probes.values())
    admitted = [
        item
        for position, item in enumerate(items)
        if endpoints.get(item[0]) not in gate.blocked | gate.probing or position in chosen_positions
    ]
    return Admitted(admitted, frozenset(items[p][0] for p in chosen_positions))


def _sooner(candidate: datetime | None, chosen: datetime | None) -> bool:
    """Whether an item last tried at ``candidate`` goes before one tried at ``chosen``."""
    if chosen is None:
        return False
    return candidate is None or candidate < chosen


def gated(session: Session, items: Items, endpoints_of: EndpointsOf, gate: Gate) -> Admitted:
    """``items`` (DTPs) through ``gate`` (no query when the gate is open)."""
    if gate.open:
        return Admitted(items)
    ids = [i for i, _ in items]
    return admit(items, endpoints_of(session, ids), gate, _retry_after(session, ids))


def _retry_after(session: Session, dtp_ids: Sequence[int]) -> dict[int, datetime | None]:
    found: dict[int, datetime | None] = {}
    for chunk in in_chunks(dtp_ids):
        query = select(DataTransferPackage.id, DataTransferPackage.retry_after).where(
            DataTransferPackage.id.in_(chunk)
        )
        found |= {i: at for i, at in session.execute(query)}
    return found


def _routes(session: Session, dtp_ids: Sequence[int]) -> list[tuple[int, int, str, int]]:
    rows: list[tuple[int, int, str, int]] = []
    for chunk in in_chunks(dtp_ids):
        rows += session.execute(
            select(
                DataTransferPackage.id,
                DataTransferRoute.id,
                DataTransferRoute.name,
                DataTransferRoute.destination_site_id,
            )
            .join(DataTransferRoute, DataTransferRoute.id == DataTransferPackage.route_id)
            .where(DataTransferPackage.id.in_(chunk))
        ).all()
    return rows


def route_endpoints(session: Session, dtp_ids: Sequence[int]) -> dict[int, EndpointKey]:
    """The route each DTP travels."""
    return {
        dtp: EndpointKey(ROUTE, route, name) for dtp, route, name, _ in _routes(session, dtp_ids)
    }


def archive_endpoints(session: Session, dtp_ids: Sequence[int]) -> dict[int, EndpointKey]:
    """The archive location each DTP's packages go to (that of its destination site)."""
    archives: dict[int, EndpointKey | None] = {}
    found: dict[int, EndpointKey] = {}
    for dtp, _, _, site_id in _routes(session, dtp_ids):
        if site_id not in archives:
            location = best_location(session, site_id, LocationType.LONG_TERM_ARCHIVE)
            archives[site_id] = (
                None if location is None else EndpointKey(LOCATION, location.id, location.name)
            )
        key = archives[site_id]
        if key is not None:
            found[dtp] = key
    return found
