"""The times ccat-hpc takes from outside: aware, and within a plausible range (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)
RANGE_TEXT = "between 1970 and 2999 (in UTC)"


def plausible_utc(value: datetime) -> datetime:
    """``value`` in UTC; ValueError when it is outside 1970–2999 (or cannot be converted)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise ValueError(f"must be {RANGE_TEXT}") from None
    if not EARLIEST_TIME <= utc <= LATEST_TIME:
        raise ValueError(f"must be {RANGE_TEXT}")
    return utc
