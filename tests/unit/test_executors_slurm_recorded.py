"""The Slurm executor against recorded squeue, sacct, scontrol and sbatch outputs.

The answers are real outputs of the test cluster (``tests/fixtures/slurm``, see its
README); the executor gets them through its command runner, so how the three sources are
merged, mapped to batch tasks and turned into errors is tested without a cluster. The
same executor runs against the real cluster in ``tests/integration/test_executors.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccat_hpc.executors.base import ArrayJob, SubmittedArray, TaskReport, TaskStatus
from ccat_hpc.executors.process import ExecutorError, command_failure
from ccat_hpc.executors.slurm import REACH_HINT, SUBMIT_HINT, SlurmExecutor, parse_scontrol_jobs
from ccat_hpc.executors.validate import InvalidArrayJob
from ccat_hpc.sites.schema import SlurmProfile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"
ERRORS = FIXTURES / "errors"


@dataclass(frozen=True)
class Answer:
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0


def failure(name: str) -> Answer:
    """A recorded failing command (exit code 1, its error output)."""
    return Answer(stderr=(ERRORS / f"{name}.stderr").read_text(), returncode=1)


class RecordedSlurm:
    """A command runner answering from recorded outputs; it keeps every command it got.

    Answers are keyed by command (``squeue``, ``sacct``, ``scancel``, ``sbatch``,
    ``scontrol show config``, ``scontrol show job ID``); a list is used up in order, an
    exception is raised (as run_command raises for a command it cannot run)."""

    def __init__(self, answers: Mapping[str, Answer | list[Answer] | Exception]) -> None:
        self.answers = dict(answers)
        self.calls: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        answer = self.answers[_key(argv)]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, list):
            answer = answer.pop(0)
        return subprocess.CompletedProcess(
            list(argv), answer.returncode, answer.stdout, answer.stderr
        )

    def commands(self) -> list[str]:
        return [_key(argv) for argv in self.calls]


def _key(argv: Sequence[str]) -> str:
    if argv[:3] == ["scontrol", "show", "job"]:
        return f"scontrol show job {argv[-1]}"
    if argv[:2] == ["scontrol", "show"]:
        return " ".join(argv[:3])
    return argv[0]


def scenario(name: str, **overrides: Answer | list[Answer] | Exception) -> RecordedSlurm:
    """The recorded answers of one moment (``tests/fixtures/slurm/NAME``)."""
    folder = FIXTURES / name
    answers: dict[str, Answer | list[Answer] | Exception] = {
        "squeue": Answer((folder / "squeue.txt").read_text()),
        "sacct": Answer((folder / "sacct.txt").read_text()),
    }
    for path in folder.glob("scontrol-*.txt"):
        answers[f"scontrol show job {path.stem.removeprefix('scontrol-')}"] = Answer(
            path.read_text()
        )
    answers.update(overrides)
    return RecordedSlurm(answers)


def executor_with(runner: RecordedSlurm, max_array_size: int | None = None) -> SlurmExecutor:
    return SlurmExecutor(
        ccat_command=["/opt/ccat/bin/ccat-hpc"], max_array_size=max_array_size, runner=runner
    )


ARRAY_314 = [SubmittedArray("314", 0, 7)]
ENDED_314 = {
    0: TaskReport(TaskStatus.COMPLETED, 0),
    1: TaskReport(TaskStatus.FAILED, 3, "NonZeroExitCode"),
    2: TaskReport(TaskStatus.FAILED, 137, "JobLaunchFailure"),  # SIGKILL: 0:9
    3: TaskReport(TaskStatus.TIMEOUT, 143, "TimeLimit"),  # SIGTERM at the limit: 0:15
    4: TaskReport(TaskStatus.CANCELLED, 143),
    5: TaskReport(TaskStatus.COMPLETED, 0, "JobArrayTaskLimit"),
    6: TaskReport(TaskStatus.COMPLETED, 0, "JobArrayTaskLimit"),
}


def test_sacct_wins_for_ended_tasks_and_scontrol_fills_killed_exit_codes() -> None:
    runner = scenario("mixed-ended")
    assert executor_with(runner).states(ARRAY_314) == ENDED_314
    # accounting has 0:0 for the timed-out and the cancelled task: one scontrol call
    assert runner.commands() == ["squeue", "sacct", "scontrol show job 314"]
    assert runner.calls[0][runner.calls[0].index("-j") + 1] == "314"


def test_running_tasks_need_no_exit_codes() -> None:
    runner = scenario("mixed-running")
    states = executor_with(runner).states(ARRAY_314)
    assert states[3] == states[4] == TaskReport(TaskStatus.RUNNING)
    assert states[1] == TaskReport(TaskStatus.FAILED, 3, "NonZeroExitCode")
    assert states[2].exit_code == 137
    assert runner.commands() == ["squeue", "sacct"]


def test_squeue_wins_while_sacct_lags_and_scontrol_has_the_exit_codes() -> None:
    # sacct still says task 1 runs and has not heard of task 0
    runner = scenario("lag")
    states = executor_with(runner).states([SubmittedArray("415", 0, 2)])
    assert states == {
        0: TaskReport(TaskStatus.COMPLETED, 0),
        1: TaskReport(TaskStatus.FAILED, 1, "NonZeroExitCode"),
    }
    assert runner.commands() == ["squeue", "sacct", "scontrol show job 415"]


def test_without_scontrol_a_lagging_task_ends_without_an_exit_code() -> None:
    runner = scenario("lag", **{"scontrol show job 415": failure("scontrol-invalid-job-id")})
    states = executor_with(runner).states([SubmittedArray("415", 0, 2)])
    assert states[1] == TaskReport(TaskStatus.FAILED, None, "NonZeroExitCode")


def test_split_arrays_map_to_their_batch_tasks() -> None:
    arrays = [SubmittedArray("426", 0, 3), SubmittedArray("427", 3, 3), SubmittedArray("428", 6, 1)]
    runner = scenario("split")
    states = executor_with(runner).states(arrays)
    assert sorted(states) == list(range(7))
    failed = {index for index, report in states.items() if report.status != TaskStatus.COMPLETED}
    assert failed == {4}  # 427_1 is batch task 3 + 1
    assert states[4] == TaskReport(TaskStatus.FAILED, 4, "NonZeroExitCode")
    squeue = runner.calls[0]
    assert squeue[squeue.index("-j") + 1] == "426,427,428"


def test_pending_tasks_keep_squeue_reasons_while_sacct_knows_only_the_array() -> None:
    runner = scenario("dependency-pending")
    states = executor_with(runner).states([SubmittedArray("348", 0, 3)])
    assert set(states.values()) == {TaskReport(TaskStatus.PENDING, None, "Dependency")}


def test_a_requeued_task_is_pending_again() -> None:
    runner = scenario("requeued")
    states = executor_with(runner).states([SubmittedArray("347", 0, 2)])
    assert states == {
        0: TaskReport(TaskStatus.PENDING, None, "BeginTime"),
        1: TaskReport(TaskStatus.RUNNING),
    }


def test_squeue_beats_an_ended_attempt_that_sacct_still_holds() -> None:
    # preempted, then requeued by Slurm: the controller has it pending, accounting the end
    stale = Answer("347_0|PREEMPTED|0:0|None\n347_1|RUNNING|0:0|None\n")
    runner = scenario("requeued", sacct=stale)
    states = executor_with(runner).states([SubmittedArray("347", 0, 2)])
    assert states[0] == TaskReport(TaskStatus.PENDING, None, "BeginTime")


def test_tasks_no_source_knows_are_unknown() -> None:
    runner = scenario("mixed-ended")
    arrays = [SubmittedArray("314", 0, 7), SubmittedArray("999", 7, 2)]
    states = executor_with(runner).states(arrays)
    assert states[7] == states[8] == TaskReport(TaskStatus.UNKNOWN)
    assert states[1] == ENDED_314[1]


@pytest.mark.parametrize(
    "sacct",
    [
        failure("sacct-accounting-disabled"),
        failure("sacct-database-down"),
        command_failure(["sacct"], "command not found (installed, on PATH?)"),
    ],
    ids=["accounting-disabled", "database-down", "not-installed"],
)
def test_without_accounting_states_come_from_squeue_and_scontrol(
    sacct: Answer | ExecutorError,
) -> None:
    runner = scenario("mixed-ended", sacct=sacct)
    states = executor_with(runner).states(ARRAY_314)
    assert states[1] == TaskReport(TaskStatus.FAILED, 3, "NonZeroExitCode")
    assert states[2] == TaskReport(TaskStatus.FAILED, 137, "JobLaunchFailure")
    assert states[3] == TaskReport(TaskStatus.TIMEOUT, 143, "TimeLimit")
    assert states[4] == TaskReport(TaskStatus.CANCELLED, 143)
    assert states[0] == TaskReport(TaskStatus.COMPLETED, 0)


def test_jobs_past_min_job_age_come_from_sacct_alone() -> None:
    runner = scenario(
        "mixed-ended",
        squeue=failure("squeue-invalid-job-id"),
        **{"scontrol show job 314": failure("scontrol-invalid-job-id")},
    )
    states = executor_with(runner).states(ARRAY_314)
    assert states[1] == TaskReport(TaskStatus.FAILED, 3)
    assert states[3] == TaskReport(TaskStatus.TIMEOUT, 0)  # all accounting has


@pytest.mark.parametrize(
    ("recorded", "reason"),
    [
        ("squeue-controller-down", "Unable to contact slurm controller (connect failure)"),
        ("squeue-no-configuration", "fatal: Could not establish a configuration source"),
    ],
)
def test_a_failing_squeue_is_one_line_with_a_hint(recorded: str, reason: str) -> None:
    runner = scenario("mixed-ended", squeue=failure(recorded))
    with pytest.raises(ExecutorError) as raised:
        executor_with(runner).states(ARRAY_314)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("`squeue -h -r --states=all -j 314")
    assert reason in message and REACH_HINT in message
    assert runner.commands() == ["squeue"]


def test_a_missing_slurm_command_names_the_command_and_the_hint() -> None:
    missing = command_failure(["squeue"], "command not found (installed, on PATH?)")
    runner = scenario("mixed-ended", squeue=missing)
    with pytest.raises(ExecutorError, match="command not found") as raised:
        executor_with(runner).states(ARRAY_314)
    assert REACH_HINT in str(raised.value)


def test_recorded_config_gives_max_array_size() -> None:
    config = Answer((FIXTURES / "scontrol-show-config.txt").read_text())
    runner = RecordedSlurm({"scontrol show config": config})
    executor = executor_with(runner)
    assert executor.max_array_size() == executor.max_array_size() == 1001
    assert runner.commands() == ["scontrol show config"]  # asked once


def job(tmp_path: Path, tasks: int, depends_on: Sequence[SubmittedArray] = ()) -> ArrayJob:
    return ArrayJob("noop", 42, tasks, tmp_path / "jobs", SlurmProfile(), depends_on=depends_on)


def test_submit_sends_every_piece_and_returns_their_job_ids(tmp_path: Path) -> None:
    parsable = (FIXTURES / "sbatch-parsable.txt").read_text()
    runner = RecordedSlurm({"sbatch": [Answer(parsable), Answer("315;ccat-test\n")]})
    arrays = executor_with(runner, max_array_size=3).submit(job(tmp_path, 5))
    assert arrays == [SubmittedArray("314", 0, 3), SubmittedArray("315", 3, 2)]
    scripts = [Path(argv[-1]) for argv in runner.calls]
    assert [s.name for s in scripts] == ["noop-42-0.sbatch", "noop-42-3.sbatch"]
    assert "#SBATCH --array=0-1" in scripts[1].read_text()
    assert "export CCAT_HPC_TASK_OFFSET=3" in scripts[1].read_text()


def test_submit_cancels_what_it_submitted_when_a_later_piece_fails(tmp_path: Path) -> None:
    rejected = failure("sbatch-invalid-partition")
    runner = RecordedSlurm(
        {"sbatch": [Answer("426\n"), Answer("427\n"), rejected], "scancel": Answer()}
    )
    with pytest.raises(ExecutorError) as raised:
        executor_with(runner, max_array_size=3).submit(job(tmp_path, 7))
    assert runner.calls[-1] == ["scancel", "426", "427"]
    message = str(raised.value)
    assert "invalid partition specified: nosuch" in message and SUBMIT_HINT in message
    assert message.startswith("`sbatch --parsable ") and "\n" not in message


def test_an_unreachable_controller_at_submit_gets_the_reachability_hint(tmp_path: Path) -> None:
    runner = RecordedSlurm({"sbatch": failure("sbatch-controller-down")})
    with pytest.raises(ExecutorError) as raised:
        executor_with(runner, max_array_size=3).submit(job(tmp_path, 2))
    assert REACH_HINT in str(raised.value) and SUBMIT_HINT not in str(raised.value)
    assert runner.commands() == ["sbatch"]  # nothing submitted, nothing to cancel


def test_an_answer_that_is_no_job_id_fails_and_withdraws(tmp_path: Path) -> None:
    runner = RecordedSlurm(
        {"sbatch": [Answer("426\n"), Answer("Submitted batch job 427\n")], "scancel": Answer()}
    )
    with pytest.raises(ExecutorError, match="not a job id"):
        executor_with(runner, max_array_size=1).submit(job(tmp_path, 2))
    assert runner.calls[-1] == ["scancel", "426"]


def test_a_failed_withdrawal_is_reported_with_the_submission_error(tmp_path: Path) -> None:
    runner = RecordedSlurm(
        {
            "sbatch": [Answer("426\n"), failure("sbatch-controller-down")],
            "scancel": failure("scancel-controller-down"),
        }
    )
    with pytest.raises(ExecutorError) as raised:
        executor_with(runner, max_array_size=1).submit(job(tmp_path, 2))
    message = str(raised.value)
    assert "Batch job submission failed" in message
    assert "cancelling the arrays already submitted (426) failed too" in message
    assert "\n" not in message


def test_cancel_failures_carry_the_hint() -> None:
    runner = RecordedSlurm({"scancel": failure("scancel-controller-down")})
    with pytest.raises(ExecutorError) as raised:
        executor_with(runner).cancel(ARRAY_314)
    assert "Kill job error on job id 314" in str(raised.value) and REACH_HINT in str(raised.value)


@pytest.mark.parametrize("job_id", ["local-0123456789ab", "12_3", "1.2"])
def test_ids_that_are_no_slurm_job_ids_never_reach_a_command(job_id: str) -> None:
    runner = RecordedSlurm({})
    executor = executor_with(runner)
    with pytest.raises(InvalidArrayJob):
        executor.states([SubmittedArray(job_id, 0, 1)])
    with pytest.raises(InvalidArrayJob):
        executor.cancel([SubmittedArray(job_id, 0, 1)])
    assert runner.calls == []


def test_dependencies_on_non_slurm_arrays_are_refused_before_submitting(tmp_path: Path) -> None:
    runner = RecordedSlurm({})
    local = SubmittedArray("local-0123456789ab", 0, 1)
    with pytest.raises(InvalidArrayJob):
        executor_with(runner, max_array_size=3).submit(job(tmp_path, 1, depends_on=(local,)))
    assert runner.calls == [] and not (tmp_path / "jobs").exists()


def test_scontrol_exit_codes_count_only_for_the_same_end() -> None:
    # the controller shows another end for task 3 than accounting (another attempt)
    recorded = (FIXTURES / "mixed-ended" / "scontrol-314.txt").read_text()
    other_end = recorded.replace(
        "JobState=TIMEOUT Reason=TimeLimit", "JobState=FAILED Reason=NonZeroExitCode"
    ).replace("ExitCode=0:15 RunTime=00:01:", "ExitCode=2:0 RunTime=00:01:")
    assert other_end != recorded
    runner = scenario("mixed-ended", **{"scontrol show job 314": Answer(other_end)})
    states = executor_with(runner).states(ARRAY_314)
    assert states[3] == TaskReport(TaskStatus.TIMEOUT, 0, "TimeLimit")
    assert states[4] == ENDED_314[4]


def test_later_scontrol_fields_cannot_pose_as_earlier_ones() -> None:
    [line] = [
        line
        for line in (FIXTURES / "mixed-ended" / "scontrol-314.txt").read_text().splitlines()
        if "ArrayTaskId=1 " in line
    ]
    posing = line.replace("WorkDir=/tmp/slurmcap", "WorkDir=/tmp/a ExitCode=0:0 JobState=COMPLETED")
    assert posing != line
    assert parse_scontrol_jobs(posing) == {("314", 1): ENDED_314[1]}
