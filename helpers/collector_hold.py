"""Keeping CPython's cyclic garbage collector out of the reaction to a fill.

The collector runs whenever allocations pass a threshold, wherever the event loop happens to
be; a fill's reaction allocates enough to trip it often. In the Lighter reaction benchmark
(640 fills in 6.6 s), 271 young-generation collections took 125 µs each at the median, 25
middle-generation ones 1.3 ms and two full ones 46 ms: any of them could land between a fill and
its take-profit. So a live bot holds the collector off from the moment an execution event wakes
it until it parks again (bounded by ``limit_seconds``, so a reaction that never ends cannot keep
memory from being collected), and the first allocation after that collects what is due.

At start-up the bot also moves what it loaded (modules, SDKs, markets) out of the collector's
sight with :func:`gc.freeze`: a full collection then walks only what the run itself made.
Simulated-time runs (backtests, sweeps) use neither: they make no reactions worth holding for,
and a sweep runs many bots in one process, whose objects must stay collectable.
"""

from __future__ import annotations

import asyncio
import gc

#: Longest hold: a reaction takes a few milliseconds; a hold still on after this is released.
DEFAULT_LIMIT_SECONDS = 0.05


class CollectorHold:
    """Disable the collector for one reaction at a time, never for longer than the limit.

    A collector already disabled by someone else (``gc.disable()`` in user code, a test) is
    left as it is: :meth:`hold` does nothing, and :meth:`release` never enables it.
    """

    def __init__(self, limit_seconds: float = DEFAULT_LIMIT_SECONDS) -> None:
        self.limit_seconds = limit_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self.holds = 0

    @property
    def holding(self) -> bool:
        return self._deadline is not None

    def hold(self) -> None:
        """Hold the collector off until :meth:`release` or the limit (idempotent)."""
        if self._deadline is not None or not gc.isenabled():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to bound the hold with: do not hold
        gc.disable()
        self.holds += 1
        self._deadline = loop.call_later(self.limit_seconds, self.release)

    def release(self) -> None:
        """Give the collector back (it collects at the next allocation if one is due)."""
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            deadline.cancel()
            gc.enable()


def freeze_startup_objects() -> None:
    """Collect once, then exempt everything alive now from later collections."""
    gc.collect()
    gc.freeze()


def unfreeze() -> None:
    """Hand the frozen objects back to the collector (the bot has stopped)."""
    gc.unfreeze()
