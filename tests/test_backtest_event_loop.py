"""The backtest's event loop: it skips most zero-timeout polls, never what a file descriptor says."""

from __future__ import annotations

import asyncio
import socket
import threading

from backtesting import event_loop
from backtesting.event_loop import SeldomPollingSelector


def _readable_pair() -> tuple[socket.socket, socket.socket]:
    reader, writer = socket.socketpair()
    writer.send(b"x")
    return reader, writer


def test_a_zero_timeout_poll_reaches_the_kernel_once_in_poll_every() -> None:
    selector = SeldomPollingSelector()
    reader, writer = _readable_pair()
    try:
        selector.register(reader, 1)
        answers = [len(selector.select(0)) for _ in range(3 * SeldomPollingSelector.POLL_EVERY)]
    finally:
        selector.close()
        reader.close()
        writer.close()
    polled_at = [index for index, ready in enumerate(answers) if ready]
    every = SeldomPollingSelector.POLL_EVERY
    assert polled_at == [every - 1, 2 * every - 1, 3 * every - 1]


def test_a_poll_that_may_wait_always_reaches_the_kernel() -> None:
    selector = SeldomPollingSelector()
    reader, writer = _readable_pair()
    try:
        selector.register(reader, 1)
        selector.select(0)  # a skipped one first: the count must not hold back the next
        assert len(selector.select(0.5)) == 1
        assert len(selector.select(None)) == 1
    finally:
        selector.close()
        reader.close()
        writer.close()


def test_a_busy_loop_still_sees_a_socket_and_a_thread_within_poll_every_passes() -> None:
    """The drive and the bot keep callbacks ready all the time: a reader registered with the
    loop, and a thread's call_soon_threadsafe, still get through."""

    async def main() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        reader, writer = _readable_pair()
        seen = asyncio.Event()
        loop.add_reader(reader, seen.set)
        from_thread = asyncio.Event()
        thread = threading.Thread(target=loop.call_soon_threadsafe, args=(from_thread.set,))
        thread.start()
        thread.join()
        passes = 0
        try:
            while not seen.is_set() and passes < 10 * SeldomPollingSelector.POLL_EVERY:
                await asyncio.sleep(0)
                passes += 1
        finally:
            loop.remove_reader(reader)
            reader.close()
            writer.close()
        return passes, from_thread.is_set()

    passes, thread_seen = event_loop.run(main())
    assert passes <= SeldomPollingSelector.POLL_EVERY
    assert thread_seen


def test_an_idle_loop_sleeps_in_the_kernel_until_its_timer() -> None:
    """Nothing ready: the poll may block, so the loop waits for the timer instead of spinning."""
    polls: list[float | None] = []

    class Counting(SeldomPollingSelector):
        def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
            polls.append(timeout)
            return super().select(timeout)

    loop = asyncio.SelectorEventLoop(Counting())
    try:
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    assert any(timeout is not None and timeout > 0 for timeout in polls)
    assert len(polls) < SeldomPollingSelector.POLL_EVERY
