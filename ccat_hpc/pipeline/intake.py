"""Intake of manifest files: filing one file, and the manifest watcher's body.

These functions own their transactions (they are what a CLI command or the watcher
job runs). A manifest is filed in one transaction; a concurrent filer of the same
execution makes the loser retry, and the retry finds the winner's rows (a no-op or
a conflict), so two filers never create the execution twice.

The watcher files every ``*.json`` in a folder, then moves it to ``filed/`` or, with
a ``NAME.error.txt`` beside it, to ``rejected/``. Instruments write ``NAME.json.tmp``
and rename it; a ``.json`` modified less than ``stable_seconds`` ago is left for the
next pass. A crash between filing and moving is harmless: the next pass files the
same manifest again, which is a no-op, and moves it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.reasons import operational_error_reason
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import ManifestError
from ccat_hpc.pipeline.filing import FilingResult, file_manifest
from ccat_hpc.pipeline.manifest import read_manifest

FILED_DIR = "filed"
REJECTED_DIR = "rejected"
CONCURRENT_RETRIES = 3


@dataclass(frozen=True)
class IntakeOutcome:
    path: Path
    status: str  # "filed" | "unchanged" | "rejected" | "deferred"
    message: str
    result: FilingResult | None = None

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"


def _describe(result: FilingResult) -> str:
    return f"{result.file_count} files, {result.total_bytes} bytes, execution {result.execution_id}"


def file_path(factory: sessionmaker[Session], path: Path) -> IntakeOutcome:
    """File one manifest file. Never raises for a bad manifest or a transient DB error."""
    try:
        manifest, digest = read_manifest(path)
    except ManifestError as exc:
        return IntakeOutcome(path, "rejected", str(exc))
    for attempt in range(CONCURRENT_RETRIES):
        try:
            with transaction(factory) as session:
                result = file_manifest(session, manifest, digest, source_name=path.name)
            status = "filed" if result.created else "unchanged"
            return IntakeOutcome(path, status, _describe(result), result)
        except ManifestError as exc:
            return IntakeOutcome(path, "rejected", str(exc))
        except IntegrityError:
            if attempt == CONCURRENT_RETRIES - 1:
                raise
        except OperationalError as exc:
            reason = operational_error_reason(exc)
            return IntakeOutcome(path, "deferred", f"ops-db unavailable: {reason}")
    raise AssertionError("unreachable")


def ready_manifests(folder: Path, now: float, stable_seconds: float) -> list[Path]:
    """``*.json`` files in ``folder`` not modified for ``stable_seconds``, oldest first."""
    ready = []
    for path in folder.glob("*.json"):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if path.is_file() and now - info.st_mtime >= stable_seconds:
            ready.append((info.st_mtime, path.name, path))
    return [path for _, _, path in sorted(ready)]


def free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name`` with a counter before the suffix if that exists."""
    candidate = directory / name
    stem, suffix = os.path.splitext(name)
    counter = 1
    while candidate.exists():
        candidate = directory / f"{stem}.{counter}{suffix}"
        counter += 1
    return candidate


def _move(path: Path, directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    target = free_name(directory, path.name)
    os.replace(path, target)
    return target


def _reject(path: Path, message: str) -> None:
    directory = path.parent / REJECTED_DIR
    directory.mkdir(exist_ok=True)
    target = free_name(directory, path.name)
    error_file = target.with_suffix(".error.txt")
    error_file.write_text(f"{path.name}: {message}\n", encoding="utf-8")
    os.replace(path, target)


def settle(outcome: IntakeOutcome) -> None:
    """Move a processed manifest to filed/ or rejected/ (deferred ones stay)."""
    if not outcome.path.exists():  # moved away by someone else meanwhile: nothing to settle
        return
    if outcome.status in ("filed", "unchanged"):
        _move(outcome.path, outcome.path.parent / FILED_DIR)
    elif outcome.status == "rejected":
        _reject(outcome.path, outcome.message)


def watch_once(
    factory: sessionmaker[Session],
    folder: Path,
    stable_seconds: float,
    stop: threading.Event | None = None,
    report: Callable[[IntakeOutcome], None] | None = None,
) -> list[IntakeOutcome]:
    """One pass over ``folder``: file and settle every ready manifest."""
    outcomes = []
    for path in ready_manifests(folder, time.time(), stable_seconds):
        if stop is not None and stop.is_set():
            break
        outcome = file_path(factory, path)
        settle(outcome)
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes


def watch(
    factory: sessionmaker[Session],
    folder: Path,
    *,
    interval: float,
    stable_seconds: float,
    stop: threading.Event,
    max_runtime: float | None = None,
    report: Callable[[IntakeOutcome], None] | None = None,
) -> int:
    """Pass over ``folder`` every ``interval`` seconds until ``stop`` is set or time is up."""
    deadline = None if max_runtime is None else time.monotonic() + max_runtime
    passes = 0
    while not stop.is_set():
        watch_once(factory, folder, stable_seconds, stop, report)
        passes += 1
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(interval)
    return passes
