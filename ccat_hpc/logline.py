"""Timestamped lines for the logs of long-running commands and batch tasks."""

from __future__ import annotations

import sys
from datetime import UTC, datetime


def utc_stamp() -> str:
    """Now, as ISO 8601 UTC to the second (``2026-12-02T17:04:13Z``)."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def log_line(text: str, *, error: bool = True) -> None:
    """``text`` after a timestamp, on stderr (or stdout), flushed at once."""
    print(f"{utc_stamp()} {text}", file=sys.stderr if error else sys.stdout, flush=True)
