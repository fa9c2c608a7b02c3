"""An executor by name (``--executor``, ``$CCAT_HPC_EXECUTOR``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ccat_hpc.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module for its option choices: keep it light
    from ccat_hpc.executors.base import Executor

EXECUTOR_ENV = "CCAT_HPC_EXECUTOR"
EXECUTORS = ("local", "slurm")


def default_executor_name() -> str:
    return os.environ.get(EXECUTOR_ENV, "local")


def make_executor(name: str) -> Executor:
    if name == "local":
        from ccat_hpc.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "slurm":
        from ccat_hpc.executors.slurm import SlurmExecutor

        return SlurmExecutor()
    raise ConfigError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
