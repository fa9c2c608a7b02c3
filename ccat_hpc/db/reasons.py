"""One line saying why the ops-db refused (shared by the CLI and the watcher).

Imports nothing from SQLAlchemy, so the CLI's error boundary can use it cheaply.
"""

from __future__ import annotations

SCHEMA_HINTS = ("no such table", "no such column", "does not exist")


def operational_error_reason(exc: BaseException) -> str:
    """The first line of the driver's message of an SQLAlchemy OperationalError."""
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if any(marker in reason for marker in SCHEMA_HINTS):
        reason += " (is the schema current? run `ccat-hpc db upgrade`)"
    return reason
