"""The safety property of cleanup on the real system (ops-db on SQLite, folders): from an
archived observation, random sequences of stage, release, a staging whose task dies,
corrupting or losing an archive copy, and cleanup (now, or days later) never let cleanup
remove the last intact copy of any file, and every READY folder holds its files whole
(hypothesis, stateful)."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.models import (
    DataLocation,
    DiskDataLocation,
    RawDataFile,
    RawDataPackage,
    StagingJob,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import StagingJobState
from ccat_hpc.jobs.stage_batch import claim_stagings, release_stagings
from ccat_hpc.pipeline.cleanup import run_cleanup
from ccat_hpc.pipeline.staging_layout import STORE
from ccat_hpc.pipeline.staging_request import Selection, create_request, release
from tests.integration.test_staging import OBS_UNIT, PROCESSING, stage_now, stage_setup

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def file_places(factory: sessionmaker[Session]) -> list[tuple[str, list[tuple[Path, int]]]]:
    """Per file: its checksum and every place its bytes may be (path, offset in it)."""
    with factory() as session:
        roots = {loc.name: Path(loc.path) for loc in session.scalars(select(DiskDataLocation))}
        kinds = dict(session.execute(select(DataLocation.name, DataLocation.location_type)).all())
        found = []
        for file, package in session.execute(
            select(RawDataFile, RawDataPackage).join(
                RawDataPackage, RawDataPackage.id == RawDataFile.raw_data_package_id
            )
        ):
            entry = next(
                e for e in package.member_index["members"] if e["name"] == file.relative_path
            )
            source = session.get_one(DataLocation, file.source_location_id).name
            places = [(roots[source] / file.relative_path, 0)]
            places.append((roots[PROCESSING] / STORE / source / file.relative_path, 0))
            places += [
                (roots[name] / package.relative_path, int(entry["offset"]))
                for name, kind in kinds.items()
                if kind.value in ("BUFFER", "LONG_TERM_ARCHIVE")
            ]
            found.append((f"{file.checksum}:{file.size}", places))
        return found


def intact(expected: str, places: list[tuple[Path, int]]) -> bool:
    checksum, size = expected.split(":")
    for path, offset in places:
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read(int(size))
        except OSError:
            continue
        if len(data) == int(size) and xxhash.xxh3_128_hexdigest(data) == checksum:
            return True
    return False


def test_no_sequence_lets_cleanup_remove_the_last_intact_copy_of_a_file(
    archived: dict[str, bytes],
    sites: sessionmaker[Session],
    engine: Engine,
    db_url: str,
    data_root: Path,
    tmp_path: Path,
) -> None:
    (data_root / PROCESSING).mkdir()
    database = Path(db_url.removeprefix("sqlite:///"))
    template = tmp_path / "template"
    engine.dispose()
    shutil.copytree(data_root, template / "data", symlinks=True)
    shutil.copy(database, template / "ops.sqlite")
    places = file_places(sites)
    archive = data_root / "cologne-archive"
    with sites() as session:
        packages = sorted(session.scalars(select(RawDataPackage.relative_path)))

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            engine.dispose()
            shutil.rmtree(data_root)
            shutil.copytree(template / "data", data_root, symlinks=True)
            shutil.copy(template / "ops.sqlite", database)
            self.requests: list[int] = []

        def ask(self, files: str | None) -> int:
            with transaction(sites) as session:
                made = create_request(session, Selection(obs_unit=OBS_UNIT, files=files), "sci")
            self.requests.append(made.id)
            return made.id

        @rule(some=st.sampled_from([None, "*/280GHz/*", "*det_000001*"]))
        def stage(self, some: str | None) -> None:
            self.ask(some)
            stage_now(sites, tmp_path)

        @rule(which=st.integers(0, 20))
        def release_one(self, which: int) -> None:
            if self.requests:
                with transaction(sites) as session:
                    release(session, self.requests[which % len(self.requests)])

        @rule()
        def a_staging_task_dies(self) -> None:
            self.ask(None)
            with transaction(sites) as session:
                claimed = claim_stagings(session, stage_setup(tmp_path))
                if claimed is not None:
                    release_stagings(session, claimed[1], claimed[0])

        @rule(which=st.integers(0, 1))
        def corrupt_an_archive_copy(self, which: int) -> None:
            path = archive / packages[which]
            if path.exists():
                data = bytearray(path.read_bytes())
                data[len(data) // 3] ^= 0xFF  # other bytes, and their own checksum recorded
                path.unlink()
                path.write_bytes(bytes(data))
                os.setxattr(path, "user.ccat.xxh3_128", xxhash.xxh3_128_hexdigest(data).encode())

        @rule(which=st.integers(0, 1))
        def lose_an_archive_copy(self, which: int) -> None:
            (archive / packages[which]).unlink(missing_ok=True)

        @invariant()
        def every_ready_folder_holds_its_files(self) -> None:
            """A STAGED request's folder shows READY, and every file it lists is there."""
            with sites() as session:
                staged = session.scalars(
                    select(StagingJob).where(StagingJob.state == StagingJobState.STAGED)
                ).all()
                folders = [data_root / PROCESSING / j.destination_path for j in staged]
            for folder in folders:
                for line in (folder / "READY").read_text().splitlines():
                    checksum, path = line.split("  ", 1)
                    data = (folder / path).read_bytes()
                    assert xxhash.xxh3_128_hexdigest(data) == checksum, folder / path

        @rule(days=st.sampled_from([0, 8, 31]))
        def cleanup(self, days: int) -> None:
            before = [(expected, where) for expected, where in places if intact(expected, where)]
            run_cleanup(sites, os.environ, now=utcnow() + timedelta(days=days))
            for expected, where in before:
                assert intact(expected, where), f"cleanup removed the last copy of {where[0]}"

    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
