"""Observations and files as text for people: aligned columns, sizes in B/KB/MB/GB (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from ccat_hpc.inventory.common import table
from ccat_hpc.inventory.files import CopyInfo, FileDetail, FileRow
from ccat_hpc.inventory.observations import Count, ObservationDetail, ObservationRow
from ccat_hpc.units import human_bytes


def _time(iso_time: str) -> str:
    """``2026-11-23T03:00:00.123456Z`` → ``2026-11-23 03:00:00Z`` (to the second)."""
    return iso_time.replace("T", " ")[:19] + "Z"


def _indented(lines: Sequence[str]) -> list[str]:
    return ["  " + line for line in lines]


def _fields(pairs: Sequence[tuple[str, object]]) -> list[str]:
    width = max(len(key) for key, _ in pairs)
    return [f"{key:<{width}}  {value}" for key, value in pairs if value not in (None, "")]


def render_observations(rows: Sequence[ObservationRow]) -> str:
    """One line per observation; its size is in ``--json`` and ``obs show``."""
    headers = ("EXECUTION", "START (UTC)", "STATUS", "INSTRUMENT", "FILES", "OBS UNIT")
    cells = [
        (r.id, _time(r.start_time)[:16], r.status, r.instrument, r.file_count, r.obs_unit)
        for r in rows
    ]
    return "\n".join(table(headers, cells, right={4}))


def _counts(title: str, counts: Sequence[Count], by_location: bool) -> list[str]:
    if not counts:
        return ["", f"{title}: none"]
    headers = ("LOCATION", "STATE", "FILES", "SIZE") if by_location else ("STATE", "FILES", "SIZE")
    rows = [
        ((c.location,) if by_location else ()) + (c.state, c.count, human_bytes(c.bytes))
        for c in counts
    ]
    right = {len(headers) - 2, len(headers) - 1}
    return ["", title, *_indented(table(headers, rows, right))]


def _modules(detail: ObservationDetail) -> list[str]:
    if not detail.filings:
        return ["", "modules: none filed"]
    headers = ("MODULE", "FILES", "SIZE", "LOCATION", "FILED (UTC)", "MANIFEST")
    rows = [
        (m.module, m.file_count, human_bytes(m.bytes), m.location, m.filed_at[:16], m.manifest)
        for m in detail.filings
    ]
    return ["", "modules", *_indented(table(headers, rows, {1, 2}))]


def _packages(detail: ObservationDetail) -> list[str]:
    if not detail.packages:
        return ["", "packages: none yet"]
    headers = ("PACKAGE", "MODULE", "PART", "STATE", "SIZE")
    rows = [(p.name, p.module, p.part, p.state, human_bytes(p.size)) for p in detail.packages]
    return ["", "packages", *_indented(table(headers, rows, {2, 4}))]


def render_observation(detail: ObservationDetail) -> str:
    lines = _fields(
        [
            ("execution", detail.id),
            ("obs unit", detail.obs_unit),
            ("program", " / ".join(filter(None, (detail.program, detail.sub_program)))),
            ("instrument", f"{detail.instrument} ({', '.join(detail.modules) or 'no modules'})"),
            ("source", detail.source),
            ("start", _time(detail.start_time)),
            ("end", _time(detail.end_time)),
            ("status", detail.status),
            ("files", f"{detail.file_count} ({human_bytes(detail.bytes)})"),
            ("mean pwv", None if detail.mean_pwv_mm is None else f"{detail.mean_pwv_mm} mm"),
            ("mean el.", detail.mean_elevation_deg),
        ]
    )
    lines += _modules(detail)
    lines += _counts("files by state", detail.files_by_state, by_location=False)
    lines += _counts("file copies by location", detail.copies, by_location=True)
    return "\n".join(lines + _packages(detail))


def render_files(rows: Sequence[FileRow]) -> str:
    headers = ("ID", "STATE", "SIZE", "MODULE", "PATH")
    cells = [
        (r.id, r.state, human_bytes(r.size), f"{r.instrument}/{r.module}", r.path) for r in rows
    ]
    return "\n".join(table(headers, cells, right={0, 2}))


def _copies(title: str, copies: Sequence[CopyInfo]) -> list[str]:
    if not copies:
        return ["", f"{title}: none"]
    headers = ("LOCATION", "SITE", "TYPE", "STATE", "VERIFIED (UTC)", "PROBLEM")
    rows = [
        (
            c.location,
            c.site,
            c.location_type,
            c.state,
            _time(c.verified_at) if c.verified_at else "-",
            c.failure_reason or "",
        )
        for c in copies
    ]
    return ["", title, *_indented(table(headers, rows))]


def _check_lines(detail: FileDetail) -> list[str]:
    if not detail.checks:
        return ["", "checks: none yet"]
    headers = ("CHECKED (UTC)", "OUTCOME", "BATCH", "REASON")
    rows = [
        (_time(c.checked_at), c.outcome, str(c.job_batch or "-"), c.reason or "")
        for c in detail.checks
    ]
    return ["", "checksum checks", *_indented(table(headers, rows))]


def render_file(detail: FileDetail) -> str:
    lines = _fields(
        [
            ("file", detail.id),
            ("path", detail.path),
            ("state", detail.state),
            ("problem", detail.failure_reason),
            ("size", f"{human_bytes(detail.size)} ({detail.size} bytes)"),
            (
                "checksum",
                f"{detail.checksum} ({detail.checksum_algorithm})"
                if detail.checksum
                else "not yet computed",
            ),
            ("execution", detail.execution_id),
            ("obs unit", detail.obs_unit),
            ("module", f"{detail.instrument}/{detail.module}"),
            ("filed", _time(detail.created_at)),
            ("package", detail.package.name if detail.package else "not packaged yet"),
        ]
    )
    lines += _check_lines(detail)
    lines += _copies("copies", detail.copies)
    if detail.package is not None:
        lines += _copies(f"copies of package {detail.package.name}", detail.package.copies)
    return "\n".join(lines)
