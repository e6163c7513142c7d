"""The grid strategy, rule by rule, driven through a mock venue the way the bot drives it.

Prices: the BTC mock contract has a 0.1 tick and a 0.001 size step. Unless a test says
otherwise the book is 59990.0 / 60000.1, so a buy entry rests at 60000.0 (one tick inside the
ask) and its take-profit for 0.02 % is 60000.0 x 1.0002 = 60012.0.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from exchanges.base import (
    ContractInfo,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderBelowMinimum,
    OrderSide,
    OrderStatus,
    OrderType,
    PostOnlyRejected,
    RequestTimeout,
)
from execution.engine import LOOKUP_MIN_AGE
from helpers.clock import SimulatedClock
from helpers.trading_config import TradingConfig
from strategies.base_strategy import (
    OrderRole,
    ParameterError,
    StrategyAction,
    resolve_parameters,
)
from strategies.factory import StrategyFactory
from strategies.grid_strategy import GridStrategy
from tests.mock_exchange import MockExchangeClient, default_contract
from tests.strategy_driver import StrategyDriver

START = 1_000.0
BUY, SELL = OrderSide.BUY, OrderSide.SELL
D = Decimal


def make_session(
    quantity: str = "0.01",
    contract: ContractInfo | None = None,
    bid: str = "59990.0",
    ask: str = "60000.1",
    **params: object,
) -> StrategyDriver:
    clock = SimulatedClock(START)
    config = TradingConfig(
        ticker="BTC",
        exchange="mock",
        strategy="grid",
        quantity=D(quantity),
        strategy_params={"wait_time": "100", **params},
    )
    exchange = MockExchangeClient(config, clock, contract=contract, best_bid=bid, best_ask=ask)
    strategy = StrategyFactory.create_strategy("grid", config, exchange, clock)
    assert isinstance(strategy, GridStrategy)
    return StrategyDriver(strategy, exchange, clock)


async def started(**kwargs: object) -> StrategyDriver:
    """A started session with its first entry resting."""
    driver = make_session(**kwargs)  # type: ignore[arg-type]
    await driver.start()
    await driver.advance(driver.strategy.seconds_until_next_decision() or 0)
    assert driver.exchange.open_orders(driver.strategy.direction), "the first entry should rest"
    return driver


def entry_order(driver: StrategyDriver):
    (entry,) = driver.exchange.open_orders(driver.strategy.direction)
    return entry


def awaiting_close(driver: StrategyDriver) -> Decimal:
    """Filled size the strategy still has to cover with a take-profit."""
    return D(driver.strategy.status_summary().get("filled, awaiting take-profit", "0"))


def placed_since(driver: StrategyDriver, count: int):
    return driver.exchange.placed[count:]


# -- parameters --------------------------------------------------------------------------------


def test_parameters_have_defaults_units_and_flags():
    specs = {spec.name: spec for spec in GridStrategy.PARAMETERS}
    defaults = resolve_parameters(GridStrategy.PARAMETERS, {})
    assert defaults == {
        "take_profit": D("0.02"),
        "direction": BUY,
        "max_orders": 40,
        "wait_time": 450.0,
        "grid_step": D("-100"),
        "stop_price": None,
        "pause_price": None,
        "boost": False,
        "random_timing": False,
        "timing_range": D("0.5"),
        "dynamic_profit": False,
        "profit_range": D("0.5"),
        "requote_ticks": 10,
        "seed": 0,
    }
    assert {name for name, spec in specs.items() if spec.is_flag} == {
        "boost",
        "random_timing",
        "dynamic_profit",
    }
    assert "0.02 means 0.02 percent" in specs["take_profit"].help
    # argparse formats help with %, so the texts avoid a bare percent sign
    assert not any("%" in spec.help for spec in GridStrategy.PARAMETERS)
    assert "PERCENT" in specs["grid_step"].help
    assert "SECONDS" in specs["wait_time"].help
    assert "FRACTION" in specs["timing_range"].help and "FRACTION" in specs["profit_range"].help
    assert "TICKS" in specs["requote_ticks"].help
    parsed = resolve_parameters(
        GridStrategy.PARAMETERS, {"take_profit": "0.008", "direction": "SELL", "stop_price": "59000"}
    )
    assert parsed["take_profit"] == D("0.008") and parsed["direction"] is SELL
    assert parsed["stop_price"] == D("59000")


@pytest.mark.parametrize(
    "name, value",
    [
        ("take_profit", "0"),
        ("direction", "up"),
        ("max_orders", "0"),
        ("wait_time", "-1"),
        ("timing_range", "1.5"),
        ("profit_range", "-0.1"),
        ("requote_ticks", "0"),
        ("stop_price", "-5"),
    ],
)
def test_invalid_parameters_are_refused_by_name(name, value):
    with pytest.raises(ParameterError, match=name):
        resolve_parameters(GridStrategy.PARAMETERS, {name: value})


# -- entries -----------------------------------------------------------------------------------


async def test_buy_entry_rests_post_only_one_tick_inside_the_best_ask():
    driver = await started()
    (order,) = driver.exchange.placed
    assert (order.side, order.order_type, order.price, order.quantity) == (
        BUY,
        OrderType.LIMIT,
        D("60000.0"),
        D("0.01"),
    )
    assert order.post_only and not order.reduce_only
    assert driver.results[-1].orders[0].role is OrderRole.ENTRY


async def test_sell_entry_rests_one_tick_inside_the_best_bid():
    driver = await started(direction="sell")
    (order,) = driver.exchange.placed
    assert (order.side, order.price, order.quantity) == (SELL, D("59990.1"), D("0.01"))
    assert order.post_only


async def test_quantity_is_rounded_down_to_the_size_step():
    driver = await started(quantity="0.0109")
    assert driver.exchange.last_placed.quantity == D("0.010")


async def test_quantity_below_min_size_is_refused_with_a_clear_stop(caplog):
    contract = ContractInfo("BTC", "BTC-PERP", D("0.1"), D("0.001"), min_size=D("0.01"))
    driver = make_session(quantity="0.005", contract=contract)
    with caplog.at_level(logging.ERROR, logger="strategies.grid_strategy"):
        await driver.start()
    await driver.settle()
    assert driver.stop_message is not None
    assert "quantity 0.005 is below the minimum order size 0.01" in driver.stop_message
    assert driver.exchange.placed == []
    assert any("refusing to trade" in record.message for record in caplog.records)


async def test_quantity_below_min_notional_is_refused():
    contract = ContractInfo("BTC", "BTC-PERP", D("0.1"), D("0.001"), min_notional=D("1000"))
    driver = make_session(quantity="0.01", contract=contract)
    await driver.start()
    await driver.settle()
    assert driver.stop_message is not None and "minimum notional 1000" in driver.stop_message
    assert driver.exchange.placed == []


# -- take-profits ------------------------------------------------------------------------------


async def test_full_fill_places_the_take_profit_on_the_very_next_decision():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id, price="60000.0")
    result = await driver.step()
    assert result is not None and result.action is StrategyAction.PLACE_ORDERS
    (params,) = result.orders
    assert params.role is OrderRole.EXIT and params.post_only and params.reduce_only
    tp = driver.exchange.last_placed
    assert (tp.side, tp.order_type, tp.quantity, tp.price) == (SELL, OrderType.LIMIT, D("0.01"), D("60012.0"))
    assert tp.post_only and tp.reduce_only


async def test_buy_take_profit_rounds_up_away_from_the_fill():
    driver = await started(ask="60000.4")  # entry at 60000.3
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    # 60000.3 x 1.0002 = 60012.30006: nearest tick 60012.3, away from the fill 60012.4
    assert driver.exchange.last_placed.price == D("60012.4")


async def test_sell_take_profit_rounds_down_away_from_the_fill():
    driver = await started(direction="sell", bid="60000.2", ask="60010.0")  # entry at 60000.3
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    tp = driver.exchange.last_placed
    # 60000.3 x 0.9998 = 59988.29994: nearest tick 59988.3, away from the fill 59988.2
    assert (tp.side, tp.price, tp.quantity) == (BUY, D("59988.2"), D("0.01"))
    assert tp.reduce_only and tp.post_only


async def test_partial_fills_of_one_entry_end_up_in_one_take_profit():
    driver = await started()
    entry_id = entry_order(driver).order_id
    count = len(driver.exchange.placed)
    driver.exchange.fill(entry_id, size="0.004")
    await driver.settle()
    assert placed_since(driver, count) == []  # the entry is still live: its fills wait for it
    assert awaiting_close(driver) == D("0.004")
    assert driver.exchange.orders[entry_id].status is OrderStatus.PARTIALLY_FILLED
    driver.exchange.fill(entry_id, size="0.006", price="59999.0")
    await driver.settle()
    (tp,) = placed_since(driver, count)
    # one lot: (0.004 x 60000 + 0.006 x 59999) / 0.01 = 59999.4 -> 60011.39988 -> up 60011.4
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.010"), D("60011.4"))
    assert driver.strategy.active_take_profit_count() == 1
    assert awaiting_close(driver) == 0


async def test_partial_fill_below_min_size_joins_the_next_take_profit():
    contract = ContractInfo("BTC", "BTC-PERP", D("0.1"), D("0.001"), min_size=D("0.005"))
    driver = await started(contract=contract)
    entry_id = entry_order(driver).order_id
    count = len(driver.exchange.placed)
    driver.exchange.fill(entry_id, size="0.003")
    await driver.settle()
    driver.exchange.set_prices("60100.0", "60100.1")  # the market leaves the entry: cancelled
    await driver.settle()
    assert driver.exchange.cancelled == [entry_id]
    assert [p.side for p in placed_since(driver, count)] == []  # 0.003 is below the minimum
    assert awaiting_close(driver) == D("0.003")
    assert driver.strategy.seconds_until_next_decision() == 25.0  # partial fill + cancel cools down
    await driver.advance(25)
    (entry,) = placed_since(driver, count)
    assert (entry.side, entry.price) == (BUY, D("60100.0"))
    driver.exchange.set_prices("60070.0", "60070.1")
    driver.exchange.fill(entry.order_id)
    await driver.settle()
    tp = driver.exchange.last_placed
    # (0.003 x 60000 + 0.01 x 60100) / 0.013 = 60076.923... -> x 1.0002 = 60088.93 -> up 60089.0
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.013"), D("60089.0"))
    assert awaiting_close(driver) == 0


async def test_partial_fill_of_an_expired_entry_gets_its_take_profit():
    driver = await started()
    entry_id = entry_order(driver).order_id
    count = len(driver.exchange.placed)
    driver.exchange.fill(entry_id, size="0.003")
    await driver.settle()
    assert placed_since(driver, count) == []
    driver.exchange.end_order(entry_id, OrderStatus.EXPIRED)
    await driver.step()
    tp = driver.exchange.last_placed
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.003"), D("60012.0"))


async def test_post_only_rejected_take_profit_moves_to_the_touch_never_below_target():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    driver.exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    await driver.step()
    ((refused, error),) = driver.failures
    assert refused.price == D("60012.0") and isinstance(error, PostOnlyRejected)
    assert awaiting_close(driver) == D("0.01")
    driver.exchange.set_prices("60020.0", "60020.5")
    await driver.settle()
    tp = driver.exchange.last_placed
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.01"), D("60020.5"))
    assert tp.post_only and tp.reduce_only
    assert awaiting_close(driver) == 0


async def test_post_only_retry_on_a_stale_book_steps_one_tick_beyond_the_refused_price():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    driver.exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    driver.exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    await driver.settle()
    assert [order.price for order, _ in driver.failures] == [D("60012.0"), D("60012.1")]
    assert driver.exchange.last_placed.price == D("60012.2")
    assert driver.exchange.last_placed.quantity == D("0.01")


async def test_take_profit_goes_to_the_touch_when_the_market_is_already_beyond_target():
    driver = await started(direction="sell")  # entry at 59990.1
    driver.exchange.fill(entry_order(driver).order_id, price="60000.0")
    driver.exchange.set_prices("59980.0", "59981.0")  # target 59988.0 is above the ask
    await driver.settle()
    tp = driver.exchange.last_placed
    assert (tp.side, tp.price) == (BUY, D("59980.0"))
    assert driver.failures == []


async def test_take_profit_refused_below_minimum_joins_the_next_fill():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    driver.exchange.reject_next("place_limit_order", OrderBelowMinimum("too small"))
    await driver.settle()
    assert awaiting_close(driver) == D("0.01")
    await driver.advance(25)
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    tp = driver.exchange.last_placed
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.02"), D("60012.0"))


async def test_boost_closes_each_fill_with_a_reduce_only_market_order():
    driver = await started(boost="true")
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    close = driver.exchange.last_placed
    assert (close.side, close.order_type, close.quantity) == (SELL, OrderType.MARKET, D("0.01"))
    assert close.reduce_only and not close.post_only
    assert close.max_slippage_pct == driver.strategy.config.max_slippage_pct
    summary = driver.strategy.status_summary()
    assert summary["completed cycles (this run)"] == "1"
    assert summary["active take-profits"] == "0 of max 40"
    assert driver.engine.ledger.realized_pnl == D("-0.1")  # sold at the 59990.0 bid
    assert driver.exchange.position == 0
    # A market close is not a take-profit fill: the cool-down after the entry still runs.
    assert driver.strategy.seconds_until_next_decision() == 25.0


# -- cool-down ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "adopted, startup_cooldown, cooldown_after_fill",
    [
        (1, 25.0, 50.0),  # n=2 of 12: 1/6 -> wait/2
        (3, 50.0, 100.0),  # n=4 of 12: 1/3 -> wait
        (7, 100.0, 200.0),  # n=8 of 12: 2/3 -> 2 x wait
    ],
)
async def test_cooldown_band_follows_the_resting_take_profit_count(
    adopted, startup_cooldown, cooldown_after_fill
):
    driver = make_session(max_orders="12")
    for i in range(adopted):
        driver.exchange.seed_order(SELL, "0.01", D("60100.0") + i)
    await driver.start()
    await driver.settle()  # the bot asks after a decision: the time it stays valid comes from it
    assert driver.strategy.seconds_until_next_decision() == startup_cooldown
    await driver.advance(startup_cooldown - 0.5)
    assert driver.exchange.placed == []
    await driver.advance(0.5)
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    assert driver.strategy.active_take_profit_count() == adopted + 1
    assert driver.strategy.seconds_until_next_decision() == cooldown_after_fill
    count = len(driver.exchange.placed)
    await driver.advance(cooldown_after_fill - 0.5)
    assert placed_since(driver, count) == []
    await driver.advance(0.5)
    (entry,) = placed_since(driver, count)
    assert entry.side is BUY


async def test_fresh_start_enters_at_once_then_cools_down_by_the_lowest_band():
    driver = make_session(max_orders="12")
    await driver.start()
    assert not driver.strategy.seconds_until_next_decision()
    await driver.step()
    (entry,) = driver.exchange.placed
    assert entry.side is BUY
    driver.exchange.fill(entry.order_id)
    await driver.settle()
    assert driver.strategy.seconds_until_next_decision() == 25.0  # n=1 of 12: below 1/6 -> wait/4


async def test_execute_reuses_should_executes_decision_while_the_clock_moves_inside_its_band(monkeypatch):
    """A live clock reads later in execute_strategy than in should_execute: the decision made in
    should_execute still stands (same market data, same state, before its band's end) and is
    not worked out again; once the clock passes the band's end it is."""
    driver = make_session(max_orders="12")
    await driver.start()
    await driver.step()
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.deliver_updates()
    strategy = driver.strategy
    decisions = []
    decide = strategy._decide

    def counted(market):
        decision = decide(market)
        decisions.append(decision)
        return decision

    monkeypatch.setattr(strategy, "_decide", counted)
    market = await strategy.get_market_data()
    assert await strategy.should_execute(market)
    strategy.entries_blocked = "risk pause"  # the state moved in between: decided again
    await strategy.execute_strategy(market)
    assert len(decisions) == 2
    strategy.entries_blocked = None
    decisions.clear()
    assert await strategy.should_execute(market)  # the take-profit is due
    driver.clock.advance_to(driver.clock.now() + 0.001)
    result = await strategy.execute_strategy(market)
    assert len(decisions) == 1 and result is decisions[0].result
    (take_profit,) = result.orders
    assert take_profit.role is OrderRole.EXIT
    await driver.carry_out(result)

    # Cooling down after the fill: "no entry yet" stands until the cool-down's end, not after.
    market = await strategy.get_market_data()
    decisions.clear()
    assert not await strategy.should_execute(market)
    until = decisions[0].band.until
    assert until < float("inf")
    driver.clock.advance_to(until)
    result = await strategy.execute_strategy(market)
    assert len(decisions) == 2  # past the band's end: decided again, and now it enters
    (entry,) = result.orders
    assert entry.role is OrderRole.ENTRY


async def test_take_profit_fill_resets_the_cooldown():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    tp_id = driver.exchange.last_placed.order_id
    assert driver.strategy.seconds_until_next_decision() == 25.0
    await driver.advance(5)
    count = len(driver.exchange.placed)
    driver.exchange.fill(tp_id)
    await driver.settle()
    (entry,) = placed_since(driver, count)
    assert (entry.side, entry.price) == (BUY, D("60000.0"))
    summary = driver.strategy.status_summary()
    assert summary["completed cycles (this run)"] == "1"
    assert driver.engine.ledger.realized_pnl == D("0.12")
    assert summary["active take-profits"] == "0 of max 40"


async def test_random_timing_scales_the_cooldown_reproducibly():
    cooldowns = []
    for seed in ("7", "7", "8"):
        driver = make_session(random_timing="true", timing_range="0.5", seed=seed)
        driver.exchange.seed_order(SELL, "0.01", D("60100.0"))
        await driver.start()
        await driver.settle()
        cooldowns.append(driver.strategy.seconds_until_next_decision())
    assert all(12.5 <= value <= 37.5 for value in cooldowns)
    assert cooldowns[0] == cooldowns[1] != cooldowns[2]
    assert 25.0 not in cooldowns


async def test_dynamic_profit_draws_the_take_profit_within_its_range():
    prices = []
    for seed in ("3", "3"):
        driver = await started(dynamic_profit="true", profit_range="0.5", seed=seed)
        driver.exchange.fill(entry_order(driver).order_id)
        await driver.settle()
        prices.append(driver.exchange.last_placed.price)
    # take-profit within 0.01 % .. 0.03 % of 60000.0
    assert D("60006.0") <= prices[0] <= D("60018.0")
    assert prices[0] == prices[1] != D("60012.0")
    assert prices[0] % D("0.1") == 0


# -- limits on new entries ---------------------------------------------------------------------


async def test_max_orders_blocks_new_entries_until_a_take_profit_fills():
    driver = make_session(max_orders="2")
    tp_a = driver.exchange.seed_order(SELL, "0.01", "60100.0")
    driver.exchange.seed_order(SELL, "0.01", "60200.0")
    await driver.start()
    assert driver.strategy.seconds_until_next_decision() is None
    await driver.advance(10_000)
    assert driver.exchange.placed == []
    assert driver.strategy.status_summary()["state"] == "max orders reached"
    driver.exchange.fill(tp_a.order_id)
    await driver.settle()
    (entry,) = driver.exchange.placed
    assert entry.side is BUY


async def test_grid_step_blocks_entries_too_close_to_a_resting_take_profit_and_logs_once(caplog):
    driver = make_session(grid_step="0.05")
    driver.exchange.seed_order(SELL, "0.01", "60012.0")
    await driver.start()
    with caplog.at_level(logging.INFO, logger="strategies.grid_strategy"):
        await driver.advance(100)
        driver.exchange.set_prices("59990.0", "60000.2")
        await driver.settle()
        driver.exchange.set_prices("59970.0", "59980.1")  # TP 59992.0: 0.033 % from 60012.0
        await driver.settle()
    assert driver.exchange.placed == []
    holds = [r.message for r in caplog.records if "grid_step" in r.message]
    assert len(holds) == 1 and "60012.0" in holds[0]
    driver.exchange.set_prices("59950.0", "59960.1")  # entry 59960.0 -> TP 59972.0: 0.067 % away
    await driver.settle()
    (entry,) = driver.exchange.placed
    assert (entry.side, entry.price) == (BUY, D("59960.0"))


async def test_grid_step_disabled_when_negative_allows_stacking():
    driver = make_session()
    driver.exchange.seed_order(SELL, "0.01", "60012.0")
    await driver.start()
    await driver.advance(100)
    assert driver.exchange.last_placed.price == D("60000.0")


async def test_buy_grid_stops_when_the_ask_reaches_the_stop_price():
    driver = await started(stop_price="60100")
    driver.exchange.set_prices("60050.0", "60099.9")
    await driver.settle()
    assert driver.stop_message is None
    driver.exchange.set_prices("60090.0", "60100.0")
    results = await driver.settle()
    assert results[-1].action is StrategyAction.STOP
    assert driver.stop_message == "stop price reached: best ask 60100.0 >= stop_price 60100"


async def test_sell_grid_stops_when_the_bid_reaches_the_stop_price():
    driver = await started(direction="sell", stop_price="59900")
    driver.exchange.set_prices("59900.0", "59900.5")
    await driver.settle()
    assert driver.stop_message == "stop price reached: best bid 59900.0 <= stop_price 59900"


async def test_pause_price_holds_entries_but_still_manages_take_profits():
    driver = await started(pause_price="60005", requote_ticks="100")
    entry_id = entry_order(driver).order_id
    driver.exchange.set_prices("60004.0", "60005.0")
    await driver.settle()
    assert driver.strategy.status_summary()["pause reason"] == "best ask >= pause_price 60005"
    driver.exchange.fill(entry_id)
    await driver.settle()
    assert (driver.exchange.last_placed.side, driver.exchange.last_placed.price) == (SELL, D("60012.0"))
    count = len(driver.exchange.placed)
    await driver.advance(1_000)
    assert placed_since(driver, count) == []
    assert driver.strategy.status_summary()["state"] == "paused"
    driver.exchange.set_prices("59990.0", "59999.1")
    await driver.settle()
    (entry,) = placed_since(driver, count)
    assert (entry.side, entry.price) == (BUY, D("59999.0"))
    assert driver.strategy.status_summary()["pause reason"] == "-"


async def test_sell_grid_pauses_while_the_bid_is_at_or_below_the_pause_price():
    driver = make_session(direction="sell", pause_price="59990", bid="59990.0", ask="60000.0")
    await driver.start()
    await driver.advance(1_000)
    assert driver.exchange.placed == []
    driver.exchange.set_prices("59990.1", "60000.0")
    await driver.settle()
    assert driver.exchange.last_placed.price == D("59990.2")


# -- requote -----------------------------------------------------------------------------------


async def test_unfilled_entry_is_requoted_once_the_market_leaves_it():
    driver = await started()
    old_id = entry_order(driver).order_id
    driver.exchange.set_prices("60001.0", "60001.1")  # exactly 10 ticks away: stays
    assert await driver.settle() == []
    driver.exchange.set_prices("60001.1", "60001.3")  # 11 ticks away
    results = await driver.settle()
    assert [r.action for r in results] == [StrategyAction.CANCEL_ORDERS, StrategyAction.PLACE_ORDERS]
    assert driver.exchange.cancelled == [old_id]
    new = entry_order(driver)
    assert (new.side, new.price, new.size) == (BUY, D("60001.2"), D("0.01"))


async def test_sell_entry_is_requoted_when_the_ask_falls_away():
    driver = await started(direction="sell")  # entry at 59990.1
    driver.exchange.set_prices("59988.9", "59989.0")  # 11 ticks below
    await driver.settle()
    assert len(driver.exchange.cancelled) == 1
    assert entry_order(driver).price == D("59989.0")


async def test_partly_filled_entry_the_market_left_is_cancelled_and_its_part_closed():
    driver = await started()
    entry_id = entry_order(driver).order_id
    driver.exchange.fill(entry_id, size="0.004")
    await driver.settle()
    count = len(driver.exchange.placed)
    driver.exchange.set_prices("60100.0", "60100.1")
    await driver.settle()
    assert driver.exchange.cancelled == [entry_id]
    (tp,) = placed_since(driver, count)
    # the target 60012.0 is below the market: the take-profit goes to the touch
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.004"), D("60100.1"))
    assert driver.strategy.seconds_until_next_decision() == 25.0
    await driver.advance(25)
    entry = driver.exchange.last_placed
    assert (entry.side, entry.quantity, entry.price) == (BUY, D("0.01"), D("60100.0"))


async def test_fill_racing_a_requote_cancel_keeps_its_take_profit():
    driver = await started()
    entry = entry_order(driver)
    driver.exchange.set_prices("60002.0", "60002.2")
    strategy = driver.strategy
    market = await strategy.get_market_data()
    assert await strategy.should_execute(market)
    result = await strategy.execute_strategy(market)
    assert result.cancel_client_ids == [entry.client_order_id]
    driver.exchange.fill(entry.order_id, size="0.004")  # fills before the cancel lands
    await driver.carry_out(result)
    count = len(driver.exchange.placed)
    await driver.settle()
    (tp,) = placed_since(driver, count)
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.004"), D("60012.0"))
    await driver.advance(25)  # a partial fill and a cancel start the cool-down
    new_entry = driver.exchange.last_placed
    assert (new_entry.side, new_entry.quantity, new_entry.price) == (BUY, D("0.01"), D("60002.1"))


# -- start-up and synchronisation --------------------------------------------------------------


async def test_startup_adopts_take_profits_cancels_stale_entries_and_does_not_burst():
    driver = make_session()
    tp_a = driver.exchange.seed_order(SELL, "0.01", "60012.0")
    driver.exchange.seed_order(SELL, "0.01", "60030.0", filled_size="0.004")
    stale = driver.exchange.seed_order(BUY, "0.01", "59950.0")
    driver.exchange.seed_order(BUY, "0.01", "59900.0", client_order_id="99900000000001")  # not ours
    await driver.start()
    assert len(driver.exchange.calls_to("get_active_orders")) == 1
    assert driver.strategy.active_take_profit_count() == 2
    assert driver.strategy.status_summary()["active take-profits"] == "2 of max 40"
    results = await driver.settle()
    assert [r.action for r in results] == [StrategyAction.CANCEL_ORDERS]
    assert driver.exchange.cancelled == [stale.order_id]
    assert driver.strategy.seconds_until_next_decision() == 25.0
    await driver.advance(24.9)
    assert driver.exchange.placed == []
    await driver.advance(0.1)
    (entry,) = driver.exchange.placed
    assert (entry.side, entry.price) == (BUY, D("60000.0"))
    driver.exchange.fill(tp_a.order_id)
    await driver.settle()
    summary = driver.strategy.status_summary()
    assert summary["completed cycles (this run)"] == "1"
    assert summary["active take-profits"] == "1 of max 40"
    # Adopted take-profits bring lots at their implied entries (60000.0 and 60030 / 1.0002);
    # PnL is average-cost over both, as for any fills.
    implied = [D("60012.0") / D("1.0002"), D("60030.0") / D("1.0002")]
    average = (implied[0] * D("0.01") + implied[1] * D("0.006")) / D("0.016")
    assert driver.engine.ledger.size == D("0.006")
    assert driver.engine.ledger.realized_pnl == (D("60012.0") - average) * D("0.01")


async def test_fill_on_a_stale_entry_before_its_cancel_still_gets_a_take_profit():
    driver = make_session()
    stale = driver.exchange.seed_order(BUY, "0.01", "59990.0")
    await driver.start()
    driver.exchange.fill(stale.order_id)
    await driver.settle()
    tp = driver.exchange.last_placed
    # 59990.0 x 1.0002 = 60001.998 -> 60002.0
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.01"), D("60002.0"))
    assert driver.exchange.cancelled == []


async def test_startup_listing_failure_propagates_instead_of_assuming_no_orders():
    driver = make_session()
    driver.exchange.reject_next("get_active_orders", ExchangeUnavailable("503"))
    with pytest.raises(ExchangeUnavailable):
        await driver.start()


async def test_take_profit_cancelled_by_someone_else_is_placed_again():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    tp_id = driver.exchange.last_placed.order_id
    assert driver.strategy.active_take_profit_count() == 1
    driver.exchange.end_order(tp_id, OrderStatus.CANCELLED)
    count = len(driver.exchange.placed)
    await driver.settle()
    (tp,) = placed_since(driver, count)  # the filled size must stay covered
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.01"), D("60012.0"))
    assert driver.strategy.active_take_profit_count() == 1


async def test_expired_take_profit_is_placed_again():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    tp_id = driver.exchange.last_placed.order_id
    driver.exchange.end_order(tp_id, OrderStatus.EXPIRED)
    await driver.settle()
    tp = driver.exchange.last_placed
    assert tp.order_id != tp_id
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.01"), D("60012.0"))
    assert driver.strategy.active_take_profit_count() == 1


async def test_take_profit_rejected_after_acceptance_is_retried_a_tick_further():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    driver.exchange.end_order(driver.exchange.last_placed.order_id, OrderStatus.REJECTED)
    await driver.settle()
    assert driver.exchange.last_placed.price == D("60012.1")


async def test_partially_filled_take_profit_keeps_its_remaining_size():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    tp_id = driver.exchange.last_placed.order_id
    driver.exchange.fill(tp_id, size="0.004")
    await driver.settle()
    assert driver.strategy.active_take_profit_count() == 1
    assert driver.strategy.status_summary()["completed cycles (this run)"] == "0"
    assert driver.engine.ledger.realized_pnl == D("0.048")
    assert driver.engine.active_orders(OrderRole.EXIT)[0].remaining == D("0.006")


# -- failures and ambiguous outcomes ------------------------------------------------------------


async def test_refused_entry_returns_to_ready_after_a_short_back_off():
    driver = make_session()
    await driver.start()
    driver.exchange.reject_next("place_limit_order", InsufficientFunds("no margin"))
    await driver.advance(25)
    assert driver.exchange.placed == [] and len(driver.failures) == 1
    assert driver.strategy.status_summary()["state"] == "ready"
    assert driver.strategy.seconds_until_next_decision() == 1.0
    await driver.advance(1)
    assert driver.exchange.last_placed.side is BUY


async def test_post_only_refused_entry_is_re_priced_at_once():
    driver = make_session()
    await driver.start()
    driver.exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    await driver.advance(25)
    assert len(driver.failures) == 1
    assert driver.exchange.last_placed.price == D("60000.0")


async def test_entry_refused_twice_at_one_price_waits_for_the_book_instead_of_spinning():
    driver = make_session()
    await driver.start()
    driver.exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    driver.exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    await driver.advance(25)
    assert [order.price for order, _ in driver.failures] == [D("60000.0"), D("60000.0")]
    assert driver.exchange.placed == []
    assert driver.strategy.seconds_until_next_decision() == 1.0
    await driver.advance(1)
    assert driver.exchange.last_placed.price == D("60000.0")


async def test_unknown_entry_outcome_is_found_by_client_id_not_duplicated():
    driver = make_session()
    await driver.start()
    driver.exchange.answer_unknown_next(reaches_venue=True)
    await driver.advance(25)
    assert driver.strategy.status_summary()["state"] == "placing entry"
    await driver.advance(1)
    assert len(driver.exchange.placed) == 1
    assert [call.args["client_order_id"] for call in driver.exchange.calls_to("find_order")] == [
        driver.exchange.placed[0].client_order_id
    ]
    assert driver.strategy.status_summary()["state"] == "entry resting"
    await driver.advance(100)
    assert len(driver.exchange.placed) == 1
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    assert (driver.exchange.last_placed.side, driver.exchange.last_placed.price) == (SELL, D("60012.0"))


async def test_unknown_entry_that_never_arrived_is_given_up_only_after_repeated_look_ups():
    driver = make_session()
    await driver.start()
    driver.exchange.answer_unknown_next(reaches_venue=False)
    await driver.advance(25)
    assert driver.exchange.placed == []
    sent_at = driver.clock.now()
    while driver.clock.now() + 1 < sent_at + LOOKUP_MIN_AGE:
        await driver.advance(1)
        assert driver.exchange.placed == [], "missed look-ups must not re-place the order this soon"
        assert driver.strategy.status_summary()["state"] == "placing entry"
    for _ in range(20):
        await driver.advance(1)
        if driver.exchange.placed:
            break
    (entry,) = driver.exchange.placed
    assert entry.side is BUY
    assert len(driver.exchange.calls_to("find_order")) >= 5


async def test_timed_out_entry_is_treated_as_unknown_not_failed():
    driver = make_session()
    await driver.start()
    driver.exchange.reject_next("place_limit_order", RequestTimeout("no answer"))
    await driver.advance(25)
    assert driver.failures == []  # the execution layer keeps a timeout UNKNOWN, not failed
    assert driver.strategy.status_summary()["state"] == "placing entry"
    assert driver.engine.active_orders(OrderRole.ENTRY)[0].status is OrderStatus.UNKNOWN
    assert len(driver.exchange.calls_to("place_limit_order")) == 1


async def test_unknown_take_profit_outcome_never_loses_the_filled_size():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    driver.exchange.answer_unknown_next(reaches_venue=False)
    await driver.settle()
    (unknown,) = driver.engine.active_orders(OrderRole.EXIT)
    assert unknown.status is OrderStatus.UNKNOWN and unknown.quantity == D("0.01")
    count = len(driver.exchange.placed)

    def sells() -> list:
        return [order for order in placed_since(driver, count) if order.side is SELL]

    sent_at = driver.clock.now()
    while driver.clock.now() + 1 < sent_at + LOOKUP_MIN_AGE:
        await driver.advance(1)
        assert sells() == [], "no second take-profit while the first may rest"
    for _ in range(20):
        await driver.advance(1)
        if sells():
            break
    (tp,) = sells()
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.01"), D("60012.0"))
    assert len(driver.exchange.open_orders(SELL)) == 1


async def test_unknown_take_profit_that_did_rest_is_adopted_without_a_duplicate():
    driver = await started()
    driver.exchange.fill(entry_order(driver).order_id)
    driver.exchange.answer_unknown_next(reaches_venue=True)
    await driver.settle()
    await driver.advance(1)
    assert len(driver.exchange.open_orders(SELL)) == 1
    assert driver.strategy.status_summary()["active take-profits"] == "1 of max 40"


async def test_cancel_of_an_already_filled_entry_is_resolved_by_its_fill():
    driver = await started()
    entry_id = entry_order(driver).order_id
    driver.exchange.set_prices("60002.0", "60002.2")
    market = await driver.strategy.get_market_data()
    assert await driver.strategy.should_execute(market)
    result = await driver.strategy.execute_strategy(market)
    driver.exchange.fill(entry_id)  # filled in full before the cancel arrives: OrderNotFound
    await driver.carry_out(result)
    count = len(driver.exchange.placed)
    await driver.settle()
    (tp,) = placed_since(driver, count)
    assert (tp.side, tp.quantity, tp.price) == (SELL, D("0.01"), D("60012.0"))
    assert driver.strategy.seconds_until_next_decision() == 25.0  # a full fill starts a cool-down


async def test_status_summary_reports_the_grid():
    driver = await started()
    summary = driver.strategy.status_summary()
    assert summary["state"] == "entry resting"
    assert summary["direction"] == "buy"
    assert summary["entry"].startswith("entry buy 0.010 @ 60000.0")
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    summary = driver.strategy.status_summary()
    assert summary["state"] == "cooling down (25.0 s left)"
    assert summary["take-profit prices"] == "60012.0 .. 60012.0"
    assert summary["pause reason"] == "-"


# -- the mock venue itself ---------------------------------------------------------------------


async def test_mock_venue_records_calls_fills_and_scripted_errors():
    clock = SimulatedClock(START)
    config = TradingConfig(ticker="ETH", exchange="mock", strategy="grid", quantity=D("1"))
    venue = MockExchangeClient(config, clock, best_bid="2999.9", best_ask="3000.0")
    seen = []
    venue.subscribe_order_updates(seen.append)
    assert (await venue.get_contract_info("eth")) == default_contract("ETH")
    with pytest.raises(PostOnlyRejected):
        await venue.place_limit_order("ETH-PERP", BUY, D("1"), D("3000.0"), "1")
    result = await venue.place_limit_order("ETH-PERP", BUY, D("1"), D("2999.9"), venue.client_ids.next_id(0))
    assert result.success and result.status is OrderStatus.OPEN
    update = venue.fill(result.order_id, size="0.4", price="2999.8")
    assert update.fill is not None and update.fill.size == D("0.4")
    assert update.order.status is OrderStatus.PARTIALLY_FILLED and update.order.filled_size == D("0.4")
    assert [u.order.status for u in seen] == [OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED]
    assert venue.position == D("0.4")
    venue.reject_next("cancel_order", ExchangeUnavailable("down"))
    with pytest.raises(ExchangeUnavailable):
        await venue.cancel_order("ETH-PERP", result.order_id)
    cancelled = await venue.cancel_order("ETH-PERP", result.order_id)
    assert cancelled.status is OrderStatus.CANCELLED and venue.cancelled == [result.order_id]
    assert [call.method for call in venue.calls].count("cancel_order") == 2
    with pytest.raises(InvalidOrder, match="multiple"):
        await venue.place_limit_order("ETH-PERP", BUY, D("0.0001"), D("2999.9"), "2")
    with pytest.raises(ValueError):
        venue.reject_next("no_such_method", ExchangeUnavailable("x"))


# -- with the real orchestrator ----------------------------------------------------------------


async def test_grid_runs_under_the_trading_bot_on_simulated_time():
    """The driver above mirrors the bot; this checks the same cycle through trading_bot itself."""
    from trading_bot import TradingBot

    driver = make_session()
    clock, exchange = driver.clock, driver.exchange
    bot = TradingBot(driver.strategy.config, clock=clock, exchange_client=exchange, write_files=False)

    async def idle() -> None:
        # A guard against a hung loop only; the assertions are about simulated time.
        await asyncio.wait_for(bot.wait_until_idle(), timeout=10)

    run = asyncio.ensure_future(bot.run())
    try:
        await idle()
        (entry,) = exchange.placed
        assert (entry.side, entry.price) == (BUY, D("60000.0"))
        exchange.fill(entry.order_id)
        await idle()
        take_profit = exchange.last_placed
        assert (take_profit.side, take_profit.price) == (SELL, D("60012.0"))
        assert take_profit.timestamp == START  # same simulated instant as the fill
    finally:
        bot.request_shutdown("test over")
        summary = await asyncio.wait_for(run, timeout=10)
    assert summary.resting_exit_orders == 1
    assert [order.order_id for order in exchange.open_orders()] == [take_profit.order_id]
