"""The status summary, computed at most once per ``max_age`` seconds for every caller.

``collect_status`` counts every copy in ops-db: about 2 s at a million files. Many
monitors asking at once get the same snapshot; one request computes it while the
others wait for that one (never several at a time). Each snapshot says when it was
taken (``as_of``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.base import utcnow
from ccat_hpc.db.session import transaction
from ccat_hpc.inventory.common import iso
from ccat_hpc.status import collect_status


class StatusSnapshots:
    def __init__(self, max_age: float, clock: Callable[[], float]) -> None:
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._taken: float | None = None
        self._value: dict[str, Any] = {}

    def get(self, factory: sessionmaker[Session]) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            if self._taken is None or now - self._taken >= self.max_age:
                with transaction(factory) as session:
                    value = collect_status(session)
                self._value = value | {"as_of": iso(utcnow())}
                self._taken = self.clock()
            return self._value
