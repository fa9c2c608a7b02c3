"""Sites, their data locations and the routes between them, as loaded from site configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataLocation,
    DataTransferRoute,
    DiskDataLocation,
    S3DataLocation,
    Site,
    TapeDataLocation,
)
from ccat_hpc.inventory import lookup
from ccat_hpc.inventory.common import table


@dataclass(frozen=True)
class LocationInfo:
    name: str
    site: str
    type: str
    storage: str
    where: str
    active: bool
    priority: int
    retention_days: int | None
    instrument: str | None
    description: str
    storage_settings: dict[str, str]


@dataclass(frozen=True)
class RouteInfo:
    name: str
    type: str
    origin: str
    destination: str
    relay: str | None
    origin_location: str | None
    destination_location: str | None
    method: str
    priority: int
    active: bool


@dataclass(frozen=True)
class SiteInfo:
    name: str
    short_name: str
    description: str
    geographic_location: str
    locations: list[LocationInfo]


@dataclass(frozen=True)
class SiteDetail(SiteInfo):
    routes: list[RouteInfo]
    retention: dict[str, Any]
    slurm_profiles: dict[str, Any]


@dataclass(frozen=True)
class SitesOverview:
    sites: list[SiteInfo]
    routes: list[RouteInfo]


def _storage_settings(location: DataLocation) -> dict[str, str]:
    if isinstance(location, DiskDataLocation):
        return {"path": location.path, "host": location.host}
    if isinstance(location, S3DataLocation):
        names = ("endpoint_url", "bucket", "prefix", "region")
        return {name: getattr(location, name) for name in names}
    if isinstance(location, TapeDataLocation):
        return {"library": location.library, "mount_path": location.mount_path}
    return {}


def _location(location: DataLocation) -> LocationInfo:
    settings = _storage_settings(location)
    return LocationInfo(
        name=location.name,
        site=location.site.name,
        type=str(location.location_type),
        storage=str(location.storage_type),
        where=settings.get("path") or settings.get("bucket") or "",
        active=location.active,
        priority=location.priority,
        retention_days=location.retention_days,
        instrument=location.instrument_name,
        description=location.description,
        storage_settings=settings,
    )


def _route(route: DataTransferRoute) -> RouteInfo:
    return RouteInfo(
        name=route.name,
        type=str(route.route_type),
        origin=route.origin_site.name,
        destination=route.destination_site.name,
        relay=route.relay_site.name if route.relay_site else None,
        origin_location=route.origin_location.name if route.origin_location else None,
        destination_location=(
            route.destination_location.name if route.destination_location else None
        ),
        method=route.method,
        priority=route.priority,
        active=route.active,
    )


def _site(site: Site) -> SiteInfo:
    locations = [_location(loc) for loc in sorted(site.locations, key=lambda loc: loc.name)]
    return SiteInfo(
        site.name, site.short_name, site.description, site.geographic_location, locations
    )


def sites_overview(session: Session) -> SitesOverview:
    """Every site with its locations, and every route."""
    sites = session.scalars(select(Site).order_by(Site.name))
    routes = session.scalars(select(DataTransferRoute).order_by(DataTransferRoute.name))
    return SitesOverview([_site(s) for s in sites], [_route(r) for r in routes])


def show_site(session: Session, name: str) -> SiteDetail:
    """One site: its locations, the routes from, to or through it, retention, Slurm profiles."""
    site = lookup.site(session, name)
    touching = or_(
        DataTransferRoute.origin_site_id == site.id,
        DataTransferRoute.destination_site_id == site.id,
        DataTransferRoute.relay_site_id == site.id,
    )
    routes = session.scalars(
        select(DataTransferRoute).where(touching).order_by(DataTransferRoute.name)
    )
    settings = site.settings or {}
    return SiteDetail(
        **vars(_site(site)),
        routes=[_route(r) for r in routes],
        retention=dict(settings.get("retention", {})),
        slurm_profiles=dict(settings.get("slurm_profiles", {})),
    )


def _location_line(location: LocationInfo) -> str:
    flag = "" if location.active else "  (inactive)"
    return (
        f"{location.name:<28} {location.site:<10} {location.type:<18} "
        f"{location.storage:<5} {location.where}{flag}"
    )


def _route_line(route: RouteInfo) -> str:
    via = f" via {route.relay}" if route.relay else ""
    flag = "" if route.active else "  (inactive)"
    return (
        f"route {route.name}: {route.origin} → {route.destination}{via} "
        f"[{route.type}, {route.method}]{flag}"
    )


def render_sites(overview: SitesOverview) -> str:
    """One line per data location (by name), then one per route."""
    locations = sorted((loc for s in overview.sites for loc in s.locations), key=lambda x: x.name)
    lines = [_location_line(loc) for loc in locations]
    lines += [_route_line(route) for route in overview.routes]
    return "\n".join(lines) if lines else "no sites loaded (ccat-hpc sites load)"


def _retention_text(retention: dict[str, Any]) -> str:
    days = [(kind, policy.get("keep_days")) for kind, policy in sorted(retention.items())]
    return ", ".join(f"{kind} {'kept' if n is None else f'{n} d'}" for kind, n in days) or "-"


def _site_locations(site: SiteDetail) -> list[str]:
    if not site.locations:
        return ["locations: none"]
    headers = ("LOCATION", "TYPE", "STORAGE", "PRIO", "KEEP DAYS", "WHERE")
    rows = [
        (
            loc.name,
            loc.type,
            loc.storage,
            loc.priority,
            "-" if loc.retention_days is None else loc.retention_days,
            loc.where + ("" if loc.active else "  (inactive)"),
        )
        for loc in site.locations
    ]
    return ["  " + line for line in table(headers, rows, {3, 4})]


def render_site(site: SiteDetail) -> str:
    short = f" ({site.short_name})" if site.short_name else ""
    lines = [f"site {site.name}{short}"]
    lines += [f"  {text}" for text in (site.geographic_location, site.description) if text]
    lines += ["", *_site_locations(site), ""]
    lines += (
        ["routes", *(f"  {_route_line(r)}" for r in site.routes)]
        if site.routes
        else ["routes: none"]
    )
    lines += ["", f"retention       {_retention_text(site.retention)}"]
    lines.append(f"slurm profiles  {', '.join(sorted(site.slurm_profiles)) or '-'}")
    return "\n".join(lines)
