"""Transfer and archive: DTPs from the Chile buffer to Cologne, RDPs into the archive, on a
folder archive and on real S3, on both databases; faults end with everything archived
once after a rerun."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import xxhash
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    DataTransfer,
    DataTransferLog,
    DataTransferPackage,
    DataTransferRoute,
    DiskDataLocation,
    LongTermArchiveTransfer,
    PhysicalCopy,
    RawDataFile,
    RawDataPackage,
    RawDataPackageMetadata,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PackageState, PhysicalCopyState, RawDataFileState, TransferState
from ccat_hpc.jobs.archive_batch import archives_waiting
from ccat_hpc.pipeline import archive_task as archive_module
from ccat_hpc.pipeline import step_items
from ccat_hpc.pipeline.archive_task import ARCHIVE_STATES
from ccat_hpc.pipeline.transfer_task import TRANSFER_STATES
from ccat_hpc.pipeline.transferring import transfers_waiting
from ccat_hpc.storage.factory import backend_for
from tests import step_runs
from tests.conftest import REPO
from tests.integration.test_bundle_step import run_bundle, set_pipeline
from tests.integration.test_checksum_step import run_batch as run_checksum
from tests.integration.test_package_step import backoff_passed, observe, run_package

P = PackageState
T = TransferState
SERVICES = Path(os.environ.get("CCAT_HPC_SERVICES_DIR", "/tmp/ccat-hpc-services"))


BOTH_ARCHIVES = pytest.mark.parametrize(
    "archive_kind", ["disk", pytest.param("s3", marks=pytest.mark.s3)], indirect=True
)


def set_method(factory: sessionmaker[Session], method: str) -> None:
    with transaction(factory) as session:
        session.execute(update(DataTransferRoute).values(method=method))


def bundled(
    factory: sessionmaker[Session], data_root: Path, tmp_path: Path, file_size: int = 3000
) -> list[Path]:
    sources = observe(factory, data_root, tmp_path, "280GHz", files=3, size=file_size)
    sources += observe(factory, data_root, tmp_path, "350GHz", files=2, size=file_size)
    run_checksum(factory)
    assert run_package(factory) is not None
    assert run_bundle(factory) is not None
    return sources


def run_step(factory: sessionmaker[Session], kind: str, tmp_path: Path) -> list[int] | None:
    waiting = {"transfer": transfers_waiting, "archive": archives_waiting}[kind]
    found = step_runs.run_step(factory, kind, waiting, tmp_path, os.environ)
    return None if found is None else found[1]


def all_rows(factory: sessionmaker[Session], model: type) -> list:  # type: ignore[type-arg]
    with factory() as session:
        found = list(session.scalars(select(model).order_by(model.id)))
        session.expunge_all()
        return found


def assert_archived_exactly(
    factory: sessionmaker[Session],
    sources: list[Path] | None,
    data_root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Every file ARCHIVED once (``sources``: these files); the archive's bytes, read
    through each package's index with ranged reads, are the files' bytes on SOURCE."""
    with factory() as session:
        files = {f.relative_path: f for f in session.scalars(select(RawDataFile))}
        assert {f.state for f in files.values()} == {RawDataFileState.ARCHIVED}
        if sources is not None:
            assert len(files) == len(sources)
        archive = session.scalars(select(DataLocation).filter_by(name="cologne-archive")).one()
        storage = backend_for(archive, environ or os.environ)
        packages = session.scalars(select(RawDataPackage)).all()
        assert {p.state for p in packages} == {P.ARCHIVED}
        members = 0
        for package in packages:
            stored = storage.stat(package.relative_path)
            assert (stored.size, stored.checksum) == (package.size, package.checksum)
            for entry in package.member_index["members"]:
                data = storage.read_bytes(package.relative_path, entry["offset"], entry["size"])
                item = files[entry["name"]]
                root = Path(session.get_one(DiskDataLocation, item.source_location_id).path)
                source = root / item.relative_path
                if source.exists():
                    assert data == source.read_bytes()
                else:  # cleaned up at SOURCE: its checksum was taken there
                    assert xxhash.xxh3_128_hexdigest(data) == item.checksum
                members += 1
        assert members == len(files)  # every file in exactly one archived package
        copies = session.scalars(
            select(PhysicalCopy).where(
                PhysicalCopy.data_location_id == archive.id, PhysicalCopy.type == "raw_data_package"
            )
        ).all()
        assert sorted(c.state for c in copies) == [PhysicalCopyState.VERIFIED] * len(packages)
        metadata = session.scalars(select(RawDataPackageMetadata)).all()
        assert len(metadata) == len(packages)
        for row in metadata:
            assert row.obs_collection and row.target_name and row.facility_name
            assert row.t_min is not None and row.t_max is not None and row.t_min <= row.t_max
            assert row.extra["archive_location"] == "cologne-archive"


@BOTH_ARCHIVES
@pytest.mark.parametrize("method", ["copy", "rsync"])
def test_packages_travel_to_cologne_and_are_archived_byte_for_byte(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path, method: str, archive_kind: str
) -> None:
    set_method(sites, method)
    sources = bundled(sites, data_root, tmp_path)
    assert run_step(sites, "archive", tmp_path) is None  # nothing has arrived yet
    assert run_step(sites, "transfer", tmp_path) is not None
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert dtp.state == P.TRANSFERRED
    (transfer,) = all_rows(sites, DataTransfer)
    assert (transfer.state, transfer.bytes_transferred) == (T.SUCCEEDED, dtp.size)
    assert transfer.started_at and transfer.finished_at
    (log,) = all_rows(sites, DataTransferLog)
    assert Path(log.log_path or "").read_text().strip()
    arrived = data_root / "cologne-buffer-01" / dtp.relative_path
    assert arrived.read_bytes() == (data_root / "chile-buffer-01" / dtp.relative_path).read_bytes()
    assert not list((data_root / "cologne-buffer-01").rglob(".*.transfer*"))
    assert run_step(sites, "archive", tmp_path) is not None
    assert [d.state for d in all_rows(sites, DataTransferPackage)] == [P.ARCHIVED]
    assert {t.state for t in all_rows(sites, LongTermArchiveTransfer)} == {T.SUCCEEDED}
    assert_archived_exactly(sites, sources, data_root)
    assert run_step(sites, "transfer", tmp_path) is None
    assert run_step(sites, "archive", tmp_path) is None


def test_a_relay_route_is_two_recorded_hops(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    with transaction(sites) as session:
        session.execute(update(DataTransferRoute).values(active=False, method="copy"))
        session.execute(
            update(DataTransferRoute)
            .where(DataTransferRoute.name == "chile-to-cornell-via-cologne")
            .values(active=True)
        )
    bundled(sites, data_root, tmp_path)
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert dtp.name.startswith("chile-to-cornell_")
    assert run_step(sites, "transfer", tmp_path) is not None
    hops = all_rows(sites, DataTransfer)
    with sites() as session:
        names = [
            (
                session.get_one(DataLocation, h.origin_location_id).name,
                session.get_one(DataLocation, h.destination_location_id).name,
            )
            for h in hops
        ]
    assert names == [
        ("chile-buffer-01", "cologne-buffer-01"),
        ("cologne-buffer-01", "cornell-buffer-01"),
    ]
    assert [h.state for h in hops] == [T.SUCCEEDED, T.SUCCEEDED]
    assert [d.state for d in all_rows(sites, DataTransferPackage)] == [P.TRANSFERRED]
    assert (data_root / "cornell-buffer-01" / dtp.relative_path).exists()
    assert run_step(sites, "archive", tmp_path) is None  # Cornell keeps no archive


@BOTH_ARCHIVES
@pytest.mark.parametrize(
    ("where", "verified_hours_ago"),
    [("in an RDP", 0), ("in an RDP", 2), ("in a tar header", 2)],
)
def test_a_dtp_damaged_at_the_destination_is_sent_again_and_archived_once(
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    archive_kind: str,
    where: str,
    verified_hours_ago: int,
) -> None:
    """Damage found as the RDPs are unpacked (just verified on arrival), or by the whole
    package check (verified long ago; a header is checked only there)."""
    set_method(sites, "copy")
    sources = bundled(sites, data_root, tmp_path)
    run_step(sites, "transfer", tmp_path)
    (dtp,) = all_rows(sites, DataTransferPackage)
    with transaction(sites) as session:
        session.execute(
            update(PhysicalCopy)
            .where(PhysicalCopy.type == "data_transfer_package")
            .values(verified_at=utcnow() - timedelta(hours=verified_hours_ago))
        )
    arrived = data_root / "cologne-buffer-01" / dtp.relative_path
    data = bytearray(arrived.read_bytes())
    data[700 if where == "in an RDP" else 100] ^= 0x40  # bytes 0-511: the first header
    arrived.write_bytes(bytes(data))
    assert run_step(sites, "archive", tmp_path) is not None
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert dtp.state == P.BUILT and "does not verify" in (dtp.failure_reason or "")
    with sites() as session:
        states = session.execute(
            select(DataLocation.name, PhysicalCopy.state)
            .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
            .where(PhysicalCopy.type == "data_transfer_package")
        ).all()
    assert sorted(states) == [
        ("chile-buffer-01", PhysicalCopyState.VERIFIED),
        ("cologne-buffer-01", PhysicalCopyState.CORRUPT),
    ]
    assert run_step(sites, "transfer", tmp_path) is not None
    assert run_step(sites, "archive", tmp_path) is not None
    assert [t.state for t in all_rows(sites, DataTransfer)] == [T.SUCCEEDED, T.SUCCEEDED]
    assert_archived_exactly(sites, sources, data_root)


def claim_transfer(factory: sessionmaker[Session], tmp_path: Path) -> int:
    found = step_runs.claim(factory, "transfer", transfers_waiting, tmp_path)
    assert found is not None
    return found[0]


DYING_TASK = """
import os, sys
from ccat_hpc.db.session import make_engine, make_session_factory
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.pipeline.transfer_task import transfer_task
from ccat_hpc.transfer import methods

def dying(self, src, dst, size):  # half the bytes written, then the node goes away
    os.pwrite(dst, os.pread(src, size // 2, 0), 0)
    os._exit(9)

methods.LocalCopy._ranges = dying
factory = make_session_factory(make_engine(sys.argv[1]))
run_task(factory, "transfer", int(sys.argv[2]), 0, {"transfer": transfer_task}, {})
"""


def test_a_transfer_killed_mid_copy_leaves_no_final_name_and_the_rerun_completes(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    set_method(sites, "copy")
    bundled(sites, data_root, tmp_path)
    (dtp,) = all_rows(sites, DataTransferPackage)
    final = data_root / "cologne-buffer-01" / dtp.relative_path
    batch_id = claim_transfer(sites, tmp_path)
    step_runs.run_dying_task(sites, DYING_TASK, batch_id)
    partials = list(final.parent.glob(f".{final.name}.transfer-*"))
    assert not final.exists() and len(partials) == 1
    assert [h.state for h in all_rows(sites, DataTransfer)] == [T.RUNNING]
    with transaction(sites) as session:  # what the tracker does for a task that died
        assert step_items.release(session, DataTransferPackage, [dtp.id], TRANSFER_STATES, batch_id)
    assert run_step(sites, "transfer", tmp_path) is not None
    hops = all_rows(sites, DataTransfer)
    assert [h.state for h in hops] == [T.FAILED, T.SUCCEEDED]
    assert "ended before" in (hops[0].failure_reason or "")
    assert final.read_bytes() == (data_root / "chile-buffer-01" / dtp.relative_path).read_bytes()
    assert list(final.parent.glob(f".{final.name}.transfer*")) == []


def stop_s3_server() -> None:
    pid = int((SERVICES / "seaweedfs" / "weed.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def start_s3_server() -> None:
    subprocess.run([str(REPO / "scripts" / "s3-server.sh"), "up"], check=True, timeout=120)


@pytest.mark.exclusive  # stops a shared service: run alone
@pytest.mark.s3
@pytest.mark.parametrize("archive_kind", ["s3"], indirect=True)
def test_the_s3_server_stopping_mid_upload_records_nothing_and_the_rerun_completes(
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    archive_kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_method(sites, "copy")
    monkeypatch.setenv("CCAT_S3_MAX_ATTEMPTS", "2")
    sources = bundled(sites, data_root, tmp_path, file_size=4 * 1024 * 1024)  # 3-part RDPs
    run_step(sites, "transfer", tmp_path)
    real = archive_module._verified_pieces
    stopped: list[bool] = []

    def server_dies_after_a_part(path: Path, checksum: str) -> Iterator[bytes]:
        """The first RDP's bytes; the server is killed once the first part has gone."""
        monkeypatch.setattr(archive_module, "_verified_pieces", real)
        sent = 0
        for piece in real(path, checksum):
            yield piece
            sent += len(piece)
            if sent >= 6 * 1024 * 1024 and not stopped:
                stopped.append(True)
                stop_s3_server()

    monkeypatch.setattr(archive_module, "_verified_pieces", server_dies_after_a_part)
    try:
        assert run_step(sites, "archive", tmp_path) is not None
    finally:
        start_s3_server()
    assert stopped
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert dtp.state == P.TRANSFERRED and "upload to cologne-archive failed" in (
        dtp.failure_reason or ""
    )
    (upload,) = all_rows(sites, LongTermArchiveTransfer)
    assert (upload.state, upload.failure_retryable) == (T.FAILED, True)
    with sites() as session:
        archive_id = session.scalar(select(DataLocation.id).filter_by(name="cologne-archive"))
        in_archive = session.scalars(
            select(PhysicalCopy.state).where(PhysicalCopy.data_location_id == archive_id)
        ).all()
    assert PhysicalCopyState.VERIFIED not in in_archive
    assert {p.state for p in all_rows(sites, RawDataPackage)} == {P.TRANSFERRED}
    assert run_step(sites, "archive", tmp_path) is None  # waits out its backoff
    backoff_passed(sites)
    assert run_step(sites, "archive", tmp_path) is not None
    assert_archived_exactly(sites, sources, data_root)


@pytest.mark.ssh
def test_rsync_over_ssh_to_a_buffer_on_another_host_is_checked_there(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    from tests.integration.test_transfer_methods import ssh_host

    host, _ = ssh_host()  # the test services' sshd: "another host" at 127.0.0.1
    set_method(sites, "rsync")
    with transaction(sites) as session:
        buffer = session.scalars(
            select(DiskDataLocation).where(DiskDataLocation.name == "cologne-buffer-01")
        ).one()
        buffer.host = host
    sources = bundled(sites, data_root, tmp_path)
    assert run_step(sites, "transfer", tmp_path) is not None
    (hop,) = all_rows(sites, DataTransfer)
    assert hop.state == T.SUCCEEDED
    (log,) = all_rows(sites, DataTransferLog)
    text = Path(log.log_path or "").read_text()
    assert f"on {host}: xxh128sum" in text and f"on {host}: mv" in text
    assert run_step(sites, "archive", tmp_path) is not None
    assert_archived_exactly(sites, sources, data_root)


def test_an_rdp_damaged_in_the_buffer_before_its_upload_is_unpacked_again(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_method(sites, "copy")
    sources = bundled(sites, data_root, tmp_path)
    run_step(sites, "transfer", tmp_path)
    real = archive_module.extract_members

    def extract_then_damage(source: object, names: list[str], folder: Path) -> list[Path]:
        paths = real(source, names, folder)  # type: ignore[arg-type]
        data = bytearray(paths[0].read_bytes())
        data[600] ^= 1  # between its unpacking and its upload
        paths[0].write_bytes(bytes(data))
        return paths

    monkeypatch.setattr(archive_module, "extract_members", extract_then_damage)
    assert run_step(sites, "archive", tmp_path) is not None
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert dtp.state == P.TRANSFERRED and "does not verify" in (dtp.failure_reason or "")
    with sites() as session:
        archive_id = session.scalar(select(DataLocation.id).filter_by(name="cologne-archive"))
        assert (
            PhysicalCopyState.VERIFIED
            not in session.scalars(
                select(PhysicalCopy.state).where(PhysicalCopy.data_location_id == archive_id)
            ).all()
        )
        assert list((data_root / "cologne-archive").rglob("*.tar")) == []  # nothing published
    monkeypatch.setattr(archive_module, "extract_members", real)
    backoff_passed(sites)
    assert run_step(sites, "archive", tmp_path) is not None
    assert_archived_exactly(sites, sources, data_root)


def test_a_custom_route_pins_its_origin_and_destination_locations(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    with transaction(sites) as session:
        session.execute(update(DataTransferRoute).values(method="copy"))
        session.execute(  # both routes out of Chile are active: the pinned one wins
            update(DataTransferRoute)
            .where(DataTransferRoute.name == "chile-buffer-to-cornell-buffer")
            .values(active=True)
        )
    bundled(sites, data_root, tmp_path)
    (dtp,) = all_rows(sites, DataTransferPackage)
    with sites() as session:
        assert (
            session.get_one(DataTransferRoute, dtp.route_id).name
            == "chile-buffer-to-cornell-buffer"
        )
    assert run_step(sites, "transfer", tmp_path) is not None
    (hop,) = all_rows(sites, DataTransfer)
    with sites() as session:
        names = (
            session.get_one(DataLocation, hop.origin_location_id).name,
            session.get_one(DataLocation, hop.destination_location_id).name,
        )
    assert names == ("chile-buffer-01", "cornell-buffer-01")
    assert [d.state for d in all_rows(sites, DataTransferPackage)] == [P.TRANSFERRED]


def test_a_dtp_damaged_at_its_origin_is_not_sent_again_but_bundled_anew(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    set_method(sites, "copy")
    sources = bundled(sites, data_root, tmp_path)
    (dtp,) = all_rows(sites, DataTransferPackage)
    origin = data_root / "chile-buffer-01" / dtp.relative_path
    data = bytearray(origin.read_bytes())
    data[700] ^= 0x10  # damaged in the Chile buffer after it was built
    origin.write_bytes(bytes(data))
    assert run_step(sites, "transfer", tmp_path) is not None
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert (dtp.state, dtp.failure_retryable) == (P.FAILED, False)
    assert "its copy at the origin" in (dtp.failure_reason or "")
    assert run_step(sites, "transfer", tmp_path) is None  # not sent again and again
    with sites() as session:
        states = session.execute(
            select(DataLocation.name, PhysicalCopy.state)
            .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
            .where(PhysicalCopy.type == "data_transfer_package")
        ).all()
    assert sorted(states) == [
        ("chile-buffer-01", PhysicalCopyState.CORRUPT),
        ("cologne-buffer-01", PhysicalCopyState.FAILED),
    ]
    assert {p.state for p in all_rows(sites, RawDataPackage)} == {P.BUILT}
    assert run_bundle(sites) is not None  # a new DTP from the RDPs (each checked again)
    assert run_step(sites, "transfer", tmp_path) is not None
    assert run_step(sites, "archive", tmp_path) is not None
    assert_archived_exactly(sites, sources, data_root)
    assert [d.state for d in all_rows(sites, DataTransferPackage)] == [P.FAILED, P.ARCHIVED]


DYING_ARCHIVE_TASK = """
import os, sys
from ccat_hpc.db.session import make_engine, make_session_factory
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.pipeline.archive_task import archive_task
from ccat_hpc.storage import posix

real = posix.PosixStorage._write_all

def dying(self, fd, data, key):  # the node goes away in the middle of an upload
    real(self, fd, data, key)
    os._exit(9)

posix.PosixStorage._write_all = dying
factory = make_session_factory(make_engine(sys.argv[1]))
run_task(factory, "archive", int(sys.argv[2]), 0, {"archive": archive_task}, dict(os.environ))
"""


def test_an_archive_task_killed_mid_upload_is_finished_by_the_rerun(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    set_method(sites, "copy")
    sources = bundled(sites, data_root, tmp_path)
    run_step(sites, "transfer", tmp_path)
    found = step_runs.claim(sites, "archive", archives_waiting, tmp_path)
    assert found is not None
    batch_id, claimed = found
    step_runs.run_dying_task(sites, DYING_ARCHIVE_TASK, batch_id)
    assert [u.state for u in all_rows(sites, LongTermArchiveTransfer)] == [T.RUNNING]
    in_archive = list((data_root / "cologne-archive").rglob("*.tar"))
    assert [p.name.startswith(".ccat-partial-") for p in in_archive] == [True]  # only a partial
    with transaction(sites) as session:  # what the tracker does for a dead task
        assert step_items.release(session, DataTransferPackage, claimed, ARCHIVE_STATES, batch_id)
    assert run_step(sites, "archive", tmp_path) is not None
    uploads = all_rows(sites, LongTermArchiveTransfer)
    assert uploads[0].state == T.FAILED and "ended before" in (uploads[0].failure_reason or "")
    assert {u.state for u in uploads[1:]} == {T.SUCCEEDED}
    assert_archived_exactly(sites, sources, data_root)
    leftovers = [p for p in (data_root / "cologne-archive").rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # the killed upload's partial file was cleaned up


def test_a_transfer_that_fails_is_retried_after_its_backoff_then_left_for_an_operator(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccat_hpc.transfer import methods

    set_method(sites, "copy")
    # a backoff of at least 0.5 s: the check right after the failure runs well within it
    set_pipeline(sites, retry_base_seconds=1.0, retry_max_seconds=10, max_attempts={"transfer": 3})
    bundled(sites, data_root, tmp_path)
    real = methods.LocalCopy.copy
    failures = [2]

    def flaky(self: methods.LocalCopy, source: Path, destination: object, log: object) -> int:
        if failures[0] > 0:
            failures[0] -= 1
            raise methods.TransferError("the link dropped (injected)")
        return real(self, source, destination, log)  # type: ignore[arg-type]

    monkeypatch.setattr(methods.LocalCopy, "copy", flaky)

    def attempt() -> list[int] | None:
        found = step_runs.run_step(sites, "transfer", transfers_waiting, tmp_path, site="chile")
        return None if found is None else found[1]

    assert attempt() is not None  # fails
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert dtp.state == P.BUILT and dtp.failure_retryable and dtp.retry_after is not None
    assert attempt() is None  # not before its backoff
    deadline = time.monotonic() + 30
    tries = 1
    while tries < 3 and time.monotonic() < deadline:
        if attempt() is not None:
            tries += 1
        time.sleep(0.05)
    hops = all_rows(sites, DataTransfer)
    assert [h.state for h in hops] == [T.FAILED, T.FAILED, T.SUCCEEDED]
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(hops)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0  # base 1 s, then 2 s; half may be jittered off
    assert [d.state for d in all_rows(sites, DataTransferPackage)] == [P.TRANSFERRED]


def test_after_its_last_try_an_item_waits_for_an_operator_until_told_to_retry(
    sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    from ccat_hpc.pipeline import step_items as items

    set_method(sites, "copy")
    bundled(sites, data_root, tmp_path)
    (data_root / "cologne-buffer-01").rmdir()  # not mounted
    with transaction(sites) as session:  # its last allowed try (5 by default) is now
        session.execute(update(DataTransferPackage).values(attempts=4))
    assert step_runs.run_step(sites, "transfer", transfers_waiting, tmp_path) is not None
    (dtp,) = all_rows(sites, DataTransferPackage)
    assert (dtp.state, dtp.failure_retryable, dtp.retry_after) == (P.BUILT, False, None)
    assert "gave up after 5 tries (needs an operator)" in (dtp.failure_reason or "")
    backoff_passed(sites)
    assert run_step(sites, "transfer", tmp_path) is None  # no blind retry
    (data_root / "cologne-buffer-01").mkdir()  # the operator mounts it, then:
    with transaction(sites) as session:
        assert items.retry_now(session, DataTransferPackage, TRANSFER_STATES) == 1
    assert run_step(sites, "transfer", tmp_path) is not None
    assert [d.state for d in all_rows(sites, DataTransferPackage)] == [P.TRANSFERRED]
