"""Line protocol as job tasks write it (the InfluxDB v2 write API without influxdb-client)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ccat_hpc.metrics.line_protocol import encode
from ccat_hpc.metrics.point import Point

AT = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)


def test_every_kind_of_field_and_the_time_to_the_millisecond() -> None:
    point = Point(
        "ccat_task",
        {"kind": "package", "executor": "slurm"},
        {"items": 3, "seconds": 1.5, "ok": True, "note": 'say "hi" \\ bye'},
        AT,
    )
    assert encode(point) == (
        "ccat_task,executor=slurm,kind=package items=3i,seconds=1.5,ok=true,"
        'note="say \\"hi\\" \\\\ bye" 1796472000123'
    )


def test_names_and_tags_are_escaped_and_empty_tags_left_out() -> None:
    point = Point("a b,c", {"route": "chile to,cologne=1", "failure_class": ""}, {"x y": 1})
    assert encode(point) == "a\\ b\\,c,route=chile\\ to\\,cologne\\=1 x\\ y=1i"


def test_a_value_line_protocol_cannot_carry_is_left_out() -> None:
    assert encode(Point("m", {}, {"rate": math.nan, "bytes": 7})) == "m bytes=7i"
    assert encode(Point("m", {}, {"rate": math.inf})) is None
