"""The engine's entry points: serial in one process, parallel under an MPI launcher.

Callers (the CLI, job tasks, the pipeline) use these and never look at MPI: started
by ``mpiexec -n N`` or ``srun -n N`` every rank calls the same function and gets the
same result; started alone, the serial code runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ccat_hpc.engine.build import BuildResult, ProgressCallback, build_package
from ccat_hpc.engine.chunks import DEFAULT_CHUNK_SIZE
from ccat_hpc.engine.layout import MemberSpec
from ccat_hpc.engine.mpi import build_package_mpi, verify_package_mpi
from ccat_hpc.engine.reader import DEFAULT_READ_SIZE, LocalFile
from ccat_hpc.engine.verify import VerifyReport, verify_package

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm


def build(
    comm: Intracomm | None,
    list_specs: Callable[[], Sequence[MemberSpec]],
    output: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
) -> BuildResult:
    """Build ``output``; ``list_specs`` runs once (on rank 0 under MPI)."""
    if comm is None:
        return build_package(list_specs(), output, chunk_size=chunk_size, progress=progress)
    if comm.Get_rank() != 0:
        progress = None
    return build_package_mpi(comm, list_specs, output, chunk_size=chunk_size, progress=progress)


def verify(
    comm: Intracomm | None,
    path: Path,
    expected: str | None = None,
    *,
    chunk_size: int = DEFAULT_READ_SIZE,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Verify the package at ``path``: its tar structure against its index, every member's
    xxh3-128 and the whole package's (against ``expected`` when given)."""
    if comm is None:
        source = LocalFile(path)
        try:
            return verify_package(source, expected, chunk_size, progress)
        finally:
            source.close()
    if comm.Get_rank() != 0:
        progress = None
    return verify_package_mpi(comm, lambda: LocalFile(path), expected, chunk_size, progress)
