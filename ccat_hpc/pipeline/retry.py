"""When a failed item is tried again (pure): exponential backoff with jitter, a limit.

The n-th try after a failure waits ``base × 2^(n-1)`` seconds, at most ``cap``, of which
a random half is taken off ("equal jitter"), so items that failed together do not all
come back at the same moment. After ``max_attempts`` tries an item is left for an
operator, with its attempts and the last reason.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 60.0
    max_seconds: float = 3600.0
    #: tries per step before an item needs an operator (steps not named: the default)
    max_attempts: Mapping[str, int] = field(default_factory=dict)

    def attempts_for(self, step: str) -> int:
        return int(self.max_attempts.get(step, DEFAULT_MAX_ATTEMPTS))

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` ≥ 1 tries were made)."""
        full = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempt - 1))
        return float(full / 2 + full / 2 * rng())

    @classmethod
    def from_settings(cls, pipeline: Mapping[str, object]) -> RetryPolicy:
        """From a site's ``pipeline`` settings (missing keys: the defaults)."""
        defaults = cls()
        attempts = pipeline.get("max_attempts") or {}
        return cls(
            base_seconds=_number(pipeline.get("retry_base_seconds"), defaults.base_seconds),
            max_seconds=_number(pipeline.get("retry_max_seconds"), defaults.max_seconds),
            max_attempts=dict(attempts) if isinstance(attempts, Mapping) else {},
        )


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default
