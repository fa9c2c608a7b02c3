"""The package step: checksummed files → RDPs in the BUFFER, every byte as filed, on both
databases; faults end with every file packaged once after a rerun."""

from __future__ import annotations

import os
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
import xxhash
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    PhysicalCopy,
    RawDataFile,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState, PhysicalCopyState, RawDataFileState
from ccat_hpc.engine.api import verify
from ccat_hpc.jobs.package_batch import packages_waiting, plan_new_packages
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.pipeline.package_task import PACKAGE_STATES
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests import step_runs
from tests.integration.test_checksum_step import run_batch as run_checksum

F = RawDataFileState
P = PackageState


def observe(
    factory: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    module: str,
    files: int = 4,
    size: int = 3000,
) -> list[Path]:
    spec = SyntheticObservation(
        "PrimeCam", module, "ECDFS-deep-001", "chile-source-primecam", files, size
    )
    manifest = write_observation(spec, data_root / spec.location)
    assert file_path(factory, drop_manifest(manifest, tmp_path, module)).status == "filed"
    return [data_root / spec.location / entry["path"] for entry in manifest["files"]]


@pytest.fixture
def buffer(data_root: Path) -> Path:
    folder = data_root / "chile-buffer-01"
    folder.mkdir()
    return folder


def run_package(factory: sessionmaker[Session]) -> tuple[int, list[int]] | None:
    """Plan and claim as `step package` does, then run the task here (as `job run`)."""
    plan_new_packages(factory, None)
    return step_runs.run_step(factory, "package", packages_waiting, Path(".").resolve())


def backoff_passed(factory: sessionmaker[Session]) -> None:
    """As if the failed items' backoff had passed."""
    from ccat_hpc.db.models import DataTransferPackage

    with transaction(factory) as session:
        for model in (RawDataPackage, DataTransferPackage):
            session.execute(
                update(model)
                .where(model.retry_after.is_not(None))
                .values(retry_after=utcnow() - timedelta(seconds=1))
            )


def packages(factory: sessionmaker[Session]) -> list[RawDataPackage]:
    with factory() as session:
        rows = list(session.scalars(select(RawDataPackage).order_by(RawDataPackage.id)))
        session.expunge_all()
        return rows


def file_states(factory: sessionmaker[Session]) -> dict[str, F]:
    with factory() as session:
        return {f.relative_path: f.state for f in session.scalars(select(RawDataFile))}


def members_of(tar: Path) -> dict[str, bytes]:
    with tarfile.open(tar) as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.name != ".ccat-index.json" and not m.name.startswith(".ccat")
        }


def test_checksummed_files_are_packaged_byte_for_byte(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    sources = observe(loaded_factory, data_root, tmp_path, "280GHz")
    sources += observe(loaded_factory, data_root, tmp_path, "350GHz", files=3)
    run_checksum(loaded_factory)
    assert run_package(loaded_factory) is not None
    built = packages(loaded_factory)
    assert [p.state for p in built] == [P.BUILT, P.BUILT]
    assert set(file_states(loaded_factory).values()) == {F.PACKAGED}
    source_root = data_root / "chile-source-primecam"
    expected = {str(p.relative_to(source_root)): p.read_bytes() for p in sources}
    seen: dict[str, bytes] = {}
    for package in built:
        tar = buffer / package.relative_path
        data = tar.read_bytes()
        assert package.size == len(data)
        assert package.checksum == xxhash.xxh3_128_hexdigest(data)
        assert verify(None, tar, package.checksum).members == len(package.member_index["members"])
        members = members_of(tar)
        seen.update(members)
        index = {entry["name"]: entry for entry in package.member_index["members"]}
        assert set(index) == set(members)
        for name, content in members.items():
            entry = index[name]
            assert data[entry["offset"] : entry["offset"] + entry["size"]] == content
            assert entry["xxh3_128"] == xxhash.xxh3_128_hexdigest(content)
    assert seen == expected
    with loaded_factory() as session:
        copies = session.scalars(select(RawDataPackagePhysicalCopy)).all()
        assert [(c.state, c.data_location.name) for c in copies] == [
            (PhysicalCopyState.VERIFIED, "chile-buffer-01")
        ] * 2
        assert all(c.verified_at is not None for c in copies)


def test_nothing_is_packaged_while_a_file_of_the_group_waits_for_its_checksum(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    observe(loaded_factory, data_root, tmp_path, "280GHz")
    assert run_package(loaded_factory) is None
    assert packages(loaded_factory) == []


def test_a_group_larger_than_the_maximum_is_split_into_parts(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    observe(loaded_factory, data_root, tmp_path, "280GHz", files=7)
    run_checksum(loaded_factory)
    with transaction(loaded_factory) as session:  # room for two 3000-byte files a part
        session.execute(update(Site).values(settings={"pipeline": {"max_package_bytes": 20_000}}))
    plan_new_packages(loaded_factory, "chile")
    planned = packages(loaded_factory)
    assert [p.part_number for p in planned] == [0, 1, 2, 3]
    with loaded_factory() as session:
        parts = [
            sorted(
                session.scalars(
                    select(RawDataFile.relative_path).filter_by(raw_data_package_id=p.id)
                )
            )
            for p in planned
        ]
    assert [len(part) for part in parts] == [2, 2, 2, 1]
    in_order = [path for part in parts for path in part]
    assert in_order == sorted(set(in_order))  # in path order, each file once
    assert run_package(loaded_factory) is not None
    assert {p.state for p in packages(loaded_factory)} == {P.BUILT}
    assert all(p.size <= 20_000 for p in packages(loaded_factory))


def test_a_file_changed_after_its_checksum_fails_only_its_package(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    changed = observe(loaded_factory, data_root, tmp_path, "280GHz")
    observe(loaded_factory, data_root, tmp_path, "350GHz")
    run_checksum(loaded_factory)
    data = bytearray(changed[1].read_bytes())
    data[10] ^= 0xFF  # same size, same mtime: only the bytes tell
    stat = changed[1].stat()
    changed[1].write_bytes(bytes(data))
    os.utime(changed[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_package(loaded_factory) is not None
    states = {
        p.name.split("_")[1]: (p.state, p.failure_retryable) for p in packages(loaded_factory)
    }
    assert states == {"280GHz": (P.FAILED, False), "350GHz": (P.BUILT, None)}
    failed = next(p for p in packages(loaded_factory) if p.state == P.FAILED)
    assert str(changed[1]) in (failed.failure_reason or "")
    assert not list(buffer.rglob(f"{failed.name}.tar"))
    with loaded_factory() as session:
        bad = session.scalars(select(RawDataFile).where(RawDataFile.state == F.CORRUPT)).one()
        assert changed[1].name in bad.relative_path and "xxh3-128" in (bad.failure_reason or "")
        copy_states = {
            c.state
            for c in session.scalars(
                select(PhysicalCopy).where(PhysicalCopy.type == "raw_data_package")
            )
        }
        assert copy_states == {PhysicalCopyState.VERIFIED, PhysicalCopyState.FAILED}
    # the rerun packages the other three files of the group into a new part; none twice
    assert run_package(loaded_factory) is not None
    rerun = packages(loaded_factory)
    assert [(p.part_number, p.state) for p in rerun if "280GHz" in p.name] == [
        (0, P.FAILED),
        (1, P.BUILT),
    ]
    assert sorted(file_states(loaded_factory).values()) == [F.CORRUPT] + [F.PACKAGED] * 7
    assert run_package(loaded_factory) is None


def test_a_task_that_dies_gives_its_packages_back_and_the_rerun_builds_them(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    observe(loaded_factory, data_root, tmp_path, "280GHz")
    run_checksum(loaded_factory)
    plan_new_packages(loaded_factory, None)
    found = step_runs.claim(loaded_factory, "package", packages_waiting, tmp_path)
    assert found is not None
    batch_id, claimed = found
    with transaction(loaded_factory) as session:
        assert step_items.release(session, RawDataPackage, claimed, PACKAGE_STATES, batch_id) == 1
        assert step_items.release(session, RawDataPackage, claimed, PACKAGE_STATES, batch_id) == 0
    (package,) = packages(loaded_factory)
    assert (package.state, package.attempts) == (P.PLANNED, 1)  # one try counted
    assert run_package(loaded_factory) is not None
    (package,) = packages(loaded_factory)
    assert (package.state, package.attempts) == (P.BUILT, 0)  # the bundle step counts anew
    with loaded_factory() as session:
        assert session.scalars(select(RawDataPackagePhysicalCopy.state)).all() == [
            PhysicalCopyState.VERIFIED
        ]


def test_an_unmounted_buffer_is_a_failure_a_rerun_can_fix(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    observe(loaded_factory, data_root, tmp_path, "280GHz")
    run_checksum(loaded_factory)
    assert run_package(loaded_factory) is not None  # no buffer folder: not mounted
    (package,) = packages(loaded_factory)
    assert (package.state, package.failure_retryable) == (P.PLANNED, True)
    assert "storage root" in (package.failure_reason or "")
    assert not (data_root / "chile-buffer-01").exists()  # never created
    assert package.retry_after is not None and package.retry_after > utcnow()  # the backoff
    (data_root / "chile-buffer-01").mkdir()
    assert run_package(loaded_factory) is None  # not before its backoff has passed
    backoff_passed(loaded_factory)
    assert run_package(loaded_factory) is not None
    (package,) = packages(loaded_factory)
    assert (package.state, package.failure_reason) == (P.BUILT, None)


def test_two_submissions_at_once_never_claim_one_package_twice(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    observe(loaded_factory, data_root, tmp_path, "280GHz")
    run_checksum(loaded_factory)
    plan_new_packages(loaded_factory, None)
    assert plan_new_packages(loaded_factory, None) == 0  # planned once
    with transaction(loaded_factory) as session:
        ids = [i for i, _ in packages_waiting(session, None)]
    first_session = loaded_factory()
    second_session = loaded_factory()
    try:  # two submissions saw the same waiting package; each claims in its own transaction
        first = step_items.claim(first_session, RawDataPackage, ids, PACKAGE_STATES)
        first_session.commit()
        second = step_items.claim(second_session, RawDataPackage, ids, PACKAGE_STATES)
        second_session.commit()
    finally:
        first_session.close()
        second_session.close()
    assert (len(first), second) == (1, [])


def test_a_fifo_in_a_files_place_fails_its_package_without_waiting(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:
    sources = observe(loaded_factory, data_root, tmp_path, "280GHz")
    run_checksum(loaded_factory)
    sources[0].unlink()
    os.mkfifo(sources[0])
    assert run_package(loaded_factory) is not None  # returns: nothing blocks on the FIFO
    (package,) = packages(loaded_factory)
    assert (package.state, package.failure_retryable) == (P.FAILED, False)
    assert "no longer a regular file" in (package.failure_reason or "")
    assert sorted(file_states(loaded_factory).values()) == [F.CHECKSUMMED] * 3 + [F.CORRUPT]


DYING_PACKAGE_TASK = """
import os, sys
from ccat_hpc.db.session import make_engine, make_session_factory
from ccat_hpc.engine import build as engine_build
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.pipeline.package_task import package_task

real = engine_build.write_chunk
calls = []

def dying(*args):  # the node goes away after the first chunk is written
    calls.append(1)
    if len(calls) > 1:
        os._exit(9)
    return real(*args)

engine_build.write_chunk = dying
factory = make_session_factory(make_engine(sys.argv[1]))
run_task(factory, "package", int(sys.argv[2]), 0, {"package": package_task}, {})
"""


def test_a_package_task_killed_mid_build_leaves_no_package_and_the_rerun_builds_it(
    loaded_factory: sessionmaker[Session], data_root: Path, tmp_path: Path, buffer: Path
) -> None:

    observe(loaded_factory, data_root, tmp_path, "280GHz", files=3, size=6 * 1024 * 1024)
    run_checksum(loaded_factory)
    plan_new_packages(loaded_factory, None)
    found = step_runs.claim(loaded_factory, "package", packages_waiting, tmp_path)
    assert found is not None
    batch_id, claimed = found
    step_runs.run_dying_task(loaded_factory, DYING_PACKAGE_TASK, batch_id)
    (package,) = packages(loaded_factory)
    assert package.state == P.BUILDING
    assert not (buffer / package.relative_path).exists()  # only a partial file, if any
    with transaction(loaded_factory) as session:  # what the tracker does for a dead task
        assert step_items.release(session, RawDataPackage, claimed, PACKAGE_STATES, batch_id) == 1
    assert run_package(loaded_factory) is not None
    (package,) = packages(loaded_factory)
    assert package.state == P.BUILT
    data = (buffer / package.relative_path).read_bytes()
    assert xxhash.xxh3_128_hexdigest(data) == package.checksum
    assert [p.name for p in (buffer / package.relative_path).parent.iterdir()] == [
        Path(package.relative_path).name
    ]
    with loaded_factory() as session:
        assert session.scalars(select(RawDataPackagePhysicalCopy.state)).all() == [
            PhysicalCopyState.VERIFIED
        ]
