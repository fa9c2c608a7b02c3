"""Operators' campaigns and the integrity scrub on real storage (a folder archive and
SeaweedFS S3), on SQLite and PostgreSQL, and on the Slurm cluster: a re-verify
campaign finds silent corruption and repairs it from another copy, pause, resume and
cancel hold, a campaign never runs more tasks than its share, and the scrub finds an
object deleted behind the system's back within its budget."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xxhash
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import (
    Campaign,
    CampaignItem,
    DataLocation,
    DiskDataLocation,
    JobBatch,
    JobTask,
    PhysicalCopy,
    PhysicalCopyCheck,
    RawDataFile,
    RawDataPackage,
    RawDataPackagePhysicalCopy,
    Site,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import (
    CampaignItemState,
    CampaignState,
    JobBatchState,
    LocationType,
    PhysicalCopyState,
    RawDataFileState,
    StorageType,
)
from ccat_hpc.executors.local import LocalExecutor
from ccat_hpc.executors.slurm import SlurmExecutor
from ccat_hpc.jobs.batches import create_batch
from ccat_hpc.jobs.campaign_batch import claim_items
from ccat_hpc.jobs.kinds import job_kinds
from ccat_hpc.jobs.runner import run_task
from ccat_hpc.jobs.step_batches import JobSetup
from ccat_hpc.pipeline.campaigns import CampaignRequest, CampaignSelection, create_campaign
from ccat_hpc.pipeline.cleanup import run_cleanup
from ccat_hpc.scheduler.snapshot import take_snapshot
from ccat_hpc.sites.schema import SlurmProfile
from ccat_hpc.storage.base import StorageBackend
from ccat_hpc.storage.factory import backend_for
from ccat_hpc.storage.s3 import METADATA_KEY
from tests.conftest import REPO
from tests.integration.test_cleanup import archive_storage, assert_archive_holds
from tests.integration.test_cli import InProcess
from tests.integration.test_executors import slurm_ready
from tests.integration.test_package_step import observe
from tests.integration.test_sbatch_wrappers import CCAT_BIN, job_end, sbatch
from tests.integration.test_scheduler_faults import task_setup

C = PhysicalCopyState
I = CampaignItemState  # noqa: E741
SECOND = "cologne-archive-2"
#: a folder archive on SQLite and S3 on PostgreSQL (each storage and each database once)
ARCHIVE_AND_DB = pytest.mark.parametrize(
    ("backend", "archive_kind"),
    [
        ("sqlite", "disk"),
        pytest.param("postgres", "s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ],
    indirect=True,
)


def set_cologne(factory: sessionmaker[Session], **settings: float) -> None:
    with transaction(factory) as session:
        site = session.scalars(select(Site).where(Site.name == "cologne")).one()
        site.settings = {
            **site.settings,
            "pipeline": {**site.settings.get("pipeline", {}), **settings},
        }


def add_second_archive(factory: sessionmaker[Session], data_root: Path) -> None:
    """A new archive store in Cologne (a folder): where an S3 migration goes."""
    (data_root / SECOND).mkdir()
    with transaction(factory) as session:
        cologne = session.scalars(select(Site).where(Site.name == "cologne")).one()
        session.add(
            DiskDataLocation(
                name=SECOND,
                storage_type=StorageType.DISK,
                location_type=LocationType.LONG_TERM_ARCHIVE,
                site_id=cologne.id,
                priority=5,
                path=str(data_root / SECOND),
            )
        )


def packages(factory: sessionmaker[Session]) -> list[RawDataPackage]:
    with factory() as session:
        found = list(session.scalars(select(RawDataPackage).order_by(RawDataPackage.id)))
        session.expunge_all()
        return found


def copy_state(factory: sessionmaker[Session], package_id: int, location: str) -> C:
    with factory() as session:
        return session.scalars(
            select(RawDataPackagePhysicalCopy.state)
            .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
            .where(
                RawDataPackagePhysicalCopy.raw_data_package_id == package_id,
                DataLocation.name == location,
            )
        ).one()


def setup_here(tmp_path: Path) -> JobSetup:
    executor = LocalExecutor(state_root=tmp_path / "local-jobs")
    return JobSetup(executor, dict(os.environ), tmp_path / "jobs", SlurmProfile())


def run_batch_here(factory: sessionmaker[Session], kind: str, batch_id: int, tasks: int) -> None:
    handler = job_kinds()[kind].handler
    for index in range(tasks):
        assert run_task(factory, kind, batch_id, index, {kind: handler}, dict(os.environ)) == 0


def claim(factory: sessionmaker[Session], tmp_path: Path) -> tuple[int, list[int], int] | None:
    with transaction(factory) as session:
        claimed = claim_items(session, setup_here(tmp_path))
    return None if claimed is None else claimed[:3]


def run_campaigns(factory: sessionmaker[Session], tmp_path: Path) -> int:
    """Claim and run campaign batches here until none is left; how many ran."""
    ran = 0
    while (claimed := claim(factory, tmp_path)) is not None:
        run_batch_here(factory, "campaign", claimed[0], claimed[2])
        ran += 1
    with transaction(factory) as session:  # what the next claim would do: close the done
        claim_items(session, setup_here(tmp_path))
    return ran


def items(factory: sessionmaker[Session], campaign_id: int) -> list[CampaignItem]:
    with factory() as session:
        found = list(
            session.scalars(
                select(CampaignItem)
                .where(CampaignItem.campaign_id == campaign_id)
                .order_by(CampaignItem.id)
            )
        )
        session.expunge_all()
        return found


def campaign_state(factory: sessionmaker[Session], campaign_id: int) -> CampaignState:
    with factory() as session:
        return session.get_one(Campaign, campaign_id).state


def rot(storage: StorageBackend, package: RawDataPackage) -> None:
    """Silent corruption: one byte flipped, the checksum the store recorded left as it
    was (a cheap existence/size/metadata check does not see it)."""
    data = bytearray(b"".join(storage.read(package.relative_path)))
    data[len(data) // 2] ^= 0x01
    root = getattr(storage, "root", None)
    if root is not None:  # a folder: the bytes changed in place, the xattr kept
        with open(Path(root) / package.relative_path, "r+b") as handle:
            handle.seek(len(data) // 2)
            handle.write(bytes([data[len(data) // 2]]))
        return
    settings = storage.settings  # type: ignore[attr-defined]
    key = f"{settings.prefix.strip('/')}/{package.relative_path}".lstrip("/")
    storage.client.put_object(  # type: ignore[attr-defined]
        Bucket=settings.bucket,
        Key=key,
        Body=bytes(data),
        Metadata={METADATA_KEY: package.checksum},
    )


def whole_checksum(storage: StorageBackend, key: str) -> str:
    digest = xxhash.xxh3_128()
    for chunk in storage.read(key):
        digest.update(chunk)
    return str(digest.hexdigest())


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(capsys)


@ARCHIVE_AND_DB
def test_re_archive_to_a_new_store_then_re_verify_repairs_silent_corruption_from_it(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    db_url: str,
    cli: InProcess,
) -> None:
    add_second_archive(sites, data_root)
    made = cli(db_url, "campaign", "create", "re-archive", "--to", SECOND, "--json")
    assert made.returncode == 0, made.stderr
    rearchive = int(made.stdout.split('"id": ')[1].split(",")[0])
    assert run_campaigns(sites, tmp_path) == 1
    assert campaign_state(sites, rearchive) is CampaignState.DONE
    assert [(i.state, i.outcome) for i in items(sites, rearchive)] == [(I.DONE, "copied")] * 2
    first, second = packages(sites)
    primary = archive_storage(sites)
    with sites() as session:
        new_store = backend_for(
            session.scalars(select(DataLocation).where(DataLocation.name == SECOND)).one(),
            os.environ,
        )
    for package in (first, second):
        assert copy_state(sites, package.id, SECOND) is C.VERIFIED
        assert whole_checksum(new_store, package.relative_path) == package.checksum

    rot(primary, first)
    # the cheap re-check (existence, size, recorded checksum) cannot see it ...
    assert primary.stat(first.relative_path).checksum == first.checksum
    # ... a re-verify campaign reads every byte
    made = cli(db_url, "campaign", "create", "re-verify", "--location", "cologne-archive")
    assert made.returncode == 0, made.stderr
    assert "2 item(s)" in made.stdout and "at most 2 task(s) at once" in made.stdout
    reverify = int(made.stdout.split()[1].rstrip(":"))
    run_campaigns(sites, tmp_path)
    outcomes = {i.raw_data_package_id: (i.state, i.outcome) for i in items(sites, reverify)}
    assert outcomes == {first.id: (I.DONE, "repaired"), second.id: (I.DONE, "verified")}
    assert copy_state(sites, first.id, "cologne-archive") is C.VERIFIED
    assert whole_checksum(primary, first.relative_path) == first.checksum
    assert_archive_holds(sites, archived)
    with sites() as session:
        checks = [
            (c.outcome, c.checked_by)
            for c in session.scalars(select(PhysicalCopyCheck).order_by(PhysicalCopyCheck.id))
            if c.reason is None or "package" in c.reason or "written from" in c.reason
        ]
    assert (C.CORRUPT, f"campaign {reverify}") in checks
    assert checks[-1][0] is C.VERIFIED
    shown = cli(db_url, "campaign", "status", str(reverify))
    assert shown.returncode == 0
    assert "done" in shown.stdout and "1 repaired, 1 verified" in shown.stdout
    assert "2 of 2 item(s) (100%)" in shown.stdout


def test_a_lost_copy_is_repaired_from_the_buffer_and_without_any_copy_is_unrepairable(
    archived: dict[str, bytes], sites: sessionmaker[Session], tmp_path: Path
) -> None:
    first, second = packages(sites)
    primary = archive_storage(sites)
    primary.delete(first.relative_path)
    request = CampaignRequest("re-verify", CampaignSelection(packages=(first.name,)))
    with transaction(sites) as session:
        repair = create_campaign(session, request, 0.25).id
    run_campaigns(sites, tmp_path)
    [item] = items(sites, repair)
    assert (item.state, item.outcome) == (I.DONE, "repaired")
    assert "cologne-buffer-01" in (item.detail or "") and "missing" in (item.detail or "")
    assert whole_checksum(primary, first.relative_path) == first.checksum

    # now without a buffer copy either (cleanup took it): nothing to repair from
    primary.delete(second.relative_path)
    with transaction(sites) as session:
        elsewhere = session.scalars(
            select(RawDataPackagePhysicalCopy.id)
            .join(DataLocation, DataLocation.id == RawDataPackagePhysicalCopy.data_location_id)
            .where(
                RawDataPackagePhysicalCopy.raw_data_package_id == second.id,
                DataLocation.name != "cologne-archive",
            )
        ).all()
        assert elsewhere
        session.execute(
            update(PhysicalCopy).where(PhysicalCopy.id.in_(elsewhere)).values(state=C.DELETED)
        )
    request = CampaignRequest("re-verify", CampaignSelection(packages=(second.name,)))
    with transaction(sites) as session:
        lost = create_campaign(session, request, 0.25).id
    run_campaigns(sites, tmp_path)
    [item] = items(sites, lost)
    assert (item.state, item.outcome) == (I.FAILED, "unrepairable")
    assert "no other verified copy" in (item.detail or "")
    assert copy_state(sites, second.id, "cologne-archive") is C.MISSING
    assert campaign_state(sites, lost) is CampaignState.DONE


def test_pause_resume_and_cancel(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    tmp_path: Path,
    db_url: str,
    cli: InProcess,
) -> None:
    set_cologne(sites, campaign_items_per_task=1)
    one = cli(db_url, "campaign", "create", "re-verify", "--json")
    assert one.returncode == 0, one.stderr
    with sites() as session:
        first_id = session.scalars(select(Campaign.id)).one()
    assert cli(db_url, "campaign", "pause", str(first_id), "--reason", "S3 work").returncode == 0
    with sites() as session:
        assert take_snapshot(session).waiting["campaign"] == 0
    assert claim(sites, tmp_path) is None  # a paused campaign gives nothing
    refused = cli(db_url, "campaign", "pause", str(first_id))
    assert refused.returncode != 0 and "is paused: cannot pause" in refused.stderr
    assert "note: S3 work" in cli(db_url, "campaign", "status", str(first_id)).stdout

    assert cli(db_url, "campaign", "resume", str(first_id)).returncode == 0
    with sites() as session:
        assert take_snapshot(session).waiting["campaign"] == 2
    claimed = claim(sites, tmp_path)
    assert claimed is not None and claimed[2] == 2  # one item per task
    # paused while its batch waits to run: the tasks give their items back
    assert cli(db_url, "campaign", "pause", str(first_id)).returncode == 0
    run_batch_here(sites, "campaign", claimed[0], claimed[2])
    assert [i.state for i in items(sites, first_id)] == [I.PENDING, I.PENDING]
    assert cli(db_url, "campaign", "resume", str(first_id)).returncode == 0
    run_campaigns(sites, tmp_path)
    assert [i.outcome for i in items(sites, first_id)] == ["verified", "verified"]
    assert campaign_state(sites, first_id) is CampaignState.DONE

    two = cli(db_url, "campaign", "create", "re-verify", "--json")
    assert two.returncode == 0
    with sites() as session:
        second_id = max(session.scalars(select(Campaign.id)))
    claimed = claim(sites, tmp_path)  # the first item's task is claimed, then cancelled
    assert claimed is not None
    cancelled = cli(db_url, "campaign", "cancel", str(second_id), "--reason", "wrong selection")
    assert cancelled.returncode == 0 and "0 item(s) not started" in cancelled.stdout
    run_batch_here(sites, "campaign", claimed[0], claimed[2])
    assert [i.state for i in items(sites, second_id)] == [I.CANCELLED, I.CANCELLED]
    assert campaign_state(sites, second_id) is CampaignState.CANCELLED
    assert "cannot resume" in cli(db_url, "campaign", "resume", str(second_id)).stderr
    listed = cli(db_url, "campaign", "list", "--all").stdout
    assert "done" in listed and "cancelled" in listed


def test_hostile_campaign_requests_are_refused(
    archived: dict[str, bytes], sites: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    cases = [
        (("re-archive",), "needs --to"),
        (("re-archive", "--to", "cologne-buffer-01"), "writes to a LONG_TERM_ARCHIVE"),
        (("re-verify", "--to", "cologne-archive"), "no --to"),
        (("re-verify", "--share", "0.9"), "at most 25%"),
        (("re-verify", "--location", "no-such-place"), "no-such-place"),
        (("re-verify", "--state", "shiny"), "shiny"),
        (("re-verify", "--package", "nothing"), "matches nothing"),
        (("re-stage", "--user", "../../etc"), "not a user name"),
        (("re-stage", "--location", "cologne-archive"), "selects observations"),
    ]
    for argv, message in cases:
        result = cli(db_url, "campaign", "create", *argv)
        assert result.returncode != 0, argv
        assert message in result.stderr, (argv, result.stderr)
        assert "Traceback" not in result.stderr
    with sites() as session:
        assert session.scalars(select(Campaign)).all() == []
    assert cli(db_url, "campaign", "status", "99").returncode != 0


def test_a_re_stage_campaign_stages_each_observation_for_its_user(
    archived: dict[str, bytes], sites: sessionmaker[Session], data_root: Path, tmp_path: Path
) -> None:
    (data_root / "cologne-processing-ramses").mkdir(exist_ok=True)
    request = CampaignRequest(
        "re-stage", CampaignSelection(), created_by="operator", user="reprocessing"
    )
    with transaction(sites) as session:
        restage = create_campaign(session, request, 0.25).id
    run_campaigns(sites, tmp_path)
    done = items(sites, restage)
    assert done and {(i.state, i.outcome) for i in done} == {(I.DONE, "staged")}
    folders = list(
        (data_root / "cologne-processing-ramses" / "requests" / "reprocessing").iterdir()
    )
    assert len(folders) == len(done)
    for folder in folders:
        for line in (folder / "READY").read_text().splitlines():
            checksum, path = line.split("  ", 1)
            assert xxhash.xxh3_128_hexdigest((folder / path).read_bytes()) == checksum


# -- the scrub --------------------------------------------------------------------------


def run_scrub(factory: sessionmaker[Session], tmp_path: Path) -> dict[str, int]:
    with transaction(factory) as session:
        batch = create_batch(
            session, "scrub", [[]], executor="local", profile=SlurmProfile(), working_dir=tmp_path
        )
        batch_id = int(batch.id)
    run_batch_here(factory, "scrub", batch_id, 1)
    with factory() as session:
        task = session.scalars(select(JobTask).where(JobTask.batch_id == batch_id)).one()
        return dict(task.result or {})


@ARCHIVE_AND_DB
def test_the_scrub_finds_an_object_deleted_behind_its_back_within_its_budget(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    db_url: str,
    cli: InProcess,
) -> None:
    first, second = packages(sites)
    biggest = max(first.size, second.size)
    # a budget of one package a slice: the whole archive within two slices
    set_cologne(sites, scrub_bytes_per_day=biggest * 24, scrub_interval_minutes=60)
    # the newer verification (the second package's) goes last
    with transaction(sites) as session:
        first_copies = select(RawDataPackagePhysicalCopy.id).where(
            RawDataPackagePhysicalCopy.raw_data_package_id == first.id
        )
        session.execute(
            update(PhysicalCopy)
            .where(PhysicalCopy.id.in_(first_copies.scalar_subquery()))
            .values(verified_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    add_second_archive(sites, data_root)
    assert run_campaigns(sites, tmp_path) == 0
    archive_storage(sites).delete(second.relative_path)  # behind the system's back

    one = run_scrub(sites, tmp_path)
    assert one["checked"] == 1 and one["missing"] == 0  # the oldest (first) was due first
    assert one["bytes_read"] <= biggest
    assert copy_state(sites, second.id, "cologne-archive") is C.VERIFIED  # not found yet
    two = run_scrub(sites, tmp_path)
    assert two["checked"] == 1 and two["missing"] == 1 and two["repairs_opened"] == 1
    assert copy_state(sites, second.id, "cologne-archive") is C.MISSING
    read = one["bytes_read"] + two["bytes_read"]
    assert read == first.size  # the missing object cost nothing to read
    status = cli(db_url, "status")
    assert "integrity scrub of the archive:" in status.stdout, status.stderr
    assert "found in 30 days: 1 damaged or missing" in status.stdout
    assert f"missing  {second.name} at cologne-archive" in status.stdout

    # the repair the scrub opened: a re-archive of that package onto the archive; the
    # Cologne buffer still holds a verified copy to write it from
    with sites() as session:
        repair = session.scalars(select(Campaign).where(Campaign.created_by == "scrub")).one()
        assert repair.kind == "re-archive"
        repair_id = repair.id
    run_campaigns(sites, tmp_path)
    assert [(i.state, i.outcome) for i in items(sites, repair_id)] == [(I.DONE, "copied")]
    assert copy_state(sites, second.id, "cologne-archive") is C.VERIFIED
    assert whole_checksum(archive_storage(sites), second.relative_path) == second.checksum

    # the day's budget is spent (2 packages' worth of 24 was not; a tiny budget is)
    set_cologne(sites, scrub_bytes_per_day=1)
    assert run_scrub(sites, tmp_path)["checked"] == 0
    # at that budget a full pass takes years: status says so (in text and JSON)
    status = cli(db_url, "status")
    assert status.returncode == 0, status.stderr
    assert "a full pass takes" in status.stdout
    as_json = cli(db_url, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    [scrub] = json.loads(as_json.stdout)["scrub"]
    assert scrub["site"] == "cologne" and scrub["full_pass_days"] > 365
    assert scrub["found_count"] == 1 and scrub["repairs"] == {"done": 1}


def task_spans(
    factory: sessionmaker[Session], kind: str, after_batch: int = 0
) -> list[tuple[datetime, datetime]]:
    with factory() as session:
        rows = session.execute(
            select(JobTask.started_at, JobTask.finished_at)
            .join(JobBatch, JobBatch.id == JobTask.batch_id)
            .where(JobBatch.kind == kind, JobBatch.id > after_batch)
            .order_by(JobTask.started_at)
        ).all()
    assert all(start is not None and end is not None for start, end in rows), rows
    return [(start, end) for start, end in rows]


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def checksum_done(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        states = set(session.scalars(select(RawDataFile.state)))
    return RawDataFileState.FILED not in states and RawDataFileState.CHECKSUMMING not in states


def share_run(
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    setup: JobSetup,
    rest: float,
) -> None:
    """Two campaigns of 2 items (one per task, resting ``rest`` seconds after each) at a
    share of one slot in four, beside a new observation for the live pipeline; passes
    until all is done. No two campaign tasks ever ran at once, and the pipeline's
    checksum task started while the campaigns were still running (not starved)."""
    from ccat_hpc.scheduler.loop import one_pass

    set_cologne(
        sites,
        task_slots=4,
        campaign_share=0.25,
        campaign_items_per_task=1,
        campaign_item_rest_seconds=rest,
    )
    add_second_archive(sites, data_root)
    with transaction(sites) as session:
        request = CampaignRequest("re-archive", CampaignSelection(), to=SECOND)
        first = create_campaign(session, request, 0.25).id
        request = CampaignRequest("re-verify", CampaignSelection(location="cologne-archive"))
        second = create_campaign(session, request, 0.25).id
    with transaction(sites) as session:  # the fixture ran its batches here, unsubmitted
        session.execute(update(JobBatch).values(state=JobBatchState.DONE))
        before = max(session.scalars(select(JobBatch.id)))
    observe(sites, data_root, tmp_path, "280GHz", files=2, size=1000)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        one_pass(sites, lambda _step: setup, steps=("checksum", "campaign"))
        done = {campaign_state(sites, c) for c in (first, second)} == {CampaignState.DONE}
        if done and checksum_done(sites):
            break
        time.sleep(0.3)
    else:
        pytest.fail("the campaigns and the checksum step did not finish in 240 s")
    spans = task_spans(sites, "campaign")
    assert len(spans) == 4 and most_at_once(spans) == 1, spans
    [(checksum_started, _)] = task_spans(sites, "checksum", before)
    assert checksum_started < spans[-1][1]
    outcomes = [i.outcome for c in (first, second) for i in items(sites, c)]
    assert outcomes == ["copied", "copied", "verified", "verified"]


def test_a_campaign_beside_the_live_pipeline_takes_no_more_than_its_share(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    db_url: str,
) -> None:
    executor = LocalExecutor(state_root=tmp_path / "local-jobs", parallel=4)
    setup = dataclasses.replace(task_setup(db_url, tmp_path), executor=executor)
    share_run(sites, data_root, tmp_path, setup, 0.3)
    specs = [json.loads(p.read_text()) for p in (tmp_path / "local-jobs").glob("*/spec.json")]
    assert [s["parallel"] for s in specs if s["kind"] == "campaign"] == [1, 1]


@pytest.mark.slurm
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_on_slurm_a_campaign_array_is_throttled_to_its_share(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    db_url: str,
) -> None:
    slurm_ready()
    setup = dataclasses.replace(task_setup(db_url, tmp_path), executor=SlurmExecutor())
    share_run(sites, data_root, tmp_path, setup, 1.0)
    arrays = [
        line
        for path in (tmp_path / "jobs").glob("campaign-*.sbatch")
        for line in path.read_text().splitlines()
        if line.startswith("#SBATCH --array")
    ]
    assert arrays == ["#SBATCH --array=0-1%1"] * 2, arrays


def test_cleanup_keeps_relying_on_the_archive_while_copies_are_repaired(
    archived: dict[str, bytes], sites: sessionmaker[Session], tmp_path: Path
) -> None:
    """A copy found MISSING by the scrub is no proof for cleanup until it is repaired."""
    first, _ = packages(sites)
    archive_storage(sites).delete(first.relative_path)
    set_cologne(sites, scrub_bytes_per_day=10**12)
    assert run_scrub(sites, tmp_path)["missing"] == 1
    with transaction(sites) as session:
        session.execute(update(DataLocation).values(retention_days=0))
    report = run_cleanup(sites, os.environ)
    assert report.deleted > 0
    kept = copy_state(sites, first.id, "cologne-buffer-01")
    assert kept is C.VERIFIED  # the only good copy of the first package stays


def test_the_rearchive_wrapper_usage() -> None:
    shown = subprocess.run(
        ["bash", str(REPO / "sbatch/rearchive-campaign.sbatch"), "--help"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0
    assert "--to cologne-archive-2" in shown.stdout and "campaign pause ID" in shown.stdout
    bare = subprocess.run(
        ["bash", str(REPO / "sbatch/rearchive-campaign.sbatch")], capture_output=True, text=True
    )
    assert bare.returncode == 2 and "Usage:" in bare.stdout


@pytest.mark.slurm
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_rearchive_wrapper_follows_its_campaign_as_a_slurm_job(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    db_url: str,
) -> None:
    slurm_ready()
    add_second_archive(sites, data_root)
    env = dict(os.environ, CCAT_HPC_DB=db_url, CCAT_HPC_BIN=CCAT_BIN, CCAT_CAMPAIGN_INTERVAL="1")
    job = sbatch(
        str(REPO / "sbatch/rearchive-campaign.sbatch"),
        "--to",
        SECOND,
        "--location",
        "cologne-archive",
        env=env,
        name="ccat-rearchive-test",
        cwd=tmp_path,
    )
    id_file = tmp_path / f"ccat-rearchive-{job}.id"
    deadline = time.monotonic() + 120
    while not (id_file.exists() and id_file.read_text().strip()):
        assert time.monotonic() < deadline, "the wrapper did not create its campaign"
        time.sleep(0.5)
    campaign_id = int(id_file.read_text())
    run_campaigns(sites, tmp_path)  # the data center runs it (here: in this process)
    assert job_end(job) == ("COMPLETED", "0:0")
    log = (tmp_path / f"ccat-rearchive-{job}.log").read_text()
    assert f"campaign {campaign_id} done: 2/2 items" in log and "2 copied" in log
    for package in packages(sites):
        assert copy_state(sites, package.id, SECOND) is C.VERIFIED


def test_campaign_wait_exit_statuses(
    archived: dict[str, bytes], sites: sessionmaker[Session], db_url: str, cli: InProcess
) -> None:
    made = cli(db_url, "campaign", "create", "re-verify", "--id-only")
    campaign_id = made.stdout.strip()
    assert made.returncode == 0 and campaign_id.isdigit()
    waited = cli(db_url, "campaign", "wait", campaign_id, "--timeout", "0")
    assert waited.returncode == 75 and "still active" in waited.stderr
    assert cli(db_url, "campaign", "cancel", campaign_id).returncode == 0
    waited = cli(db_url, "campaign", "wait", campaign_id)
    assert waited.returncode == 1 and "cancelled" in waited.stdout


# -- failures on the way: outages, unreadable bytes, dead tasks ---------------------------


def fail_reads(monkeypatch: pytest.MonkeyPatch, key: str, error: Exception) -> None:
    """Reading ``key`` from a folder raises ``error`` (an outage, or the disk's EIO)."""
    from ccat_hpc.storage.posix import PosixStorage

    real = PosixStorage.read

    def read(self: PosixStorage, name: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if name == key:
            raise error
        return real(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PosixStorage, "read", read)


def test_an_outage_gives_the_item_back_after_a_backoff_and_retry_finishes_the_work(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    tmp_path: Path,
    db_url: str,
    cli: InProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ccat_hpc.storage.base import StorageError

    first, _ = packages(sites)
    set_cologne(sites, retry_base_seconds=600, retry_max_seconds=600)
    made = cli(db_url, "campaign", "create", "re-verify", "--package", first.name, "--id-only")
    campaign_id = int(made.stdout)
    with monkeypatch.context() as patch:
        fail_reads(patch, first.relative_path, StorageError("S3 503", transient=True))
        run_campaigns(sites, tmp_path)
    [item] = items(sites, campaign_id)
    assert item.state is I.PENDING and item.attempts == 1 and "S3 503" in (item.detail or "")
    assert item.retry_after is not None
    assert copy_state(sites, first.id, "cologne-archive") is C.VERIFIED  # nothing recorded
    assert claim(sites, tmp_path) is None  # it waits out its backoff
    with sites() as session:
        assert take_snapshot(session).waiting["campaign"] == 0
    with transaction(sites) as session:
        session.execute(update(CampaignItem).values(retry_after=None))
    # a permanent refusal ends it FAILED; `campaign retry` takes it again once mended
    with monkeypatch.context() as patch:
        fail_reads(patch, first.relative_path, StorageError("access denied"))
        run_campaigns(sites, tmp_path)
    [item] = items(sites, campaign_id)
    assert (item.state, item.outcome) == (I.FAILED, "error")
    assert campaign_state(sites, campaign_id) is CampaignState.DONE
    again = cli(db_url, "campaign", "retry", str(campaign_id))
    assert again.returncode == 0 and "1 failed item(s) queued again" in again.stdout
    assert campaign_state(sites, campaign_id) is CampaignState.ACTIVE
    run_campaigns(sites, tmp_path)
    assert [(i.state, i.outcome) for i in items(sites, campaign_id)] == [(I.DONE, "verified")]


def test_a_dead_task_gives_its_items_back_and_a_cancelled_campaign_keeps_them_cancelled(
    archived: dict[str, bytes], sites: sessionmaker[Session], tmp_path: Path
) -> None:
    from ccat_hpc.pipeline.campaign_task import release_items
    from ccat_hpc.pipeline.campaigns import cancel

    set_cologne(sites, campaign_items_per_task=1)
    with transaction(sites) as session:
        kept = create_campaign(session, CampaignRequest("re-verify", CampaignSelection()), 0.25)
        kept_id = kept.id
    claimed = claim(sites, tmp_path)
    assert claimed is not None
    batch_id, held, _ = claimed
    with transaction(sites) as session:  # the task died: the tracker gives back
        assert release_items(session, held, batch_id) == 2
    assert {(i.state, i.attempts) for i in items(sites, kept_id)} == {(I.PENDING, 1)}
    assert all(i.retry_after is not None for i in items(sites, kept_id))

    with transaction(sites) as session:
        session.execute(update(CampaignItem).values(retry_after=None))
    claimed = claim(sites, tmp_path)
    assert claimed is not None
    with transaction(sites) as session:
        cancel(session, kept_id)
        release_items(session, claimed[1], claimed[0])
    assert {i.state for i in items(sites, kept_id)} == {I.CANCELLED}


def test_the_scrub_skips_a_failing_store_and_records_unreadable_bytes(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from ccat_hpc.storage.base import StorageError

    first, second = packages(sites)
    with monkeypatch.context() as patch:
        fail_reads(patch, first.relative_path, StorageError("connection reset", transient=True))
        outage = run_scrub(sites, tmp_path)
    assert outage["errors"] == 1 and outage["checked"] == 0  # the store is left for next run
    assert copy_state(sites, first.id, "cologne-archive") is C.VERIFIED
    with monkeypatch.context() as patch:
        fail_reads(patch, first.relative_path, OSError(errno.EIO, "Input/output error"))
        found = run_scrub(sites, tmp_path)
    assert found["corrupt"] == 1 and found["checked"] == 2
    assert copy_state(sites, first.id, "cologne-archive") is C.CORRUPT
    assert copy_state(sites, second.id, "cologne-archive") is C.VERIFIED


def test_a_restore_passes_over_a_source_it_cannot_read_now(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new archive store is out; the Cologne buffer's copy serves instead."""
    from ccat_hpc.storage.base import StorageError

    add_second_archive(sites, data_root)
    with transaction(sites) as session:
        request = CampaignRequest("re-archive", CampaignSelection(), to=SECOND)
        create_campaign(session, request, 0.25)
    run_campaigns(sites, tmp_path)
    first, _ = packages(sites)
    primary = archive_storage(sites)
    primary.delete(first.relative_path)
    second_store = data_root / SECOND
    from ccat_hpc.storage.posix import PosixStorage

    real = PosixStorage.read

    def read(self: PosixStorage, name: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if Path(self.root) == second_store:
            raise StorageError("the new store is being moved", transient=True)
        return real(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PosixStorage, "read", read)
    request = CampaignRequest(
        "re-verify", CampaignSelection(location="cologne-archive", packages=(first.name,))
    )
    with transaction(sites) as session:
        repair = create_campaign(session, request, 0.25).id
    run_campaigns(sites, tmp_path)
    [item] = items(sites, repair)
    assert (item.state, item.outcome) == (I.DONE, "repaired"), item.detail
    assert "restored from its copy at cologne-buffer-01" in (item.detail or "")
    assert copy_state(sites, first.id, SECOND) is C.VERIFIED  # not blamed for the outage


def test_a_share_below_one_task_is_refused_and_repairs_go_before_other_campaigns(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    tmp_path: Path,
    db_url: str,
    cli: InProcess,
) -> None:
    from ccat_hpc.jobs.campaign_batch import next_campaign
    from ccat_hpc.pipeline.scrub import open_repair

    refused = cli(db_url, "campaign", "create", "re-verify", "--share", "0.1")
    assert refused.returncode == 2 and "less than one task" in refused.stderr
    assert "at least 13%" in refused.stderr  # 1/8 of the slots, rounded up

    with transaction(sites) as session:
        create_campaign(session, CampaignRequest("re-verify", CampaignSelection()), 0.25)
    first, _ = packages(sites)
    archive_storage(sites).delete(first.relative_path)
    with transaction(sites) as session:
        [copy] = integrity_copies(session, first.id)
        repair_id = open_repair(session, copy)
        assert repair_id is not None and open_repair(session, copy) is None  # queued once
    with sites() as session:
        assert next_campaign(session, None).id == repair_id  # type: ignore[union-attr]
        assert next_campaign(session, "cologne").id == repair_id  # type: ignore[union-attr]
        assert next_campaign(session, "chile") is None  # the work of Cologne's scheduler
    run_campaigns(sites, tmp_path)
    assert [i.outcome for i in items(sites, repair_id)] == ["copied"]


def integrity_copies(session: Session, package_id: int):  # type: ignore[no-untyped-def]
    from ccat_hpc.pipeline.archive_integrity import package_copies

    with_location = select(DataLocation.id).where(DataLocation.name == "cologne-archive")
    return package_copies(session, package_id, location_ids=tuple(session.scalars(with_location)))


def test_a_stop_during_an_item_gives_it_back_and_the_unstarted_ones_lose_no_try(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ccat_hpc.pipeline import archive_integrity
    from ccat_hpc.pipeline.tasks import TaskInterrupted

    with transaction(sites) as session:
        campaign_id = create_campaign(
            session, CampaignRequest("re-verify", CampaignSelection()), 0.25
        ).id
    claimed = claim(sites, tmp_path)
    assert claimed is not None and claimed[2] == 1  # both items in one task

    def stopped(*_args: object) -> object:
        raise TaskInterrupted(15)  # SIGTERM (a time limit) while the first item is read

    monkeypatch.setattr(archive_integrity, "read_in_full", stopped)
    handler = job_kinds()["campaign"].handler
    status = run_task(sites, "campaign", claimed[0], 0, {"campaign": handler}, dict(os.environ))
    assert status != 0
    first, second = items(sites, campaign_id)
    assert (first.state, first.attempts) == (I.PENDING, 1)  # its try counts
    assert (second.state, second.attempts, second.retry_after) == (I.PENDING, 0, None)
    assert first.claimed_by_batch_id is None and second.claimed_by_batch_id is None


def test_a_target_that_fails_part_way_does_not_condemn_the_source(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ccat_hpc.storage.base import ChecksumMismatch
    from ccat_hpc.storage.posix import PosixStorage

    add_second_archive(sites, data_root)
    real = PosixStorage.write

    def refuses_a_part(self: PosixStorage, key: str, chunks, **kwargs):  # type: ignore[no-untyped-def]
        if Path(self.root) == data_root / SECOND:
            next(iter(chunks))  # takes a piece, then the store refuses what it got
            raise ChecksumMismatch("part 1: the store computed another digest")
        return real(self, key, chunks, **kwargs)

    monkeypatch.setattr(PosixStorage, "write", refuses_a_part)
    with transaction(sites) as session:
        request = CampaignRequest("re-archive", CampaignSelection(), to=SECOND)
        campaign_id = create_campaign(session, request, 0.25).id
    run_campaigns(sites, tmp_path)
    for item in items(sites, campaign_id):
        assert item.state is I.FAILED and "another digest" in (item.detail or "")
    for package in packages(sites):
        assert copy_state(sites, package.id, "cologne-archive") is C.VERIFIED  # not blamed
        assert copy_state(sites, package.id, SECOND) is C.FAILED  # no PENDING row left


def test_an_object_the_store_refuses_is_passed_over_and_the_scrub_goes_on(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ccat_hpc.storage.base import StorageError

    first, second = packages(sites)
    with monkeypatch.context() as patch:
        fail_reads(patch, first.relative_path, StorageError("not a regular file"))
        run = run_scrub(sites, tmp_path)
    assert run["errors"] == 1 and run["checked"] == 1  # the other copy was read
    assert copy_state(sites, first.id, "cologne-archive") is C.VERIFIED  # nothing recorded
    with sites() as session:
        checks = session.scalars(select(PhysicalCopyCheck.physical_copy_id)).all()
        [read] = integrity_copies(session, second.id)
    assert checks == [read.copy_id]
