"""The strategy contract: the "portfolio manager" decides what and when, never how.

A strategy sees market data and order events and answers with a :class:`StrategyResult`; the
bot carries that out on whatever venue it was given. Strategies declare their parameters with
types, defaults and checks, so the CLI can parse ``--strategy-params key=value`` (and build its
named flags) without guessing types from the text.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from exchanges.base import (
    BaseExchangeClient,
    ContractInfo,
    OrderInfo,
    OrderSide,
    OrderType,
)
from helpers.clock import Clock

if TYPE_CHECKING:
    from execution.engine import ExecutionEngine
    from execution.records import ExecutionEvent
    from helpers.trading_config import TradingConfig


class StrategyAction(enum.Enum):
    NONE = "none"
    WAIT = "wait"
    PLACE_ORDERS = "place_orders"
    CANCEL_ORDERS = "cancel_orders"
    CLOSE_POSITION = "close_position"
    STOP = "stop"


class OrderRole(enum.Enum):
    """Why an order exists; decides what shutdown cancels (entries) and leaves (exits)."""

    ENTRY = "entry"  # opens or adds to the position; its fills become lots
    EXIT = "exit"  # closes lots (a take-profit or a market close); says which in ``covers``
    RISK_CLOSE = "risk_close"  # sent by the orchestrator to cut this bot's position


@dataclass
class OrderParams:
    """One order the strategy wants. The bot assigns ``client_order_id`` before sending."""

    side: OrderSide
    quantity: Decimal
    price: Decimal | None = None
    order_type: OrderType = OrderType.LIMIT
    post_only: bool = True
    reduce_only: bool = False
    role: OrderRole = OrderRole.ENTRY
    max_slippage_pct: Decimal | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    client_order_id: str | None = None
    #: Exits: the ids of the filled lots this order closes (see execution.records.Lot).
    covers: tuple[str, ...] = ()
    #: Which of the strategy's venues it goes to (0 unless the strategy trades on several).
    venue: int = 0


@dataclass
class StrategyResult:
    action: StrategyAction
    orders: list[OrderParams] = field(default_factory=list)
    #: Our client ids of the orders to cancel (the execution layer knows their venue ids).
    cancel_client_ids: list[str] = field(default_factory=list)
    wait_time: float = 0.0
    message: str = ""
    #: Why a STOP is not an ordinary stop (a ConfigurationError: the bot exits with code 2).
    error: Exception | None = None


_MINUS_INFINITY = Decimal("-Infinity")
_INFINITY = Decimal("Infinity")


class WakeLevels(NamedTuple):
    """The market moves that could change a strategy's next decision.

    Nothing can change while the best bid stays strictly inside ``(bid_low, bid_high)`` and the
    best ask strictly inside ``(ask_low, ask_high)``; a price reaching a bound wakes the bot. An
    unused bound stays infinite. Bounds must be conservative: an extra wake costs a loop
    iteration, a missed one changes a decision. Letting the bot skip market updates that cannot
    matter is what makes backtests fast and saves CPU when trading live. (A named tuple: a few
    are made before every wait, and a tuple is made at a fraction of a frozen dataclass's cost.)
    """

    bid_low: Decimal = _MINUS_INFINITY
    bid_high: Decimal = _INFINITY
    ask_low: Decimal = _MINUS_INFINITY
    ask_high: Decimal = _INFINITY

    def crossed(self, best_bid: Decimal, best_ask: Decimal) -> bool:
        """True when this quote reaches a bound (so the bot must look)."""
        return (
            best_bid <= self.bid_low
            or best_bid >= self.bid_high
            or best_ask <= self.ask_low
            or best_ask >= self.ask_high
        )

    def narrowed(self, other: WakeLevels) -> WakeLevels:
        """The levels of two independent watchers: wake when either would."""
        bid_low = max(self.bid_low, other.bid_low)
        bid_high = min(self.bid_high, other.bid_high)
        ask_low = max(self.ask_low, other.ask_low)
        ask_high = min(self.ask_high, other.ask_high)
        if (
            bid_low is self.bid_low
            and bid_high is self.bid_high
            and ask_low is self.ask_low
            and ask_high is self.ask_high
        ):
            return self  # other adds nothing (the levels are immutable, so no copy is needed)
        return WakeLevels(bid_low, bid_high, ask_low, ask_high)


class DecisionBand:
    """The quotes and the time within which a decision stays what it is, recorded as it is made.

    A strategy that decides through this object instead of reading the quote asks it
    questions ("is the best ask at least the stop price?", "is it before the cool-down's
    end?"); each answer also records the threshold it was given, so the band in which every
    answer would come out the same is the intersection of those thresholds. That band is what
    lets the bot skip market updates and timers that cannot change the decision, and because
    it is a by-product of the decision code it cannot drift from it (no hand-written mirror).

    Quotes used other than through a comparison (an order priced at the touch) make the
    decision depend on the exact quote: :meth:`pin` says so, and :meth:`levels` is then None.
    Prices worked out from a quote by a non-decreasing function (an entry one tick inside the
    ask, its take-profit) are compared through :meth:`derived`; their thresholds are turned
    into quote thresholds when the levels are asked for.

    Bounds are conservative: a quote equal to a threshold wakes the bot even where the answer
    would not change (an extra wake costs a loop iteration, a missed one a wrong decision).
    """

    __slots__ = (
        "_ask",
        "_bid",
        "_derived",
        "ask_high",
        "ask_low",
        "bid_high",
        "bid_low",
        "now",
        "pinned",
        "until",
    )

    def __init__(self, best_bid: Decimal, best_ask: Decimal, now: float) -> None:
        self._bid = best_bid
        self._ask = best_ask
        self.now = now
        self.bid_low = self.ask_low = _MINUS_INFINITY
        self.bid_high = self.ask_high = _INFINITY
        #: The first time at which some answer about time would change (inf: none would).
        self.until = math.inf
        self.pinned = False
        self._derived: list[DerivedPrice] = []

    @classmethod
    def of(cls, market: MarketData, now: float) -> DecisionBand:
        return cls(market.best_bid, market.best_ask, now)

    # -- the quotes ------------------------------------------------------------------------------

    def bid_at_least(self, level: Decimal) -> bool:
        """best bid >= level."""
        return self._bid_compared(self._bid >= level, level)

    def bid_above(self, level: Decimal) -> bool:
        """best bid > level."""
        return self._bid_compared(self._bid > level, level)

    def ask_at_least(self, level: Decimal) -> bool:
        """best ask >= level."""
        return self._ask_compared(self._ask >= level, level)

    def ask_above(self, level: Decimal) -> bool:
        """best ask > level."""
        return self._ask_compared(self._ask > level, level)

    def _bid_compared(self, held: bool, level: Decimal) -> bool:
        """Narrow the bid's band by a level it was just compared with: the decision stands
        while the bid stays on the side of ``level`` it is on now."""
        if held:
            if level > self.bid_low:
                self.bid_low = level
        elif level < self.bid_high:
            self.bid_high = level
        return held

    def _ask_compared(self, held: bool, level: Decimal) -> bool:
        """As :meth:`_bid_compared`, for the ask."""
        if held:
            if level > self.ask_low:
                self.ask_low = level
        elif level < self.ask_high:
            self.ask_high = level
        return held

    def bid_at_most(self, level: Decimal) -> bool:
        return not self.bid_above(level)

    def ask_at_most(self, level: Decimal) -> bool:
        return not self.ask_above(level)

    def ask_below(self, level: Decimal) -> bool:
        return not self.ask_at_least(level)

    def pin(self) -> tuple[Decimal, Decimal]:
        """The quote itself, for a decision that uses its value (the band shrinks to it)."""
        self.pinned = True
        return self._bid, self._ask

    def derived(self, on_ask: bool, function: Callable[[Decimal], Decimal], step: Decimal) -> DerivedPrice:
        """A price worked out from the ask (``on_ask``) or the bid by ``function``, which must
        be non-decreasing and change only at multiples of ``step``; compare it through the
        returned object."""
        price = DerivedPrice(self._ask if on_ask else self._bid, on_ask, function, step)
        self._derived.append(price)
        return price

    # -- time ------------------------------------------------------------------------------------

    def before(self, deadline: float) -> bool:
        """now < deadline; once past, time never makes it true again, so only True records."""
        if self.now < deadline:
            if deadline < self.until:
                self.until = deadline
            return True
        return False

    # -- the band --------------------------------------------------------------------------------

    def levels(self) -> WakeLevels | None:
        """The quotes inside which every answer would be the same, or None when pinned."""
        if self.pinned:
            return None
        bid_low, bid_high, ask_low, ask_high = self.bid_low, self.bid_high, self.ask_low, self.ask_high
        for price in self._derived:
            low, high = price.quote_bounds()
            if price.on_ask:
                ask_low, ask_high = max(ask_low, low), min(ask_high, high)
            else:
                bid_low, bid_high = max(bid_low, low), min(bid_high, high)
        return WakeLevels(bid_low, bid_high, ask_low, ask_high)


#: Ticks a derived price's band is searched for on each side of the quote (beyond: a bound there).
_DERIVED_SEARCH_TICKS = 1 << 20


class DerivedPrice:
    """A price worked out from one quote by a non-decreasing step function, compared against
    thresholds; see :meth:`DecisionBand.derived`.

    Its answers narrow an interval of the derived value; :meth:`quote_bounds` finds, on the
    quote's tick grid, how far the quote may move each way with the value staying inside it
    (the function is evaluated, never inverted by hand, so rounding cannot make it wrong).
    """

    __slots__ = (
        "_function",
        "_high",
        "_high_open",
        "_low",
        "_low_open",
        "_quote",
        "_step",
        "on_ask",
        "value",
    )

    def __init__(
        self, quote: Decimal, on_ask: bool, function: Callable[[Decimal], Decimal], step: Decimal
    ) -> None:
        self._quote = quote
        self.on_ask = on_ask
        self._function = function
        self._step = step
        self.value = function(quote)
        self._low, self._low_open = _MINUS_INFINITY, True
        self._high, self._high_open = _INFINITY, True

    def above(self, level: Decimal) -> bool:
        """value > level."""
        if self.value > level:
            self._raise_low(level, True)
            return True
        self._lower_high(level, False)
        return False

    def below(self, level: Decimal) -> bool:
        """value < level."""
        if self.value < level:
            self._lower_high(level, True)
            return True
        self._raise_low(level, False)
        return False

    def _raise_low(self, level: Decimal, is_open: bool) -> None:
        if level > self._low or (level == self._low and is_open):
            self._low, self._low_open = level, is_open

    def _lower_high(self, level: Decimal, is_open: bool) -> None:
        if level < self._high or (level == self._high and is_open):
            self._high, self._high_open = level, is_open

    def _holds(self, quote: Decimal) -> bool:
        value = self._function(quote)
        low, high = self._low, self._high
        if value < low or (self._low_open and value == low):
            return False
        return not (value > high or (self._high_open and value == high))

    def quote_bounds(self) -> tuple[Decimal, Decimal]:
        """(low, high): every quote strictly between keeps the value inside its interval.

        Each bound is the last grid point, counted from the quote, at which the value still
        holds (found by doubling then halving the distance): quotes between the two lie
        between points that hold, and the value is monotonic, so they hold too.
        """
        low = _MINUS_INFINITY if self._low == _MINUS_INFINITY else self._last_holding(-self._step)
        high = _INFINITY if self._high == _INFINITY else self._last_holding(self._step)
        return low, high

    def _last_holding(self, step: Decimal) -> Decimal:
        quote, holds = self._quote, self._holds
        good, bad = 0, 1
        while holds(quote + bad * step):
            good = bad
            if bad >= _DERIVED_SEARCH_TICKS:
                return quote + good * step
            bad *= 2
        while bad - good > 1:
            middle = (good + bad) // 2
            if holds(quote + middle * step):
                good = middle
            else:
                bad = middle
        return quote + good * step


@dataclass(frozen=True)
class MarketData:
    ticker: str
    contract_id: str
    best_bid: Decimal
    best_ask: Decimal
    timestamp: float

    @property
    def mid_price(self) -> Decimal:
        return (self.best_bid + self.best_ask) / 2

    @classmethod
    def quick(
        cls, ticker: str, contract_id: str, best_bid: Decimal, best_ask: Decimal, timestamp: float
    ) -> MarketData:
        """The object the constructor builds, without the frozen ``__init__``'s per-field cost
        (the bot reads market data once per loop iteration)."""
        data = object.__new__(cls)
        fields = data.__dict__
        fields["ticker"] = ticker
        fields["contract_id"] = contract_id
        fields["best_bid"] = best_bid
        fields["best_ask"] = best_ask
        fields["timestamp"] = timestamp
        return data


# ---------------------------------------------------------------------------------------------
# Typed parameters
# ---------------------------------------------------------------------------------------------


class ParameterError(ValueError):
    """A strategy parameter was missing, unknown or out of range."""


def parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ParameterError(f"expected a number, got {text!r}") from None
    if not value.is_finite():
        raise ParameterError(f"expected a finite number, got {text!r}")
    return value


def parse_int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ParameterError(f"expected an integer, got {text!r}") from None


def parse_float(text: str) -> float:
    value = parse_decimal(text)
    return float(value)


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ParameterError(f"expected true/false, got {text!r}")


def parse_side(text: str) -> OrderSide:
    try:
        return OrderSide(str(text).strip().lower())
    except ValueError:
        raise ParameterError(f"expected buy or sell, got {text!r}") from None


@dataclass(frozen=True)
class ParameterSpec:
    """One strategy parameter: its name, parser, default, check and help text (with units)."""

    name: str
    parse: Callable[[str], Any]
    default: Any = None
    help: str = ""
    required: bool = False
    check: Callable[[Any], str | None] | None = None
    is_flag: bool = False

    def convert(self, raw: Any) -> Any:
        value = raw if not isinstance(raw, str) else self.parse(raw)
        if self.check is not None and value is not None:
            problem = self.check(value)
            if problem:
                raise ParameterError(problem)
        return value


def at_least(minimum: Any) -> Callable[[Any], str | None]:
    return lambda value: None if value >= minimum else f"must be >= {minimum}"


def greater_than(minimum: Any) -> Callable[[Any], str | None]:
    return lambda value: None if value > minimum else f"must be > {minimum}"


def between(low: Any, high: Any) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def resolve_parameters(specs: tuple[ParameterSpec, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults, parse strings, run checks; raise ParameterError naming the parameter."""
    known = {spec.name: spec for spec in specs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(known))})")
    resolved: dict[str, Any] = {}
    for spec in specs:
        if spec.name in given and given[spec.name] is not None:
            try:
                resolved[spec.name] = spec.convert(given[spec.name])
            except ParameterError as exc:
                raise ParameterError(f"{spec.name}: {exc}") from None
        elif spec.required:
            raise ParameterError(f"{spec.name}: required by this strategy")
        else:
            resolved[spec.name] = spec.default
    return resolved


@dataclass
class Venue:
    """One venue a strategy trades on: its label (for logs), client and execution layer."""

    label: str
    client: BaseExchangeClient
    execution: ExecutionEngine
    contract: ContractInfo | None = None


# ---------------------------------------------------------------------------------------------
# The strategy base class
# ---------------------------------------------------------------------------------------------


class BaseStrategy(ABC):
    """Interface every strategy implements; the bot calls nothing else.

    Orders and fills belong to the execution layer (``self.execution``): a strategy reads what
    is live, filled and waiting to be closed from it, and hears what happens through
    :meth:`on_execution_event`. It keeps no order bookkeeping of its own, only its decisions'
    state (cool-downs, targets, back-offs).
    """

    #: Declared parameters; the CLI builds flags and parses ``--strategy-params`` from these.
    PARAMETERS: ClassVar[tuple[ParameterSpec, ...]] = ()
    #: How many venues the strategy trades on; the bot gives it one client and one execution
    #: layer per venue (``self.venues``), in the order of the configuration.
    REQUIRED_VENUES: ClassVar[int] = 1

    def __init__(
        self,
        config: TradingConfig,
        exchange_client: BaseExchangeClient,
        clock: Clock,
        execution: ExecutionEngine | None = None,
        venues: list[Venue] | None = None,
    ) -> None:
        self.config = config
        self.exchange_client = exchange_client
        self.clock = clock
        self.params = resolve_parameters(self.PARAMETERS, config.strategy_params)
        self.contract: ContractInfo | None = None
        if execution is None:
            # A strategy on its own (unit tests, notebooks) gets an in-memory execution layer.
            from execution.engine import ExecutionEngine
            from execution.journal import ExecutionJournal

            execution = ExecutionEngine(exchange_client, clock, ExecutionJournal(None))
        self.execution: ExecutionEngine = execution
        #: Every venue, the first being ``exchange_client`` with ``execution``.
        self.venues: list[Venue] = venues or [Venue(config.exchange, exchange_client, execution)]
        #: Why new entries are not allowed right now (risk pause, reduce-only mode, shutdown).
        self.entries_blocked: str | None = None

    # -- identity and parameters ---------------------------------------------------------------

    @abstractmethod
    def get_strategy_name(self) -> str:
        """Registry name of the strategy."""

    @classmethod
    def identity_suffix(cls, params: dict[str, Any]) -> str:
        """What tells two bots of this strategy on one ticker apart (the grid: its direction);
        part of the default bot name, hence of the client-id prefix, log, CSV and journal."""
        return ""

    def get_required_parameters(self) -> list[str]:
        return [spec.name for spec in self.PARAMETERS if spec.required]

    def get_parameter(self, name: str) -> Any:
        return self.params[name]

    # -- lifecycle -------------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Resolve the contract on each venue; the bot reconciles the execution layers right after."""
        for venue in self.venues:
            venue.contract = await venue.client.get_contract_info(self.config.ticker)
            venue.execution.size_step = venue.contract.size_step
        self.contract = self.venues[0].contract

    async def on_ready(self) -> None:
        """Called once the execution layer has been reconciled with the venue (what this bot
        already has there is known), before the first decision."""

    @property
    def contract_id(self) -> str:
        if self.contract is None:
            raise RuntimeError("strategy used before initialize()")
        return self.contract.contract_id

    def venue_contract_id(self, index: int) -> str:
        """The contract this strategy trades on venue ``index``."""
        contract = self.venues[index].contract
        if contract is None:
            raise RuntimeError("strategy used before initialize()")
        return contract.contract_id

    async def get_market_data(self) -> MarketData:
        best_bid, best_ask = await self.exchange_client.fetch_bbo_prices(self.contract_id)
        return MarketData.quick(self.config.ticker, self.contract_id, best_bid, best_ask, self.clock.now())

    def classify_foreign_order(self, info: OrderInfo) -> OrderRole | None:
        """The role of an order with our prefix that the journal does not know (found on the
        venue at start-up); None leaves it alone."""
        return None

    def adopted_entry_price(self, info: OrderInfo) -> Decimal:
        """Best guess of the entry price behind an adopted exit (its lot's price, for PnL)."""
        return info.price

    # -- decisions -------------------------------------------------------------------------------

    @abstractmethod
    async def should_execute(self, market_data: MarketData) -> bool:
        """Is there anything to do right now?"""

    @abstractmethod
    async def execute_strategy(self, market_data: MarketData) -> StrategyResult:
        """What to do; called only after ``should_execute`` said yes."""

    def seconds_until_next_decision(self) -> float | None:
        """How long the bot may wait for events before asking again (None: bot's default)."""
        return None

    def market_wake_levels(self) -> WakeLevels | None:
        """Which quotes could change the next decision, given the state right now.

        The bot asks after each decision and, until a level is reached (or an order event or
        :meth:`seconds_until_next_decision` comes due), records market updates without waking.
        None, the safe default, means every market update may matter.
        """
        return None

    # -- events (the bot delivers these in order, on the bot's own task) --------------------------

    async def on_execution_event(self, event: ExecutionEvent) -> None:
        """One of our orders was accepted, refused, filled or ended (see ExecutionEventKind)."""

    def block_entries(self, reason: str | None) -> None:
        """The orchestrator allows no new entries while ``reason`` is set (None lifts it).

        Exits are still decided: filled size must get its take-profit whatever the risk state.
        The bot also drops any entry a strategy returns meanwhile, so this is advice for
        planning, not the only guard.
        """
        self.entries_blocked = reason

    def status_summary(self) -> dict[str, str]:
        """A few strategy facts for the console and the final summary."""
        return {}
