"""Filing: a validated manifest becomes rows in ops-db, all or nothing.

One manifest = one execution × one instrument module. Filing creates the
ExecutedObsUnit (unless another module's manifest already did), the RawDataFiles,
their PhysicalCopies at the SOURCE location and a FiledManifest audit row. Filing
the same content again is a no-op; different content for the same execution and
module, or an execution whose obs unit, times or status disagree with what was
filed, is a conflict. Functions here take a session and never commit.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.bulk import allocate_ids, insert_rows, lock_for_transaction
from ccat_hpc.db.models import (
    DataLocation,
    DiskDataLocation,
    ExecutedObsUnit,
    FiledManifest,
    Instrument,
    InstrumentModule,
    ObsUnit,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    SystemLog,
)
from ccat_hpc.db.states import LocationType, PhysicalCopyState, RawDataFileState
from ccat_hpc.errors import ManifestConflict, ManifestError
from ccat_hpc.names import unknown_name_message
from ccat_hpc.pipeline.filed_files import FILE_TYPE_LENGTH, check_not_filed_elsewhere
from ccat_hpc.pipeline.manifest import ExecutionInfo, Manifest
from ccat_hpc.pipeline.source_check import FileIdentity, as_signed64, check_source_files


@dataclass(frozen=True)
class FilingResult:
    execution_id: str
    file_count: int
    total_bytes: int
    created: bool  # False: the identical manifest was already filed


@dataclass(frozen=True)
class References:
    instrument: Instrument
    module: InstrumentModule
    obs_unit: ObsUnit
    location: DiskDataLocation


def resolve_references(session: Session, manifest: Manifest) -> References:
    """Find the catalog rows and SOURCE location the manifest names; they must match.

    An unknown name is refused with the closest known one and the choices.
    """
    instrument = _named(session, Instrument, manifest.instrument, "instrument", "instrument")
    module = session.scalars(
        select(InstrumentModule).filter_by(
            instrument_id=instrument.id, name=manifest.instrument_module
        )
    ).first()
    if module is None:
        modules = [m.name for m in instrument.modules]
        raise ManifestError(
            "instrument_module: "
            + unknown_name_message(f"{instrument.name} module", manifest.instrument_module, modules)
        )
    obs_unit = _named(session, ObsUnit, manifest.obs_unit, "obs_unit", "obs unit")
    if obs_unit.instrument_id != instrument.id:
        raise ManifestError(
            f"obs_unit: {obs_unit.name!r} is observed with {obs_unit.instrument.name}, "
            f"not {instrument.name}"
        )
    location = _source_location(session, manifest.location, instrument.name)
    return References(instrument, module, obs_unit, location)


NamedT = TypeVar("NamedT", Instrument, ObsUnit, DataLocation)


def _named(session: Session, model: type[NamedT], name: str, field: str, what: str) -> NamedT:
    """The row of ``model`` called ``name``, or a ManifestError naming the field and choices."""
    row = session.scalars(select(model).filter_by(name=name)).first()
    if row is None:
        choices = list(session.scalars(select(model.name)))
        raise ManifestError(f"{field}: {unknown_name_message(what, name, choices)}")
    return row


def _source_location(session: Session, name: str, instrument_name: str) -> DiskDataLocation:
    location = _named(session, DataLocation, name, "location", "location")
    if location.location_type is not LocationType.SOURCE:
        raise ManifestError(f"location: {name!r} is a {location.location_type}, not a SOURCE")
    if not isinstance(location, DiskDataLocation):
        raise ManifestError(f"location: {name!r} is not folder-backed storage")
    if not location.active:
        raise ManifestError(f"location: {name!r} is not active")
    if location.instrument_name and location.instrument_name != instrument_name:
        raise ManifestError(
            f"location: {name!r} holds {location.instrument_name} data, not {instrument_name}"
        )
    return location


def execution_differences(
    existing: ExecutedObsUnit, info: ExecutionInfo, obs_unit_id: int
) -> list[str]:
    """Fields in which a manifest disagrees with an already filed execution (pure)."""
    differences = []
    if existing.obs_unit_id != obs_unit_id:
        differences.append("obs_unit")
    if existing.start_time != info.start_time:
        differences.append("start_time")
    if existing.end_time != info.end_time:
        differences.append("end_time")
    if existing.status != info.status:
        differences.append("status")
    return differences


def file_manifest(
    session: Session,
    manifest: Manifest,
    digest: str,
    source_name: str = "",
    filed_by: str | None = None,
) -> FilingResult:
    """File one validated manifest in the caller's transaction.

    Filings of the same execution are serialised (an advisory lock on PostgreSQL), so
    the checks below see every earlier filing of it, committed.
    """
    lock_for_transaction(session, manifest.executed_obs_unit.id)
    refs = resolve_references(session, manifest)
    already = _previous_filing(session, manifest, refs, digest)
    if already is not None:
        return already
    existing = _consistent_execution(session, manifest, refs)
    identities = check_source_files(Path(refs.location.path), manifest.files)
    root = Path(refs.location.path)
    check_not_filed_elsewhere(session, refs.location.id, root, manifest.files, identities)
    if existing is None:
        session.add(_new_execution(manifest, refs))
        session.flush()
    _insert_files(session, manifest, refs, identities)
    _record(session, manifest, refs, digest, source_name, filed_by)
    execution_id = str(manifest.executed_obs_unit.id)
    return FilingResult(execution_id, len(manifest.files), manifest.total_bytes, True)


def _previous_filing(
    session: Session, manifest: Manifest, refs: References, digest: str
) -> FilingResult | None:
    """The no-op result if this execution × module was filed with this content; else None."""
    execution_id = manifest.executed_obs_unit.id
    previous = session.scalars(
        select(FiledManifest).filter_by(
            executed_obs_unit_id=execution_id, instrument_module_id=refs.module.id
        )
    ).first()
    if previous is None:
        return None
    if previous.digest != digest:
        raise ManifestConflict(
            f"execution {execution_id} ({refs.instrument.name}/{refs.module.name}) was "
            f"already filed from {previous.source_name or 'another manifest'} with "
            "different content"
        )
    return FilingResult(str(execution_id), previous.file_count, previous.total_bytes, False)


def _consistent_execution(
    session: Session, manifest: Manifest, refs: References
) -> ExecutedObsUnit | None:
    """The execution another module's manifest filed, if any; it must agree with this one."""
    info = manifest.executed_obs_unit
    existing = session.get(ExecutedObsUnit, info.id)
    if existing is not None:
        differences = execution_differences(existing, info, refs.obs_unit.id)
        if differences:
            raise ManifestConflict(
                f"execution {info.id} was already filed with different {', '.join(differences)}"
            )
    return existing


def _new_execution(manifest: Manifest, refs: References) -> ExecutedObsUnit:
    info = manifest.executed_obs_unit
    return ExecutedObsUnit(
        id=info.id,
        obs_unit_id=refs.obs_unit.id,
        start_time=info.start_time,
        end_time=info.end_time,
        status=info.status,
        mean_pwv_mm=info.mean_pwv_mm,
        mean_elevation_deg=info.mean_elevation_deg,
        extra_metadata=info.extra() | {"manifest": manifest.extra()},
    )


def file_rows(
    manifest: Manifest, module_id: int, location_id: int, identities: Sequence[FileIdentity]
) -> list[dict[str, Any]]:
    """Insert parameters of the RawDataFile rows of a manifest (pure)."""
    now = utcnow()
    rows = []
    for entry, identity in zip(manifest.files, identities, strict=True):
        name = posixpath.basename(entry.path)
        rows.append(
            {
                "name": name,
                "relative_path": entry.path,
                "source_location_id": location_id,
                "source_device": as_signed64(identity.device),
                "source_inode": as_signed64(identity.inode),
                "source_mtime_ns": identity.mtime_ns,
                "size": entry.size,
                "checksum": entry.xxh3_128,
                "checksum_algorithm": "xxh3_128",
                "file_type": posixpath.splitext(name)[1].lstrip(".").lower()[:FILE_TYPE_LENGTH],
                "state": RawDataFileState.FILED,
                "executed_obs_unit_id": manifest.executed_obs_unit.id,
                "instrument_module_id": module_id,
                "extra_metadata": entry.extra() or None,
                "created_at": now,
            }
        )
    return rows


def _insert_files(
    session: Session, manifest: Manifest, refs: References, identities: Sequence[FileIdentity]
) -> None:
    taken = set(
        session.scalars(
            select(RawDataFile.relative_path).filter_by(
                executed_obs_unit_id=manifest.executed_obs_unit.id
            )
        )
    )
    clashes = [entry.path for entry in manifest.files if entry.path in taken]
    if clashes:
        raise ManifestConflict(
            f"files {clashes[0]!r} ({len(clashes)} in all) were already filed for execution "
            f"{manifest.executed_obs_unit.id} by another module's manifest"
        )
    rows = file_rows(manifest, refs.module.id, refs.location.id, identities)
    file_ids = allocate_ids(session, RawDataFile, len(rows))
    for row, file_id in zip(rows, file_ids, strict=True):
        row["id"] = file_id
    insert_rows(session, RawDataFile, rows)
    _insert_source_copies(session, file_ids, refs.location.id)


def _insert_source_copies(session: Session, file_ids: list[int], location_id: int) -> None:
    """One PRESENT RawDataFilePhysicalCopy per file (base and subclass rows)."""
    copy_ids = allocate_ids(session, PhysicalCopy, len(file_ids))
    now = utcnow()
    base = [
        {
            "id": copy_id,
            "type": RawDataFilePhysicalCopy.__mapper__.polymorphic_identity,
            "data_location_id": location_id,
            "state": PhysicalCopyState.PRESENT,
            "created_at": now,
        }
        for copy_id in copy_ids
    ]
    insert_rows(session, PhysicalCopy, base)
    links = [
        {"id": copy_id, "raw_data_file_id": file_id}
        for copy_id, file_id in zip(copy_ids, file_ids, strict=True)
    ]
    insert_rows(session, RawDataFilePhysicalCopy, links)


def _record(
    session: Session,
    manifest: Manifest,
    refs: References,
    digest: str,
    source_name: str,
    filed_by: str | None,
) -> None:
    session.add(
        FiledManifest(
            executed_obs_unit_id=manifest.executed_obs_unit.id,
            instrument_module_id=refs.module.id,
            data_location_id=refs.location.id,
            digest=digest,
            source_name=source_name,
            file_count=len(manifest.files),
            total_bytes=manifest.total_bytes,
        )
    )
    session.add(
        SystemLog(
            source="filing",
            message=(
                f"filed {len(manifest.files)} files ({manifest.total_bytes} bytes) of "
                f"{refs.instrument.name}/{refs.module.name} execution "
                f"{manifest.executed_obs_unit.id}"
            ),
            details={"manifest": source_name, "location": refs.location.name}
            | ({"user": filed_by} if filed_by else {}),
        )
    )
    session.flush()
