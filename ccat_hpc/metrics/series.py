"""The series the pipeline writes, and the metric names victoria-metrics makes of them.

Each point is one event or one sample, not a running counter: sum a series over time
(``sum_over_time``) for totals, and read gauges (queue, breaker, buffer) as they are.
victoria-metrics names a metric ``{measurement}_{field}`` (``ccat_transfer`` with field
``rate_mb_s`` becomes ``ccat_transfer_rate_mb_s``), makes each tag a label, keeps bools
as 1/0 and stores a string field as 0 (so every field here is a number). A tag given
as "" is no label at all (``failure_class=""`` in PromQL matches it). A NaN or
infinite value is left out of its point (line protocol cannot carry it), and a point
left with no field is not sent.

===================  ====================================  =================================
measurement          tags (allowed values)                 fields (int unless said)
===================  ====================================  =================================
ccat_task            kind, executor, outcome (done,        seconds (float), items, bytes
                     failed)
ccat_items           step, outcome (done, retry,           items, files, bytes
                     operator, failed), failure_class
                     (transient, permanent, "")
ccat_transfer        route, method                         bytes, seconds (float),
                                                           rate_mb_s (float)
ccat_queue           step                                  waiting, running, retrying,
                                                           operator
ccat_breaker         scope (route, location), name         open (0 or 1), half_open (0 or 1)
ccat_buffer          site, location                        used_bytes, capacity_bytes,
                                                           fill (float, 0..1)
ccat_scheduler_pass  (none)                                seconds (float), submitted, errors
===================  ====================================  =================================

When they are written: ``ccat_task`` once per job task when it ends; ``ccat_items`` when
a step's task ends, one point per outcome of its items as ops-db then holds them (done:
moved on; retry: waiting again, or given back; operator: waiting for a person; failed:
given up; files counted for the checksum step); ``ccat_transfer`` once per copied
package; ``ccat_queue`` (per step), ``ccat_breaker`` (per breaker), ``ccat_buffer`` (per
buffer) and ``ccat_scheduler_pass`` once each scheduler pass.

Write them with :func:`emit` (``emit(sink, TASK, {"kind": …}, seconds=…, items=…, bytes=…)``),
which refuses a tag or field the series does not have, so a typo fails the first test
that runs the call instead of making a new series.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ccat_hpc.metrics.point import FieldValue, Point
from ccat_hpc.metrics.sink import MetricsSink

FieldType = type[int] | type[float] | type[str]


@dataclass(frozen=True)
class Series:
    """A measurement: its tags (with their allowed values, where fixed) and typed fields."""

    measurement: str
    tags: tuple[str, ...]
    fields: Mapping[str, FieldType]
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def metric(self, name: str) -> str:
        """The metric name victoria-metrics gives field ``name``."""
        return f"{self.measurement}_{name}"

    def metrics(self) -> tuple[str, ...]:
        """Every metric name of this series (a string field's is always 0)."""
        return tuple(self.metric(name) for name in self.fields)

    def queryable(self) -> tuple[str, ...]:
        """The metric names whose values mean something in PromQL (numeric fields)."""
        return tuple(self.metric(n) for n, kind in self.fields.items() if kind is not str)

    def point(
        self, tags: Mapping[str, str], fields: Mapping[str, FieldValue], time: datetime | None
    ) -> Point:
        """A point of this series; ValueError naming every wrong tag or field."""
        problems = self.problems(tags, fields)
        if problems:
            raise ValueError(f"metrics series {self.measurement}: " + "; ".join(problems))
        values = {name: self.fields[name](value) for name, value in fields.items()}
        return Point(self.measurement, dict(tags), values, time)

    def problems(self, tags: Mapping[str, str], fields: Mapping[str, FieldValue]) -> list[str]:
        """What is wrong with these tags and fields for this series ([] when nothing)."""
        problems = _names("tag", set(tags), set(self.tags))
        problems += _names("field", set(fields), set(self.fields))
        problems += [p for name, value in tags.items() if (p := self._tag_problem(name, value))]
        for name, field_value in fields.items():
            kind = self.fields.get(name)
            if kind is not None and not _fits(field_value, kind):
                problems.append(f"field {name}={field_value!r} is not {kind.__name__}")
        return problems

    def _tag_problem(self, name: str, value: object) -> str:
        allowed = self.values.get(name)
        if not isinstance(value, str):
            return f"tag {name}={value!r} is not a string"
        if allowed is not None and value not in allowed:
            shown = ", ".join(repr(v) for v in sorted(allowed))
            return f"tag {name}={value!r} is not one of {shown}"
        return ""


def _names(what: str, given: set[str], wanted: set[str]) -> list[str]:
    missing = [f"{what} {name} missing" for name in sorted(wanted - given)]
    return missing + [f"no {what} {name} in this series" for name in sorted(given - wanted)]


def _fits(value: object, kind: FieldType) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


TASK = Series(
    "ccat_task",
    ("kind", "executor", "outcome"),
    {"seconds": float, "items": int, "bytes": int},
    {"outcome": frozenset({"done", "failed"})},
)
ITEMS = Series(
    "ccat_items",
    ("step", "outcome", "failure_class"),
    {"items": int, "files": int, "bytes": int},
    {
        "outcome": frozenset({"done", "retry", "operator", "failed"}),
        "failure_class": frozenset({"transient", "permanent", ""}),
    },
)
TRANSFER = Series(
    "ccat_transfer",
    ("route", "method"),
    {"bytes": int, "seconds": float, "rate_mb_s": float},
)
QUEUE = Series(
    "ccat_queue",
    ("step",),
    {"waiting": int, "running": int, "retrying": int, "operator": int},
)
BREAKER = Series(
    "ccat_breaker",
    ("scope", "name"),
    {"open": int, "half_open": int},
    {"scope": frozenset({"route", "location"})},
)
BUFFER = Series(
    "ccat_buffer",
    ("site", "location"),
    {"used_bytes": int, "capacity_bytes": int, "fill": float},
)
SCHEDULER_PASS = Series(
    "ccat_scheduler_pass",
    (),
    {"seconds": float, "submitted": int, "errors": int},
)
ALL_SERIES: tuple[Series, ...] = (TASK, ITEMS, TRANSFER, QUEUE, BREAKER, BUFFER, SCHEDULER_PASS)
BY_MEASUREMENT: dict[str, Series] = {series.measurement: series for series in ALL_SERIES}


def queryable_metrics() -> frozenset[str]:
    """Every metric name a dashboard may query (numeric fields of every series)."""
    return frozenset(name for series in ALL_SERIES for name in series.queryable())


def emit(
    sink: MetricsSink,
    series: Series,
    tags: Mapping[str, str] | None = None,
    /,
    **fields: FieldValue,
) -> None:
    """Write one point of ``series`` stamped now; ValueError for a tag or field it lacks."""
    sink.write([series.point(tags or {}, fields, datetime.now(UTC))])
