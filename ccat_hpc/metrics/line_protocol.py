"""The InfluxDB v2 write API with the standard library alone, for job tasks.

influxdb-client costs a task about 0.3 s of CPU to import, more than a short task's own
work; a task's few points go out in line protocol over ``urllib`` instead, to the same
endpoint, with the same rules as :func:`ccat_hpc.metrics.influx.to_influx` (to the
millisecond; a NaN or infinite value left out; a tag given as "" left out). The
scheduler, which runs for days, writes through influxdb-client.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from ccat_hpc.metrics.influx import InfluxSettings
from ccat_hpc.metrics.point import FieldValue, Point

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _escape(text: str, special: str) -> str:
    for char in "\\" + special:
        text = text.replace(char, "\\" + char)
    return text.replace("\n", "\\n")


def _field(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode(point: Point) -> str | None:
    """One line of line protocol; None when no field can be written."""
    fields = [
        f"{_escape(name, ',= ')}={text}"
        for name, value in point.fields.items()
        if (text := _field(value)) is not None
    ]
    if not fields:
        return None
    tags = "".join(
        f",{_escape(key, ',= ')}={_escape(value, ',= ')}"
        for key, value in sorted(point.tags.items())
        if value != ""
    )
    line = f"{_escape(point.measurement, ', ')}{tags} {','.join(fields)}"
    if point.time is not None:
        line += f" {(point.time - EPOCH) // timedelta(milliseconds=1)}"
    return line


class LineWriter:
    """Sends batches as line protocol with one POST each (a :class:`Writer`)."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        query = urlencode({"org": settings.org, "bucket": settings.bucket, "precision": "ms"})
        self._url = f"{settings.url.rstrip('/')}/api/v2/write?{query}"

    def write(self, points: Sequence[Point]) -> None:
        lines = [line for point in points if (line := encode(point)) is not None]
        if not lines:
            return
        request = urllib.request.Request(self._url, data="\n".join(lines).encode(), method="POST")
        request.add_header("Content-Type", "text/plain; charset=utf-8")
        if self._settings.token:
            request.add_header("Authorization", f"Token {self._settings.token}")
        with urllib.request.urlopen(request, timeout=self._settings.timeout_s) as answer:
            answer.read()  # a status other than 2xx raised HTTPError

    def close(self) -> None:
        pass
