"""Packaging engine against the standard tools, side by side in one run.

    .venv/bin/python benchmarks/package_benchmark.py [--gib 2] [--workdir DIR] [--repeat 1]
                                                     [--ranks 1,2]

Generates a tree (half the bytes in 1,000 small files of ~1 MiB, half in a few large
ones), warms the page cache, then times, each writing a new file to disk and syncing:

  engine N rank  ccat-hpc package build (xxh3-128 of package and members, index),
                 under `mpiexec -n N` for N > 1
  tar|tee|xxh    tar -cf - SRC | tee OUT | xxh128sum && sync  (what a careful operator types)
  tar -b 2048    tar -b 2048 -cf OUT SRC && sync              (tar alone, no checksum)

then verify (ccat-hpc package verify with 1 and N ranks vs xxh128sum) and extracting
one 1 MiB member (ccat-hpc package extract vs tar -xf PACKAGE MEMBER). Prints MB/s and
ratios. Outputs are removed before every timed command, outside its time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1_000_000


def make_tree(src: Path, total: int) -> None:
    small = src / "small"
    small.mkdir(parents=True)
    count = 1000
    for i in range(count):
        (small / f"det_{i:04d}.g3").write_bytes(os.urandom(total // 2 // count))
    large = total // 2 // 4
    for i in range(4):
        with (src / f"large_{i}.g3").open("wb") as handle:
            block = os.urandom(8 * 1024 * 1024)
            for offset in range(0, large, len(block)):
                handle.write(block[: min(len(block), large - offset)])


def run(command: str, cwd: Path, output: str | None = None) -> float:
    if output is not None:
        (cwd / output).unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)  # nobody pays for the previous command's dirty pages
    start = time.perf_counter()
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=cwd, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ranks", default="1,2", help="rank counts of the engine runs")
    args = parser.parse_args()
    ranks = [int(n) for n in args.ranks.split(",")]
    if shutil.which("xxh128sum") is None:
        sys.exit("xxh128sum is needed (Debian package xxhash)")
    if max(ranks) > 1 and shutil.which("mpiexec") is None:
        sys.exit("mpiexec is needed for more than one rank (Debian package openmpi-bin)")
    os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ccat-package-bench-"))
    ccat = Path(sys.executable).with_name("ccat-hpc")
    total = int(args.gib * 1024**3)
    print(f"generating {total / MB:,.0f} MB in {work}/src ...")
    make_tree(work / "src", total)
    subprocess.run(["bash", "-c", "cat src/small/* src/large_* > /dev/null"], cwd=work, check=True)

    def on_ranks(n: int, command: str) -> str:
        return command if n == 1 else f"mpiexec --oversubscribe -n {n} {command}"

    commands = {
        f"engine {n} rank": (on_ranks(n, f"{ccat} package build src -o e{n}.tar"), f"e{n}.tar")
        for n in ranks
    }
    commands["tar|tee|xxh"] = ("tar -cf - src | tee teed.tar | xxh128sum", "teed.tar")
    commands["tar -b 2048"] = ("tar -b 2048 -cf plain.tar src", "plain.tar")
    times = {
        name: min(run(f"{command} && sync", work, output) for _ in range(args.repeat))
        for name, (command, output) in commands.items()
    }
    reference = times["tar -b 2048"]
    print("\nbuild (to disk, synced):")
    for name, seconds in times.items():
        print(
            f"  {name:<14} {seconds:6.2f} s  {total / seconds / MB:7.0f} MB/s  "
            f"{reference / seconds:.2f}x the speed of tar alone"
        )
    package = f"e{ranks[0]}.tar"
    xxh = min(run(f"xxh128sum {package}", work) for _ in range(args.repeat))
    print(f"\nverify (cached): xxh128sum {total / xxh / MB:.0f} MB/s")
    for n in ranks:
        command = on_ranks(n, f"{ccat} package verify {package}")
        seconds = min(run(command, work) for _ in range(args.repeat))
        print(
            f"  engine {n} rank {total / seconds / MB:6.0f} MB/s "
            f"({xxh / seconds:.2f}x xxh128sum, package and every member checked)"
        )
    member = "src/small/det_0500.g3"
    ours = run(f"{ccat} package extract {package} {member} --to x1", work)
    theirs = run(f"mkdir -p x2 && tar -xf {package} -C x2 {member}", work)
    print(
        f"extract one ~1 MiB member: engine {ours * 1000:.0f} ms (process start included), "
        f"tar -xf {theirs * 1000:.0f} ms (ratio {theirs / ours:.1f})"
    )
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
