"""Parameter types shared by the commands (defined once)."""

from __future__ import annotations

import click

#: the id of a row in ops-db (64-bit keys): larger numbers are a usage error, not a crash
ROW_ID = click.IntRange(min=1, max=2**63 - 1)
