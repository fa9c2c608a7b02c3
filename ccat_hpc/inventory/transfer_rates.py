"""Transfer rate per route over time: bytes per second of finished transfers, by hour.

:func:`bucket_rates` is the arithmetic (pure); :func:`transfer_rates` reads ops-db.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ccat_hpc.db.models import DataLocation, DataTransfer, DataTransferRoute
from ccat_hpc.db.states import TransferState
from ccat_hpc.inventory.common import iso

HOUR = timedelta(hours=1)
MAX_HOURS = 24 * 14


@dataclass(frozen=True)
class RateSeries:
    """Bytes per second of one route in each hour, oldest first, starting at ``start``."""

    route: str
    start: str
    bytes_per_second: list[float]


def bucket_rates(
    rows: Iterable[tuple[str, datetime, int]], now: datetime, hours: int
) -> dict[str, list[float]]:
    """Per route, the bytes per second of the transfers that finished in each of the
    last ``hours`` hours (the last bucket is the hour ending ``now``)."""
    start = now - hours * HOUR
    totals: dict[str, list[float]] = {}
    for route, finished, size in rows:
        if not start <= finished < now + timedelta(microseconds=1):
            continue
        index = min(hours - 1, int((finished - start) / HOUR))
        totals.setdefault(route, [0.0] * hours)[index] += size / HOUR.total_seconds()
    return dict(sorted(totals.items()))


def transfer_rates(session: Session, now: datetime, hours: int = 24) -> list[RateSeries]:
    """The rate series of every route that finished a transfer in the last ``hours``."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours must be between 1 and {MAX_HOURS}")
    origin = aliased(DataLocation)
    destination = aliased(DataLocation)
    rows = session.execute(
        select(
            DataTransferRoute.name,
            origin.name,
            destination.name,
            DataTransfer.finished_at,
            DataTransfer.bytes_transferred,
        )
        .outerjoin(DataTransferRoute, DataTransferRoute.id == DataTransfer.route_id)
        .join(origin, origin.id == DataTransfer.origin_location_id)
        .join(destination, destination.id == DataTransfer.destination_location_id)
        .where(
            DataTransfer.state == TransferState.SUCCEEDED,
            DataTransfer.finished_at >= now - hours * HOUR,
        )
    ).all()
    named = (
        (route or f"{source}→{target}", finished, int(size))
        for route, source, target, finished, size in rows
        if finished is not None
    )
    start = iso(now - hours * HOUR)
    return [
        RateSeries(route, start, values)
        for route, values in bucket_rates(named, now, hours).items()
    ]
