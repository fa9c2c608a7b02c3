"""One line saying why the ops-db refused (shared by the CLI and the watcher).

Imports nothing from SQLAlchemy, so the CLI's error boundary can use it cheaply.
"""

from __future__ import annotations

from ccat_hpc.redact import scrub

SCHEMA_HINTS = ("no such table", "no such column", "does not exist")
NOT_SCHEMA = ('database "', "role ")  # "database … does not exist" is not about the schema


def operational_error_reason(exc: BaseException, url: str | None = None) -> str:
    """The first line of the driver's message of an SQLAlchemy OperationalError.

    With ``url`` (the ops-db URL in use), every form of its password is removed.
    """
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if any(m in reason for m in SCHEMA_HINTS) and not any(m in reason for m in NOT_SCHEMA):
        reason += " (is the schema current? run `ccat-hpc db upgrade`)"
    return scrub(reason, url)
