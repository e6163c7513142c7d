"""helpers.worker_thread: results, errors, order, cancellation and restart of the signing thread."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest

from helpers.worker_thread import WorkerThread


async def test_runs_off_the_loop_thread_and_returns_the_result() -> None:
    worker = WorkerThread("test-worker")
    try:
        name = await worker.run(lambda: threading.current_thread().name)
        assert name == "test-worker"
        assert threading.current_thread().name != name
    finally:
        worker.stop()


async def test_an_exception_reaches_the_caller_and_the_thread_lives_on() -> None:
    worker = WorkerThread("test-worker")

    def boom() -> int:
        raise ValueError("signer refused")

    try:
        with pytest.raises(ValueError, match="signer refused"):
            await worker.run(boom)
        assert await worker.run(lambda: 7) == 7
        assert worker.running
    finally:
        worker.stop()


async def test_jobs_run_one_at_a_time_in_submission_order() -> None:
    worker = WorkerThread("test-worker")
    seen: list[int] = []
    inside = 0
    overlaps = 0
    lock = threading.Lock()

    threads: set[int] = set()

    def job(i: int) -> int:
        nonlocal inside, overlaps
        with lock:
            inside += 1
            overlaps += inside > 1
        threads.add(threading.get_ident())
        seen.append(i)
        with lock:
            inside -= 1
        return i

    try:
        futures = [worker.submit(lambda i=i: job(i)) for i in range(200)]
        assert await asyncio.gather(*futures) == list(range(200))
        assert seen == list(range(200))
        assert overlaps == 0
        assert len(threads) == 1
    finally:
        worker.stop()


async def test_a_cancelled_wait_drops_the_result_and_the_next_job_still_runs() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    finished = threading.Event()

    def slow() -> str:
        release.wait(5)
        finished.set()
        return "late"

    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        waiting = asyncio.ensure_future(worker.run(slow))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        assert await worker.run(lambda: "next") == "next"
        assert finished.is_set()  # the cancelled job ran to its end before the next one
        assert loop_errors == []  # its late result was dropped, not set on a cancelled future
    finally:
        worker.stop()


async def test_stop_ends_the_thread_and_a_later_run_starts_a_new_one() -> None:
    worker = WorkerThread("test-worker")
    first = await worker.run(threading.current_thread)
    worker.stop()
    assert not worker.running
    first.join(5)
    assert not first.is_alive()
    second = await worker.run(threading.current_thread)
    try:
        assert worker.running
        assert second is not first and second.is_alive()
    finally:
        worker.stop()


def test_a_result_for_a_closed_loop_is_dropped_and_the_thread_serves_the_next_caller() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()

    async def submit_and_leave() -> None:
        worker.submit(lambda: release.wait(5))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(submit_and_leave())
    loop.close()
    release.set()  # the job ends now, and its result has no loop to go to

    async def next_caller() -> int:
        return await asyncio.wait_for(worker.run(lambda: 2), 5)

    try:
        assert asyncio.run(next_caller()) == 2
    finally:
        worker.stop()


async def test_a_handover_returns_once_the_thread_has_taken_the_job() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    try:
        await worker.run(lambda: None)  # the thread is up and idle, as a connected client's is
        future = worker.submit(lambda: release.wait(5), handover=5.0)
        # Returned without awaiting anything: the thread already holds the job (it is no longer
        # queued), so work the caller does next runs beside it.
        assert worker._jobs.empty()
        assert worker.late_handovers == 0
        release.set()
        assert await future is True
    finally:
        release.set()
        worker.stop()


async def test_a_busy_thread_is_not_waited_for() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    try:
        first = worker.submit(lambda: release.wait(5))
        second = worker.submit(lambda: "second", handover=5.0)
        # The thread is still on the first job and cannot take this one: no wait, none late.
        assert not worker._jobs.empty()
        assert worker.late_handovers == 0
        release.set()
        assert await first is True
        assert await second == "second"
        # Idle again: the next hand-over waits for the thread as usual.
        third = worker.submit(lambda: "third", handover=5.0)
        assert worker._jobs.empty()
        assert await third == "third"
    finally:
        release.set()
        worker.stop()


async def test_a_handover_the_thread_never_takes_gives_up_at_its_limit() -> None:
    worker = WorkerThread("test-worker")
    await worker.run(lambda: None)
    serving = worker._jobs
    worker._jobs = unread = queue.SimpleQueue()  # the thread keeps reading the old queue
    try:
        future = worker.submit(lambda: "never", handover=0.01)
        assert worker.late_handovers == 1
        assert not future.done()
        assert unread.qsize() == 1
    finally:
        serving.put(None)
