"""Client-side request pacing and typed retries, shared by every venue client.

A venue that answers 429 should make the bot slower, not dead: the token bucket paces requests
below the venue's published limit, a 429 drains it and pauses every caller for the venue's
``retry_after`` (or a bounded, decaying back-off), exits and cancels are served before new
entries (:class:`Priority`), and :class:`RetryPolicy` retries only what is safe to
retry. All waits go through the injected :class:`~helpers.clock.Clock`, so tests drive time.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from exchanges.base import (
    ExchangeUnavailable,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)
from helpers.clock import Clock

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Priority(enum.IntEnum):
    """Who goes first when requests queue at the limiter (lower value first).

    HIGH: what protects a position or frees margin: take-profits, closes, cancels.
    NORMAL: reads (account, orders, markets); the default.
    LOW: new entries, which can always wait; they also leave ``high_reserve`` tokens in the
    bucket, so an exit finds a token at once even while entries are being paced.
    """

    HIGH = 0
    NORMAL = 1
    LOW = 2


@dataclass(eq=False)
class _Waiter:
    priority: Priority
    cost: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class RateLimiter:
    """An async token bucket: at most ``max_requests`` per ``window`` seconds, with bursts.

    Waiters are served by priority, then arrival order (:class:`Priority`); within one priority
    a burst of callers cannot starve one. ``penalize`` is what a 429 calls: it empties the bucket
    and pauses everyone.

    * With the venue's ``retry_after``, the pause is exactly that (capped at
      ``retry_after_cap``, so a hostile header cannot freeze the bot for a day).
    * Without it, the pause is ``penalty_base * 2 ** (strikes - 1)``, at most ``penalty_cap``.
      A 429 that lands while a pause is already running (a request sent before the pause) is no
      new strike, so a burst of concurrent 429s costs one step, not one doubling each; strikes
      are forgotten one per ``penalty_decay`` seconds without a 429, and all at once on a
      success. (Before, a burst doubled the pause to 60 s and only a success reset it: no
      orders for 116 s.)
    """

    def __init__(
        self,
        clock: Clock,
        max_requests: float,
        window: float,
        *,
        burst: float | None = None,
        penalty_base: float = 1.0,
        penalty_cap: float = 10.0,
        penalty_decay: float = 30.0,
        retry_after_cap: float = 120.0,
        high_reserve: float | None = None,
        name: str = "rest",
    ) -> None:
        if max_requests <= 0 or window <= 0:
            raise ValueError("max_requests and window must be positive")
        if penalty_base <= 0 or penalty_cap < penalty_base or penalty_decay <= 0 or retry_after_cap <= 0:
            raise ValueError("penalties: base, decay, retry_after_cap > 0 and cap >= base")
        self.clock = clock
        self.name = name
        self.rate = max_requests / window
        self.capacity = float(burst if burst is not None else max_requests)
        self.penalty_base = penalty_base
        self.penalty_cap = penalty_cap
        self.penalty_decay = penalty_decay
        self.retry_after_cap = retry_after_cap
        #: Tokens LOW requests leave for HIGH ones (default a quarter of the bucket).
        self.high_reserve = self.capacity / 4 if high_reserve is None else float(high_reserve)
        self._tokens = self.capacity
        self._updated = clock.now()
        self._paused_until = 0.0
        self._strikes = 0
        self._last_strike = 0.0
        self._queue: list[tuple[int, int, _Waiter]] = []
        self._arrivals = itertools.count()
        self.throttled = 0
        self.acquired = 0

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    @property
    def paused_until(self) -> float:
        return self._paused_until

    @property
    def strikes(self) -> int:
        return self._strikes

    def _refill(self) -> None:
        now = self.clock.now()
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._updated = now

    def _needed(self, priority: Priority, cost: float) -> float:
        if priority is Priority.LOW:
            return cost + min(self.high_reserve, self.capacity - cost)
        return cost

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0][2].wake.set()

    async def acquire(self, cost: float = 1.0, priority: Priority = Priority.NORMAL) -> None:
        """Wait (on the clock) until ``cost`` tokens are available and no request of higher
        priority (or of the same priority, arrived earlier) is waiting, then take them."""
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds bucket capacity {self.capacity}")
        priority = Priority(priority)
        if not self._queue and self.clock.now() >= self._paused_until:
            # Nobody waits: take the tokens at once if there are enough (no waiter, no queue
            # entry: a take-profit's send goes through here right after its signature).
            self._refill()
            if self._tokens >= self._needed(priority, cost):
                self._tokens -= cost
                self.acquired += 1
                return
        waiter = _Waiter(priority, cost)
        entry = (int(waiter.priority), next(self._arrivals), waiter)
        heapq.heappush(self._queue, entry)
        self._wake_head()  # a new head must take over; an old head re-checks and yields
        try:
            while True:
                delay: float | None = None
                if self._queue[0] is entry:
                    now = self.clock.now()
                    if now < self._paused_until:
                        delay = self._paused_until - now
                    else:
                        self._refill()
                        needed = self._needed(waiter.priority, waiter.cost)
                        if self._tokens >= needed:
                            self._tokens -= cost
                            self.acquired += 1
                            heapq.heappop(self._queue)
                            self._wake_head()
                            return
                        delay = (needed - self._tokens) / self.rate
                waiter.wake.clear()
                await self.clock.wait_for_event(waiter.wake, delay)
        except BaseException:
            if entry in self._queue:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
                self._wake_head()
            raise

    def penalize(self, retry_after: float | None = None) -> float:
        """The venue said "too many requests": drain the bucket and pause; returns the pause."""
        now = self.clock.now()
        self.throttled += 1
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            pause = min(float(retry_after), self.retry_after_cap)
        else:
            if self._strikes and now >= self._last_strike:
                self._strikes = max(0, self._strikes - int((now - self._last_strike) / self.penalty_decay))
            if now >= self._paused_until or self._strikes == 0:
                self._strikes += 1
                self._last_strike = now
            pause = min(self.penalty_cap, self.penalty_base * 2 ** (self._strikes - 1))
        self._refill()
        self._tokens = 0.0
        self._paused_until = max(self._paused_until, now + pause)
        self._wake_head()
        logger.warning("%s: rate limited by the venue; pausing requests for %.2fs", self.name, pause)
        return pause

    def record_success(self) -> None:
        """A request went through: consecutive-429 escalation starts over."""
        self._strikes = 0


def _is_retryable(exc: BaseException, idempotent: bool) -> bool:
    if isinstance(exc, RateLimitExceeded):
        return True
    if not idempotent:
        return False
    return isinstance(exc, (ExchangeUnavailable, RequestTimeout, NetworkError))


class RetryPolicy:
    """Bounded, typed retries for REST calls, on top of tenacity.

    Only network-class failures are retried (NetworkError and its RateLimitExceeded,
    ExchangeUnavailable, RequestTimeout subclasses); InvalidOrder, AuthenticationError,
    InvalidNonce and everything else surface at once. Calls that change venue state are passed
    with ``idempotent=False`` and then retried only on RateLimitExceeded, the one failure that
    proves the request was not executed; a timeout there means "unknown", never "try again".
    Back-off is exponential with full jitter (seeded ``rng`` for tests) and a 429's
    ``retry_after`` is honoured as a floor.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 10.0,
        limiter: RateLimiter | None = None,
        rng: random.Random | None = None,
        name: str = "rest",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.limiter = limiter
        self.rng = rng or random.Random()
        self.name = name
        self.retries = 0

    def backoff_delay(self, attempt: int) -> float:
        """Full-jitter delay before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return self.rng.uniform(0.0, ceiling)

    def _delay_after(self, attempt: int, exc: BaseException | None) -> float:
        delay = self.backoff_delay(attempt)
        if isinstance(exc, RateLimitExceeded) and exc.retry_after:
            delay = max(delay, float(exc.retry_after))
        return delay

    def _log_retry(self, attempt: int, exc: BaseException | None, delay: float) -> None:
        self.retries += 1
        logger.warning(
            "%s: attempt %d/%d failed (%s: %s); retrying in %.2fs",
            self.name,
            attempt,
            self.max_attempts,
            type(exc).__name__,
            exc,
            delay,
        )

    async def call(
        self, fn: Callable[[], Awaitable[T]], *, idempotent: bool = True, priority: Priority = Priority.NORMAL
    ) -> T:
        """Run ``fn`` (a fresh request per attempt) under the limiter with bounded retries.

        ``priority`` is the limiter's queue order for every attempt: HIGH for take-profits,
        closes and cancels, LOW for new entries, NORMAL (default) for reads.

        The first attempt runs directly: tenacity's machinery costs ~0.1 ms a call, and nearly
        every call (every order sent) succeeds first time. Only a retryable failure enters the
        retry loop, for the remaining attempts, with the same delays and log lines as before.
        """
        try:
            return await self._attempt(fn, priority)
        except Exception as exc:
            if self.max_attempts <= 1 or not _is_retryable(exc, idempotent):
                raise
            delay = self._delay_after(1, exc)
            self._log_retry(1, exc, delay)
            await self.clock.sleep(delay)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self._delay_after(state.attempt_number + 1, exc)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            self._log_retry(state.attempt_number + 1, exc, delay)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts - 1),
            retry=retry_if_exception(lambda exc: _is_retryable(exc, idempotent)),
            wait=wait,
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        result: T
        async for attempt in retrying:
            with attempt:
                result = await self._attempt(fn, priority)
        return result

    async def _attempt(self, fn: Callable[[], Awaitable[T]], priority: Priority) -> T:
        """One request under the limiter; a 429 drains the bucket and pauses every caller."""
        if self.limiter is not None:
            await self.limiter.acquire(priority=priority)
        try:
            result = await fn()
        except RateLimitExceeded as exc:
            if self.limiter is not None:
                self.limiter.penalize(exc.retry_after)
            raise
        if self.limiter is not None:
            self.limiter.record_success()
        return result
