"""`ccat-hpc step package` as an operator runs it: local executor, and Slurm with MPI ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.models import RawDataFile, RawDataPackage
from ccat_hpc.db.states import PackageState
from ccat_hpc.engine.api import build
from ccat_hpc.engine.layout import MemberSpec
from tests.conftest import REPO
from tests.integration.test_checksum_step import run_batch as run_checksum
from tests.integration.test_executors import slurm_ready
from tests.integration.test_package_step import observe

WAIT = 300


def step_package(
    db_url: str, tmp_path: Path, executor: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        CCAT_HPC_DB=db_url,
        CCAT_HPC_LOCAL_JOBS=str(tmp_path / "local-jobs"),
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ccat_hpc",
            "step",
            "package",
            "--executor",
            executor,
            "--workdir",
            str(tmp_path / "jobs"),
            "--wait",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        cwd=tmp_path,
    )


def serial_rebuild(
    factory: sessionmaker[Session], package: RawDataPackage, root: Path, out: Path
) -> bytes:
    """The same package built again by one process, from ops-db's record of its files."""
    with factory() as session:
        files = session.scalars(
            select(RawDataFile)
            .where(RawDataFile.raw_data_package_id == package.id)
            .order_by(RawDataFile.relative_path)
        ).all()
        specs = [
            MemberSpec(
                f.relative_path,
                f.size,
                f.source_mtime_ns or 0,
                0o644,
                str(root / f.relative_path),
                f.checksum,
            )
            for f in files
        ]
    build(None, lambda: specs, out)
    return out.read_bytes()


def built_packages(factory: sessionmaker[Session]) -> list[RawDataPackage]:
    with factory() as session:
        rows = list(session.scalars(select(RawDataPackage).order_by(RawDataPackage.id)))
        session.expunge_all()
    return rows


def test_step_package_on_the_local_executor(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    (data_root / "chile-buffer-01").mkdir()
    observe(loaded_factory, data_root, tmp_path, "280GHz")
    observe(loaded_factory, data_root, tmp_path, "350GHz")
    run_checksum(loaded_factory)
    result = step_package(db_url, tmp_path, "local", "--site", "chile")
    assert result.returncode == 0, result.stderr
    assert "2 package(s) (2 new)" in result.stdout and "packages: 2 built" in result.stdout
    again = step_package(db_url, tmp_path, "local")
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "nothing to package: no checksummed file is waiting",
    )


def test_step_package_names_what_failed_and_exits_1(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    observe(loaded_factory, data_root, tmp_path, "280GHz")
    run_checksum(loaded_factory)
    result = step_package(db_url, tmp_path, "local")  # the buffer folder does not exist
    assert result.returncode == 1
    assert "packages: 1 planned" in result.stdout
    assert "PrimeCam_280GHz_" in result.stderr and "storage root" in result.stderr


@pytest.mark.slurm
@pytest.mark.mpi
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_mpi_ranks_under_slurm_write_the_same_bytes_as_one(
    loaded_factory: sessionmaker[Session],
    db_url: str,
    data_root: Path,
    tmp_path: Path,
    backend: str,
) -> None:
    slurm_ready()
    buffer = data_root / "chile-buffer-01"
    buffer.mkdir()
    observe(loaded_factory, data_root, tmp_path, "280GHz", files=6)
    run_checksum(loaded_factory)
    # the shipped chile site gives the package job kind 2 ranks (srun --mpi=pmix -n 2)
    result = step_package(db_url, tmp_path, "slurm", "--site", "chile")
    assert result.returncode == 0, result.stdout + result.stderr
    (package,) = built_packages(loaded_factory)
    assert package.state == PackageState.BUILT
    logs = "".join(p.read_text() for p in (tmp_path / "jobs").rglob("*.out"))
    assert logs.count("built in") == 1, logs  # rank 0 records; both ranks wrote
    two_ranks = (buffer / package.relative_path).read_bytes()
    one_rank = serial_rebuild(
        loaded_factory, package, data_root / "chile-source-primecam", tmp_path / "serial.tar"
    )
    assert two_ranks == one_rank
