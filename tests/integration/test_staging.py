"""Staging for scientists on real storage (a folder archive and SeaweedFS S3), on SQLite
and PostgreSQL: whole observations and single files (by ranged reads), reuse, quotas,
the STAGING/READY/FAILED markers, release and cleanup, and `stage wait` as the first
step of a real Slurm job."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    JobTask,
    PhysicalCopy,
    RawDataFilePhysicalCopy,
    RawDataPackage,
    StagingJob,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import PhysicalCopyState, StagingJobState
from ccat_hpc.db.transitions import move
from ccat_hpc.errors import NotFoundError, UsageError
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.jobs.stage_batch import claim_stagings
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.pipeline.cleanup import run_cleanup
from ccat_hpc.pipeline.staging_request import QuotaExceeded, Selection, create_request, release
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.storage import s3 as s3_module
from ccat_hpc.storage.base import StorageError
from tests import step_runs
from tests.integration.test_bundle_step import run_bundle
from tests.integration.test_checksum_step import run_batch as run_checksum
from tests.integration.test_cleanup import archive_storage
from tests.integration.test_cli import InProcess
from tests.integration.test_executors import slurm_ready
from tests.integration.test_package_step import observe, run_package
from tests.integration.test_sbatch_wrappers import CCAT_BIN, job_end
from tests.integration.test_transfer_archive import BOTH_ARCHIVES, run_step

S = StagingJobState
C = PhysicalCopyState
PROCESSING = "cologne-processing-ramses"
OBS_UNIT = "ECDFS-deep-001"


@pytest.fixture
def processing(data_root: Path) -> Path:
    root = data_root / PROCESSING
    root.mkdir()
    return root


def ask(factory: sessionmaker[Session], user: str = "alice", **wanted: object) -> int:
    with transaction(factory) as session:
        return create_request(session, Selection(**wanted), user).id  # type: ignore[arg-type]


def stage_setup(tmp_path: Path) -> JobSetup:
    return JobSetup(LocalExecutor(state_root=tmp_path / "lj"), {}, tmp_path, SlurmProfile())


def stage_now(factory: sessionmaker[Session], tmp_path: Path) -> dict[str, int] | None:
    """Claim what waits as the scheduler does, run the task here; its result."""
    with transaction(factory) as session:
        claimed = claim_stagings(session, stage_setup(tmp_path))
    if claimed is None:
        return None
    step_runs.run_claimed(factory, "stage", claimed[0], os.environ)
    with factory() as session:
        task = session.scalars(select(JobTask).where(JobTask.batch_id == claimed[0])).one()
        return dict(task.result or {})


def job(factory: sessionmaker[Session], staging_id: int) -> StagingJob:
    with factory() as session:
        found = session.get_one(StagingJob, staging_id)
        session.expunge(found)
        return found


def folder(processing: Path, staging_id: int, user: str = "alice") -> Path:
    return processing / "requests" / user / str(staging_id)


def markers(where: Path) -> list[str]:
    return sorted(m for m in ("STAGING", "READY", "FAILED") if (where / m).exists())


@BOTH_ARCHIVES
def test_a_whole_observation_is_staged_verified_and_linked_into_its_folder(
    archived: dict[str, bytes], sites: sessionmaker[Session], processing: Path, tmp_path: Path
) -> None:
    staging_id = ask(sites, obs_unit=OBS_UNIT)
    assert job(sites, staging_id).state is S.PENDING
    result = stage_now(sites, tmp_path)
    assert result is not None and result["staged"] == 1 and result["fetched"] == 5
    done = job(sites, staging_id)
    assert done.state is S.STAGED and done.file_count == 5
    where = folder(processing, staging_id)
    assert markers(where) == ["READY"]
    listed = (where / "READY").read_text().splitlines()
    assert len(listed) == 5
    by_name = {Path(p).name: data for p, data in archived.items()}
    for line in listed:
        checksum, path = line.split("  ", 1)
        assert len(checksum) == 32 and (where / path).is_symlink()
        assert (where / path).read_bytes() == by_name[Path(path).name]
    checked = subprocess.run(
        ["xxh128sum", "-c", "READY"], cwd=where, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with sites() as session:
        copies = session.scalars(
            select(RawDataFilePhysicalCopy)
            .join(DataLocation, DataLocation.id == RawDataFilePhysicalCopy.data_location_id)
            .where(DataLocation.name == PROCESSING)
        ).all()
        assert [c.state for c in copies] == [C.VERIFIED] * 5
        assert all(c.expires_at == done.release_after for c in copies)


@pytest.mark.s3
@pytest.mark.parametrize("archive_kind", ["s3"], indirect=True)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_one_file_of_a_large_package_is_read_by_ranges_not_the_whole_package(
    sites: sessionmaker[Session],
    data_root: Path,
    processing: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size = 48 * 1024 * 1024
    sources = observe(sites, data_root, tmp_path, "280GHz", files=6, size=size)
    run_checksum(sites)
    assert run_package(sites) is not None and run_bundle(sites) is not None
    assert run_step(sites, "transfer", tmp_path) and run_step(sites, "archive", tmp_path)
    with sites() as session:
        package_size = session.scalars(select(RawDataPackage.size)).one()
    assert package_size > 280 * 1024 * 1024

    read_from_s3 = {"bytes": 0}
    real_read = s3_module.S3Storage.read

    def counting(self, key, offset=0, length=None, **kw):  # type: ignore[no-untyped-def]
        for piece in real_read(self, key, offset, length, **kw):
            read_from_s3["bytes"] += len(piece)
            yield piece

    monkeypatch.setattr(s3_module.S3Storage, "read", counting)
    wanted = sources[3].name
    staging_id = ask(sites, obs_unit=OBS_UNIT, files=f"*/{wanted}")
    result = stage_now(sites, tmp_path)
    assert result is not None and result["fetched"] == 1
    assert read_from_s3["bytes"] == size  # the file's bytes, not the package's
    staged = folder(processing, staging_id) / (
        (folder(processing, staging_id) / "READY").read_text().split("  ", 1)[1].strip()
    )
    assert staged.read_bytes() == sources[3].read_bytes()

    read_from_s3["bytes"] = 0  # the whole observation: one stream of the package's span
    ask(sites, obs_unit=OBS_UNIT)
    result = stage_now(sites, tmp_path)
    assert result is not None and result["fetched"] == 5  # the one staged before is reused
    assert package_size - 2 * size <= read_from_s3["bytes"] <= package_size


def test_files_staged_already_are_reused_and_a_quota_refuses_with_the_numbers(
    archived: dict[str, bytes], sites: sessionmaker[Session], processing: Path, tmp_path: Path
) -> None:
    first = ask(sites, obs_unit=OBS_UNIT, files="*/280GHz/*")
    assert stage_now(sites, tmp_path)["fetched"] == 3  # type: ignore[index]
    second = ask(sites, user="bob", obs_unit=OBS_UNIT)
    result = stage_now(sites, tmp_path)
    assert result is not None and result["fetched"] == 2 and result["files"] == 5
    assert markers(folder(processing, second, "bob")) == ["READY"]
    assert markers(folder(processing, first)) == ["READY"]

    with transaction(sites) as session:
        session.execute(
            update(DataLocation)
            .where(DataLocation.name == PROCESSING)
            .values(user_quota_bytes=10_000)
        )
    # alice holds 3 files (9,000 bytes); the 280GHz ones again cost nothing ...
    ask(sites, obs_unit=OBS_UNIT, files="*/280GHz/*")
    # ... but all five ask for 6,000 bytes more: refused, with the numbers
    with pytest.raises(QuotaExceeded) as refused:
        ask(sites, obs_unit=OBS_UNIT)
    message = str(refused.value)
    assert "asks 6000 bytes" in message and "uses 9000 of a 10000-byte quota" in message


def test_release_removes_the_folder_and_cleanup_deletes_only_files_no_request_uses(
    archived: dict[str, bytes], sites: sessionmaker[Session], processing: Path, tmp_path: Path
) -> None:
    everything = ask(sites, obs_unit=OBS_UNIT)
    some = ask(sites, user="bob", obs_unit=OBS_UNIT, files="*/350GHz/*")
    stage_now(sites, tmp_path)
    with transaction(sites) as session:
        assert release(session, everything).state is S.RELEASED
    assert not folder(processing, everything).exists()
    report = run_cleanup(sites, os.environ, location=PROCESSING)
    assert report.deleted == 3  # the 280GHz files; bob still uses the 350GHz ones
    store = sorted(p.name for p in (processing / "store").rglob("*.g3"))
    assert len(store) == 2
    assert (folder(processing, some, "bob") / "READY").exists()
    with transaction(sites) as session:
        release(session, some)
    assert run_cleanup(sites, os.environ, location=PROCESSING).deleted == 2
    assert not list((processing / "store").rglob("*.g3"))
    with sites() as session:
        states = session.scalars(
            select(PhysicalCopy.state)
            .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
            .where(DataLocation.name == PROCESSING)
        ).all()
        assert set(states) == {C.DELETED}


@BOTH_ARCHIVES
def test_an_archive_outage_waits_and_a_lost_archive_copy_fails_with_the_failed_marker(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    processing: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staging_id = ask(sites, obs_unit=OBS_UNIT)
    storage_class = type(archive_storage(sites))
    real_read = storage_class.read

    def outage(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise StorageError("the archive does not answer", transient=True)
        yield b""

    monkeypatch.setattr(storage_class, "read", outage)
    assert stage_now(sites, tmp_path)["retry"] == 1  # type: ignore[index]
    waiting = job(sites, staging_id)
    assert waiting.state is S.RETRY_WAIT and "does not answer" in (waiting.failure_reason or "")
    assert markers(folder(processing, staging_id)) == ["STAGING"]  # still on its way

    monkeypatch.setattr(storage_class, "read", real_read)
    with sites() as session:
        package = session.scalars(select(RawDataPackage).order_by(RawDataPackage.id)).first()
        assert package is not None
        session.expunge(package)
    archive_storage(sites).delete(package.relative_path)  # lost behind our back
    with transaction(sites) as session:
        session.execute(update(StagingJob).values(retry_after=None))
    assert stage_now(sites, tmp_path)["failed"] == 1  # type: ignore[index]
    failed = job(sites, staging_id)
    assert failed.state is S.FAILED and package.name in (failed.failure_reason or "")
    where = folder(processing, staging_id)
    assert markers(where) == ["FAILED"]
    assert package.name in (where / "FAILED").read_text()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


def test_the_stage_commands(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    processing: Path,
    tmp_path: Path,
    db_url: str,
    cli: InProcess,
) -> None:
    asked = cli(db_url, "stage", "request", "--obs-unit", OBS_UNIT, "--user", "carol", "--id-only")
    assert asked.returncode == 0, asked.stderr
    staging_id = int(asked.stdout)
    waited = cli(db_url, "stage", "wait", str(staging_id), "--timeout", "0", "--interval", "0.1")
    assert waited.returncode == 75
    stage_now(sites, tmp_path)
    waited = cli(db_url, "stage", "wait", str(staging_id), "--interval", "0.1")
    assert waited.returncode == 0 and waited.stdout.startswith("READY: ")
    shown = cli(db_url, "stage", "status", str(staging_id), "--folder")
    assert shown.stdout.strip() == str(folder(processing, staging_id, "carol"))
    listed = cli(db_url, "stage", "list", "--user", "carol")
    assert f"{staging_id}" in listed.stdout and "staged" in listed.stdout
    released = cli(db_url, "stage", "release", str(staging_id))
    assert "released" in released.stdout
    waited = cli(db_url, "stage", "wait", str(staging_id), "--interval", "0.1")
    assert waited.returncode == 1
    nothing = cli(db_url, "stage", "request", "--obs-unit", OBS_UNIT, "--files", "*/nothing*")
    assert nothing.returncode == 4 and "nothing matches" in nothing.stderr
    unsafe = cli(db_url, "stage", "request", "--obs-unit", OBS_UNIT, "--user", "../x")
    assert unsafe.returncode == 2
    nothing_asked = cli(db_url, "stage", "request")
    assert nothing_asked.returncode == 2 and "say what to stage" in nothing_asked.stderr


@pytest.mark.slurm
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_stage_wait_is_the_first_step_of_a_slurm_job_an_analysis_job_depends_on(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    processing: Path,
    tmp_path: Path,
    db_url: str,
) -> None:
    slurm_ready()
    env = dict(os.environ, CCAT_HPC_DB=db_url, CCAT_HPC_BIN=CCAT_BIN, CCAT_STAGE_INTERVAL="1")
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--job-name=ccat-stage-test",
            "--mem=500M",
            str(Path(__file__).parents[2] / "sbatch/stage.sbatch"),
            "--obs-unit",
            OBS_UNIT,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    stage_job = submitted.stdout.strip().split(";")[0]
    analysis = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--mem=500M",
            f"--dependency=afterok:{stage_job}",
            "--wrap",
            f'cd "$({CCAT_BIN} stage status "$(cat ccat-stage-{stage_job}.id)" --folder)"'
            " && xxh128sum -c READY > checked.txt",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    id_file = tmp_path / f"ccat-stage-{stage_job}.id"
    for _ in range(240):
        if id_file.exists() and id_file.read_text().strip():
            break
        subprocess.run(["sleep", "0.5"])
    assert subprocess.run(["squeue", "-h", "-j", analysis], capture_output=True, text=True).stdout
    result = stage_now(sites, tmp_path)  # the data center stages it (here: in this process)
    assert result is not None and result["staged"] == 1
    assert job_end(stage_job) == ("COMPLETED", "0:0")
    assert job_end(analysis) == ("COMPLETED", "0:0")
    staging_id = int(id_file.read_text())
    checked = folder(processing, staging_id, os.environ.get("USER") or "root") / "checked.txt"
    assert checked.read_text().count(": OK") == 5


def test_stage_wrapper_usage() -> None:
    shown = subprocess.run(
        ["bash", str(Path(__file__).parents[2] / "sbatch/stage.sbatch"), "--help"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "--dependency=afterok:$stage" in shown.stdout


def test_the_data_is_kept_for_its_lifetime_from_when_it_is_ready(
    archived: dict[str, bytes], sites: sessionmaker[Session], processing: Path, tmp_path: Path
) -> None:
    staging_id = ask(sites, obs_unit=OBS_UNIT)
    with transaction(sites) as session:  # it waited in the queue longer than its lifetime
        session.execute(update(StagingJob).values(created_at=utcnow() - timedelta(days=30)))
    stage_now(sites, tmp_path)
    done = job(sites, staging_id)
    assert done.release_after is not None
    assert done.release_after > utcnow() + timedelta(days=13)
    assert run_cleanup(sites, os.environ, location=PROCESSING).deleted == 0
    assert markers(folder(processing, staging_id)) == ["READY"]


def test_a_file_cleanup_is_deleting_is_staged_again_only_after_it(
    archived: dict[str, bytes], sites: sessionmaker[Session], processing: Path, tmp_path: Path
) -> None:
    first = ask(sites, obs_unit=OBS_UNIT, files="*det_000000*")
    stage_now(sites, tmp_path)
    with transaction(sites) as session:
        release(session, first)
        copy_ids = list(
            session.scalars(
                select(PhysicalCopy.id)
                .join(DataLocation, DataLocation.id == PhysicalCopy.data_location_id)
                .where(DataLocation.name == PROCESSING)
            )
        )
        # cleanup took them and stopped before their bytes went
        move(session, PhysicalCopy, copy_ids, C.VERIFIED, C.DELETION_PENDING)
    second = ask(sites, obs_unit=OBS_UNIT, files="*det_000000*")
    assert stage_now(sites, tmp_path)["retry"] == 1  # type: ignore[index]
    assert "cleanup is deleting" in (job(sites, second).failure_reason or "")
    assert run_cleanup(sites, os.environ, location=PROCESSING).deleted == len(copy_ids)
    with transaction(sites) as session:
        session.execute(update(StagingJob).values(retry_after=None))
    assert stage_now(sites, tmp_path)["staged"] == 1  # type: ignore[index]
    assert markers(folder(processing, second)) == ["READY"]
    assert all(p.read_bytes() for p in folder(processing, second).rglob("*.g3"))


def test_hostile_requests_and_folders_are_refused_or_left_alone(
    archived: dict[str, bytes], sites: sessionmaker[Session], processing: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="say what to stage"):
        ask(sites, files="*")  # a glob alone would search every file ever filed
    with pytest.raises(UsageError, match="not a user name"):
        ask(sites, user="../../etc", obs_unit=OBS_UNIT)
    with pytest.raises(NotFoundError):
        run_cleanup(sites, os.environ, location="no-such-place")
    staging_id = ask(sites, user="mallory", obs_unit=OBS_UNIT)
    stage_now(sites, tmp_path)
    # the user's folder is swapped for a link to somewhere else: release leaves it alone
    elsewhere = tmp_path / "precious"
    (elsewhere / str(staging_id)).mkdir(parents=True)
    (elsewhere / str(staging_id) / "keep.txt").write_text("mine")
    user_folder = processing / "requests" / "mallory"
    shutil.rmtree(user_folder)
    user_folder.symlink_to(elsewhere)
    with transaction(sites) as session:
        released = release(session, staging_id)
    assert released.state is S.RELEASED and "not a folder" in (released.folder_problem or "")
    assert (elsewhere / str(staging_id) / "keep.txt").read_text() == "mine"
