"""One long-lived thread that runs blocking calls for the event loop, with a lean hand-off.

Why not ``loop.run_in_executor``: its hand-off wraps a ``concurrent.futures.Future`` in an
asyncio future, takes the executor's locks and its idle-thread check on every call, and chains
two sets of callbacks on the way back. A venue's signer runs on the path from a fill to its
take-profit, where that machinery was measured at about 60 µs into the thread and 90 µs back
on a 2-core machine; a plain queue in and one ``call_soon_threadsafe`` out took 30-40 and
65-75 µs (``benchmarks/lighter_reaction_latency.py`` shows the hops as ``pre_sign`` and
``post_sign``). The way back is now a socket pair of the thread's own per loop
(:class:`_ReturnChannel`): the loop's reader callback reads it once and settles the futures
itself, where ``call_soon_threadsafe`` queued a callback, and the loop then drained its own
wake-up socket with two reads and an exception. Measured interleaved on the reaction
benchmark: ``post_sign`` 0.107-0.124 ms against 0.158-0.174.

Jobs run one at a time in submission order. A job whose awaiting task was cancelled still runs
to its end (as in an executor, a running call cannot be stopped); its result is dropped.

**Handing the GIL over.** A woken thread needs the GIL before it can start its call, and CPython
gives it up to the holder for as long as 5 ms (``sys.getswitchinterval``) while the holder keeps
running Python; the holder's short releases (a SQLite step, say) rarely last long enough for a
thread that is only just waking. So work the loop does right after a submit (the journal commit
beside a signature) can delay the job's start by the whole of that work: measured on the Lighter
reaction, the signature started after the ~270 µs commit in 80 % of reactions instead of beside
it while another process kept a core busy (in 2 % on a quiet machine).
``submit(..., handover=seconds)`` therefore waits, with the GIL released and at most that long,
until the thread has taken the job; an idle thread takes it within its wake-up time (some
50-100 µs here), after which the job's native call runs beside whatever the loop does next. It
is the one bounded wait on the loop's thread, for a hand-over of the GIL, and it is skipped when
the thread is still busy with an earlier job (it could not take the new one at once anyway).
"""

from __future__ import annotations

import asyncio
import collections
import queue
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _ReturnChannel:
    """Results from the worker to one event loop: a deque, and a socket pair the loop watches.

    The worker appends, then writes a byte; the loop's reader reads what is there in one call
    and settles every result queued (a byte read ahead of its result cannot happen: the result
    is queued first). The sockets close when the channel is collected: the loop's reader and
    every job in flight hold it, so its descriptors are never reused under a late write.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._receive, self._send = socket.socketpair()
        self._receive.setblocking(False)
        self._send.setblocking(False)
        self._results: collections.deque[tuple[Callable[..., None], asyncio.Future[Any], Any]] = (
            collections.deque()
        )
        loop.add_reader(self._receive.fileno(), self._drain)
        weakref.finalize(self, _close_sockets, self._receive, self._send)

    def put(self, settle: Callable[..., None], future: asyncio.Future[Any], outcome: Any) -> None:
        """In the worker thread."""
        self._results.append((settle, future, outcome))
        try:
            self._send.send(b"\0")
        except OSError:  # full: a wake-up is pending anyway; closed: nobody is left to tell
            pass

    def _drain(self) -> None:
        """On the loop."""
        try:
            self._receive.recv(4096)
        except OSError:  # woken with nothing to read (another drain took the bytes)
            pass
        results = self._results
        while results:
            settle, future, outcome = results.popleft()
            settle(future, outcome)


def _close_sockets(*sockets: socket.socket) -> None:
    for each in sockets:
        each.close()


_Job = tuple[_ReturnChannel, "asyncio.Future[Any]", Callable[[], Any], "threading.Lock | None"]


class WorkerThread:
    """A named daemon thread fed by :meth:`run`; :meth:`stop` lets it finish its queue and end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: Jobs submitted (counted by the loop's thread) and finished (by the worker's): each
        #: written by one thread, so equal means idle without a lock (a hand-over needs idle).
        self._submitted = 0
        self._finished = 0
        #: Hand-overs that ran out of time (the thread did not take the job within the limit).
        self.late_handovers = 0
        self._channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ReturnChannel] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread now (the first :meth:`run` does it otherwise), so the first call on
        a latency-sensitive path does not pay for creating it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()

    def submit(self, call: Callable[[], T], *, handover: float = 0.0) -> asyncio.Future[T]:
        """Queue ``call`` now; the returned future gets its result or its exception.

        ``handover`` > 0: return only once the thread has taken the job (GIL released while
        waiting), or after ``handover`` seconds at most; see the module's docstring."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        channel = self._channels.get(loop)
        if channel is None:
            channel = self._channels[loop] = _ReturnChannel(loop)
        self.start()
        taken = threading.Lock() if handover > 0 and self._submitted == self._finished else None
        self._submitted += 1
        if taken is None:
            self._jobs.put((channel, future, call, None))
            return future
        taken.acquire()
        self._jobs.put((channel, future, call, taken))
        if not taken.acquire(timeout=handover):
            self.late_handovers += 1
        return future

    async def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` in the thread and wait for it."""
        return await self.submit(call)

    def stop(self) -> None:
        """Let the thread end after the jobs already queued; a later :meth:`run` starts a new one."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None
            self._jobs = queue.SimpleQueue()

    def _work(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            channel, future, call, taken = job
            if taken is not None:
                taken.release()
            try:
                result = call()
            except BaseException as exc:  # every outcome, KeyboardInterrupt too, is the caller's
                self._finished += 1
                channel.put(_settle_error, future, exc)
            else:
                self._finished += 1
                channel.put(_settle, future, result)
            del job, channel, future, call, taken


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _settle_error(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
