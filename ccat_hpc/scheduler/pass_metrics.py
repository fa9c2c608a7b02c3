"""What a scheduler pass writes to the metrics server (when one is configured).

Queue depths per step (unfinished items only, through the state indexes), every
breaker, every buffer with a capacity, and the pass itself. The sink never blocks and
never raises for an unreachable server (:mod:`ccat_hpc.metrics.sink`); nothing is read
when metrics are off.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.session import transaction
from ccat_hpc.db.states import BreakerState
from ccat_hpc.metrics import MetricsSink, NullSink, emit
from ccat_hpc.metrics import series as s
from ccat_hpc.scheduler.plan import Snapshot
from ccat_hpc.step_status import queue_counts


def emit_pass(
    sink: MetricsSink,
    factory: sessionmaker[Session],
    snapshot: Snapshot,
    *,
    seconds: float,
    submitted: int,
    errors: int,
) -> None:
    """One pass's points (nothing at all with a NullSink)."""
    if isinstance(sink, NullSink):
        return
    with transaction(factory) as session:
        counts = queue_counts(session)
    for step, numbers in counts.items():
        emit(
            sink,
            s.QUEUE,
            {"step": step},
            waiting=numbers["waiting"],
            running=numbers["running"],
            retrying=numbers["retrying"],
            operator=numbers["operator"],
        )
    for breaker in snapshot.breakers:
        emit(
            sink,
            s.BREAKER,
            {"scope": breaker.endpoint.scope, "name": breaker.name},
            open=int(breaker.state is BreakerState.OPEN),
            half_open=int(breaker.state is BreakerState.HALF_OPEN),
        )
    for fill in snapshot.buffers:
        if fill.capacity_bytes:
            emit(
                sink,
                s.BUFFER,
                {"site": fill.site, "location": fill.location},
                used_bytes=fill.used_bytes,
                capacity_bytes=fill.capacity_bytes,
                fill=fill.fill,
            )
    emit(sink, s.SCHEDULER_PASS, seconds=seconds, submitted=submitted, errors=errors)
