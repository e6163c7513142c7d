"""The supervisor: wires a strategy to a venue client and runs the universal trading loop.

It knows no strategy and no venue by name. Orders go through the execution layer
(``execution/``), which owns and journals them; the bot hands its events to the strategy, asks
the risk manager, asks the strategy whether and what to trade, and carries the answer out.
Between iterations it waits for the next order or market event (or a deadline), so a fill is
acted on within milliseconds rather than after a sleep.

Risk and shutdown act through the same execution layer and tell the strategy:

* pause: no new entries; fills still get their exits and live orders are still managed;
* close-worst: this bot's own journaled position is closed (never another bot's), the exits it
  made redundant are cancelled, and no new entries open until the condition clears;
* emergency: the position is closed first (market within the slippage bound, then wider, then a
  limit at the touch), and only then are exits cancelled, for the size actually closed;
* shutdown: entries are cancelled, and every fill that arrives before the venue confirms gets its
  exit (or is reported, when exits are cancelled on exit).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal

from exchanges.base import (
    AuthenticationError,
    BaseExchangeClient,
    ConfigurationError,
    ExchangeError,
    MarketUpdate,
    OrderSide,
    OrderStatus,
    OrderType,
    QuietQuotes,
)
from exchanges.factory import ExchangeFactory
from execution.engine import ExecutionEngine
from execution.journal import ExecutionJournal, JournalWriteError, journal_path, orders_csv_path
from execution.records import OrderRecord
from helpers import reaction_hold
from helpers.clock import Clock, LiveClock, Signal
from helpers.combined_account import CombinedAccount
from helpers.log_setup import activity_log_path
from helpers.reaction_hold import ReactionHold
from helpers.risk_manager import RiskAction, RiskDecision, RiskManager, inverse_multiplier_of
from helpers.status_line import StatusLine
from helpers.trading_config import RiskLimits, TradingConfig
from strategies.base_strategy import (
    BaseStrategy,
    OrderParams,
    OrderRole,
    StrategyAction,
    StrategyResult,
    Venue,
    WakeLevels,
)
from strategies.factory import StrategyFactory

__all__ = ["BotSummary", "RiskLimits", "TradingBot", "TradingConfig"]

logger = logging.getLogger("bot")

ZERO = Decimal(0)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_CONFIGURATION = 2
EXIT_RISK_STOP = 3

#: Wider slippage bounds tried, as multiples of the configured one, before a limit at the touch.
CLOSE_SLIPPAGE_STEPS = (1, 2, 4)
#: Passes of the shutdown drain (deliver events, close fills, wait) before giving up.
SHUTDOWN_PASSES = 40
#: Seconds the shutdown drain waits for the venue to confirm cancels, in total.
SHUTDOWN_SECONDS = 10.0
#: Seconds between coverage checks while trading.
COVERAGE_CHECK_SECONDS = 30.0
#: Seconds between the "still alive" marks a running bot leaves in its journal (status readers).
HEARTBEAT_SECONDS = 10.0


@dataclass
class BotSummary:
    """What a run came to, from the journal and the venue; printed at the end."""

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
    resting_exit_size: Decimal = ZERO
    unknown_orders: int = 0
    live_entries: int = 0
    uncovered_size: Decimal = ZERO
    venue_position: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    mark_price: Decimal | None = None
    funding: Decimal = ZERO
    strategy_status: dict[str, str] = field(default_factory=dict)
    #: One line per venue when the strategy trades on several (the totals above add them up).
    venue_lines: list[str] = field(default_factory=list)

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl + (self.unrealized_pnl or ZERO) - self.fees + self.funding

    def lines(self) -> list[str]:
        venue = "unknown (could not be read)" if self.venue_position is None else str(self.venue_position)
        rows = [
            f"stopped: {self.stop_reason}",
            f"runtime: {self.runtime_seconds:.1f} s; this run: {self.orders_placed} orders placed, "
            f"{self.orders_failed} refused",
            f"fills (journal, all runs): {self.fills}, volume {self.volume:.2f}",
            f"position: {self.position} (this bot, from its journal); venue: {venue}",
            f"take-profits resting on the venue: {self.resting_exit_orders} (size {self.resting_exit_size})",
        ]
        if self.venue_lines:
            count = len(self.venue_lines)
            rows[3] = f"net position over {count} venues: {self.position} (journals); venues: {venue}"
        if self.uncovered_size:
            rows.append(f"filled but not covered by a resting take-profit: {self.uncovered_size}")
        if self.live_entries:
            rows.append(f"entry orders still live on the venue: {self.live_entries}")
        if self.unknown_orders:
            rows.append(f"orders whose state is unknown (look them up on the venue): {self.unknown_orders}")
        unrealized = (
            f"{self.unrealized_pnl:.4f} at mid {self.mark_price}"
            if self.unrealized_pnl is not None
            else "n/a"
        )
        rows.append(
            f"PnL: realized {self.realized_pnl:.4f}, unrealized {unrealized}, fees {self.fees:.4f}, "
            f"funding {self.funding:.4f}, net {self.net_pnl:.4f}"
        )
        rows.extend(self.venue_lines)
        rows.extend(f"{key}: {value}" for key, value in self.strategy_status.items())
        return rows


class TradingBot:
    """Strategy-agnostic, venue-agnostic coordinator."""

    def __init__(
        self,
        config: TradingConfig,
        clock: Clock | None = None,
        exchange_client: BaseExchangeClient | None = None,
        write_files: bool = True,
        filter_market_wakes: bool = True,
        venue_clients: list[BaseExchangeClient] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or LiveClock()
        required = StrategyFactory.strategy_class(config.strategy).REQUIRED_VENUES
        if required != config.venue_count:
            raise ConfigurationError(
                f"strategy {config.strategy!r} trades on {required} venue(s), {config.venue_count} configured"
            )
        if venue_clients is not None:
            exchange_client = venue_clients[0]
        self.exchange_client = exchange_client or ExchangeFactory.create_exchange(
            config.exchange, config, self.clock
        )
        #: One venue per configured exchange: venue 0 is exchange_client with the bot's journal;
        #: each further venue has its own client, journal and execution layer (its own orders).
        self.venues: list[Venue] = []
        for index in range(config.venue_count):
            venue_config = config.venue_config(index)
            if index == 0:
                client = self.exchange_client
            elif venue_clients is not None:
                client = venue_clients[index]
            else:
                client = ExchangeFactory.create_exchange(venue_config.exchange, venue_config, self.clock)
            journal = self._open_journal(venue_config, write_files)
            engine = ExecutionEngine(client, self.clock, journal)
            engine.add_listener(self.expect_activity)
            self.venues.append(Venue(f"{venue_config.exchange}#{index}", client, engine))
        self.journal = self.venues[0].execution.journal
        self.execution = self.venues[0].execution
        #: Every venue's execution layer (one for a single-venue strategy).
        self.engines: tuple[ExecutionEngine, ...] = tuple(venue.execution for venue in self.venues)
        self.strategy: BaseStrategy = StrategyFactory.create_strategy(
            config.strategy,
            config,
            self.exchange_client,
            self.clock,
            self.execution,
            self.venues if len(self.venues) > 1 else None,
        )
        # A strategy on several venues is judged on their combined account (a hedge's legs net out).
        clients = [venue.client for venue in self.venues]
        account = CombinedAccount(clients) if len(clients) > 1 else self.exchange_client
        self.risk_manager = RiskManager(
            account,
            config,
            self.clock,
            store=self.journal,
            inverse_multiplier=inverse_multiplier_of(account),
        )
        self.activity_log = activity_log_path(config.log_dir, config.bot_name)

        self._wake = Signal()
        #: Live runs keep the garbage collector and the log thread out of a reaction to an event
        #: (see helpers.reaction_hold).
        self._reaction_hold = ReactionHold() if isinstance(self.clock, LiveClock) else None
        self._idle = asyncio.Event()
        self._stop_reason: str | None = None
        self._exit_code = EXIT_OK
        self._started_at: float | None = None
        #: The risk action last logged ("" when none holds).
        self._last_risk_action = ""
        self._risk_block: str | None = None
        self._done = asyncio.Event()
        self._last_market_update_at: float | None = None
        self._reconcile_due = False
        self._reconciled = False
        self._next_coverage_check = 0.0
        self._next_heartbeat = 0.0
        self._status_line = StatusLine(logger, self.clock.now)
        #: Skip market updates that reach none of the strategy's and risk manager's wake levels.
        self.filter_market_wakes = filter_market_wakes
        self._wake_levels: WakeLevels | None = None
        #: The same levels, offered to the venue so it can skip updates we would discard.
        self._quiet = QuietQuotes()
        #: Times the loop was woken; a simulated-time driver compares it to skip idle checks.
        self.wakes = 0

    @staticmethod
    def _open_journal(config: TradingConfig, write_files: bool) -> ExecutionJournal:
        journal = ExecutionJournal(
            journal_path(config.log_dir, config.bot_name) if write_files else None,
            orders_csv_path(config.log_dir, config.bot_name) if write_files else None,
        )
        journal.set_meta("bot_name", config.bot_name)
        journal.set_meta("client_id_prefix", config.client_id_prefix)
        if write_files:
            journal.set_meta("pid", str(os.getpid()))
        return journal

    def _events_waiting(self) -> bool:
        for engine in self.engines:  # asked several times a pass: a loop, not a generator
            if engine.events:
                return True
        return False

    # -- events from the venue (called synchronously by the client) ---------------------------

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

    def _on_other_market_update(self, update: MarketUpdate) -> None:
        """A further venue's quote: the wake levels are venue 0's, so every one wakes the loop."""
        self.expect_activity()

    def _on_reconnected(self) -> None:
        """The venue's private stream came back: what happened meanwhile must be read back."""
        self._reconcile_due = True
        self.journal.note(self.clock.now(), "reconnected", "private stream back: reconciling")
        self.expect_activity()

    def expect_activity(self) -> None:
        """Wake the loop: something it may act on happened (an event, or a simulated timer)."""
        if self._reaction_hold is not None:
            self._reaction_hold.hold()
        self.wakes += 1
        self._idle.clear()
        self._wake.set()

    # -- control -------------------------------------------------------------------------------

    def request_shutdown(self, reason: str, exit_code: int = EXIT_OK) -> None:
        """Ask the loop to stop after the current step (signal handlers call this)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._exit_code = exit_code
            logger.info("stopping: %s", reason, extra={"notify": "stop"})
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
        while not self._done.is_set() and not self._idle.is_set():
            await self._idle.wait()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> BotSummary:
        self._done.clear()
        self._started_at = self.clock.now()
        try:
            await self.exchange_client.connect()
            self.exchange_client.subscribe_reconnects(self._on_reconnected)
            # The venue may skip updates inside our wake levels, noting their time on its clock:
            # only offered when that is our clock, so the stall check reads the same times.
            same_clock = self.exchange_client.clock is self.clock
            self.exchange_client.subscribe_market_updates(
                self._on_market_update, quiet=self._quiet if same_clock else None
            )
            for venue in self.venues[1:]:
                await venue.client.connect()
                venue.client.subscribe_reconnects(self._on_reconnected)
                venue.client.subscribe_market_updates(self._on_other_market_update)
            await self.strategy.initialize()
            await self._reconcile()
            await self.strategy.on_ready()
            await self.risk_manager.initialize()
            logger.info(
                "%s on %s %s started as %s (orders carry client-id prefix %s)",
                self.strategy.get_strategy_name(),
                self.config.exchange,
                self.config.ticker,
                self.config.bot_name,
                self.config.client_id_prefix,
                extra={"notify": "start"},
            )
            if self._reaction_hold is not None:
                reaction_hold.freeze_startup_objects()
            while not self.stopping:
                await self._run_iteration()
        except (ConfigurationError, AuthenticationError) as exc:
            # Bad keys are bad configuration: fix the .env, nothing to retry (exit code 2).
            self.request_shutdown(f"{type(exc).__name__}: {exc}", EXIT_BAD_CONFIGURATION)
        except ExchangeError as exc:
            self.request_shutdown(f"{type(exc).__name__}: {exc}", EXIT_ERROR)
        except JournalWriteError as exc:
            # No order may leave unjournaled: stop as a kill would, touching nothing on the venue.
            self.request_shutdown(
                f"{exc}; stopped without touching the venue (the next start reconciles)", EXIT_ERROR
            )
        except Exception as exc:
            logger.exception("unexpected error")
            self.request_shutdown(
                f"unexpected {type(exc).__name__}: {exc} (see {self.activity_log})", EXIT_ERROR
            )
        finally:
            summary = await self._shutdown()
            if self._reaction_hold is not None:
                self._reaction_hold.release()
                reaction_hold.unfreeze()
            self._done.set()
            self._idle.set()
        return summary

    async def _reconcile(self) -> None:
        """Bring the journal in line with the venue before any decision (start-up, reconnect)."""
        self._reconcile_due = False
        for index, engine in enumerate(self.engines):
            await engine.reconcile(
                self.strategy.venue_contract_id(index),
                self.strategy.classify_foreign_order,
                self.strategy.adopted_entry_price,
            )
        self._reconciled = True
        await self._deliver_events()

    async def _run_iteration(self) -> None:
        self._wake.clear()
        error = self._journal_error()
        if error is not None:
            raise error  # a write queued for the loop's next step failed
        if self._duration_elapsed():
            self.request_shutdown(f"duration of {self.config.duration:g} s reached")
            return
        if self._reconcile_due:
            try:
                await self._reconcile()
            except ExchangeError as exc:
                logger.warning("reconciliation after reconnect failed (%s); will retry", exc)
                self.journal.note(self.clock.now(), "error", f"reconciliation failed: {exc}")
                self._reconcile_due = True
        events_arrived = self._events_waiting()
        if events_arrived:
            await self._deliver_events()
        for engine in self.engines:
            if engine.lookups_waiting:
                await engine.resolve_pending()
        for engine in self.engines:
            if engine.cover_to_cancel:  # a risk close made exits redundant
                await self._cancel_redundant_exits_of(engine)

        last_market_update_at = self._market_update_time()
        if last_market_update_at is not None:
            # Before the check: a stall must end as soon as the venue pushes again, paused or not.
            self.risk_manager.record_market_data(last_market_update_at)
        decision = await self.risk_manager.check_risk_conditions(allow_refresh=not events_arrived)
        await self._handle_risk_decision(decision)
        if self.stopping:
            return

        try:
            market_data = await self.strategy.get_market_data()
        except ExchangeError as exc:
            logger.warning("market data unavailable: %s", exc)
            self.journal.note(self.clock.now(), "error", f"market data unavailable: {exc}")
            await self._wait(self.config.idle_wait_seconds)
            return
        # Freshness is when the venue last pushed market data, not when we read a cached book.
        self.risk_manager.record_market_data(last_market_update_at or market_data.timestamp)

        if await self.strategy.should_execute(market_data):
            result = await self.strategy.execute_strategy(market_data)
            if await self._handle_strategy_result(result):
                return
        if events_arrived and self.risk_manager.snapshot_due():
            return  # go again at once: that pass reads the account the fill skipped
        self._check_coverage()
        self._heartbeat()
        seconds = self._next_deadline(self.strategy.seconds_until_next_decision())
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

    def _next_deadline(self, seconds: float | None) -> float | None:
        """The strategy's deadline, or sooner when an order look-up or the heartbeat comes due."""
        lookups = [engine.seconds_until_lookup() for engine in self.engines]
        due = [value for value in (seconds, *lookups) if value is not None]
        if self.journal.path is not None:
            due.append(max(0.0, self._next_heartbeat - self.clock.now()))
        return min(due) if due else None

    def _heartbeat(self) -> None:
        """A running bot's mark in its journal, so ``status`` can tell it alive, and the console's
        status line (live runs only: a backtest has its report)."""
        now = self.clock.now()
        if self.journal.path is None or now < self._next_heartbeat:
            return
        self._next_heartbeat = now + HEARTBEAT_SECONDS
        self.journal.set_meta("heartbeat", f"{now:.3f}")
        engine = self.execution
        exits = [r for r in engine.active_orders(OrderRole.EXIT) if r.acknowledged]
        ledger = engine.ledger
        self._status_line.update(
            {
                "state": self.strategy.status_summary().get("state", "trading"),
                "position": ledger.size,
                "take_profits": len(exits),
                "take_profit_size": sum((r.remaining for r in exits), ZERO),
                "uncovered": sum((lot.size for lot in engine.uncovered_lots()), ZERO),
                "realized_pnl": ledger.realized_pnl,
                "fees": ledger.fees,
            }
        )

    def _check_coverage(self) -> None:
        """Now and then, while nothing is in flight: does the position match its cover?"""
        now = self.clock.now()
        if now < self._next_coverage_check:
            return
        self._next_coverage_check = now + COVERAGE_CHECK_SECONDS
        for engine in self.engines:
            if engine.check_coverage():
                self.expect_activity()

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
        ledger = self.execution.ledger
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

    async def _wait(self, seconds: float | None, *, while_stopping: bool = False) -> None:
        """Park until an order/market event or the deadline, whichever comes first. Once the
        bot is stopping it does not park, unless ``while_stopping`` (the shutdown waiting for
        the venue): then the stop request's own wake is not news, nor is the run's duration."""
        timeout = self.config.idle_wait_seconds if seconds is None else max(0.0, seconds)
        if while_stopping:
            self._wake.clear()
        elif self.config.duration is not None and self._started_at is not None:
            remaining = self._started_at + self.config.duration - self.clock.now()
            timeout = min(timeout, max(0.0, remaining))
        if self._events_waiting() or (self.stopping and not while_stopping) or self._wake.is_set():
            return
        if self._reaction_hold is not None:
            self._reaction_hold.release()
        self._idle.set()
        try:
            await self.clock.wait_for_event(self._wake, timeout)
        finally:
            self._idle.clear()

    async def _deliver_events(self) -> None:
        """Hand the execution layers' events to the strategy in arrival order (per venue)."""
        for engine in self.engines:
            for event in engine.drain_events():
                await self.strategy.on_execution_event(event)

    # -- carrying out decisions --------------------------------------------------------------

    async def _handle_strategy_result(self, result: StrategyResult) -> bool:
        """Execute the strategy's decision; True when the loop should go again at once."""
        if result.message:
            logger.debug("strategy: %s", result.message)
        action = result.action
        if action is StrategyAction.PLACE_ORDERS:
            for order in result.orders:
                await self._submit(order)
            return True
        if action is StrategyAction.CANCEL_ORDERS:
            for client_id in result.cancel_client_ids:
                owner = next((e for e in self.engines if client_id in e.orders), self.execution)
                await owner.cancel(client_id, result.message or "strategy")
            return True
        if action is StrategyAction.CLOSE_POSITION:
            await self._close_position(result.message or "strategy asked to close")
            return True
        if action is StrategyAction.STOP:
            code = EXIT_BAD_CONFIGURATION if isinstance(result.error, ConfigurationError) else EXIT_OK
            self.request_shutdown(result.message or "strategy asked to stop", code)
            return True
        if action is StrategyAction.WAIT:
            await self._wait(result.wait_time)
        return False

    async def _submit(self, params: OrderParams) -> OrderRecord | None:
        """Send one order through the execution layer (entries only while they are allowed)."""
        if params.role is OrderRole.ENTRY and self.strategy.entries_blocked is not None:
            logger.debug("entry dropped: %s", self.strategy.entries_blocked)
            return None
        if params.order_type is OrderType.MARKET and params.max_slippage_pct is None:
            params.max_slippage_pct = self.config.max_slippage_pct
        if not 0 <= params.venue < len(self.venues):
            raise ConfigurationError(f"order for venue {params.venue}, but the bot has {len(self.venues)}")
        engine = self.venues[params.venue].execution
        record = await engine.submit(params, self.strategy.venue_contract_id(params.venue))
        if record.status is OrderStatus.REJECTED:
            if not record.error.startswith("PostOnlyRejected"):
                self.risk_manager.record_order_failure(RuntimeError(record.error))
        elif record.status is OrderStatus.UNKNOWN:
            self.risk_manager.record_order_failure(RuntimeError(record.error))
        else:
            self.risk_manager.record_order_success()
        return record

    async def _close_position(self, reason: str) -> Decimal:
        """Close this bot's own journaled position; returns what is left of it.

        Market within the slippage bound, then wider bounds, then a limit at the touch; a close
        that has not ended (its outcome unknown, or still open on the venue) is never followed
        by another. The exits the close made redundant are cancelled afterwards, for the size it
        actually closed.
        """
        try:
            for index in range(len(self.venues)):
                await self._send_closes(reason, index)
        finally:
            await self._cancel_redundant_exits()
        return sum((abs(engine.position) for engine in self.engines), ZERO)

    async def _send_closes(self, reason: str, venue: int = 0) -> None:
        engine = self.venues[venue].execution
        for step in CLOSE_SLIPPAGE_STEPS:
            position = engine.position
            if position == 0:
                return
            side = OrderSide.SELL if position > 0 else OrderSide.BUY
            logger.warning(
                "closing this bot's position of %s at market (bound %s %%): %s",
                position,
                self.config.max_slippage_pct * step,
                reason,
                extra={"notify": "risk"},
            )
            record = await self._submit(
                OrderParams(
                    side=side,
                    quantity=abs(position),
                    order_type=OrderType.MARKET,
                    post_only=False,
                    reduce_only=True,
                    role=OrderRole.RISK_CLOSE,
                    max_slippage_pct=self.config.max_slippage_pct * step,
                    venue=venue,
                )
            )
            if record is None:
                return
            await self._deliver_events()
            if not record.is_final:
                # Not over yet (an unknown answer, or a close the venue has not ended): another
                # close could sell what this one is about to. Its fill, when it comes, frees the
                # take-profits it made redundant (the loop's cover_to_cancel).
                return
        position = engine.position
        if position == 0:
            return
        try:
            contract_id = self.strategy.venue_contract_id(venue)
            bid, ask = await self.venues[venue].client.fetch_bbo_prices(contract_id)
        except ExchangeError as exc:
            logger.error("no price for the closing limit order: %s", exc)
            return
        side = OrderSide.SELL if position > 0 else OrderSide.BUY
        await self._submit(
            OrderParams(
                side=side,
                quantity=abs(position),
                price=bid if side is OrderSide.SELL else ask,
                order_type=OrderType.LIMIT,
                post_only=False,
                reduce_only=True,
                role=OrderRole.RISK_CLOSE,
                venue=venue,
            )
        )
        await self._deliver_events()

    async def _cancel_redundant_exits(self) -> None:
        """Cancel the exits a risk close made redundant (only for the size it closed)."""
        for engine in self.engines:
            await self._cancel_redundant_exits_of(engine)

    def _market_close_pending(self) -> bool:
        """A market risk close has not ended yet: it ends within moments, and its fill must
        free the take-profits it makes redundant before the bot stops."""
        return any(
            record.order_type is OrderType.MARKET
            for engine in self.engines
            for record in engine.active_orders(OrderRole.RISK_CLOSE)
        )

    @staticmethod
    async def _cancel_redundant_exits_of(engine: ExecutionEngine) -> None:
        redundant = [record.client_order_id for record in engine.exits_to_cancel()]
        if redundant:
            await engine.cancel_batch(redundant, "position closed by the risk manager")

    async def _handle_risk_decision(self, decision: RiskDecision) -> None:
        """Act on a risk decision through the execution layer, and tell the strategy."""
        action = decision.action
        if action is RiskAction.NONE:
            if self._last_risk_action:
                logger.info("risk condition cleared: resuming")
                self._last_risk_action = ""
            if self._risk_block is not None:
                self._risk_block = None
                self.strategy.block_entries(None)
            return
        if action.value != self._last_risk_action:  # once per action: a stall's reason ticks every second
            logger.warning("risk: %s -> %s", decision.reason, action.value, extra={"notify": "risk"})
            self.journal.note(self.clock.now(), f"risk_{action.value}", decision.reason)
            self._last_risk_action = action.value
        if action is RiskAction.PAUSE:
            self._block(f"paused: {decision.reason}")
            return
        if action is RiskAction.REDUCE_ONLY:
            self._block(f"risk: {decision.reason}")
            return
        if action is RiskAction.CLOSE_WORST_POSITIONS:
            self._block(f"risk: {decision.reason}")
            ours = {p.contract_id for p in decision.positions_to_close}
            if self.strategy.contract_id in ours:
                await self._close_position(decision.reason)
            return
        if action is RiskAction.CLOSE_ALL_AND_STOP:
            self._block(f"risk: {decision.reason}")
            left = await self._close_position(decision.reason)
            if left and self._market_close_pending():
                logger.warning(
                    "emergency close not ended yet: %s of this bot's position still open; stopping "
                    "once the venue ends it",
                    left,
                    extra={"notify": "risk"},
                )
            elif left:
                logger.error(
                    "emergency close could not complete: %s of this bot's position is still open; "
                    "its take-profits stay resting",
                    left,
                    extra={"notify": "risk"},
                )
            self.request_shutdown(f"risk: {decision.reason}", EXIT_RISK_STOP)
            return
        self.request_shutdown(f"risk: {decision.reason}", EXIT_RISK_STOP)

    def _block(self, reason: str) -> None:
        if self._risk_block != reason:
            self._risk_block = reason
            self.strategy.block_entries(reason)

    # -- shutdown ------------------------------------------------------------------------------

    async def _drain(self, *, close_fills: bool = True) -> None:
        """Until the venue has confirmed every entry cancel and ended every market close: deliver
        events, cancel the exits a risk close's fill made redundant, and (unless exits are being
        cancelled on exit) let the strategy close what filled meanwhile."""
        deadline = self.clock.now() + SHUTDOWN_SECONDS
        for _ in range(SHUTDOWN_PASSES):
            await self._deliver_events()
            for engine in self.engines:
                await engine.resolve_pending()
                entries = [
                    record.client_order_id
                    for record in engine.active_orders(OrderRole.ENTRY)
                    if record.cancel_requested_at is None
                ]
                if entries:
                    await engine.cancel_batch(entries, "shutdown")
            await self._cancel_redundant_exits()  # a risk close filled after the close path returned
            try:
                market_data = await self.strategy.get_market_data()
                if close_fills and await self.strategy.should_execute(market_data):
                    result = await self.strategy.execute_strategy(market_data)
                    if result.action in (StrategyAction.PLACE_ORDERS, StrategyAction.CANCEL_ORDERS):
                        await self._handle_strategy_result(result)
                        continue
            except ExchangeError as exc:
                logger.warning("shutdown: %s", exc)
            closing = self._market_close_pending()  # worth waiting for, even while stopping
            settling = any(e.in_flight() or e.active_orders(OrderRole.ENTRY) for e in self.engines)
            if not closing and not settling:
                if not self._events_waiting():
                    return
                continue
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return
            waits = [w for w in (e.seconds_until_lookup() for e in self.engines) if w is not None]
            await self._wait(min(remaining, min(waits) if waits else 0.5), while_stopping=closing)

    async def _final_mark_price(self, venue: int = 0) -> Decimal | None:
        """Mid price for the summary's unrealized PnL; None (not zero) when it cannot be read."""
        try:
            contract_id = self.strategy.venue_contract_id(venue)
            bid, ask = await self.venues[venue].client.fetch_bbo_prices(contract_id)
        except ExchangeError as exc:
            logger.warning("no final price for the summary: %s", exc)
            return None
        return (bid + ask) / 2

    async def _venue_facts(self, venue: int) -> _VenueFacts:
        """What the summary reads from one venue at the end: mid, position and funding."""
        client = self.venues[venue].client
        facts = _VenueFacts(mark_price=await self._final_mark_price(venue))
        try:
            facts.position = (await client.get_position(self.strategy.venue_contract_id(venue))).size
        except ExchangeError as exc:
            logger.warning("could not read the venue's position for the summary: %s", exc)
        try:
            facts.funding = -(await client.get_account_snapshot()).funding_paid
        except ExchangeError:
            facts.funding = ZERO
        return facts

    async def _shutdown(self) -> BotSummary:
        reason = self._stop_reason or "stopped"
        strategy_ready = self.strategy.contract is not None and self._reconciled
        facts = [_VenueFacts() for _ in self.venues]
        if strategy_ready:
            self.strategy.block_entries("shutting down")
            if self._journal_error() is None:
                try:
                    await self._drain()
                    if self.config.cancel_take_profits_on_exit:
                        for engine in self.engines:
                            exits = [r.client_order_id for r in engine.active_orders(OrderRole.EXIT)]
                            if exits:
                                await engine.cancel_batch(exits, "shutdown")
                        await self._drain(close_fills=False)
                except JournalWriteError as exc:
                    logger.error("%s: shutdown stops here, leaving the venue as it is", exc)
                except Exception:
                    logger.exception("error while cleaning up at shutdown")
            facts = [await self._venue_facts(index) for index in range(len(self.venues))]
        for venue in self.venues:
            try:
                await venue.client.disconnect()
            except Exception as exc:
                logger.warning("disconnect failed: %s", exc)
        summary = self._summary(reason, facts, strategy_ready)
        journal_failed = self._journal_error() is not None
        for engine in self.engines:
            if not journal_failed:
                engine.journal.note(self.clock.now(), "stopped", reason)
            if engine.journal.path is not None:
                engine.journal.close()  # an in-memory journal stays readable for the caller's report
        return summary

    def _journal_error(self) -> JournalWriteError | None:
        """The failure of a journal that can no longer write, if one cannot."""
        for engine in self.engines:
            error = engine.journal.write_error
            if error is not None:
                return error
        return None

    def _summary(self, reason: str, facts: list[_VenueFacts], strategy_ready: bool) -> BotSummary:
        """Totals over every venue (one for most strategies), and a line per venue when several."""
        engines = self.engines
        exits = [r for e in engines for r in e.active_orders(OrderRole.EXIT) if r.acknowledged]
        unknown = [r for e in engines for r in e.active_orders() if not r.acknowledged]
        unrealized: Decimal | None = ZERO
        for engine, fact in zip(engines, facts, strict=True):
            if fact.mark_price is None or unrealized is None:
                unrealized = None
            else:
                unrealized += engine.ledger.unrealized_pnl(fact.mark_price)
        positions = [fact.position for fact in facts]
        venue_lines: list[str] = []
        if len(engines) > 1:
            for venue, fact in zip(self.venues, facts, strict=True):
                ledger = venue.execution.ledger
                venue_lines.append(
                    f"venue {venue.label}: position {ledger.size} (venue: {fact.position}), "
                    f"fills {ledger.fill_count}, realized {ledger.realized_pnl:.4f}, "
                    f"fees {ledger.fees:.4f}, funding {fact.funding:.4f}"
                )
        return BotSummary(
            stop_reason=reason,
            exit_code=self._exit_code,
            runtime_seconds=self.clock.now() - (self._started_at or self.clock.now()),
            orders_placed=sum(e.accepted_count for e in engines),
            orders_failed=sum(e.refused_count for e in engines),
            fills=sum(e.ledger.fill_count for e in engines),
            volume=sum((e.ledger.volume for e in engines), ZERO),
            fees=sum((e.ledger.fees for e in engines), ZERO),
            realized_pnl=sum((e.ledger.realized_pnl for e in engines), ZERO),
            position=sum((e.ledger.size for e in engines), ZERO),
            resting_exit_orders=len(exits),
            resting_exit_size=sum((r.remaining for r in exits), ZERO),
            unknown_orders=len(unknown),
            live_entries=len(
                [r for e in engines for r in e.active_orders(OrderRole.ENTRY) if r.acknowledged]
            ),
            uncovered_size=sum((lot.size for e in engines for lot in e.uncovered_lots()), ZERO),
            venue_position=None if None in positions else sum((p or ZERO for p in positions), ZERO),
            unrealized_pnl=unrealized,
            mark_price=facts[0].mark_price,
            funding=sum((fact.funding for fact in facts), ZERO),
            strategy_status=self.strategy.status_summary() if strategy_ready else {},
            venue_lines=venue_lines,
        )


@dataclass
class _VenueFacts:
    mark_price: Decimal | None = None
    position: Decimal | None = None
    funding: Decimal = ZERO
