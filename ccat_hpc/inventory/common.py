"""Shared pieces of the inventory queries: pages, times, path globs, text tables (pure)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from ccat_hpc.timerange import plausible_utc

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
TIME_EXAMPLES = "e.g. 2026-11-23T03:00:00Z, 2026-11-23T00:00-03:00 or 2026-11-23"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_after`` continues it (None on the last page)."""

    items: list[T]
    next_after: str | int | None


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def page_from_rows(rows: Sequence[T], limit: int, cursor: Callable[[T], str | int]) -> Page[T]:
    """A page from ``limit + 1`` fetched rows: the extra row only says that more follow."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items, cursor(items[-1]) if more else None)


def iso(moment: datetime) -> str:
    """``2026-11-23T03:00:00Z``: UTC, ISO 8601, as JSON carries times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def parse_time(text: str, end_of_day: bool = False) -> datetime:
    """An ISO 8601 time with a time zone, or a plain date (its midnight, UTC).

    With ``end_of_day`` a plain date means the midnight that ends it, so that "until
    2026-11-23" includes the whole day.
    """
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return _checked(text, _parse_datetime(text))
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = midnight + timedelta(days=1) if end_of_day and day < date.max else midnight
    return _checked(text, moment)


def _checked(text: str, moment: datetime) -> datetime:
    try:
        return plausible_utc(moment)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def _parse_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time or date ({TIME_EXAMPLES})") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or an offset ({TIME_EXAMPLES})")
    return moment


def glob_to_like(pattern: str) -> str:
    """A glob with ``*`` and ``?`` as a LIKE pattern (escape character ``\\``)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def glob_condition(
    column: InstrumentedAttribute[str], pattern: str, dialect: str
) -> ColumnElement[bool]:
    """``column`` matches the glob ``pattern``, case-sensitively on every backend.

    ``*`` matches any characters (``/`` too), ``?`` one character, everything else
    itself. SQLite's LIKE ignores case, so SQLite uses its GLOB (with ``[`` made literal).
    """
    if dialect == "sqlite":
        return column.op("GLOB")(pattern.replace("[", "[[]"))
    return column.like(glob_to_like(pattern), escape="\\")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right: Collection[int] = ()
) -> list[str]:
    """Aligned columns, two spaces apart; columns in ``right`` are right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if i in right else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(row) for row in cells)]
