"""The status summary, computed at most once per ``max_age`` seconds for every caller.

``collect_status`` counts every copy in ops-db: about 1.5 s at a million files. One
request computes a new snapshot while the others are served the previous one (or,
before there is any, wait for it). A computation that failed is not tried again for a
few seconds: its error is answered meanwhile. Each snapshot says when it was taken
(``as_of``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import DatabaseUnavailable
from ccat_hpc.inventory.common import iso
from ccat_hpc.status import collect_status

#: seconds a failed computation is answered with its error before it is tried again
FAILURE_SECONDS = 5.0
#: the longest a first caller waits for a computation under way
WAIT_SECONDS = 60.0


class StatusSnapshots:
    def __init__(self, max_age: float, clock: Callable[[], float]) -> None:
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._taken: float | None = None
        self._value: dict[str, Any] | None = None
        self._failed: tuple[float, Exception] | None = None

    def get(self, factory: sessionmaker[Session]) -> dict[str, Any]:
        if self._value is not None and self._fresh():
            return self._value
        if self._value is not None and not self._lock.acquire(blocking=False):
            return self._value  # another request computes the next one
        if self._value is None and not self._lock.acquire(timeout=WAIT_SECONDS):
            raise DatabaseUnavailable("the status summary takes too long; try again later")
        try:
            return self._compute(factory)
        finally:
            self._lock.release()

    def _fresh(self) -> bool:
        return self._taken is not None and self.clock() - self._taken < self.max_age

    def _compute(self, factory: sessionmaker[Session]) -> dict[str, Any]:
        if self._value is not None and self._fresh():
            return self._value  # computed while this request waited
        if self._failed is not None and self.clock() - self._failed[0] < FAILURE_SECONDS:
            raise self._failed[1]
        try:
            with transaction(factory) as session:
                value = collect_status(session)
        except Exception as exc:
            self._failed = (self.clock(), exc)
            raise
        self._failed = None
        self._value = value | {"as_of": iso(utcnow())}
        self._taken = self.clock()
        return self._value
