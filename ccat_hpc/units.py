"""Human-readable quantities (pure)."""

from __future__ import annotations


def human_bytes(size: float) -> str:
    """``1234567`` → ``1.2 MB`` (decimal units, as disks and networks count)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
