"""Where metrics go: nowhere (:class:`NullSink`) or an InfluxDB v2 endpoint (:class:`InfluxSink`).

Writing never blocks or breaks the caller. :class:`InfluxSink` puts points into a bounded
queue that a daemon thread sends in batches; a full queue drops points (counted). A
server that is down or answers errors is reported once, as one line on stderr, and
again once when it takes writes again. ``close(timeout)`` sends what is queued, waiting
at most ``timeout`` seconds (call it at the end of the process).

Importing this module is cheap: influxdb-client is imported on the sink's thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ccat_hpc.errors import UsageError
from ccat_hpc.logline import log_line
from ccat_hpc.metrics.influx import (
    DEFAULT_BUCKET,
    DEFAULT_ORG,
    BrokenWriter,
    InfluxSettings,
    Writer,
    describe_failure,
    open_writer,
)
from ccat_hpc.metrics.point import Point
from ccat_hpc.redact import redact_url

URL_ENV = "CCAT_HPC_METRICS_URL"
TOKEN_ENV = "CCAT_HPC_METRICS_TOKEN"
ORG_ENV = "CCAT_HPC_METRICS_ORG"
BUCKET_ENV = "CCAT_HPC_METRICS_BUCKET"
#: points held while the server is slow; more are dropped
DEFAULT_CAPACITY = 10_000
#: points per HTTP request
DEFAULT_BATCH = 1_000
DEFAULT_CLOSE_TIMEOUT = 5.0

WriterFactory = Callable[[InfluxSettings], Writer]


class MetricsSink(Protocol):
    """Takes points without waiting; ``close`` sends what is left, waiting at most ``timeout``."""

    def write(self, points: Iterable[Point]) -> None: ...

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None: ...


class NullSink:
    """No metrics configured: points are not even looked at."""

    def write(self, points: Iterable[Point]) -> None:
        pass

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        pass


@dataclass(frozen=True)
class SinkStats:
    """Points so far: sent, lost to server failures, dropped (queue full or closed), queued."""

    sent: int
    failed: int
    dropped: int
    queued: int


class InfluxSink:
    """Points to an InfluxDB v2 write endpoint, sent by a daemon thread in batches."""

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH,
        open_writer: WriterFactory = open_writer,
    ) -> None:
        self.settings = settings
        self._capacity = capacity
        self._batch_size = batch_size
        self._open_writer = open_writer
        self._queue: deque[Point] = deque()
        self._changed = threading.Condition()
        self._closing = False
        self._failing = False
        self._sent = self._failed = self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="ccat-hpc-metrics", daemon=True)
        self._thread.start()

    def write(self, points: Iterable[Point]) -> None:
        batch = list(points)
        with self._changed:
            room = 0 if self._closing else max(0, self._capacity - len(self._queue))
            self._queue.extend(batch[:room])
            self._dropped += max(0, len(batch) - room)
            self._changed.notify()

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join(timeout)
        with self._changed:
            left, failing = len(self._queue), self._failing
        if left and not failing:
            log_line(f"metrics: {left} points not written within {timeout:g} s of closing")

    def stats(self) -> SinkStats:
        with self._changed:
            return SinkStats(self._sent, self._failed, self._dropped, len(self._queue))

    def _run(self) -> None:
        writer = self._writer()
        while batch := self._next_batch():
            self._send(writer, batch)
        with contextlib.suppress(Exception):  # closing a pool that failed is no news
            writer.close()

    def _writer(self) -> Writer:
        try:
            return self._open_writer(self.settings)
        except Exception as exc:  # a writer that cannot be opened fails each write
            return BrokenWriter(exc)

    def _next_batch(self) -> list[Point]:
        """Up to ``batch_size`` queued points, waiting for some; [] once closed and empty."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._queue) or self._closing)
            count = min(self._batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _send(self, writer: Writer, batch: list[Point]) -> None:
        try:
            writer.write(batch)
        except Exception as exc:  # any failure: metrics never break the caller
            self._record_failure(len(batch), exc)
        else:
            self._record_success(len(batch))

    def _record_failure(self, count: int, error: Exception) -> None:
        with self._changed:
            self._failed += count
            first, self._failing = not self._failing, True
        if first:
            log_line(
                f"metrics: cannot write to {redact_url(self.settings.url)} "
                f"({describe_failure(error)}); dropping metrics until it answers again"
            )

    def _record_success(self, count: int) -> None:
        with self._changed:
            self._sent += count
            recovered, self._failing = self._failing, False
            failed = self._failed
        if recovered:
            log_line(
                f"metrics: {redact_url(self.settings.url)} answers again "
                f"({failed} points lost so far); writing metrics again"
            )


def check_url(url: str, variable: str = URL_ENV) -> str:
    """``url`` if it is an http(s) URL with a host; else a UsageError naming ``variable``."""
    problem = _url_problem(url)
    if problem:
        shown = redact_url(url)
        raise UsageError(f"{variable}={shown!r}: {problem} (e.g. http://127.0.0.1:58428)")
    return url


def _url_problem(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is no number raises here)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "not an http:// or https:// URL"
    if not parts.hostname:
        return "no host in the URL"
    if parts.query or parts.fragment:
        return "a metrics URL takes no query or fragment"
    return ""


def sink_from_env(environ: Mapping[str, str], *, light: bool = False) -> MetricsSink:
    """An :class:`InfluxSink` when ``CCAT_HPC_METRICS_URL`` is set, else a :class:`NullSink`.

    ``light``: through the standard library (:mod:`ccat_hpc.metrics.line_protocol`), not
    influxdb-client, for a short-lived process that must start fast (a job task)."""
    url = environ.get(URL_ENV, "").strip()
    if not url:
        return NullSink()
    settings = InfluxSettings(
        url=check_url(url),
        token=environ.get(TOKEN_ENV, ""),
        org=environ.get(ORG_ENV) or DEFAULT_ORG,
        bucket=environ.get(BUCKET_ENV) or DEFAULT_BUCKET,
    )
    if light:
        from ccat_hpc.metrics.line_protocol import LineWriter

        return InfluxSink(settings, open_writer=LineWriter)
    return InfluxSink(settings)


def sink_or_nothing(environ: Mapping[str, str]) -> MetricsSink:
    """The light sink of :func:`sink_from_env` for work already under way (a job task): a
    malformed URL is logged once and metrics are skipped, the work is not stopped for it."""
    try:
        return sink_from_env(environ, light=True)
    except UsageError as exc:
        log_line(f"metrics: {exc}; no metrics from this process")
        return NullSink()
