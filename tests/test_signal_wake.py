"""helpers.clock.Signal: the bot's wake-up reaches its waiter in one loop step, on both clocks."""

from __future__ import annotations

import asyncio

from helpers.clock import LiveClock, Signal, SimulatedClock


async def test_a_set_signal_resumes_its_waiter_on_the_next_loop_step() -> None:
    signal = Signal()
    order: list[str] = []

    async def waiter() -> None:
        assert await LiveClock().wait_for_event(signal, 60.0)
        order.append("waiter")

    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)  # the waiter is parked
    signal.set()
    await asyncio.sleep(0)  # one step: the woken waiter runs before this task resumes
    order.append("setter")
    await task
    assert order == ["waiter", "setter"]


async def test_the_timeout_wins_when_the_signal_is_never_set() -> None:
    signal = Signal()
    assert not await LiveClock().wait_for_event(signal, 0.001)
    assert signal._waiters == []  # the timed-out waiter is not left behind


async def test_a_signal_already_set_returns_at_once_and_clear_rearms_it() -> None:
    signal = Signal()
    signal.set()
    assert await LiveClock().wait_for_event(signal, 0.0)
    signal.clear()
    assert not await LiveClock().wait_for_event(signal, 0.0)


async def test_on_the_simulated_clock_the_signal_or_the_timer_wins() -> None:
    clock = SimulatedClock(start=100.0)
    signal = Signal()
    woken = asyncio.ensure_future(clock.wait_for_event(signal, 5.0))
    await asyncio.sleep(0)
    signal.set()
    assert await woken
    assert clock.now() == 100.0  # no simulated time passed
    signal.clear()
    timed_out = asyncio.ensure_future(clock.wait_for_event(signal, 5.0))
    await asyncio.sleep(0)
    clock.advance_to(105.0)
    assert not await timed_out
    assert signal._waiters == []
