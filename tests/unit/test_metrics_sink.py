"""Metrics sinks: writing never waits for or fails with the server; one line per outage."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from ccat_hpc.errors import UsageError
from ccat_hpc.metrics import series
from ccat_hpc.metrics.influx import (
    BrokenWriter,
    InfluxSettings,
    InfluxWriter,
    describe_failure,
    open_writer,
)
from ccat_hpc.metrics.point import Point
from ccat_hpc.metrics.series import emit
from ccat_hpc.metrics.sink import InfluxSink, NullSink, sink_from_env
from tests.conftest import _require

URL = "CCAT_HPC_METRICS_URL"


def needs_influxdb_client() -> None:
    try:
        import influxdb_client  # noqa: F401
    except ImportError:
        problem = "influxdb-client is not installed (scripts/bootstrap.sh ... metrics)"
        if _require("metrics"):
            pytest.fail(problem)
        pytest.skip(problem)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def wait_for(count: Callable[[], int], wanted: int) -> None:
    wait_until(lambda: count() == wanted)


def points(count: int, start: int = 0) -> list[Point]:
    return [Point("ccat_test", {"n": str(i)}, {"value": i}) for i in range(start, start + count)]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


class Recording:
    """A writer that keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[list[Point]] = []
        self.closed = False

    def write(self, batch: Sequence[Point]) -> None:
        self.batches.append(list(batch))

    def close(self) -> None:
        self.closed = True

    def points(self) -> list[Point]:
        return [point for batch in self.batches for point in batch]


class Gate(Recording):
    """A writer that hangs in each write until released (a server that does not answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, batch: Sequence[Point]) -> None:
        self.entered.set()
        self.release.wait(30)
        super().write(batch)


class Flaky(Recording):
    """A writer whose server is down while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts = 0

    def write(self, batch: Sequence[Point]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        super().write(batch)


def sink_with(writer: Recording, **options: int) -> InfluxSink:
    return InfluxSink(
        InfluxSettings("http://metrics.invalid:1"), open_writer=lambda _: writer, **options
    )


def test_null_sink_does_not_even_look_at_the_points() -> None:
    looked = []

    def generator() -> Iterator[Point]:
        looked.append(True)
        yield from points(1)

    sink = NullSink()
    sink.write(generator())
    sink.close(timeout=0)
    assert looked == []


def test_a_closed_port_costs_the_caller_nothing_and_is_logged_once(
    capfd: pytest.CaptureFixture[str],
) -> None:
    needs_influxdb_client()
    port = closed_port()
    sink = InfluxSink(InfluxSettings(f"http://127.0.0.1:{port}", timeout_s=2))
    for round_ in (1, 2, 3):
        started = time.perf_counter()
        sink.write(points(5))
        assert time.perf_counter() - started < 0.1
        wait_for(lambda: sink.stats().failed, 5 * round_)
    started = time.perf_counter()
    sink.close(timeout=5)
    assert time.perf_counter() - started < 1
    logged = lines(capfd.readouterr().err)
    assert len(logged) == 1, logged
    assert f"metrics: cannot write to http://127.0.0.1:{port} (" in logged[0]
    assert "Connection refused" in logged[0]
    assert sink.stats().sent == 0


def test_a_server_back_again_is_logged_once_more(capfd: pytest.CaptureFixture[str]) -> None:
    writer = Flaky()
    sink = sink_with(writer)
    for count in (1, 2):
        sink.write(points(2, start=10 * count))
        wait_for(lambda: writer.attempts, count)
    writer.down = False
    sink.write(points(3, start=100))
    wait_until(lambda: sink.stats().sent == 3)
    sink.write(points(1, start=200))
    sink.close()
    logged = lines(capfd.readouterr().err)
    assert len(logged) == 2, logged
    assert "cannot write to http://metrics.invalid:1 (ConnectionRefusedError:" in logged[0]
    assert "metrics: http://metrics.invalid:1 answers again (4 points lost so far)" in logged[1]
    assert [p.tags["n"] for p in writer.points()] == ["100", "101", "102", "200"]
    assert sink.stats().failed == 4


def test_a_full_queue_drops_points_and_counts_them() -> None:
    writer = Gate()
    sink = sink_with(writer, capacity=10)
    sink.write(points(1))
    assert writer.entered.wait(10)  # the thread holds that one point, waiting for the server
    started = time.perf_counter()
    sink.write(points(25, start=1))
    assert time.perf_counter() - started < 0.1
    stats = sink.stats()
    assert (stats.queued, stats.dropped) == (10, 15)
    writer.release.set()
    sink.close(timeout=10)
    assert [int(p.tags["n"]) for p in writer.points()] == list(range(11))
    assert sink.stats().sent == 11


def test_close_sends_everything_queued_in_order_and_batches() -> None:
    writer = Recording()
    sink = sink_with(writer, batch_size=7)
    for start in range(0, 100, 20):
        sink.write(points(20, start))
    sink.close(timeout=10)
    assert [int(p.tags["n"]) for p in writer.points()] == list(range(100))
    assert max(len(batch) for batch in writer.batches) <= 7
    assert writer.closed


def test_close_waits_at_most_its_timeout(capfd: pytest.CaptureFixture[str]) -> None:
    writer = Gate()
    sink = sink_with(writer)
    sink.write(points(1))
    assert writer.entered.wait(10)
    sink.write(points(4, start=1))
    started = time.perf_counter()
    sink.close(timeout=0.3)
    waited = time.perf_counter() - started
    writer.release.set()
    assert 0.3 <= waited < 1.5
    logged = lines(capfd.readouterr().err)
    assert len(logged) == 1 and "metrics: 4 points not written within 0.3 s of closing" in logged[0]


def test_points_written_after_close_are_dropped() -> None:
    writer = Recording()
    sink = sink_with(writer)
    sink.close()
    sink.write(points(3))
    assert sink.stats().dropped == 3
    assert writer.points() == []


def test_a_writer_that_cannot_be_opened_fails_each_write_with_one_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def broken(settings: InfluxSettings) -> InfluxWriter:
        raise RuntimeError("no client today")

    sink = InfluxSink(InfluxSettings("http://metrics.invalid:1"), open_writer=broken)
    sink.write(points(2))
    sink.write(points(2))
    sink.close()
    assert sink.stats().failed == 4
    logged = lines(capfd.readouterr().err)
    assert len(logged) == 1 and "(RuntimeError: no client today)" in logged[0]


def test_a_missing_influxdb_client_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "influxdb_client", None)  # import fails
    writer = open_writer(InfluxSettings("http://127.0.0.1:1"))
    assert isinstance(writer, BrokenWriter)
    assert "pip install 'ccat-hpc[metrics]'" in str(writer.error)


def test_no_url_means_no_metrics() -> None:
    assert isinstance(sink_from_env({}), NullSink)
    assert isinstance(sink_from_env({URL: "  "}), NullSink)


def test_a_url_gives_an_influx_sink_with_defaults_or_the_settings_given() -> None:
    sink = sink_from_env({URL: "http://127.0.0.1:58428"})
    assert isinstance(sink, InfluxSink)
    sink.close(timeout=0)
    assert sink.settings == InfluxSettings("http://127.0.0.1:58428", "", "ccat", "ccat-hpc")
    environ = {
        URL: "https://metrics.example.org/vm",
        "CCAT_HPC_METRICS_TOKEN": "t0ken",
        "CCAT_HPC_METRICS_ORG": "fyst",
        "CCAT_HPC_METRICS_BUCKET": "ops",
    }
    sink = sink_from_env(environ)
    assert isinstance(sink, InfluxSink)
    sink.close(timeout=0)
    assert sink.settings == InfluxSettings("https://metrics.example.org/vm", "t0ken", "fyst", "ops")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("127.0.0.1:58428", "not an http:// or https:// URL"),
        ("ftp://user:s3cret@metrics:21", "not an http:// or https:// URL"),
        ("http://", "no host in the URL"),
        ("http://127.0.0.1:port", "not a URL"),
        ("http://127.0.0.1:99999", "not a URL"),
        ("http://[::1", "not a URL"),
        ("http://127.0.0.1:58428/?db=x", "takes no query"),
    ],
)
def test_a_malformed_url_is_one_clear_usage_error(url: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        sink_from_env({URL: url})
    message = str(caught.value)
    assert message.startswith(f"{URL}=") and problem in message
    assert "\n" not in message and "s3cret" not in message
    assert caught.value.exit_code == 2


def test_importing_metrics_loads_neither_influxdb_client_nor_sqlalchemy() -> None:
    code = (
        "import sys, ccat_hpc.metrics, ccat_hpc.metrics.series\n"
        "heavy = ('influxdb_client', 'sqlalchemy', 'urllib3', 'reactivex', 'pydantic')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


class ListSink:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def write(self, points: Iterable[Point]) -> None:
        self.points.extend(points)

    def close(self, timeout: float = 5.0) -> None:
        pass


def test_emit_writes_one_point_of_the_series_stamped_now() -> None:
    sink = ListSink()
    emit(
        sink,
        series.TRANSFER,
        {"route": "chile-cologne", "method": "rsync"},
        bytes=10,
        seconds=2,
        rate_mb_s=5,
    )
    (point,) = sink.points
    assert point.measurement == "ccat_transfer"
    assert point.tags == {"route": "chile-cologne", "method": "rsync"}
    assert point.fields == {"bytes": 10, "seconds": 2.0, "rate_mb_s": 5.0}
    assert isinstance(point.fields["seconds"], float)  # one type per field, as InfluxDB wants
    assert point.time is not None
    assert abs(datetime.now(UTC) - point.time) < timedelta(seconds=5)


def test_emit_refuses_what_the_series_does_not_have() -> None:
    sink = ListSink()
    with pytest.raises(ValueError) as caught:
        emit(
            sink,
            series.ITEMS,
            {"step": "package", "outcome": "lost", "stage": "x"},
            items=True,
            files=1,
        )
    message = str(caught.value)
    for problem in (
        "tag failure_class missing",
        "no tag stage in this series",
        "field bytes missing",
        "tag outcome='lost' is not one of 'done', 'failed', 'operator', 'retry'",
        "field items=True is not int",
    ):
        assert problem in message
    assert sink.points == []


def test_a_series_without_tags_takes_fields_only() -> None:
    sink = ListSink()
    emit(sink, series.SCHEDULER_PASS, seconds=0.5, submitted=2, errors=0)
    assert sink.points[0].tags == {}
    assert series.SCHEDULER_PASS.metrics() == (
        "ccat_scheduler_pass_seconds",
        "ccat_scheduler_pass_submitted",
        "ccat_scheduler_pass_errors",
    )


def test_every_breaker_field_is_a_queryable_metric() -> None:
    assert series.BREAKER.metrics() == ("ccat_breaker_open", "ccat_breaker_half_open")
    assert series.BREAKER.queryable() == ("ccat_breaker_open", "ccat_breaker_half_open")


def test_a_point_needs_a_field() -> None:
    with pytest.raises(ValueError, match="needs at least one field"):
        Point("ccat_task", {"kind": "package"}, {})


def test_line_protocol_to_the_millisecond_without_values_it_cannot_carry() -> None:
    needs_influxdb_client()
    from ccat_hpc.metrics.influx import to_influx

    stamp = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    point = series.TRANSFER.point(
        {"route": "a b,c", "method": "copy"},
        {"bytes": 10, "seconds": 2, "rate_mb_s": math.inf},
        stamp,
    )
    record = to_influx(point)
    assert record is not None
    expected = r"ccat_transfer,method=copy,route=a\ b\,c bytes=10i,seconds=2 1767323045123"
    assert record.to_line_protocol() == expected
    assert to_influx(Point("ccat_x", {}, {"value": math.nan})) is None


class HttpError(Exception):
    status = 400
    reason = "Bad Request"
    message = 'remoteAddr: "127.0.0.1:1";\nrequestURI: /api/v2/write; ' + "x" * 500


def test_a_failure_is_described_in_one_short_line() -> None:
    text = describe_failure(HttpError())
    assert text.startswith('HTTP 400: remoteAddr: "127.0.0.1:1"; requestURI: /api/v2/write;')
    assert "\n" not in text and len(text) <= 200
    assert describe_failure(OSError("disk\nfull")) == "OSError: disk full"


def test_a_task_with_a_malformed_metrics_url_goes_on_without_metrics(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from ccat_hpc.metrics import sink_or_nothing

    sink = sink_or_nothing({"CCAT_HPC_METRICS_URL": "ftp://nowhere"})
    assert isinstance(sink, NullSink)
    assert "no metrics from this process" in capfd.readouterr().err
    with pytest.raises(UsageError):  # where it is configured, it is refused at once
        sink_from_env({"CCAT_HPC_METRICS_URL": "ftp://nowhere"})
