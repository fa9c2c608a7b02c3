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

import contextlib
import errno
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.errors import ConfigError
from ccat_hpc.pipeline.intake import IntakeOutcome, IntakeStatus, file_path
from ccat_hpc.text import one_line

FILED_DIR = "filed"
REJECTED_DIR = "rejected"
ERROR_SUFFIX = ".error.txt"
MAX_NAME_BYTES = 255
#: enough of a rejected manifest to find the execution id it names
MAX_COMPARED_BYTES = 1024**2

Report = Callable[[IntakeOutcome], None]
#: files one manifest (the REST API's client, say); a session factory files into ops-db
Filer = Callable[[Path], IntakeOutcome]
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
    """Every ``*.json`` entry not modified for ``stable_seconds``, oldest first; and how
    many others are still being written. Entries that are not regular files (a FIFO, a
    folder, a link) are returned too: they are rejected like any manifest that cannot
    be filed, never opened through."""
    ready, waiting = [], 0
    for path in folder.glob("*.json"):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if now - info.st_mtime >= stable_seconds:
            ready.append((info.st_mtime, path.name, path))
        else:
            waiting += 1
    return [path for _, _, path in sorted(ready)], waiting


def ready_manifests(folder: Path, now: float, stable_seconds: float) -> list[Path]:
    """``*.json`` entries in ``folder`` not modified for ``stable_seconds``, oldest first."""
    return scan(folder, now, stable_seconds)[0]


def shown_name(name: str) -> str:
    """A file name for a log line or a reason: quoted when it holds odd characters."""
    return name if name.isprintable() else repr(name)


def _place(folder: Path) -> Path:
    """``filed/`` or ``rejected/`` of the inbox: a real folder, never a link to elsewhere."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
    if not stat.S_ISDIR(folder.lstat().st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (a link or a file)", str(folder))
    return folder


def fitting_name(base: str, suffix: str) -> str:
    """``base + suffix``, its base shortened (with a hash of the whole) to fit a file name."""
    name = base + suffix
    raw = base.encode("utf-8", "surrogateescape")
    if len(raw) + len(suffix.encode()) <= MAX_NAME_BYTES:
        return name
    digest = xxhash.xxh3_64_hexdigest(raw)
    short = raw[: MAX_NAME_BYTES - len(suffix.encode()) - len(digest) - 1]
    return short.decode("utf-8", "ignore") + f"~{digest}" + suffix


def free_base(directory: Path, stem: str, suffixes: tuple[str, ...]) -> str:
    """``stem``, or ``stem.N``, such that no ``fitting_name(base, suffix)`` exists (not
    even as a link)."""
    base, counter = stem, 1
    while any(os.path.lexists(directory / fitting_name(base, s)) for s in suffixes):
        base, counter = f"{stem}.{counter}", counter + 1
    return base


def _move(path: Path, directory: Path) -> Path:
    folder = _place(directory)
    target = folder / fitting_name(free_base(folder, path.stem, (".json",)), ".json")
    os.replace(path, target)
    return target


def reason_file_name(base: str) -> str:
    """``BASE.error.txt`` (shortened to fit a file name)."""
    return fitting_name(base, ERROR_SUFFIX)


def _reject(path: Path, message: str) -> None:
    """Write the reason beside a free name in rejected/, then move the manifest there
    (the reason goes again when the move fails)."""
    folder = _place(path.parent / REJECTED_DIR)
    base = free_base(folder, path.stem, (".json", ERROR_SUFFIX))
    reason = f"{shown_name(path.name)}: {one_line(message)}\n".encode()
    reason_file = folder / reason_file_name(base)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(reason_file, flags, 0o644), "wb") as handle:
        handle.write(reason)
    try:
        os.replace(path, folder / fitting_name(base, ".json"))
    except OSError:
        _remove(reason_file)
        raise


def _forget_rejection(path: Path, execution_id: str) -> None:
    """Remove earlier rejected copies of this manifest (NAME.json, NAME.1.json, … that
    name the same execution) and the reasons beside them."""
    rejected = path.parent / REJECTED_DIR
    counter = 0
    while True:
        base = path.stem if counter == 0 else f"{path.stem}.{counter}"
        copy = rejected / fitting_name(base, ".json")
        if not os.path.lexists(copy) and counter > 0:
            return
        if _names_execution(copy, execution_id):
            _remove(copy)
            _remove(rejected / reason_file_name(base))
        counter += 1


def _names_execution(path: Path, execution_id: str) -> bool:
    """Whether the regular file at ``path`` mentions ``execution_id`` (read bounded)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return False
    with os.fdopen(fd, "rb") as handle:
        return execution_id.encode() in handle.read(MAX_COMPARED_BYTES)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def settle(outcome: IntakeOutcome) -> None:
    """Move a processed manifest to filed/ or rejected/ (deferred ones stay)."""
    if not os.path.lexists(outcome.path):  # moved away by someone else meanwhile
        return
    if outcome.accepted:
        _move(outcome.path, outcome.path.parent / FILED_DIR)
        if outcome.result is not None:
            _forget_rejection(outcome.path, outcome.result.execution_id)
    elif outcome.rejected:
        _reject(outcome.path, outcome.message)


def watch_once(
    factory: sessionmaker[Session] | Filer,
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
        if isinstance(factory, sessionmaker):
            outcome = file_path(factory, path, follow_links=False)
        else:
            outcome = factory(path)
        if outcome.rejected and not os.path.lexists(path):
            continue  # another watcher of this inbox took it meanwhile: its outcome, not ours
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
    factory: sessionmaker[Session] | Filer,
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
