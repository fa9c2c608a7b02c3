"""Commands on the destination host of a transfer, over ssh (for buffers not mounted here).

The same ssh command the rsync method uses (``$CCAT_RSYNC_SSH``, default ``ssh -o
BatchMode=yes``): ``xxh128sum`` checks the copy where it landed, ``mv`` publishes it
under its final name (a rename inside one folder), ``rm`` removes a failed copy.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ccat_hpc.logline import utc_stamp
from ccat_hpc.transfer.methods import TransferError

DEFAULT_SSH = "ssh -o BatchMode=yes"
_DIGEST = re.compile(r"^([0-9a-f]{32})\s")


@dataclass(frozen=True)
class RemoteHost:
    host: str
    ssh: str = DEFAULT_SSH

    def run(self, argv: list[str], log: TextIO, timeout: float = 3600) -> str:
        """Run ``argv`` on the host; its standard output. TransferError when it fails."""
        command = [*shlex.split(self.ssh), self.host, "--", shlex.join(argv)]
        log.write(f"{utc_stamp()} on {self.host}: {shlex.join(argv)}\n")
        log.flush()
        try:
            finished = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            raise TransferError("ssh is not installed on this machine", retryable=False) from None
        except subprocess.TimeoutExpired:
            raise TransferError(f"{self.host}: {argv[0]} did not finish in {timeout} s") from None
        log.write(finished.stdout + finished.stderr)
        if finished.returncode != 0:
            detail = (finished.stderr.strip().splitlines() or ["no output"])[-1]
            raise TransferError(
                f"{self.host}: {argv[0]} failed with exit status {finished.returncode}: {detail}"
            )
        return finished.stdout

    def checksum(self, path: Path, log: TextIO) -> str:
        """The xxh3-128 of ``path`` on the host (its ``xxh128sum``)."""
        found = _DIGEST.match(self.run(["xxh128sum", "--", str(path)], log))
        if found is None:
            raise TransferError(f"{self.host}: xxh128sum gave no checksum for {path}")
        return found.group(1)

    def publish(self, partial: Path, final: Path, log: TextIO) -> None:
        self.run(["mv", "-f", "--", str(partial), str(final)], log)
        self.run(["sync", "--", str(final)], log)

    def remove(self, path: Path, log: TextIO) -> None:
        self.run(["rm", "-f", "--", str(path)], log)
