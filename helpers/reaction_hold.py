"""Keeping background work out of the reaction to a fill: the garbage collector and the log thread.

Both take the GIL from the event loop at moments of their own choosing.

* CPython's cyclic garbage collector runs whenever allocations pass a threshold, wherever the
  loop happens to be; a fill's reaction allocates enough to trip it often. In the Lighter
  reaction benchmark (640 fills in 6.6 s), 271 young-generation collections took 125 µs each at
  the median, 25 middle-generation ones 1.3 ms and two full ones 46 ms.
* The log thread renders and writes each record in about 25 µs of Python; a grid cycle logs
  about ten lines. Records made on the loop already reach it in batches after the reaction
  (``helpers.log_setup``), but a batch being written when the next fill arrives still took the
  GIL from that reaction, again and again between its writes.

So a live bot holds both off from the moment an execution event wakes it until it parks again:
the collector is disabled, the log thread waits between records (and the orders-CSV writer
between rows: a thread that wants the GIL gets it from the loop within the interpreter's switch
interval, 5 ms, and then keeps it for its Python), and the lines the reaction
logs through :func:`helpers.log_setup.log_after_reaction` are made only when it is over. The
hold is bounded by ``limit_seconds`` (a reaction that never ends cannot stop collection or
logging), and the log thread never waits longer than that either, whatever happens to the bot.

At start-up the bot also moves what it loaded (modules, SDKs, markets) out of the collector's
sight with :func:`gc.freeze`: a full collection then walks only what the run itself made.
Simulated-time runs (backtests, sweeps) use none of this: they make no reactions worth holding
for, and a sweep runs many bots in one process, whose objects must stay collectable.
"""

from __future__ import annotations

import asyncio
import gc

from helpers import log_setup

#: Longest hold: a reaction takes a few milliseconds; a hold still on after this is released.
DEFAULT_LIMIT_SECONDS = 0.05


class ReactionHold:
    """Hold the collector and the log thread off for one reaction at a time, never past the limit.

    A collector already disabled by someone else (``gc.disable()`` in user code, a test) is
    left as it is: :meth:`release` never enables what :meth:`hold` did not disable.
    """

    def __init__(self, limit_seconds: float = DEFAULT_LIMIT_SECONDS) -> None:
        self.limit_seconds = limit_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._collector_held = False
        self.holds = 0

    @property
    def holding(self) -> bool:
        return self._deadline is not None

    def hold(self) -> None:
        """Hold off until :meth:`release` or the limit (idempotent)."""
        if self._deadline is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to bound the hold with: do not hold
        self._collector_held = gc.isenabled()
        if self._collector_held:
            gc.disable()
        log_setup.pause_output(self.limit_seconds)
        self.holds += 1
        self._deadline = loop.call_later(self.limit_seconds, self.release)

    def release(self) -> None:
        """Give both back (the collector collects at the next allocation if one is due)."""
        deadline, self._deadline = self._deadline, None
        if deadline is None:
            return
        deadline.cancel()
        log_setup.resume_output()
        if self._collector_held:
            self._collector_held = False
            gc.enable()


def freeze_startup_objects() -> None:
    """Collect once, then exempt everything alive now from later collections."""
    gc.collect()
    gc.freeze()


def unfreeze() -> None:
    """Hand the frozen objects back to the collector (the bot has stopped)."""
    gc.unfreeze()
