"""The transfer step's task: move each DTP it holds along its route, hop by hop.

Each hop is one DataTransfer (with DataTransferLog rows; the method's full output is in
a log file whose path the log row keeps): the method copies the DTP to a partial name
in the destination BUFFER, the copy is verified there (the whole package: structure,
every member, the checksum), and only then is it renamed to its final name and
recorded as a VERIFIED copy at that BUFFER. A copy that does not verify is removed and
the DTP goes back to BUILT for another try, as does any failure a retry can help; a
route that cannot work (an unknown method, no buffer at a site) sends it back too,
with the reason, for an operator to see in `status`. When the last hop has arrived
the DTP is TRANSFERRED.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session

from ccat_hpc.db.models import (
    DataTransferPackage,
    DataTransferPackagePhysicalCopy,
    DataTransferRoute,
    JobBatch,
    Site,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import TransferState
from ccat_hpc.engine.api import verify
from ccat_hpc.engine.errors import EngineError, PackageCorrupt
from ccat_hpc.logline import log_line
from ccat_hpc.metrics import MetricsSink, emit, series, sink_or_nothing
from ccat_hpc.pipeline import copies, failures, step_items
from ccat_hpc.pipeline import transfer_records as records
from ccat_hpc.pipeline.placement import folder_storage
from ccat_hpc.pipeline.tasks import TaskContext
from ccat_hpc.pipeline.transfer_records import HopJob
from ccat_hpc.pipeline.transferring import NoRoom, next_hop
from ccat_hpc.storage.base import StorageError
from ccat_hpc.transfer.methods import Destination, TransferError, transfer_method
from ccat_hpc.transfer.remote import DEFAULT_SSH, RemoteHost

TRANSFER_STATES = step_items.STEP_ITEMS["transfer"][1]
T = TransferState


class HopFailed(Exception):
    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = True,
        arrived_damaged: bool = False,
        postpone: bool = False,
    ) -> None:
        super().__init__(reason)
        self.retryable = retryable
        #: not a failure: the DTP waits for room at the next site (its try not counted)
        self.postpone = postpone
        #: the copy landed but does not verify: the origin copy is checked too
        self.arrived_damaged = arrived_damaged


class NoLongerHeld(Exception):
    """The batch lost its claim on the DTP meanwhile: nothing is published or recorded."""


def transfer_task(context: TaskContext) -> dict[str, Any]:
    """Move every DTP the task holds to its destination; one outcome per DTP."""
    counts = {"arrived": 0, "hops": 0, "retry": 0, "skipped": 0, "bytes": 0}
    metrics = sink_or_nothing(context.environ)
    try:
        for dtp_id in context.items:
            context.stop.check()
            _move_one(context, int(dtp_id), counts, metrics)
    finally:
        metrics.close()
    return counts


def _move_one(
    context: TaskContext, dtp_id: int, counts: dict[str, int], metrics: MetricsSink
) -> None:
    while True:
        try:
            with transaction(context.factory) as session:
                job = start_hop(session, dtp_id, context.batch_id)
        except HopFailed as problem:
            if problem.postpone:
                _postpone(context, dtp_id, str(problem), counts)
            else:
                _give_back(context, dtp_id, str(problem), problem.retryable, counts)
            return
        if job is None:
            break
        if not _run_hop(context, job, counts, metrics):
            return
        context.stop.check()
    with transaction(context.factory) as session:
        arrived = step_items.finish(
            session, DataTransferPackage, dtp_id, TRANSFER_STATES, context.batch_id
        )
    counts["arrived" if arrived else "skipped"] += 1


def start_hop(session: Session, dtp_id: int, batch_id: int) -> HopJob | None:
    """Record the next hop as a running DataTransfer; None when there is none to do."""
    if not step_items.holds(session, DataTransferPackage, dtp_id, TRANSFER_STATES, batch_id):
        return None
    dtp = session.get_one(DataTransferPackage, dtp_id)
    records.forget_unfinished(session, dtp_id)
    hop = next_hop(session, dtp)
    if hop is None:
        return None
    if isinstance(hop, str):
        raise HopFailed(hop, postpone=isinstance(hop, NoRoom))
    route = session.get_one(DataTransferRoute, dtp.route_id)
    host = getattr(hop.destination, "host", "") or ""
    try:
        source = folder_storage(hop.origin).local_path(dtp.relative_path)
        destination = folder_storage(hop.destination)
        if host:  # not mounted here: the path on that host (rsync makes its folders)
            final = destination.root / dtp.relative_path
        else:
            final = destination.local_path(dtp.relative_path, create_folders=True)
    except StorageError as exc:
        raise HopFailed(str(exc)) from None
    transfer = records.new_transfer(session, dtp, route, hop, batch_id)
    copy_id = copies.pending_copy(
        session, DataTransferPackagePhysicalCopy, dtp_id, hop.destination.id
    )
    settings = session.get_one(Site, hop.origin.site_id).settings.get("pipeline", {})
    return HopJob(
        dtp_id=dtp_id,
        name=dtp.name,
        checksum=dtp.checksum or "",
        size=dtp.size,
        transfer_id=transfer.id,
        copy_id=copy_id,
        origin_copy_id=records.copy_id_at(session, dtp_id, hop.origin.id),
        method=route.method,
        route=route.name,
        streams=int(settings.get("transfer_streams", 4)),
        source=source,
        # one partial per attempt: a writer a dead task left behind never shares it
        partial=_stale_partials_removed(final, host).with_name(
            f".{final.name}.transfer-{transfer.id}"
        ),
        final=final,
        host=host,
        log_path=_log_path(session, batch_id, dtp.name, transfer.id),
    )


def _log_path(session: Session, batch_id: int, name: str, transfer_id: int) -> Path:
    working_dir = Path(session.get_one(JobBatch, batch_id).working_dir or ".")
    folder = working_dir / "transfers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.{transfer_id}.log"


def _run_hop(
    context: TaskContext, job: HopJob, counts: dict[str, int], metrics: MetricsSink
) -> bool:
    """Copy, verify, publish and record one hop; False when it failed (recorded)."""
    started = time.monotonic()
    job = replace(job, ssh=context.environ.get("CCAT_RSYNC_SSH") or DEFAULT_SSH)
    try:
        copied = _copy_verify_publish(context, job)
    except NoLongerHeld:
        counts["skipped"] += 1
        log_line(f"{job.name}: another batch holds it now; this copy was discarded")
        return False
    except HopFailed as failure:
        if failure.arrived_damaged:
            origin_problem = _check_origin(job)
            if origin_problem is not None:
                _record_origin_damaged(context, job, str(failure), origin_problem, counts)
                return False
        _record_failure(context, job, str(failure), failure.retryable, counts)
        return False
    except TransferError as failure:
        _record_failure(context, job, str(failure), failures.retryable(failure), counts)
        return False
    seconds = max(time.monotonic() - started, 1e-6)
    with transaction(context.factory) as session:
        records.record_success(session, job, copied, seconds)
    counts["hops"] += 1
    counts["bytes"] += copied
    emit(
        metrics,
        series.TRANSFER,
        {"route": job.route, "method": job.method},
        bytes=copied,
        seconds=seconds,
        rate_mb_s=copied / seconds / 1e6,
    )
    log_line(
        f"{job.name}: {job.method} to {job.final.parent}: {copied} bytes in {seconds:.1f} s "
        f"({copied / seconds / 1e6:.0f} MB/s), verified"
    )
    return True


def _stale_partials_removed(final: Path, host: str) -> Path:
    """Partial files earlier attempts left next to ``final`` are removed (here only)."""
    if not host and final.parent.is_dir():
        for stale in final.parent.glob(f".{glob.escape(final.name)}.transfer*"):
            with contextlib.suppress(OSError):
                stale.unlink()
    return final


def _copy_verify_publish(context: TaskContext, job: HopJob) -> int:
    """The bytes copied; the method's output and every remote command go to the log."""
    with job.log_path.open("a") as log:
        try:
            method = transfer_method(job.method, job.streams, job.ssh)
            copied = method.copy(job.source, Destination(job.partial, job.host), log)
            _verify_at_destination(job, log)
            _still_held(context, job)
            _publish(job, log)
        except (TransferError, HopFailed, NoLongerHeld):
            _remove_partial(job, log)
            raise
    return copied


def _still_held(context: TaskContext, job: HopJob) -> None:
    with transaction(context.factory) as session:
        held = step_items.holds(
            session, DataTransferPackage, job.dtp_id, TRANSFER_STATES, context.batch_id
        )
    if not held:
        raise NoLongerHeld(job.name)


def _verify_at_destination(job: HopJob, log: TextIO) -> None:
    """The whole package checked where it landed (on another host: its xxh3-128 there)."""
    if job.host:
        found = RemoteHost(job.host, job.ssh).checksum(job.partial, log)
        if found != job.checksum:
            raise HopFailed(
                f"the copy on {job.host} does not verify: "
                f"xxh3-128 {found}, expected {job.checksum}",
                arrived_damaged=True,
            )
        return
    try:
        verify(None, job.partial, job.checksum)
    except PackageCorrupt as exc:
        raise HopFailed(
            f"the copy at the destination does not verify: {exc}", arrived_damaged=True
        ) from None
    except EngineError as exc:
        raise HopFailed(f"the copy at the destination cannot be read: {exc}") from None


def _check_origin(job: HopJob) -> str | None:
    """Why the copy the hop started from is damaged, or None when it verifies."""
    try:
        verify(None, job.source, job.checksum)
    except PackageCorrupt as exc:
        return str(exc)
    except EngineError:
        return None  # unreadable just now: not proof of damage; the next try tells
    return None


def _record_origin_damaged(
    context: TaskContext,
    job: HopJob,
    reason: str,
    origin_problem: str,
    counts: dict[str, int],
) -> None:
    """Sending it again cannot help: the DTP fails for good and its RDPs are bundled again
    (each checked against its checksum on the way)."""
    why = f"its copy at the origin {job.source} is damaged: {origin_problem}"
    with transaction(context.factory) as session:
        records.fail_transfer(session, job, f"{reason}; {why}", retryable=False)
        if step_items.fail(
            session,
            DataTransferPackage,
            job.dtp_id,
            TRANSFER_STATES,
            context.batch_id,
            why,
            retryable=False,
        ):
            records.rebundle(session, job.dtp_id, job.origin_copy_id, why)
    counts["failed"] = counts.get("failed", 0) + 1
    log_line(f"{job.name}: failed: {why}; its packages will be bundled again")


def _remove_partial(job: HopJob, log: TextIO) -> None:
    if job.host:
        with contextlib.suppress(TransferError):
            RemoteHost(job.host, job.ssh).remove(job.partial, log)
        return
    with contextlib.suppress(OSError):
        job.partial.unlink()


def _publish(job: HopJob, log: TextIO) -> None:
    if job.host:
        RemoteHost(job.host, job.ssh).publish(job.partial, job.final, log)
        return
    try:
        os.rename(job.partial, job.final)
        folder = os.open(job.final.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise HopFailed(f"{job.final}: cannot publish: {exc.strerror}") from None


def _record_failure(
    context: TaskContext, job: HopJob, reason: str, retryable: bool, counts: dict[str, int]
) -> None:
    with transaction(context.factory) as session:
        records.fail_transfer(session, job, reason, retryable)
    _give_back(context, job.dtp_id, reason, retryable, counts)


def _postpone(context: TaskContext, dtp_id: int, reason: str, counts: dict[str, int]) -> None:
    with transaction(context.factory) as session:
        step_items.postpone(
            session, DataTransferPackage, dtp_id, TRANSFER_STATES, context.batch_id, reason
        )
    counts["retry"] += 1
    log_line(f"transfer package {dtp_id}: waits: {reason}")


def _give_back(
    context: TaskContext, dtp_id: int, reason: str, retryable: bool, counts: dict[str, int]
) -> None:
    """Back to BUILT with the reason: the next run tries again (the route may need a fix)."""
    with transaction(context.factory) as session:
        step_items.fail(
            session,
            DataTransferPackage,
            dtp_id,
            TRANSFER_STATES,
            context.batch_id,
            reason,
            retryable=retryable,
            keep_waiting=True,
        )
    counts["retry"] += 1
    log_line(f"transfer package {dtp_id}: not moved: {reason}")
