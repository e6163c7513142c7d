"""The event loop a backtest runs in: asyncio's, minus most of its idle polling.

asyncio asks its selector for ready sockets on every pass, with a zero timeout whenever a
callback is ready. A backtest is never waiting: the drive and the bot hand control to each other
through ready callbacks several hundred times a run, and each pass cost an ``epoll_wait`` system
call (about 2 % of a warm run) that found nothing, since a backtest opens no sockets.
:class:`SeldomPollingSelector` answers most zero-timeout polls with "nothing ready" and asks the
kernel on every ``POLL_EVERY``-th, and on every poll that may block; so anything that does use
a file descriptor (a thread's wake-up through the loop's self-pipe, a notifier's socket) is
still seen, at most ``POLL_EVERY`` passes late, and a loop with nothing ready still sleeps in
the kernel.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class SeldomPollingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's default selector, polling the kernel on one zero-timeout call in
    ``POLL_EVERY`` (see the module doc)."""

    POLL_EVERY = 64

    def __init__(self) -> None:
        super().__init__()
        self._polls_skipped = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0 and self._polls_skipped < self.POLL_EVERY - 1:
            self._polls_skipped += 1
            return []
        self._polls_skipped = 0
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        return ready


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop on :class:`SeldomPollingSelector`."""
    return asyncio.SelectorEventLoop(SeldomPollingSelector())


def run(main: Any) -> Any:
    """``asyncio.run(main)`` on :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
