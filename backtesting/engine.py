"""Backtests: the live bot, strategy, risk manager and paper venue, driven by the data's time.

Nothing here re-implements trading. A :class:`~trading_bot.TradingBot` runs the registered
strategy against a :class:`~exchanges.paper.PaperExchangeClient` whose market is fed by this
engine instead of its own pump, on a :class:`~helpers.clock.SimulatedClock` that moves only to
the next event or the next timer. The ordering matches the paper venue's live pump: every event
of one instant is applied, then the bot reacts to what it saw; a bot timer that falls between
two events fires at its own time, with the book as it stood then. Runs are therefore exactly
repeatable, and a live paper run over the same data makes the same decisions.

The bot is only given the CPU when something can matter: an order event, a timer, or a market
update reaching one of the levels the strategy (and the risk manager) declared. Every other
event costs the venue's book update and one comparison.

A run is described by a :class:`BacktestSpec` of plain values, so runs can be shipped to other
processes or machines (see :mod:`backtesting.sweep`).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from backtesting import event_loop
from backtesting.event_columns import QUOTE_FLAGS, column_address
from backtesting.feed_cache import (
    BBO,
    SOLD,
    CachedFeed,
    Columns,
    load_feed,
    load_synthetic,
    native_library,
    sample_prices,
)
from backtesting.market_feed import MarketEventKind
from backtesting.recording import read_header
from backtesting.report import (
    BacktestResult,
    FillRecord,
    OrderRecord,
    RecordWriter,
    SampleLog,
    SampleState,
    Tally,
    summarize,
)
from exchanges.base import ExchangeUnavailable, OrderSide, OrderStatus, OrderType, OrderUpdate
from exchanges.paper import PaperExchangeClient, PaperOptions, QuietLimits, SameQuoteLimits
from helpers.clock import SimulatedClock
from helpers.instruments import (
    Instrument,
    instrument_from_metadata,
    load_instruments,
    price_granularity,
    tick_warning,
)
from helpers.trading_config import RiskLimits, TradingConfig
from strategies.base_strategy import OrderRole

#: Synthetic markets start here (2024-01-01 00:00 UTC), so results carry sensible dates.
SYNTHETIC_START_TIME = 1_704_067_200.0
logger = logging.getLogger(__name__)

#: The ticker of a synthetic market when none is given.
SYNTHETIC_DEFAULT_TICKER = "BTC"
#: Equity/inventory samples per run when no interval is given.
DEFAULT_SAMPLES = 2000
#: Latencies a backtest assumes unless told otherwise (paper venue options, milliseconds).
#: Order entry and cancel: one way from a VPS in the venue's region to its matching engine is
#: typically 5-50 ms over REST; 20 ms is the middle of that. Market data: recorded feeds are
#: stamped with their receive time, which already holds the venue-to-us delay; the 10 ms is the
#: bot's own decoding and scheduling on top. The live paper venue keeps 0 (no wire in between).
BACKTEST_LATENCIES_MS = {"entry_latency_ms": 20.0, "cancel_latency_ms": 20.0, "market_data_latency_ms": 10.0}
#: Exchange options the engine owns: the data source and who drives the market.
_ENGINE_OPTIONS = frozenset({"feed_path", "replay_speed", "drive_externally"})


@dataclass(frozen=True)
class BacktestSpec:
    """Everything one run needs, as plain picklable values.

    Exactly one data source: ``feed_path`` (a recorded feed in the ``shared/data`` format;
    ``max_events`` takes its first events only) or ``synthetic_events`` events of the seeded
    synthetic market (``exchange_params["seed"]`` and the other paper options shape it).
    ``sample_seconds`` is the equity/inventory sampling interval in simulated seconds (None: about
    2000 samples over the run). ``cache_dir`` holds the compact feed cache (None: the user
    cache folder); ``use_cache`` False reads the text feed every time.
    """

    strategy: str = "grid"
    #: None: the recording's symbol (BTCUSDT for a btcusdt@... feed), or BTC for synthetic data.
    ticker: str | None = None
    quantity: Decimal = Decimal("0.002")
    strategy_params: dict[str, Any] = field(default_factory=dict)
    exchange_params: dict[str, Any] = field(default_factory=dict)
    feed_path: str | None = None
    synthetic_events: int | None = None
    max_events: int | None = None
    sample_seconds: float | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    risk: RiskLimits = field(default_factory=RiskLimits)
    max_slippage_pct: Decimal = Decimal("0.5")
    cancel_take_profits_on_exit: bool = False
    duration: float | None = None
    filter_market_wakes: bool = True
    label: str = ""
    #: Replay the readable part of a cut-off compressed recording instead of refusing it.
    allow_truncated: bool = False
    #: Write the live bot's files here (on-disk journal, orders CSV), as a live bot does; None:
    #: none, and the journal is SQLite's temporary database (a long-run memory check needs them).
    files_dir: str | None = None

    def __post_init__(self) -> None:
        if (self.feed_path is None) == (self.synthetic_events is None):
            raise ValueError("give exactly one data source: feed_path or synthetic_events")
        if self.synthetic_events is not None and self.synthetic_events < 1:
            raise ValueError("synthetic_events must be at least 1")
        owned = sorted(_ENGINE_OPTIONS & set(self.exchange_params))
        if owned:
            raise ValueError(f"exchange option {owned[0]!r} is set by the backtest engine")

    def with_strategy_params(self, **params: Any) -> BacktestSpec:
        """A copy with some strategy parameters replaced (one cell of a sweep)."""
        return replace(self, strategy_params={**self.strategy_params, **params})

    def trading_config(self) -> TradingConfig:
        return TradingConfig(
            ticker=self.ticker or SYNTHETIC_DEFAULT_TICKER,
            exchange="paper",
            strategy=self.strategy,
            quantity=self.quantity,
            strategy_params=dict(self.strategy_params),
            exchange_params={**BACKTEST_LATENCIES_MS, **self.exchange_params, "drive_externally": True},
            log_dir=Path(self.files_dir or "logs"),
            duration=self.duration,
            risk=self.risk,
            cancel_take_profits_on_exit=self.cancel_take_profits_on_exit,
            max_slippage_pct=self.max_slippage_pct,
        )


def resolve_instrument(spec: BacktestSpec, feed: CachedFeed | None) -> tuple[BacktestSpec, list[str]]:
    """The spec with its ticker and instrument settled, and warnings for the trader.

    The ticker comes from the data (its stream names) unless given; a given ticker must name
    the data's instrument (``BTC`` accepts ``BTCUSDT`` and becomes it). The specification comes
    from the flags, then the venue's metadata in a recording's header (``record.py``), then
    ``data/instruments.toml``, then the data's price granularity (tick only). A tick that
    disagrees with the data's prices is warned about, not changed.
    """
    resolved, warnings, _source = _resolve_instrument(spec, feed)
    return resolved, warnings


def _resolve_instrument(spec: BacktestSpec, feed: CachedFeed | None) -> tuple[BacktestSpec, list[str], str]:
    """:func:`resolve_instrument`, and where the specification came from (for the report)."""
    warnings: list[str] = []
    params = dict(spec.exchange_params)
    ticker = spec.ticker
    if feed is None:
        return replace(spec, ticker=ticker or SYNTHETIC_DEFAULT_TICKER), warnings, "synthetic"
    symbols = feed.stats.symbols
    symbol = symbols[0] if symbols else None
    if len(symbols) > 1:
        warnings.append(f"the data names several symbols ({', '.join(symbols)}): treating it as {symbol}")
    if symbol is not None:
        if ticker is not None and not symbol.startswith(ticker.upper()):
            raise ValueError(f"--ticker {ticker} does not match the data, which is {symbol}")
        ticker = symbol
    elif ticker is None:
        ticker = SYNTHETIC_DEFAULT_TICKER
        warnings.append(f"the data does not name its instrument: assuming {ticker}")
    granularity = feed.derived("price_granularity", lambda data: price_granularity(sample_prices(data)))
    recorded = _recording_instrument(spec.feed_path, ticker)
    instrument = recorded or load_instruments().find(ticker)
    source = "recording header" if recorded is not None else "data/instruments.toml"
    if recorded is not None:
        # The venue's own metadata, as recorded: every key the flags did not set.
        for key, value in recorded.paper_params().items():
            params.setdefault(key, value)
    if instrument is None:
        source = "flags"
    if "tick_size" in params:  # a flag, or the recording's metadata just above
        tick = Decimal(str(params["tick_size"]))
    elif instrument is not None:
        tick = instrument.tick_size
    elif granularity is not None:
        tick = params["tick_size"] = granularity
        source = "data"
        warnings.append(
            f"{ticker} is not in data/instruments.toml: tick size {tick} taken from the data's prices "
            "(give --paper-tick-size and the other --paper-* specs to be sure)"
        )
    else:
        tick = PaperOptions().tick_size
        source = "defaults"
    problem = tick_warning(tick, granularity, ticker)
    if problem:
        warnings.append(problem)
    return replace(spec, ticker=ticker, exchange_params=params), warnings, source


def _recording_instrument(feed_path: str | None, ticker: str) -> Instrument | None:
    """The instrument a ``record.py`` recording's header describes, or None for other data."""
    if feed_path is None:
        return None
    header = read_header(feed_path)
    if header is None or "instrument" not in header:
        return None
    recorded_ticker = str(header.get("ticker") or ticker).upper()
    if recorded_ticker != ticker.upper():
        raise ValueError(
            f"{feed_path}: the recording header names {recorded_ticker} but its streams are {ticker}"
        )
    return instrument_from_metadata(recorded_ticker, header["instrument"], f"{feed_path} recording header")


def _open_source(
    spec: BacktestSpec, venue: PaperExchangeClient, recorded: CachedFeed | None = None
) -> tuple[CachedFeed, int, dict[str, Any]]:
    """The run's events as columns, and how many of them to replay."""
    if spec.feed_path is not None:
        feed = recorded or load_feed(spec.feed_path, spec.cache_dir, spec.use_cache, spec.allow_truncated)
        stop = len(feed) if spec.max_events is None else min(spec.max_events, len(feed))
        return feed, stop, {"kind": "recorded", "path": str(spec.feed_path), "events_available": len(feed)}
    count = spec.synthetic_events or 0
    options = venue.options
    parameters = {
        name: getattr(options, name)
        for name in ("seed", "start_price", "volatility_bps", "spread_ticks", "tick_size", "size_step")
    }
    parameters.update(step_seconds=options.step_seconds, start_time=SYNTHETIC_START_TIME)
    feed = load_synthetic(
        parameters, venue.market_source(SYNTHETIC_START_TIME), count, spec.cache_dir, spec.use_cache
    )
    return feed, count, {"kind": "synthetic", "events_requested": count, "seed": options.seed}


def prepare_data(spec: BacktestSpec) -> CachedFeed:
    """Load (building and caching it if needed) the data of ``spec``: a sweep calls this once
    before its workers start, so they all read one cache instead of racing to write it."""
    if spec.feed_path is not None:
        return load_feed(spec.feed_path, spec.cache_dir, spec.use_cache, spec.allow_truncated)
    venue = PaperExchangeClient(spec.trading_config(), SimulatedClock(0.0))
    feed, _, _ = _open_source(spec, venue)
    return feed


class _Recorder:
    """Subscribes to the venue's order updates: every order placed or cancelled, every fill.

    Kept in lists for the caller, or, with a ``writer``, written out as they happen (each fill's
    role read from the bot's journal at that moment) and only counted here.
    """

    def __init__(
        self, venue: PaperExchangeClient, clock: SimulatedClock, writer: RecordWriter | None
    ) -> None:
        self.clock = clock
        self.writer = writer
        self.orders: list[OrderRecord] = []
        self.fills: list[FillRecord] = []
        #: Orders seen and not yet final (a final order sends no more updates).
        self._live: set[str] = set()
        #: Client order id -> OrderRole or None (not the bot's): the bot's execution layer's
        #: ExecutionEngine.role_of, once the bot exists.
        self.role_of: Callable[[str], OrderRole | None] = lambda client_order_id: None
        venue.subscribe_order_updates(self.on_order_update)

    def _order(self, record: OrderRecord) -> None:
        if self.writer is not None:
            self.writer.order(record)
        else:
            self.orders.append(record)

    def on_order_update(self, update: OrderUpdate) -> None:
        info = update.order
        now = self.clock.now()
        if info.status.is_final:
            seen = info.order_id in self._live
            self._live.discard(info.order_id)
        else:
            seen = info.order_id in self._live
            self._live.add(info.order_id)
        if not seen and info.status is not OrderStatus.REJECTED:  # refused on arrival: never placed
            self._order(
                OrderRecord(
                    now, "placed", info.order_id, info.side, info.order_type.value, info.price, info.size
                )
            )
        fill = update.fill
        if fill is not None:
            record = FillRecord(
                time=now,
                order_id=info.order_id,
                side=fill.side,
                price=fill.price,
                size=fill.size,
                fee=fill.fee,
                maker=fill.is_maker,
                role="",
                completes_take_profit=False,
            )
            # The role as the fill happens: this runs before the execution layer takes the
            # update, so its record of the order is still in memory (no journal read).
            role = self.role_of(info.client_order_id or "")
            record.role = role.value if role is not None else "external"
            record.completes_take_profit = (
                role is OrderRole.EXIT
                and info.status is OrderStatus.FILLED
                and info.order_type is OrderType.LIMIT
            )
            if self.writer is not None:
                self.writer.fill(record)
            else:
                self.fills.append(record)
        elif info.status is OrderStatus.CANCELLED:
            self._order(
                OrderRecord(
                    now, "cancelled", info.order_id, info.side, info.order_type.value, info.price, info.size
                )
            )


class BacktestEngine:
    """One run of one spec. Use :func:`run_backtest` unless you need the parts."""

    def __init__(self, spec: BacktestSpec, out_dir: str | Path | None = None) -> None:
        self.spec = spec
        #: Stream orders.csv and fills.csv into this folder as the run goes (memory stays flat).
        self.out_dir = Path(out_dir) if out_dir is not None else None

    async def run(self) -> BacktestResult:

        started = time.perf_counter()
        recorded = (
            load_feed(
                self.spec.feed_path, self.spec.cache_dir, self.spec.use_cache, self.spec.allow_truncated
            )
            if self.spec.feed_path is not None
            else None
        )
        spec, warnings, instrument_source = _resolve_instrument(self.spec, recorded)
        for warning in warnings:
            logger.warning("%s", warning)
        config = spec.trading_config()
        clock = SimulatedClock(0.0)
        venue = PaperExchangeClient(config, clock)
        step = venue.options.size_step
        if spec.quantity % step != 0:
            unit = "contracts" if venue.options.inverse else "base units"
            raise ValueError(
                f"--quantity {spec.quantity} is not a multiple of {config.ticker}'s size step {step} ({unit})"
            )
        feed, stop, description = _open_source(spec, venue, recorded)
        description["warnings"] = warnings
        description["instrument_source"] = instrument_source
        if stop < 1:
            where = spec.feed_path or "the synthetic market"
            found = f" (format {feed.stats.format})" if feed.stats.format else ""
            raise ValueError(f"{where}: holds no market events{found}; {feed.stats.summary()}")
        inverse = venue.options.contract_multiplier if venue.options.inverse else None
        tally = Tally(inverse) if self.out_dir is not None else None
        writer = RecordWriter(self.out_dir, tally) if self.out_dir is not None and tally is not None else None
        try:
            return await self._run(
                spec, started, config, clock, venue, feed, stop, description, writer, tally
            )
        finally:
            if writer is not None:
                writer.close()

    async def _run(
        self,
        spec: BacktestSpec,
        started: float,
        config: TradingConfig,
        clock: SimulatedClock,
        venue: PaperExchangeClient,
        feed: CachedFeed,
        stop: int,
        description: dict[str, Any],
        writer: RecordWriter | None,
        tally: Tally | None,
    ) -> BacktestResult:
        from trading_bot import TradingBot

        recorder = _Recorder(venue, clock, writer)
        samples = SampleLog()
        first_time = feed.time_at(0)
        interval = spec.sample_seconds
        if interval is None:
            interval = max((feed.time_at(stop - 1) - first_time) / DEFAULT_SAMPLES, 0.001)

        # The book must have a quote before the strategy starts, as after the venue's connect().
        # Read a few events at a time (there is usually a quote among the first): the drive reads
        # the chunk they are in again.
        opening = 0
        windows = (
            feed.events(low, min(low + _OPENING_WINDOW, stop)) for low in range(0, stop, _OPENING_WINDOW)
        )
        for event in itertools.chain.from_iterable(windows):
            clock.advance_to(event.timestamp)
            venue.apply_market_event(event)
            opening += 1
            if event.kind is MarketEventKind.BBO:
                break
        try:
            await venue.fetch_bbo_prices(venue.contract_id)
        except ExchangeUnavailable:
            raise ValueError("the market data holds no best bid/offer event") from None

        bot = TradingBot(
            config,
            clock=clock,
            exchange_client=venue,
            write_files=spec.files_dir is not None,
            filter_market_wakes=spec.filter_market_wakes,
        )
        recorder.role_of = bot.execution.role_of
        task = asyncio.ensure_future(bot.run())
        try:
            await bot.wait_until_idle()
            next_sample = await self._sample(venue, samples, clock.now(), clock.now(), interval)
            applied = opening + await self._drive(
                feed, opening, stop, clock, venue, bot, task, samples, next_sample, interval
            )
        except BaseException:
            await _stop_bot(bot, task, clock)
            raise
        end_time = clock.now()
        if not task.done():
            bot.request_shutdown("end of market data")
        summary = await task
        await self._sample(venue, samples, end_time, end_time, interval, force=True)

        snapshot = await venue.get_account_snapshot()
        final_bid, final_ask = await venue.fetch_bbo_prices(venue.contract_id)
        data = dict(description)
        data.update(events_applied=applied, first_time=first_time, last_time=end_time)
        if spec.feed_path is not None:
            data["feed_stats"] = feed.stats.report()
        return summarize(
            spec=spec_summary(spec),
            data=data,
            orders=recorder.orders,
            fills=recorder.fills,
            samples=samples,
            start_equity=venue.starting_balance(),
            funding=-snapshot.funding_paid,
            final_bid=final_bid,
            final_ask=final_ask,
            stop_reason=summary.stop_reason,
            exit_code=summary.exit_code,
            strategy_status=summary.strategy_status,
            wall_seconds=time.perf_counter() - started,
            inverse_multiplier=venue.options.contract_multiplier if venue.options.inverse else None,
            currency=venue.options.settlement_currency,
            tally=tally,
            streamed_to=writer.folder if writer is not None else None,
        )

    async def _drive(
        self,
        feed: CachedFeed,
        start: int,
        stop: int,
        clock: SimulatedClock,
        venue: PaperExchangeClient,
        bot: Any,
        task: asyncio.Future[Any],
        samples: SampleLog,
        next_sample: float,
        interval: float,
    ) -> int:
        """The hot loop over the columns: returns how many events it applied.

        Per event it costs a venue book update; per new instant one comparison with the bot's
        wake counter and one with the horizon (the next timer or sample), and moving the clock.
        The bot runs only when woken. While it sleeps, runs of events that can change nothing
        but the book's last state (see :meth:`PaperExchangeClient.quiet_limits`) are found with
        array operations and handed to the venue at once (:class:`_QuietRuns`).
        """
        values = feed.values
        apply_bbo, apply_trade = venue.apply_bbo, venue.apply_trade
        advance = clock.advance_to
        next_deadline = clock.next_deadline
        expect = bot.expect_activity
        settle = bot.wait_until_idle
        current = clock.now()
        deadline = next_deadline()
        horizon = next_sample if deadline is None else min(deadline, next_sample)
        seen_wakes = bot.wakes
        # Events applied are counted by the venue (it is given nothing else): no counter here.
        applied_before = venue.events_applied
        bbo, sold = BBO, SOLD
        buyer, seller = OrderSide.BUY, OrderSide.SELL
        value = values.__getitem__
        runs = _QuietRuns(values, native_library())
        sample_now = self._sample_now
        for columns in feed.chunks(start, stop):
            times, kinds, first, second, third, fourth = columns
            count = len(times)
            runs.load(columns)
            # The columns are iterated as the arrays they are (an event's objects are made in C,
            # as it is reached; lists of a whole chunk's floats would cost megabytes). A quiet
            # run is jumped over by moving the column iterators (their __setstate__, the pickle
            # protocol's position), so its events are never read here.
            iterators = (
                iter(times),
                iter(kinds),
                iter(first),
                iter(second),
                iter(third),
                iter(fourth),
            )
            time_it, kind_it, first_it, second_it, third_it, fourth_it = iterators
            rows = zip(
                time_it,
                kind_it,
                map(value, first_it),
                map(value, second_it),
                map(value, third_it),
                map(value, fourth_it),
                strict=True,
            )
            position = 0
            try_at = 0
            for timestamp, kind, a, b, c, d in rows:
                position += 1
                if position > try_at and bot.wakes == seen_wakes:
                    limits = venue.quiet_limits()
                    begin = position - 1
                    end = begin if limits is None else runs.end(begin, count, limits, deadline)
                    same_quotes = False
                    # Else a run of quotes at the book's very prices (usually at a level of ours)
                    # and trades that reach no order of ours: they change sizes, what is known of
                    # our queue and the last trade price only. From a trade only when there were
                    # no quiet limits: their trade bounds and times are the same-quote run's.
                    if end == begin and (
                        (a is venue._best_bid and b is venue._best_ask) if kind == bbo else limits is None
                    ):
                        same_limits = venue.same_quote_limits()
                        if same_limits is not None:
                            end = runs.same_quote_end(begin, count, same_limits, deadline)
                            same_quotes = True
                    if end > begin:
                        # Events begin .. end-1 change nothing but the book's last state (and
                        # our queues): the samples due among them are read from the columns,
                        # and the run is applied at once.
                        if times[end - 1] >= next_sample:
                            next_sample = runs.take_samples(venue, samples, begin, end, next_sample, interval)
                        if same_quotes:
                            runs.apply_same_quotes(venue, begin, end)
                        else:
                            runs.apply(venue, begin, end, (venue._best_bid, venue._best_ask))
                        last = times[end - 1]
                        if last > clock._now:
                            clock._now = last
                        current = last
                        horizon = next_sample if deadline is None else min(deadline, next_sample)
                        if end > position:
                            for iterator in iterators:
                                iterator.__setstate__(end)
                        position = end
                        try_at = position + 1
                        continue
                    try_at = position + runs.backoff()
                if timestamp != current:
                    if bot.wakes == seen_wakes and timestamp < horizon:
                        # Nothing woke the bot and no timer or sample is due: only time moves
                        # (what advance_to does when no timer is due, without the call).
                        if timestamp > clock._now:
                            clock._now = timestamp
                    else:
                        # A new instant: the bot first reacts to everything at the previous one.
                        if bot.wakes != seen_wakes:
                            await settle()
                            seen_wakes = bot.wakes
                            deadline = next_deadline()
                        while deadline is not None and deadline < timestamp:
                            if task.done():
                                return venue.events_applied - applied_before
                            if advance(deadline):
                                expect()
                                await settle()
                                seen_wakes = bot.wakes
                            deadline = next_deadline()
                        if task.done():
                            return venue.events_applied - applied_before
                        if timestamp >= next_sample:
                            sampled = sample_now(venue, samples, timestamp, next_sample, interval)
                            next_sample = (
                                sampled
                                if sampled is not None
                                else await self._sample(venue, samples, timestamp, next_sample, interval)
                            )
                        if advance(timestamp):
                            expect()
                        # Timers only change while the bot runs (in settle), so this stays exact
                        # until the bot is woken again.
                        horizon = next_sample if deadline is None else min(deadline, next_sample)
                    current = timestamp
                if kind == bbo:
                    apply_bbo(a, b, c, d)
                else:
                    apply_trade(a, b, seller if kind == sold else buyer)
        if bot.wakes != seen_wakes:
            await settle()
        return venue.events_applied - applied_before

    @staticmethod
    def _sample_now(
        venue: PaperExchangeClient, samples: SampleLog, now: float, due: float, interval: float
    ) -> float | None:
        """:meth:`_sample` without awaiting (the venue's state read at once); None when the
        venue must be asked as a live caller would (failures injected): call :meth:`_sample`."""
        if now < due:
            return due
        state = venue.equity_sample()
        if state is None:
            return None
        samples.add(now, state)
        return due + interval * (1 + (now - due) // interval)

    @staticmethod
    async def _sample(
        venue: PaperExchangeClient,
        samples: SampleLog,
        now: float,
        due: float,
        interval: float,
        force: bool = False,
    ) -> float:
        """Record equity, inventory and the quote (as of just before ``now``'s events)."""
        if now < due and not force:
            return due
        bid, ask = await venue.fetch_bbo_prices(venue.contract_id)
        account = await venue.get_account_snapshot()
        position = account.positions[0].size if account.positions else Decimal(0)
        samples.add(now, (bid, ask, position, account.equity, account.realized_pnl, account.fees_paid))
        if now < due:
            return due
        return due + interval * (1 + (now - due) // interval)


async def _stop_bot(bot: Any, task: asyncio.Future[Any], clock: SimulatedClock) -> None:
    """End the bot after the drive failed, so the error reaches the caller instead of a hang.

    Left alone, the pending bot task is cancelled by ``asyncio.run``'s clean-up, and its
    shutdown (which catches the cancellation in a ``finally``) then parks on the simulated
    clock waiting for cancel confirmations: nothing advances that clock any more, so the
    clean-up waits forever. Here the bot is asked to stop and its timers are released in data
    time (its shutdown has a deadline in that time), and cancelled outright if that is not
    enough.
    """
    bot.request_shutdown("backtest aborted by an error")
    for _ in range(_STOP_PASSES):
        if task.done():
            break
        await asyncio.sleep(0)
        deadline = clock.next_deadline()
        if deadline is not None:
            clock.advance_to(deadline)
    for _ in range(_STOP_PASSES):
        if task.done():
            break
        task.cancel()
        await asyncio.sleep(0)
    if task.done() and not task.cancelled() and task.exception() is not None:
        logger.warning("the bot also failed while stopping: %r", task.exception())
    elif not task.done():
        logger.warning("the bot did not stop after the error; abandoning it")


#: Events read at a time while looking for the first quote.
_OPENING_WINDOW = 64

#: Event-loop passes allowed for stopping the bot after an error (each releases one timer).
_STOP_PASSES = 10_000


def spec_summary(spec: BacktestSpec) -> dict[str, Any]:
    """The spec as JSON-friendly values, for the report."""
    return {
        "label": spec.label,
        "strategy": spec.strategy,
        "ticker": spec.ticker,
        "quantity": str(spec.quantity),
        "strategy_params": {key: _plain(value) for key, value in sorted(spec.strategy_params.items())},
        "exchange_params": {key: _plain(value) for key, value in sorted(spec.exchange_params.items())},
        "feed_path": spec.feed_path,
        "synthetic_events": spec.synthetic_events,
        "max_events": spec.max_events,
        "filter_market_wakes": spec.filter_market_wakes,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "value") and not isinstance(value, Decimal):
        return value.value
    return str(value)


def run_backtest(spec: BacktestSpec, out_dir: str | Path | None = None) -> BacktestResult:
    """Run one backtest to completion in a fresh event loop (safe to call in a worker process).

    With ``out_dir`` the orders and fills are written to its orders.csv and fills.csv as they
    happen instead of being kept in the result (how the command line runs: memory stays flat
    however long the run).
    """
    results: list[BacktestResult] = []

    async def main() -> None:
        # The result is handed out here, not as the main task's result: asyncio.run's clean-up
        # formats the main task's repr (via the SIGINT handler) on the main thread, and the repr
        # of a whole BacktestResult costs a tenth of a second or more after a long run.
        results.append(await BacktestEngine(spec, out_dir).run())

    event_loop.run(main())
    return results[0]


_QUOTE_BYTE = bytes([BBO])
#: Prices whose places in the value table a run's search remembers (see _QuietRuns._edges).
_EDGES_KEPT = 512
#: Events of a run of same quotes looked at in Python before the compiled search takes the rest
#: (most runs are a few events: a search costs more than looking).
_SAME_QUOTES_LOOKED_AT = 4
_TRADE_FLAG = bytes([0])
#: Samples the compiled sample search finds a call (a run of the shared feed holds up to ~100).
_SAMPLES_A_CALL = 512


class _QuietRuns:
    """Finds runs of events inside a venue's :class:`~exchanges.paper.QuietLimits`.

    The feed's value table is sorted by size (see :class:`~backtesting.feed_cache.CachedFeed`),
    so a value index orders as the price it names: a Decimal bound becomes an index bound by one
    bisection of the table (exact, no floats) and the search compares the columns' small
    integers as they are. The search is ``bs_quiet_end`` of the compiled scanner's library
    (``library``) when it is at hand, else a plain loop over the chunk's arrays, with the same
    answers (no array library either way: numpy alone would add 16 MB to a backtest's memory).
    """

    _MAX_BACKOFF = 256

    def __init__(self, values: list[Decimal], library: Any = None) -> None:
        self._values = values
        self._library = library
        self._backoff = 1
        #: A price -> where values equal to it start and end in the table: the limits' prices
        #: come back run after run (bands move by ticks), and a bisection of a table of 16,000
        #: Decimals costs about 15 comparisons. Emptied at _EDGES_KEPT prices: a band's edges
        #: are worked-out prices, new ones all along a long run (6 MB at 5,000,000 events).
        self._edges: dict[Decimal, tuple[int, int]] = {}
        # The compiled functions' packed arguments and outputs (see binance_scan.c), made once.
        self._change_call = array("q", bytes(6 * 8))
        self._size_call = array("q", bytes(8 * 8))
        self._bid_sizes = array("I")
        self._ask_sizes = array("I")
        self._sample_call = array("q", bytes(11 * 8))
        self._sample_numbers = array("d", (0.0, 0.0))
        self._splits = array("q", bytes(_SAMPLES_A_CALL * 8))
        self._quotes = array("q", bytes(_SAMPLES_A_CALL * 8))
        self._sample_call[8:] = array(
            "q", (column_address(self._splits), column_address(self._quotes), _SAMPLES_A_CALL)
        )

    def load(self, columns: Columns) -> None:
        """Take a chunk's columns."""
        self._columns = columns
        self._times = columns[0]
        self._kinds = columns[1]
        self._first = columns[2]
        self._second = columns[3]
        # The kinds as bytes, and as 1 for a quote and 0 for a trade: the last quote or trade of
        # a range is then one bytes.rfind (C), not a loop.
        kinds = columns[1].tobytes()
        self._kind_bytes = kinds
        self._quote_flags = kinds.translate(QUOTE_FLAGS)
        # Where the searched columns start, for the compiled search (valid while they are held).
        self._addresses = (
            column_address(self._kinds),
            column_address(self._first),
            column_address(self._second),
        )
        sizes = (column_address(columns[4]), column_address(columns[5]))
        self._size_call[:3] = array("q", (self._addresses[0], *sizes))
        self._change_call[:3] = array("q", self._addresses)
        self._sample_call[:4] = array("q", (column_address(self._times), *self._addresses))

    def backoff(self) -> int:
        """Events to go before trying again after a run was not found (doubles, up to a limit)."""
        self._backoff = min(self._backoff * 2, self._MAX_BACKOFF)
        return self._backoff

    def _edges_of(self, price: Decimal) -> tuple[int, int]:
        """``bisect_left`` and ``bisect_right`` of ``price`` in the table: the values equal to it
        (equal values with other digits, ``1.0`` and ``1.00``, sit together) are ``[low, high)``."""
        known = self._edges
        edges = known.get(price)
        if edges is None:
            if len(known) >= _EDGES_KEPT:
                known.clear()
            values = self._values
            low = bisect.bisect_left(values, price)
            edges = known[price] = (low, bisect.bisect_right(values, price, low))
        return edges

    def _indexes_of(self, prices: tuple[Decimal, ...]) -> list[tuple[int, int]]:
        """The index ranges ``[low, high)`` of the values equal to each of ``prices``; prices the
        feed never shows are left out."""
        return [edges for edges in map(self._edges_of, prices) if edges[1] > edges[0]]

    def end(self, begin: int, count: int, limits: QuietLimits, deadline: float | None) -> int:
        """The index of the first event at or after ``begin`` outside ``limits`` or at or after
        ``deadline`` (the next timer), or ``count``."""
        stop = self._time_stop(begin, count, limits.before, limits.until, deadline)
        if stop <= begin:
            return stop
        edges = self._edges_of
        # x > bound  <=>  index(x) >= bisect_right(bound);  x < bound  <=>  index(x) < bisect_left(bound)
        bounds = (
            edges(limits.bid_low)[1],
            edges(limits.bid_high)[0],
            edges(limits.ask_low)[1],
            edges(limits.ask_high)[0],
            edges(limits.trade_low)[1],
            edges(limits.trade_high)[0],
        )
        return self._search(
            begin, stop, bounds, self._indexes_of(limits.bid_excluded), self._indexes_of(limits.ask_excluded)
        )

    def same_quote_end(
        self,
        begin: int,
        count: int,
        limits: SameQuoteLimits,
        deadline: float | None,
    ) -> int:
        """The index of the first event at or after ``begin`` that is neither a quote with the
        book's very bid and ask (the limits'; the same value indexes: the same digits) nor a trade
        strictly inside the limits' trade bounds, or at or after ``deadline`` or outside the
        limits' times; or ``count``. ``begin`` itself when the book's prices have no one place
        in the table to compare with (equal values with other digits)."""
        stop = self._time_stop(begin, count, limits.before, limits.until, deadline)
        if stop <= begin:
            return stop
        kinds, first, second, quote = self._kinds, self._first, self._second, BBO
        if kinds[begin] == quote:
            bid, ask = first[begin], second[begin]  # the drive saw the book's very objects there
        else:
            bid, ask = self._index_of(limits.bid), self._index_of(limits.ask)
            if bid < 0 or ask < 0:
                return begin
        trade_low, trade_high = self._edges_of(limits.trade_low)[1], self._edges_of(limits.trade_high)[0]
        # Most runs are short: their first events are looked at here, the rest in one search.
        look = min(begin + _SAME_QUOTES_LOOKED_AT, stop)
        for index in range(begin, look):
            if kinds[index] == quote:
                if first[index] != bid or second[index] != ask:
                    return index
            elif not trade_low <= first[index] < trade_high:
                return index
        if look == stop:
            return stop
        return self._search(look, stop, (bid, bid + 1, ask, ask + 1, trade_low, trade_high), [], [])

    def _index_of(self, price: Decimal) -> int:
        """The table's one index holding ``price``, or -1 when it holds none or several."""
        low, high = self._edges_of(price)
        return low if high - low == 1 else -1

    def _time_stop(self, begin: int, count: int, before: float, until: float, deadline: float | None) -> int:
        """The first index at or after ``begin`` at or after ``before`` or ``deadline``, or
        after ``until``; or ``count``. Times never run backwards: a bisection for each limit
        the chunk's last event reaches (most lie beyond it: no order in flight, no funding)."""
        if begin >= count:
            return begin  # what the bisections give an empty range
        times = self._times
        last = times[count - 1]
        time_limit = before if deadline is None else min(before, deadline)
        stop = count if last < time_limit else bisect.bisect_left(times, time_limit, begin, count)
        if last > until:
            stop = min(stop, bisect.bisect_right(times, until, begin, stop))
        return stop

    def _search(
        self,
        begin: int,
        stop: int,
        bounds: tuple[int, int, int, int, int, int],
        bid_ranges: list[tuple[int, int]],
        ask_ranges: list[tuple[int, int]],
    ) -> int:
        """The first index in ``begin .. stop-1`` whose event is outside index ``bounds`` (see
        ``bs_quiet_end``) or at a price in the excluded ranges, or ``stop``."""
        library = self._library
        if library is not None:
            # The call's arguments, packed (see bs_quiet_end); held here while the C code reads.
            kinds, first, second = self._addresses
            call = array(
                "q",
                (kinds, first, second, begin, stop, *bounds, len(bid_ranges), len(ask_ranges)),
            )
            for pair in bid_ranges + ask_ranges:
                call.extend(pair)
            return library.bs_quiet_end(column_address(call))
        bid_low, bid_high, ask_low, ask_high, trade_low, trade_high = bounds
        bid_excluded = {index for low, high in bid_ranges for index in range(low, high)}
        ask_excluded = {index for low, high in ask_ranges for index in range(low, high)}
        # The columns are walked by iterators started at ``begin`` (zip, no indexing per event).
        kinds, first, second = iter(self._kinds), iter(self._first), iter(self._second)
        kinds.__setstate__(begin)
        first.__setstate__(begin)
        second.__setstate__(begin)
        quote = BBO
        for index, kind, bid, ask in zip(range(begin, stop), kinds, first, second, strict=False):
            if kind == quote:
                if not (bid_low <= bid < bid_high and ask_low <= ask < ask_high):
                    return index
                if (bid_excluded and bid in bid_excluded) or (ask_excluded and ask in ask_excluded):
                    return index
            elif not trade_low <= bid < trade_high:
                return index
        return stop

    def _last_quote(self, low: int, high: int) -> int:
        """The index of the last quote in ``low .. high-1`` (``low - 1`` if none)."""
        found = self._kind_bytes.rfind(_QUOTE_BYTE, low, high) if high > low else -1
        return found if found >= 0 else low - 1

    def _last_trade(self, low: int, high: int) -> int:
        """The index of the last trade in ``low .. high-1`` (``low - 1`` if none)."""
        found = self._quote_flags.rfind(_TRADE_FLAG, low, high) if high > low else -1
        return found if found >= 0 else low - 1

    def take_samples(
        self,
        venue: PaperExchangeClient,
        samples: SampleLog,
        begin: int,
        end: int,
        due: float,
        interval: float,
    ) -> float:
        """Take the samples due at events ``begin`` .. ``end - 1`` of a quiet or same-quote run
        (not yet applied), as applying it one by one would: each reads the book as the events
        before it left it. Nothing but the quote moves inside a run, so a sample is the
        venue's state with the run's last quote before it (the book's, if none). Returns when
        the next sample falls due."""
        times, _kinds, first, second = self._times, self._kinds, self._first, self._second
        values = self._values
        bid, ask = venue._best_bid, venue._best_ask
        assert bid is not None and ask is not None  # a run needs a book
        sample_at = venue.equity_sampler()
        state = sample_at(bid, ask)
        if self._library is not None:
            return self._take_samples_compiled(samples, begin, end, due, interval, bid, ask, sample_at, state)
        last_quote_in = self._kind_bytes.rfind  # _last_quote, inlined: a run may hold hundreds
        while True:
            split = bisect.bisect_left(times, due, begin, end)
            if split == end:
                return due
            quote = last_quote_in(_QUOTE_BYTE, begin, split)
            if quote >= 0:
                # Most samples find the quote of the one before (the same value objects).
                quoted_bid, quoted_ask = values[first[quote]], values[second[quote]]
                if quoted_bid is not bid or quoted_ask is not ask:
                    bid, ask = quoted_bid, quoted_ask
                    state = sample_at(bid, ask)
            moment = times[split]
            samples.add(moment, state)
            due += interval * (1 + (moment - due) // interval)
            begin = split

    def _take_samples_compiled(
        self,
        samples: SampleLog,
        begin: int,
        end: int,
        due: float,
        interval: float,
        bid: Decimal,
        ask: Decimal,
        sample_at: Callable[[Decimal, Decimal], SampleState],
        state: SampleState,
    ) -> float:
        """:meth:`take_samples`' loop, the search in ``bs_sample_points``: it gives each
        sample's event and, where the quote before it has other value indexes than the last one
        it gave, that quote; the value objects are compared here as the Python loop does."""
        times, first, second, values = self._times, self._first, self._second, self._values
        call, numbers = self._sample_call, self._sample_numbers
        call[4], call[5], call[6], call[7] = begin, end, -1, -1
        numbers[0], numbers[1] = due, interval
        splits, quotes = self._splits, self._quotes
        search = self._library.bs_sample_points
        call_address, numbers_address = column_address(call), column_address(numbers)
        add = samples.add
        while True:
            found = search(call_address, numbers_address)
            for index in range(found):
                quote = quotes[index]
                if quote >= 0:
                    quoted_bid, quoted_ask = values[first[quote]], values[second[quote]]
                    if quoted_bid is not bid or quoted_ask is not ask:
                        bid, ask = quoted_bid, quoted_ask
                        state = sample_at(bid, ask)
                add(times[splits[index]], state)
            if found < _SAMPLES_A_CALL:
                return numbers[0]

    def apply_same_quotes(self, venue: PaperExchangeClient, begin: int, end: int) -> None:
        """Hand events ``begin`` .. ``end - 1``, found by :meth:`same_quote_end`, to the venue."""
        if end <= begin:
            return
        self._backoff = 1
        times, _kinds, first, second, third, fourth = self._columns
        value = self._values.__getitem__
        last_quote = self._last_quote(begin, end)
        last_trade = self._last_trade(begin, end)
        bid_sizes: Iterable[int]
        ask_sizes: Iterable[int]
        if self._library is not None:
            # The quotes' sizes, each side's repeats of the size before left out (the venue's
            # queue skips the same size object again; most runs repeat half their sizes).
            if len(self._bid_sizes) < end - begin:
                room = bytes(4 * max(end - begin, 2 * len(self._bid_sizes)))
                self._bid_sizes, self._ask_sizes = array("I", room), array("I", room)
                self._size_call[5:7] = array(
                    "q", (column_address(self._bid_sizes), column_address(self._ask_sizes))
                )
            call = self._size_call
            call[3], call[4] = begin, end
            bids = self._library.bs_quote_sizes(column_address(call))
            bid_sizes = itertools.islice(self._bid_sizes, bids)
            ask_sizes = itertools.islice(self._ask_sizes, call[7])
        elif last_trade >= begin:  # the quotes' sizes only (a trade's third and fourth name none)
            flags = self._quote_flags[begin:end]
            bid_sizes = itertools.compress(third[begin:end], flags)
            ask_sizes = itertools.compress(fourth[begin:end], flags)
        else:
            bid_sizes, ask_sizes = third[begin:end], fourth[begin:end]
        venue.apply_same_quotes(
            end - begin,
            map(value, bid_sizes),
            map(value, ask_sizes),
            tuple(map(value, (first[last_quote], second[last_quote], third[last_quote], fourth[last_quote])))
            if last_quote >= begin
            else None,
            (value(first[last_trade]), times[last_trade]) if last_trade >= begin else None,
        )

    def apply(
        self,
        venue: PaperExchangeClient,
        begin: int,
        end: int,
        opening: tuple[Decimal | None, Decimal | None],
    ) -> None:
        """Hand events ``begin`` .. ``end - 1`` (a quiet run) to the venue: its last quote, its
        last trade and when the venue last noted a skipped update (every trade, and every
        quote that differs from the quote before it; ``opening``: the book's quote before the
        run): what applying the events one by one would leave."""
        if end <= begin:
            return
        self._backoff = 1
        times, _kinds, first, second, third, fourth = self._columns
        values = self._values
        last_quote = self._last_quote(begin, end)
        last_trade = self._last_trade(begin, end)
        noted = last_trade
        at = last_quote
        change = self._change_call
        change[3] = begin
        while at > noted:  # the last quote that changed, if it comes after the last trade
            if self._library is not None:
                # Skips back over quotes with the same value indexes as the one before them.
                change[4], change[5] = at, noted
                at = self._library.bs_quote_change(column_address(change))
                if at <= noted:
                    break
            before = self._last_quote(begin, at)
            # Compared as values: equal prices with other digits are the same quote.
            previous = (values[first[before]], values[second[before]]) if before >= begin else opening
            if (values[first[at]], values[second[at]]) != previous:
                noted = at
                break
            at = before
        skipped_at = times[noted] if noted >= begin else None
        venue.apply_quiet_run(
            end - begin,
            (
                values[first[last_quote]],
                values[second[last_quote]],
                values[third[last_quote]],
                values[fourth[last_quote]],
            )
            if last_quote >= begin
            else None,
            values[first[last_trade]] if last_trade >= begin else None,
            skipped_at,
        )
