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
from helpers.rate_limiter import Priority, RateLimiter, RetryPolicy

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


async def test_no_request_goes_during_a_pause_even_once_the_bucket_has_refilled() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=10, window=1.0)
    limiter.penalize(retry_after=30.0)
    clock.advance_to(20.0)  # the bucket refills in 1 s; the pause lasts 30
    await drive(clock, limiter.acquire())
    assert clock.now() >= 30.0


async def test_a_newcomer_does_not_take_the_token_a_waiter_is_about_to_get() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=1, window=1.0, burst=1)
    await limiter.acquire()  # the bucket is empty now
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)  # it is queued, waiting for the next token
    clock.advance_to(1.0)  # one token back; the waiter has not run yet
    newcomer = limiter.acquire()
    try:
        newcomer.send(None)  # run the newcomer up to its first wait, before the waiter runs
    except StopIteration:
        pytest.fail("the newcomer took the token the queued waiter was due")
    newcomer.close()  # it leaves the queue
    await drive(clock, waiting)
    assert limiter.acquired == 2 and clock.now() == pytest.approx(1.0)


async def test_consecutive_penalties_escalate_to_the_cap_and_success_resets() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=10, window=1.0, penalty_base=1.0, penalty_cap=5.0)
    pauses = []
    for _ in range(5):
        pauses.append(limiter.penalize())
        clock.advance_to(limiter.paused_until)  # the next 429 answers a request sent after the pause
    assert pauses == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0])
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


# -- 429 bursts: bounded, decaying, Retry-After obeyed ---------------------------------------------


async def test_a_burst_of_429s_at_once_is_one_strike_not_one_doubling_each() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=10, window=1.0, penalty_base=1.0, penalty_cap=10.0)
    pauses = [limiter.penalize() for _ in range(12)]  # twelve requests in flight, all refused
    assert pauses == pytest.approx([1.0] * 12)
    assert limiter.paused_until == pytest.approx(1.0)
    assert limiter.strikes == 1


async def test_retry_after_is_obeyed_exactly_and_capped() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=10, window=1.0, penalty_base=1.0, retry_after_cap=120.0)
    for _ in range(3):
        limiter.penalize()
        clock.advance_to(limiter.paused_until)
    start = clock.now()
    assert limiter.penalize(retry_after=0.5) == pytest.approx(0.5)  # not max(0.5, escalation)
    assert limiter.paused_until == pytest.approx(start + 0.5)
    clock.advance_to(limiter.paused_until)
    assert limiter.penalize(retry_after=86_400.0) == pytest.approx(120.0)


@pytest.mark.parametrize("bogus", [float("nan"), float("inf"), -5.0, 0.0])
async def test_a_meaningless_retry_after_falls_back_to_the_bounded_pause(bogus: float) -> None:
    limiter = RateLimiter(SimulatedClock(), max_requests=10, window=1.0, penalty_base=1.0)
    assert limiter.penalize(retry_after=bogus) == pytest.approx(1.0)


async def test_strikes_decay_without_a_success() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(
        clock, max_requests=10, window=1.0, penalty_base=1.0, penalty_cap=60.0, penalty_decay=30.0
    )
    for _ in range(4):
        limiter.penalize()
        clock.advance_to(limiter.paused_until)
    assert limiter.strikes == 4
    clock.advance_to(clock.now() + 60.0)  # two decay periods: two strikes forgotten
    assert limiter.penalize() == pytest.approx(4.0)  # strike 3, not 5 (16 s)
    assert limiter.strikes == 3


async def test_the_issue_8_burst_no_longer_stalls_orders_for_minutes() -> None:
    """Five callers against a venue that answers 429 (no Retry-After) for 20 s: the first order
    after the venue recovers goes out within one capped pause, not after 116 s."""
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=60, window=60.0, burst=10)  # default pauses
    successes: list[float] = []

    async def venue() -> str:
        if clock.now() < 20.0:
            raise RateLimitExceeded("429")
        successes.append(clock.now())
        return "ok"

    policy = RetryPolicy(clock, max_attempts=50, base_delay=0.0, max_delay=0.0, limiter=limiter)
    await drive(clock, asyncio.gather(*(policy.call(venue) for _ in range(5))), limit=5000)
    assert len(successes) == 5
    assert 20.0 <= min(successes) <= 20.0 + limiter.penalty_cap <= 30.0
    assert limiter.strikes == 0


# -- priority -----------------------------------------------------------------------------------


async def test_exits_jump_the_queue_of_waiting_entries() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=1, window=1.0, burst=1, high_reserve=0)
    served: list[str] = []

    async def request(name: str, priority: Priority, delay: float = 0.0) -> None:
        if delay:
            await clock.sleep(delay)
        await limiter.acquire(priority=priority)
        served.append(name)

    await drive(
        clock,
        asyncio.gather(
            request("entry-1", Priority.LOW),
            request("entry-2", Priority.LOW),
            request("entry-3", Priority.LOW),
            request("read", Priority.NORMAL, delay=0.5),
            request("take-profit", Priority.HIGH, delay=0.6),
        ),
    )
    assert served == ["entry-1", "take-profit", "read", "entry-2", "entry-3"]


async def test_entries_leave_a_reserve_so_an_exit_goes_at_once() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=4, window=4.0, burst=4, high_reserve=1)
    for _ in range(3):
        await drive(clock, limiter.acquire(priority=Priority.LOW))
    assert clock.now() == pytest.approx(0.0)
    entry = asyncio.ensure_future(limiter.acquire(priority=Priority.LOW))
    await asyncio.sleep(0)
    assert not entry.done()  # the last token is kept for exits
    await drive(clock, limiter.acquire(priority=Priority.HIGH))
    assert clock.now() == pytest.approx(0.0)
    await drive(clock, entry)
    assert clock.now() == pytest.approx(2.0)  # refilled to cost + reserve


async def test_after_a_pause_the_exit_goes_first() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=1, window=1.0, burst=1, high_reserve=0)
    limiter.penalize(retry_after=5.0)
    served: list[str] = []

    async def request(name: str, priority: Priority, delay: float = 0.0) -> None:
        await clock.sleep(delay)
        await limiter.acquire(priority=priority)
        served.append(f"{name}@{clock.now():g}")

    await drive(
        clock,
        asyncio.gather(request("entry", Priority.LOW, 0.1), request("cancel", Priority.HIGH, 3.0)),
    )
    assert served == ["cancel@5", "entry@6"]


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=1, window=1.0, burst=1, high_reserve=0)
    await drive(clock, limiter.acquire())
    stuck = asyncio.ensure_future(limiter.acquire(priority=Priority.HIGH))
    await asyncio.sleep(0)
    stuck.cancel()
    await asyncio.sleep(0)
    await drive(clock, limiter.acquire(priority=Priority.LOW))
    assert clock.now() == pytest.approx(1.0)
    assert limiter.acquired == 2


async def test_retry_policy_passes_the_priority_to_the_limiter() -> None:
    clock = SimulatedClock()
    limiter = RateLimiter(clock, max_requests=1, window=1.0, burst=1, high_reserve=0)
    policy = RetryPolicy(clock, limiter=limiter)
    served: list[str] = []

    async def op(name: str) -> str:
        served.append(name)
        return name

    await drive(clock, limiter.acquire())
    await drive(
        clock,
        asyncio.gather(
            policy.call(lambda: op("entry"), priority=Priority.LOW),
            policy.call(lambda: op("take-profit"), idempotent=False, priority=Priority.HIGH),
        ),
    )
    assert served == ["take-profit", "entry"]
