"""The bundle step: RDPs waiting in the Chile BUFFER → DTPs for their route, on both
databases; a damaged RDP in the buffer is built again and nothing travels twice."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import xxhash
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    PhysicalCopy,
    RawDataFile,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState, PhysicalCopyState, RawDataFileState
from ccat_hpc.jobs.bundle_batch import bundles_waiting, plan_new_bundles
from tests import step_runs
from tests.integration.test_checksum_step import run_batch as run_checksum
from tests.integration.test_package_step import members_of, observe, run_package

P = PackageState


def set_pipeline(factory: sessionmaker[Session], **settings: float) -> None:
    with transaction(factory) as session:
        site = session.scalars(select(Site).where(Site.name == "chile")).one()
        site.settings = {
            **site.settings,
            "pipeline": {**site.settings.get("pipeline", {}), **settings},
        }


def run_bundle(factory: sessionmaker[Session]) -> list[int] | None:
    plan_new_bundles(factory, None)
    found = step_runs.run_step(factory, "bundle", bundles_waiting, Path(".").resolve())
    return None if found is None else found[1]


def rows(factory: sessionmaker[Session], model: type) -> list:  # type: ignore[type-arg]
    with factory() as session:
        found = list(session.scalars(select(model).order_by(model.id)))
        session.expunge_all()
        return found


@pytest.fixture
def built(loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path) -> Path:
    """Three RDPs built in the Chile buffer; returns the buffer folder."""
    buffer = data_root / "chile-buffer-01"
    buffer.mkdir()
    for module in ("280GHz", "350GHz", "850GHz"):
        observe(loaded_factory, data_root, tmp_path, module)
    run_checksum(loaded_factory)
    assert run_package(loaded_factory) is not None
    assert {p.state for p in rows(loaded_factory, RawDataPackage)} == {P.BUILT}
    return buffer


def test_rdps_that_waited_long_enough_travel_in_one_dtp(
    loaded_factory: sessionmaker[Session], built: Path
) -> None:
    assert run_bundle(loaded_factory) is None  # 60 minutes have not passed, 200 GB not reached
    set_pipeline(loaded_factory, bundle_max_wait_minutes=0)
    assert run_bundle(loaded_factory) is not None
    (dtp,) = rows(loaded_factory, DataTransferPackage)
    assert dtp.state == P.BUILT and dtp.name.startswith("chile-to-cologne_")
    data = (built / dtp.relative_path).read_bytes()
    assert (dtp.size, dtp.checksum) == (len(data), xxhash.xxh3_128_hexdigest(data))
    packages = rows(loaded_factory, RawDataPackage)
    assert {p.state for p in packages} == {P.TRANSFERRING}
    assert members_of(built / dtp.relative_path) == {
        p.relative_path: (built / p.relative_path).read_bytes() for p in packages
    }
    copies = rows(loaded_factory, DataTransferPackagePhysicalCopy)
    assert [(c.state, c.data_location_id) for c in copies] == [
        (PhysicalCopyState.VERIFIED, dtp.origin_location_id)
    ]
    assert run_bundle(loaded_factory) is None  # nothing bundled twice


def test_full_bundles_go_at_once_and_the_rest_waits(
    loaded_factory: sessionmaker[Session], built: Path
) -> None:
    size = rows(loaded_factory, RawDataPackage)[0].size
    set_pipeline(loaded_factory, bundle_target_bytes=2 * size)
    assert run_bundle(loaded_factory) is not None
    (dtp,) = rows(loaded_factory, DataTransferPackage)
    with loaded_factory() as session:
        inside = session.scalars(
            select(RawDataPackage.state).filter_by(data_transfer_package_id=dtp.id)
        ).all()
        left = session.scalars(
            select(RawDataPackage.state).filter_by(data_transfer_package_id=None)
        ).all()
    assert (sorted(inside), left) == ([P.TRANSFERRING] * 2, [P.BUILT])
    with transaction(loaded_factory) as session:  # the last one has waited for two hours
        session.execute(
            update(PhysicalCopy)
            .where(PhysicalCopy.type == "raw_data_package")
            .values(verified_at=utcnow() - timedelta(hours=2))
        )
    assert run_bundle(loaded_factory) is not None
    assert {p.state for p in rows(loaded_factory, RawDataPackage)} == {P.TRANSFERRING}


def test_a_damaged_rdp_in_the_buffer_is_built_again_and_nothing_travels_twice(
    loaded_factory: sessionmaker[Session], built: Path
) -> None:
    set_pipeline(loaded_factory, bundle_max_wait_minutes=0)
    damaged = rows(loaded_factory, RawDataPackage)[1]
    path = built / damaged.relative_path
    data = bytearray(path.read_bytes())
    data[600] ^= 1  # a bit flipped in the buffer, in the first member's data
    path.write_bytes(bytes(data))
    assert run_bundle(loaded_factory) is not None
    (dtp,) = rows(loaded_factory, DataTransferPackage)
    assert (dtp.state, dtp.failure_retryable) == (P.FAILED, False)
    assert str(path) in (dtp.failure_reason or "")
    states = {p.id: p.state for p in rows(loaded_factory, RawDataPackage)}
    assert states[damaged.id] == P.PLANNED
    assert sorted(states.values()) == sorted([P.PLANNED, P.BUILT, P.BUILT])
    with loaded_factory() as session:
        copy = session.scalars(
            select(RawDataPackagePhysicalCopy).filter_by(raw_data_package_id=damaged.id)
        ).one()
        assert copy.state == PhysicalCopyState.CORRUPT
    # the package step builds it again from SOURCE; the next bundle takes all three
    assert run_package(loaded_factory) is not None
    assert run_bundle(loaded_factory) is not None
    packages = rows(loaded_factory, RawDataPackage)
    assert {p.state for p in packages} == {P.TRANSFERRING}
    assert xxhash.xxh3_128_hexdigest(path.read_bytes()) == damaged.checksum
    final = [d for d in rows(loaded_factory, DataTransferPackage) if d.state == P.BUILT]
    assert len(final) == 1
    assert len(members_of(built / final[0].relative_path)) == 3


def test_rdps_with_no_route_out_stay(loaded_factory: sessionmaker[Session], built: Path) -> None:
    set_pipeline(loaded_factory, bundle_max_wait_minutes=0)
    with transaction(loaded_factory) as session:
        from ccat_hpc.db.models import DataTransferRoute

        session.execute(update(DataTransferRoute).values(active=False))
    assert run_bundle(loaded_factory) is None
    assert {p.state for p in rows(loaded_factory, RawDataPackage)} == {P.BUILT}


def test_a_rebuilt_rdp_whose_source_changed_strands_no_file(
    loaded_factory: sessionmaker[Session], built: Path, data_root: Path
) -> None:
    """The buffer copy is damaged (the RDP is built again), then a source file changed:
    the changed file is CORRUPT and the others are packaged again, none left behind."""
    set_pipeline(loaded_factory, bundle_max_wait_minutes=0)
    damaged = rows(loaded_factory, RawDataPackage)[0]
    path = built / damaged.relative_path
    data = bytearray(path.read_bytes())
    data[600] ^= 1
    path.write_bytes(bytes(data))
    assert run_bundle(loaded_factory) is not None  # finds it; it goes back to PLANNED
    with loaded_factory() as session:
        source = session.scalars(
            select(RawDataFile).filter_by(raw_data_package_id=damaged.id).order_by(RawDataFile.id)
        ).first()
        assert source is not None
        changed = data_root / "chile-source-primecam" / source.relative_path
    stat = changed.stat()
    changed.write_bytes(bytes(reversed(changed.read_bytes())))  # same size and mtime
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_package(loaded_factory) is not None  # the rebuild fails for good
    assert run_package(loaded_factory) is not None  # the other files: a new part
    with loaded_factory() as session:
        states = session.execute(
            select(RawDataFile.state, RawDataFile.raw_data_package_id.is_not(None))
        ).all()
    assert sorted(s.value for s, _ in states).count("corrupt") == 1
    stranded = [s for s, in_package in states if s != RawDataFileState.CORRUPT and not in_package]
    assert stranded == []
