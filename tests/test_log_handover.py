"""helpers.log_setup: INFO records made on an event loop reach the listener in batches, in order,
after the reaction they were made in; warnings at once; nothing held is lost at shutdown."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from pathlib import Path

import pytest

from helpers import log_setup


def queued(records: queue.SimpleQueue[logging.LogRecord]) -> list[str]:
    out = []
    while not records.empty():
        out.append(records.get_nowait().getMessage())
    return out


@pytest.fixture
def handler_and_queue() -> tuple[logging.handlers.QueueHandler, queue.SimpleQueue[logging.LogRecord]]:
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    return log_setup._DetachedRecordQueueHandler(records), records


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("handover-test", level, __file__, 1, message, None, None)


async def test_info_on_the_loop_is_held_then_handed_over_in_order(
    handler_and_queue: tuple[logging.Handler, queue.SimpleQueue[logging.LogRecord]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, records = handler_and_queue
    monkeypatch.setattr(log_setup, "LOG_HANDOVER_SECONDS", 0)
    handler.handle(record(logging.INFO, "fill"))
    handler.handle(record(logging.DEBUG, "detail"))
    assert queued(records) == []  # nothing wakes the listener inside the reaction
    handed_over = asyncio.Event()
    asyncio.get_running_loop().call_soon(handed_over.set)  # scheduled after the hand-over
    await handed_over.wait()
    assert queued(records) == ["fill", "detail"]


async def test_a_warning_goes_at_once_after_what_was_held(
    handler_and_queue: tuple[logging.Handler, queue.SimpleQueue[logging.LogRecord]],
) -> None:
    handler, records = handler_and_queue
    handler.handle(record(logging.INFO, "first"))
    handler.handle(record(logging.WARNING, "trouble"))
    assert queued(records) == ["first", "trouble"]
    handler.handle(record(logging.INFO, "after"))
    assert queued(records) == []


def test_records_off_any_loop_go_at_once(
    handler_and_queue: tuple[logging.Handler, queue.SimpleQueue[logging.LogRecord]],
) -> None:
    handler, records = handler_and_queue
    handler.handle(record(logging.INFO, "main thread"))
    worker = threading.Thread(target=handler.handle, args=(record(logging.DEBUG, "worker thread"),))
    worker.start()
    worker.join()
    assert queued(records) == ["main thread", "worker thread"]


def test_each_loop_thread_holds_its_own_records(
    handler_and_queue: tuple[logging.Handler, queue.SimpleQueue[logging.LogRecord]],
) -> None:
    handler, records = handler_and_queue

    async def log(name: str) -> None:
        handler.handle(record(logging.INFO, name))

    threads = [threading.Thread(target=asyncio.run, args=(log(f"loop {i}"),)) for i in range(2)]
    for thread in threads:
        thread.start()
        thread.join()
    assert queued(records) == []  # both loops ended before their hand-over came
    handler.flush()
    assert sorted(queued(records)) == ["loop 0", "loop 1"]


def test_stop_logging_writes_what_an_ended_loop_still_held(tmp_path: Path) -> None:
    path = log_setup.configure_logging(tmp_path, "paper_BTC_grid", "ERROR")
    log = logging.getLogger("handover-test")

    async def trade() -> None:
        log.info("last fill before the loop ended")

    try:
        asyncio.run(trade())
    finally:
        log_setup.stop_logging()
    assert "last fill before the loop ended" in path.read_text()


def test_a_record_sent_at_once_is_a_copy_so_redacting_it_cannot_race_later_handlers(
    handler_and_queue: tuple[logging.Handler, queue.SimpleQueue[logging.LogRecord]],
) -> None:
    handler, records = handler_and_queue
    original = logging.LogRecord("handover-test", logging.WARNING, __file__, 1, "key %s", ("abc",), None)
    handler.handle(original)
    sent = records.get_nowait()
    assert sent is not original and sent.getMessage() == "key abc"
    sent.msg, sent.args = "key ***", None  # what the log thread's redaction does
    assert original.getMessage() == "key abc"  # the notifier, after this handler, still reads it
