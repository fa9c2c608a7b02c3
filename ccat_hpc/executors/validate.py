"""Checks at the executor boundary: everything that reaches a script, a path or a command.

A job array's kind, counts, folder and Slurm profile come from the command line, site
configs and ops-db; they end up in ``#SBATCH`` lines, shell lines, file names and process
arguments. Each is checked here, and a bad one is refused with :class:`InvalidArrayJob`
(one line at the CLI) before anything is written or started.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ccat_hpc.errors import UsageError
from ccat_hpc.sites.schema import (
    SBATCH_OPTION,
    SLURM_MEM,
    SLURM_NAME,
    SLURM_TIME,
    SlurmProfile,
)
from ccat_hpc.text import CONTROL_CHARACTERS

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: a working dir is written double-quoted into #SBATCH lines, and Slurm expands ``%``
#: in ``--output`` patterns: these characters cannot pass through either
_NOT_IN_WORKING_DIR = frozenset('"\\%')


class InvalidArrayJob(UsageError):
    """A job array request the executors refuse (kind, counts, folder, profile values)."""


def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise InvalidArrayJob(
            f"job kind {kind!r}: must be 1-40 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter"
        )
    return kind


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """An int of at least ``minimum`` (bools are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArrayJob(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def check_text(name: str, value: object) -> str:
    """A string without newlines or other control characters."""
    if not isinstance(value, str):
        raise InvalidArrayJob(f"{name} must be text, got {value!r}")
    if CONTROL_CHARACTERS.search(value):
        raise InvalidArrayJob(f"{name} contains a newline or control character: {value!r}")
    return value


def check_working_dir(path: object) -> Path:
    """An absolute folder whose name can go into #SBATCH lines and log file patterns."""
    if not isinstance(path, Path):
        raise InvalidArrayJob(f"working dir must be a path, got {path!r}")
    text = check_text("working dir", str(path))
    if not path.is_absolute():
        raise InvalidArrayJob(f"working dir {text!r} must be an absolute path")
    bad = sorted(_NOT_IN_WORKING_DIR & set(text))
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise InvalidArrayJob(f"working dir {text!r} may not contain {shown}")
    return path


def check_profile(profile: object) -> SlurmProfile:
    """Every value of a Slurm profile that reaches a script or the local runner."""
    if not isinstance(profile, SlurmProfile):
        raise InvalidArrayJob(f"profile must be a SlurmProfile, got {type(profile).__name__}")
    for name in ("partition", "account", "qos"):
        value = getattr(profile, name)
        if value is not None:
            _check_pattern(f"profile {name}", value, SLURM_NAME)
    check_count("profile ntasks", profile.ntasks)
    check_count("profile cpus_per_task", profile.cpus_per_task)
    _check_pattern("profile mem", profile.mem, SLURM_MEM)
    _check_pattern("profile time", profile.time, SLURM_TIME)
    if profile.array_throttle is not None:
        check_count("profile array_throttle", profile.array_throttle)
    _check_lines("profile extra_sbatch", profile.extra_sbatch, SBATCH_OPTION)
    _check_lines("profile setup", profile.setup, None)
    return profile


def _check_pattern(name: str, value: object, pattern: re.Pattern[str]) -> str:
    text = check_text(name, value)
    if not pattern.fullmatch(text):
        raise InvalidArrayJob(f"{name}: invalid value {text!r}")
    return text


def _check_lines(name: str, lines: Iterable[object], start: re.Pattern[str] | None) -> None:
    for line in lines:
        text = check_text(name, line)
        if start is not None and not start.match(text):
            raise InvalidArrayJob(f"{name}: {text!r} is not an sbatch option (--name=value)")


def check_environment(environment: Mapping[Any, Any]) -> None:
    """Variable names a shell accepts; values without NUL (they go into a process's env)."""
    for name, value in environment.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise InvalidArrayJob(f"environment variable name {name!r} is not valid")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidArrayJob(f"environment variable {name}: value must be text without NUL")


def check_job_id(job_id: object) -> str:
    """An executor's job id as stored in ops-db (never an option, never a path part)."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InvalidArrayJob(f"job id {job_id!r} is not valid")
    return job_id


def check_job_request(
    kind: object,
    task_count: object,
    working_dir: object,
    profile: object,
    throttle: object = None,
) -> None:
    """Everything a job array request brings, checked before a batch is created for it."""
    check_kind(kind)
    check_count("task count", task_count)
    check_working_dir(working_dir)
    check_profile(profile)
    if throttle is not None:
        check_count("throttle", throttle)
