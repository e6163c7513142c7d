"""The orchestrator on simulated time: risk gating, ambiguous outcomes, shutdown, no special cases."""

from __future__ import annotations

import ast
import asyncio
from decimal import Decimal
from pathlib import Path

from backtesting.market_feed import MarketEvent
from exchanges.base import InsufficientFunds, OrderStatus, RequestTimeout
from exchanges.factory import EXCHANGE_CLASSES
from exchanges.paper import PaperExchangeClient
from helpers.clock import SimulatedClock
from helpers.trading_config import RiskLimits, TradingConfig
from strategies.base_strategy import OrderRole
from strategies.factory import StrategyFactory
from tests.mock_exchange import MockExchangeClient
from trading_bot import EXIT_RISK_STOP, BotSummary, TradingBot

START = 1_700_000_000.0
D = Decimal


def make_config(exchange: str = "mock", **overrides: object) -> TradingConfig:
    settings: dict[str, object] = {
        "ticker": "BTC",
        "exchange": exchange,
        "strategy": "grid",
        "quantity": D("0.01"),
        "strategy_params": {"take_profit": D("0.02"), "wait_time": 0.0},
    }
    settings.update(overrides)
    return TradingConfig(**settings)  # type: ignore[arg-type]


async def run_until_done(bot: TradingBot, clock: SimulatedClock, max_steps: int = 500) -> BotSummary:
    """Drive the bot on simulated time: whenever it parks, jump to its next timer."""
    task = asyncio.ensure_future(bot.run())
    for _ in range(max_steps):
        await asyncio.wait_for(bot.wait_until_idle(), timeout=10)
        if task.done():
            break
        deadline = clock.next_deadline()
        if deadline is None:
            break
        clock.advance_to(deadline)
        bot.expect_activity()
    if not task.done():
        bot.request_shutdown("test step budget exhausted")
    return await asyncio.wait_for(task, timeout=10)


async def test_consecutive_order_failures_stop_the_bot_through_the_risk_manager() -> None:
    clock = SimulatedClock(START)
    config = make_config(risk=RiskLimits(max_consecutive_failures=5))
    exchange = MockExchangeClient(config, clock)
    for _ in range(5):
        exchange.reject_next("place_limit_order", InsufficientFunds("insufficient margin"))
    bot = TradingBot(config, clock=clock, exchange_client=exchange, write_files=False)

    summary = await run_until_done(bot, clock)

    assert summary.exit_code == EXIT_RISK_STOP
    assert "5" in summary.stop_reason and "insufficient margin" in summary.stop_reason
    assert len(exchange.calls_to("place_limit_order")) == 5
    assert exchange.placed == []


async def test_timeout_on_placement_keeps_the_order_in_flight_not_rejected() -> None:
    clock = SimulatedClock(START)
    config = make_config(duration=5.0)
    exchange = MockExchangeClient(config, clock)
    exchange.reject_next("place_limit_order", RequestTimeout("no answer in 10 s"))
    bot = TradingBot(config, clock=clock, exchange_client=exchange, write_files=False)

    await run_until_done(bot, clock)

    (first,) = bot.journal.orders()  # journaled before it was sent, never forgotten
    assert first.status is OrderStatus.UNKNOWN
    assert bot.execution.refused_count == 0


async def test_emergency_loss_closes_everything_and_stops_on_the_paper_venue() -> None:
    clock = SimulatedClock(START)
    config = make_config(
        exchange="paper",
        exchange_params={"drive_externally": True, "start_balance": D("100"), "maker_fee_pct": D(0)},
    )
    paper = PaperExchangeClient(config, clock)
    bot = TradingBot(config, clock=clock, exchange_client=paper, write_files=False)
    paper.apply_market_event(MarketEvent.bbo(START, D("59999.9"), D("60000.0"), D(1), D(1)))
    task = asyncio.ensure_future(bot.run())
    await asyncio.wait_for(bot.wait_until_idle(), timeout=10)
    (entry,) = await paper.get_active_orders("BTC")
    assert entry.side.value == "buy"

    paper.apply_market_event(MarketEvent.trade(START, entry.price - 1, D(1), None))
    await asyncio.wait_for(bot.wait_until_idle(), timeout=10)
    assert (await paper.get_position("BTC")).size == D("0.01")

    later = START + 10
    clock.advance_to(later)
    paper.apply_market_event(MarketEvent.bbo(later, D("58000.0"), D("58000.1"), D(1), D(1)))
    await asyncio.wait_for(bot.wait_until_idle(), timeout=10)
    summary = await asyncio.wait_for(task, timeout=10)

    assert summary.exit_code == EXIT_RISK_STOP
    assert "emergency" in summary.stop_reason
    assert summary.mark_price == D("58000.05") and summary.unrealized_pnl == 0
    assert (await paper.get_position("BTC")).size == 0
    assert await paper.get_active_orders("BTC") == []
    closes = [order for order in bot.journal.orders() if order.role is OrderRole.RISK_CLOSE]
    assert [order.order_type.value for order in closes] == ["market"]
    exits = [order for order in bot.journal.orders() if order.role is OrderRole.EXIT]
    assert exits and all(order.status is OrderStatus.CANCELLED for order in exits)


def test_orchestrator_names_no_strategy_and_no_exchange() -> None:
    """No `if strategy == 'grid'` or `if exchange == 'lighter'` in the supervisor."""
    source = (Path(__file__).resolve().parent.parent / "trading_bot.py").read_text()
    literals = {
        node.value.lower()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    names = set(EXCHANGE_CLASSES) | set(StrategyFactory.available())
    assert not names & literals
