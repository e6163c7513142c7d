"""RateLimiter and RetryPolicy, driven entirely by a SimulatedClock (no real waiting)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from exchanges.base import (
    AuthenticationError,
    ExchangeUnavailable,
    InvalidNonce,
    InvalidOrder,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)
from helpers.clock import SimulatedClock
from helpers.rate_limiter import RateLimiter, RetryPolicy

T = TypeVar("T")


async def drive(clock: SimulatedClock, awaitable: Awaitable[T], limit: int = 1000) -> T:
    """Run ``awaitable``, advancing simulated time to each pending timer until it finishes."""
    task = asyncio.ensure_future(awaitable)
    for _ in range(limit):
        for _ in range(5):
            await asyncio.sleep(0)
        if task.done():
            return task.result()
        deadline = clock.next_deadline()
        if deadline is not None:
            clock.advance_to(deadline)
    task.cancel()
    raise AssertionError("task did not finish")


async def test_burst_then_paced_at_rate() -> None:
    clock = SimulatedClock(start=100.0)
    limiter = RateLimiter(clock, max_requests=2, window=1.0)
    times = []

    async def five() -> None:
        for _ in range(5):
            await limiter.acquire()
            times.append(clock.now() - 100.0)

    await drive(clock, five())
    assert times == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5])
    assert limiter.acquired == 5


async def test_concurrent_waiters_are_served_in_order() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=1, window=1.0, burst=1)
    order: list[int] = []

    async def worker(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    await drive(clock, asyncio.gather(*(worker(i) for i in range(4))))
    assert order == [0, 1, 2, 3]
    assert clock.now() == pytest.approx(3.0)


async def test_penalize_pauses_everyone_for_retry_after() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=10, window=1.0)
    pause = limiter.penalize(retry_after=3.0)
    assert pause == pytest.approx(3.0)
    assert limiter.tokens == 0
    await drive(clock, limiter.acquire())
    assert clock.now() >= 3.0
    assert limiter.throttled == 1


async def test_consecutive_penalties_escalate_and_success_resets() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=10, window=1.0, penalty_base=1.0, penalty_cap=5.0)
    assert limiter.penalize() == pytest.approx(1.0)
    assert limiter.penalize() == pytest.approx(2.0)
    assert limiter.penalize() == pytest.approx(4.0)
    assert limiter.penalize() == pytest.approx(5.0)
    limiter.record_success()
    assert limiter.penalize() == pytest.approx(1.0)


async def test_cost_above_capacity_is_refused() -> None:
    limiter = RateLimiter(SimulatedClock(), max_requests=2, window=1.0)
    with pytest.raises(ValueError):
        await limiter.acquire(cost=3)


class Flaky:
    """Fails with the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_retries_network_errors_then_succeeds() -> None:
    clock = SimulatedClock()
    policy = RetryPolicy(clock, max_attempts=4, base_delay=1.0, max_delay=8.0, rng=random.Random(1))
    fn = Flaky(NetworkError("reset"), ExchangeUnavailable("503"))
    assert await drive(clock, policy.call(fn)) == "ok"
    assert fn.calls == 3
    assert policy.retries == 2


@pytest.mark.parametrize(
    "error", [InvalidOrder("bad"), AuthenticationError("no"), InvalidNonce("nonce"), ValueError("bug")]
)
async def test_never_retries_non_network_errors(error: Exception) -> None:
    clock = SimulatedClock()
    policy = RetryPolicy(clock, max_attempts=5)
    fn = Flaky(error)
    with pytest.raises(type(error)):
        await drive(clock, policy.call(fn))
    assert fn.calls == 1


async def test_attempts_are_bounded() -> None:
    clock = SimulatedClock()
    policy = RetryPolicy(clock, max_attempts=3, base_delay=0.1)
    fn = Flaky(*(RequestTimeout("slow") for _ in range(10)))
    with pytest.raises(RequestTimeout):
        await drive(clock, policy.call(fn))
    assert fn.calls == 3


async def test_rate_limit_honours_retry_after_and_slows_the_limiter() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=100, window=1.0)
    policy = RetryPolicy(clock, max_attempts=3, base_delay=0.01, limiter=limiter)
    fn = Flaky(RateLimitExceeded("429", retry_after=5.0))
    assert await drive(clock, policy.call(fn)) == "ok"
    assert fn.calls == 2
    assert clock.now() >= 5.0
    assert limiter.throttled == 1


async def test_non_idempotent_calls_retry_only_rate_limits() -> None:
    clock = SimulatedClock()
    policy = RetryPolicy(clock, max_attempts=4, base_delay=0.01)
    timeout = Flaky(RequestTimeout("lost answer"))
    with pytest.raises(RequestTimeout):
        await drive(clock, policy.call(timeout, idempotent=False))
    assert timeout.calls == 1
    limited = Flaky(RateLimitExceeded("429"))
    assert await drive(clock, policy.call(limited, idempotent=False)) == "ok"
    assert limited.calls == 2


def test_backoff_is_exponential_capped_with_seeded_full_jitter() -> None:
    policy = RetryPolicy(SimulatedClock(), base_delay=1.0, max_delay=4.0, rng=random.Random(7))
    delays = [policy.backoff_delay(n) for n in range(1, 7)]
    expected_rng = random.Random(7)
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert delays == [expected_rng.uniform(0.0, c) for c in ceilings]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
