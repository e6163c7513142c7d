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


class Signal:
    """A set/clear flag like :class:`asyncio.Event` whose waiter resumes in one loop step.

    ``asyncio.Event`` waited on with a timeout takes a task for ``event.wait()`` and
    ``asyncio.wait`` around it: a ``set()`` reaches the waiter three loop steps later, and any
    frame already buffered on a socket is handled first. The bot's wake-up is on the path from
    a fill to its take-profit, so it is this: ``set()`` resolves the waiter's own future.
    """

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[asyncio.Future[bool]] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._flag = False

    def add_waiter(self, waiter: asyncio.Future[bool]) -> None:
        """Resolve ``waiter`` with True at the next :meth:`set` (at once if already set)."""
        if self._flag:
            if not waiter.done():
                waiter.set_result(True)
            return
        self._waiters.append(waiter)

    def discard_waiter(self, waiter: asyncio.Future[bool]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    async def wait(self) -> bool:
        if self._flag:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            self.discard_waiter(waiter)


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class Clock(ABC):
    """What every component asks for the time and for timed waits."""

    @abstractmethod
    def now(self) -> float:
        """Current time in epoch seconds."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    async def wait_for_event(self, event: asyncio.Event | Signal, timeout: float | None) -> bool:
        """Wait until ``event`` is set or ``timeout`` clock-seconds pass; True if the event won.

        A wait is always "until this event or this timeout", never a blind sleep.
        """
        if event.is_set():
            return True
        if isinstance(event, Signal):
            return await self._wait_for_signal(event, timeout)
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

    async def _wait_for_signal(self, signal: Signal, timeout: float | None) -> bool:
        """One future, resolved by the signal or by a timer handle: no task, no ``asyncio.wait``."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = None if timeout is None else loop.call_later(max(0.0, timeout), _resolve, waiter, False)
        signal.add_waiter(waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            signal.discard_waiter(waiter)


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

    async def wait_for_event(self, event: asyncio.Event | Signal, timeout: float | None) -> bool:
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
        if isinstance(event, Signal):
            # The signal resolves the timer's own future: no task at all.
            event.add_waiter(waker)  # type: ignore[arg-type]
            try:
                await waker
            finally:
                event.discard_waiter(waker)  # type: ignore[arg-type]
            return event.is_set()
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
