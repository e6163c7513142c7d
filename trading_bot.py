"""The supervisor: wires a strategy to a venue client and runs the universal trading loop.

It knows no strategy and no venue by name. Each iteration: deliver queued order events to the
strategy, ask the risk manager, get market data, ask the strategy whether and what to trade, and
carry the answer out. Between iterations it waits for the next order or market event (or the
strategy's own deadline), so a fill is acted on within milliseconds rather than after a sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from exchanges.base import (
    BaseExchangeClient,
    ConfigurationError,
    ExchangeError,
    MarketUpdate,
    NetworkError,
    OrderNotFound,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    PostOnlyRejected,
    QuietQuotes,
)
from exchanges.factory import ExchangeFactory
from helpers.clock import Clock, LiveClock
from helpers.log_setup import activity_log_path
from helpers.order_tracker import OrderTracker, TrackedOrder
from helpers.risk_manager import RiskAction, RiskDecision, RiskManager
from helpers.trade_journal import TradeJournal, orders_csv_path
from helpers.trading_config import RiskLimits, TradingConfig
from strategies.base_strategy import (
    BaseStrategy,
    OrderParams,
    OrderRole,
    StrategyAction,
    StrategyResult,
    WakeLevels,
)
from strategies.factory import StrategyFactory

__all__ = ["BotSummary", "RiskLimits", "TradingBot", "TradingConfig"]

logger = logging.getLogger("bot")


@dataclass
class BotSummary:
    """What a run came to; printed at the end and returned to callers."""

    stop_reason: str
    exit_code: int
    runtime_seconds: float
    orders_placed: int
    orders_failed: int
    fills: int
    volume: Decimal
    fees: Decimal
    realized_pnl: Decimal
    position: Decimal
    resting_exit_orders: int
    unrealized_pnl: Decimal | None = None
    mark_price: Decimal | None = None
    strategy_status: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rows = [
            f"stopped: {self.stop_reason}",
            f"runtime: {self.runtime_seconds:.1f} s",
            f"orders placed: {self.orders_placed} (refused: {self.orders_failed})",
            f"fills: {self.fills}, volume: {self.volume:.2f}",
            f"realized PnL: {self.realized_pnl:.4f}, fees: {self.fees:.4f}, "
            f"net: {self.realized_pnl - self.fees:.4f}",
            f"position left: {self.position}"
            + (
                f" (unrealized PnL {self.unrealized_pnl:.4f} at mid {self.mark_price})"
                if self.unrealized_pnl is not None
                else ""
            ),
            f"take-profit orders left resting: {self.resting_exit_orders}",
        ]
        rows.extend(f"{key}: {value}" for key, value in self.strategy_status.items())
        return rows


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_CONFIGURATION = 2
EXIT_RISK_STOP = 3


class TradingBot:
    """Strategy-agnostic, venue-agnostic coordinator."""

    def __init__(
        self,
        config: TradingConfig,
        clock: Clock | None = None,
        exchange_client: BaseExchangeClient | None = None,
        write_files: bool = True,
        filter_market_wakes: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock or LiveClock()
        self.exchange_client = exchange_client or ExchangeFactory.create_exchange(
            config.exchange, config, self.clock
        )
        self.strategy: BaseStrategy = StrategyFactory.create_strategy(
            config.strategy, config, self.exchange_client, self.clock
        )
        self.risk_manager = RiskManager(self.exchange_client, config, self.clock)
        self.orders = OrderTracker()
        self.journal = TradeJournal(orders_csv_path(config.log_dir, config.bot_name) if write_files else None)
        self.activity_log = activity_log_path(config.log_dir, config.bot_name)

        self._updates: deque[OrderUpdate] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stop_reason: str | None = None
        self._exit_code = EXIT_OK
        self._started_at: float | None = None
        self._last_risk_reason = ""
        self._done = asyncio.Event()
        self._last_market_update_at: float | None = None
        self.orders_failed = 0
        #: Skip market updates that reach none of the strategy's and risk manager's wake levels.
        self.filter_market_wakes = filter_market_wakes
        self._wake_levels: WakeLevels | None = None
        #: The same levels, offered to the venue so it can skip updates we would discard.
        self._quiet = QuietQuotes()
        #: Times the loop was woken; a simulated-time driver compares it to skip idle checks.
        self.wakes = 0

    # -- events from the venue (called synchronously by the client) ---------------------------

    def _on_order_update(self, update: OrderUpdate) -> None:
        self._updates.append(update)
        self.expect_activity()

    def _on_market_update(self, update: MarketUpdate) -> None:
        self._last_market_update_at = self.clock.now()
        # Venues that do not honour QuietQuotes deliver everything: the same test, here.
        levels = self._wake_levels
        if (
            levels is not None
            and levels.bid_low < update.best_bid < levels.bid_high
            and levels.ask_low < update.best_ask < levels.ask_high
        ):
            return  # reaches no level: cannot change a decision (WakeLevels.crossed, inlined)
        self.expect_activity()

    def expect_activity(self) -> None:
        """Wake the loop: something it may act on happened (an event, or a simulated timer)."""
        self.wakes += 1
        self._idle.clear()
        self._wake.set()

    # -- control -------------------------------------------------------------------------------

    def request_shutdown(self, reason: str, exit_code: int = EXIT_OK) -> None:
        """Ask the loop to stop after the current step (signal handlers call this)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._exit_code = exit_code
            logger.info("stopping: %s", reason)
        self.expect_activity()

    @property
    def idle(self) -> bool:
        """Parked waiting for events (or finished): a simulated-time driver may move time on."""
        return self._idle.is_set() or self._done.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    async def wait_until_idle(self) -> None:
        """Return once the loop is parked waiting for events, or has finished.

        Simulated-time drivers call this after feeding an event; after releasing clock timers
        they call :meth:`expect_activity` first, since a timer wakes the loop without an event.
        """
        # run() sets _idle when it finishes, so one wait covers both (and costs no task).
        while not self._done.is_set() and not self._idle.is_set():
            await self._idle.wait()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> BotSummary:
        self._done.clear()
        self._started_at = self.clock.now()
        try:
            await self.exchange_client.connect()
            self.exchange_client.subscribe_order_updates(self._on_order_update)
            # The venue may skip updates inside our wake levels, noting their time on its clock:
            # only offered when that is our clock, so the stall check reads the same times.
            same_clock = self.exchange_client.clock is self.clock
            self.exchange_client.subscribe_market_updates(
                self._on_market_update, quiet=self._quiet if same_clock else None
            )
            await self.strategy.initialize()
            await self.risk_manager.initialize()
            logger.info(
                "%s on %s %s started (orders carry client-id prefix %s)",
                self.strategy.get_strategy_name(),
                self.config.exchange,
                self.config.ticker,
                self.config.client_id_prefix,
            )
            while not self.stopping:
                await self._run_iteration()
        except ConfigurationError as exc:
            self.request_shutdown(f"configuration: {exc}", EXIT_BAD_CONFIGURATION)
        except ExchangeError as exc:
            self.request_shutdown(f"{type(exc).__name__}: {exc}", EXIT_ERROR)
        except Exception as exc:
            logger.exception("unexpected error")
            self.request_shutdown(
                f"unexpected {type(exc).__name__}: {exc} (see {self.activity_log})", EXIT_ERROR
            )
        finally:
            summary = await self._shutdown()
            self._done.set()
            self._idle.set()
        return summary

    async def _run_iteration(self) -> None:
        self._wake.clear()
        if self._duration_elapsed():
            self.request_shutdown(f"duration of {self.config.duration:g} s reached")
            return
        order_events_arrived = bool(self._updates)
        if order_events_arrived:
            await self._deliver_order_updates()

        last_market_update_at = self._market_update_time()
        if last_market_update_at is not None:
            # Before the check: a stall must end as soon as the venue pushes again, paused or not.
            self.risk_manager.record_market_data(last_market_update_at)
        decision = await self.risk_manager.check_risk_conditions(allow_refresh=not order_events_arrived)
        if decision.action is not RiskAction.NONE:
            if await self._handle_risk_decision(decision):
                await self._wait(self.config.idle_wait_seconds)
                return
        elif self._last_risk_reason:
            logger.info("risk condition cleared: resuming")
            self._last_risk_reason = ""
        if self.stopping:
            return

        try:
            market_data = await self.strategy.get_market_data()
        except ExchangeError as exc:
            logger.warning("market data unavailable: %s", exc)
            await self._wait(self.config.idle_wait_seconds)
            return
        # Freshness is when the venue last pushed market data, not when we read a cached book.
        self.risk_manager.record_market_data(last_market_update_at or market_data.timestamp)

        if await self.strategy.should_execute(market_data):
            result = await self.strategy.execute_strategy(market_data)
            if await self._handle_strategy_result(result):
                return
        if order_events_arrived and self.risk_manager.enabled:
            return  # go again at once: that pass reads the account the fill skipped
        seconds = self.strategy.seconds_until_next_decision()
        levels = self._wake_levels = self._market_wake_levels()
        if levels is not None:
            self._quiet.open(levels.bid_low, levels.bid_high, levels.ask_low, levels.ask_high)
            if seconds is None:
                # Only the levels, order events and a feed stall can matter: no polling needed.
                seconds = self.risk_manager.seconds_until_stall() if self.risk_manager.enabled else 86400.0
        try:
            await self._wait(seconds)
        finally:
            self._wake_levels = None
            self._quiet.close()

    def _market_update_time(self) -> float | None:
        """When the venue last pushed market data: delivered, or skipped as quiet."""
        delivered = self._last_market_update_at
        skipped = self._quiet.skipped_at
        if skipped is None or (delivered is not None and delivered >= skipped):
            return delivered
        return skipped

    def _market_wake_levels(self) -> WakeLevels | None:
        """The quotes that may change a decision, or None to wake on every market update."""
        if not self.filter_market_wakes:
            return None
        levels = self.strategy.market_wake_levels()
        if levels is None:
            return None
        ledger = self.journal.ledger
        risk_levels = self.risk_manager.market_wake_levels(
            ledger.size, ledger.entry_price, ledger.realized_pnl - ledger.fees
        )
        return None if risk_levels is None else levels.narrowed(risk_levels)

    def _duration_elapsed(self) -> bool:
        return (
            self.config.duration is not None
            and self._started_at is not None
            and self.clock.now() - self._started_at >= self.config.duration
        )

    async def _wait(self, seconds: float | None) -> None:
        """Park until an order/market event or the deadline, whichever comes first."""
        timeout = self.config.idle_wait_seconds if seconds is None else max(0.0, seconds)
        if self.config.duration is not None and self._started_at is not None:
            remaining = self._started_at + self.config.duration - self.clock.now()
            timeout = min(timeout, max(0.0, remaining))
        if self._updates or self.stopping or self._wake.is_set():
            return
        self._idle.set()
        try:
            await self.clock.wait_for_event(self._wake, timeout)
        finally:
            self._idle.clear()

    async def _deliver_order_updates(self) -> None:
        """Hand queued order events to the strategy in arrival order."""
        while self._updates:
            update = self._updates.popleft()
            tracked = self.orders.apply_update(update)
            role = tracked.role.value if tracked else "external"
            self.journal.order_update(self.clock.now(), update, role)
            await self.strategy.on_order_update(update)

    # -- carrying out decisions --------------------------------------------------------------

    async def _handle_strategy_result(self, result: StrategyResult) -> bool:
        """Execute the strategy's decision; True when the loop should go again at once."""
        if result.message:
            logger.debug("strategy: %s", result.message)
        action = result.action
        if action is StrategyAction.PLACE_ORDERS:
            for order in result.orders:
                await self._execute_order(order)
            return True
        if action is StrategyAction.CANCEL_ORDERS:
            for order_id in result.cancel_order_ids:
                await self._cancel_order(order_id, result.message)
            return True
        if action is StrategyAction.CLOSE_POSITION:
            position = await self.exchange_client.get_position(self.strategy.contract_id)
            await self._close_positions([position], result.message or "strategy asked to close")
            return True
        if action is StrategyAction.STOP:
            self.request_shutdown(result.message or "strategy asked to stop")
            return True
        if action is StrategyAction.WAIT:
            await self._wait(result.wait_time)
        return False

    async def _execute_order(self, params: OrderParams, contract_id: str | None = None) -> OrderResult | None:
        """Send one order (on the strategy's contract unless told otherwise), tracked before it
        leaves; the strategy hears how it went, whoever asked for it."""
        if params.order_type is OrderType.LIMIT and params.price is None:
            raise ValueError("a limit order needs a price")
        client = self.exchange_client
        contract_id = contract_id or self.strategy.contract_id
        params.client_order_id = client.client_ids.next_id(self.clock.now())
        self.orders.submitted(params)
        try:
            if params.order_type is OrderType.MARKET:
                result = await client.place_market_order(
                    contract_id,
                    params.side,
                    params.quantity,
                    params.client_order_id,
                    params.max_slippage_pct or self.config.max_slippage_pct,
                    reduce_only=params.reduce_only,
                )
            else:
                assert params.price is not None
                result = await client.place_limit_order(
                    contract_id,
                    params.side,
                    params.quantity,
                    params.price,
                    params.client_order_id,
                    post_only=params.post_only,
                    reduce_only=params.reduce_only,
                )
        except NetworkError as exc:
            # The order may have reached the venue: keep it in flight, never call it rejected.
            result = OrderResult(
                success=False,
                client_order_id=params.client_order_id,
                side=params.side,
                size=params.quantity,
                price=params.price,
                status=OrderStatus.UNKNOWN,
                error_message=f"{type(exc).__name__}: {exc}",
            )
            self.orders.acknowledged(params.client_order_id, result)
            self.risk_manager.record_order_failure(exc)
            self.journal.order_failed(self.clock.now(), params, exc)
            await self.strategy.on_order_placed(params, result)
            return result
        except ExchangeError as exc:
            self.orders.failed(params.client_order_id, exc)
            self.orders_failed += 1
            if not isinstance(exc, PostOnlyRejected):
                self.risk_manager.record_order_failure(exc)
            self.journal.order_failed(self.clock.now(), params, exc)
            await self.strategy.on_order_failed(params, exc)
            return None
        self.risk_manager.record_order_success()
        self.orders.acknowledged(params.client_order_id, result)
        self.journal.order_placed(self.clock.now(), params, result)
        await self.strategy.on_order_placed(params, result)
        return result

    async def _cancel_order(self, order_id: str, reason: str = "") -> None:
        try:
            result = await self.exchange_client.cancel_order(self.strategy.contract_id, order_id)
        except ExchangeError as exc:
            if not isinstance(exc, OrderNotFound):
                logger.warning("cancel of %s failed: %s", order_id, exc)
            await self.strategy.on_cancel_result(order_id, None, exc)
            return
        self.journal.order_cancelled(self.clock.now(), order_id, reason)
        await self.strategy.on_cancel_result(order_id, result, None)

    async def _close_positions(self, positions: list[Position] | tuple[Position, ...], reason: str) -> None:
        for position in positions:
            side = position.side
            if side is None:
                continue
            params = OrderParams(
                side=side.opposite,
                quantity=abs(position.size),
                order_type=OrderType.MARKET,
                post_only=False,
                reduce_only=True,
                role=OrderRole.EXIT,
            )
            logger.warning(
                "closing %s position of %s on %s: %s", side.value, position.size, position.contract_id, reason
            )
            await self._execute_order(params, position.contract_id)

    async def _handle_risk_decision(self, decision: RiskDecision) -> bool:
        """Act on a risk decision; True when trading should pause this iteration."""
        if decision.reason != self._last_risk_reason:
            logger.warning("risk: %s -> %s", decision.reason, decision.action.value)
            self._last_risk_reason = decision.reason
        if decision.action is RiskAction.PAUSE:
            return True
        if decision.action is RiskAction.CLOSE_WORST_POSITIONS:
            await self._close_positions(decision.positions_to_close, decision.reason)
            return False
        if decision.action is RiskAction.CLOSE_ALL_AND_STOP:
            await self._cancel_tracked(self.orders.active())
            await self._close_positions(decision.positions_to_close, decision.reason)
            self.request_shutdown(f"risk: {decision.reason}", EXIT_RISK_STOP)
            return True
        self.request_shutdown(f"risk: {decision.reason}", EXIT_RISK_STOP)
        return True

    # -- shutdown ------------------------------------------------------------------------------

    async def _cancel_tracked(self, orders: list[TrackedOrder]) -> None:
        if not orders:
            return
        unresolved = [order for order in orders if order.order_id is None]
        if unresolved:
            try:
                live = await self.exchange_client.get_active_orders(self.strategy.contract_id)
            except ExchangeError as exc:
                logger.warning("could not list active orders to cancel: %s", exc)
                live = []
            by_client_id = {info.client_order_id: info.order_id for info in live}
            for order in unresolved:
                order.order_id = by_client_id.get(order.client_order_id)
        for order in orders:
            if order.order_id is None:
                continue
            try:
                await self.exchange_client.cancel_order(self.strategy.contract_id, order.order_id)
                order.status = OrderStatus.CANCELLED
                self.journal.order_cancelled(self.clock.now(), order.order_id, "shutdown")
            except OrderNotFound:
                continue
            except ExchangeError as exc:
                logger.warning("cancel of %s at shutdown failed: %s", order.order_id, exc)

    async def _final_mark_price(self) -> Decimal | None:
        """Mid price for the summary's unrealized PnL; None (not zero) when it cannot be read."""
        try:
            bid, ask = await self.exchange_client.fetch_bbo_prices(self.strategy.contract_id)
        except ExchangeError as exc:
            logger.warning("no final price for the summary: %s", exc)
            return None
        return (bid + ask) / 2

    async def _shutdown(self) -> BotSummary:
        reason = self._stop_reason or "stopped"
        strategy_ready = self.strategy.contract is not None
        if strategy_ready:
            try:
                await self._deliver_order_updates()
            except Exception:
                logger.exception("error while delivering final order updates")
            to_cancel = self.orders.active(OrderRole.ENTRY)
            if self.config.cancel_take_profits_on_exit:
                to_cancel += self.orders.active(OrderRole.EXIT)
            await self._cancel_tracked(to_cancel)
        mark_price = await self._final_mark_price() if strategy_ready else None
        try:
            await self.exchange_client.disconnect()
        except Exception as exc:
            logger.warning("disconnect failed: %s", exc)
        ledger = self.journal.ledger
        summary = BotSummary(
            stop_reason=reason,
            exit_code=self._exit_code,
            runtime_seconds=self.clock.now() - (self._started_at or self.clock.now()),
            orders_placed=self.orders.submitted_count - self.orders_failed,
            orders_failed=self.orders_failed,
            fills=ledger.fill_count,
            volume=ledger.volume,
            fees=ledger.fees,
            realized_pnl=ledger.realized_pnl,
            position=ledger.size,
            resting_exit_orders=len(self.orders.active(OrderRole.EXIT)),
            unrealized_pnl=ledger.unrealized_pnl(mark_price) if mark_price is not None else None,
            mark_price=mark_price,
            strategy_status=self.strategy.status_summary() if strategy_ready else {},
        )
        self.journal.close()
        return summary
