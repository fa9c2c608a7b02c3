"""Every subprocess the executors start goes through this module: :func:`run_command`
(run and wait), :func:`start_detached` (a supervisor that outlives the caller) and
:func:`start_task` (one task of a local array, in a process group of its own).

Callers take these functions as parameters, so tests can hand in recorded answers.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ccat_hpc.errors import CcatHpcError
from ccat_hpc.text import one_line

MAX_REASON = 300


class ExecutorError(CcatHpcError):
    """The batch system refused or failed a request (one line: command, reason, hint)."""

    exit_code = 8


class UnknownJob(ExecutorError):
    """The executor answers, but knows nothing of the job (its state is gone)."""


class CommandRunner(Protocol):
    """What :func:`run_command` is: the Slurm executor takes any callable like it."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]: ...


class DetachedStarter(Protocol):
    def __call__(self, argv: Sequence[str], log: Path) -> int: ...


class TaskStarter(Protocol):
    def __call__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]: ...


def error_line(finished: subprocess.CompletedProcess[str]) -> str:
    """The line that says why a command failed: its first ``fatal`` line, else its first
    line of error output, else its exit code."""
    lines = [line for line in (finished.stderr or finished.stdout or "").splitlines() if line]
    fatal = [line for line in lines if "fatal:" in line]
    chosen = (fatal or lines or [f"exit code {finished.returncode}"])[0]
    return one_line(chosen, MAX_REASON)


def command_failure(argv: Sequence[str], reason: str, hint: str = "") -> ExecutorError:
    """One line: the command, why it failed and, where known, what to check."""
    advice = f" ({hint})" if hint else ""
    return ExecutorError(
        f"`{one_line(shlex.join(argv), MAX_REASON)}` failed: {one_line(reason, MAX_REASON)}{advice}"
    )


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and return its output; with ``check``, a non-zero exit is an
    ExecutorError with the command's error line. Not found and no answer always are."""
    try:
        finished = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise command_failure(argv, "command not found (installed, on PATH?)") from None
    except subprocess.TimeoutExpired:
        raise command_failure(argv, f"no answer within {timeout:.0f} s") from None
    if check and finished.returncode != 0:
        raise command_failure(argv, error_line(finished))
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


def start_task(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start one task in a process group of its own, output appended to ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def signal_group(pid: int, signum: signal.Signals) -> bool:
    """Send ``signum`` to process group ``pid``; False when the group is gone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    return True
