"""Several processes filing the same manifest at the same moment create it once."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import make_engine, make_session_factory
from ccat_hpc.pipeline.intake import file_path
from ccat_hpc.synthetic import SyntheticObservation, drop_manifest, write_observation
from tests.conftest import table_counts

SPEC = SyntheticObservation(
    "PrimeCam", "280GHz", "ECDFS-deep-001", "chile-source-primecam", 300, 10
)


def _file_after_barrier(url: str, path: str, barrier: object, results: object) -> None:
    factory = make_session_factory(make_engine(url))
    barrier.wait()  # type: ignore[attr-defined]
    outcome = file_path(factory, Path(path))
    results.put((outcome.status.value, outcome.message))  # type: ignore[attr-defined]


def file_at_once(db_url: str, paths: list[Path]) -> list[tuple[str, str]]:
    """File each manifest in a process of its own, all released at the same moment;
    returns every (status, message)."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(len(paths)), context.Queue()
    processes = [
        context.Process(target=_file_after_barrier, args=(db_url, str(p), barrier, results))
        for p in paths
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    return [results.get(timeout=5) for _ in paths]


def test_parallel_processes_file_exactly_once(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    manifest = write_observation(SPEC, data_root / SPEC.location)
    path = drop_manifest(manifest, tmp_path, "m")
    workers = 4
    statuses = sorted(status for status, _ in file_at_once(db_url, [path] * workers))
    assert statuses == ["filed"] + ["unchanged"] * (workers - 1)
    counts = table_counts(loaded_factory, "executed_obs_unit", "raw_data_file", "physical_copy")
    assert counts == {"executed_obs_unit": 1, "raw_data_file": 300, "physical_copy": 300}


def test_two_cli_processes_file_the_same_manifest(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    manifest = write_observation(SPEC, data_root / SPEC.location)
    path = drop_manifest(manifest, tmp_path, "m")
    command = [sys.executable, "-m", "ccat_hpc", "--db", db_url, "file", str(path)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sorted(line.split()[0] for line in outputs) == ["filed", "unchanged"]
    assert table_counts(loaded_factory, "executed_obs_unit")["executed_obs_unit"] == 1


def test_parallel_processes_filing_different_manifests_get_distinct_ids(
    loaded_factory: sessionmaker[Session], db_url: str, data_root: Path, tmp_path: Path
) -> None:
    workers = 4
    paths = [
        drop_manifest(write_observation(SPEC, data_root / SPEC.location), tmp_path, f"m{i}")
        for i in range(workers)
    ]
    assert sorted(status for status, _ in file_at_once(db_url, paths)) == ["filed"] * workers
    counts = table_counts(
        loaded_factory, "executed_obs_unit", "raw_data_file", "raw_data_file_physical_copy"
    )
    assert counts == {
        "executed_obs_unit": workers,
        "raw_data_file": 300 * workers,
        "raw_data_file_physical_copy": 300 * workers,
    }
