"""sbatch scripts from job templates (pure text; golden-file tested).

A template is ``ccat_hpc/executors/templates/KIND.sbatch`` (or ``mpi.sbatch`` for multi-rank
profiles, ``default.sbatch`` otherwise) with ``${name}`` placeholders. The site's
Slurm profile for the job kind decides the ``#SBATCH`` lines; secrets such as the
ops-db URL never go into a script (sbatch passes the submitter's environment on).

Quoting: every value in the script body (kind, batch id, rank count, the ccat-hpc command,
exported values) is quoted for the shell with :func:`shlex.quote`; ``#SBATCH`` values
with characters outside a plain set are double-quoted, which sbatch's own parser
understands (a working dir with spaces). :mod:`ccat_hpc.executors.validate` has refused
what neither can carry (control characters; ``"``, ``\\`` and ``%`` in a working dir).
The profile's ``setup`` lines are shell lines by design (``module load …``) and are
written as they are; ``extra_sbatch`` lines are options written as they are.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ccat_hpc.executors.base import ArrayJob, SubmittedArray, job_name, task_log_file

#: #SBATCH values made of these characters need no quotes
_PLAIN_SBATCH_VALUE = re.compile(r"[A-Za-z0-9_./:,+=@%-]*")
#: the first line of every task's log: when and where it started (ISO 8601, UTC)
LOG_START_LINE = (
    'echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ccat-hpc: task '
    '${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} started on $(hostname)"'
)


@dataclass(frozen=True)
class ArrayPiece:
    """Tasks first_task … first_task + task_count - 1 of a batch, as one Slurm array."""

    first_task: int
    task_count: int


def split_array(task_count: int, max_array_size: int) -> list[ArrayPiece]:
    """Pieces of at most ``max_array_size`` tasks (Slurm array indices stay below it)."""
    if task_count < 1 or max_array_size < 1:
        raise ValueError("task count and MaxArraySize must be positive")
    return [
        ArrayPiece(first, min(max_array_size, task_count - first))
        for first in range(0, task_count, max_array_size)
    ]


def template_name(kind: str, ntasks: int, available: set[str]) -> str:
    if f"{kind}.sbatch" in available:
        return f"{kind}.sbatch"
    return "mpi.sbatch" if ntasks > 1 else "default.sbatch"


def sbatch_value(value: str) -> str:
    """``value`` as sbatch reads it from an ``#SBATCH`` line (double-quoted unless plain)."""
    if _PLAIN_SBATCH_VALUE.fullmatch(value):
        return value
    if '"' in value or "\\" in value:
        raise ValueError(f"cannot quote {value!r} for an #SBATCH line")
    return f'"{value}"'


def dependency_option(depends_on: Sequence[SubmittedArray]) -> str | None:
    """``afterok`` on every task of the given arrays (all must have succeeded)."""
    if not depends_on:
        return None
    return "--dependency=afterok:" + ":".join(a.job_id for a in depends_on)


def sbatch_lines(job: ArrayJob, piece: ArrayPiece) -> list[str]:
    """The ``#SBATCH`` lines of one piece of ``job``."""
    profile = job.profile
    array = f"0-{piece.task_count - 1}"
    if job.effective_throttle is not None:
        array += f"%{job.effective_throttle}"
    log = task_log_file(job.working_dir, job.kind, job.batch_id, "%A", "%a")
    options = [
        f"--job-name={job_name(job)}",
        f"--array={array}",
        *(f"--{name}={sbatch_value(value)}" for name, value in _optional(job)),
        f"--ntasks={profile.ntasks}",
        f"--cpus-per-task={profile.cpus_per_task}",
        f"--mem={sbatch_value(profile.mem)}",
        f"--time={sbatch_value(profile.time)}",
        f"--chdir={sbatch_value(str(job.working_dir))}",
        f"--output={sbatch_value(str(log))}",
        "--open-mode=append",  # a requeued task adds to its log instead of replacing it
        "--requeue",  # a task lost with its node or preempted runs again (attempts counts)
    ]
    dependency = dependency_option(list(job.depends_on))
    if dependency:
        options.append(dependency)
    options.extend(profile.extra_sbatch)
    return [f"#SBATCH {option}" for option in options]


def _optional(job: ArrayJob) -> list[tuple[str, str]]:
    profile = job.profile
    pairs = [("partition", profile.partition), ("account", profile.account), ("qos", profile.qos)]
    return [(name, value) for name, value in pairs if value]


def render_script(
    template: str, job: ArrayJob, piece: ArrayPiece, ccat_command: Sequence[str]
) -> str:
    """The sbatch script of one piece of ``job`` from ``template``'s text.

    ``ccat_command`` is the argv that starts ccat-hpc (``["/opt/ccat/bin/ccat-hpc"]``).
    """
    if isinstance(ccat_command, str) or not ccat_command:
        raise TypeError("ccat_command must be a non-empty list of arguments")
    environment = {"CCAT_HPC_TASK_OFFSET": str(piece.first_task)}
    values = {
        "kind": shlex.quote(job.kind),
        "batch_id": shlex.quote(str(job.batch_id)),
        "ntasks": shlex.quote(str(job.profile.ntasks)),
        "sbatch_lines": "\n".join(sbatch_lines(job, piece)),
        "log_start_line": LOG_START_LINE,
        "setup_lines": "\n".join(job.profile.setup),
        "environment_lines": "\n".join(
            f"export {name}={shlex.quote(value)}" for name, value in environment.items()
        ),
        "ccat_command": shlex.join(ccat_command),
    }
    return string.Template(template).substitute(values)


def templates_dir() -> Path:
    """The job templates shipped inside the package (``ccat_hpc/executors/templates``)."""
    return Path(str(resources.files("ccat_hpc.executors") / "templates"))
