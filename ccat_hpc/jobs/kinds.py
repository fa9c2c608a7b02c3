"""The job kinds ``ccat-hpc job run`` knows, and their handlers.

``noop`` and ``sleep`` exist for diagnostics and tests (their parameters can make
chosen tasks fail or die without a word); ``mpi`` reports its ranks; ``checksum``
hashes newly filed RawDataFiles (:mod:`ccat_hpc.pipeline.checksum`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccat_hpc.jobs.runner import Handler, TaskContext, TaskFailure

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm


@dataclass(frozen=True)
class JobKind:
    handler: Handler
    #: what ranks other than 0 do in a multi-rank task (rank 0 runs ``handler``)
    other_ranks: Callable[[Intracomm], None] | None = None


def _diagnostic_outcome(context: TaskContext) -> None:
    parameters = context.parameters
    if context.task_index in parameters.get("crash_tasks", []):
        os._exit(int(parameters.get("exit_code", 3)))  # dies without recording anything
    if context.task_index in parameters.get("fail_tasks", []):
        raise TaskFailure(f"task {context.task_index} was asked to fail", retryable=False)


def noop(context: TaskContext) -> dict[str, Any]:
    _diagnostic_outcome(context)
    return {"items": len(context.items)}


def sleep(context: TaskContext) -> dict[str, Any]:
    seconds = float(context.parameters.get("seconds", 1))
    time.sleep(seconds)
    _diagnostic_outcome(context)
    return {"slept": seconds}


def _hosts_of_ranks(comm: Intracomm | None) -> list[str]:
    host = socket.gethostname()
    return [host] if comm is None else list(comm.gather(host, root=0) or [])


def mpi_hello(context: TaskContext) -> dict[str, Any]:
    from ccat_hpc.engine.mpi import world

    comm = world()
    hosts = _hosts_of_ranks(comm)
    return {"ranks": len(hosts), "hosts": hosts}


def _mpi_hello_other_ranks(comm: Intracomm) -> None:
    _hosts_of_ranks(comm)


def checksum(context: TaskContext) -> dict[str, Any]:
    from ccat_hpc.pipeline.checksum import checksum_task

    return checksum_task(context)


def job_kinds() -> dict[str, JobKind]:
    return {
        "noop": JobKind(noop),
        "sleep": JobKind(sleep),
        "mpi": JobKind(mpi_hello, _mpi_hello_other_ranks),
        "checksum": JobKind(checksum),
    }
