"""The manifest watcher's body: one inbox, every ``*.json`` in it filed and moved aside.

Each manifest is filed (:func:`ccat_hpc.pipeline.intake.file_path`) and moved to
``filed/``, or, with ``NAME.error.txt`` holding a one-line reason beside it, to
``rejected/``; a manifest ops-db could not take now (DEFERRED) stays for the next
pass. Nothing a manifest holds can stop the watcher: a manifest it cannot file is
rejected and the pass goes on. Instruments write ``NAME.json.tmp`` and rename it; a
``.json`` modified less than ``stable_seconds`` ago waits for a later pass. A crash
between filing and moving is harmless: the next pass files the same manifest again,
which is a no-op, and moves it. When a fixed manifest is filed, its earlier copy in
``rejected/`` (and the reason beside it) is removed.

A problem with the inbox itself (missing, not writable, ``filed`` or ``rejected``
taken by something that is not a folder) is one :class:`InboxError` at start-up.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.errors import ConfigError
from ccat_hpc.pipeline.intake import IntakeOutcome, IntakeStatus, file_path

FILED_DIR = "filed"
REJECTED_DIR = "rejected"
ERROR_SUFFIX = ".error.txt"

Report = Callable[[IntakeOutcome], None]
Warn = Callable[[str], None]


class InboxError(ConfigError):
    """The watched folder cannot be used (the message says why and what to fix)."""


def check_inbox(folder: Path) -> None:
    """Make sure ``folder`` and its ``filed/`` and ``rejected/`` folders can be used."""
    if not folder.is_dir():
        raise InboxError(f"inbox {folder} does not exist or is not a folder")
    for name in (FILED_DIR, REJECTED_DIR):
        place = folder / name
        if place.is_symlink() or (place.exists() and not place.is_dir()):
            raise InboxError(f"inbox {folder}: {name!r} exists and is not a folder; move it away")
        try:
            place.mkdir(exist_ok=True)
        except OSError as exc:
            raise InboxError(f"inbox {folder}: cannot create {name}/: {exc.strerror}") from None
    for place in (folder, folder / FILED_DIR, folder / REJECTED_DIR):
        if not os.access(place, os.W_OK | os.X_OK):
            raise InboxError(f"inbox {folder}: {place} is not writable by this user")


@dataclass
class PassResult:
    """What one pass did: outcomes, manifests left waiting, problems moving files."""

    outcomes: list[IntakeOutcome] = field(default_factory=list)
    waiting: int = 0
    move_errors: int = 0

    def count(self, status: IntakeStatus) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)


def scan(folder: Path, now: float, stable_seconds: float) -> tuple[list[Path], int]:
    """``*.json`` regular files not modified for ``stable_seconds``, oldest first; and how
    many others are still being written."""
    ready, waiting = [], 0
    for path in folder.glob("*.json"):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if now - info.st_mtime >= stable_seconds:
            ready.append((info.st_mtime, path.name, path))
        else:
            waiting += 1
    return [path for _, _, path in sorted(ready)], waiting


def ready_manifests(folder: Path, now: float, stable_seconds: float) -> list[Path]:
    """``*.json`` files in ``folder`` not modified for ``stable_seconds``, oldest first."""
    return scan(folder, now, stable_seconds)[0]


def free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name`` with a counter before the suffix if that exists."""
    candidate = directory / name
    stem, suffix = os.path.splitext(name)
    counter = 1
    while candidate.exists() or candidate.is_symlink():
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
    error_file = target.with_name(target.stem + ERROR_SUFFIX)
    error_file.write_text(f"{path.name}: {message}\n", encoding="utf-8")
    os.replace(path, target)


def _forget_rejection(path: Path) -> None:
    """Remove earlier rejected copies of a manifest of this name (NAME.json, NAME.1.json, …)
    and the reasons beside them."""
    rejected = path.parent / REJECTED_DIR
    counter = 0
    while True:
        base = path.stem if counter == 0 else f"{path.stem}.{counter}"
        removed = [_remove(rejected / f"{base}.json"), _remove(rejected / f"{base}{ERROR_SUFFIX}")]
        if counter > 0 and not any(removed):
            return
        counter += 1


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def settle(outcome: IntakeOutcome) -> None:
    """Move a processed manifest to filed/ or rejected/ (deferred ones stay)."""
    if not outcome.path.exists():  # moved away by someone else meanwhile: nothing to settle
        return
    if outcome.accepted:
        _move(outcome.path, outcome.path.parent / FILED_DIR)
        _forget_rejection(outcome.path)
    elif outcome.rejected:
        _reject(outcome.path, outcome.message)


def watch_once(
    factory: sessionmaker[Session],
    folder: Path,
    stable_seconds: float,
    stop: threading.Event | None = None,
    report: Report | None = None,
    warn: Warn | None = None,
) -> PassResult:
    """One pass over ``folder``: file and settle every ready manifest."""
    ready, waiting = scan(folder, time.time(), stable_seconds)
    result = PassResult(waiting=waiting)
    for path in ready:
        if stop is not None and stop.is_set():
            result.waiting += 1
            continue
        outcome = file_path(factory, path)
        try:
            settle(outcome)
        except OSError as exc:
            result.move_errors += 1
            if warn is not None:
                warn(f"cannot move {path.name} aside: {exc.strerror or exc}; it stays for now")
        result.outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return result


def watch(
    factory: sessionmaker[Session],
    folder: Path,
    *,
    interval: float,
    stable_seconds: float,
    stop: threading.Event,
    max_runtime: float | None = None,
    report: Report | None = None,
    warn: Warn | None = None,
) -> int:
    """Pass over ``folder`` every ``interval`` seconds until ``stop`` is set or time is up."""
    deadline = None if max_runtime is None else time.monotonic() + max_runtime
    passes = 0
    while not stop.is_set():
        watch_once(factory, folder, stable_seconds, stop, report, warn)
        passes += 1
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(interval)
    return passes
