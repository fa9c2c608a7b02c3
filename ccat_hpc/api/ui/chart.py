"""The monitor's chart of transfer rates as SVG coordinates (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from ccat_hpc.inventory.transfer_rates import RateSeries
from ccat_hpc.units import human_bytes

#: colours told apart by people with the common colour-vision deficiencies (Okabe-Ito)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


@dataclass(frozen=True)
class Line:
    route: str
    colour: str
    points: str
    peak: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    hours: int
    peak: str
    lines: list[Line]


def line_chart(series: list[RateSeries], width: int = 600, height: int = 160) -> Chart:
    """One polyline per route, scaled so the highest rate touches the top."""
    hours = max((len(s.bytes_per_second) for s in series), default=24)
    top = max((max(s.bytes_per_second, default=0.0) for s in series), default=0.0) or 1.0
    step = width / max(1, hours - 1)
    lines = []
    for index, one in enumerate(series):
        points = " ".join(
            f"{i * step:.1f},{height - value / top * height:.1f}"
            for i, value in enumerate(one.bytes_per_second)
        )
        peak = max(one.bytes_per_second, default=0.0)
        lines.append(
            Line(one.route, PALETTE[index % len(PALETTE)], points, f"{human_bytes(int(peak))}/s")
        )
    return Chart(width, height, hours, f"{human_bytes(int(top))}/s", lines)
