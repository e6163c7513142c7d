"""The grid strategy's wake levels: which quotes could change its next decision."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtesting.engine import BacktestSpec, run_backtest
from strategies.base_strategy import DecisionBand, WakeLevels
from tests.test_grid_strategy import entry_order, make_session, started

INF = D("Infinity")


def test_wake_levels_bounds_are_open_and_narrow_together() -> None:
    levels = WakeLevels(bid_high=D("101")).narrowed(WakeLevels(bid_high=D("100"), ask_low=D("90")))
    assert levels == WakeLevels(bid_low=-INF, bid_high=D("100"), ask_low=D("90"), ask_high=INF)
    assert not levels.crossed(D("99.9"), D("90.1"))
    assert levels.crossed(D("100"), D("95"))  # reaching a bound wakes
    assert levels.crossed(D("99"), D("90"))


async def test_ready_to_enter_wakes_on_every_update() -> None:
    driver = make_session(wait_time="100")
    await driver.start()
    assert driver.strategy.market_wake_levels() is None


async def test_resting_buy_entry_wakes_at_its_requote_distance_and_the_stop_and_pause() -> None:
    driver = await started(requote_ticks=5, stop_price="60100", pause_price="60050")
    entry = entry_order(driver)
    levels = driver.strategy.market_wake_levels()
    assert levels == WakeLevels(bid_high=entry.price + D("0.5"), ask_high=D("60050"))


async def test_resting_sell_entry_mirrors_the_levels() -> None:
    driver = await started(direction="sell", requote_ticks=3, stop_price="59000", pause_price="59500")
    entry = entry_order(driver)
    assert driver.strategy.market_wake_levels() == WakeLevels(
        bid_low=D("59500"), ask_low=entry.price - D("0.3")
    )


async def test_cooling_down_only_the_stop_price_matters() -> None:
    driver = await started(stop_price="61000")
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()  # the take-profit goes out, the cool-down starts
    assert driver.strategy.cooldown_remaining(driver.clock.now()) > 0
    assert driver.strategy.market_wake_levels() == WakeLevels(ask_high=D("61000"))


async def test_grid_step_band_holds_exactly_where_the_conflict_holds() -> None:
    """Brute force: for every ask on a fine grid inside the band, the entry that ask would
    produce conflicts with the same take-profit; just outside, the band has woken the bot."""
    driver = await started(grid_step="0.05", take_profit="0.02", wait_time="10")
    strategy = driver.strategy
    driver.exchange.fill(entry_order(driver).order_id)
    await driver.settle()
    await driver.advance(strategy.cooldown_remaining(driver.clock.now()) + 1)
    assert not driver.exchange.open_orders(strategy.direction), "the grid step should hold the entry"
    levels = strategy.market_wake_levels()
    assert levels is not None and levels.ask_low > -INF and levels.ask_high < INF
    held = strategy.grid_step_conflict(strategy.entry_price(D("59990.0"), D("60000.1")))
    assert held is not None
    ask = levels.ask_low + D("0.01")
    checked = 0
    while ask < levels.ask_high:
        bid = ask - D("0.1")
        assert not levels.crossed(bid, ask)
        assert strategy.grid_step_conflict(strategy.entry_price(bid, ask)) == held, ask
        ask += D("0.01")
        checked += 1
    assert checked > 1000
    # Beyond the band the hold ends within a few ticks (the band is tight, not just safe).
    outside = levels.ask_high + D("0.4")
    assert strategy.grid_step_conflict(strategy.entry_price(outside - D("0.1"), outside)) != held


# -- the band is the decision's own: a property over random markets and parameters ----------------


def _percent(low: str, high: str) -> st.SearchStrategy[D]:
    return st.integers(int(D(low) * 1000), int(D(high) * 1000)).map(lambda n: D(n) / 1000)


@st.composite
def grid_runs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A synthetic market (seed, volatility, spread) and grid parameters that make
    every rule bite: grid step, pause and stop prices near the start, short requotes, random
    timing and profit."""
    direction = draw(st.sampled_from(["buy", "sell"]))
    sign = 1 if direction == "buy" else -1
    params: dict[str, Any] = {
        "direction": direction,
        "take_profit": draw(_percent("0.005", "0.06")),
        "wait_time": float(draw(st.integers(0, 20))),
        "max_orders": draw(st.integers(1, 8)),
        "requote_ticks": draw(st.integers(1, 12)),
        "grid_step": draw(st.one_of(st.just(D(-100)), _percent("0", "0.08"))),
        "random_timing": draw(st.booleans()),
        "dynamic_profit": draw(st.booleans()),
        "seed": draw(st.integers(0, 5)),
    }
    if draw(st.booleans()):
        params["pause_price"] = D(60000) + sign * draw(st.integers(1, 60))
    if draw(st.booleans()):
        params["stop_price"] = D(60000) + sign * draw(st.integers(20, 150))
    market = {
        "seed": draw(st.integers(0, 10_000)),
        "volatility_bps": str(draw(st.sampled_from(["0.2", "0.5", "1.5"]))),
        "spread_ticks": draw(st.integers(1, 4)),
    }
    return params, market


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grid_runs())
def test_wake_filter_never_changes_a_decision_on_random_markets(
    run: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The bot skips market updates inside the band the decision recorded, and sleeps until the
    time it recorded: every order, cancel and fill must be what waking on every update gives."""
    params, market = run
    base = BacktestSpec(
        synthetic_events=4_000, strategy_params=params, exchange_params=market, use_cache=False
    )
    filtered = run_backtest(base)
    unfiltered = run_backtest(BacktestSpec(**{**base.__dict__, "filter_market_wakes": False}))
    assert filtered.decisions() == unfiltered.decisions()
    assert [fill.__dict__ for fill in filtered.fills] == [fill.__dict__ for fill in unfiltered.fills]
    assert filtered.metrics.stop_reason == unfiltered.metrics.stop_reason


def test_a_derived_price_band_is_found_on_the_tick_grid() -> None:
    """An entry one tick inside the ask, compared with 100.05: true while the ask stays at or
    above 100.2 (entry 100.1), so the band's low end is the last tick where it holds."""
    band = DecisionBand(D("99.9"), D("100.5"), 0.0)
    tick = D("0.1")
    entry = band.derived(True, lambda ask: (ask - tick).quantize(tick, rounding="ROUND_FLOOR"), tick)
    assert entry.above(D("100.05"))
    assert band.levels() == WakeLevels(ask_low=D("100.2"))
    assert band.before(5.0) and not band.before(-1.0) and band.until == 5.0
    band.pin()
    assert band.levels() is None


# -- the risk manager's part -------------------------------------------------------------------


async def test_risk_manager_wakes_every_update_within_half_the_loss_limit() -> None:
    from tests.test_risk_manager import make, pos, snap

    manager, client, _ = make()
    client.result = snap("10000")
    await manager.initialize()
    # Baseline 10,000, loss limit 10 %: half-way is 500 of loss.
    assert manager.market_wake_levels(D(0), D(0), D(0)) == WakeLevels()
    assert manager.market_wake_levels(D(10), D(100), D(0)) == WakeLevels(bid_low=D(50))
    assert manager.market_wake_levels(D(-10), D(100), D(0)) == WakeLevels(ask_high=D(150))
    assert manager.market_wake_levels(D(10), D(100), D(-200)) == WakeLevels(bid_low=D(70))
    assert manager.market_wake_levels(D(10), D(100), D(-500)) is None  # already half-way
    started_long, long_client, _ = make()
    long_client.result = snap("10000", (pos("BTC", "0"),))
    await started_long.initialize()
    assert started_long.market_wake_levels(D(0), D(0), D(0)) is None  # a position we did not open
