"""The Slurm executor: sbatch scripts from templates, states from squeue, sacct and scontrol.

Commands only (sbatch --parsable, squeue, sacct, scontrol, scancel), each through the
command runner it is given (:func:`~ccat_hpc.executors.process.run_command` unless a test
hands in recorded answers); they find the cluster as any user's would (``SLURM_CONF`` or
``/etc/slurm``). pyslurm is not needed (it must match the installed Slurm exactly). How
the three sources of states are merged: :mod:`ccat_hpc.executors.slurm_states`.

A failed command is one ExecutorError line: the command, Slurm's error line and a hint.
sacct failing (accounting disabled or its database away) is not an error: states then
come from squeue and scontrol alone.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ccat_hpc.executors.base import ArrayJob, SubmittedArray, TaskReport
from ccat_hpc.executors.process import (
    CommandRunner,
    ExecutorError,
    command_failure,
    error_line,
    run_command,
)
from ccat_hpc.executors.render import render_script, split_array, template_name, templates_dir
from ccat_hpc.executors.slurm_states import (
    TaskKey,
    add_exit_codes,
    by_batch_task,
    jobs_needing_exit_codes,
    merge_reports,
    parse_exit_code,
    parse_job_id,
    parse_max_array_size,
    parse_sacct,
    parse_scontrol_jobs,
    parse_squeue,
    task_status,
)
from ccat_hpc.executors.validate import InvalidArrayJob

__all__ = [  # the parsers lived here first
    "SlurmExecutor",
    "parse_exit_code",
    "parse_max_array_size",
    "parse_sacct",
    "parse_scontrol_jobs",
    "parse_squeue",
    "task_status",
]

REACH_HINT = "is Slurm reachable? check `sinfo` and SLURM_CONF"
SUBMIT_HINT = "check the site's slurm_profiles (partition, account) and `sinfo`"
_UNREACHABLE = re.compile(
    r"contact slurm controller|configuration source|connection refused|timed out|"
    r"command not found|no answer within",
    re.IGNORECASE,
)
_SLURM_JOB_ID = re.compile(r"\d{1,20}")


def hint_for(command: str, reason: str) -> str:
    """What to check after ``command`` failed with ``reason``."""
    if command == "sbatch" and not _UNREACHABLE.search(reason):
        return SUBMIT_HINT
    return REACH_HINT


def slurm_job_id(job_id: str) -> str:
    """A Slurm job id as ops-db holds it: digits only (never an option to a command)."""
    if not _SLURM_JOB_ID.fullmatch(job_id):
        raise InvalidArrayJob(f"{job_id!r} is not a Slurm job id")
    return job_id


def _command_argv(ccat_command: Sequence[str] | str | None) -> list[str]:
    if ccat_command is None:
        return [sys.executable, "-m", "ccat_hpc"]
    if isinstance(ccat_command, str):  # a command line, as earlier versions took it
        return shlex.split(ccat_command)
    return list(ccat_command)


class SlurmExecutor:
    name = "slurm"

    def __init__(
        self,
        ccat_command: Sequence[str] | str | None = None,
        templates: Path | None = None,
        max_array_size: int | None = None,
        runner: CommandRunner = run_command,
    ) -> None:
        self.ccat_command = _command_argv(ccat_command)
        if not self.ccat_command:
            raise InvalidArrayJob("the ccat-hpc command is empty")
        self.templates = templates or templates_dir()
        self._max_array_size = max_array_size
        self.runner = runner

    def _call(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command; its exit code is the caller's to judge."""
        try:
            return self.runner(argv, env=env, check=False)
        except ExecutorError as exc:  # not found, no answer
            raise ExecutorError(f"{exc} ({REACH_HINT})") from None

    def _checked(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        finished = self._call(argv, env)
        if finished.returncode != 0:
            reason = error_line(finished)
            raise command_failure(argv, reason, hint_for(argv[0], reason))
        return finished

    def max_array_size(self) -> int:
        if self._max_array_size is None:
            config = self._checked(["scontrol", "show", "config"]).stdout
            self._max_array_size = parse_max_array_size(config)
        return self._max_array_size

    def render(self, job: ArrayJob) -> list[tuple[int, int, str]]:
        """(first task, task count, script) of every piece of ``job``."""
        available = {p.name for p in self.templates.glob("*.sbatch")}
        name = template_name(job.kind, job.profile.ntasks, available)
        template = (self.templates / name).read_text()
        return [
            (
                piece.first_task,
                piece.task_count,
                render_script(template, job, piece, self.ccat_command),
            )
            for piece in split_array(job.task_count, self.max_array_size())
        ]

    def submit(self, job: ArrayJob) -> list[SubmittedArray]:
        """Submit every piece; if one fails, cancel the pieces already submitted."""
        for array in job.depends_on:
            slurm_job_id(array.job_id)
        job.working_dir.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **job.environment}
        submitted: list[SubmittedArray] = []
        try:
            for first, count, script in self.render(job):
                path = job.working_dir / f"{job.kind}-{job.batch_id}-{first}.sbatch"
                path.write_text(script)
                submitted.append(SubmittedArray(self._sbatch(path, environment), first, count))
        except ExecutorError as exc:
            self._withdraw(submitted, exc)
            raise
        return submitted

    def _sbatch(self, script: Path, environment: Mapping[str, str]) -> str:
        argv = ["sbatch", "--parsable", str(script)]
        answer = self._checked(argv, env=environment).stdout
        job_id = parse_job_id(answer)
        if job_id is None:
            raise command_failure(argv, f"answered {answer.strip()!r}, not a job id", REACH_HINT)
        return job_id

    def _withdraw(self, submitted: Sequence[SubmittedArray], cause: ExecutorError) -> None:
        """Cancel what a failed submission had already submitted."""
        try:
            self.cancel(submitted)
        except ExecutorError as exc:
            ids = ", ".join(a.job_id for a in submitted)
            raise ExecutorError(
                f"{cause}; cancelling the arrays already submitted ({ids}) failed too: {exc}"
            ) from None

    def states(self, arrays: Sequence[SubmittedArray]) -> dict[int, TaskReport]:
        if not arrays:
            return {}
        ids = ",".join(slurm_job_id(a.job_id) for a in arrays)
        reports = merge_reports(self._squeue(ids), self._sacct(ids))
        for job_id in jobs_needing_exit_codes(reports):
            reports = add_exit_codes(reports, self._scontrol_job(job_id))
        return by_batch_task(arrays, reports)

    def _squeue(self, ids: str) -> dict[TaskKey, TaskReport]:
        argv = ["squeue", "-h", "-r", "--states=all", "-j", ids, "-o", "%i|%T|%r"]
        finished = self._call(argv)
        if finished.returncode == 0:
            return parse_squeue(finished.stdout)
        reason = error_line(finished)
        if "Invalid job id" in reason:
            return {}  # every one of the jobs has left the controller's memory (MinJobAge)
        raise command_failure(argv, reason, REACH_HINT)

    def _sacct(self, ids: str) -> dict[TaskKey, TaskReport]:
        """sacct's reports; none where accounting is disabled, away or not installed."""
        argv = ["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode,Reason"]
        try:
            finished = self.runner(argv, check=False)
        except ExecutorError:
            return {}
        return parse_sacct(finished.stdout) if finished.returncode == 0 else {}

    def _scontrol_job(self, job_id: str) -> dict[TaskKey, TaskReport]:
        """The controller's reports of one array (none once it has forgotten the job)."""
        finished = self._call(["scontrol", "show", "job", "-o", job_id])
        return parse_scontrol_jobs(finished.stdout) if finished.returncode == 0 else {}

    def cancel(self, arrays: Sequence[SubmittedArray]) -> None:
        if arrays:
            self._checked(["scancel", *(slurm_job_id(a.job_id) for a in arrays)])
