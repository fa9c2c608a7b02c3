"""Text from outside made safe to show on one line (pure)."""

from __future__ import annotations

import re

#: NUL, newline, escape and the other C0 controls, and DEL
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_RUNS = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with every run of control characters (newlines too) as one space,
    and cut to ``limit`` characters (marked with …) when given."""
    flat = " ".join(_CONTROL_RUNS.sub(" ", text).split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - 1] + "…"
