"""Validate site config files and upsert them into ops-db (idempotently)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataArchive,
    DataLocation,
    DataTransferRoute,
    DiskDataLocation,
    S3DataLocation,
    Site,
    TapeDataLocation,
)
from ccat_hpc.db.states import StorageType
from ccat_hpc.db.upsert import UpsertReport, upsert
from ccat_hpc.errors import ConfigError
from ccat_hpc.sites.schema import LocationConfig, RouteConfig, SiteConfig
from ccat_hpc.yamlfile import load_model

_LOCATION_CLASSES: dict[StorageType, type[DataLocation]] = {
    StorageType.DISK: DiskDataLocation,
    StorageType.S3: S3DataLocation,
    StorageType.TAPE: TapeDataLocation,
}


@dataclass(frozen=True)
class LoadedSiteConfig:
    path: Path
    config: SiteConfig


def read_site_configs(
    paths: Sequence[Path], env: Mapping[str, str] | None = None
) -> list[LoadedSiteConfig]:
    """Parse and validate every file, then check names across files."""
    loaded = [LoadedSiteConfig(p, load_model(p, SiteConfig, env)) for p in paths]
    _check_across_files(loaded)
    return loaded


def _check_across_files(loaded: Sequence[LoadedSiteConfig]) -> None:
    seen_sites: dict[str, Path] = {}
    seen_locations: dict[str, Path] = {}
    for item in loaded:
        name = item.config.site.name
        if name in seen_sites:
            raise ConfigError(
                f"{item.path}: site.name: {name!r} is also defined in {seen_sites[name]}"
            )
        seen_sites[name] = item.path
        for index, location in enumerate(item.config.locations):
            if location.name in seen_locations:
                raise ConfigError(
                    f"{item.path}: locations[{index}].name: {location.name!r} is also defined "
                    f"in {seen_locations[location.name]}"
                )
            seen_locations[location.name] = item.path


def load_site_configs(session: Session, loaded: Sequence[LoadedSiteConfig]) -> UpsertReport:
    """Upsert sites, archives and locations of every file, then all routes."""
    report = UpsertReport()
    for item in loaded:
        site = _upsert_site(session, item.config, report)
        for archive in item.config.archives:
            upsert(
                session,
                DataArchive,
                {"name": archive.name},
                {"description": archive.description, "site_id": site.id},
                report,
                f"{item.path}: archive {archive.name}",
            )
        for index, location in enumerate(item.config.locations):
            where = f"{item.path}: locations[{index}] ({location.name})"
            _upsert_location(session, site, item.config, location, report, where)
    for item in loaded:
        for index, route in enumerate(item.config.routes):
            _upsert_route(session, route, report, f"{item.path}: routes[{index}] ({route.name})")
    return report


def _upsert_site(session: Session, config: SiteConfig, report: UpsertReport) -> Site:
    info = config.site
    settings = {
        "retention": {str(k): v.model_dump(mode="json") for k, v in config.retention.items()},
        "slurm_profiles": {k: v.model_dump(mode="json") for k, v in config.slurm_profiles.items()},
        "pipeline": config.pipeline.model_dump(mode="json"),
    }
    values = {
        "short_name": info.short_name,
        "description": info.description,
        "geographic_location": info.geographic_location,
        "settings": settings,
    }
    return upsert(session, Site, {"name": info.name}, values, report, f"site {info.name}")


def location_values(
    site: Site, config: SiteConfig, location: LocationConfig, archive_id: int | None
) -> dict[str, Any]:
    """Column values of a DataLocation row for one config entry (pure)."""
    policy = config.retention.get(location.type)
    retention = location.retention_days
    if retention is None and policy is not None:
        retention = policy.keep_days
    values: dict[str, Any] = {
        "location_type": location.type,
        "site_id": site.id,
        "priority": location.priority,
        "active": location.active,
        "description": location.description,
        "instrument_name": location.instrument,
        "retention_days": retention,
        "capacity_bytes": location.capacity_bytes,
        "user_quota_bytes": location.user_quota_bytes,
        "data_archive_id": archive_id,
    }
    if location.storage is StorageType.DISK:
        values |= {"path": location.path, "host": location.host}
    elif location.storage is StorageType.S3 and location.s3 is not None:
        values |= location.s3.model_dump()
    elif location.tape is not None:
        values |= location.tape.model_dump()
    return values


def _upsert_location(
    session: Session,
    site: Site,
    config: SiteConfig,
    location: LocationConfig,
    report: UpsertReport,
    where: str,
) -> None:
    existing = session.scalars(select(DataLocation).filter_by(name=location.name)).one_or_none()
    if existing is not None and existing.site_id != site.id:
        raise ConfigError(f"{where}: this location already belongs to another site")
    archive_id = _archive_id(session, location.archive, where)
    values = location_values(site, config, location, archive_id)
    model = _LOCATION_CLASSES[location.storage]
    upsert(session, model, {"name": location.name}, values, report, where)


def _archive_id(session: Session, name: str | None, where: str) -> int | None:
    if name is None:
        return None
    archive = session.scalars(select(DataArchive).filter_by(name=name)).one_or_none()
    if archive is None:
        raise ConfigError(f"{where}: archive: no data archive named {name!r}")
    return archive.id


def _upsert_route(session: Session, route: RouteConfig, report: UpsertReport, where: str) -> None:
    origin = _site_by_name(session, route.from_site, f"{where}: from")
    destination = _site_by_name(session, route.to_site, f"{where}: to")
    relay = _site_by_name(session, route.via, f"{where}: via") if route.via else None
    origin_location = _location_at(session, route.from_location, origin, f"{where}: from_location")
    destination_location = _location_at(
        session, route.to_location, destination, f"{where}: to_location"
    )
    values = {
        "route_type": route.type,
        "origin_site_id": origin.id,
        "destination_site_id": destination.id,
        "relay_site_id": relay.id if relay else None,
        "origin_location_id": origin_location.id if origin_location else None,
        "destination_location_id": destination_location.id if destination_location else None,
        "method": route.method,
        "priority": route.priority,
        "active": route.active,
    }
    upsert(session, DataTransferRoute, {"name": route.name}, values, report, where)


def _site_by_name(session: Session, name: str, where: str) -> Site:
    site = session.scalars(select(Site).filter_by(name=name)).one_or_none()
    if site is None:
        raise ConfigError(f"{where}: no site named {name!r} (load its config file too)")
    return site


def _location_at(session: Session, name: str | None, site: Site, where: str) -> DataLocation | None:
    if name is None:
        return None
    location = session.scalars(select(DataLocation).filter_by(name=name)).one_or_none()
    if location is None or location.site_id != site.id:
        raise ConfigError(f"{where}: no location {name!r} at site {site.name!r}")
    return location


def shipped_site_configs_dir() -> Path:
    """The site configs shipped inside the package (``ccat_hpc/site_configs``)."""
    return Path(str(resources.files("ccat_hpc") / "site_configs"))


def shipped_site_configs() -> list[Path]:
    """The shipped ``chile.yaml`` and ``cologne.yaml``."""
    folder = shipped_site_configs_dir()
    paths = [folder / "chile.yaml", folder / "cologne.yaml"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"shipped site configs not found: {', '.join(missing)}")
    return paths
