"""Process start-up of one job array task: CPU time of `ccat-hpc job run noop`.

Run by hand (the PostgreSQL rows need the server: scripts/services.sh up, then
``eval "$(scripts/services.sh env)"``):

    .venv/bin/python benchmarks/startup_benchmark.py [--runs 15] [--backends sqlite,postgres]

Creates a fresh ops-db (SQLite, and a throwaway PostgreSQL database on the server of
``CCAT_HPC_TEST_PG_URL``) with one batch of no-op tasks as an executor has just been
given it (SUBMITTED). Then, in the same run and alternating, it starts each command
``--runs`` times as its own process, as an array task starts (``python -m ccat_hpc``,
the command the job templates run): ``ccat-hpc job run noop`` on a new task of the
batch each time (a real task: marked RUNNING, then SUCCEEDED, in ops-db), ``ccat-hpc
--help``, ``python -c pass``, and for reference ``python -c "import ccat_hpc.db.models"``
(what loading the ORM and the models alone costs). Process time is user + system
CPU time of the child, from ``getrusage(RUSAGE_CHILDREN)`` deltas. Prints medians,
min, max, the wall-clock median, and the ratio of each median to ``python -c pass``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from ccat_hpc.db import migrate
from ccat_hpc.db.models import JobBatch
from ccat_hpc.db.session import make_engine, make_session_factory, transaction
from ccat_hpc.db.states import JobBatchState
from ccat_hpc.db.transitions import move
from ccat_hpc.jobs.batches import create_batch
from ccat_hpc.sites.schema import SlurmProfile

PG_ENV = "CCAT_HPC_TEST_PG_URL"
PYTHON = [sys.executable]
CCAT = [sys.executable, "-m", "ccat_hpc"]
#: an MPI launcher's variables would make the task ask MPI for its rank
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE")


def noop_batch(url: str, tasks: int, work: Path) -> int:
    """A fresh ops-db at ``url`` with one SUBMITTED batch of ``tasks`` no-op tasks."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    with transaction(make_session_factory(engine)) as session:
        batch = create_batch(
            session,
            "noop",
            [[] for _ in range(tasks)],
            executor="local",
            profile=SlurmProfile(),
            working_dir=work,
        )
        move(session, JobBatch, [batch.id], JobBatchState.PENDING, JobBatchState.SUBMITTED)
        batch_id = batch.id
    engine.dispose()
    return batch_id


def admin_sql(admin_url: str, sql: str) -> None:
    """One statement outside a transaction, on a connection of its own."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(sql))
    admin.dispose()


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the server of ``admin_url``, dropped afterwards."""
    name = f"ccat_startup_bench_{uuid.uuid4().hex[:10]}"
    admin_sql(admin_url, f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        admin_sql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cpu_and_wall(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """User + system CPU seconds and wall seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def commands(urls: dict[str, str], work: Path, runs: int) -> dict[str, list[list[str]]]:
    """The argv of every run of every command (each job run on a task of its own)."""
    table = {
        "python -c pass": [[*PYTHON, "-c", "pass"]] * runs,
        "ccat-hpc --help": [[*CCAT, "--help"]] * runs,
        "import ccat_hpc.db.models": [[*PYTHON, "-c", "import ccat_hpc.db.models"]] * runs,
    }
    for backend, url in urls.items():
        batch_id = noop_batch(url, runs, work)
        run = [*CCAT, "--db", url, "job", "run", "noop", "--batch", str(batch_id)]
        table[f"job run noop ({backend})"] = [[*run, "--task", str(i)] for i in range(runs)]
    return table


def measure(
    table: dict[str, list[list[str]]], env: dict[str, str], cwd: Path
) -> dict[str, list[tuple[float, float]]]:
    """Every command's runs, alternating between the commands (so load drifts alike)."""
    cpu_and_wall([*CCAT, "--help"], env, cwd)  # warm the page cache
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in table}
    for index in range(max(len(argvs) for argvs in table.values())):
        for name, argvs in table.items():
            results[name].append(cpu_and_wall(argvs[index], env, cwd))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if "postgres" in backends and not os.environ.get(PG_ENV):
        print(f"no {PG_ENV}: PostgreSQL skipped (scripts/services.sh up; eval its env)")
        backends.remove("postgres")
    work = Path(tempfile.mkdtemp(prefix="ccat-startup-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    with ExitStack() as stack:
        urls = {"sqlite": f"sqlite:///{work / 'ops.sqlite'}"} if "sqlite" in backends else {}
        if "postgres" in backends:
            urls["postgres"] = stack.enter_context(pg_database(os.environ[PG_ENV]))
        print(f"{args.runs} runs of each command, in {work} ...")
        report(measure(commands(urls, work, args.runs), env, work), args.runs)
    shutil.rmtree(work)


def report(results: dict[str, list[tuple[float, float]]], runs: int) -> None:
    base = statistics.median(cpu for cpu, _ in results["python -c pass"])
    print(f"\nprocess time (user + sys CPU) of one process, {runs} runs each:")
    print(f"  {'command':<28} {'median':>8} {'min':>8} {'max':>8} {'wall':>8} {'ratio':>7}")
    for name, samples in results.items():
        cpus = [cpu for cpu, _ in samples]
        median = statistics.median(cpus)
        wall = statistics.median(w for _, w in samples)
        print(
            f"  {name:<28} {median:7.3f}s {min(cpus):7.3f}s {max(cpus):7.3f}s "
            f"{wall:7.3f}s {median / base:6.1f}x"
        )
    print("  (ratio: median process time / that of `python -c pass`)")


if __name__ == "__main__":
    main()
