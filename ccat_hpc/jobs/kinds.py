"""The job kinds ``ccat-hpc job run`` knows: their handlers, parameters and claims.

``noop`` and ``sleep`` exist for diagnostics and tests (their parameters can make
chosen tasks fail or die without a word); ``mpi`` reports its ranks; ``checksum``
hashes newly filed RawDataFiles (:mod:`ccat_hpc.pipeline.checksum`); ``package`` builds
RawDataPackages (:mod:`ccat_hpc.pipeline.package_task`, every rank of an MPI task
together); ``bundle``, ``transfer`` and ``archive`` are the steps after it; ``cleanup``
deletes what retention lets go; ``stage`` brings archived data to PROCESSING storage for
scientists' staging requests; ``scrub`` reads a slice of the archive again; ``campaign``
runs the items of an operator's campaign. A kind whose
work items are claimed in ops-db when its batch is created (checksum: the files)
says how to give back the items of a task that ended without its outcome.

Nothing here imports a kind's handler module, SQLAlchemy or MPI: a kind's code is
imported when one of its tasks runs, so ``ccat-hpc job run noop`` loads none of it.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccat_hpc.errors import UsageError
from ccat_hpc.pipeline.tasks import Handler, TaskContext, TaskFailure

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm
    from sqlalchemy.orm import Session

ParameterCheck = Callable[[Mapping[str, Any]], None]


class InvalidJob(UsageError):
    """A job kind that does not exist, or parameters it does not take."""


def _no_parameters(parameters: Mapping[str, Any]) -> None:
    _only(parameters, {})


@dataclass(frozen=True)
class JobKind:
    handler: Handler
    #: what ranks other than 0 do in a multi-rank task (rank 0 runs ``handler``)
    other_ranks: Callable[[Intracomm], None] | None = None
    #: raises InvalidJob for parameters the kind does not take (checked at submit time)
    check_parameters: ParameterCheck = _no_parameters
    #: gives back the items a batch holds, of a task that ended without recording them
    release: Callable[[Session, Sequence[Any], int], int] | None = None
    #: whether `ccat-hpc job submit` may submit it (kinds with claimed items may not)
    submittable: bool = True


def _only(parameters: Mapping[str, Any], allowed: Mapping[str, Callable[[Any], bool]]) -> None:
    for key, value in parameters.items():
        test = allowed.get(key)
        if test is None:
            known = ", ".join(sorted(allowed)) or "none"
            raise InvalidJob(f"unknown parameter {key!r} (this job kind takes: {known})")
        if not test(value):
            raise InvalidJob(f"parameter {key}: invalid value {value!r}")


def _task_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    )


def _exit_code(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 255


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 86400


_DIAGNOSTIC = {"crash_tasks": _task_list, "fail_tasks": _task_list, "exit_code": _exit_code}


def _diagnostic_parameters(parameters: Mapping[str, Any]) -> None:
    _only(parameters, _DIAGNOSTIC)


def _sleep_parameters(parameters: Mapping[str, Any]) -> None:
    _only(parameters, {**_DIAGNOSTIC, "seconds": _seconds})


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
    context.stop.wait(seconds)
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


def _release_checksum(session: Session, items: Sequence[Any], batch_id: int) -> int:
    from ccat_hpc.pipeline.checksum_records import release_files

    return release_files(session, items, batch_id)


def _step_task(target: str) -> Handler:
    """A step's task handler, ``module:function``, imported when a task runs."""

    def handler(context: TaskContext) -> dict[str, Any]:
        module, function = target.split(":")
        task: Handler = getattr(importlib.import_module(module), function)
        return task(context)

    return handler


def _step_release(step: str) -> Callable[[Session, Sequence[Any], int], int]:
    """Gives back the items of a task of ``step`` that ended without their outcome."""

    def release(session: Session, items: Sequence[Any], batch_id: int) -> int:
        from ccat_hpc.pipeline.step_items import STEP_ITEMS
        from ccat_hpc.pipeline.step_items import release as give_back

        model, states = STEP_ITEMS[step]
        return give_back(session, model, items, states, batch_id)

    return release


def _release_stagings(session: Session, items: Sequence[Any], batch_id: int) -> int:
    from ccat_hpc.jobs.stage_batch import release_stagings

    return release_stagings(session, items, batch_id)


def _release_campaign_items(session: Session, items: Sequence[Any], batch_id: int) -> int:
    from ccat_hpc.pipeline.campaign_task import release_items as give_back

    return give_back(session, items, batch_id)


def _campaign_parameters(parameters: Mapping[str, Any]) -> None:
    _only(parameters, {"campaign": lambda v: isinstance(v, int) and not isinstance(v, bool)})


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 100


def _cleanup_parameters(parameters: Mapping[str, Any]) -> None:
    _only(parameters, {"site": _name, "location": _name})


def _package_other_ranks(comm: Intracomm) -> None:
    from ccat_hpc.pipeline.package_task import package_other_ranks

    package_other_ranks(comm)


def _step_kind(step: str, task: str, **more: Any) -> JobKind:
    return JobKind(_step_task(task), release=_step_release(step), submittable=False, **more)


def job_kinds() -> dict[str, JobKind]:
    return {
        "noop": JobKind(noop, check_parameters=_diagnostic_parameters),
        "sleep": JobKind(sleep, check_parameters=_sleep_parameters),
        "mpi": JobKind(mpi_hello, _mpi_hello_other_ranks),
        "checksum": JobKind(checksum, release=_release_checksum, submittable=False),
        "package": _step_kind(
            "package",
            "ccat_hpc.pipeline.package_task:package_task",
            other_ranks=_package_other_ranks,
        ),
        "bundle": _step_kind("bundle", "ccat_hpc.pipeline.bundle_task:bundle_task"),
        "transfer": _step_kind("transfer", "ccat_hpc.pipeline.transfer_task:transfer_task"),
        "archive": _step_kind("archive", "ccat_hpc.pipeline.archive_task:archive_task"),
        "stage": JobKind(
            _step_task("ccat_hpc.pipeline.stage_task:stage_task"),
            release=_release_stagings,
            submittable=False,
        ),
        "cleanup": JobKind(
            _step_task("ccat_hpc.pipeline.cleanup:cleanup_task"),
            check_parameters=_cleanup_parameters,
        ),
        "scrub": JobKind(
            _step_task("ccat_hpc.pipeline.scrub:scrub_task"),
            check_parameters=_cleanup_parameters,
        ),
        "campaign": JobKind(
            _step_task("ccat_hpc.pipeline.campaign_task:campaign_task"),
            check_parameters=_campaign_parameters,
            release=_release_campaign_items,
            submittable=False,
        ),
    }


def job_kind(name: str) -> JobKind:
    """The kind called ``name``, or InvalidJob listing the known ones."""
    kinds = job_kinds()
    kind = kinds.get(name)
    if kind is None:
        raise InvalidJob(f"unknown job kind {name!r}; known: {', '.join(sorted(kinds))}")
    return kind


def gives_back_items(kind: str, items: Sequence[Any]) -> bool:
    """Whether a task of ``kind`` holding ``items`` has claimed items to give back."""
    known = job_kinds().get(kind)
    return known is not None and known.release is not None and bool(items)


def release_items(session: Session, kind: str, items: Sequence[Any], batch_id: int) -> int:
    """Give back the items ``batch_id`` holds, of a task of ``kind`` that ended without its
    outcome."""
    release = job_kinds()[kind].release if gives_back_items(kind, items) else None
    return 0 if release is None else release(session, items, batch_id)
