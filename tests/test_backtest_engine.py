"""Backtests run the live code: deterministic, same decisions as a live paper run, and the
wake filter never changes a decision."""

from __future__ import annotations

import asyncio
import gzip
import itertools
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from backtesting.engine import BACKTEST_LATENCIES_MS, BacktestSpec, run_backtest
from backtesting.market_feed import read_recorded_feed
from exchanges.base import OrderStatus, OrderUpdate
from exchanges.paper import PaperExchangeClient
from helpers.clock import SimulatedClock
from helpers.trading_config import TradingConfig
from tests.shared_paths import RECORDED_FEED
from trading_bot import TradingBot

ACTIVE = {"take_profit": D("0.02"), "wait_time": 20.0}


@pytest.fixture(scope="module")
def feed_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 25,000 lines (about 90 s) of the recorded feed, as its own file."""
    path = tmp_path_factory.mktemp("feed") / "slice.gz"
    with gzip.open(RECORDED_FEED, "rt") as source, gzip.open(path, "wt") as target:
        target.writelines(itertools.islice(source, 25_000))
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


def decisions(result: Any) -> list[tuple[Any, ...]]:
    return [(round(order[0], 6), *order[1:]) for order in result.decisions()]


def test_same_data_parameters_and_seed_give_identical_results(feed_slice: Path, cache_dir: str) -> None:
    spec = BacktestSpec(feed_path=str(feed_slice), cache_dir=cache_dir, strategy_params=ACTIVE)
    first, second = run_backtest(spec), run_backtest(spec)
    assert first.metrics.fills > 5, "the slice should trade"
    assert first.deterministic_view() == second.deterministic_view()
    synthetic = BacktestSpec(
        synthetic_events=20_000,
        cache_dir=cache_dir,
        exchange_params={"seed": 5},
        strategy_params={**ACTIVE, "random_timing": True, "dynamic_profit": True, "seed": 9},
    )
    assert run_backtest(synthetic).deterministic_view() == run_backtest(synthetic).deterministic_view()
    other_seed = BacktestSpec(**{**synthetic.__dict__, "exchange_params": {"seed": 6}})
    assert run_backtest(other_seed).decisions() != run_backtest(synthetic).decisions()


def test_results_add_up(feed_slice: Path, cache_dir: str) -> None:
    result = run_backtest(
        BacktestSpec(feed_path=str(feed_slice), cache_dir=cache_dir, strategy_params=ACTIVE)
    )
    m = result.metrics
    assert m.events == 22_957  # the bookTicker and trade lines among the first 25,000
    assert m.fills == len(result.fills) == m.entry_fills + m.exit_fills
    assert m.completed_cycles == sum(1 for fill in result.fills if fill.completes_take_profit) > 0
    # The report's equity (from the fills) and the venue's own account agree to Decimal precision.
    assert abs(m.end_equity - result.samples[-1].equity) < D("1e-18")
    assert m.final_position == result.samples[-1].position
    times = [sample.time for sample in result.samples]
    assert times == sorted(times) and len(times) > 1000


def test_wake_filter_never_changes_a_decision_on_the_recorded_feed(cache_dir: str) -> None:
    base = BacktestSpec(feed_path=str(RECORDED_FEED), cache_dir=cache_dir, strategy_params=ACTIVE)
    filtered = run_backtest(base)
    unfiltered = run_backtest(BacktestSpec(**{**base.__dict__, "filter_market_wakes": False}))
    assert len(filtered.decisions()) > 50
    assert decisions(filtered) == decisions(unfiltered)
    assert filtered.metrics == unfiltered.metrics


@pytest.mark.parametrize(
    "params",
    [
        # grid-step conflicts hold entries back: the band of quotes that keeps the hold
        {"take_profit": D("0.03"), "wait_time": 5.0, "grid_step": D("0.02"), "max_orders": 8},
        # a short grid with a pause price and a stop price it reaches
        {
            "take_profit": D("0.02"),
            "wait_time": 5.0,
            "direction": "sell",
            "pause_price": D("59990"),
            "stop_price": D("59900"),
            "requote_ticks": 3,
        },
        # a long grid with a pause price above the market and a short requote distance
        {"take_profit": D("0.05"), "wait_time": 8.0, "pause_price": D("60030"), "requote_ticks": 2},
    ],
)
def test_wake_filter_never_changes_a_decision_with_every_wake_rule(
    params: dict[str, Any], cache_dir: str
) -> None:
    base = BacktestSpec(synthetic_events=40_000, cache_dir=cache_dir, strategy_params=params)
    filtered = run_backtest(base)
    unfiltered = run_backtest(BacktestSpec(**{**base.__dict__, "filter_market_wakes": False}))
    assert len(filtered.decisions()) > 10
    assert decisions(filtered) == decisions(unfiltered)
    assert filtered.metrics.stop_reason == unfiltered.metrics.stop_reason


async def live_paper_run(
    feed: Path, params: dict[str, Any], latencies: dict[str, float] | None = None
) -> tuple[list[tuple[Any, ...]], int]:
    """The live path: the paper venue's own pump replaying ``feed`` in real time, the bot, on a
    simulated clock that this driver moves to the next timer whenever everyone is parked.

    Returns the decisions, recorded as the backtest records them (an order the venue refused on
    arrival, a post-only one the market crossed during its entry latency, was never placed),
    and how many orders were refused so."""
    first = next(iter(read_recorded_feed(feed)))
    clock = SimulatedClock(first.timestamp)
    config = TradingConfig(
        ticker="BTC",
        exchange="paper",
        strategy="grid",
        quantity=D("0.002"),
        strategy_params=params,
        exchange_params={"feed_path": str(feed), "replay_speed": 1, **(latencies or {})},
    )
    venue = PaperExchangeClient(config, clock)
    seen: set[str] = set()
    orders: list[tuple[Any, ...]] = []
    refused: list[str] = []

    def record(update: OrderUpdate) -> None:
        info = update.order
        if info.status is OrderStatus.REJECTED and info.order_id not in seen:
            refused.append(info.order_id)
            return
        if info.order_id not in seen:
            seen.add(info.order_id)
            orders.append(
                (clock.now(), "placed", info.side.value, info.order_type.value, info.price, info.size)
            )
        if update.fill is None and info.status is OrderStatus.CANCELLED:
            orders.append(
                (clock.now(), "cancelled", info.side.value, info.order_type.value, info.price, info.size)
            )

    venue.subscribe_order_updates(record)
    bot = TradingBot(config, clock=clock, exchange_client=venue, write_files=False)
    task = asyncio.ensure_future(bot.run())
    while not task.done():
        await asyncio.sleep(0)
        if not bot.idle:
            continue
        finished = venue.feed_finished.is_set()
        if not finished and clock.pending_timers() < 2:
            continue  # the pump is reading its next batch in a worker thread
        if finished:
            bot.request_shutdown("end of market data")
            break
        clock.advance_to(clock.next_deadline())  # type: ignore[arg-type]
    await asyncio.wait_for(task, timeout=30)
    return [(round(order[0], 6), *order[1:]) for order in orders], len(refused)


@pytest.mark.parametrize(
    "latencies",
    [dict.fromkeys(BACKTEST_LATENCIES_MS, 0.0), dict(BACKTEST_LATENCIES_MS)],
    ids=["no-latency", "backtest-latencies"],
)
async def test_live_paper_run_and_backtest_make_the_same_decisions(
    feed_slice: Path, cache_dir: str, latencies: dict[str, float]
) -> None:
    """With latency, post-only entries the market crosses before they arrive are refused (three
    in this slice, the first after 58 decisions): both paths refuse the same ones and neither
    counts them as placed."""
    live, refused = await live_paper_run(feed_slice, ACTIVE, latencies)
    backtest = await asyncio.to_thread(
        run_backtest,
        BacktestSpec(
            feed_path=str(feed_slice), cache_dir=cache_dir, strategy_params=ACTIVE, exchange_params=latencies
        ),
    )
    assert len(live) > 10
    assert refused == (3 if latencies["entry_latency_ms"] else 0)
    assert live == decisions(backtest)


def test_updates_the_venue_skips_as_quiet_still_count_as_fresh_market_data(cache_dir: str) -> None:
    """The paper venue skips updates inside the bot's wake levels (QuietQuotes) but notes their
    time: the stall check must see them, or a parked bot would pause on a live market."""
    from helpers.trading_config import RiskLimits

    base = BacktestSpec(
        synthetic_events=20_000,
        cache_dir=cache_dir,
        strategy_params=ACTIVE,
        risk=RiskLimits(stall_seconds=3.0),
    )
    filtered = run_backtest(base)
    unfiltered = run_backtest(BacktestSpec(**{**base.__dict__, "filter_market_wakes": False}))
    assert len(filtered.decisions()) > 100
    assert decisions(filtered) == decisions(unfiltered)


def test_fill_roles_hold_past_the_orders_kept_in_memory() -> None:
    """Roles are booked as each fill happens; a run with more finished orders than the execution
    layer keeps in memory still names every fill's role and counts the strategy's own cycles
    (a take-profit filled in parts completes one cycle, at its last part)."""
    from execution.engine import KEEP_FINAL_IN_MEMORY

    result = run_backtest(
        BacktestSpec(
            synthetic_events=60_000,
            quantity=D("0.05"),
            use_cache=False,
            strategy_params={"take_profit": D("0.02"), "wait_time": 10.0},
        )
    )
    assert result.metrics.orders_placed > 1.5 * KEEP_FINAL_IN_MEMORY
    roles = {fill.role for fill in result.fills}
    assert "external" not in roles and {"entry", "exit"} <= roles
    exits = [fill for fill in result.fills if fill.role == "exit"]
    assert any(not fill.completes_take_profit for fill in exits)  # a part that completed nothing
    own = int(result.strategy_status["completed cycles (this run)"])
    assert result.metrics.completed_cycles == own > 100
