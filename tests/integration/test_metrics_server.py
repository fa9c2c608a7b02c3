"""Metrics on a real victoria-metrics: what influxdb-client writes is what PromQL reads.

The shared server comes from ``scripts/services.sh up`` (``CCAT_TEST_METRICS_URL``);
every test tags its points with its own ``test_run`` so runs do not see each other's.
The outage test starts (and stops) a victoria-metrics of its own on a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ccat_hpc.metrics import series
from ccat_hpc.metrics.influx import InfluxSettings
from ccat_hpc.metrics.point import Point
from ccat_hpc.metrics.sink import InfluxSink, SinkStats, sink_from_env
from tests.conftest import _require

pytestmark = pytest.mark.metrics
BINARY = "/usr/bin/victoria-metrics"


def metrics_url() -> str:
    """The test services' victoria-metrics, answering; fail or skip as conftest's services do."""
    url = os.environ.get("CCAT_TEST_METRICS_URL", "")
    problem = "no metrics server: start it with scripts/services.sh up and eval its env"
    if url:
        problem = "" if healthy(url) else f"the metrics server at {url} does not answer /health"
    if problem:
        if _require("metrics"):
            pytest.fail(problem)
        pytest.skip(problem)
    return url


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return bool(response.read().startswith(b"OK"))
    except OSError:
        return False


@pytest.fixture
def metrics_server() -> str:
    return metrics_url()


def export(url: str, selector: str) -> list[dict[str, Any]]:
    """Every sample matching ``selector``, after making what was written searchable."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).read()
    query = urllib.parse.urlencode({"match[]": selector})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=10) as response:
        return [json.loads(line) for line in response.read().decode().splitlines() if line]


def export_when(url: str, selector: str, done: Callable[[list[dict[str, Any]]], bool]) -> Any:
    """``export`` until ``done`` says it is complete (a new series takes a moment to index)."""
    deadline = time.monotonic() + 15
    while not done(rows := export(url, selector)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return rows


def samples(rows: list[dict[str, Any]]) -> set[tuple[str, float, int]]:
    """(labels as JSON, value, timestamp in ms) of every exported sample."""
    found = set()
    for row in rows:
        labels = json.dumps(row["metric"], sort_keys=True)
        for value, stamp in zip(row["values"], row["timestamps"], strict=True):
            found.add((labels, float(value), int(stamp)))
    return found


def expected_samples(points: list[Point]) -> set[tuple[str, float, int]]:
    """What victoria-metrics should keep: ``{measurement}_{field}``, tags as labels ("" none),
    numbers as they are, strings as 0, time to the millisecond."""
    found = set()
    for point in points:
        assert point.time is not None
        stamp = int(point.time.timestamp() * 1000)
        tags = {key: value for key, value in point.tags.items() if value}
        for name, value in point.fields.items():
            labels = json.dumps({"__name__": f"{point.measurement}_{name}", **tags}, sort_keys=True)
            found.add((labels, 0.0 if isinstance(value, str) else float(value), stamp))
    return found


def sample_points(run: str) -> list[Point]:
    """One or two points of every series, tagged with ``test_run``."""
    now = datetime.now(UTC)
    stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
    given: list[tuple[series.Series, dict[str, str], dict[str, Any]]] = [
        (
            series.TASK,
            {"kind": "package", "executor": "slurm", "outcome": "done"},
            {"seconds": 12.25, "items": 3, "bytes": 3 * 2**30 + 7},
        ),
        (
            series.ITEMS,
            {"step": "checksum", "outcome": "done", "failure_class": ""},
            {"items": 40, "files": 40, "bytes": 123_456_789_012},
        ),
        (
            series.ITEMS,
            {"step": "transfer", "outcome": "retry", "failure_class": "transient"},
            {"items": 2, "files": 11, "bytes": 5_000},
        ),
        (
            series.TRANSFER,
            {"route": "chile->cologne", "method": "rsync"},
            {"bytes": 10**10, "seconds": 80.5, "rate_mb_s": 124.223602484},
        ),
        (
            series.QUEUE,
            {"step": "package"},
            {"waiting": 7, "running": 2, "retrying": 1, "operator": 0},
        ),
        (
            series.BREAKER,
            {"scope": "route", "name": "chile->cologne"},
            {"open": 1, "half_open": 0},
        ),
        (
            series.BUFFER,
            {"site": "chile", "location": "chile-buffer"},
            {"used_bytes": 750 * 2**30, "capacity_bytes": 1000 * 2**30, "fill": 0.75},
        ),
        (series.SCHEDULER_PASS, {}, {"seconds": 0.375, "submitted": 4, "errors": 1}),
    ]
    points = [s.point(tags, fields, stamp) for s, tags, fields in given]
    return [replace(point, tags={**point.tags, "test_run": run}) for point in points]


@pytest.mark.parametrize("light", [False, True], ids=["influxdb-client", "stdlib"])
def test_every_series_reads_back_exactly_with_the_names_series_py_gives(
    metrics_server: str, light: bool
) -> None:
    """The same for both writers: influxdb-client (the scheduler) and the standard
    library's line protocol (job tasks)."""
    run = uuid.uuid4().hex
    points = sample_points(run)
    sink = sink_from_env({"CCAT_HPC_METRICS_URL": metrics_server}, light=light)
    assert isinstance(sink, InfluxSink)
    sink.write(points)
    sink.close(timeout=30)
    assert sink.stats().sent == len(points)
    wanted = expected_samples(points)
    rows = export_when(
        metrics_server, f'{{test_run="{run}"}}', lambda r: len(samples(r)) >= len(wanted)
    )
    assert samples(rows) == wanted
    names = {row["metric"]["__name__"] for row in rows}
    assert names == {name for s in series.ALL_SERIES for name in s.metrics()}
    assert series.queryable_metrics() <= names


def query(url: str, promql: str) -> dict[str, float]:
    """An instant PromQL query a second from now: {labels: value}.

    (victoria-metrics evaluates a query without ``time`` at now rounded down to the
    second, which misses the points written in this second.)
    """
    arguments = urllib.parse.urlencode({"query": promql, "time": f"{time.time() + 1:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{arguments}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return {
        ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items())): float(item["value"][1])
        for item in body["data"]["result"]
    }


def test_a_dashboard_style_query_sums_events_per_step_and_outcome(metrics_server: str) -> None:
    run = uuid.uuid4().hex
    sink = sink_from_env({"CCAT_HPC_METRICS_URL": metrics_server})
    for items, outcome in ((3, "done"), (4, "done"), (2, "retry")):
        series.emit(
            sink,
            series.ITEMS,
            {"step": f"step-{run}", "outcome": outcome, "failure_class": ""},
            items=items,
            files=items,
            bytes=items * 100,
        )
        time.sleep(0.002)  # distinct milliseconds: samples at the same time would merge
    sink.close(timeout=30)
    export_when(metrics_server, f'{{step="step-{run}"}}', lambda r: len(samples(r)) == 9)
    promql = f'sum by (step, outcome) (sum_over_time(ccat_items_items{{step="step-{run}"}}[5m]))'
    deadline = time.monotonic() + 30  # the search index may lag the export under load
    while not query(metrics_server, promql) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert query(metrics_server, promql) == {
        f"outcome=done,step=step-{run}": 7.0,
        f"outcome=retry,step=step-{run}": 2.0,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnServer:
    """A victoria-metrics this test starts and stops (the shared one is never touched)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            BINARY,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data}",
            "-search.latencyOffset=0s",
        ]
        log = (self.data.parent / "victoria-metrics.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not healthy(self.url):
            assert self.process.poll() is None, "victoria-metrics exited on start"
            assert time.monotonic() < deadline, "victoria-metrics did not answer /health"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    metrics_url()  # the same opt-in as the shared server
    if shutil.which(BINARY) is None:
        pytest.fail(f"{BINARY} is missing (scripts/victoria-metrics.sh up installs it)")
    server = OwnServer(tmp_path / "data")
    server.start()
    yield server
    server.stop()


def timed_write(sink: InfluxSink, point: Point) -> float:
    started = time.perf_counter()
    sink.write([point])
    return time.perf_counter() - started


def test_a_server_stopped_midway_changes_nothing_for_the_caller(
    own_server: OwnServer, capfd: pytest.CaptureFixture[str]
) -> None:
    run = uuid.uuid4().hex
    stamp = datetime.now(UTC).replace(microsecond=0)
    points = [
        Point("ccat_outage", {"test_run": run, "n": str(n)}, {"value": n}, stamp) for n in range(4)
    ]
    sink = InfluxSink(InfluxSettings(own_server.url, timeout_s=5))

    def wait(count: Callable[[], int], wanted: int) -> None:
        deadline = time.monotonic() + 15
        while count() != wanted:
            assert time.monotonic() < deadline, sink.stats()
            time.sleep(0.01)

    assert timed_write(sink, points[0]) < 0.1
    wait(lambda: sink.stats().sent, 1)
    own_server.stop()
    for number, point in enumerate(points[1:3], start=1):
        assert timed_write(sink, point) < 0.1
        wait(lambda: sink.stats().failed, number)
    own_server.start()
    assert timed_write(sink, points[3]) < 0.1
    sink.close(timeout=30)
    assert sink.stats() == SinkStats(sent=2, failed=2, dropped=0, queued=0)
    logged = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(logged) == 2, logged
    assert f"metrics: cannot write to {own_server.url} (" in logged[0]
    assert f"metrics: {own_server.url} answers again (2 points lost so far)" in logged[1]
    rows = export_when(own_server.url, f'{{test_run="{run}"}}', lambda r: len(r) >= 2)
    assert sorted(row["metric"]["n"] for row in rows) == ["0", "3"]
