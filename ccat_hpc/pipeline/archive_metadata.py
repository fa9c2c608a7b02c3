"""The IVOA ObsCore-oriented description of an archived RawDataPackage.

Raw detector time streams: ``dataproduct_type`` "timeseries", ``calib_level`` 0. Times
are MJD (as ObsCore has them); the position is the source's (the centre of a
constant-elevation field; none for a solar system object, whose position moves).
``extra`` keeps the provenance: execution, module, part, checksum, where it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    ConstantElevationSource,
    ExecutedObsUnit,
    FixedSource,
    InstrumentModule,
    RawDataFile,
    RawDataPackage,
    RawDataPackageMetadata,
    Source,
)

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)


def mjd(moment: datetime) -> float:
    """Modified Julian Date of ``moment`` (pure)."""
    return (moment - MJD_EPOCH).total_seconds() / 86400.0


def position(source: Source | None) -> tuple[float | None, float | None]:
    """(ra, dec) in degrees of the source, where it has a fixed one (pure)."""
    if isinstance(source, FixedSource):
        return source.ra_deg, source.dec_deg
    if isinstance(source, ConstantElevationSource):  # a field may cross RA 0 (350° to 10°)
        span = (source.ra_max_deg - source.ra_min_deg) % 360.0
        return (
            (source.ra_min_deg + span / 2) % 360.0,
            (source.dec_min_deg + source.dec_max_deg) / 2,
        )
    return None, None


def record_metadata(session: Session, package: RawDataPackage, provenance: dict[str, Any]) -> None:
    """Create or update the package's metadata row (caller commits)."""
    execution = session.get_one(ExecutedObsUnit, package.executed_obs_unit_id)
    module = session.get_one(InstrumentModule, package.instrument_module_id)
    unit = execution.obs_unit
    ra, dec = position(unit.source)
    files = session.scalar(
        select(RawDataFile.id).where(RawDataFile.raw_data_package_id == package.id).limit(1)
    )
    values: dict[str, Any] = {
        "dataproduct_type": "timeseries",
        "calib_level": 0,
        "obs_collection": unit.observing_program.name,
        "obs_id": str(execution.id),
        "target_name": unit.source.name if unit.source is not None else "",
        "facility_name": module.instrument.telescope.name,
        "instrument_name": f"{module.instrument.name} {module.name}",
        "s_ra": ra,
        "s_dec": dec,
        "t_min": mjd(execution.start_time),
        "t_max": mjd(execution.end_time),
        "t_exptime": (execution.end_time - execution.start_time).total_seconds(),
        "extra": {
            "obs_unit": unit.name,
            "status": execution.status.value,
            "part_number": package.part_number,
            "size": package.size,
            "checksum": package.checksum,
            "checksum_algorithm": package.checksum_algorithm,
            "has_files": files is not None,
            **provenance,
        },
    }
    row = session.scalars(
        select(RawDataPackageMetadata).where(
            RawDataPackageMetadata.raw_data_package_id == package.id
        )
    ).first()
    if row is None:
        session.add(RawDataPackageMetadata(raw_data_package_id=package.id, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)
