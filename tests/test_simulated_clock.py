"""The simulated clock: the one thing that moves time in backtests and time-driven tests."""

from __future__ import annotations

import asyncio

from helpers.clock import SimulatedClock


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_timers_wake_in_deadline_order_then_creation_order() -> None:
    clock = SimulatedClock(100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [
        asyncio.ensure_future(sleeper(name, seconds))
        for name, seconds in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0))
    ]
    await _settle()
    assert clock.pending_timers() == 4
    assert clock.next_deadline() == 101.0
    assert clock.advance_to(102.5) == 3
    await _settle()
    assert woke == [("a", 102.5), ("a2", 102.5), ("b", 102.5)]
    assert clock.advance_to(103.0) == 1
    await _settle()
    assert woke[-1] == ("c", 103.0)
    await asyncio.gather(*tasks)


async def test_advance_never_goes_back() -> None:
    clock = SimulatedClock(50.0)
    assert clock.advance_to(40.0) == 0
    assert clock.now() == 50.0
    clock.advance_to(60.0)
    clock.advance_to(55.0)
    assert clock.now() == 60.0


async def test_cancelled_sleepers_are_skipped() -> None:
    clock = SimulatedClock(0.0)
    task = asyncio.ensure_future(clock.sleep(5.0))
    await _settle()
    task.cancel()
    await _settle()
    assert clock.next_deadline() is None
    assert clock.pending_timers() == 0
    assert clock.advance_to(10.0) == 0


async def test_wait_for_event_returns_false_when_the_timer_wins() -> None:
    clock = SimulatedClock(0.0)
    event = asyncio.Event()
    waiter = asyncio.ensure_future(clock.wait_for_event(event, 2.0))
    await _settle()
    assert not waiter.done()
    clock.advance_to(1.9)
    await _settle()
    assert not waiter.done()
    clock.advance_to(2.0)
    await _settle()
    assert waiter.result() is False
    assert clock.pending_timers() == 0


async def test_wait_for_event_returns_true_when_the_event_wins_and_drops_its_timer() -> None:
    clock = SimulatedClock(0.0)
    event = asyncio.Event()
    waiter = asyncio.ensure_future(clock.wait_for_event(event, 2.0))
    await _settle()
    event.set()
    await _settle()
    assert waiter.result() is True
    assert clock.now() == 0.0  # the event did not need time to pass
    assert clock.next_deadline() is None  # the timer is gone, not left to fire later


async def test_wait_for_event_already_set_or_zero_timeout() -> None:
    clock = SimulatedClock(0.0)
    event = asyncio.Event()
    assert await clock.wait_for_event(event, 0.0) is False
    event.set()
    assert await clock.wait_for_event(event, 10.0) is True
    assert clock.pending_timers() == 0


async def test_cancelling_a_wait_leaves_no_timer_behind() -> None:
    clock = SimulatedClock(0.0)
    waiter = asyncio.ensure_future(clock.wait_for_event(asyncio.Event(), 5.0))
    await _settle()
    waiter.cancel()
    await _settle()
    assert waiter.cancelled()
    assert clock.pending_timers() == 0
