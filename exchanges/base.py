"""The complete exchange-client contract, its data classes and its error taxonomy.

Every method the bot, the risk manager or a strategy calls on a venue is declared here, so no
caller ever needs ``hasattr`` or ``if exchange == ...``. Venue clients translate their wire
formats into these types: one status vocabulary, one meaning for every size, Decimal for every
price and size, and typed errors instead of empty or zero "results" when something failed.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from helpers.clock import Clock

if TYPE_CHECKING:
    from helpers.trading_config import TradingConfig


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------


class OrderSide(enum.Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells: the sign a fill of this side adds to a position."""
        return 1 if self is OrderSide.BUY else -1


class OrderType(enum.Enum):
    LIMIT = "limit"
    MARKET = "market"


class OrderStatus(enum.Enum):
    """The one status vocabulary every venue maps into.

    PENDING means sent but not yet acknowledged (in flight); UNKNOWN means the outcome of a
    request is ambiguous (timeout, disconnect) and must be reconciled, never assumed.
    """

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_active(self) -> bool:
        """Still resting (or possibly resting) on the venue."""
        return self in (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)

    @functools.cached_property
    def is_final(self) -> bool:
        """Filled, cancelled, rejected or expired (worked out once per status: it is asked on
        every order update and loop pass)."""
        return self in (
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        )


# ---------------------------------------------------------------------------------------------
# Errors (after ccxt's taxonomy)
# ---------------------------------------------------------------------------------------------


class ExchangeError(Exception):
    """Base of every venue failure. Messages never contain secrets."""


class ConfigurationError(ExchangeError):
    """Missing or invalid keys/settings for the chosen venue."""


class MissingDependencyError(ConfigurationError):
    """The venue's SDK is not installed."""


class AuthenticationError(ExchangeError):
    """The venue refused our credentials or signature."""


class NetworkError(ExchangeError):
    """The request may or may not have reached the venue; retrying may help."""


class RequestTimeout(NetworkError):
    """No answer in time: the outcome is unknown, not failed."""


class ExchangeUnavailable(NetworkError):
    """The venue answered with a server-side error (5xx, maintenance)."""


class RateLimitExceeded(NetworkError):
    """The venue asked us to slow down."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidNonce(ExchangeError):
    """The signed request carried a stale nonce; resync and retry."""


class MalformedMessage(ExchangeError):
    """The venue sent something we could not parse."""


class InvalidOrder(ExchangeError):
    """The venue (or our own pre-check) refused the order as specified."""


class PostOnlyRejected(InvalidOrder):
    """A post-only order would have taken liquidity."""


class OrderBelowMinimum(InvalidOrder):
    """Size or notional below the venue's minimum."""


class InsufficientFunds(InvalidOrder):
    """Not enough margin or balance for the order."""


class SlippageExceeded(InvalidOrder):
    """A market order could not fill within its slippage bound."""


class OrderNotFound(ExchangeError):
    """The venue does not know the order (already gone, or never arrived)."""


class NotProcessed(ExchangeError):
    """The venue provably did not execute this request (a batch stopped before reaching it);
    sending it again is safe."""


class NotSupported(ExchangeError):
    """The venue does not offer this capability."""


# ---------------------------------------------------------------------------------------------
# Data classes at the boundary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractInfo:
    """A market's identity, precision and limits."""

    ticker: str
    contract_id: str
    tick_size: Decimal
    size_step: Decimal
    min_size: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)


@dataclass
class OrderInfo:
    """A snapshot of one of our orders. ``size`` is always the original size."""

    order_id: str
    client_order_id: str | None
    contract_id: str
    side: OrderSide
    order_type: OrderType
    size: Decimal
    price: Decimal
    status: OrderStatus
    filled_size: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    timestamp: float = 0.0

    @property
    def remaining_size(self) -> Decimal:
        return max(Decimal(0), self.size - self.filled_size)


@dataclass(frozen=True)
class Fill:
    """One execution against one of our orders."""

    order_id: str
    client_order_id: str | None
    contract_id: str
    side: OrderSide
    price: Decimal
    size: Decimal
    fee: Decimal
    is_maker: bool
    timestamp: float
    trade_id: str = ""
    #: True when the venue did not report this fill's fee and ``fee`` is an estimate from the
    #: maker/taker rates (journals and summaries say so).
    fee_estimated: bool = False

    @classmethod
    def quick(
        cls,
        order_id: str,
        client_order_id: str | None,
        contract_id: str,
        side: OrderSide,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        is_maker: bool,
        timestamp: float,
        trade_id: str = "",
        fee_estimated: bool = False,
    ) -> Fill:
        """The object the constructor builds, without the frozen ``__init__``'s per-field cost
        (a simulated venue makes one per fill)."""
        fill = object.__new__(cls)
        fill.__dict__.update(
            order_id=order_id,
            client_order_id=client_order_id,
            contract_id=contract_id,
            side=side,
            price=price,
            size=size,
            fee=fee,
            is_maker=is_maker,
            timestamp=timestamp,
            trade_id=trade_id,
            fee_estimated=fee_estimated,
        )
        return fill


@dataclass(frozen=True)
class FeeCorrection:
    """The venue's exact fee for ``size`` already announced with an estimated fee.

    A fill is announced as soon as the order stream shows it, so its take-profit never waits
    for the trade record; when that record comes, its exact fee replaces the estimate.
    """

    trade_id: str
    size: Decimal
    fee: Decimal  # the exact fee of ``size``
    replaces: Decimal  # the estimate that was booked for ``size``

    @property
    def delta(self) -> Decimal:
        return self.fee - self.replaces


@dataclass(frozen=True)
class OrderUpdate:
    """An order's new state, with the fill that caused it (if one did) and any exact fee that
    replaces an estimate booked earlier."""

    order: OrderInfo
    fill: Fill | None = None
    fee_correction: FeeCorrection | None = None


@dataclass(frozen=True)
class OrderResult:
    """What placing or cancelling an order came to, as far as the venue told us."""

    success: bool
    order_id: str | None = None
    client_order_id: str | None = None
    side: OrderSide | None = None
    size: Decimal | None = None
    price: Decimal | None = None
    status: OrderStatus = OrderStatus.UNKNOWN
    filled_size: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    error_message: str | None = None

    @classmethod
    def quick(
        cls,
        success: bool,
        order_id: str | None,
        client_order_id: str | None,
        side: OrderSide | None,
        size: Decimal | None,
        price: Decimal | None,
        status: OrderStatus,
        filled_size: Decimal,
        average_fill_price: Decimal | None,
        error_message: str | None = None,
    ) -> OrderResult:
        """The object the constructor builds, without the frozen ``__init__``'s per-field cost
        (a simulated venue answers every order with one)."""
        result = object.__new__(cls)
        result.__dict__.update(
            success=success,
            order_id=order_id,
            client_order_id=client_order_id,
            side=side,
            size=size,
            price=price,
            status=status,
            filled_size=filled_size,
            average_fill_price=average_fill_price,
            error_message=error_message,
        )
        return result


@dataclass(frozen=True)
class LimitOrderRequest:
    """One limit order of a batch (the arguments :meth:`BaseExchangeClient.place_limit_order` takes)."""

    contract_id: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    client_order_id: str
    post_only: bool = True
    reduce_only: bool = False


@dataclass(frozen=True)
class BatchOutcome:
    """What one order of a batch came to: exactly one of ``result`` and ``error`` is set.

    ``key`` names the order as the caller did (the client id of a placement, the order id of a
    cancel). ``error`` carries the same typed meaning as the single call's exception: a
    NetworkError subclass is an unknown outcome (look the order up), any other ExchangeError a
    refusal of that order alone.
    """

    key: str
    result: OrderResult | None = None
    error: ExchangeError | None = None

    def __post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("a batch outcome has exactly one of result and error")

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Position:
    """A net position. ``size`` is signed: positive long, negative short."""

    contract_id: str
    size: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    #: Where the venue would liquidate it (None: the venue does not say, or no position).
    liquidation_price: Decimal | None = None

    @classmethod
    def quick(
        cls,
        contract_id: str,
        size: Decimal,
        entry_price: Decimal,
        unrealized_pnl: Decimal,
        realized_pnl: Decimal,
    ) -> Position:
        """The object the constructor builds, without the frozen ``__init__``'s per-field cost."""
        position = object.__new__(cls)
        position.__dict__.update(
            contract_id=contract_id,
            size=size,
            entry_price=entry_price,
            unrealized_pnl=unrealized_pnl,
            realized_pnl=realized_pnl,
        )
        return position

    @property
    def side(self) -> OrderSide | None:
        if self.size > 0:
            return OrderSide.BUY
        if self.size < 0:
            return OrderSide.SELL
        return None


@dataclass(frozen=True)
class AccountSnapshot:
    """Balance, equity and positions at one moment, for the risk manager."""

    balance: Decimal
    equity: Decimal
    positions: tuple[Position, ...] = ()
    realized_pnl: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    funding_paid: Decimal = Decimal(0)
    timestamp: float = 0.0

    @classmethod
    def quick(
        cls,
        balance: Decimal,
        equity: Decimal,
        positions: tuple[Position, ...],
        realized_pnl: Decimal,
        fees_paid: Decimal,
        funding_paid: Decimal,
        timestamp: float,
    ) -> AccountSnapshot:
        """The object the constructor builds, without the frozen ``__init__``'s per-field cost
        (a backtest reads the account for every equity sample)."""
        snapshot = object.__new__(cls)
        snapshot.__dict__.update(
            balance=balance,
            equity=equity,
            positions=positions,
            realized_pnl=realized_pnl,
            fees_paid=fees_paid,
            funding_paid=funding_paid,
            timestamp=timestamp,
        )
        return snapshot


@dataclass(frozen=True)
class FundingRate:
    """The funding rate per interval (0.0001 = 0.01 % per interval)."""

    contract_id: str
    rate: Decimal
    interval_hours: Decimal = Decimal(8)
    next_funding_time: float | None = None


@dataclass(frozen=True)
class MarketUpdate:
    """Top of book changed (or a trade printed); enough for a strategy to wake up on."""

    contract_id: str
    best_bid: Decimal
    best_ask: Decimal
    timestamp: float
    last_trade_price: Decimal | None = None

    @classmethod
    def quick(
        cls,
        contract_id: str,
        best_bid: Decimal,
        best_ask: Decimal,
        timestamp: float,
        last_trade_price: Decimal | None = None,
    ) -> MarketUpdate:
        """The object the constructor builds, at a fifth of the frozen ``__init__``'s cost.

        Venues emit one per book change, which in a backtest is most market events.
        """
        update = object.__new__(cls)
        fields = update.__dict__
        fields["contract_id"] = contract_id
        fields["best_bid"] = best_bid
        fields["best_ask"] = best_ask
        fields["timestamp"] = timestamp
        fields["last_trade_price"] = last_trade_price
        return update


OrderUpdateHandler = Callable[[OrderUpdate], None]
MarketUpdateHandler = Callable[[MarketUpdate], None]

_INFINITY = Decimal("Infinity")
_MINUS_INFINITY = Decimal("-Infinity")


class QuietQuotes:
    """The quotes for which a market-update subscriber would discard the update unread.

    A subscriber passes one to :meth:`BaseExchangeClient.subscribe_market_updates` and keeps it
    up to date: an update whose best bid lies strictly inside ``(bid_low, bid_high)`` and best
    ask strictly inside ``(ask_low, ask_high)`` is of no use to it beyond its time. A venue may
    then skip building the :class:`MarketUpdate` and calling the handler, and record the clock
    time in ``skipped_at`` instead (venues need not: the handler must still discard such
    updates itself). Only a lone subscriber's band lets a venue skip. Starts (and
    :meth:`close` returns to) an empty band: every update is delivered.
    """

    __slots__ = ("ask_high", "ask_low", "bid_high", "bid_low", "skipped_at")

    def __init__(self) -> None:
        self.skipped_at: float | None = None
        self.close()

    def open(self, bid_low: Decimal, bid_high: Decimal, ask_low: Decimal, ask_high: Decimal) -> None:
        """Updates strictly inside these bounds may be skipped."""
        self.bid_low = bid_low
        self.bid_high = bid_high
        self.ask_low = ask_low
        self.ask_high = ask_high

    def close(self) -> None:
        """Deliver every update (no quote lies above +infinity)."""
        self.bid_low = _INFINITY
        self.bid_high = _MINUS_INFINITY
        self.ask_low = _INFINITY
        self.ask_high = _MINUS_INFINITY

    def contains(self, best_bid: Decimal, best_ask: Decimal) -> bool:
        """True when an update with this quote may be skipped."""
        return self.bid_low < best_bid < self.bid_high and self.ask_low < best_ask < self.ask_high


# ---------------------------------------------------------------------------------------------
# The client contract
# ---------------------------------------------------------------------------------------------


#: A backwards jump of the id body larger than this (about 28 hours) is the millisecond field
#: wrapping, not orders crowding one millisecond.
_ID_WRAP_GAP = 10**10


@dataclass
class ClientOrderIdFactory:
    """Makes the client ids that mark orders as ours.

    Ids are 14 digits: a 3-digit prefix derived from the bot's identity (exchange, ticker,
    strategy), 9 digits of millisecond time and a 2-digit counter. A restarted bot recognises its
    own orders by the prefix and cancels only those; venues that need integer ids below 2**48
    (Lighter's client order index) can use the digits as they are.

    The 11 digits after the prefix never repeat within a process: when more than 100 orders fall
    in one millisecond (a backtest places them at one simulated instant) the counter carries
    into the next millisecond instead of wrapping. Only when the 9-digit millisecond field wraps
    (every 11.6 days) does the sequence start again from the time.
    """

    prefix: str
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    _last: int = -1

    def next_id(self, timestamp: float) -> str:
        millis = int(timestamp * 1000) % 10**9
        body = millis * 100 + next(self._counter) % 100
        last = self._last
        if last - _ID_WRAP_GAP < body <= last:
            body = (last + 1) % 10**11
        self._last = body
        return f"{self.prefix}{body:011d}"

    def is_ours(self, client_order_id: str | None) -> bool:
        return bool(client_order_id) and str(client_order_id).startswith(self.prefix)


#: Client ids of a 32-bit venue: ``prefix * U32_ID_SPAN + body``, below 1000 * U32_ID_SPAN < 2**32.
U32_ID_SPAN = 4_000_000


@dataclass
class U32ClientOrderIdFactory(ClientOrderIdFactory):
    """Client ids for venues that take only an unsigned 32-bit integer (Backpack's ``clientId``).

    Our usual 14 digits do not fit in 32 bits, so the id is ``prefix * 4,000,000 + body``: the
    3-digit prefix still identifies the bot after a restart (``is_ours`` divides instead of
    comparing the leading digits), and the body is the time in tenths of a second modulo
    4,000,000 (it wraps every 4.6 days), moved on by one whenever that would repeat the last
    id. So ids never repeat within a process; a restarted bot could only meet an id of its
    previous run if that run placed more than ten orders a second for a long stretch.
    """

    def __post_init__(self) -> None:
        if not (self.prefix.isdigit() and len(self.prefix) == 3):
            raise ValueError(f"a 32-bit client id needs a 3-digit prefix, got {self.prefix!r}")
        self._base = int(self.prefix) * U32_ID_SPAN

    def next_id(self, timestamp: float) -> str:
        body = int(timestamp * 10) % U32_ID_SPAN
        last = self._last
        if last - U32_ID_SPAN // 2 < body <= last:
            body = (last + 1) % U32_ID_SPAN
        self._last = body
        return str(self._base + body)

    def is_ours(self, client_order_id: str | None) -> bool:
        text = str(client_order_id or "")
        return text.isdigit() and len(text) <= 10 and int(text) // U32_ID_SPAN == int(self.prefix)


def _no_gate() -> None:
    return None


class BaseExchangeClient(ABC):
    """What every venue client does. Methods raise :class:`ExchangeError` subclasses on failure."""

    #: Name used in logs, file names and the factory.
    name: str = "base"
    #: True when the client calls :attr:`send_gate` right before every order or cancel request
    #: leaves the process (after signing it). The execution layer then lets its journal writes
    #: wait for that moment, so they run while the order is signed; otherwise it writes them
    #: before calling the client.
    gates_sends: bool = False

    def __init__(self, config: TradingConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        #: Set by the execution layer: makes its journal durable. Raises if it cannot, and then
        #: the request must not be sent.
        self.send_gate: Callable[[], None] = _no_gate
        self.client_ids = ClientOrderIdFactory(prefix=config.client_id_prefix)
        self._order_handlers: list[OrderUpdateHandler] = []
        self._market_handlers: list[MarketUpdateHandler] = []
        self._reconnect_handlers: list[Callable[[], None]] = []
        #: The lone market subscriber's QuietQuotes, if it gave one (see subscribe_market_updates).
        self._market_quiet: QuietQuotes | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    async def connect(self) -> None:
        """Open sessions and streams; raise ConfigurationError/AuthenticationError early."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close everything; never raises for an already closed connection."""

    # -- market metadata and data ------------------------------------------------------------

    @abstractmethod
    async def get_contract_info(self, ticker: str) -> ContractInfo:
        """Resolve a ticker to the venue's contract with its tick, step and minimums."""

    @abstractmethod
    async def fetch_bbo_prices(self, contract_id: str) -> tuple[Decimal, Decimal]:
        """Best bid and best ask."""

    @abstractmethod
    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        """Current funding rate of the contract."""

    # -- orders ------------------------------------------------------------------------------

    @abstractmethod
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
        """Rest a limit order (good till cancelled). Post-only crossing raises PostOnlyRejected."""

    @abstractmethod
    async def place_market_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        client_order_id: str,
        max_slippage_pct: Decimal,
        reduce_only: bool = False,
    ) -> OrderResult:
        """Take liquidity, filling no worse than ``max_slippage_pct`` percent from the touch."""

    @abstractmethod
    async def cancel_order(self, contract_id: str, order_id: str) -> OrderResult:
        """Cancel one order. Raises OrderNotFound if the venue no longer has it."""

    # -- batches -----------------------------------------------------------------------------

    async def place_limit_orders(self, requests: Sequence[LimitOrderRequest]) -> list[BatchOutcome]:
        """Place several limit orders; one outcome per request, in the order given.

        A venue with a batch endpoint sends them in one request (Lighter); this default runs
        :meth:`place_limit_order` for each, concurrently: the orders are independent, so the
        batch takes about as long as its slowest order instead of the sum, and each venue's
        own rate limiter still paces the requests. One order's refusal never affects another.
        """
        return await self._each([(request.client_order_id, self._place_one(request)) for request in requests])

    async def cancel_orders(self, contract_id: str, order_ids: Sequence[str]) -> list[BatchOutcome]:
        """Cancel several orders; one outcome per id, in the order given (concurrently by
        default, for the reasons :meth:`place_limit_orders` gives)."""
        return await self._each(
            [(order_id, self.cancel_order(contract_id, order_id)) for order_id in order_ids]
        )

    def _place_one(self, request: LimitOrderRequest) -> Awaitable[OrderResult]:
        return self.place_limit_order(
            request.contract_id,
            request.side,
            request.quantity,
            request.price,
            request.client_order_id,
            post_only=request.post_only,
            reduce_only=request.reduce_only,
        )

    @staticmethod
    async def _each(calls: list[tuple[str, Awaitable[OrderResult]]]) -> list[BatchOutcome]:
        """Run single calls concurrently; a typed venue error becomes that order's outcome, any
        other exception (a bug) propagates after every call has finished."""
        answers = await asyncio.gather(*(call for _, call in calls), return_exceptions=True)
        outcomes = []
        for (key, _), answer in zip(calls, answers, strict=True):
            if isinstance(answer, ExchangeError):
                outcomes.append(BatchOutcome(key, error=answer))
            elif isinstance(answer, BaseException):
                raise answer
            else:
                outcomes.append(BatchOutcome(key, result=answer))
        return outcomes

    @abstractmethod
    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        """Read one order back from the venue. Raises OrderNotFound."""

    @abstractmethod
    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        """Our resting orders on the contract (those carrying our client-id prefix)."""

    @abstractmethod
    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        """Look one of our orders up by our client id among the venue's active AND finished orders.

        The execution layer resolves orders whose placement outcome was unknown, and orders it
        journaled before a restart, with it; ``filled_size`` tells it what filled meanwhile.
        Raises OrderNotFound only when the venue definitively lists neither an active nor a
        finished order with this id; a failed read raises a NetworkError subclass, and a search
        the client had to cut short raises another ExchangeError, never OrderNotFound. An order
        whose request may still be in flight can be missing for a moment: OrderNotFound says
        what the venue lists now, so wait out the request's timeout before placing it again.
        """

    # -- positions and account ---------------------------------------------------------------

    @abstractmethod
    async def get_position(self, contract_id: str) -> Position:
        """Net position on the contract (size 0 when flat). Failure raises, never returns 0."""

    @abstractmethod
    async def get_account_snapshot(self) -> AccountSnapshot:
        """Balance, equity and positions. NotSupported where the venue cannot provide it."""

    # -- streams -----------------------------------------------------------------------------

    def subscribe_order_updates(self, handler: OrderUpdateHandler) -> None:
        """Deliver every change of our orders (fills included) to ``handler``."""
        self._order_handlers.append(handler)

    def subscribe_market_updates(
        self, handler: MarketUpdateHandler, *, quiet: QuietQuotes | None = None
    ) -> None:
        """Deliver top-of-book changes to ``handler``.

        ``quiet`` (optional) is the band of quotes the handler would discard: while it is the
        only subscriber, a venue may skip those updates and note their time in
        ``quiet.skipped_at`` instead (the paper venue does; see :class:`QuietQuotes`).
        """
        self._market_handlers.append(handler)
        self._market_quiet = quiet if len(self._market_handlers) == 1 else None

    def subscribe_reconnects(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` whenever the private stream came back after a break: anything may
        have happened meanwhile, so the bot reconciles its orders with the venue."""
        self._reconnect_handlers.append(handler)

    def _emit_reconnected(self) -> None:
        for handler in self._reconnect_handlers:
            handler()

    def _emit_order_update(self, update: OrderUpdate) -> None:
        for handler in self._order_handlers:
            handler(update)

    def _emit_market_update(self, update: MarketUpdate) -> None:
        for handler in self._market_handlers:
            handler(update)
