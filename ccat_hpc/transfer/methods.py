"""Transfer methods: how a file goes from one site's buffer to another's.

One interface (:class:`TransferMethod`): copy a local file to a path at the destination
(a mounted folder, or ``host:path`` over ssh), appending the method's full output to a
log file. The method writes only the path it is given (the caller's partial name); the
caller verifies the checksum at the destination and then publishes the final name.

- ``copy``: for file systems mounted on both ends: parallel streams, each copying its
  own byte ranges with positional reads and writes, then fsync.
- ``rsync``: ``rsync --inplace --partial`` (over ssh when the destination has a host),
  resuming where an interrupted copy stopped.
- ``bbcp``: ``bbcp`` with parallel streams, where it is installed.

Every command runs through :func:`run_logged`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from ccat_hpc.errors import CcatHpcError
from ccat_hpc.logline import utc_stamp

PIECE = 8 * 1024 * 1024
#: seconds without any data moving before rsync gives up on a stalled connection
IO_TIMEOUT = 300
#: the methods a route may name (site configs are checked against them)
METHODS = ("copy", "rsync", "bbcp")


class TransferError(CcatHpcError):
    """A transfer method could not move the file; ``retryable`` says whether to try again."""

    exit_code = 9

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Destination:
    """Where the bytes go: a path, on ``host`` over ssh when it is set."""

    path: Path
    host: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.path}" if self.host else str(self.path)


class TransferMethod(Protocol):
    name: str

    def copy(self, source: Path, destination: Destination, log: TextIO) -> int:
        """Copy ``source`` to ``destination``; the bytes copied. TransferError if it fails."""


def run_logged(argv: Sequence[str], log: TextIO, timeout: float | None = None) -> None:
    """Run a transfer command with its output appended to ``log``; TransferError if it fails."""
    log.write(f"{utc_stamp()} $ {' '.join(argv)}\n")
    log.flush()
    try:
        finished = subprocess.run(
            list(argv), stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise TransferError(
            f"{argv[0]} is not installed on this machine", retryable=False
        ) from None
    except subprocess.TimeoutExpired:
        raise TransferError(f"{argv[0]} did not finish within {timeout} s") from None
    log.write(f"{utc_stamp()} exit status {finished.returncode}\n")
    log.flush()
    if finished.returncode != 0:
        raise TransferError(
            f"{argv[0]} failed with exit status {finished.returncode} (its output: {log.name})"
        )


class LocalCopy:
    """Parallel positional copy between mounted file systems."""

    name = "copy"

    def __init__(self, streams: int = 4) -> None:
        self.streams = max(1, streams)

    def copy(self, source: Path, destination: Destination, log: TextIO) -> int:
        if destination.host:
            raise TransferError(
                f"the copy method needs the destination mounted here, not on {destination.host}"
                " (use rsync or bbcp for that route)",
                retryable=False,
            )
        log.write(f"{utc_stamp()} copy {source} -> {destination.path} ({self.streams} streams)\n")
        try:
            size = self._copy(source, destination.path)
        except OSError as exc:
            raise TransferError(
                f"copy {source} -> {destination.path}: {exc.strerror or exc}"
            ) from None
        log.write(f"{utc_stamp()} copied {size} bytes\n")
        log.flush()
        return size

    def _copy(self, source: Path, target: Path) -> int:
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # as rsync --mkpath does
            size = os.fstat(src).st_size
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            dst = os.open(target, flags, 0o644)
            try:
                os.ftruncate(dst, size)
                self._ranges(src, dst, size)
                os.fsync(dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return size

    def _ranges(self, src: int, dst: int, size: int) -> None:
        step = max(PIECE, -(-size // self.streams))
        ranges = [(start, min(start + step, size)) for start in range(0, size, step)]
        stop = threading.Event()

        def one(start: int, end: int) -> None:
            position = start
            while position < end and not stop.is_set():
                data = os.pread(src, min(PIECE, end - position), position)
                if not data:
                    raise OSError(f"source shrank at byte {position}")
                view = memoryview(data)
                while view:
                    view = view[os.pwrite(dst, view, position + len(data) - len(view)) :]
                position += len(data)

        with ThreadPoolExecutor(max_workers=self.streams) as pool:
            futures = [pool.submit(one, start, end) for start, end in ranges]
            try:
                for future in futures:
                    future.result()
            finally:
                stop.set()


class Rsync:
    name = "rsync"

    def __init__(self, ssh: str = "ssh -o BatchMode=yes") -> None:
        self.ssh = ssh

    def copy(self, source: Path, destination: Destination, log: TextIO) -> int:
        argv = ["rsync", "--inplace", "--partial", "--no-whole-file", "--mkpath", "--stats"]
        argv.append(f"--timeout={IO_TIMEOUT}")  # a stalled link ends the hop (retryable)
        if destination.host:
            argv += ["-e", self.ssh]
        run_logged([*argv, "--", str(source), str(destination)], log)
        return source.stat().st_size


class Bbcp:
    name = "bbcp"

    def __init__(self, streams: int = 4) -> None:
        self.streams = max(1, streams)

    def copy(self, source: Path, destination: Destination, log: TextIO) -> int:
        if shutil.which("bbcp") is None:
            raise TransferError("bbcp is not installed on this machine", retryable=False)
        argv = ["bbcp", "-f", "-s", str(self.streams), "--", str(source), str(destination)]
        run_logged(argv, log)
        return source.stat().st_size


def transfer_method(name: str, streams: int = 4, ssh: str | None = None) -> TransferMethod:
    """The method called ``name`` (a route's ``method``); ``ssh`` is the command rsync
    reaches a host with (``$CCAT_RSYNC_SSH``)."""
    if name == "copy":
        return LocalCopy(streams)
    if name == "rsync":
        return Rsync(ssh or "ssh -o BatchMode=yes")
    if name == "bbcp":
        return Bbcp(streams)
    raise TransferError(
        f"unknown transfer method {name!r}; known: {', '.join(METHODS)}", retryable=False
    )
