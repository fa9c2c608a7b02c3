"""Pure parts of the executors and jobs: rendering (golden files), parsing, planning."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ccat_hpc.db.models import JobTask
from ccat_hpc.db.states import JobTaskState, RawDataFileState
from ccat_hpc.executors.base import ArrayJob, SubmittedArray, TaskReport, TaskStatus
from ccat_hpc.executors.render import (
    ArrayPiece,
    render_script,
    split_array,
    template_name,
    templates_dir,
)
from ccat_hpc.executors.slurm import (
    parse_max_array_size,
    parse_sacct,
    parse_scontrol_jobs,
    parse_squeue,
    task_status,
)
from ccat_hpc.executors.slurm_time import seconds_of
from ccat_hpc.jobs.batches import profile_for
from ccat_hpc.jobs.runner import TaskFailure, task_index_from
from ccat_hpc.jobs.tracking import silent_end
from ccat_hpc.pipeline.checksum import judge, plan_tasks
from ccat_hpc.sites.loader import read_site_configs, shipped_site_configs
from ccat_hpc.sites.schema import SlurmProfile

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sbatch"
WORKDIR = Path("/scratch/ccat/jobs")
SPACED_WORKDIR = Path("/scratch/ccat/obs jobs/it's $HOME")
CCAT = ["/opt/ccat/bin/ccat-hpc"]


def cologne_profiles(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, object]]:
    monkeypatch.setenv("CCAT_DATA_ROOT", "/data/ccat")
    monkeypatch.delenv("CCAT_SLURM_PARTITION", raising=False)
    monkeypatch.delenv("CCAT_SLURM_ACCOUNT", raising=False)
    [cologne] = [c for c in read_site_configs(shipped_site_configs()) if "cologne" in str(c.path)]
    return {k: v.model_dump(mode="json") for k, v in cologne.config.slurm_profiles.items()}


CASES = {
    "noop-defaults": ("noop", None, 4, None, ArrayPiece(0, 4), ()),
    "checksum-cologne": ("checksum", "checksum", 2500, None, ArrayPiece(1000, 1000), ()),
    "mpi-two-ranks": ("mpi", "two-ranks", 1, None, ArrayPiece(0, 1), ()),
    "sleep-throttled-after": ("sleep", None, 10, 2, ArrayPiece(0, 10), ("101", "102")),
    "noop-spaced-workdir": ("noop", None, 1, None, ArrayPiece(0, 1), ()),
}


def case_job(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ArrayJob, ArrayPiece]:
    kind, profile_name, count, throttle, piece, after = CASES[name]
    if profile_name == "checksum":
        profile = profile_for(cologne_profiles(monkeypatch), "checksum")
    elif profile_name == "two-ranks":
        profile = SlurmProfile(ntasks=2, setup=["module load openmpi/4.1"], mem="4G")
    else:
        profile = SlurmProfile()
    job = ArrayJob(
        kind,
        42,
        count,
        SPACED_WORKDIR if "spaced" in name else WORKDIR,
        profile,
        throttle=throttle,
        depends_on=tuple(SubmittedArray(a, 0, 1) for a in after),
    )
    return job, piece


def render_job(job: ArrayJob, piece: ArrayPiece, ccat: list[str]) -> str:
    available = {p.name for p in templates_dir().glob("*.sbatch")}
    name = template_name(job.kind, job.profile.ntasks, available)
    return render_script((templates_dir() / name).read_text(), job, piece, ccat)


def render_case(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return render_job(*case_job(name, monkeypatch), CCAT)


def sbatch_options(script: str) -> list[str]:
    """The #SBATCH options as sbatch reads them (quotes taken off)."""
    lines = [line for line in script.splitlines() if line.startswith("#SBATCH ")]
    return [word for line in lines for word in shlex.split(line.removeprefix("#SBATCH "))]


@pytest.mark.parametrize("name", sorted(CASES))
def test_sbatch_scripts_match_their_golden_files(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render_case(name, monkeypatch)
    golden = GOLDEN / f"{name}.sbatch"
    if os.environ.get("CCAT_HPC_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    # what a golden file must say, whatever was updated into it
    job, piece = case_job(name, monkeypatch)
    options = sbatch_options(rendered)
    assert f"--chdir={job.working_dir}" in options
    assert f"--output={job.working_dir}/{job.kind}-42-%A_%a.out" in options
    assert f"--array=0-{piece.task_count - 1}" in {o.split("%")[0] for o in options}
    assert f"export CCAT_HPC_TASK_OFFSET={piece.first_task}" in rendered.splitlines()
    assert subprocess.run(["bash", "-n"], input=rendered, text=True).returncode == 0


def test_the_rendered_script_runs_the_job_command_as_its_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run a rendered script's body with bash: the command must arrive as its words,
    however many spaces and quotes its path has, after a timestamped start line."""
    folder = tmp_path / "venv with 'quotes' $and spaces"
    folder.mkdir()
    show_args = folder / "ccat hpc"
    show_args.write_text(f"#!{sys.executable}\nimport sys\nprint(sys.argv[1:])\n")
    show_args.chmod(0o755)
    job, piece = case_job("noop-spaced-workdir", monkeypatch)
    script = render_job(job, piece, [str(show_args)])
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0"}
    finished = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert finished.returncode == 0, finished.stderr
    started, arguments = finished.stdout.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ccat-hpc: task 7_0 started on \S+", started
    )
    assert arguments == str(["job", "run", "noop", "--batch", "42"])


def test_a_working_dir_with_spaces_is_quoted_for_sbatch(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_case("noop-spaced-workdir", monkeypatch)
    assert f'#SBATCH --chdir="{SPACED_WORKDIR}"' in text.splitlines()
    assert "#SBATCH --chdir=/scratch/ccat/jobs" in render_case("noop-defaults", monkeypatch)


def test_cologne_checksum_profile_decides_the_sbatch_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_case("checksum-cologne", monkeypatch)
    assert "#SBATCH --open-mode=append" in text  # a requeued task adds to its log
    assert "#SBATCH --partition=smp" in text and "#SBATCH --account=ccat" in text
    assert "#SBATCH --array=0-999%16" in text  # the profile's throttle
    assert "export CCAT_HPC_TASK_OFFSET=1000" in text
    assert "postgres" not in text  # no ops-db URL (or password) in scripts


def test_arrays_are_split_below_max_array_size() -> None:
    assert split_array(2500, 1001) == [
        ArrayPiece(0, 1001),
        ArrayPiece(1001, 1001),
        ArrayPiece(2002, 498),
    ]
    assert split_array(3, 1001) == [ArrayPiece(0, 3)]
    with pytest.raises(ValueError):
        split_array(0, 10)


def test_templates_fall_back_by_rank_count() -> None:
    available = {"default.sbatch", "mpi.sbatch", "checksum.sbatch"}
    assert template_name("checksum", 1, available) == "checksum.sbatch"
    assert template_name("package", 4, available) == "mpi.sbatch"
    assert template_name("noop", 1, available) == "default.sbatch"


@pytest.mark.parametrize(
    ("limit", "seconds"),
    [("30", 1800), ("1:30", 90), ("01:00:00", 3600), ("2-00:00:00", 172800), ("1-2", 93600)],
)
def test_slurm_time_limits(limit: str, seconds: int) -> None:
    assert seconds_of(limit) == seconds


def test_slurm_states_and_outputs_are_parsed() -> None:
    assert task_status("CANCELLED by 0") == TaskStatus.CANCELLED
    assert task_status("NODE_FAIL") == TaskStatus.NODE_FAIL
    assert task_status("PREEMPTED") == TaskStatus.PREEMPTED
    assert task_status("COMPLETING") == TaskStatus.RUNNING
    assert task_status("") == TaskStatus.UNKNOWN
    squeue = "12_0|RUNNING|None\n12_1|PENDING|Priority\n12_[2-3]|PENDING|None\n"
    assert parse_squeue(squeue) == {
        ("12", 0): TaskReport(TaskStatus.RUNNING),
        ("12", 1): TaskReport(TaskStatus.PENDING, None, "Priority"),
    }
    sacct = "12_0|COMPLETED|0:0|None\n12_1|TIMEOUT|0:15|TimeLimit\n12_2|FAILED|3:0|None\n"
    reports = parse_sacct(sacct)
    assert reports[("12", 1)] == TaskReport(TaskStatus.TIMEOUT, 143, "TimeLimit")
    assert reports[("12", 2)].exit_code == 3
    assert parse_max_array_size("Foo = 1\nMaxArraySize            = 1001\n") == 1001
    shown = (
        "JobId=7 ArrayJobId=5 ArrayTaskId=2 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0\n"
        "JobId=8 ArrayJobId=5 ArrayTaskId=3 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n"
        "JobId=5 ArrayJobId=5 ArrayTaskId=4-9 JobState=PENDING Reason=None ExitCode=0:0\n"
    )
    assert parse_scontrol_jobs(shown) == {
        ("5", 2): TaskReport(TaskStatus.FAILED, 3, "NonZeroExitCode"),
        ("5", 3): TaskReport(TaskStatus.TIMEOUT, 143, "TimeLimit"),
    }


def task(state: JobTaskState) -> JobTask:
    return JobTask(task_index=0, items=[], state=state)


def test_silent_ends_are_classified() -> None:
    running = task(JobTaskState.RUNNING)
    assert silent_end(running, TaskReport(TaskStatus.RUNNING)) is None
    assert silent_end(task(JobTaskState.SUCCEEDED), TaskReport(TaskStatus.FAILED, 1)) is None
    state, reason, retry = silent_end(running, TaskReport(TaskStatus.TIMEOUT, 143, "TimeLimit"))
    assert (state, retry) == (JobTaskState.FAILED, True) and "TIMEOUT (TimeLimit)" in reason
    state, reason, retry = silent_end(running, TaskReport(TaskStatus.FAILED, 3))
    assert (state, retry) == (JobTaskState.FAILED, False) and "exit code 3" in reason
    assert silent_end(running, TaskReport(TaskStatus.NODE_FAIL))[2] is True
    assert silent_end(running, TaskReport(TaskStatus.CANCELLED))[0] == JobTaskState.CANCELLED


def test_task_index_comes_from_the_array_and_the_piece_offset() -> None:
    assert task_index_from({"SLURM_ARRAY_TASK_ID": "7", "CCAT_HPC_TASK_OFFSET": "1001"}) == 1008
    assert task_index_from({"SLURM_ARRAY_TASK_ID": "3"}) == 3
    with pytest.raises(TaskFailure):
        task_index_from({})


def test_checksum_tasks_are_planned_by_bytes() -> None:
    files = [(1, 400), (2, 400), (3, 400), (4, 5000), (5, 10)]
    assert plan_tasks(files, bytes_per_task=1000) == [[1, 2], [3], [4], [5]]
    assert plan_tasks(files, bytes_per_task=10**9, files_per_task=2) == [[1, 2], [3, 4], [5]]
    assert plan_tasks([]) == []


def test_checksum_outcomes() -> None:
    assert judge("/d/f", None, "ab" * 16).state == RawDataFileState.CHECKSUMMED
    assert judge("/d/f", "AB" * 16, "ab" * 16).state == RawDataFileState.CHECKSUMMED
    corrupt = judge("/d/f", "cd" * 16, "ab" * 16)
    assert corrupt.state == RawDataFileState.CORRUPT
    assert corrupt.reason == f"/d/f: xxh3-128 on disk is {'ab' * 16}, the manifest says {'cd' * 16}"
    missing = judge("/d/f", "cd" * 16, None, "no such file")
    assert (missing.state, missing.reason) == (RawDataFileState.MISSING, "/d/f: no such file")


def test_profiles_fall_back_to_default() -> None:
    profiles = {"default": {"mem": "8G"}, "checksum": {"mem": "1G", "array_throttle": 4}}
    assert profile_for(profiles, "checksum").array_throttle == 4
    assert profile_for(profiles, "noop").mem == "8G"
    assert profile_for({}, "noop") == SlurmProfile()
