"""One source of time for the bot, the strategies and the paper venue.

Live trading uses wall time; a backtest uses the feed's time and advances it explicitly, so the
very same strategy and bot code run in both without a single ``time.time()`` or bare
``asyncio.sleep`` scattered through them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """What every component asks for the time and for timed waits."""

    @abstractmethod
    def now(self) -> float:
        """Current time in epoch seconds."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    async def wait_for_event(self, event: asyncio.Event, timeout: float | None) -> bool:
        """Wait until ``event`` is set or ``timeout`` clock-seconds pass; True if the event won.

        A wait is always "until this event or this timeout", never a blind sleep.
        """
        if event.is_set():
            return True
        event_task = asyncio.ensure_future(event.wait())
        if timeout is None:
            await event_task
            return True
        timer_task = asyncio.ensure_future(self.sleep(max(0.0, timeout)))
        try:
            await asyncio.wait({event_task, timer_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (event_task, timer_task):
                if not task.done():
                    task.cancel()
        return event.is_set()


class LiveClock(Clock):
    """Wall-clock time for live and paper trading."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimulatedClock(Clock):
    """Time that moves only when the data says so (backtests, deterministic tests).

    ``sleep`` parks the caller on a timer heap; ``advance_to`` releases every timer whose
    deadline has been reached, in deadline order. (The backtest engine's per-event loop moves
    ``_now`` forward itself when it has checked that no timer is due before the new time: the
    same effect as ``advance_to`` without a call per market instant.)
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self._now + seconds, next(self._sequence), future))
        await future

    async def wait_for_event(self, event: asyncio.Event, timeout: float | None) -> bool:
        """As :meth:`Clock.wait_for_event`, with the timer's future itself as the waker.

        The event's waiter resolves that same future, so a wait costs one task instead of two
        plus ``asyncio.wait``: a backtest makes one such wait per bot decision.
        """
        if event.is_set():
            return True
        if timeout is None or timeout <= 0:
            return await super().wait_for_event(event, timeout)
        loop = asyncio.get_running_loop()
        waker: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._timers, (self._now + timeout, next(self._sequence), waker))
        event_waiter = loop.create_task(event.wait())
        event_waiter.add_done_callback(lambda _: waker.done() or waker.set_result(None))
        try:
            await waker
        finally:
            if not event_waiter.done():
                event_waiter.cancel()
        return event.is_set()

    def pending_timers(self) -> int:
        """Timers still waiting (a driver can tell whether everyone is parked on the clock)."""
        return sum(1 for _, _, future in self._timers if not future.done())

    def next_deadline(self) -> float | None:
        """Earliest pending timer, skipping ones whose waiter has gone away."""
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance_to(self, timestamp: float) -> int:
        """Move time forward (never back) and wake due timers; returns how many woke."""
        if timestamp > self._now:
            self._now = timestamp
        woken = 0
        while self._timers and self._timers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._timers)
            if not future.done():
                future.set_result(None)
                woken += 1
        return woken
