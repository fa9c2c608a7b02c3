"""The retry policy (pure): exponential backoff with equal jitter, capped; limits per step."""

from __future__ import annotations

import pytest

from ccat_hpc.pipeline.retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy


def test_the_delay_doubles_per_try_and_is_jittered_within_its_upper_half() -> None:
    policy = RetryPolicy(base_seconds=10, max_seconds=1000)
    assert [policy.delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert [policy.delay(n, rng=lambda: 0.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert 10 <= policy.delay(2) <= 20


def test_the_delay_is_capped() -> None:
    policy = RetryPolicy(base_seconds=60, max_seconds=3600)
    assert policy.delay(30, rng=lambda: 1.0) == 3600
    assert policy.delay(30, rng=lambda: 0.0) == 1800


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, RetryPolicy()),
        (
            {"retry_base_seconds": 5, "retry_max_seconds": 50, "max_attempts": {"transfer": 8}},
            RetryPolicy(5.0, 50.0, {"transfer": 8}),
        ),
        ({"retry_base_seconds": "nonsense", "max_attempts": None}, RetryPolicy()),
    ],
)
def test_the_policy_comes_from_a_sites_pipeline_settings(
    settings: dict[str, object], expected: RetryPolicy
) -> None:
    assert RetryPolicy.from_settings(settings) == expected


def test_tries_per_step_default_to_five() -> None:
    policy = RetryPolicy(max_attempts={"archive": 9})
    assert (policy.attempts_for("archive"), policy.attempts_for("bundle")) == (9, 5)
    assert DEFAULT_MAX_ATTEMPTS == 5
