"""Parameter types shared by the commands (defined once)."""

from __future__ import annotations

import math

import click

#: the id of a row in ops-db (64-bit keys): larger numbers are a usage error, not a crash
ROW_ID = click.IntRange(min=1, max=2**63 - 1)


MAX_SECONDS = 365 * 86400.0
#: seconds from 0 to a year; FloatRange alone lets NaN through (NaN compares false)
SECONDS = click.FloatRange(min=0, max=MAX_SECONDS)


def finite(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Callback for SECONDS options: NaN is not a number of seconds."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a number of seconds", param=param)
    return value
