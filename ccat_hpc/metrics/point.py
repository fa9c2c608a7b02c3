"""One measurement at one moment: what a metrics sink writes (InfluxDB's data model)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: what a field holds; victoria-metrics keeps numbers (and bools as 1/0), strings as 0
FieldValue = int | float | str | bool


@dataclass(frozen=True)
class Point:
    """A measurement with its tags (labels) and fields (values).

    ``time`` is when it was measured (timezone-aware); None lets the server stamp it
    when the point arrives, which may be a little later than it happened.
    """

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: datetime | None = None

    def __post_init__(self) -> None:
        if not self.measurement:
            raise ValueError("a metrics point needs a measurement name")
        if not self.fields:
            raise ValueError(f"metrics point {self.measurement}: needs at least one field")
