"""The endpoint each waiting item goes to, and which items a circuit-breaker gate lets go.

A transfer goes along its route; an upload to the archive location of the site it
arrived at. The scheduler's breakers (:mod:`ccat_hpc.scheduler.breakers`) decide which
endpoints are blocked or probing; :func:`admit` applies that to the items a step would
claim (pure).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import DataTransferPackage, DataTransferRoute
from ccat_hpc.db.states import LocationType
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


def admit(items: Items, endpoints: Mapping[int, EndpointKey], gate: Gate) -> Admitted:
    """The items the gate lets go, in their order: none to a blocked endpoint, the first
    one only to a probing endpoint."""
    admitted: list[tuple[int, int]] = []
    probes: dict[EndpointKey, int] = {}
    for item in items:
        key = endpoints.get(item[0])
        if key in gate.blocked:
            continue
        if key in gate.probing:
            if key in probes:
                continue
            probes[key] = item[0]
        admitted.append(item)
    return Admitted(admitted, frozenset(probes.values()))


def gated(session: Session, items: Items, endpoints_of: EndpointsOf, gate: Gate) -> Admitted:
    """``items`` through ``gate`` (no query when the gate is open)."""
    if gate.open:
        return Admitted(items)
    return admit(items, endpoints_of(session, [i for i, _ in items]), gate)


def _routes(session: Session, dtp_ids: Sequence[int]) -> list[tuple[int, int, str, int]]:
    rows: list[tuple[int, int, str, int]] = []
    for start in range(0, len(dtp_ids), 5000):
        rows += session.execute(
            select(
                DataTransferPackage.id,
                DataTransferRoute.id,
                DataTransferRoute.name,
                DataTransferRoute.destination_site_id,
            )
            .join(DataTransferRoute, DataTransferRoute.id == DataTransferPackage.route_id)
            .where(DataTransferPackage.id.in_(dtp_ids[start : start + 5000]))
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
