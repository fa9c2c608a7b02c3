"""The site config file format (``ccat_hpc/site_configs/*.yaml``), as validated models.

One file describes one site: its DataLocations, the routes that start there, the
retention policy per location type, and the Slurm profile per job kind. See
``ccat_hpc/site_configs/chile.yaml`` for a documented example.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ccat_hpc.db.states import LocationType, RouteType, StorageType
from ccat_hpc.text import CONTROL_CHARACTERS

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]

#: Job kinds a Slurm profile may be given for ("default" applies to all others).
JOB_KINDS = frozenset(
    {
        "default",
        "watch",
        "scheduler",
        "checksum",
        "package",
        "bundle",
        "transfer",
        "archive",
        "stage",
        "cleanup",
        "campaign",
        "scrub",
        "verify",
        "noop",
        "mpi",
    }
)

#: What a Slurm profile may hold, matched whole (they end up in #SBATCH lines).
#: partition, account and qos names (a comma separates several partitions)
SLURM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,+:@-]{0,199}")
SLURM_MEM = re.compile(r"\d+[KMGT]?")
SLURM_TIME = re.compile(r"(\d+-)?\d{1,2}(:\d{2}){0,2}|\d+")
SBATCH_OPTION = re.compile(r"--?[A-Za-z]")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteInfo(Strict):
    name: Name
    short_name: str = ""
    description: str = ""
    geographic_location: str = ""


class S3Settings(Strict):
    endpoint_url: str = Field(min_length=1)
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    region: str = ""


class TapeSettings(Strict):
    library: str = Field(min_length=1)
    mount_path: str = ""


class LocationConfig(Strict):
    """One DataLocation. ``storage`` picks which of path / s3 / tape applies."""

    name: Name
    type: LocationType
    storage: StorageType
    priority: int = 0
    active: bool = True
    description: str = ""
    instrument: str | None = None
    retention_days: int | None = Field(default=None, ge=0)
    #: bytes it may hold; a BUFFER past the site's buffer_max_fill of it is passed over
    capacity_bytes: int | None = Field(default=None, ge=1)
    #: PROCESSING: bytes one user's stagings may hold at once (None: no quota)
    user_quota_bytes: int | None = Field(default=None, ge=1)
    archive: str | None = None
    path: str | None = None
    host: str = ""
    s3: S3Settings | None = None
    tape: TapeSettings | None = None

    @model_validator(mode="after")
    def _storage_settings_present(self) -> LocationConfig:
        if self.storage is StorageType.DISK:
            if not self.path:
                raise ValueError("a disk location needs 'path'")
            if not PurePosixPath(self.path).is_absolute():
                raise ValueError(f"path must be absolute, got {self.path!r}")
        if self.storage is StorageType.S3 and self.s3 is None:
            raise ValueError("an s3 location needs an 's3' block (endpoint_url, bucket)")
        if self.storage is StorageType.TAPE and self.tape is None:
            raise ValueError("a tape location needs a 'tape' block (library)")
        if self.type is LocationType.LONG_TERM_ARCHIVE and self.retention_days is not None:
            raise ValueError("a LONG_TERM_ARCHIVE location keeps data forever: no retention_days")
        return self


class RouteConfig(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Name
    from_site: Name = Field(alias="from")
    to_site: Name = Field(alias="to")
    type: RouteType = RouteType.DIRECT
    via: Name | None = None
    from_location: Name | None = None
    to_location: Name | None = None
    method: Literal["copy", "rsync", "bbcp"] = "rsync"
    priority: int = 0
    active: bool = True

    @model_validator(mode="after")
    def _shape_matches_type(self) -> RouteConfig:
        if self.from_site == self.to_site:
            raise ValueError("a route must go to another site")
        if (self.type is RouteType.RELAY) != (self.via is not None):
            raise ValueError("'via' is required for a relay route and only allowed there")
        if self.type is RouteType.CUSTOM and not (self.from_location and self.to_location):
            raise ValueError("a custom route names 'from_location' and 'to_location'")
        return self


class RetentionPolicy(Strict):
    """How long copies stay at a location type once a verified LTA copy exists."""

    keep_days: int | None = Field(default=None, ge=0)


class SlurmProfile(Strict):
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    ntasks: int = Field(default=1, ge=1)
    cpus_per_task: int = Field(default=1, ge=1)
    mem: str = "2G"
    time: str = "01:00:00"
    array_throttle: int | None = Field(default=None, ge=1)
    extra_sbatch: list[str] = []
    setup: list[str] = []

    @field_validator("partition", "account", "qos")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_NAME.fullmatch(value):
            raise ValueError(f"not a Slurm partition, account or qos name: {value!r}")
        return value

    @field_validator("mem")
    @classmethod
    def _mem(cls, value: str) -> str:
        if not SLURM_MEM.fullmatch(value):
            raise ValueError(f"memory must look like 4000, 500M or 16G, got {value!r}")
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not SLURM_TIME.fullmatch(value):
            raise ValueError(f"time must look like 30, 01:00:00 or 2-00:00:00, got {value!r}")
        return value

    @field_validator("extra_sbatch")
    @classmethod
    def _options(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if CONTROL_CHARACTERS.search(line) or not SBATCH_OPTION.match(line):
                raise ValueError(f"not one sbatch option (--name=value): {line!r}")
        return lines

    @field_validator("setup")
    @classmethod
    def _setup(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if CONTROL_CHARACTERS.search(line):
                raise ValueError(f"a setup line holds a newline or control character: {line!r}")
        return lines


class PipelineSettings(Strict):
    """How the site packages and bundles: sizes and waiting times of the pipeline steps."""

    #: a RawDataPackage holds at most this many bytes (a larger set of files is split)
    max_package_bytes: int = Field(default=50 * 10**9, ge=1)
    #: a DataTransferPackage is closed once its RDPs reach this many bytes ...
    bundle_target_bytes: int = Field(default=200 * 10**9, ge=1)
    #: ... or once its oldest RDP has waited this long, so a quiet night strands nothing
    bundle_max_wait_minutes: float = Field(default=60.0, ge=0)
    #: parallel streams of the local-copy transfer method
    transfer_streams: int = Field(default=4, ge=1, le=64)
    #: a failed item waits base × 2^(tries-1) seconds (at most the max, jittered) ...
    retry_base_seconds: float = Field(default=60.0, ge=0)
    retry_max_seconds: float = Field(default=3600.0, ge=0)
    #: ... and after this many tries per step (package, bundle, transfer, archive; 5
    #: for a step not named) it waits for an operator
    max_attempts: dict[str, int] = {}
    #: a route's or location's breaker opens after this many failures in a row within
    #: the window, and lets one probe item through after the cool-down
    breaker_failures: int = Field(default=5, ge=1)
    breaker_window_seconds: float = Field(default=600.0, gt=0)
    breaker_cooldown_seconds: float = Field(default=300.0, ge=0)
    #: a BUFFER with a capacity takes no new data past this fraction of it
    buffer_max_fill: float = Field(default=0.9, gt=0, le=1)
    #: cleanup deletes a copy only while the data has this many VERIFIED copies in
    #: LONG_TERM_ARCHIVE locations (each checked on the archive right before) ...
    archive_copies_required: int = Field(default=1, ge=1)
    #: ... and the scheduler runs it this often
    cleanup_interval_minutes: float = Field(default=60.0, ge=0)
    #: the array tasks the site's cluster runs at once for the pipeline ...
    task_slots: int = Field(default=8, ge=1)
    #: ... of which an operator's campaign takes at most this share (its job arrays are
    #: throttled to it), so the live pipeline is never starved
    campaign_share: float = Field(default=0.25, gt=0, le=1)
    #: a campaign task holds at most this many items
    campaign_items_per_task: int = Field(default=10, ge=1)
    #: a campaign task rests this long after each item, leaving the storage's bandwidth
    #: to the live pipeline (0: none)
    campaign_item_rest_seconds: float = Field(default=0.0, ge=0, le=3600)
    #: the integrity scrub re-reads at most this many bytes of the site's archive a
    #: day (0: no scrub), a slice every interval, oldest verification first
    scrub_bytes_per_day: int = Field(default=10**12, ge=0)
    scrub_interval_minutes: float = Field(default=60.0, gt=0)


class ArchiveConfig(Strict):
    name: Name
    description: str = ""


class SiteConfig(Strict):
    site: SiteInfo
    locations: list[LocationConfig] = []
    routes: list[RouteConfig] = []
    archives: list[ArchiveConfig] = []
    retention: dict[LocationType, RetentionPolicy] = {}
    slurm_profiles: dict[str, SlurmProfile] = {}
    pipeline: PipelineSettings = PipelineSettings()

    @field_validator("slurm_profiles")
    @classmethod
    def _known_job_kinds(cls, value: dict[str, SlurmProfile]) -> dict[str, SlurmProfile]:
        unknown = sorted(set(value) - JOB_KINDS)
        if unknown:
            raise ValueError(
                f"unknown job kind(s) {', '.join(unknown)}; known: {', '.join(sorted(JOB_KINDS))}"
            )
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> SiteConfig:
        for kind, names in (
            ("location", [loc.name for loc in self.locations]),
            ("route", [r.name for r in self.routes]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} name(s): {', '.join(duplicates)}")
        return self
