"""Seconds per task of a no-op job array: through ccat-hpc, and bare, in one run.

Run by hand (the Slurm rows need the cluster: scripts/services.sh up, then
``eval "$(scripts/services.sh env)"``):

    .venv/bin/python benchmarks/array_overhead_benchmark.py [--tasks 100] [--runs 1]

Creates a SQLite ops-db and then, in the same run, for ``--runs`` rounds:

- ``ccat-hpc job submit noop --tasks N --wait --executor local``: N task processes
  (at most one per core), each recording its start and end in ops-db;
- ``seq N | xargs -P <cores> python -c pass``: the floor of N Python processes;

and, when ``sbatch`` is on PATH and a cluster answers (``sinfo``):

- ``ccat-hpc job submit noop --tasks N --wait --executor slurm``;
- ``sbatch --array=0-(N-1) --wait --wrap true``: the bare array, as asked of Slurm
  by hand (``sbatch --wait`` polls coarsely: it may return well after the end);
- the same array submitted with ``--parsable`` and followed with ``squeue`` as
  ``ccat-hpc --wait`` follows its batches (first after 0.1 s, then 1.5x longer
  each time, at most every 2 s): the fair bare baseline.

Prints the wall time from submission to the end, seconds per task, and each row's
ratio to the bare Slurm array followed by squeue (or, without Slurm, to the xargs
floor).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ccat_hpc.db import migrate
from ccat_hpc.db.session import make_engine

CCAT = [sys.executable, "-m", "ccat_hpc"]
FIRST_POLL, MAX_POLL = 0.1, 2.0  # as ccat_hpc.jobs.tracking.wait_for_batch
CORES = os.cpu_count() or 1
FLOOR = f"xargs -P{CORES} python -c pass"
BARE_SLURM = "sbatch --array + squeue"


def run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """The output of ``command``; exits with its error if it fails."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def slurm_answers(env: dict[str, str]) -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], env=env, capture_output=True).returncode == 0


def bare_array_followed(tasks: int, env: dict[str, str], work: Path) -> None:
    """``sbatch --parsable`` and squeue until the array has left the queue."""
    output = str(work / "bare-%A_%a.out")
    submit = ["sbatch", "--parsable", f"--array=0-{tasks - 1}", f"--output={output}"]
    job_id = run([*submit, "--wrap", "true"], env, work).strip().split(";")[0]
    pause = FIRST_POLL
    while run(["squeue", "-h", "-j", job_id, "-o", "%T"], env, work).strip():
        time.sleep(pause)
        pause = min(pause * 1.5, MAX_POLL)


def rows(tasks: int, url: str, env: dict[str, str], work: Path) -> dict[str, Callable[[], None]]:
    """What is timed, by name."""
    jobs = str(work / "jobs")
    submit = [*CCAT, "--db", url, "job", "submit", "noop", "--tasks", str(tasks), "--wait"]
    floor = f"seq {tasks} | xargs -P {CORES} -I{{}} {sys.executable} -c pass"
    table: dict[str, Callable[[], None]] = {
        "ccat-hpc submit (local)": lambda: run(
            [*submit, "--executor", "local", "--workdir", jobs], env, work
        ),
        FLOOR: lambda: run(["bash", "-c", floor], env, work),
    }
    if slurm_answers(env):
        bare = ["sbatch", f"--array=0-{tasks - 1}", f"--output={work / 'bare-%A_%a.out'}"]
        table |= {
            "ccat-hpc submit (slurm)": lambda: run(
                [*submit, "--executor", "slurm", "--workdir", jobs], env, work
            ),
            "sbatch --array --wait": lambda: run([*bare, "--wait", "--wrap", "true"], env, work),
            BARE_SLURM: lambda: bare_array_followed(tasks, env, work),
        }
    else:
        print("no Slurm cluster answers (sbatch, sinfo): Slurm rows skipped")
    return table


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1, help="rounds of every row (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccat-array-bench-"))
    url = f"sqlite:///{work / 'ops.sqlite'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    env = dict(os.environ, CCAT_HPC_LOCAL_JOBS=str(work / "local-jobs"))
    table = rows(args.tasks, url, env, work)
    print(f"{args.tasks}-task no-op arrays, {args.runs} round(s), in {work} ...")
    seconds: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.runs):
        for name, action in table.items():
            seconds[name].append(timed(action))
    report({name: statistics.median(s) for name, s in seconds.items()}, args.tasks)
    shutil.rmtree(work)


def report(medians: dict[str, float], tasks: int) -> None:
    base_name = BARE_SLURM if BARE_SLURM in medians else FLOOR
    base = medians[base_name] / tasks
    print(f"\nsubmission to end of {tasks} no-op tasks (median):")
    print(f"  {'':<30} {'total':>8} {'per task':>10} {'ratio':>7}")
    for name, total in medians.items():
        per_task = total / tasks
        print(f"  {name:<30} {total:7.2f}s {per_task * 1000:8.1f}ms {per_task / base:6.2f}x")
    print(f"  (ratio: seconds per task / those of `{base_name}`)")


if __name__ == "__main__":
    main()
