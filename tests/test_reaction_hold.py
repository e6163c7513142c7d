"""helpers.reaction_hold and its use by a live bot: the garbage collector and the log thread are
held off from an execution event until the bot parks again, never past the limit; a collector
someone else turned off stays off; the start-up freeze is undone when the bot stops."""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from exchanges.base import OrderSide
from execution.journal import OrdersCsv
from helpers import log_setup
from helpers.clock import LiveClock, SimulatedClock
from helpers.reaction_hold import ReactionHold
from helpers.trading_config import TradingConfig
from tests.mock_exchange import MockExchangeClient
from tests.test_journal_deferral import order as journal_order
from trading_bot import TradingBot


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    log_setup.resume_output()
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


async def test_hold_disables_until_release_and_is_idempotent() -> None:
    hold = ReactionHold()
    gc.enable()
    hold.hold()
    hold.hold()
    assert not gc.isenabled() and hold.holding and hold.holds == 1
    hold.release()
    assert gc.isenabled() and not hold.holding
    hold.release()  # a second release changes nothing
    assert gc.isenabled()


async def test_a_hold_never_outlasts_its_limit() -> None:
    hold = ReactionHold(limit_seconds=0)
    gc.enable()
    hold.hold()
    assert not gc.isenabled()
    released = asyncio.Event()
    asyncio.get_running_loop().call_later(0, released.set)  # due after the hold's own timer
    await released.wait()
    assert gc.isenabled() and not hold.holding


async def test_a_collector_turned_off_by_someone_else_stays_off() -> None:
    hold = ReactionHold()
    gc.disable()
    hold.hold()
    hold.release()
    assert not gc.isenabled()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def waiting_at_the_gate(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code is log_setup._OutputGate.wait.__code__:
            return True
        frame = frame.f_back
    return False


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.written.append(record.getMessage())


def message(text: str) -> logging.LogRecord:
    return logging.LogRecord("reaction-test", logging.WARNING, "", 0, text, None, None)


def test_the_log_thread_waits_at_a_closed_gate_and_writes_once_it_opens() -> None:
    recorder = Recorder()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = log_setup._GatedQueueListener(records, recorder)
    listener.start()
    thread = listener._thread
    assert thread is not None
    try:
        log_setup.pause_output(30)
        records.put(message("during the reaction"))
        assert wait_until(lambda: waiting_at_the_gate(thread))
        assert recorder.written == []
        log_setup.resume_output()
        assert wait_until(lambda: recorder.written == ["during the reaction"])
    finally:
        log_setup.resume_output()
        listener.stop()


def test_a_closed_gate_never_holds_the_log_thread_past_its_deadline() -> None:
    recorder = Recorder()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = log_setup._GatedQueueListener(records, recorder)
    listener.start()
    try:
        log_setup.pause_output(0.0)  # closed, and already past its deadline: never reopened here
        records.put(message("not held"))
        assert wait_until(lambda: recorder.written == ["not held"])
    finally:
        log_setup.resume_output()
        listener.stop()


async def test_a_hold_closes_the_log_gate_and_its_release_opens_it() -> None:
    hold = ReactionHold()
    hold.hold()
    assert not log_setup._output_gate._open.is_set()
    hold.release()
    assert log_setup._output_gate._open.is_set()


def test_no_hold_without_a_running_loop() -> None:
    hold = ReactionHold()
    gc.enable()
    hold.hold()
    assert gc.isenabled() and not hold.holding


def config() -> TradingConfig:
    return TradingConfig(
        ticker="BTC",
        exchange="mock",
        strategy="grid",
        quantity=Decimal("0.01"),
        strategy_params={"take_profit": Decimal("0.02"), "wait_time": 0.0, "max_orders": 1},
    )


async def test_a_live_bot_reacts_to_a_fill_with_the_collector_held_and_gives_it_back() -> None:
    gc.enable()
    clock = LiveClock()
    exchange = MockExchangeClient(config(), clock)
    exchange.set_prices("99", "101")
    bot = TradingBot(config(), clock=clock, exchange_client=exchange, write_files=False)
    seen_during_reactions: list[bool] = []
    submit = bot.execution.submit

    async def recording_submit(*args: object, **kwargs: object) -> object:
        seen_during_reactions.append(gc.isenabled())
        return await submit(*args, **kwargs)  # type: ignore[arg-type]

    bot.execution.submit = recording_submit  # type: ignore[method-assign]
    task = asyncio.ensure_future(bot.run())
    try:
        await asyncio.wait_for(bot.wait_until_idle(), 10)
        entry = exchange.last_placed
        assert entry.side is OrderSide.BUY
        exchange.fill(entry.order_id)
        for _ in range(1000):  # until the take-profit is placed (bounded: a regression fails)
            if len(exchange.placed) >= 2:
                break
            await asyncio.wait_for(bot.wait_until_idle(), 10)
            await asyncio.sleep(0)
        assert len(exchange.placed) == 2
        await asyncio.wait_for(bot.wait_until_idle(), 10)
        assert seen_during_reactions[-1] is False  # the take-profit left with the collector held
        assert gc.isenabled()  # parked again: given back
        assert gc.get_freeze_count() > 0  # start-up objects frozen while it runs
    finally:
        bot.request_shutdown("test done")
        await asyncio.wait_for(task, 10)
    assert gc.isenabled() and gc.get_freeze_count() == 0


async def test_a_simulated_time_bot_leaves_the_collector_alone() -> None:
    gc.enable()
    clock = SimulatedClock(1_700_000_000.0)
    bot = TradingBot(
        config(), clock=clock, exchange_client=MockExchangeClient(config(), clock), write_files=False
    )
    bot.expect_activity()
    assert gc.isenabled()


def test_stopping_the_logging_opens_the_gate_so_nothing_waits_out_a_reaction(tmp_path) -> None:
    path = log_setup.configure_logging(tmp_path, "paper_BTC_grid", "ERROR")
    log_setup.pause_output(300)  # a reaction that never ended (the bot died in it)
    logging.getLogger("reaction-test").warning("last words")
    stopping = threading.Thread(target=log_setup.stop_logging)
    stopping.start()
    stopping.join(60)  # a liveness bound far below the gate's 300 s
    assert not stopping.is_alive()
    assert "last words" in path.read_text()


def test_the_orders_csv_writer_waits_at_a_closed_gate_and_writes_once_it_opens(tmp_path) -> None:
    csv_file = OrdersCsv(tmp_path / "orders.csv")
    thread = csv_file._thread
    assert thread is not None
    header = (tmp_path / "orders.csv").read_text()
    try:
        log_setup.pause_output(30)
        order = journal_order("c1")
        # No loop: handed to the thread at once.
        csv_file.write(1.0, "placed", order, order.status, order.venue_order_id, {})
        assert wait_until(lambda: waiting_at_the_gate(thread))
        assert (tmp_path / "orders.csv").read_text() == header
        log_setup.resume_output()
        assert wait_until(lambda: "c1" in (tmp_path / "orders.csv").read_text())
    finally:
        log_setup.resume_output()
        csv_file.close()
