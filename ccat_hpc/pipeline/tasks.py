"""What a pipeline step's task gets and how it says it failed.

A step (checksum, and the steps after it) runs as one task of a job array; the job
runner (:mod:`ccat_hpc.jobs.runner`) builds the context from the task's row in ops-db
and records the outcome. The types live here, with the steps, so the steps never
depend on the runner that calls them.

Nothing here imports SQLAlchemy: a task whose handler opens no session (noop, sleep,
mpi) gets its sessions as :class:`LazySessions`, made the first time a handler asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from ccat_hpc.errors import CcatHpcError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


class TaskFailure(CcatHpcError):
    """A task could not do its work; ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable


class TaskInterrupted(TaskFailure):
    """The task was told to stop (SIGTERM: a time limit, a cancel, a node going down)."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(
            f"stopped by signal {signal_number} (time limit, cancel or node shutdown)",
            retryable=True,
        )
        self.signal_number = signal_number


class StopRequest:
    """Set when the task is told to stop; a handler checks it between pieces of work.

    Checked, not raised from a signal handler: a signal arriving in the middle of a
    database call must not break the connection or lose the outcomes being recorded.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_number = 0

    def request(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise TaskInterrupted if a stop was requested."""
        if self._event.is_set():
            raise TaskInterrupted(self.signal_number)

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; raise TaskInterrupted as soon as a stop is requested."""
        self._event.wait(seconds)
        self.check()


class LazySessions:
    """ops-db's session factory, made by ``make`` when first asked for (then kept)."""

    def __init__(self, make: Callable[[], sessionmaker[Session]]) -> None:
        self._make = make
        self._factory: sessionmaker[Session] | None = None

    def get(self) -> sessionmaker[Session]:
        if self._factory is None:
            self._factory = self._make()
        return self._factory


#: a session factory, or one made on first use
Sessions: TypeAlias = "sessionmaker[Session] | LazySessions"


def session_factory(sessions: Sessions) -> sessionmaker[Session]:
    """The session factory of ``sessions`` (made now if it is lazy and not made yet)."""
    return sessions.get() if isinstance(sessions, LazySessions) else sessions


@dataclass(frozen=True)
class TaskContext:
    sessions: Sessions
    batch_id: int
    task_index: int
    items: list[Any]
    parameters: Mapping[str, Any]
    environ: Mapping[str, str]
    stop: StopRequest = field(default_factory=StopRequest)
    #: where the batch runs (local, slurm): for metrics
    executor: str = ""

    @property
    def factory(self) -> sessionmaker[Session]:
        """Sessions on ops-db (the ORM is imported when a handler first asks)."""
        return session_factory(self.sessions)


Handler = Callable[[TaskContext], dict[str, Any]]
