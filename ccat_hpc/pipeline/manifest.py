"""The manifest: the contract between instruments and the data center.

A manifest is a JSON file naming one execution of an obs unit, the instrument module
that recorded it, the SOURCE location its files are on, and every file (path relative
to the location root, size, optional xxh3-128). Unknown keys are kept as metadata.
Everything here is pure: parsing, validation and the content digest.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import xxhash
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ccat_hpc.db.states import ObservationStatus
from ccat_hpc.errors import ManifestError
from ccat_hpc.paths import check_relative_path
from ccat_hpc.yamlfile import format_location

MANIFEST_VERSION = 1
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    path: str
    size: StrictInt = Field(ge=0)
    xxh3_128: Hex32 | None = None

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        return check_relative_path(value)

    @field_validator("xxh3_128")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ExecutionInfo(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: uuid.UUID
    start_time: AwareDatetime
    end_time: AwareDatetime
    status: ObservationStatus
    mean_pwv_mm: float | None = None
    mean_elevation_deg: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ExecutionInfo:
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        return self

    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    manifest_version: Literal[1]
    instrument: str = Field(min_length=1)
    instrument_module: str = Field(min_length=1)
    obs_unit: str = Field(min_length=1)
    executed_obs_unit: ExecutionInfo
    location: str = Field(min_length=1)
    files: list[ManifestFile] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_paths(self) -> Manifest:
        seen: set[str] = set()
        for index, entry in enumerate(self.files):
            if entry.path in seen:
                raise ValueError(f"files[{index}].path: {entry.path!r} is listed twice")
            seen.add(entry.path)
        return self

    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)


def manifest_digest(raw: Any) -> str:
    """xxh3-128 of the manifest's canonical JSON: same content, same digest, any key order."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(xxhash.xxh3_128_hexdigest(canonical.encode("utf-8")))


def _where(loc: tuple[int | str, ...], raw: Any) -> str:
    """The error location, naming the file's path when the error is in one file entry."""
    if not loc:
        return "<manifest>"
    text = format_location(loc)
    if len(loc) >= 2 and loc[0] == "files" and isinstance(loc[1], int):
        with contextlib.suppress(KeyError, IndexError, TypeError):
            text += f" ({raw['files'][loc[1]]['path']})"
    return text


def parse_manifest(raw: Any) -> Manifest:
    """Validate a decoded manifest; the error names every bad field (and file)."""
    if not isinstance(raw, dict):
        raise ManifestError("manifest must be a JSON object")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        shown = [f"{_where(e['loc'], raw)}: {e['msg']}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ManifestError("; ".join(shown) + more) from None


def read_manifest(path: Path) -> tuple[Manifest, str]:
    """Read and validate a manifest file; returns it with its content digest."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ManifestError("manifest is not UTF-8 text") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ManifestError(f"invalid JSON at {where}: {exc.msg}") from None
    return parse_manifest(raw), manifest_digest(raw)
