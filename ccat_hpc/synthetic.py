"""Synthetic observations: instrument-like files on SOURCE storage plus their manifest.

Used by ``ccat-hpc demo``, the benchmarks and the tests; instrument teams can use it to
try the manifest contract (``ccat-hpc simulate-observation``).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import xxhash


@dataclass(frozen=True)
class SyntheticObservation:
    instrument: str
    instrument_module: str
    obs_unit: str
    location: str
    file_count: int
    file_size: int
    with_checksums: bool = True
    files_per_folder: int = 1000


def _write_file(path: Path, size: int, seed: int) -> str:
    """Write ``size`` pseudo-random bytes; return their xxh3-128."""
    hasher = xxhash.xxh3_128()
    block = xxhash.xxh3_128_digest(seed.to_bytes(8, "little")) * 4096  # 64 KiB pattern
    with path.open("wb") as handle:
        remaining = size
        offset = seed % len(block)
        while remaining:
            chunk = (block[offset:] + block[:offset])[: min(remaining, len(block))]
            handle.write(chunk)
            hasher.update(chunk)
            remaining -= len(chunk)
    return str(hasher.hexdigest())


def write_observation(
    spec: SyntheticObservation,
    location_root: Path,
    start_time: datetime | None = None,
    execution_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Create the files below ``location_root`` and return the manifest as a dict."""
    execution_id = execution_id or uuid.uuid4()
    start = start_time or datetime.now(UTC).replace(microsecond=0)
    base = f"{spec.obs_unit}/{execution_id}/{spec.instrument_module}"
    files = []
    for index in range(spec.file_count):
        folder = f"{base}/part-{index // spec.files_per_folder:04d}"
        (location_root / folder).mkdir(parents=True, exist_ok=True)
        relative = f"{folder}/det_{index:06d}.g3"
        digest = _write_file(location_root / relative, spec.file_size, index + 1)
        entry: dict[str, Any] = {"path": relative, "size": spec.file_size}
        if spec.with_checksums:
            entry["xxh3_128"] = digest
        files.append(entry)
    return {
        "manifest_version": 1,
        "instrument": spec.instrument,
        "instrument_module": spec.instrument_module,
        "obs_unit": spec.obs_unit,
        "executed_obs_unit": {
            "id": str(execution_id),
            "start_time": start.isoformat().replace("+00:00", "Z"),
            "end_time": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
            "status": "success",
        },
        "location": spec.location,
        "files": files,
        "generator": "ccat-hpc synthetic",
    }


def drop_manifest(manifest: dict[str, Any], folder: Path, name: str | None = None) -> Path:
    """Write a manifest as an instrument should: to NAME.json.tmp, fsync, rename."""
    folder.mkdir(parents=True, exist_ok=True)
    name = name or f"{manifest['executed_obs_unit']['id']}-{manifest['instrument_module']}"
    final = folder / f"{name}.json"
    temporary = folder / f"{name}.json.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final
