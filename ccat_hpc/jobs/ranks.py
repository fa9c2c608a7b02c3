"""Which MPI ranks a task process is one of, asking MPI only under an MPI launcher.

:func:`ccat_hpc.engine.mpi.world` answers, but importing the engine costs a task
that is no MPI task (most are) more than its work; without a launcher's variables
in the environment the answer is None anyway (one process), so it is asked only
when they are there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

#: what :func:`ccat_hpc.engine.mpi.launched_ranks` looks for (a test keeps the two equal)
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE")


def task_world(environ: Mapping[str, str] | None = None) -> Intracomm | None:
    """MPI's world communicator when this process is one of several ranks, else None."""
    env = os.environ if environ is None else environ
    if not any(name in env for name in LAUNCHER_VARIABLES):
        return None
    from ccat_hpc.engine.mpi import world

    return world(env)
