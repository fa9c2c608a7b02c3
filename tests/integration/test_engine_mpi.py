"""The engine with real MPI ranks (Open MPI's mpiexec, mpi4py): same bytes, same errors."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xxhash

from ccat_hpc.engine.build import build_package, partial_path
from ccat_hpc.engine.chunks import iter_chunks
from ccat_hpc.engine.index import IndexEntry
from ccat_hpc.engine.layout import compute_layout
from ccat_hpc.engine.mpi import item_owner, launched_ranks
from ccat_hpc.engine.reader import LocalFile, read_index
from ccat_hpc.engine.sources import specs_from_folders
from ccat_hpc.engine.verify import verify_package
from tests.conftest import REPO, _require
from tests.integration.test_engine import (
    assert_stopped_midway,
    big_sources,
    blocking_opens,
    make_tree,
    small_disk,
    wait_for,
)

pytestmark = pytest.mark.mpi

CHUNK = 64 * 1024
SCENARIOS = REPO / "tests" / "mpi_scenarios.py"
CCAT = [sys.executable, "-m", "ccat_hpc"]


@pytest.fixture(scope="module")
def mpiexec() -> str:
    found = shutil.which("mpiexec")
    problem = None
    if found is None:
        problem = "mpiexec is not installed (Debian: openmpi-bin)"
    elif importlib.util.find_spec("mpi4py") is None:
        problem = "mpi4py is not installed (pip install -e '.[mpi]')"
    if problem is not None:
        if _require("mpi"):
            pytest.fail(problem)
        pytest.skip(problem)
    assert found is not None
    return found


def run_ranks(
    mpiexec: str, ranks: int, command: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return subprocess.run(
        [mpiexec, "--oversubscribe", "-n", str(ranks), *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def scenario(
    mpiexec: str, ranks: int, results: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    finished = run_ranks(mpiexec, ranks, [sys.executable, str(SCENARIOS), *args])
    records = [json.loads(p.read_text()) for p in sorted(results.glob("rank-*.json"))]
    return finished, records


def member_first_chunk_on_rank(src: Path, rank: int, ranks: int) -> str:
    """A member whose data starts in a chunk that ``rank`` of ``ranks`` reads."""
    specs = specs_from_folders([src])
    for chunk in iter_chunks(compute_layout(specs), CHUNK):
        if item_owner(chunk.number, ranks) != rank:
            continue
        for piece in chunk.pieces:
            if piece.member >= 0 and piece.source_offset == 0 and piece.length > 0:
                return specs[piece.member].name
    raise AssertionError(f"no member starts on rank {rank}")


def test_every_rank_gets_items_and_rank_0_the_smallest_share() -> None:
    for ranks in (1, 2, 3, 4, 8):
        shares = [0] * ranks
        for number in range(10_000):
            shares[item_owner(number, ranks)] += 1
        assert sum(shares) == 10_000 and min(shares) > 0
        assert shares[0] == min(shares)
        assert max(shares[1:], default=shares[0]) - min(shares[1:], default=shares[0]) <= 1


def test_launcher_environment_is_recognised() -> None:
    assert launched_ranks({}) is None
    assert launched_ranks({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert launched_ranks({"PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "2"}) == 2
    assert launched_ranks({"PMIX_RANK": "0"}) == 0


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_any_number_of_ranks_writes_identical_bytes(
    mpiexec: str, tmp_path: Path, ranks: int
) -> None:
    src = make_tree(tmp_path)  # the large file spans 49 chunks: every rank gets part of it
    serial = build_package(specs_from_folders([src]), tmp_path / "serial.tar", chunk_size=CHUNK)
    out, results = tmp_path / "parallel.tar", tmp_path / "results"
    finished, records = scenario(mpiexec, ranks, results, "build", str(src), str(out), str(results))
    assert finished.returncode == 0, finished.stderr
    assert [r["rank"] for r in records] == list(range(ranks))
    assert {r["size"] for r in records} == {ranks}
    assert len({r["pid"] for r in records}) == ranks
    assert {r["xxh3_128"] for r in records} == {serial.xxh3_128}
    assert out.read_bytes() == (tmp_path / "serial.tar").read_bytes()
    assert not partial_path(out).exists()


def test_parallel_verify_agrees_with_xxh128sum(mpiexec: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    package = tmp_path / "pkg.tar"
    built = build_package(specs_from_folders([src]), package, chunk_size=CHUNK)
    results = tmp_path / "results"
    finished, records = scenario(mpiexec, 3, results, "verify", str(package), str(results))
    assert finished.returncode == 0, finished.stderr
    assert [r["xxh3_128"] for r in records] == [built.xxh3_128] * 3
    assert xxhash.xxh3_128_hexdigest(package.read_bytes()) == built.xxh3_128


def test_cli_under_mpiexec_prints_once_and_finds_corruption(mpiexec: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    out = tmp_path / "pkg.tar"
    build = [*CCAT, "package", "build", str(src), "-o", str(out), "--buffer-size", str(CHUNK)]
    finished = run_ranks(mpiexec, 2, build)
    assert finished.returncode == 0, finished.stderr
    [line] = finished.stdout.splitlines()
    assert line.split()[0] == xxhash.xxh3_128_hexdigest(out.read_bytes())
    verify = [*CCAT, "package", "verify", str(out), "--buffer-size", str(CHUNK)]
    assert "OK (44 members" in run_ranks(mpiexec, 2, verify).stdout
    large = next(m for m in read_index_of(out) if m.name.endswith("large.g3"))
    on_rank_1 = next(n for n in range(large.offset // CHUNK + 1, 99) if item_owner(n, 2) == 1)
    with out.open("r+b") as handle:
        handle.seek(on_rank_1 * CHUNK + CHUNK // 2)  # inside large.g3, in a chunk rank 1 reads
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    failed = run_ranks(mpiexec, 2, verify)
    assert failed.returncode == 7
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: members do not match the index: src/large.g3"]


def read_index_of(package: Path) -> list[IndexEntry]:
    source = LocalFile(package)
    try:
        return list(read_index(source).members)
    finally:
        source.close()


def test_a_source_vanishing_on_another_rank_fails_every_rank(mpiexec: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    victim = member_first_chunk_on_rank(src, rank=1, ranks=2)
    out, results = tmp_path / "pkg.tar", tmp_path / "results"
    finished, records = scenario(
        mpiexec, 2, results, "build", str(src), str(out), str(results), "--vanish", victim
    )
    assert finished.returncode != 0
    assert len(records) == 2
    assert {r["error"]["type"] for r in records} == {"SourceChanged"}
    [message] = {r["error"]["message"] for r in records}
    assert victim.rsplit("/", 1)[-1] in message and "cannot open" in message
    assert not out.exists() and not partial_path(out).exists()


def test_checksum_mismatch_fails_every_rank_and_names_the_file(
    mpiexec: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path)
    victim = member_first_chunk_on_rank(src, rank=1, ranks=2)
    out, results = tmp_path / "pkg.tar", tmp_path / "results"
    wrong = f"{victim}={'0' * 32}"
    finished, records = scenario(
        mpiexec, 2, results, "build", str(src), str(out), str(results), "--expect", wrong
    )
    assert finished.returncode != 0
    assert {r["error"]["type"] for r in records} == {"ChecksumMismatch"}
    assert all(victim.rsplit("/", 1)[-1] in r["error"]["message"] for r in records)
    assert not out.exists() and not partial_path(out).exists()


def test_disk_full_under_mpi_fails_every_rank(mpiexec: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    with small_disk(tmp_path) as small:
        results = tmp_path / "results"
        out = small / "pkg.tar"
        finished, records = scenario(mpiexec, 2, results, "build", str(src), str(out), str(results))
        assert finished.returncode != 0
        assert len(records) == 2
        assert all("cannot reserve" in r["error"]["message"] for r in records)
        assert list(small.iterdir()) == []


def test_killed_parallel_build_leaves_nothing_and_a_rerun_succeeds(
    mpiexec: str, tmp_path: Path
) -> None:
    src = big_sources(tmp_path)
    out = tmp_path / "pkg.tar"
    build = [*CCAT, "package", "build", str(src), "-o", str(out), "--buffer-size", str(CHUNK)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with blocking_opens(src / "big2.bin") as tried:
        launcher = subprocess.Popen(
            [mpiexec, "--oversubscribe", "-n", "2", *build],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        wait_for(tried, "a rank to open big2.bin")  # rank 0 cannot hash past that chunk
        assert_stopped_midway(src, out)
        # as Slurm would: every rank and the launcher at once, no cleanup (ranks run in
        # process groups of their own, so they are killed by parent, then the launcher's group)
        subprocess.run(["pkill", "-KILL", "-P", str(launcher.pid)], check=True)
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
    assert not out.exists() and partial_path(out).exists()
    rerun = run_ranks(mpiexec, 2, build, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not partial_path(out).exists()
    assert verify_package(LocalFile(out), rerun.stdout.split()[0]).members == 4
