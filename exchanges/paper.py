"""The simulated ``paper`` venue: a real matching engine over a synthetic or recorded market.

It gives the whole bot — strategies, risk manager, order tracking — a venue to run against with
no keys: a top-of-book fed by :mod:`backtesting.market_feed`, resting orders matched against it,
maker/taker fees, post-only rejection, partial fills, one net position with realized and
unrealized PnL, and periodic funding. Live, a background "pump" task applies market events at
their time; a backtest sets ``drive_externally`` and calls :meth:`apply_market_event` itself
with a :class:`~helpers.clock.SimulatedClock`.

Maker fills follow ``fill_model`` (every rule is checkable by hand):

* ``queue`` (the default): a resting order fills only because of trade prints. A print
  **through** its price (below a buy's, above a sell's) fills it completely; prints **at** its
  price first use up the size displayed ahead of it when it reached the venue (reduced also by
  cancellations, pro rata), then fill it by traded size. See :mod:`exchanges.paper_queue`.
* ``touch`` (the older rule): a resting BUY at price P fills **completely at P** when a BBO
  update shows ``best_ask <= P`` or a trade prints strictly below P; a trade exactly at P fills
  ``min(remaining, trade size)``, shared by our orders at P in time priority. SELL mirrors it.

Latency (``entry_latency_ms``, ``cancel_latency_ms``, ``market_data_latency_ms``; all 0 by
default here, a backtest sets its own defaults): with any of them above 0 an order or cancel
reaches the venue only that long after it was sent, in FIFO order, and takes effect on the book
as it stands then, after the market data of the same instant. Placing answers OPEN at once (the
gateway's acknowledgement: an answer of PENDING would have the execution layer look the order up
in a tight loop until it arrives), look-ups show it PENDING until it arrives, and the venue then
reports OPEN, REJECTED (a post-only order that would cross on arrival) or the taker fill;
cancelling answers with the order as it stands and reports CANCELLED on arrival, unless a
fill got there first (the fill stands). Market-data latency is folded into both: a strategy that
sees the book ``m`` late and sends at once reaches the venue ``m + entry`` after the data it
acted on, which is what the venue applies. Our fills are reported at once.

Other rules:
* A post-only order that would cross (buy at or above the best ask, sell at or below the best
  bid) is rejected with PostOnlyRejected; a crossing non-post-only limit and every market order
  fill immediately and completely at the touch (best ask for buys, best bid for sells) as taker.
  Liquidity at the touch is taken to be unlimited; our orders never move the simulated book.
* Fees are ``price × size × pct / 100`` in quote: the maker fee on resting fills, the taker fee
  on immediate fills. They are charged to the balance.
* A reduce-only order never grows or flips the position: it is refused at placement if its size
  exceeds the position it reduces, and when it fills later only the part that still reduces the
  position fills — the rest of the order EXPIRES.
* Order, fill and market-update times are the clock's, so a replay under a live clock looks
  live and a backtest under a simulated clock sees the feed's time.
* Funding is paid at ``funding_offset_hours`` plus every multiple of ``funding_interval_hours``
  since the epoch (00:00, 08:00, 16:00 UTC by default), by the clock: ``payment = -position ×
  mid × rate`` (longs pay when the rate is positive), at the mid and on the position that stood
  when the boundary passed. The rate is ``funding_rate`` at every settlement, or, with
  ``funding_volatility`` above zero, a seeded mean-reverting walk around it (``rate_next = rate +
  funding_reversion × (funding_rate - rate) + funding_volatility × N(0, 1)``, one step per
  settlement, seeded by ``funding_seed``), so two paper venues can disagree about funding the
  way real ones do. With ``funding_history_path`` (a JSON list of ``[time in ms, rate, ...]``
  rows, the layout of ``shared/fixtures/funding``) each settlement uses the last recorded rate
  at or before it. :meth:`get_funding_rate` answers the rate of the next settlement.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import heapq
import itertools
import json
import logging
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from backtesting.market_feed import (
    DEFAULT_SEED,
    DEFAULT_SIZE_STEP,
    DEFAULT_SPREAD_TICKS,
    DEFAULT_START_PRICE,
    DEFAULT_STEP_SECONDS,
    DEFAULT_TICK_SIZE,
    DEFAULT_VOLATILITY_BPS,
    FeedStats,
    MarketEvent,
    MarketEventKind,
    SyntheticMarket,
    TruncatedFeed,
    UnknownFeedFormat,
    read_recorded_feed,
)
from exchanges.base import (
    AccountSnapshot,
    BaseExchangeClient,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    Fill,
    FundingRate,
    InvalidOrder,
    MarketUpdate,
    OrderBelowMinimum,
    OrderInfo,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    PostOnlyRejected,
    SlippageExceeded,
)
from exchanges.paper_queue import PriceLevel
from helpers.clock import Clock
from helpers.instruments import InverseLedger, known_synthetic_tickers, resolve_paper_params

if TYPE_CHECKING:
    from helpers.trading_config import TradingConfig

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)
#: Best bid, best ask, position, equity, realized PnL and fees (see equity_sample).
EquitySample = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]
_INFINITY = Decimal("Infinity")
_MINUS_INFINITY = -_INFINITY
_HUNDRED = Decimal(100)
_BBO = MarketEventKind.BBO
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
#: Events read per step from the market source (in a worker thread, so file reads never block).
_SOURCE_BATCH_SIZE = 1024
#: With no pacing delay due, the pump still yields to the event loop this often.
_PUMP_YIELD_EVERY = 64
_PUMP_ERRORS_LOGGED = 5
#: Recorded settlement times carry a few ms of jitter: a rate stamped this soon after a
#: settlement time still belongs to it.
_HISTORY_SLACK_SECONDS = 60.0
#: Finished orders the venue still answers look-ups for; older ones are forgotten (as real
#: venues archive them), so memory stays flat over millions of events.
FINISHED_ORDERS_KEPT = 5000
#: ``queue``: maker fills need trades (see :mod:`exchanges.paper_queue`); ``touch``: a quote
#: reaching the price fills the whole order (the older, optimistic rule).
FILL_MODELS = ("queue", "touch")


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("expected a number") from None
    if not number.is_finite():
        raise ValueError("expected a finite number")
    return number


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def _parse_float(value: Any) -> float:
    number = float(_parse_decimal(value))
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_optional_path(value: Any) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return Path(str(value).strip()).expanduser()


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _fee_range(value: Any) -> str | None:
    return None if -1 <= value <= 1 else "must be a percent between -1 and 1 (0.02 means 0.02 %)"


def _at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "must be >= 1"


def _parse_fill_model(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in FILL_MODELS:
        raise ValueError(f"expected one of {', '.join(FILL_MODELS)}")
    return text


def _rate_range(value: Any) -> str | None:
    return None if -1 < value < 1 else "must be a fraction per interval between -1 and 1 (0.0001 = 0.01 %)"


@dataclass(frozen=True)
class PaperOptions:
    """Settings of the paper venue, read from ``config.exchange_params``.

    Fees are percents (``0.02`` = 0.02 %); ``funding_rate`` is a fraction per interval
    (``0.0001`` = 0.01 % every ``funding_interval_hours``); ``volatility_bps`` is the per-step
    standard deviation of the synthetic log return in basis points. With ``feed_path`` set the
    recorded feed replaces the synthetic process; ``replay_speed`` 1.0 is real time, 10 is ten
    times faster, ``<= 0`` as fast as possible. ``drive_externally`` leaves feeding events to a
    backtest engine. ``fill_model`` is ``queue`` or ``touch`` (see the module doc); the three
    latencies are milliseconds. Tick, size step, limits, fees, ``contract_multiplier``,
    ``inverse`` and ``settlement_currency`` not given here come from ``data/instruments.toml``
    for a known ticker (:func:`helpers.instruments.resolve_paper_params`), as do a synthetic
    market's start price and tick; the defaults below apply otherwise.
    """

    seed: int = DEFAULT_SEED
    start_price: Decimal = DEFAULT_START_PRICE
    volatility_bps: Decimal = DEFAULT_VOLATILITY_BPS
    spread_ticks: int = DEFAULT_SPREAD_TICKS
    tick_size: Decimal = DEFAULT_TICK_SIZE
    size_step: Decimal = DEFAULT_SIZE_STEP
    min_size: Decimal = Decimal("0.001")
    min_notional: Decimal = Decimal("5")
    maker_fee_pct: Decimal = Decimal("0.002")
    taker_fee_pct: Decimal = Decimal("0.02")
    start_balance: Decimal = Decimal("10000")
    funding_rate: Decimal = Decimal("0.0001")
    funding_interval_hours: Decimal = Decimal("8")
    funding_offset_hours: Decimal = Decimal("0")
    funding_volatility: Decimal = Decimal("0")
    funding_reversion: Decimal = Decimal("0.2")
    funding_seed: int = 11
    funding_history_path: Path | None = None
    step_seconds: float = DEFAULT_STEP_SECONDS
    feed_path: Path | None = None
    replay_speed: float = 1.0
    drive_externally: bool = False
    fill_model: str = "queue"
    contract_multiplier: Decimal = Decimal(1)
    inverse: bool = False
    settlement_currency: str = "USD"
    entry_latency_ms: float = 0.0
    cancel_latency_ms: float = 0.0
    market_data_latency_ms: float = 0.0

    @property
    def entry_delay(self) -> float:
        """Seconds from sending an order to the venue having it, market-data delay folded in."""
        return (self.entry_latency_ms + self.market_data_latency_ms) / 1000.0

    @property
    def cancel_delay(self) -> float:
        """Seconds from sending a cancel to the venue acting on it, market-data delay folded in."""
        return (self.cancel_latency_ms + self.market_data_latency_ms) / 1000.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> PaperOptions:
        """Parse and check ``params`` (strings from the CLI or typed values).

        Raises ConfigurationError with a one-line message naming the offending key.
        """
        given = dict(params or {})
        known = [option.name for option in dataclasses.fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigurationError(
                f"unknown paper exchange option {unknown[0]!r} (known: {', '.join(known)})"
            )
        values: dict[str, Any] = {}
        for name, raw in given.items():
            parse, check = _OPTION_RULES[name]
            try:
                value = parse(raw)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"paper exchange option {name!r}: {exc}, got {raw!r}") from None
            problem = check(value) if check is not None and value is not None else None
            if problem:
                raise ConfigurationError(f"paper exchange option {name!r} {problem}, got {raw!r}")
            values[name] = value
        return cls(**values)


_OPTION_RULES: dict[str, tuple[Any, Any]] = {
    "seed": (_parse_int, None),
    "start_price": (_parse_decimal, _positive),
    "volatility_bps": (_parse_decimal, _not_negative),
    "spread_ticks": (_parse_int, _at_least_one),
    "tick_size": (_parse_decimal, _positive),
    "size_step": (_parse_decimal, _positive),
    "min_size": (_parse_decimal, _not_negative),
    "min_notional": (_parse_decimal, _not_negative),
    "maker_fee_pct": (_parse_decimal, _fee_range),
    "taker_fee_pct": (_parse_decimal, _fee_range),
    "start_balance": (_parse_decimal, _positive),
    "funding_rate": (_parse_decimal, _rate_range),
    "funding_interval_hours": (_parse_decimal, _positive),
    "funding_offset_hours": (_parse_decimal, _not_negative),
    "funding_volatility": (_parse_decimal, _not_negative),
    "funding_reversion": (_parse_decimal, lambda v: None if 0 <= v <= 1 else "must be between 0 and 1"),
    "funding_seed": (_parse_int, None),
    "funding_history_path": (_parse_optional_path, None),
    "step_seconds": (_parse_float, _positive),
    "feed_path": (_parse_optional_path, None),
    "replay_speed": (_parse_float, None),
    "drive_externally": (_parse_bool, None),
    "fill_model": (_parse_fill_model, None),
    "contract_multiplier": (_parse_decimal, _positive),
    "inverse": (_parse_bool, None),
    "settlement_currency": (lambda value: str(value).strip().upper(), None),
    "entry_latency_ms": (_parse_float, _not_negative),
    "cancel_latency_ms": (_parse_float, _not_negative),
    "market_data_latency_ms": (_parse_float, _not_negative),
}


def read_funding_history(path: Path) -> list[tuple[float, Decimal]]:
    """A recorded funding history: JSON rows ``[time in ms, rate, ...]`` -> (seconds, rate),
    sorted. Any unreadable file or row is a one-line ConfigurationError naming the file."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"paper exchange option 'funding_history_path': cannot read {path}: {exc}"
        ) from None
    history: list[tuple[float, Decimal]] = []
    try:
        for row in rows:
            history.append((float(row[0]) / 1000.0, _parse_decimal(row[1])))
    except (TypeError, ValueError, IndexError, KeyError):
        raise ConfigurationError(
            f"paper exchange option 'funding_history_path': {path} is not a list of [time_ms, rate] rows"
        ) from None
    if not history:
        raise ConfigurationError(f"paper exchange option 'funding_history_path': {path} holds no rates")
    history.sort(key=lambda item: item[0])
    return history


# ---------------------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------------------


class _PaperOrder:
    """The venue's own mutable record of an order; callers only ever see OrderInfo snapshots."""

    __slots__ = (
        "client_order_id",
        "contract_id",
        "created_at",
        "fill_notional",
        "filled",
        "max_slippage_pct",
        "order_id",
        "order_type",
        "post_only",
        "price",
        "queue_ahead",
        "reduce_only",
        "resting",
        "side",
        "size",
        "status",
    )

    def __init__(
        self,
        order_id: str,
        client_order_id: str | None,
        contract_id: str,
        side: OrderSide,
        order_type: OrderType,
        size: Decimal,
        price: Decimal,
        reduce_only: bool,
        created_at: float,
    ) -> None:
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.contract_id = contract_id
        self.side = side
        self.order_type = order_type
        self.size = size
        self.price = price
        self.reduce_only = reduce_only
        self.created_at = created_at
        self.status = OrderStatus.OPEN
        self.filled = _ZERO
        self.fill_notional = _ZERO
        self.resting = False
        self.queue_ahead: Decimal | None = None
        self.post_only = False
        self.max_slippage_pct: Decimal | None = None

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled

    @property
    def average_fill_price(self) -> Decimal | None:
        return self.fill_notional / self.filled if self.filled else None

    def snapshot(self) -> OrderInfo:
        # Positional, in OrderInfo's field order (order_id ... timestamp): one per order event.
        return OrderInfo(
            self.order_id,
            self.client_order_id,
            self.contract_id,
            self.side,
            self.order_type,
            self.size,
            self.price,
            self.status,
            self.filled,
            self.average_fill_price,
            self.created_at,
        )

    def result(self, status: OrderStatus | None = None) -> OrderResult:
        """The order as an answer reports it (``status``: the one the answer gives instead)."""
        return OrderResult.quick(
            True,
            self.order_id,
            self.client_order_id,
            self.side,
            self.size,
            self.price,
            self.status if status is None else status,
            self.filled,
            self.average_fill_price,
        )


_INJECTABLE_METHODS = frozenset(
    {
        "connect",
        "get_contract_info",
        "fetch_bbo_prices",
        "get_funding_rate",
        "place_limit_order",
        "place_market_order",
        "cancel_order",
        "get_order_info",
        "get_active_orders",
        "find_order",
        "get_position",
        "get_account_snapshot",
    }
)


def _take_batch(source: Iterator[MarketEvent], count: int) -> list[MarketEvent]:
    return list(itertools.islice(source, count))


# ---------------------------------------------------------------------------------------------
# The venue
# ---------------------------------------------------------------------------------------------


class QuietLimits(NamedTuple):
    """See :meth:`PaperExchangeClient.quiet_limits`: bounds are exclusive; a BBO must also not
    be at a price in ``bid_excluded``/``ask_excluded``; events must come before ``before`` and
    not after ``until``; ``notes_skips``: a subscriber's band records the skipped updates. (A
    named tuple, as :class:`SameQuoteLimits`: a backtest asks for hundreds.)"""

    bid_low: Decimal
    bid_high: Decimal
    ask_low: Decimal
    ask_high: Decimal
    bid_excluded: tuple[Decimal, ...]
    ask_excluded: tuple[Decimal, ...]
    trade_low: Decimal
    trade_high: Decimal
    before: float
    until: float
    notes_skips: bool


class SameQuoteLimits(NamedTuple):
    """See :meth:`PaperExchangeClient.same_quote_limits`: the book's prices (``bid``, ``ask``),
    the times (as :class:`QuietLimits`' ``before`` and ``until``) a run of quotes at those
    prices must keep within, and the exclusive bounds of the trades it may hold (``trade_low``
    above ``trade_high``: none)."""

    bid: Decimal
    ask: Decimal
    before: float
    until: float
    trade_low: Decimal = _INFINITY
    trade_high: Decimal = _MINUS_INFINITY


class PaperExchangeClient(BaseExchangeClient):
    """A simulated venue with one market (every contract id refers to it); see the module doc.

    Public state for drivers and tests: ``events_applied`` (market events applied so far),
    ``feed_stats`` (the recorded feed's reader statistics, when replaying one),
    ``feed_finished`` (set when a pumped feed has ended) and ``feed_error`` (what stopped the
    pump, if it failed).
    """

    name = "paper"

    def __init__(self, config: TradingConfig, clock: Clock) -> None:
        super().__init__(config, clock)
        # Explicit options over the instruments file (tick, fees, contract type, synthetic price).
        resolved = resolve_paper_params(config.ticker, config.exchange_params)
        self.options = PaperOptions.from_params(resolved)
        self.contract_id = config.ticker
        options = self.options
        #: A synthetic market needs a start price: from the options or the ticker's table entry.
        self._start_price_known = "start_price" in resolved
        #: Inverse: sizes in contracts, money in the settlement coin (see InverseLedger).
        self._inverse = InverseLedger(options.contract_multiplier) if options.inverse else None
        self._multiplier = options.contract_multiplier
        #: An inverse account starts with 10,000 USD worth of coin at the first quote unless given.
        self.start_balance: Decimal | None = (
            None if options.inverse and "start_balance" not in resolved else options.start_balance
        )
        self._maker_fee_rate = options.maker_fee_pct / _HUNDRED
        self._taker_fee_rate = options.taker_fee_pct / _HUNDRED
        self._funding_interval_seconds = float(options.funding_interval_hours) * 3600.0
        self._funding_offset_seconds = float(options.funding_offset_hours) * 3600.0
        self._funding_random = random.Random(options.funding_seed)
        #: The rate process: the settlement index it stands at and its rate there.
        self._funding_index: int | None = None
        self._funding_rate = options.funding_rate
        #: A recorded rate history (times in seconds, ascending), read at connect.
        self._funding_history: list[tuple[float, Decimal]] = []
        #: Every settlement that paid or charged us: (time, rate, position, mid, payment).
        self.funding_payments: list[tuple[float, Decimal, Decimal, Decimal, Decimal]] = []

        # top of book
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None
        self._bid_size: Decimal | None = None
        self._ask_size: Decimal | None = None
        self._last_trade_price: Decimal | None = None

        # orders: heaps keyed so the best (highest buy, lowest sell, then oldest) is on top;
        # cancelled or filled entries are dropped lazily when they reach the top.
        self._orders: dict[str, _PaperOrder] = {}
        self._active_orders: dict[str, _PaperOrder] = {}
        self._active_client_ids: dict[str, _PaperOrder] = {}
        #: Every order by client id, finished ones too (the latest, should an id be reused).
        self._client_ids: dict[str, _PaperOrder] = {}
        #: Finished orders, oldest first: beyond FINISHED_ORDERS_KEPT they are forgotten.
        self._finished: OrderedDict[str, _PaperOrder] = OrderedDict()
        self._resting_buys: list[tuple[Decimal, int, _PaperOrder]] = []
        self._resting_sells: list[tuple[Decimal, int, _PaperOrder]] = []
        self._best_buy_price: Decimal | None = None
        self._best_sell_price: Decimal | None = None
        self._order_sequence = itertools.count(1)
        self._trade_sequence = itertools.count(1)
        # queue fill model: our resting orders by price, with what is known of the queue there
        self._queue_model = options.fill_model == "queue"
        self._buy_levels: dict[Decimal, PriceLevel] = {}
        self._sell_levels: dict[Decimal, PriceLevel] = {}
        # requests on their way to the venue (entry/cancel latency): one FIFO, never overtaking
        self._in_flight: deque[tuple[float, _PaperOrder, bool]] = deque()
        self._next_arrival = math.inf

        # account
        self._position_size = _ZERO
        self._entry_price = _ZERO
        self._realized_pnl = _ZERO
        self._fees_paid = _ZERO
        self._funding_received = _ZERO
        self._next_funding_time = -math.inf
        self._funding_scheduled = False

        # market source and pump
        self.events_applied = 0
        self.feed_stats: FeedStats | None = None
        self.feed_finished = asyncio.Event()
        self.feed_error: BaseException | None = None
        self._source: Iterator[MarketEvent] | None = None
        self._pending_events: deque[MarketEvent] = deque()
        self._read_task: asyncio.Future[list[MarketEvent]] | None = None
        self._source_exhausted = False
        self._pump_task: asyncio.Task[None] | None = None
        self._pace_anchor: tuple[float, float] | None = None
        self._pump_errors = 0
        self._injected_failures: dict[str, deque[ExchangeError]] = {}

    # -- fault injection -------------------------------------------------------------------------

    def inject_failure(self, method_name: str, error: ExchangeError, count: int = 1) -> None:
        """Make the next ``count`` calls of ``method_name`` raise ``error`` (for tests of callers)."""
        if method_name not in _INJECTABLE_METHODS:
            raise ValueError(
                f"cannot inject failures into {method_name!r}; one of {sorted(_INJECTABLE_METHODS)}"
            )
        if count < 1:
            raise ValueError("count must be >= 1")
        self._injected_failures.setdefault(method_name, deque()).extend([error] * count)

    def _raise_injected(self, method_name: str) -> None:
        if not self._injected_failures:
            return
        queue = self._injected_failures.get(method_name)
        if queue:
            error = queue.popleft()
            if not queue:
                del self._injected_failures[method_name]
            raise error

    # -- lifecycle ---------------------------------------------------------------------------

    def market_source(self, start_time: float) -> Iterator[MarketEvent]:
        """The events these options describe: the recorded feed, or the synthetic market from
        ``start_time``. A backtest engine driving the venue externally can use it too."""
        options = self.options
        if options.feed_path is not None:
            if not options.feed_path.is_file():
                raise ConfigurationError(
                    f"paper exchange option 'feed_path': no such file {options.feed_path}"
                )
            self.feed_stats = FeedStats()
            return read_recorded_feed(options.feed_path, self.feed_stats)
        if not self._start_price_known:
            raise ConfigurationError(
                f"the paper venue has no synthetic market for {self.contract_id} (known: "
                f"{', '.join(known_synthetic_tickers())}, in data/instruments.toml); give "
                "--paper-start-price to make one"
            )
        return iter(
            SyntheticMarket(
                seed=options.seed,
                start_price=options.start_price,
                volatility_bps=options.volatility_bps,
                spread_ticks=options.spread_ticks,
                tick_size=options.tick_size,
                size_step=options.size_step,
                step_seconds=options.step_seconds,
                start_time=start_time,
            )
        )

    async def connect(self) -> None:
        """Start the market: apply events up to the first BBO now, then pump the rest in the
        background (unless ``drive_externally``). Connecting again after a disconnect resumes
        the same market where it stopped."""
        self._raise_injected("connect")
        if self.options.funding_history_path is not None and not self._funding_history:
            self._funding_history = await asyncio.to_thread(
                read_funding_history, self.options.funding_history_path
            )
        if self._pump_task is not None and not self._pump_task.done():
            return
        if self.options.drive_externally:
            logger.info("paper venue connected; market events come from an external driver")
            return
        if self._source is None:
            self._source = await asyncio.to_thread(self.market_source, self.clock.now())
            try:
                while self._best_bid is None:
                    if not self._pending_events and not await self._refill_pending():
                        raise ConfigurationError(
                            f"paper market feed {self.options.feed_path} holds no best-bid/offer events"
                        )
                    self._check_feed_symbol()
                    event = self._pending_events.popleft()
                    if self._pace_anchor is None:
                        self._pace_anchor = (self.clock.now(), event.timestamp)
                    self.apply_market_event(event)
            except BaseException as exc:
                self._source = None
                self._read_task = None
                self._pending_events.clear()
                self._source_exhausted = False
                if isinstance(exc, OSError):
                    raise ConfigurationError(
                        f"cannot read paper market feed {self.options.feed_path}: {exc}"
                    ) from exc
                if isinstance(exc, UnknownFeedFormat | TruncatedFeed):
                    raise ConfigurationError(str(exc)) from exc  # bad input: one line, exit 2
                raise
            logger.info(
                "paper venue connected: %s, best bid %s / ask %s",
                f"replaying {self.options.feed_path}" if self.options.feed_path else "synthetic market",
                self._best_bid,
                self._best_ask,
            )
        if self._source_exhausted and not self._pending_events:
            return
        self._pump_task = asyncio.create_task(self._pump(), name="paper-market-pump")

    def _check_feed_symbol(self) -> None:
        """A recording of another market is refused: ETH orders on a BTCUSDT tape mean nothing.

        ``BTC`` accepts ``BTCUSDT`` or ``BTCUSD_PERP`` (the ticker is a prefix of the symbol)."""
        symbols = self.feed_stats.symbols if self.feed_stats is not None else []
        if symbols and not symbols[0].startswith(self.contract_id.upper()):
            raise ConfigurationError(
                f"ticker {self.contract_id} does not match the paper feed {self.options.feed_path}, "
                f"which is {symbols[0]}"
            )

    async def disconnect(self) -> None:
        """Stop the pump; the book keeps its state and a later connect() resumes the market."""
        self._pace_anchor = None
        task, self._pump_task = self._pump_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _refill_pending(self) -> bool:
        """Read the next batch from the source in a worker thread; False when it has ended.

        A read survives cancellation of its reader (it is shielded and kept), so a disconnect
        during a read neither loses events nor runs the source in two threads at once.
        """
        if self._source_exhausted or self._source is None:
            return False
        if self._read_task is None:
            self._read_task = asyncio.ensure_future(
                asyncio.to_thread(_take_batch, self._source, _SOURCE_BATCH_SIZE)
            )
        batch = await asyncio.shield(self._read_task)
        self._read_task = None
        if not batch:
            self._source_exhausted = True
            return False
        self._pending_events.extend(batch)
        return True

    async def _pump(self) -> None:
        """Apply events at their time: ``replay_speed`` times faster than they were recorded,
        paced by the clock relative to the first event (the one connect() applied, or after a
        reconnect the first one applied since); ``<= 0`` means as fast as possible."""
        speed = self.options.replay_speed
        clock = self.clock
        since_yield = 0
        try:
            while self._pending_events or await self._refill_pending():
                event = self._pending_events[0]
                if speed > 0:
                    if self._pace_anchor is None:
                        self._pace_anchor = (clock.now(), event.timestamp)
                    anchor_clock_time, anchor_event_time = self._pace_anchor
                    delay = anchor_clock_time + (event.timestamp - anchor_event_time) / speed - clock.now()
                    if delay > 0:
                        await clock.sleep(delay)
                        since_yield = 0
                if since_yield >= _PUMP_YIELD_EVERY or speed <= 0:
                    await clock.sleep(0)
                    since_yield = 0
                since_yield += 1
                self._pending_events.popleft()
                try:
                    self.apply_market_event(event)
                except Exception:
                    self._pump_errors += 1
                    if self._pump_errors <= _PUMP_ERRORS_LOGGED:
                        logger.exception("error while applying a market event (a subscriber's bug?)")
            logger.info(
                "paper market feed ended after %d events; the book keeps its last state (bid %s / ask %s)",
                self.events_applied,
                self._best_bid,
                self._best_ask,
            )
            self.feed_finished.set()
        except Exception as exc:
            self.feed_error = exc
            logger.exception("paper market feed failed; the book keeps its last state")
            self.feed_finished.set()

    # -- the matching engine -------------------------------------------------------------------

    def equity_sample(self) -> EquitySample | None:
        """Best bid, best ask, position, equity, realized PnL and fees, as
        :meth:`fetch_bbo_prices` and :meth:`get_account_snapshot` report them, read at once.

        A backtest samples its equity curve thousands of times; this spares it two awaited
        calls and a snapshot object per sample. None while failures are injected: those calls
        must then run (and may raise) as a live caller would see them.
        """
        if self._injected_failures:
            return None
        bid, ask = self._require_book()
        return self.equity_sampler()(bid, ask)

    def equity_sampler(self) -> Callable[[Decimal, Decimal], EquitySample]:
        """:meth:`equity_sample` as it would read with a given quote in the book and all else
        as it is now (what does not depend on the quote worked out once): a backtest samples
        inside a quiet run (:meth:`quiet_limits`), where only the quote moves, without
        applying the run piece by piece."""
        realized = self._realized_pnl
        fees = self._fees_paid
        balance = self.starting_balance() + realized - fees + self._funding_received
        size = self._position_size
        if size == 0:
            return lambda bid, ask: (bid, ask, _ZERO, balance, realized, fees)
        unrealized = self._unrealized_pnl_at
        return lambda bid, ask: (bid, ask, size, balance + unrealized(bid, ask), realized, fees)

    def apply_market_event(self, event: MarketEvent) -> None:
        """Update the book with one event, pay funding due by the clock, match our resting
        orders, and emit market and order updates. Synchronous and cheap when nothing is near."""
        if event.kind is _BBO:
            self.apply_bbo(event.best_bid, event.best_ask, event.bid_size, event.ask_size)  # type: ignore[arg-type]
        else:
            self.apply_trade(event.price, event.size, event.aggressor_side)  # type: ignore[arg-type]

    def apply_bbo(self, best_bid: Decimal, best_ask: Decimal, bid_size: Decimal, ask_size: Decimal) -> None:
        """:meth:`apply_market_event` for a BBO event given as its fields (a backtest replaying
        columns of prices skips building the event object)."""
        self.events_applied += 1
        now = self.clock.now()
        if now >= self._next_funding_time:
            self._settle_funding(now)
        if now > self._next_arrival:
            self._arrive(now)
        previous_bid, previous_ask = self._best_bid, self._best_ask
        self._best_bid = best_bid
        self._best_ask = best_ask
        self._bid_size = bid_size
        self._ask_size = ask_size
        if self._queue_model:
            if self._buy_levels:
                self._queue_quote(self._buy_levels, _BUY, previous_bid, best_bid, bid_size, best_ask)
            if self._sell_levels:
                self._queue_quote(self._sell_levels, _SELL, previous_ask, best_ask, ask_size, best_bid)
        else:
            best_buy = self._best_buy_price
            if best_buy is not None and best_ask <= best_buy:
                self._match_buys(best_ask, None, now)
            best_sell = self._best_sell_price
            if best_sell is not None and best_bid >= best_sell:
                self._match_sells(best_bid, None, now)
        if self._market_handlers and (best_bid != previous_bid or best_ask != previous_ask):
            quiet = self._market_quiet
            if (
                quiet is not None
                and quiet.bid_low < best_bid < quiet.bid_high
                and quiet.ask_low < best_ask < quiet.ask_high
            ):
                quiet.skipped_at = now  # the lone subscriber would discard it (QuietQuotes.contains)
            else:
                self._emit_market_update(
                    MarketUpdate.quick(self.contract_id, best_bid, best_ask, now, self._last_trade_price)
                )

    def apply_trade(self, price: Decimal, size: Decimal, aggressor: OrderSide | None = None) -> None:
        """:meth:`apply_market_event` for a trade print given as its fields (``aggressor`` is
        the side that took liquidity; None when the data does not say)."""
        self.events_applied += 1
        now = self.clock.now()
        if now >= self._next_funding_time:
            self._settle_funding(now)
        if now > self._next_arrival:
            self._arrive(now)
        self._last_trade_price = price
        best_buy = self._best_buy_price
        if best_buy is not None and price <= best_buy:
            if self._queue_model:
                self._queue_trade(
                    self._resting_buys, self._buy_levels, price, size, aggressor is not _BUY, now
                )
                self._best_buy_price = self._top_price(self._resting_buys)
            else:
                self._match_buys(price, size, now)
        best_sell = self._best_sell_price
        if best_sell is not None and price >= best_sell:
            if self._queue_model:
                self._queue_trade(
                    self._resting_sells, self._sell_levels, price, size, aggressor is not _SELL, now
                )
                self._best_sell_price = self._top_price(self._resting_sells)
            else:
                self._match_sells(price, size, now)
        best_bid, best_ask = self._best_bid, self._best_ask
        if self._market_handlers and best_bid is not None and best_ask is not None:
            quiet = self._market_quiet
            if (
                quiet is not None
                and quiet.bid_low < best_bid < quiet.bid_high
                and quiet.ask_low < best_ask < quiet.ask_high
            ):
                quiet.skipped_at = now
            else:
                self._emit_market_update(MarketUpdate.quick(self.contract_id, best_bid, best_ask, now, price))

    # -- quiet runs: events a backtest may apply in bulk ------------------------------------------

    def quiet_limits(self) -> QuietLimits | None:
        """Which market events would change nothing right now but the book's last state.

        A BBO strictly inside the bounds, at a price where none of our orders rests, and a
        trade strictly between our best buy and best sell: no fill, no queue change, no market
        update a subscriber wants (it lies inside the lone subscriber's quiet band) and, before
        the times given, no funding and no order arriving. A driver that finds a run of such
        events may hand over its last state with :meth:`apply_quiet_run` instead of applying
        them one by one. None when no event can be skipped (a subscriber that wants every
        quote, or the book already outside the band), and while failures are injected: the
        driver reads samples inside a run with :meth:`equity_sampler`, and those must then be
        asked for as a live caller would.
        """
        quiet = self._market_quiet
        bid, ask = self._best_bid, self._best_ask
        if bid is None or ask is None or self._injected_failures:
            return None
        if self._market_handlers:
            if quiet is None or not quiet.contains(bid, ask):
                return None
            bid_low, bid_high = quiet.bid_low, quiet.bid_high
            ask_low, ask_high = quiet.ask_low, quiet.ask_high
        else:
            bid_low = ask_low = _MINUS_INFINITY
            bid_high = ask_high = _INFINITY
        buy_levels, sell_levels = self._buy_levels, self._sell_levels
        if bid in buy_levels or ask in sell_levels:
            return None  # leaving a level of ours changes what is known of its queue
        best_buy = self._best_buy_price if self._best_buy_price is not None else _MINUS_INFINITY
        best_sell = self._best_sell_price if self._best_sell_price is not None else _INFINITY
        if self._queue_model:
            # Our best order better than the touch empties the levels it passed, every quote.
            bid_low, ask_high = max(bid_low, best_buy), min(ask_high, best_sell)
        else:
            # The touch model fills on a quote reaching our price.
            ask_low, bid_high = max(ask_low, best_buy), min(bid_high, best_sell)
        return QuietLimits(
            bid_low=bid_low,
            bid_high=bid_high,
            ask_low=ask_low,
            ask_high=ask_high,
            # Only levels a quote inside the bounds could reach (usually none: our orders rest
            # at or behind the touch, below the bid bound for buys, above the ask bound for sells).
            bid_excluded=tuple(price for price in buy_levels if price > bid_low),
            ask_excluded=tuple(price for price in sell_levels if price < ask_high),
            trade_low=best_buy,
            trade_high=best_sell,
            before=self._next_funding_time,
            until=self._next_arrival,
            notes_skips=bool(self._market_handlers),
        )

    def apply_quiet_run(
        self,
        count: int,
        last_quote: tuple[Decimal, Decimal, Decimal, Decimal] | None,
        last_trade_price: Decimal | None,
        skipped_at: float | None,
    ) -> None:
        """``count`` events within :meth:`quiet_limits` applied at once: the book takes the last
        quote, the last trade price is kept and the subscriber's band notes when the last update
        it would have discarded came (exactly what applying them one by one leaves)."""
        self.events_applied += count
        if last_quote is not None:
            self._best_bid, self._best_ask, self._bid_size, self._ask_size = last_quote
        if last_trade_price is not None:
            self._last_trade_price = last_trade_price
        quiet = self._market_quiet
        if skipped_at is not None and quiet is not None:
            quiet.skipped_at = skipped_at

    def same_quote_limits(self) -> SameQuoteLimits | None:
        """When quotes at the book's present prices, and the trades among them that touch no
        order of ours, may be applied as one run.

        Such a quote fills nothing under the queue model (a quote never fills there), changes
        no price a subscriber sees, and empties no level our orders passed beyond what the
        quote before it did: it changes the book's sizes and, at a level of ours at the touch,
        what is known of the queue ahead (:meth:`apply_same_quotes`). A trade strictly between
        our best buy and best sell changes only the last trade price, and the time a lone
        subscriber's band notes, when the book lies inside that band (else it is an update the
        subscriber wants: no trade may be in the run). These are the runs while an order of
        ours rests at the touch, when :meth:`quiet_limits` has none. Before ``before`` and not
        after ``until``, as :meth:`quiet_limits`. None under the touch model (a reduce-only
        order it could not fill completely is tried again at every quote), with no book, or
        while failures are injected (as :meth:`quiet_limits`).
        """
        bid, ask = self._best_bid, self._best_ask
        if not self._queue_model or bid is None or ask is None or self._injected_failures:
            return None
        if self._market_handlers:
            quiet = self._market_quiet
            if quiet is None or not quiet.contains(bid, ask):
                return SameQuoteLimits(bid, ask, self._next_funding_time, self._next_arrival)
        best_buy, best_sell = self._best_buy_price, self._best_sell_price
        return SameQuoteLimits(
            bid,
            ask,
            self._next_funding_time,
            self._next_arrival,
            _MINUS_INFINITY if best_buy is None else best_buy,
            _INFINITY if best_sell is None else best_sell,
        )

    def apply_same_quotes(
        self,
        count: int,
        bid_sizes: Iterator[Decimal],
        ask_sizes: Iterator[Decimal],
        last_quote: tuple[Decimal, Decimal, Decimal, Decimal] | None,
        last_trade: tuple[Decimal, float] | None = None,
    ) -> None:
        """``count`` events within :meth:`same_quote_limits`: quotes at the book's prices, their
        sizes in order, and trades, the last of them with its time (``last_trade``): what
        :meth:`apply_bbo` and :meth:`apply_trade` leave applying them one by one. The first
        quote goes through the quote rules whole (after a trade at our price it may empty levels
        our orders passed); after it those rules change nothing but the level at the touch,
        which observes each size. A side's sizes are not read when it has no level of ours.
        ``last_quote`` is None for a run of trades alone."""
        self.events_applied += count
        bid, ask = self._best_bid, self._best_ask
        assert bid is not None and ask is not None  # same_quote_limits said so
        if last_quote is not None:
            if self._buy_levels:
                self._queue_quotes(self._buy_levels, _BUY, bid, bid_sizes, ask)
            if self._sell_levels:
                self._queue_quotes(self._sell_levels, _SELL, ask, ask_sizes, bid)
            self._best_bid, self._best_ask, self._bid_size, self._ask_size = last_quote
        if last_trade is not None:
            self._last_trade_price, traded_at = last_trade
            quiet = self._market_quiet
            if self._market_handlers and quiet is not None:
                quiet.skipped_at = traded_at

    def _queue_quotes(
        self,
        levels: dict[Decimal, PriceLevel],
        side: OrderSide,
        touch: Decimal,
        sizes: Iterator[Decimal],
        opposite: Decimal,
    ) -> None:
        """:meth:`apply_same_quotes` on one side of the book."""
        self._queue_quote(levels, side, touch, touch, next(sizes), opposite)
        level = levels.get(touch)
        if level is not None:
            level.observe_run(sizes)

    # -- queue fill model (see exchanges/paper_queue.py) -----------------------------------------

    @staticmethod
    def _top_price(heap: list[tuple[Decimal, int, _PaperOrder]]) -> Decimal | None:
        while heap and not heap[0][2].resting:
            heapq.heappop(heap)
        return heap[0][2].price if heap else None

    def _queue_quote(
        self,
        levels: dict[Decimal, PriceLevel],
        side: OrderSide,
        previous_touch: Decimal | None,
        touch: Decimal,
        displayed: Decimal,
        opposite: Decimal,
    ) -> None:
        """A quote on our side of the book: update what is ahead of our orders on ``side``."""
        if previous_touch is not None and previous_touch != touch:
            left = levels.get(previous_touch)
            if left is not None:
                left.hide()
        level = levels.get(touch)
        if level is not None:
            level.observe(displayed)
        best = self._best_buy_price if side is _BUY else self._best_sell_price
        if best is not None and (best > touch if side is _BUY else best < touch):
            # Our best order is better than the touch: those levels are empty of others.
            for price, passed in levels.items():
                if price > touch if side is _BUY else price < touch:
                    passed.emptied(opposite <= price if side is _BUY else opposite >= price)

    def _queue_trade(
        self,
        heap: list[tuple[Decimal, int, _PaperOrder]],
        levels: dict[Decimal, PriceLevel],
        price: Decimal,
        size: Decimal,
        hits_our_side: bool,
        now: float,
    ) -> None:
        """A print at ``price``: orders it passed through fill completely; at our price it
        works through the queue when its aggressor traded against our side (or the book is
        crossed through us)."""
        buys = heap is self._resting_buys
        while heap:
            order = heap[0][2]
            if not order.resting:
                heapq.heappop(heap)
                continue
            if order.price > price if buys else order.price < price:
                self._fill(order, order.remaining, order.price, True, now)
                if order.resting:  # a reduce-only order it could not fill completely
                    break
                continue
            break
        level = levels.get(price)
        if level is not None and (hits_our_side or level.crossed):
            for order, quantity in level.trade(size, self.options.size_step):
                if order.resting:  # type: ignore[attr-defined]
                    self._fill(order, quantity, price, True, now)  # type: ignore[arg-type]

    def _join_queue(self, order: _PaperOrder) -> None:
        """``order`` rests: place it in the queue of its price level."""
        if order.side is _BUY:
            levels, touch, displayed = self._buy_levels, self._best_bid, self._bid_size
            improves = touch is None or order.price > touch
        else:
            levels, touch, displayed = self._sell_levels, self._best_ask, self._ask_size
            improves = touch is None or order.price < touch
        level = levels.get(order.price)
        if level is None:
            level = levels[order.price] = PriceLevel()
        if improves:
            level.join(order, _ZERO, at_touch=False)
        elif order.price == touch:
            level.join(order, displayed, at_touch=True)
        else:
            level.join(order, None, at_touch=False)

    def _leave_queue(self, order: _PaperOrder) -> None:
        levels = self._buy_levels if order.side is _BUY else self._sell_levels
        level = levels.get(order.price)
        if level is not None and order in level.orders:
            level.orders.remove(order)
            if not level.orders:
                del levels[order.price]

    # -- latency: requests in flight -------------------------------------------------------------

    def _send(self, order: _PaperOrder, cancel: bool) -> None:
        """Put a request on the wire; it reaches the venue after its latency, in FIFO order."""
        delay = self.options.cancel_delay if cancel else self.options.entry_delay
        arrival = self.clock.now() + delay
        if self._in_flight and self._in_flight[-1][0] > arrival:
            arrival = self._in_flight[-1][0]  # a later request never overtakes an earlier one
        self._in_flight.append((arrival, order, cancel))
        if arrival < self._next_arrival:
            self._next_arrival = arrival

    def _arrive(self, now: float) -> None:
        """Requests that reached the venue before ``now`` take effect, on the book as it stood
        (market data at the same instant as an arrival is applied first)."""
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] < now:
            _, order, cancel = in_flight.popleft()
            if cancel:
                if order.status.is_active:
                    self._cancel_now(order)
                else:
                    logger.debug("cancel of %s arrived after it ended %s", order.order_id, order.status.value)
            elif order.status is OrderStatus.PENDING:
                self._accept(order, now)
        self._next_arrival = in_flight[0][0] if in_flight else math.inf

    def _accept(self, order: _PaperOrder, now: float) -> None:
        """An order in flight reaches the venue: rest, take, or refuse it on the current book."""
        best_bid, best_ask = self._best_bid, self._best_ask
        if best_bid is None or best_ask is None:
            self._refuse(order, "the venue has no market data")
            return
        if order.order_type is OrderType.MARKET:
            touch = best_ask if order.side is _BUY else best_bid
            assert order.max_slippage_pct is not None
            problem = self._slippage_problem(order.side, best_bid, best_ask, order.max_slippage_pct)
            if problem:
                self._refuse(order, problem)
                return
            order.status = OrderStatus.OPEN
            self._fill(order, order.remaining, touch, False, now)
            return
        crosses = order.price >= best_ask if order.side is _BUY else order.price <= best_bid
        if crosses and order.post_only:
            self._refuse(order, f"post-only {order.side.value} at {order.price} would cross the book")
            return
        order.status = OrderStatus.OPEN
        if crosses:
            self._fill(order, order.remaining, best_ask if order.side is _BUY else best_bid, False, now)
            return
        self._emit_order_update(OrderUpdate(order.snapshot(), None))
        self._rest(order)

    def _refuse(self, order: _PaperOrder, reason: str) -> None:
        logger.info("order %s refused on arrival: %s", order.order_id, reason)
        order.status = OrderStatus.REJECTED
        self._deactivate(order)
        self._emit_order_update(OrderUpdate(order.snapshot(), None))

    def _match_buys(self, price: Decimal, trade_size: Decimal | None, now: float) -> None:
        """Fill resting buys against an ask at ``price`` (``trade_size`` None) or a trade print."""
        heap = self._resting_buys
        available = trade_size
        while heap:
            order = heap[0][2]
            if not order.resting:
                heapq.heappop(heap)
                continue
            if price < order.price or (available is None and price == order.price):
                self._fill(order, order.remaining, order.price, True, now)
            elif price == order.price and available:
                available -= self._fill(order, min(order.remaining, available), order.price, True, now)
                if order.resting:
                    break
            else:
                break
        self._best_buy_price = heap[0][2].price if heap else None

    def _match_sells(self, price: Decimal, trade_size: Decimal | None, now: float) -> None:
        """Fill resting sells against a bid at ``price`` (``trade_size`` None) or a trade print."""
        heap = self._resting_sells
        available = trade_size
        while heap:
            order = heap[0][2]
            if not order.resting:
                heapq.heappop(heap)
                continue
            if price > order.price or (available is None and price == order.price):
                self._fill(order, order.remaining, order.price, True, now)
            elif price == order.price and available:
                available -= self._fill(order, min(order.remaining, available), order.price, True, now)
                if order.resting:
                    break
            else:
                break
        self._best_sell_price = heap[0][2].price if heap else None

    def _fill(
        self, order: _PaperOrder, quantity: Decimal, price: Decimal, is_maker: bool, now: float
    ) -> Decimal:
        """Execute ``quantity`` of ``order`` at ``price``: position, fees, order state, update.

        Returns the size actually filled (less for a reduce-only order that would over-reduce).
        """
        expire_rest = False
        if order.reduce_only:
            reducible = self._reducible_size(order.side)
            if quantity > reducible:
                quantity = reducible
                expire_rest = True
        fill: Fill | None = None
        if quantity > 0:
            rate = self._maker_fee_rate if is_maker else self._taker_fee_rate
            if self._inverse is not None:
                fee = quantity * self._multiplier / price * rate  # coin
            else:
                fee = price * quantity * rate
            self._apply_fill_to_position(order.side, quantity, price)
            self._fees_paid += fee
            order.filled += quantity
            order.fill_notional += price * quantity
            order.status = OrderStatus.FILLED if order.filled >= order.size else OrderStatus.PARTIALLY_FILLED
            fill = Fill.quick(
                order.order_id,
                order.client_order_id,
                order.contract_id,
                order.side,
                price,
                quantity,
                fee,
                is_maker,
                now,
                f"paper-{next(self._trade_sequence)}",
            )
            if order.status is OrderStatus.FILLED:
                self._deactivate(order)
            self._emit_order_update(OrderUpdate(order.snapshot(), fill))
        if expire_rest and order.status.is_active:
            order.status = OrderStatus.EXPIRED
            self._deactivate(order)
            logger.info(
                "reduce-only order %s expired: only %s of it would still reduce the position",
                order.order_id,
                quantity,
            )
            self._emit_order_update(OrderUpdate(order.snapshot(), None))
        return quantity

    def _deactivate(self, order: _PaperOrder) -> None:
        """Take a finished order out of the book (its heap entry is dropped lazily)."""
        if order.resting and self._queue_model:
            self._leave_queue(order)
        order.resting = False
        self._active_orders.pop(order.order_id, None)
        if order.client_order_id and self._active_client_ids.get(order.client_order_id) is order:
            del self._active_client_ids[order.client_order_id]
        finished = self._finished
        finished[order.order_id] = order
        if len(finished) > FINISHED_ORDERS_KEPT:
            old_id, old = finished.popitem(last=False)
            self._orders.pop(old_id, None)
            if old.client_order_id and self._client_ids.get(old.client_order_id) is old:
                del self._client_ids[old.client_order_id]

    def _reducible_size(self, side: OrderSide) -> Decimal:
        """How much a fill on ``side`` can take off the position without flipping it."""
        position = self._position_size
        if side is _SELL and position > 0:
            return position
        if side is _BUY and position < 0:
            return -position
        return _ZERO

    def _apply_fill_to_position(self, side: OrderSide, quantity: Decimal, price: Decimal) -> None:
        """Average-price accounting: adding moves the entry, reducing realizes PnL, flipping
        realizes on the closed part and opens the rest at the fill price."""
        ledger = self._inverse
        if ledger is not None:
            ledger.apply_fill(side, price, quantity, _ZERO)
            self._position_size, self._entry_price = ledger.size, ledger.entry_price
            self._realized_pnl = ledger.realized_pnl
            return
        position = self._position_size
        signed = quantity if side is _BUY else -quantity
        new_position = position + signed
        if position == 0 or (position > 0) == (signed > 0):
            self._entry_price = (self._entry_price * abs(position) + price * quantity) / abs(new_position)
        else:
            closed = min(quantity, abs(position))
            direction = 1 if position > 0 else -1
            self._realized_pnl += (price - self._entry_price) * closed * direction
            if new_position == 0:
                self._entry_price = _ZERO
            elif (new_position > 0) != (position > 0):
                self._entry_price = price
        self._position_size = new_position

    def _first_funding_after(self, now: float) -> float:
        interval, offset = self._funding_interval_seconds, self._funding_offset_seconds
        return offset + (math.floor((now - offset) / interval) + 1) * interval

    def _rate_at(self, boundary: float) -> Decimal:
        """The funding rate of the settlement at ``boundary`` (the process only moves forward)."""
        options = self.options
        if self._funding_history:
            at = bisect.bisect_right(self._funding_history, (boundary + _HISTORY_SLACK_SECONDS, _INFINITY))
            return self._funding_history[max(0, at - 1)][1]
        index = round((boundary - self._funding_offset_seconds) / self._funding_interval_seconds)
        if options.funding_volatility == 0:
            return options.funding_rate
        if self._funding_index is None:
            self._funding_index = index
        while self._funding_index < index:
            self._funding_index += 1
            shock = Decimal(repr(self._funding_random.gauss(0.0, 1.0)))
            step = options.funding_reversion * (options.funding_rate - self._funding_rate)
            self._funding_rate = (self._funding_rate + step + options.funding_volatility * shock).quantize(
                Decimal("1e-10")
            )
        return self._funding_rate

    def _settle_funding(self, now: float) -> None:
        """Pay or receive funding for every settlement time the clock has passed."""
        interval = self._funding_interval_seconds
        if not self._funding_scheduled:
            self._funding_scheduled = True
            self._next_funding_time = self._first_funding_after(now)
            return
        while now >= self._next_funding_time:
            boundary = self._next_funding_time
            self._next_funding_time += interval
            rate = self._rate_at(boundary)
            if self._position_size == 0 or self._best_bid is None:
                continue
            mid = (self._best_bid + self._best_ask) / 2  # type: ignore[operator]
            if self._inverse is not None:  # an inverse contract pays in the settlement coin
                payment = -self._position_size * self._multiplier / mid * rate
            else:
                payment = -self._position_size * mid * rate
            self._funding_received += payment
            self.funding_payments.append((boundary, rate, self._position_size, mid, payment))
            logger.info(
                "funding: position %s at mark %s, rate %s: %s %s",
                self._position_size,
                mid,
                rate,
                "received" if payment >= 0 else "paid",
                abs(payment),
            )

    # -- market metadata and data ------------------------------------------------------------

    async def get_contract_info(self, ticker: str) -> ContractInfo:
        self._raise_injected("get_contract_info")
        symbol = ticker.upper()
        return ContractInfo(
            ticker=symbol,
            contract_id=symbol,
            tick_size=self.options.tick_size,
            size_step=self.options.size_step,
            min_size=self.options.min_size,
            min_notional=self.options.min_notional,
        )

    async def fetch_bbo_prices(self, contract_id: str) -> tuple[Decimal, Decimal]:
        self._raise_injected("fetch_bbo_prices")
        return self._require_book()

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        self._raise_injected("get_funding_rate")
        if self._funding_scheduled:
            next_time = self._next_funding_time
        else:
            next_time = self._first_funding_after(self.clock.now())
        return FundingRate(
            contract_id=contract_id,
            rate=self._rate_at(next_time),
            interval_hours=self.options.funding_interval_hours,
            next_funding_time=next_time,
        )

    def _require_book(self) -> tuple[Decimal, Decimal]:
        if self._best_bid is None or self._best_ask is None:
            raise ExchangeUnavailable(
                "paper venue has no market data yet (connect first, or apply a BBO event)"
            )
        return self._best_bid, self._best_ask

    # -- orders ------------------------------------------------------------------------------

    def _validate_order(self, side: OrderSide, quantity: Decimal, client_order_id: str | None) -> None:
        options = self.options
        if not isinstance(side, OrderSide):
            raise InvalidOrder(f"order side must be an OrderSide, got {side!r}")
        if not isinstance(quantity, Decimal) or not quantity.is_finite():
            raise InvalidOrder(f"order size must be a finite Decimal, got {quantity!r}")
        if quantity <= 0:
            raise InvalidOrder(f"order size must be positive, got {quantity}")
        if quantity % options.size_step != 0:
            raise InvalidOrder(
                f"order size {quantity} is not a multiple of the size step {options.size_step}"
            )
        if quantity < options.min_size:
            raise OrderBelowMinimum(f"order size {quantity} is below the minimum size {options.min_size}")
        if client_order_id and client_order_id in self._active_client_ids:
            raise InvalidOrder(f"client order id {client_order_id} is already in use by an active order")

    def _validate_notional(self, price: Decimal, quantity: Decimal) -> None:
        # In the quote currency: USD for inverse contracts (contracts x multiplier).
        notional = quantity * self._multiplier if self._inverse is not None else price * quantity
        if notional < self.options.min_notional:
            raise OrderBelowMinimum(
                f"order notional {notional} (price {price} x size {quantity}) is below the minimum "
                f"notional {self.options.min_notional}"
            )

    def _validate_reduce_only(self, side: OrderSide, quantity: Decimal) -> None:
        reducible = self._reducible_size(side)
        if quantity > reducible:
            raise InvalidOrder(
                f"reduce-only {side.value} of {quantity} would increase the position "
                f"(position {self._position_size}, at most {reducible} can be reduced)"
            )

    def _new_order(
        self,
        contract_id: str,
        side: OrderSide,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal,
        client_order_id: str | None,
        reduce_only: bool,
    ) -> _PaperOrder:
        order = _PaperOrder(
            order_id=str(next(self._order_sequence)),
            client_order_id=client_order_id,
            contract_id=contract_id,
            side=side,
            order_type=order_type,
            size=quantity,
            price=price,
            reduce_only=reduce_only,
            created_at=self.clock.now(),
        )
        self._orders[order.order_id] = order
        self._active_orders[order.order_id] = order
        if client_order_id:
            self._active_client_ids[client_order_id] = order
            self._client_ids[client_order_id] = order
        return order

    async def place_limit_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        price: Decimal,
        client_order_id: str,
        post_only: bool = True,
        reduce_only: bool = False,
    ) -> OrderResult:
        """Rest a limit order, or fill it at once as taker if it crosses and is not post-only."""
        self._raise_injected("place_limit_order")
        best_bid, best_ask = self._require_book()
        self._validate_order(side, quantity, client_order_id)
        tick = self.options.tick_size
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0 or price % tick != 0:
            raise InvalidOrder(f"price {price} is not a positive multiple of the tick size {tick}")
        self._validate_notional(price, quantity)
        if reduce_only:
            self._validate_reduce_only(side, quantity)
        if self.options.entry_delay > 0:
            # On its way: the book it meets on arrival decides (post-only refusal comes as a
            # REJECTED update then, as a venue that acknowledges first reports it).
            order = self._new_order(
                contract_id, side, OrderType.LIMIT, quantity, price, client_order_id, reduce_only
            )
            order.status = OrderStatus.PENDING
            order.post_only = post_only
            self._send(order, cancel=False)
            return order.result(OrderStatus.OPEN)
        crosses = price >= best_ask if side is _BUY else price <= best_bid
        if crosses and post_only:
            touch_name, touch = ("best ask", best_ask) if side is _BUY else ("best bid", best_bid)
            raise PostOnlyRejected(f"post-only {side.value} at {price} would cross the {touch_name} {touch}")
        order = self._new_order(
            contract_id, side, OrderType.LIMIT, quantity, price, client_order_id, reduce_only
        )
        order.post_only = post_only
        self._emit_order_update(OrderUpdate(order.snapshot(), None))
        if crosses:
            self._fill(order, quantity, best_ask if side is _BUY else best_bid, False, self.clock.now())
            return order.result()
        self._rest(order)
        return order.result()

    def _rest(self, order: _PaperOrder) -> None:
        """Put an accepted limit order on the book (and in its queue under the queue model)."""
        order.resting = True
        sequence = int(order.order_id)
        if order.side is _BUY:
            heapq.heappush(self._resting_buys, (-order.price, sequence, order))
            self._best_buy_price = self._resting_buys[0][2].price
        else:
            heapq.heappush(self._resting_sells, (order.price, sequence, order))
            self._best_sell_price = self._resting_sells[0][2].price
        if self._queue_model:
            self._join_queue(order)

    @staticmethod
    def _slippage_problem(
        side: OrderSide, best_bid: Decimal, best_ask: Decimal, max_slippage_pct: Decimal
    ) -> str | None:
        touch = best_ask if side is _BUY else best_bid
        mid = (best_bid + best_ask) / 2
        slippage_pct = abs(touch - mid) / mid * _HUNDRED
        if slippage_pct > max_slippage_pct:
            return (
                f"market {side.value} would fill at {touch}, {slippage_pct:.4f} % from the mid {mid} "
                f"(limit {max_slippage_pct} %)"
            )
        return None

    async def place_market_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        client_order_id: str,
        max_slippage_pct: Decimal,
        reduce_only: bool = False,
    ) -> OrderResult:
        """Fill completely at the touch as taker, unless the touch is too far from the mid."""
        self._raise_injected("place_market_order")
        best_bid, best_ask = self._require_book()
        self._validate_order(side, quantity, client_order_id)
        touch = best_ask if side is _BUY else best_bid
        if self.options.entry_delay <= 0:
            problem = self._slippage_problem(side, best_bid, best_ask, max_slippage_pct)
            if problem:
                raise SlippageExceeded(problem)
        self._validate_notional(touch, quantity)
        if reduce_only:
            self._validate_reduce_only(side, quantity)
        order = self._new_order(
            contract_id, side, OrderType.MARKET, quantity, touch, client_order_id, reduce_only
        )
        if self.options.entry_delay > 0:
            order.status = OrderStatus.PENDING
            order.max_slippage_pct = max_slippage_pct
            self._send(order, cancel=False)
            return order.result(OrderStatus.OPEN)
        self._fill(order, quantity, touch, False, self.clock.now())
        return order.result()

    async def cancel_order(self, contract_id: str, order_id: str) -> OrderResult:
        self._raise_injected("cancel_order")
        order = self._active_orders.get(order_id)
        if order is None:
            state = self._orders[order_id].status.value if order_id in self._orders else "unknown"
            raise OrderNotFound(f"order {order_id} is not active on the paper venue ({state})")
        if self.options.cancel_delay > 0:
            # The answer only says the request left; the CANCELLED update comes when it arrives,
            # unless a fill got there first (then the cancel finds nothing and the fill stands).
            self._send(order, cancel=True)
            return order.result()
        self._cancel_now(order)
        return order.result()

    def _cancel_now(self, order: _PaperOrder) -> None:
        order.status = OrderStatus.CANCELLED
        self._deactivate(order)
        if order.side is _BUY:
            self._drop_inactive_top(self._resting_buys)
            self._best_buy_price = self._resting_buys[0][2].price if self._resting_buys else None
        else:
            self._drop_inactive_top(self._resting_sells)
            self._best_sell_price = self._resting_sells[0][2].price if self._resting_sells else None
        self._emit_order_update(OrderUpdate(order.snapshot(), None))

    @staticmethod
    def _drop_inactive_top(heap: list[tuple[Decimal, int, _PaperOrder]]) -> None:
        while heap and not heap[0][2].resting:
            heapq.heappop(heap)

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        self._raise_injected("get_order_info")
        order = self._orders.get(order_id)
        if order is None:
            raise OrderNotFound(
                f"order {order_id} is unknown to the paper venue (never placed, or long finished)"
            )
        return order.snapshot()

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        self._raise_injected("get_active_orders")
        is_ours = self.client_ids.is_ours
        return [order.snapshot() for order in self._active_orders.values() if is_ours(order.client_order_id)]

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        self._raise_injected("find_order")
        order = self._client_ids.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order with client id {client_order_id} on the paper venue")
        return order.snapshot()

    # -- positions and account ---------------------------------------------------------------

    def starting_balance(self) -> Decimal:
        """The account's opening balance (settlement coin for inverse contracts: 10,000 USD of
        it at the first quote unless ``start_balance`` was given)."""
        if self.start_balance is None:
            if self._best_bid is None or self._best_ask is None:
                return _ZERO
            mid = (self._best_bid + self._best_ask) / 2
            self.start_balance = self.options.start_balance / mid
        return self.start_balance

    def _unrealized_pnl(self) -> Decimal:
        if self._best_bid is None or self._best_ask is None:
            return _ZERO
        return self._unrealized_pnl_at(self._best_bid, self._best_ask)

    def _unrealized_pnl_at(self, bid: Decimal, ask: Decimal) -> Decimal:
        if self._position_size == 0:
            return _ZERO
        mid = (bid + ask) / 2
        if self._inverse is not None:
            return self._inverse.unrealized_pnl(mid)
        return (mid - self._entry_price) * self._position_size

    def _position(self, contract_id: str) -> Position:
        return Position.quick(
            contract_id, self._position_size, self._entry_price, self._unrealized_pnl(), self._realized_pnl
        )

    async def get_position(self, contract_id: str) -> Position:
        self._raise_injected("get_position")
        return self._position(contract_id)

    async def get_account_snapshot(self) -> AccountSnapshot:
        """``balance = start + realized - fees + funding received``; ``equity = balance +
        unrealized``; ``funding_paid`` is positive when we paid."""
        self._raise_injected("get_account_snapshot")
        balance = self.starting_balance() + self._realized_pnl - self._fees_paid + self._funding_received
        position = self._position(self.contract_id)
        return AccountSnapshot.quick(
            balance,
            balance + position.unrealized_pnl,
            (position,) if position.size != 0 else (),
            self._realized_pnl,
            self._fees_paid,
            -self._funding_received,
            self.clock.now(),
        )
