"""Cleanup on real storage (a folder archive and SeaweedFS S3), on SQLite and PostgreSQL:
it deletes exactly what the retention policy and the archive's copies allow, re-checks
the archive first, and never deletes a file whose archived copy is gone or damaged."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import xxhash
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import (
    DataLocation,
    JobBatch,
    PhysicalCopy,
    RawDataFile,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import JobBatchState, PhysicalCopyState
from ccat_hpc.db.transitions import move
from ccat_hpc.pipeline import cleanup as cleanup_module
from ccat_hpc.pipeline.cleanup import plan_cleanup, run_cleanup
from ccat_hpc.scheduler.loop import run as run_scheduler
from ccat_hpc.storage.base import StorageError
from ccat_hpc.storage.factory import backend_for
from tests.integration.test_cli import InProcess
from tests.integration.test_scheduler import local_setup
from tests.integration.test_transfer_archive import (
    BOTH_ARCHIVES,
)

C = PhysicalCopyState


def set_retention(factory: sessionmaker[Session], days: int | None, *names: str) -> None:
    with transaction(factory) as session:
        session.execute(
            update(DataLocation).where(DataLocation.name.in_(names)).values(retention_days=days)
        )


def copies_at(factory: sessionmaker[Session], location: str) -> dict[str, list[C]]:
    """copy type → states, at the location."""
    with factory() as session:
        rows = session.execute(
            select(PhysicalCopy.type, PhysicalCopy.state)
            .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
            .where(DataLocation.name == location)
            .order_by(PhysicalCopy.id)
        ).all()
    found: dict[str, list[C]] = {}
    for kind, state in rows:
        found.setdefault(kind, []).append(state)
    return found


def archive_storage(factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    with factory() as session:
        archive = session.scalars(select(DataLocation).filter_by(name="cologne-archive")).one()
        return backend_for(archive, os.environ)


def assert_archive_holds(factory: sessionmaker[Session], originals: dict[str, bytes]) -> None:
    """Every file's bytes, read back from the archive through its package's index."""
    storage = archive_storage(factory)
    by_name = {Path(path).name: data for path, data in originals.items()}
    with factory() as session:
        for package in session.scalars(select(RawDataPackage)):
            for entry in package.member_index["members"]:
                data = storage.read_bytes(package.relative_path, entry["offset"], entry["size"])
                assert data == by_name[Path(entry["name"]).name]


FIRST_HOP = ("chile-source-primecam", "chile-buffer-01")


@BOTH_ARCHIVES
def test_nothing_goes_before_its_retention_then_exactly_what_the_policy_allows(
    archived: dict[str, bytes], sites: sessionmaker[Session], data_root: Path
) -> None:
    # the shipped retention: 30 days at SOURCE, 7 in the buffers: nothing is due yet
    assert list(plan_cleanup(sites)) == []
    assert run_cleanup(sites, os.environ).deleted == 0

    set_retention(sites, 0, *FIRST_HOP)  # Chile's copies are due; Cologne's buffer keeps 7 days
    planned = [d for d in plan_cleanup(sites) if d.verdict.delete]
    assert {d.candidate.copy.location for d in planned} == set(FIRST_HOP)
    assert all(
        p.location == "cologne-archive" and p.verified_at for d in planned for p in d.verdict.proof
    )

    report = run_cleanup(sites, os.environ)
    assert report.deleted == len(planned) == 5 + 2 + 1  # files, RDPs, the DTP
    assert report.failed == report.refused == 0
    assert copies_at(sites, "chile-source-primecam") == {"raw_data_file": [C.DELETED] * 5}
    assert copies_at(sites, "chile-buffer-01") == {
        "raw_data_package": [C.DELETED] * 2,
        "data_transfer_package": [C.DELETED],
    }
    assert not [
        p
        for p in (data_root / "chile-source-primecam").rglob("*")
        if p.is_file() and p.suffix != ".json"
    ]
    assert not [p for p in (data_root / "chile-buffer-01").rglob("*") if p.is_file()]
    cologne = copies_at(sites, "cologne-buffer-01")
    assert set(cologne) == {"raw_data_package", "data_transfer_package"}
    assert {s for states in cologne.values() for s in states} == {C.VERIFIED}
    assert copies_at(sites, "cologne-archive") == {"raw_data_package": [C.VERIFIED] * 2}
    with sites() as session:
        deleted = session.scalars(select(PhysicalCopy).where(PhysicalCopy.state == C.DELETED))
        assert all(c.deleted_at is not None for c in deleted)
    assert_archive_holds(sites, archived)
    assert run_cleanup(sites, os.environ).deleted == 0  # a second run finds nothing


def package_of_first_file(factory: sessionmaker[Session]) -> RawDataPackage:
    with factory() as session:
        package = session.scalars(select(RawDataPackage).order_by(RawDataPackage.id)).first()
        assert package is not None
        session.expunge(package)
        return package


def file_copy_states(factory: sessionmaker[Session], package_id: int) -> set[C]:
    with factory() as session:
        return set(
            session.scalars(
                select(RawDataFilePhysicalCopy.state)
                .join(RawDataFile, RawDataFile.id == RawDataFilePhysicalCopy.raw_data_file_id)
                .where(RawDataFile.raw_data_package_id == package_id)
            )
        )


def archive_copy(factory: sessionmaker[Session], package_id: int) -> RawDataPackagePhysicalCopy:
    with factory() as session:
        copy = session.scalars(
            select(RawDataPackagePhysicalCopy)
            .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
            .where(
                RawDataPackagePhysicalCopy.raw_data_package_id == package_id,
                DataLocation.name == "cologne-archive",
            )
        ).one()
        session.expunge(copy)
        return copy


@BOTH_ARCHIVES
@pytest.mark.parametrize("damage", ["deleted", "other bytes", "shorter"])
def test_a_file_whose_archive_copy_is_gone_or_damaged_is_kept(
    archived: dict[str, bytes], sites: sessionmaker[Session], damage: str
) -> None:
    package = package_of_first_file(sites)
    storage = archive_storage(sites)
    if damage == "deleted":  # behind the system's back
        storage.delete(package.relative_path)
    else:
        data = b"\0" * (package.size if damage == "other bytes" else package.size // 2)
        storage.write(package.relative_path, [data], checksum=xxhash.xxh3_128_hexdigest(data))
    set_retention(sites, 0, *FIRST_HOP)
    # ops-db still believes the archive copy: the plan would delete ...
    assert all(d.verdict.delete for d in plan_cleanup(sites))

    report = run_cleanup(sites, os.environ)  # ... but the re-check on the archive refuses
    assert report.refused >= 1 and report.failed == 0
    assert file_copy_states(sites, package.id) == {C.VERIFIED}
    copy = archive_copy(sites, package.id)
    assert copy.state is (C.MISSING if damage == "deleted" else C.CORRUPT)
    assert "found by cleanup" in (copy.failure_reason or "")
    # the other package's files, and nothing of the damaged one, are gone from SOURCE
    with sites() as session:
        other = session.scalars(select(RawDataPackage).where(RawDataPackage.id != package.id)).one()
    assert file_copy_states(sites, other.id) == {C.DELETED}
    # the DTP holds the damaged package too: it stays
    assert copies_at(sites, "chile-buffer-01")["data_transfer_package"] == [C.VERIFIED]
    kept = [d for d in plan_cleanup(sites) if not d.verdict.delete]
    assert kept and all("verified long-term archive" in d.verdict.reason for d in kept)


def test_more_archive_copies_required_than_exist_keeps_everything(
    archived: dict[str, bytes], sites: sessionmaker[Session]
) -> None:
    set_retention(sites, 0, *FIRST_HOP)
    with transaction(sites) as session:
        for site in session.scalars(select(Site)):
            pipeline = {**site.settings.get("pipeline", {}), "archive_copies_required": 2}
            site.settings = {**site.settings, "pipeline": pipeline}
    decisions = list(plan_cleanup(sites))
    assert decisions and not any(d.verdict.delete for d in decisions)
    assert all(
        "1 verified long-term archive copy(ies), 2 needed" in d.verdict.reason for d in decisions
    )
    assert run_cleanup(sites, os.environ).deleted == 0


def test_a_source_file_replaced_since_filing_is_not_deleted(
    archived: dict[str, bytes], sites: sessionmaker[Session], data_root: Path
) -> None:
    replaced = Path(sorted(archived)[0])
    replaced.unlink()
    replaced.write_bytes(b"new data, not filed" + b"\0" * (len(archived[str(replaced)]) - 19))
    set_retention(sites, 0, *FIRST_HOP)
    report = run_cleanup(sites, os.environ)
    assert report.refused == 1 and report.deleted == 4 + 2 + 1
    assert "not the one filed" in report.problems[0]
    assert replaced.read_bytes().startswith(b"new data")


def test_a_deletion_that_fails_half_way_is_finished_by_the_next_run(
    archived: dict[str, bytes], sites: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_retention(sites, 0, *FIRST_HOP)
    real_delete = cleanup_module.Stores.of
    calls = {"n": 0}

    def failing_store(self, location_id):  # type: ignore[no-untyped-def]
        storage = real_delete(self, location_id)

        class Failing:
            def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                return getattr(storage, name)

            def delete(self, key: str) -> None:
                calls["n"] += 1
                if calls["n"] > 2:
                    raise StorageError("the file server went away")
                storage.delete(key)

        return Failing()

    monkeypatch.setattr(cleanup_module.Stores, "of", failing_store)
    first = run_cleanup(sites, os.environ)
    assert first.deleted == 2 and first.failed == 8 - 2
    pending = copies_at(sites, "chile-source-primecam")["raw_data_file"]
    assert pending.count(C.DELETION_PENDING) == 3 and pending.count(C.DELETED) == 2
    monkeypatch.setattr(cleanup_module.Stores, "of", real_delete)
    second = run_cleanup(sites, os.environ)
    assert second.deleted == 6 and second.failed == 0
    assert copies_at(sites, "chile-source-primecam") == {"raw_data_file": [C.DELETED] * 5}


def test_the_scheduler_runs_cleanup_as_a_job_on_its_interval(
    archived: dict[str, bytes], sites: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    set_retention(sites, 0, *FIRST_HOP)
    with transaction(sites) as session:  # the steps' batches above ran here, not as jobs
        ids = list(session.scalars(select(JobBatch.id)))
        move(
            session,
            JobBatch,
            ids,
            (JobBatchState.PENDING, JobBatchState.SUBMITTED),
            JobBatchState.CANCELLED,
        )
    setup = local_setup(db_url, tmp_path)

    def cleanup_passes(**how: bool) -> None:
        run_scheduler(
            sites,
            lambda _step: setup,
            interval=0.2,
            dry_run=False,
            stop=threading.Event(),
            steps=("cleanup",),
            **how,
        )

    cleanup_passes(once=False, until_idle=True)
    assert copies_at(sites, "chile-source-primecam") == {"raw_data_file": [C.DELETED] * 5}
    with sites() as session:
        batches = session.scalars(select(JobBatch).where(JobBatch.kind == "cleanup")).all()
        assert [b.state for b in batches] == [JobBatchState.DONE]
        assert batches[0].tasks[0].result["deleted"] == 8
    # within the interval (60 minutes by default) no second cleanup is submitted
    cleanup_passes(once=True)
    with sites() as session:
        assert len(session.scalars(select(JobBatch).where(JobBatch.kind == "cleanup")).all()) == 1


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def test_cleanup_plan_and_run_from_the_command_line(
    archived: dict[str, bytes], sites: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    run = cli
    set_retention(sites, 0, *FIRST_HOP)
    planned = run(db_url, "cleanup", "plan", "--json")
    assert planned.returncode == 0, planned.stderr
    shown = json.loads(planned.stdout)
    assert shown["delete"]["chile-source-primecam"] == {"copies": 5, "bytes": 5 * 3000}
    assert {row["what"] for row in shown["copies"]} == {"file", "package", "transfer package"}
    assert all(row["proof"][0]["archive"] == "cologne-archive" for row in shown["copies"])
    text = run(db_url, "cleanup", "plan")
    assert "would delete at chile-buffer-01: 3 copies" in text.stdout
    assert "cologne-archive (verified " in text.stdout
    done = run(db_url, "cleanup", "run")
    assert done.returncode == 0, done.stderr
    assert "cleanup: 8 deleted" in done.stdout
    assert run(db_url, "cleanup", "plan").stdout.strip() == "nothing to delete now"
