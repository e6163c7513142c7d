"""helpers.collector_hold and its use by a live bot: the garbage collector is held off from an
execution event until the bot parks again, never past the limit, never when someone else
turned it off, and the start-up freeze is undone when the bot stops."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from decimal import Decimal

import pytest

from exchanges.base import OrderSide
from helpers.clock import LiveClock, SimulatedClock
from helpers.collector_hold import CollectorHold
from helpers.trading_config import TradingConfig
from tests.mock_exchange import MockExchangeClient
from trading_bot import TradingBot


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


async def test_hold_disables_until_release_and_is_idempotent() -> None:
    hold = CollectorHold()
    gc.enable()
    hold.hold()
    hold.hold()
    assert not gc.isenabled() and hold.holding and hold.holds == 1
    hold.release()
    assert gc.isenabled() and not hold.holding
    hold.release()  # a second release changes nothing
    assert gc.isenabled()


async def test_a_hold_never_outlasts_its_limit() -> None:
    hold = CollectorHold(limit_seconds=0)
    gc.enable()
    hold.hold()
    assert not gc.isenabled()
    released = asyncio.Event()
    asyncio.get_running_loop().call_later(0, released.set)  # due after the hold's own timer
    await released.wait()
    assert gc.isenabled() and not hold.holding


async def test_a_collector_turned_off_by_someone_else_stays_off() -> None:
    hold = CollectorHold()
    gc.disable()
    hold.hold()
    assert not hold.holding and hold.holds == 0
    hold.release()
    assert not gc.isenabled()


def test_no_hold_without_a_running_loop() -> None:
    hold = CollectorHold()
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
        while len(exchange.placed) < 2:  # the take-profit
            await asyncio.wait_for(bot.wait_until_idle(), 10)
            await asyncio.sleep(0)
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
