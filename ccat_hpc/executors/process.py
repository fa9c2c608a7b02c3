"""Every subprocess the executors start goes through :func:`run_command` (run and wait)
or :func:`start_detached` (a supervisor that outlives the caller)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ccat_hpc.errors import CcatHpcError


class ExecutorError(CcatHpcError):
    """The batch system refused or failed a request (the message has its reason)."""

    exit_code = 8


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and return its output; raise ExecutorError with its first error line."""
    try:
        finished = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError:
        raise ExecutorError(f"{argv[0]}: command not found (installed, on PATH?)") from None
    except subprocess.TimeoutExpired:
        raise ExecutorError(f"{argv[0]}: no answer within {timeout:.0f} s") from None
    if check and finished.returncode != 0:
        lines = (finished.stderr or finished.stdout).strip().splitlines()
        reason = lines[0] if lines else f"exit code {finished.returncode}"
        raise ExecutorError(f"{' '.join(argv[:2])}: {reason}")
    return finished


def start_detached(argv: Sequence[str], log: Path) -> int:
    """Start ``argv`` in a session of its own, output appended to ``log``; return its pid."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(argv),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid
