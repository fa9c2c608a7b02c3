"""The demo on the real services: Slurm job arrays (MPI packaging), PostgreSQL, S3."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ccat_hpc.db.session import make_engine, make_session_factory
from tests.conftest import REPO, _pg_admin_url, drop_pg_database, new_pg_database
from tests.integration.test_executors import slurm_ready
from tests.integration.test_storage import make_s3, s3_environment
from tests.integration.test_transfer_archive import assert_archived_exactly

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.s3, pytest.mark.mpi]


def test_the_demo_archives_on_slurm_postgresql_and_s3(tmp_path: Path) -> None:
    slurm_ready()
    environ = s3_environment()
    admin = _pg_admin_url()
    url = new_pg_database(admin, template=None)
    prefix = f"demo-tests/{uuid.uuid4().hex}"
    try:
        env = environ | {
            "CCAT_S3_PREFIX": prefix,
            "CCAT_S3_PART_SIZE_MB": "5",
            "PYTHONPATH": str(REPO),
        }
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ccat_hpc",
                "demo",
                "--workdir",
                str(tmp_path / "demo"),
                "--executor",
                "slurm",
                "--db",
                url,
                "--files",
                "4",
                "--file-size",
                "2000000",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "files: 8 of 8 archived" in result.stdout
        status = subprocess.run(
            [sys.executable, "-m", "ccat_hpc", "status", "--json", "--db", url],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        snapshot = json.loads(status.stdout)
        assert snapshot["raw_data_packages"] == {"archived": 2}
        stored = list(make_s3(prefix).list("rdp/"))
        assert len(stored) == 2 and all(item.size > 8_000_000 for item in stored)
        engine = make_engine(url)
        try:  # every file's bytes, read back from S3 through its package's index
            assert_archived_exactly(make_session_factory(engine), None, environ=env)
        finally:
            engine.dispose()
        scripts = "".join(p.read_text() for p in (tmp_path / "demo/jobs").rglob("*.sbatch"))
        assert "srun --mpi=pmix --ntasks=2" in scripts  # the package step ran on two ranks
    finally:
        drop_pg_database(admin, url)
        s3 = make_s3(prefix)
        for item in list(s3.list()):
            s3.delete(item.key)
