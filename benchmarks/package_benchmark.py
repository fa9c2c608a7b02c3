"""Packaging engine against the standard tools, side by side in one run.

    .venv/bin/python benchmarks/package_benchmark.py [--gib 2] [--workdir DIR] [--repeat 1]

Generates a tree (half the bytes in 1,000 small files of ~1 MiB, half in a few large
ones), warms the page cache, then times, each writing to disk and syncing:

  engine         ccat-hpc package build (xxh3-128 of package and members, index)
  tar|tee|xxh    tar -cf - SRC | tee OUT | xxh128sum && sync  (what a careful operator types)
  tar -b 2048    tar -b 2048 -cf OUT SRC && sync              (tar alone, no checksum)

then verify (ccat-hpc package verify vs xxh128sum) and extracting one 1 MiB member
(ccat-hpc package extract vs tar -xf PACKAGE MEMBER). Prints MB/s and ratios.
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


def run(command: str, cwd: Path) -> float:
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
    args = parser.parse_args()
    if shutil.which("xxh128sum") is None:
        sys.exit("xxh128sum is needed (Debian package xxhash)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ccat-package-bench-"))
    ccat = Path(sys.executable).with_name("ccat-hpc")
    total = int(args.gib * 1024**3)
    print(f"generating {total / MB:,.0f} MB in {work}/src ...")
    make_tree(work / "src", total)
    subprocess.run(["bash", "-c", "cat src/small/* src/large_* > /dev/null"], cwd=work, check=True)
    commands = {
        "engine": f"{ccat} package build src -o engine.tar && sync",
        "tar|tee|xxh": "tar -cf - src | tee teed.tar | xxh128sum && sync",
        "tar -b 2048": "tar -b 2048 -cf plain.tar src && sync",
    }
    times = {name: min(run(c, work) for _ in range(args.repeat)) for name, c in commands.items()}
    print("\nbuild (to disk, synced):")
    for name, seconds in times.items():
        print(
            f"  {name:<13} {seconds:6.2f} s  {total / seconds / MB:7.0f} MB/s  "
            f"engine is {seconds / times['engine']:.2f}x as fast"
        )
    verify = run(f"{ccat} package verify engine.tar", work)
    xxh = run("xxh128sum engine.tar", work)
    print(
        f"\nverify (cached): engine {total / verify / MB:.0f} MB/s, xxh128sum "
        f"{total / xxh / MB:.0f} MB/s (ratio {xxh / verify:.2f})"
    )
    member = "src/small/det_0500.g3"
    ours = run(f"{ccat} package extract engine.tar {member} --to x1", work)
    theirs = run(f"mkdir -p x2 && tar -xf engine.tar -C x2 {member}", work)
    print(
        f"extract one ~1 MiB member: engine {ours * 1000:.0f} ms (process start included), "
        f"tar -xf {theirs * 1000:.0f} ms (ratio {theirs / ours:.1f})"
    )
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
