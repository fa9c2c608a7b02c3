"""A normal (non-editable) install runs everything from the wheel, far from any checkout.

This is how ccat-hpc reaches RAMSES: built into a wheel, installed into a fresh venv.
The job templates, site configs, catalog and migrations must come with the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ccat_hpc.db.revision import SCHEMA_HEAD
from tests.conftest import REPO
from tests.integration.test_executors import slurm_ready

IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", "demo-run"
)


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):  # type: ignore[no-untyped-def]
    finished = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert finished.returncode == 0, f"{command}: {finished.stdout}\n{finished.stderr}"
    return finished


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ccat-hpc installed from a wheel built from a copy of the sources."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=IGNORED)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base), "."], source)
    wheel = next(base.glob("ccat_hpc-*.whl"))
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], base)
    run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)], base)
    shutil.rmtree(source)  # nothing may come from the sources any more
    return venv


@pytest.mark.slow
def test_wheel_install_upgrades_loads_and_runs_jobs(installed: Path, tmp_path: Path) -> None:
    env = {
        "PATH": f"{installed / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CCAT_HPC_DB": str(tmp_path / "ops.sqlite"),
        "CCAT_DATA_ROOT": str(tmp_path / "data"),
        "CCAT_ARCHIVE_STORAGE": "disk",
        "CCAT_HPC_LOCAL_JOBS": str(tmp_path / "local-jobs"),
        "CCAT_HPC_JOBS_DIR": str(tmp_path / "jobs"),
    }
    if "SLURM_CONF" in os.environ:
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]

    def ccat(*args: str) -> str:
        return str(run(["ccat-hpc", *args], tmp_path, env).stdout)

    shipped = Path(ccat("sites", "shipped", "--dir").strip())
    assert shipped.is_relative_to(installed) and (shipped / "chile.yaml").is_file()
    assert f"is at {SCHEMA_HEAD}" in ccat("db", "upgrade")
    assert "created" in ccat("sites", "load", "--shipped")
    assert "created" in ccat("catalog", "load")
    assert "done (2 succeeded)" in ccat("job", "submit", "noop", "--tasks", "2", "--wait")
    slurm_ready()
    submitted = ccat("job", "submit", "noop", "--executor", "slurm", "--wait", "--site", "chile")
    assert "done (1 succeeded)" in submitted
