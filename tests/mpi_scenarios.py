"""Engine scenarios the MPI tests run under ``mpiexec -n N`` (one process per rank).

    python tests/mpi_scenarios.py build SRC OUT RESULTS [--chunk N] [--vanish NAME]
                                        [--expect NAME=HEX]
    python tests/mpi_scenarios.py verify PACKAGE RESULTS [--chunk N]

Every rank writes RESULTS/rank-R.json: its rank, the number of ranks, and the result
or the error it raised, so a test can check that all ranks agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ccat_hpc.engine import api
from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.layout import MemberSpec
from ccat_hpc.engine.mpi import world
from ccat_hpc.engine.sources import specs_from_folders


def listing(src: Path, vanish: str | None, expect: dict[str, str]) -> list[MemberSpec]:
    specs = [
        dataclasses.replace(spec, expected_xxh3_128=expect.get(spec.name))
        for spec in specs_from_folders([src])
    ]
    if vanish:  # the file disappears after it was listed, before it is read
        next(Path(s.source) for s in specs if s.name == vanish).unlink()
    return specs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["build", "verify"])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--chunk", type=int, default=64 * 1024)
    parser.add_argument("--vanish")
    parser.add_argument("--expect", action="append", default=[])
    args = parser.parse_args()
    comm = world()
    rank, size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
    record: dict[str, Any] = {"rank": rank, "size": size, "pid": os.getpid()}
    results = args.paths[-1]
    code = 0
    try:
        if args.action == "build":
            src, out, _ = args.paths
            expect = dict(item.split("=", 1) for item in args.expect)
            built = api.build(
                comm, lambda: listing(src, args.vanish, expect), out, chunk_size=args.chunk
            )
            record["xxh3_128"] = built.xxh3_128
            record["members"] = len(built.index.members)
        else:
            package = args.paths[0]
            report = api.verify(comm, package, chunk_size=args.chunk)
            record["xxh3_128"] = report.xxh3_128
            record["members"] = report.members
    except EngineError as exc:
        record["error"] = {"type": type(exc).__name__, "message": str(exc)}
        code = exc.exit_code
    results.mkdir(parents=True, exist_ok=True)
    (results / f"rank-{rank}.json").write_text(json.dumps(record))
    return code


if __name__ == "__main__":
    sys.exit(main())
