"""Send a Python function over a list of items as a job array, with a site's profile.

For scientists and operators working from a notebook on RAMSES::

    from ccat_hpc.executors.submitit_map import map_array
    jobs = map_array(reduce_scan, scan_paths, profile, folder="~/ccat-jobs")
    results = [job.result() for job in jobs]

submitit (``pip install 'ccat-hpc[submitit]'``) pickles the function and its items,
submits one array (on Slurm when ``srun`` is on PATH, else as local processes) and
returns its jobs. The ``#SBATCH`` lines come from the same :class:`SlurmProfile` the
job templates use, so one profile in a site config serves both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ccat_hpc.executors.slurm_time import seconds_of
from ccat_hpc.sites.schema import SlurmProfile


def submitit_parameters(profile: SlurmProfile) -> dict[str, Any]:
    """submitit's AutoExecutor parameters for ``profile`` (pure)."""
    parameters: dict[str, Any] = {
        "timeout_min": max(1, math.ceil(seconds_of(profile.time) / 60)),
        "cpus_per_task": profile.cpus_per_task,
        "slurm_mem": profile.mem,
        "slurm_ntasks_per_node": profile.ntasks,
        "slurm_setup": list(profile.setup),
    }
    for name in ("partition", "account", "qos"):
        value = getattr(profile, name)
        if value:
            parameters[f"slurm_{name}"] = value
    if profile.array_throttle:
        parameters["slurm_array_parallelism"] = profile.array_throttle
    extra = dict(_option(line) for line in profile.extra_sbatch)
    if extra:
        parameters["slurm_additional_parameters"] = extra
    return parameters


def _option(line: str) -> tuple[str, str]:
    """``--gres=gpu:1`` → ("gres", "gpu:1"); submitit writes it back as ``--gres=gpu:1``."""
    name, _, value = line.strip().removeprefix("--").partition("=")
    return name.replace("-", "_"), value


def map_array(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    profile: SlurmProfile | None = None,
    folder: Path | str = "ccat-hpc-submitit",
    cluster: str | None = None,
    name: str = "ccat-map",
) -> list[Any]:
    """Submit ``function(item)`` for every item as one array; returns submitit's jobs."""
    import submitit

    executor = submitit.AutoExecutor(folder=Path(folder).expanduser(), cluster=cluster)
    executor.update_parameters(name=name, **submitit_parameters(profile or SlurmProfile()))
    return list(executor.map_array(function, list(items)))
