"""Progress of long work (bytes, rate, ETA) on a terminal; silent in batch logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from ccat_hpc.units import human_bytes


def terminal_progress(label: str, interval: float = 0.25) -> Callable[[int, int], None] | None:
    """A callback printing one updating line on stderr, or None when stderr is no terminal."""
    if not sys.stderr.isatty():
        return None
    start = time.monotonic()
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < interval and done < total:
            return
        last = now
        elapsed = max(now - start, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        line = (
            f"\r{label}: {human_bytes(done)} / {human_bytes(total)}  "
            f"{human_bytes(rate)}/s  ETA {eta:5.0f} s"
        )
        sys.stderr.write(line + ("\n" if done >= total else ""))
        sys.stderr.flush()

    return report
