"""What the executors accept and how they say no: job arrays, ids, #SBATCH values,
command failures; and where a task's log is."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ccat_hpc.errors import CcatHpcError
from ccat_hpc.executors.base import (
    ArrayJob,
    SubmittedArray,
    locate_task,
    task_log_file,
    task_log_path,
)
from ccat_hpc.executors.process import (
    MAX_REASON,
    ExecutorError,
    command_failure,
    error_line,
    run_command,
)
from ccat_hpc.executors.render import ArrayPiece, sbatch_lines, sbatch_value
from ccat_hpc.executors.validate import InvalidArrayJob, check_job_request
from ccat_hpc.sites.schema import SlurmProfile

WORKDIR = Path("/scratch/ccat/jobs")


def array_job(**changes: Any) -> ArrayJob:
    fields: dict[str, Any] = {
        "kind": "noop",
        "batch_id": 42,
        "task_count": 3,
        "working_dir": WORKDIR,
        "profile": SlurmProfile(),
    }
    fields.update(changes)
    return ArrayJob(**fields)


@pytest.mark.parametrize("kind", ["noop", "a", "checksum_2", "mpi-hello", "k" * 40])
def test_kinds_of_lowercase_letters_digits_and_dashes_pass(kind: str) -> None:
    assert array_job(kind=kind).kind == kind


@pytest.mark.parametrize(
    "kind", ["", "Noop", "1noop", "no/op", "../x", "no op", "noop\n", "no;op", "k" * 41, 5]
)
def test_other_kinds_are_refused(kind: object) -> None:
    with pytest.raises(InvalidArrayJob, match="job kind"):
        array_job(kind=kind)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task_count", 0),
        ("task_count", -1),
        ("task_count", True),
        ("task_count", 2.0),
        ("throttle", 0),
        ("throttle", -1),
        ("batch_id", 0),
        ("batch_id", "42"),
    ],
)
def test_counts_below_one_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidArrayJob, match="at least"):
        array_job(**{field: value})


def test_a_negative_throttle_is_refused_with_a_clear_line() -> None:
    with pytest.raises(InvalidArrayJob) as raised:
        array_job(throttle=-1)
    assert str(raised.value) == "throttle must be an integer of at least 1, got -1"
    assert isinstance(raised.value, CcatHpcError) and raised.value.exit_code == 2
    assert array_job(throttle=1).effective_throttle == 1


@pytest.mark.parametrize(
    ("working_dir", "words"),
    [
        (Path("jobs"), "absolute"),
        (Path("/scratch/a\nb"), "control character"),
        (Path("/scratch/a\tb"), "control character"),
        (Path('/scratch/a"b'), "may not contain"),
        (Path("/scratch/a\\b"), "may not contain"),
        (Path("/scratch/100%"), "may not contain"),
        ("/scratch/jobs", "must be a path"),
    ],
)
def test_working_dirs_that_cannot_reach_a_script_are_refused(
    working_dir: object, words: str
) -> None:
    with pytest.raises(InvalidArrayJob, match=words):
        array_job(working_dir=working_dir)


def test_working_dirs_with_spaces_and_quotes_pass() -> None:
    path = Path("/scratch/obs jobs/it's $HOME")
    assert array_job(working_dir=path).working_dir == path


@pytest.mark.parametrize(
    "values",
    [
        {"partition": "smp\n#SBATCH --account=other"},
        {"account": "ccat\r"},
        {"qos": "normal extra"},
        {"mem": "2G\n"},
        {"time": "01:00:00\n"},
        {"extra_sbatch": ["--gres=gpu:1\n--exclusive"]},
        {"extra_sbatch": ["gres=gpu:1"]},
        {"setup": ["module load openmpi\x1b[2J"]},
        {"ntasks": 0},
        {"array_throttle": -3},
    ],
)
def test_profile_values_that_would_break_a_script_are_refused(values: dict[str, Any]) -> None:
    # model_construct: as a profile read back without validation; the schema's own
    # patterns also let a trailing newline through (``$``)
    profile = SlurmProfile.model_construct(**values)
    with pytest.raises(InvalidArrayJob, match="profile"):
        array_job(profile=profile)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"time": "01:00:00\n"}, "time must look like"),
        ({"mem": "4G\n"}, "memory must look like"),
        ({"partition": "debug\n#SBATCH --uid=0"}, "not a Slurm partition"),
        ({"account": "ccat x"}, "not a Slurm partition"),
        ({"extra_sbatch": ["--gres=gpu:1\nrm -rf /"]}, "not one sbatch option"),
        ({"extra_sbatch": ["gres=gpu:1"]}, "not one sbatch option"),
        ({"setup": ["module load x\r"]}, "newline or control character"),
    ],
)
def test_the_site_schema_refuses_the_same_values_at_sites_load(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        SlurmProfile(**values)


@pytest.mark.parametrize("environment", [{"BAD-NAME": "x"}, {"1X": "x"}, {"X": "a\x00b"}, {"X": 5}])
def test_environment_names_and_values_are_checked(environment: dict[str, Any]) -> None:
    with pytest.raises(InvalidArrayJob, match="environment variable"):
        array_job(environment=environment)


def test_a_request_can_be_checked_before_a_batch_exists() -> None:
    check_job_request("noop", 2, WORKDIR, SlurmProfile(), throttle=2)
    with pytest.raises(InvalidArrayJob, match="throttle"):
        check_job_request("noop", 2, WORKDIR, SlurmProfile(), throttle=-1)


@pytest.mark.parametrize(
    "data",
    [
        {"job_id": "12", "first_task": 0},
        {"job_id": 12, "first_task": 0, "task_count": 1},
        {"job_id": "-j", "first_task": 0, "task_count": 1},
        {"job_id": "12;rm -rf", "first_task": 0, "task_count": 1},
        {"job_id": "../x", "first_task": 0, "task_count": 1},
        {"job_id": "12", "first_task": -1, "task_count": 1},
        {"job_id": "12", "first_task": 0, "task_count": "1"},
        ["12", 0, 1],
    ],
)
def test_submitted_arrays_from_ops_db_are_checked(data: Any) -> None:
    with pytest.raises(InvalidArrayJob):
        SubmittedArray.from_json(data)


def test_submitted_arrays_round_trip_through_json() -> None:
    array = SubmittedArray("local-0123456789ab", 1001, 498)
    assert SubmittedArray.from_json(array.to_json()) == array


PIECES = [SubmittedArray("426", 0, 3), SubmittedArray("427", 3, 3), SubmittedArray("428", 6, 1)]


def test_a_task_log_is_found_from_the_batch_and_its_arrays() -> None:
    assert task_log_path("/scratch/jobs", "noop", 42, PIECES, 4) == Path(
        "/scratch/jobs/noop-42-427_1.out"
    )
    assert task_log_path(WORKDIR, "noop", 42, PIECES, 6) == WORKDIR / "noop-42-428_0.out"
    assert task_log_path(WORKDIR, "noop", 42, PIECES, 7) is None
    assert task_log_path(WORKDIR, "noop", 42, [], 0) is None
    assert locate_task(PIECES, 3) == (PIECES[1], 0)


def test_the_slurm_output_pattern_names_the_same_file() -> None:
    job = array_job(working_dir=Path("/scratch/obs jobs"), task_count=7)
    [output] = [
        word.removeprefix("--output=")
        for line in sbatch_lines(job, ArrayPiece(3, 3))
        for word in shlex.split(line.removeprefix("#SBATCH "))
        if word.startswith("--output=")
    ]
    as_slurm_writes_it = output.replace("%A", "427").replace("%a", "1")
    assert Path(as_slurm_writes_it) == task_log_path(job.working_dir, "noop", 42, PIECES, 4)
    assert Path(output) == task_log_file(job.working_dir, "noop", 42, "%A", "%a")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("smp", "smp"),
        ("/scratch/jobs/noop-42-%A_%a.out", "/scratch/jobs/noop-42-%A_%a.out"),
        ("/scratch/obs jobs", '"/scratch/obs jobs"'),
        ("/scratch/it's $HOME", '"/scratch/it\'s $HOME"'),
    ],
)
def test_sbatch_values_are_quoted_only_when_needed(value: str, written: str) -> None:
    assert sbatch_value(value) == written
    assert shlex.split(f"--x={written}") == [f"--x={value}"]  # as sbatch reads it back


@pytest.mark.parametrize("value", ['a"b', "a\\b"])
def test_sbatch_values_that_cannot_be_quoted_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="cannot quote"):
        sbatch_value(value)


def completed(stderr: str, stdout: str = "", code: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["x"], code, stdout, stderr)


def test_the_error_line_is_the_fatal_one_else_the_first() -> None:
    assert error_line(completed("a: error: one\nb: fatal: two\n")) == "b: fatal: two"
    assert error_line(completed("\nfirst\nsecond\n")) == "first"
    assert error_line(completed("", stdout="only on stdout\n")) == "only on stdout"
    assert error_line(completed("", code=3)) == "exit code 3"


def test_failures_are_one_line_with_command_and_hint() -> None:
    error = command_failure(["sbatch", "--parsable", "/s/a b.sbatch"], "no\x1b[31m", "check X")
    assert str(error) == "`sbatch --parsable '/s/a b.sbatch'` failed: no [31m (check X)"
    assert isinstance(error, ExecutorError) and error.exit_code == 8
    long = command_failure(["sbatch"], "x" * 1000, None)
    assert str(long) == "`sbatch` failed: " + "x" * (MAX_REASON - 1) + "…"


def test_run_command_says_why_a_command_failed() -> None:
    code = "import sys; sys.stderr.write('first problem\\nsecond\\n'); sys.exit(2)"
    with pytest.raises(ExecutorError) as raised:
        run_command([sys.executable, "-c", code])
    assert str(raised.value).endswith("failed: first problem")
    assert run_command([sys.executable, "-c", code], check=False).returncode == 2
    with pytest.raises(ExecutorError, match="command not found"):
        run_command(["/nonexistent/ccat-hpc-no-such-command"])


def test_run_command_gives_up_on_a_command_that_does_not_answer() -> None:
    with pytest.raises(ExecutorError, match="no answer within 0 s"):
        run_command([sys.executable, "-c", "import time; time.sleep(600)"], timeout=0.2)
