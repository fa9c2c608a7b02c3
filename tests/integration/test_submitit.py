"""submitit's map_array with a site profile, on the real Slurm cluster and locally."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from ccat_hpc.executors.submitit_map import map_array, submitit_parameters
from ccat_hpc.sites.schema import SlurmProfile
from tests.integration.test_executors import slurm_ready

pytest.importorskip("submitit")  # the test command installs it; see _require below


def test_profiles_become_submitit_parameters() -> None:
    profile = SlurmProfile(
        partition="smp",
        account="ccat",
        time="1:30",
        mem="4G",
        array_throttle=8,
        extra_sbatch=["--gres=gpu:1", "--mail-type=FAIL"],
        setup=["module load python"],
    )
    parameters = submitit_parameters(profile)
    assert parameters["timeout_min"] == 2 and parameters["slurm_mem"] == "4G"
    assert parameters["slurm_partition"] == "smp" and parameters["slurm_account"] == "ccat"
    assert parameters["slurm_array_parallelism"] == 8
    assert parameters["slurm_additional_parameters"] == {"gres": "gpu:1", "mail_type": "FAIL"}
    assert parameters["slurm_setup"] == ["module load python"]
    assert "slurm_qos" not in parameters


@pytest.mark.parametrize("cluster", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_map_array_runs_a_function_over_items(cluster: str, tmp_path: Path) -> None:
    if cluster == "slurm":
        slurm_ready()
    jobs = map_array(
        math.factorial, [3, 4, 5, 6], SlurmProfile(mem="200M", time="5"), tmp_path, cluster
    )
    assert [job.result() for job in jobs] == [6, 24, 120, 720]
    if cluster == "slurm":
        assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array
        deadline = time.monotonic() + 60  # sacct hears of ended jobs a few seconds late
        while {job.state for job in jobs} != {"COMPLETED"} and time.monotonic() < deadline:
            time.sleep(1)
        assert {job.state for job in jobs} == {"COMPLETED"}
