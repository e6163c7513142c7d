"""Risk and shutdown paths on simulated time: each scenario where an earlier bot lost money.

The real TradingBot, grid strategy, risk manager and execution layer run against the scripted
mock venue; the test moves time and makes the venue fill, refuse or lose things. Every test
checks the money: what is on the venue, what the journal says, and that the two agree.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from exchanges.base import (
    AccountSnapshot,
    InsufficientFunds,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    SlippageExceeded,
)
from helpers.clock import SimulatedClock
from helpers.trading_config import RiskLimits, TradingConfig
from strategies.base_strategy import OrderRole
from tests.mock_exchange import MockExchangeClient
from trading_bot import EXIT_OK, EXIT_RISK_STOP, BotSummary, TradingBot

START = 1_700_000_000.0
D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


class Session:
    """One bot on the mock venue, with time moved by the test."""

    def __init__(self, risk: RiskLimits | None = None, bot_name: str = "", direction: str = "buy", **params):
        self.clock = SimulatedClock(START)
        self.config = TradingConfig(
            ticker="BTC",
            exchange="mock",
            strategy="grid",
            quantity=D("0.01"),
            strategy_params={"take_profit": D("0.02"), "wait_time": 10.0, "direction": direction, **params},
            risk=risk or RiskLimits(stall_seconds=60.0),
            bot_name=bot_name,
        )
        self.venue = MockExchangeClient(self.config, self.clock, best_bid="59990.0", best_ask="60000.0")
        self.bot = TradingBot(self.config, clock=self.clock, exchange_client=self.venue, write_files=False)
        self.task: asyncio.Future[BotSummary] | None = None

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.bot.run())
        await self.settle()

    async def settle(self) -> None:
        self.bot.expect_activity()
        await asyncio.wait_for(self.bot.wait_until_idle(), timeout=10)

    async def advance(self, seconds: float) -> None:
        """Let time pass, waking the bot at each of its timers on the way."""
        await self.settle()  # what already happened is handled at the time it happened
        end = self.clock.now() + seconds
        for _ in range(10_000):
            deadline = self.clock.next_deadline()
            if deadline is None or deadline > end or (self.task is not None and self.task.done()):
                break
            self.clock.advance_to(deadline)
            await self.settle()
        self.clock.advance_to(end)
        await self.settle()

    async def stop(self, reason: str = "Ctrl-C") -> BotSummary:
        assert self.task is not None
        self.bot.request_shutdown(reason)
        for _ in range(200):
            if self.task.done():
                break
            await self.settle()
            deadline = self.clock.next_deadline()
            if deadline is not None:
                self.clock.advance_to(deadline)
        return await asyncio.wait_for(self.task, timeout=10)

    async def finished(self) -> BotSummary:
        assert self.task is not None
        for _ in range(200):
            if self.task.done():
                break
            await self.advance(1.0)
        return await asyncio.wait_for(self.task, timeout=10)

    # -- the venue's view --------------------------------------------------------------------

    def resting(self, side: OrderSide) -> list:
        return self.venue.open_orders(side)

    def entry(self):
        (entry,) = self.resting(BUY)
        return entry

    def exits_size(self) -> Decimal:
        return sum((o.remaining_size for o in self.resting(SELL)), D(0))

    def assert_journal_matches_venue(self) -> None:
        engine = self.bot.execution
        assert engine.position == self.venue.position
        position, covered = engine.coverage()
        assert position == covered


async def test_emergency_close_refused_at_market_is_retried_wider_then_take_profits_cancelled():
    session = Session(risk=RiskLimits(loss_pct=D("10"), emergency_loss_pct=D("15"), stall_seconds=600))
    await session.start()
    session.venue.fill(session.entry().order_id)
    await session.advance(11)
    session.venue.fill(session.entry().order_id)
    await session.settle()
    assert session.venue.position == D("0.02") and session.exits_size() == D("0.02")
    session.venue.reject_next("place_market_order", SlippageExceeded("book too thin"))
    session.venue.balance = D("8000")  # -20 %: emergency
    await session.advance(6)
    summary = await session.finished()
    assert summary.exit_code == EXIT_RISK_STOP
    bounds = [call.args["max_slippage_pct"] for call in session.venue.calls_to("place_market_order")]
    assert bounds == [D("0.5"), D("1.0")]  # refused, then retried with a wider bound
    assert session.venue.position == 0
    assert session.resting(SELL) == []  # take-profits cancelled only after the close filled
    assert session.resting(BUY) == []
    assert summary.position == 0 and summary.resting_exit_orders == 0
    session.assert_journal_matches_venue()


async def test_emergency_close_falls_back_to_a_limit_at_the_touch():
    session = Session(risk=RiskLimits(loss_pct=D("10"), emergency_loss_pct=D("15"), stall_seconds=600))
    await session.start()
    session.venue.fill(session.entry().order_id)
    await session.settle()
    for _ in range(3):
        session.venue.reject_next("place_market_order", SlippageExceeded("book too thin"))
    session.venue.balance = D("8000")
    await session.advance(6)
    summary = await session.finished()
    assert summary.exit_code == EXIT_RISK_STOP
    assert len(session.venue.calls_to("place_market_order")) == 3
    (close,) = [p for p in session.venue.placed if p.reduce_only and not p.post_only]
    assert (close.order_type, close.side, close.price) == (OrderType.LIMIT, SELL, D("59990.0"))
    assert session.venue.position == 0 and session.resting(SELL) == []
    session.assert_journal_matches_venue()


async def test_emergency_close_that_cannot_fill_leaves_the_take_profits_and_says_so():
    session = Session(
        risk=RiskLimits(loss_pct=D("10"), emergency_loss_pct=D("15"), stall_seconds=600), wait_time=100.0
    )
    await session.start()
    session.venue.fill(session.entry().order_id)
    await session.settle()
    for _ in range(3):
        session.venue.reject_next("place_market_order", SlippageExceeded("book too thin"))
    session.venue.reject_next("place_limit_order", InsufficientFunds("margin"))
    session.venue.balance = D("8000")
    await session.advance(6)
    summary = await session.finished()
    assert summary.exit_code == EXIT_RISK_STOP
    # The take-profit stays: nothing closed the position, so nothing may uncover it.
    (take_profit,) = session.resting(SELL)
    assert take_profit.size == D("0.01")
    assert summary.position == D("0.01") and summary.venue_position == D("0.01")
    text = "\n".join(summary.lines())
    assert "position: 0.010 (this bot" in text and "take-profits resting on the venue: 1 (size 0.010)" in text
    session.assert_journal_matches_venue()


class TwoContractVenue(MockExchangeClient):
    """The account also holds another bot's ETH position, the worst one."""

    async def get_account_snapshot(self) -> AccountSnapshot:
        snapshot = await super().get_account_snapshot()
        eth = Position("ETH-PERP", D("1"), D("3000"), unrealized_pnl=D("-900"))
        return AccountSnapshot(
            balance=snapshot.balance,
            equity=snapshot.equity,
            positions=(eth, *snapshot.positions),
            timestamp=snapshot.timestamp,
        )


async def test_close_worst_closes_only_this_bots_position_and_blocks_entries_until_it_clears():
    session = Session(
        risk=RiskLimits(
            loss_pct=D("10"), emergency_loss_pct=D("50"), close_worst_fraction=D("1"), stall_seconds=600
        )
    )
    session.venue = TwoContractVenue(session.config, session.clock, best_bid="59990.0", best_ask="60000.0")
    session.bot = TradingBot(
        session.config, clock=session.clock, exchange_client=session.venue, write_files=False
    )
    await session.start()
    session.venue.fill(session.entry().order_id)
    await session.settle()
    session.venue.balance = D("8900")  # -11 %: close the worst
    await session.advance(6)
    closes = session.venue.calls_to("place_market_order")
    assert [(c.args["contract_id"], c.args["quantity"]) for c in closes] == [("BTC-PERP", D("0.010"))]
    assert session.venue.position == 0
    assert session.resting(SELL) == []  # its take-profit, made redundant, was cancelled
    assert session.resting(BUY) == []  # and no entry rests while the loss condition holds
    placed = len(session.venue.calls_to("place_limit_order"))
    await session.advance(60)
    assert session.resting(BUY) == [] and len(session.venue.calls_to("place_limit_order")) == placed
    assert "risk" in session.bot.strategy.state()
    session.venue.balance = D("10000")  # recovered
    await session.advance(11)
    assert len(session.resting(BUY)) == 1  # entries again
    session.assert_journal_matches_venue()
    assert (await session.stop()).exit_code == EXIT_OK


CLOSE_WORST = RiskLimits(
    loss_pct=D("10"), emergency_loss_pct=D("50"), close_worst_fraction=D("1"), stall_seconds=600
)


async def slow_closes_session(venue_class: type[MockExchangeClient], risk: RiskLimits) -> tuple[Session, Any]:
    """A bot whose venue leaves market orders open until the test fills them, with one entry
    filled and its take-profit resting (``wait_time`` 100: no new entry meanwhile)."""
    session = Session(risk=risk, wait_time=100.0)
    session.venue = venue_class(
        session.config, session.clock, best_bid="59990.0", best_ask="60000.0", fill_market_orders=False
    )
    session.bot = TradingBot(
        session.config, clock=session.clock, exchange_client=session.venue, write_files=False
    )
    await session.start()
    session.venue.fill(session.entry().order_id)
    await session.settle()
    (take_profit,) = session.resting(SELL)
    return session, take_profit


def the_market_close(session: Session) -> Any:
    """The one market close placed, as the venue holds it."""
    (call,) = session.venue.calls_to("place_market_order")
    (close,) = [o for o in session.venue.orders.values() if o.client_order_id == call.args["client_order_id"]]
    return close


def assert_closed_and_take_profit_freed(session: Session, take_profit: Any) -> None:
    assert session.venue.position == 0
    assert session.venue.cancelled == [take_profit.order_id]
    assert session.resting(SELL) == [] and session.resting(BUY) == []
    session.assert_journal_matches_venue()


async def test_a_risk_close_that_fills_after_the_close_gave_up_still_frees_its_take_profit():
    """The close's answer is lost and it fills only later, after the close path has returned
    (and cancelled nothing, as nothing had closed): the bot's loop then cancels the
    take-profit the fill made redundant, or it would sell a position that is no longer held."""
    session, take_profit = await slow_closes_session(TwoContractVenue, CLOSE_WORST)
    session.venue.answer_unknown_next(reaches_venue=True, stream_update=False)
    session.venue.balance = D("8900")  # -11 %: close the worst
    await session.advance(6)
    close = the_market_close(session)
    assert close.status is OrderStatus.OPEN  # resting, its outcome unknown to the bot
    assert [o.order_id for o in session.resting(SELL)] == [take_profit.order_id, close.order_id]
    assert session.venue.cancelled == []  # nothing closed yet: nothing is redundant
    session.venue.fill(close.order_id, price=D("59990.0"))
    await session.advance(1)
    assert_closed_and_take_profit_freed(session, take_profit)
    assert (await session.stop()).exit_code == EXIT_OK


async def test_a_risk_close_the_venue_has_not_ended_is_not_followed_by_another():
    """A market close answered as accepted but not yet ended (a connector's wait for its end
    timed out) may still fill: a second, wider close for the whole position, then a limit at
    the touch, could sell a position that is no longer held. The close path stops there; the
    close's fill, when it comes, frees the take-profit."""
    session, take_profit = await slow_closes_session(TwoContractVenue, CLOSE_WORST)
    session.venue.balance = D("8900")  # -11 %: close the worst
    await session.advance(6)
    close = the_market_close(session)  # one: no wider one after it
    closes = [p for p in session.venue.placed if p.reduce_only and not p.post_only]
    assert [p.order_type for p in closes] == [OrderType.MARKET]  # and no limit at the touch
    assert session.venue.cancelled == []
    session.venue.fill(close.order_id, price=D("59990.0"))
    await session.advance(1)
    assert_closed_and_take_profit_freed(session, take_profit)
    assert (await session.stop()).exit_code == EXIT_OK


async def test_an_emergency_close_that_ends_while_the_bot_stops_frees_its_take_profit():
    """The emergency close is still open when the close path returns, and the bot stops: it
    waits for the venue to end the close, and cancels the take-profit its fill made redundant
    before it exits, rather than leave it resting over a closed position."""
    risk = RiskLimits(loss_pct=D("10"), emergency_loss_pct=D("15"), stall_seconds=600)
    session, take_profit = await slow_closes_session(MockExchangeClient, risk)
    session.venue.balance = D("8000")  # -20 %: emergency
    await session.advance(6)
    assert session.task is not None and not session.task.done()  # waiting for the close to end
    session.venue.fill(the_market_close(session).order_id, price=D("59990.0"))
    summary = await session.finished()
    assert summary.exit_code == EXIT_RISK_STOP
    assert_closed_and_take_profit_freed(session, take_profit)
    assert summary.position == 0 and summary.resting_exit_orders == 0


async def test_a_fill_during_a_risk_pause_still_gets_its_take_profit():
    session = Session(risk=RiskLimits(stall_seconds=30))
    await session.start()
    entry = session.entry()
    session.venue.set_prices("59990.0", "60000.0")  # one push of market data, then silence
    await session.advance(40)  # no market data for 40 s: paused
    assert "paused" in (session.bot.strategy.entries_blocked or "")
    (pause,) = session.bot.journal.events("risk_pause")  # what status.py shows as the last event
    assert "no market data" in pause[3]
    session.venue.fill(entry.order_id)
    await session.settle()
    (take_profit,) = session.resting(SELL)
    assert take_profit.price == D("60011.9") and take_profit.size == D("0.01")  # entry 59999.9 + 0.02 %
    await session.advance(30)
    assert session.resting(BUY) == []  # still paused: no new entry
    session.assert_journal_matches_venue()


async def test_fills_arriving_while_entries_are_cancelled_at_shutdown_get_take_profits():
    session = Session()
    await session.start()
    entry = session.entry()
    original_cancel = session.venue.cancel_order

    async def fill_then_cancel(contract_id: str, order_id: str):
        session.venue.fill(order_id, size="0.004")  # fills during the cancel's round trip
        return await original_cancel(contract_id, order_id)

    session.venue.cancel_order = fill_then_cancel  # type: ignore[method-assign]
    session.venue.fill(entry.order_id, size="0.003")  # queued when the stop is asked
    summary = await session.stop()
    assert summary.exit_code == EXIT_OK
    (take_profit,) = session.resting(SELL)
    assert take_profit.size == D("0.007")  # both fills, one lot, one take-profit
    assert summary.position == D("0.007") and summary.uncovered_size == 0
    assert summary.resting_exit_orders == 1 and summary.live_entries == 0
    session.assert_journal_matches_venue()


async def test_take_profits_cancelled_on_exit_are_reported_as_uncovered():
    session = Session()
    session.config.cancel_take_profits_on_exit = True
    await session.start()
    session.venue.fill(session.entry().order_id)
    await session.settle()
    summary = await session.stop()
    assert session.resting(SELL) == [] and session.resting(BUY) == []
    assert summary.position == D("0.01") and summary.uncovered_size == D("0.01")
    assert "filled but not covered by a resting take-profit: 0.01" in "\n".join(summary.lines())


async def test_two_grids_on_one_account_never_touch_each_others_orders():
    buy = Session(bot_name="mock_BTC_grid_buy")
    await buy.start()
    buy.venue.fill(buy.entry().order_id)
    await buy.settle()
    buy_orders = {o.order_id for o in buy.venue.open_orders()}
    # A sell grid on the same account (same venue), under its own name.
    sell_config = TradingConfig(
        ticker="BTC",
        exchange="mock",
        strategy="grid",
        quantity=D("0.01"),
        strategy_params={"take_profit": D("0.02"), "wait_time": 10.0, "direction": "sell"},
        bot_name="mock_BTC_grid_sell",
    )
    assert sell_config.client_id_prefix != buy.config.client_id_prefix
    sell_venue = MockExchangeClient(sell_config, buy.clock, best_bid="59990.0", best_ask="60000.0")
    sell_venue.orders = buy.venue.orders  # one account: one set of orders
    sell_bot = TradingBot(sell_config, clock=buy.clock, exchange_client=sell_venue, write_files=False)
    sell_task = asyncio.ensure_future(sell_bot.run())
    await asyncio.wait_for(sell_bot.wait_until_idle(), timeout=10)
    assert sell_bot.execution.active_orders(OrderRole.EXIT) == []  # nothing of the buy grid adopted
    assert sell_venue.cancelled == []  # and nothing of it cancelled as stale
    sell_bot.request_shutdown("done")
    await asyncio.wait_for(sell_task, timeout=10)
    assert buy_orders <= {o.order_id for o in buy.venue.open_orders()}
    await buy.stop()


async def test_a_restart_keeps_the_loss_baseline_and_the_position(tmp_path):
    first = Session()
    first.config.log_dir = tmp_path
    first.bot = TradingBot(first.config, clock=first.clock, exchange_client=first.venue)
    await first.start()
    first.venue.fill(first.entry().order_id)
    await first.settle()
    await first.stop()
    first.venue.balance = D("9500")
    second_bot = TradingBot(first.config, clock=first.clock, exchange_client=first.venue)
    task = asyncio.ensure_future(second_bot.run())
    await asyncio.wait_for(second_bot.wait_until_idle(), timeout=10)
    assert second_bot.risk_manager.baseline_equity == D("10000")
    assert second_bot.execution.position == D("0.01") == first.venue.position
    assert [r.status for r in second_bot.execution.active_orders(OrderRole.EXIT)] == [OrderStatus.OPEN]
    second_bot.request_shutdown("done")
    summary = await asyncio.wait_for(task, timeout=10)
    assert summary.position == D("0.01") and summary.resting_exit_orders == 1
