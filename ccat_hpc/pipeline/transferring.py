"""The transfer step's planning: which DTPs go, and each hop of their route.

A DTP goes when it is BUILT and has a route. Its route decides the hops: a direct route
is one hop, origin → destination site; a relay route two, origin → relay site →
destination site, each recorded as its own DataTransfer. Where the DTP is now is where
its VERIFIED copy furthest along the route is, so a rerun after a failed second hop
starts from the relay site. The destination of a hop is the route's pinned location
(a custom route, last hop) or the active BUFFER of the hop's site with the best
priority.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DataTransferRoute,
    Site,
)
from ccat_hpc.db.states import PackageState, PhysicalCopyState, RouteType
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.placement import buffer_for_writing


@dataclass(frozen=True)
class RouteShape:
    """What the hop rules need of a route (pure)."""

    route_type: RouteType
    origin_site_id: int
    destination_site_id: int
    relay_site_id: int | None = None


def sites_in_order(route: RouteShape) -> list[int]:
    """The sites a DTP passes, origin first (pure)."""
    if route.route_type == RouteType.RELAY and route.relay_site_id is not None:
        return [route.origin_site_id, route.relay_site_id, route.destination_site_id]
    return [route.origin_site_id, route.destination_site_id]


def next_site(route: RouteShape, sites_with_copy: set[int]) -> tuple[int, int] | None:
    """(from site, to site) of the next hop, or None when the DTP has arrived (pure).

    The DTP is at the last site of the route that holds a verified copy of it.
    """
    order = sites_in_order(route)
    reached = [index for index, site in enumerate(order) if site in sites_with_copy]
    if not reached:
        return None
    here = max(reached)
    if here == len(order) - 1:
        return None
    return order[here], order[here + 1]


def route_shape(route: DataTransferRoute) -> RouteShape:
    return RouteShape(
        route.route_type, route.origin_site_id, route.destination_site_id, route.relay_site_id
    )


@dataclass(frozen=True)
class Hop:
    origin: DataLocation
    destination: DataLocation


def verified_copies(session: Session, dtp_id: int) -> list[DataTransferPackagePhysicalCopy]:
    return list(
        session.scalars(
            select(DataTransferPackagePhysicalCopy).where(
                DataTransferPackagePhysicalCopy.data_transfer_package_id == dtp_id,
                DataTransferPackagePhysicalCopy.state == PhysicalCopyState.VERIFIED,
            )
        )
    )


class NoRoom(str):
    """The reason a hop waits: every buffer of the next site is full (not a failure)."""


def next_hop(session: Session, dtp: DataTransferPackage) -> Hop | str | None:
    """The next hop; None when the DTP has arrived; a reason (str) when it cannot go
    (a :class:`NoRoom` when it only has to wait for room)."""
    if dtp.route_id is None:
        return f"{dtp.name}: has no route"
    route = session.get_one(DataTransferRoute, dtp.route_id)
    held = {
        copy.data_location.site_id: copy.data_location for copy in verified_copies(session, dtp.id)
    }
    hop = next_site(route_shape(route), set(held))
    if hop is None:
        return (
            None
            if route.destination_site_id in held
            else f"{dtp.name}: no verified copy on its route"
        )
    origin_site, destination_site = hop
    destination = _hop_destination(session, route, destination_site)
    if destination is None:
        site = session.get_one(Site, destination_site)
        return NoRoom(f"no active BUFFER with room at site {site.name}")
    return Hop(held[origin_site], destination)


def _hop_destination(
    session: Session, route: DataTransferRoute, site_id: int
) -> DataLocation | None:
    if site_id == route.destination_site_id and route.destination_location_id is not None:
        return session.get_one(DataLocation, route.destination_location_id)
    return buffer_for_writing(session, site_id)


def transfers_waiting(session: Session, site: str | None) -> list[tuple[int, int]]:
    """(id, size) of every BUILT DTP with a route (leaving ``site``), oldest first."""
    query = select(DataTransferPackage.id, DataTransferPackage.size).where(
        DataTransferPackage.state == PackageState.BUILT,
        DataTransferPackage.route_id.is_not(None),
        step_items.ready_now(DataTransferPackage),
    )
    if site is not None:
        query = query.join(
            DataTransferRoute, DataTransferRoute.id == DataTransferPackage.route_id
        ).join(Site, and_(Site.id == DataTransferRoute.origin_site_id, Site.name == site))
    ordered = query.order_by(DataTransferPackage.priority, DataTransferPackage.id)
    return [(i, size) for i, size in session.execute(ordered)]
