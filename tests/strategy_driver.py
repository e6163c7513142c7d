"""Plays the bot's part for strategy tests, so a test reads like a trading session.

It runs the strategy over the real execution layer (``strategy.execution``, an in-memory journal
unless the test gives another), in the bot's order of calls: reconcile at start, then each step
hands the execution events to the strategy, resolves due look-ups, gets market data, asks
``should_execute`` and carries the result out through the execution layer. There is no risk
manager and no waiting: time moves only when the test says so.
"""

from __future__ import annotations

from exchanges.base import BaseExchangeClient, ExchangeError
from execution.engine import ExecutionEngine
from execution.records import ExecutionEventKind, OrderRecord
from helpers.clock import SimulatedClock
from strategies.base_strategy import BaseStrategy, OrderRole, StrategyAction, StrategyResult

_LOOP_AGAIN = (StrategyAction.PLACE_ORDERS, StrategyAction.CANCEL_ORDERS, StrategyAction.CLOSE_POSITION)


class StrategyDriver:
    """Runs a strategy against a (mock) venue in the bot's order of calls."""

    def __init__(self, strategy: BaseStrategy, exchange: BaseExchangeClient, clock: SimulatedClock) -> None:
        self.strategy = strategy
        self.exchange = exchange
        self.clock = clock
        self.engine: ExecutionEngine = strategy.execution
        #: Every result the strategy returned, in order.
        self.results: list[StrategyResult] = []
        #: Every (order, error) refusal the strategy heard of.
        self.failures: list[tuple[OrderRecord, ExchangeError]] = []
        #: The STOP message, once the strategy asked to stop.
        self.stop_message: str | None = None

    async def start(self) -> None:
        await self.strategy.initialize()
        await self.engine.reconcile(
            self.strategy.contract_id, self.strategy.classify_foreign_order, self.strategy.adopted_entry_price
        )
        await self.deliver_updates()
        await self.strategy.on_ready()

    async def deliver_updates(self) -> None:
        for event in self.engine.drain_events():
            if event.kind is ExecutionEventKind.REFUSED and isinstance(event.error, ExchangeError):
                self.failures.append((event.order, event.error))
            await self.strategy.on_execution_event(event)

    async def step(self) -> StrategyResult | None:
        """One loop iteration; None when should_execute said there was nothing to do."""
        await self.deliver_updates()
        await self.engine.resolve_pending()
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
                if order.role is OrderRole.ENTRY and self.strategy.entries_blocked is not None:
                    continue
                await self.engine.submit(order, self.strategy.contract_id)
        elif result.action is StrategyAction.CANCEL_ORDERS:
            for client_id in result.cancel_client_ids:
                await self.engine.cancel(client_id, result.message or "strategy")
        elif result.action is StrategyAction.STOP:
            self.stop_message = result.message
        await self.deliver_updates()  # the bot goes round again at once after acting
