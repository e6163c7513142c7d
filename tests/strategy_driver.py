"""Plays the bot's part for strategy tests, so a test reads like a trading session.

It calls the strategy exactly as ``trading_bot.TradingBot`` does: deliver queued order updates
in arrival order, get market data, ask ``should_execute``, then carry the result out (assigning
client ids, sending orders, answering with ``on_order_placed``/``on_order_failed``, cancelling
and answering with ``on_cancel_result``). Updates emitted while a call is in flight wait in the
queue until the next step, as in the bot. There is no risk manager and no waiting: time moves
only when the test says so.
"""

from __future__ import annotations

from collections import deque

from exchanges.base import (
    BaseExchangeClient,
    ExchangeError,
    NetworkError,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from helpers.clock import SimulatedClock
from strategies.base_strategy import BaseStrategy, OrderParams, StrategyAction, StrategyResult

_LOOP_AGAIN = (StrategyAction.PLACE_ORDERS, StrategyAction.CANCEL_ORDERS, StrategyAction.CLOSE_POSITION)


class StrategyDriver:
    """Runs a strategy against a (mock) venue in the bot's order of calls."""

    def __init__(self, strategy: BaseStrategy, exchange: BaseExchangeClient, clock: SimulatedClock) -> None:
        self.strategy = strategy
        self.exchange = exchange
        self.clock = clock
        self.pending_updates: deque[OrderUpdate] = deque()
        exchange.subscribe_order_updates(self.pending_updates.append)
        #: Every result the strategy returned, in order.
        self.results: list[StrategyResult] = []
        #: Every (order, error) placement failure handed to the strategy.
        self.failures: list[tuple[OrderParams, ExchangeError]] = []
        #: The STOP message, once the strategy asked to stop.
        self.stop_message: str | None = None

    async def start(self) -> None:
        await self.strategy.initialize()

    async def deliver_updates(self) -> None:
        while self.pending_updates:
            await self.strategy.on_order_update(self.pending_updates.popleft())

    async def step(self) -> StrategyResult | None:
        """One loop iteration; None when should_execute said there was nothing to do."""
        await self.deliver_updates()
        market = await self.strategy.get_market_data()
        if not await self.strategy.should_execute(market):
            return None
        result = await self.strategy.execute_strategy(market)
        self.results.append(result)
        await self.carry_out(result)
        return result

    async def settle(self, max_steps: int = 50) -> list[StrategyResult]:
        """Loop as the bot does while the strategy keeps acting; return what it did."""
        done: list[StrategyResult] = []
        for _ in range(max_steps):
            if self.stop_message is not None:
                return done
            result = await self.step()
            if result is None:
                return done
            done.append(result)
            if result.action not in _LOOP_AGAIN:
                return done
        raise AssertionError(f"strategy still acting after {max_steps} steps: {done[-3:]}")

    async def advance(self, seconds: float) -> list[StrategyResult]:
        """Let ``seconds`` of clock time pass, then settle."""
        return await self.advance_to(self.clock.now() + seconds)

    async def advance_to(self, timestamp: float) -> list[StrategyResult]:
        self.clock.advance_to(timestamp)
        return await self.settle()

    async def carry_out(self, result: StrategyResult) -> None:
        if result.action is StrategyAction.PLACE_ORDERS:
            for order in result.orders:
                await self.place(order)
        elif result.action is StrategyAction.CANCEL_ORDERS:
            for order_id in result.cancel_order_ids:
                await self.cancel(order_id)
        elif result.action is StrategyAction.STOP:
            self.stop_message = result.message

    async def place(self, order: OrderParams) -> None:
        order.client_order_id = self.exchange.client_ids.next_id(self.clock.now())
        contract_id = self.strategy.contract_id
        try:
            if order.order_type is OrderType.MARKET:
                assert order.max_slippage_pct is not None, "market orders should carry a slippage bound"
                result = await self.exchange.place_market_order(
                    contract_id,
                    order.side,
                    order.quantity,
                    order.client_order_id,
                    order.max_slippage_pct,
                    reduce_only=order.reduce_only,
                )
            else:
                assert order.price is not None, "a limit order needs a price"
                result = await self.exchange.place_limit_order(
                    contract_id,
                    order.side,
                    order.quantity,
                    order.price,
                    order.client_order_id,
                    post_only=order.post_only,
                    reduce_only=order.reduce_only,
                )
        except NetworkError as exc:
            # As the bot does: the order may have arrived, so the outcome is unknown, not failed.
            unknown = OrderResult(
                success=False,
                client_order_id=order.client_order_id,
                side=order.side,
                size=order.quantity,
                price=order.price,
                status=OrderStatus.UNKNOWN,
                error_message=f"{type(exc).__name__}: {exc}",
            )
            await self.strategy.on_order_placed(order, unknown)
            return
        except ExchangeError as exc:
            self.failures.append((order, exc))
            await self.strategy.on_order_failed(order, exc)
            return
        await self.strategy.on_order_placed(order, result)

    async def cancel(self, order_id: str) -> None:
        try:
            result = await self.exchange.cancel_order(self.strategy.contract_id, order_id)
        except ExchangeError as exc:
            await self.strategy.on_cancel_result(order_id, None, exc)
            return
        await self.strategy.on_cancel_result(order_id, result, None)
