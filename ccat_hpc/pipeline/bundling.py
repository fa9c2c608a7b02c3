"""The bundle step's planning: RDPs waiting in a BUFFER → DataTransferPackages (DTPs).

An RDP waits to be bundled when it is BUILT, in no DTP yet, and its VERIFIED copy is
in a BUFFER whose site has an active route to another site. The route is the active
one from that site with the best priority (a custom route that pins an origin location
applies to that location only). RDPs of one buffer and route, oldest first, fill a DTP
until it holds the site's ``bundle_target_bytes``; what is left over waits for more,
unless its oldest RDP has waited ``bundle_max_wait_minutes``: then it goes as it is,
so a quiet night strands nothing. An RDP larger than the target goes alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    DataTransferPackage,
    DataTransferRoute,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.states import LocationType, PackageState, PhysicalCopyState
from ccat_hpc.sites.schema import PipelineSettings


@dataclass(frozen=True)
class WaitingPackage:
    package_id: int
    size: int
    #: when its copy in the buffer was verified: since then it waits
    built_at: datetime


@dataclass(frozen=True)
class BundleKey:
    location_id: int
    route_id: int


def plan_bundles(
    waiting: Sequence[WaitingPackage],
    target_bytes: int,
    max_wait: timedelta,
    now: datetime,
) -> list[list[WaitingPackage]]:
    """Full bundles, then the rest if its oldest RDP waited too long (pure)."""
    bundles: list[list[WaitingPackage]] = []
    current: list[WaitingPackage] = []
    size = 0
    for item in sorted(waiting, key=lambda w: (w.built_at, w.package_id)):
        current.append(item)
        size += item.size
        if size >= target_bytes:
            bundles.append(current)
            current, size = [], 0
    if current and now - current[0].built_at >= max_wait:
        bundles.append(current)
    return bundles


def route_for(session: Session, location: DataLocation) -> DataTransferRoute | None:
    """The active route out of ``location``'s site with the best priority, or None."""
    return session.scalars(
        select(DataTransferRoute)
        .where(
            DataTransferRoute.origin_site_id == location.site_id,
            DataTransferRoute.destination_site_id != location.site_id,
            DataTransferRoute.active.is_(True),
            or_(
                DataTransferRoute.origin_location_id.is_(None),
                DataTransferRoute.origin_location_id == location.id,
            ),
        )
        .order_by(
            DataTransferRoute.origin_location_id.is_(None),  # a pinned location first
            DataTransferRoute.priority,
            DataTransferRoute.id,
        )
        .limit(1)
    ).first()


def packages_to_bundle(session: Session, site: str | None) -> dict[BundleKey, list[WaitingPackage]]:
    """BUILT RDPs in no DTP, by the BUFFER holding their verified copy and their route."""
    query = (
        select(
            RawDataPackage.id,
            RawDataPackage.size,
            RawDataPackagePhysicalCopy.verified_at,
            DataLocation,
        )
        .join(
            RawDataPackagePhysicalCopy,
            RawDataPackagePhysicalCopy.raw_data_package_id == RawDataPackage.id,
        )
        .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
        .where(
            RawDataPackage.state == PackageState.BUILT,
            RawDataPackage.data_transfer_package_id.is_(None),
            RawDataPackagePhysicalCopy.state == PhysicalCopyState.VERIFIED,
            DataLocation.location_type == LocationType.BUFFER,
        )
        .order_by(RawDataPackage.id)
    )
    if site is not None:
        query = query.join(Site, Site.id == DataLocation.site_id).where(Site.name == site)
    groups: dict[BundleKey, list[WaitingPackage]] = defaultdict(list)
    seen: set[int] = set()
    routes: dict[int, DataTransferRoute | None] = {}
    for package_id, size, verified_at, location in session.execute(query):
        if package_id in seen:
            continue
        seen.add(package_id)
        if location.id not in routes:
            routes[location.id] = route_for(session, location)
        route = routes[location.id]
        if route is not None:
            key = BundleKey(location.id, route.id)
            waited_from = verified_at or datetime.min.replace(tzinfo=UTC)
            groups[key].append(WaitingPackage(package_id, size, waited_from))
    return dict(groups)


def bundle_settings(session: Session, location_id: int) -> PipelineSettings:
    """The pipeline settings of the site that holds ``location_id``."""
    settings = session.scalar(
        select(Site.settings)
        .join(DataLocation, DataLocation.site_id == Site.id)
        .where(DataLocation.id == location_id)
    )
    return PipelineSettings.model_validate((settings or {}).get("pipeline", {}))


class BundleConflict(Exception):
    """Another planner bundled some of these RDPs first (the transaction is rolled back)."""


def plan_transfer_packages(session: Session, site: str | None, now: datetime) -> list[int]:
    """Create PLANNED DTPs for what is ready to go; returns their ids."""
    created: list[int] = []
    for key, waiting in sorted(
        packages_to_bundle(session, site).items(),
        key=lambda kv: (kv[0].location_id, kv[0].route_id),
    ):
        settings = bundle_settings(session, key.location_id)
        max_wait = timedelta(minutes=settings.bundle_max_wait_minutes)
        for bundle in plan_bundles(waiting, settings.bundle_target_bytes, max_wait, now):
            created.append(_create_bundle(session, key, bundle, now))
    return created


def transfer_package_path(created: datetime, name: str) -> str:
    return f"dtp/{created:%Y/%m/%d}/{name}.tar"


def _create_bundle(
    session: Session, key: BundleKey, bundle: Sequence[WaitingPackage], now: datetime
) -> int:
    route = session.get_one(DataTransferRoute, key.route_id)
    dtp = DataTransferPackage(
        name=f"pending-{key.location_id}-{bundle[0].package_id}-{now.timestamp():.6f}",
        relative_path="",
        state=PackageState.PLANNED,
        origin_location_id=key.location_id,
        route_id=key.route_id,
        priority=route.priority,
        size=sum(item.size for item in bundle),
    )
    session.add(dtp)
    session.flush()
    sites = f"{route.origin_site.name}-to-{route.destination_site.name}"
    dtp.name = f"{sites}_{now:%Y%m%dT%H%M%S}_{dtp.id:08d}"
    dtp.relative_path = transfer_package_path(now, dtp.name)
    ids = [item.package_id for item in bundle]
    assigned = len(
        session.scalars(
            update(RawDataPackage)
            .where(
                RawDataPackage.id.in_(ids),
                RawDataPackage.data_transfer_package_id.is_(None),
                RawDataPackage.state == PackageState.BUILT,
            )
            .values(data_transfer_package_id=dtp.id)
            .returning(RawDataPackage.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    if assigned != len(ids):
        raise BundleConflict(f"{len(ids) - assigned} package(s) were bundled by another planner")
    return dtp.id
