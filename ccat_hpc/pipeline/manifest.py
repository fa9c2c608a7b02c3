"""The manifest: the contract between instruments and the data center.

A manifest is a JSON file naming one execution of an obs unit, the instrument module
that recorded it, the SOURCE location its files are on, and every file (path relative
to the location root, size, optional xxh3-128). Unknown keys are kept as metadata.
Everything here is pure: parsing, validation and the content digest.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import stat
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import xxhash
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ccat_hpc.db.states import ObservationStatus
from ccat_hpc.errors import ManifestError
from ccat_hpc.paths import check_relative_path
from ccat_hpc.safejson import JsonProblem, check_values, describe_path, loads_checked
from ccat_hpc.timerange import plausible_utc
from ccat_hpc.yamlfile import error_message

MANIFEST_VERSION = 1
#: A manifest of a million files is about 150 MB; anything larger is not a manifest.
MAX_MANIFEST_BYTES = 512 * 1024**2
#: Longest file name (one path component) that POSIX file systems store.
MAX_NAME_BYTES = 255
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    path: str
    size: StrictInt = Field(ge=0, le=2**63 - 1)
    xxh3_128: Hex32 | None = None

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        check_relative_path(value)
        if len(posixpath.basename(value).encode("utf-8")) > MAX_NAME_BYTES:
            raise ValueError(f"file name is longer than {MAX_NAME_BYTES} bytes")
        return value

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
    mean_pwv_mm: Number | None = None
    mean_elevation_deg: Number | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        return plausible_utc(value)

    @model_validator(mode="after")
    def _reserved(self) -> ExecutionInfo:
        if "manifest" in (self.model_extra or {}):
            raise ValueError(
                "'manifest' is reserved here: ops-db keeps the manifest's own extra keys under it"
            )
        return self

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
    instrument: Name
    instrument_module: Name
    obs_unit: Name
    executed_obs_unit: ExecutionInfo
    location: Name
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
    text = describe_path(loc)
    if len(loc) >= 2 and loc[0] == "files" and isinstance(loc[1], int):
        with contextlib.suppress(KeyError, IndexError, TypeError):
            path = raw["files"][loc[1]]["path"]
            text += f" ({path})" if isinstance(path, str) and path.isprintable() else ""
    return text


def parse_manifest(raw: Any) -> Manifest:
    """Validate a decoded manifest; the error names every bad field (and file)."""
    if not isinstance(raw, dict):
        raise ManifestError("manifest must be a JSON object")
    try:
        check_values(raw)
    except JsonProblem as exc:
        raise ManifestError(str(exc)) from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        shown = [f"{_where(e['loc'], raw)}: {error_message(e)}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ManifestError("; ".join(shown) + more) from None


def read_manifest(path: Path, *, follow_links: bool = True) -> tuple[Manifest, str]:
    """Read and validate a manifest file; returns it with its content digest."""
    return parse_manifest_text(read_manifest_text(path, follow_links))


def decode_manifest(data: bytes) -> str:
    """A manifest's bytes as text: at most MAX_MANIFEST_BYTES of UTF-8."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES // 1024**2} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError("manifest is not UTF-8 text") from None


def parse_manifest_text(text: str) -> tuple[Manifest, str]:
    """Decode and validate a manifest's JSON text; returns it with its content digest."""
    try:
        raw = loads_checked(text)
    except JsonProblem as exc:
        raise ManifestError(str(exc)) from None
    return parse_manifest(raw), manifest_digest(raw)


def read_manifest_text(path: Path, follow_links: bool = True) -> str:
    """The manifest's text: a regular file (never waits on a FIFO) of bounded size, UTF-8."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise ManifestError("manifest is a symbolic link, not a file") from None
        raise ManifestError(f"cannot read manifest: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ManifestError("manifest is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            raise ManifestError(f"cannot read manifest: {exc.strerror or exc}") from None
    return decode_manifest(data)
