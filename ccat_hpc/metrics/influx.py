"""The one place that talks to influxdb-client (InfluxDB v2 write API).

influxdb-client takes about half a second to import, so nothing here imports it before
a writer is opened, which :class:`~ccat_hpc.metrics.sink.InfluxSink` does on its own
thread: a task that writes metrics starts as fast as one that does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ccat_hpc.metrics.point import FieldValue, Point

if TYPE_CHECKING:
    import influxdb_client

#: victoria-metrics ignores org, bucket and token (it adds no label for them)
DEFAULT_ORG = "ccat"
DEFAULT_BUCKET = "ccat-hpc"
MAX_REASON = 200


@dataclass(frozen=True)
class InfluxSettings:
    """Where points go: an InfluxDB v2 write endpoint (victoria-metrics, InfluxDB 2)."""

    url: str
    token: str = ""
    org: str = DEFAULT_ORG
    bucket: str = DEFAULT_BUCKET
    #: per HTTP request (connect and read)
    timeout_s: float = 5.0


class Writer(Protocol):
    """Sends one batch and returns, or raises when the server did not take it."""

    def write(self, points: Sequence[Point]) -> None: ...

    def close(self) -> None: ...


class InfluxWriter:
    """A synchronous influxdb-client write API (its own batching thread is not used)."""

    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._settings = settings
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token,
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, points: Sequence[Point]) -> None:
        from influxdb_client import WritePrecision

        records = [record for point in points if (record := to_influx(point)) is not None]
        if not records:
            return
        self._api.write(
            bucket=self._settings.bucket,
            org=self._settings.org,
            record=records,
            write_precision=WritePrecision.MS,
        )

    def close(self) -> None:
        self._api.close()
        self._client.close()


class BrokenWriter:
    """Stands in for a writer that could not be opened: every write fails the same way."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def write(self, points: Sequence[Point]) -> None:
        raise self.error

    def close(self) -> None:
        pass


def open_writer(settings: InfluxSettings) -> Writer:
    """An :class:`InfluxWriter`; a :class:`BrokenWriter` when influxdb-client is missing."""
    try:
        return InfluxWriter(settings)
    except ImportError:
        return BrokenWriter(
            RuntimeError("influxdb-client is not installed (pip install 'ccat-hpc[metrics]')")
        )


def to_influx(point: Point) -> influxdb_client.Point | None:
    """``point`` as influxdb-client's Point, to the millisecond (what victoria-metrics keeps).

    A NaN or infinite value is left out (line protocol cannot carry it); None when no
    field is left, as a line without fields would make the server refuse the whole batch.
    """
    from influxdb_client import Point as InfluxPoint
    from influxdb_client import WritePrecision

    fields = {name: value for name, value in point.fields.items() if _writable(value)}
    if not fields:
        return None
    record = InfluxPoint(point.measurement)
    for key, value in point.tags.items():
        record.tag(key, value)
    for name, field in fields.items():
        record.field(name, field)
    if point.time is not None:
        record.time(point.time, WritePrecision.MS)
    return record


def _writable(value: FieldValue) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def describe_failure(error: BaseException) -> str:
    """One short line saying why a write failed (an HTTP status, a refused connection)."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        message = str(getattr(error, "message", None) or getattr(error, "reason", "") or "")
        text = f"HTTP {status}" + (f": {message}" if message else "")
    else:
        text = f"{type(error).__name__}: {error}"
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"
