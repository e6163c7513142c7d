"""An in-memory, hand-driven venue for strategy unit tests.

Nothing happens unless the test makes it happen: prices move when you call :meth:`set_prices`,
orders fill when you call :meth:`fill`. Every call is recorded, so a test can assert exactly what
a strategy asked for. Typical use::

    clock = SimulatedClock(1_000.0)
    exchange = MockExchangeClient(config, clock)
    exchange.set_prices("59990", "60000")
    ... strategy places an order ...
    order = exchange.last_placed
    exchange.fill(order.order_id, size="0.004")          # emits an OrderUpdate with a Fill
    exchange.reject_next("place_limit_order", PostOnlyRejected("would cross"))

Order updates go to every handler registered with ``subscribe_order_updates``, synchronously,
as a venue's stream would; they are also kept in :attr:`updates`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from exchanges.base import (
    AccountSnapshot,
    BaseExchangeClient,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
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
)
from helpers.clock import Clock
from helpers.rounding import is_multiple
from helpers.trading_config import TradingConfig

ZERO = Decimal(0)

#: The client methods whose next call :meth:`MockExchangeClient.reject_next` can make fail.
MOCKED_METHODS = (
    "connect",
    "disconnect",
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
)


def _dec(value: Decimal | str | int | None) -> Decimal | None:
    """Tests may write prices as strings or ints; the venue keeps Decimals."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError("pass prices and sizes as str or Decimal, not float")
    return Decimal(str(value))


@dataclass(frozen=True)
class PlacedOrder:
    """One accepted placement request, with every flag the strategy set."""

    order_id: str
    client_order_id: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    post_only: bool
    reduce_only: bool
    max_slippage_pct: Decimal | None
    timestamp: float


@dataclass(frozen=True)
class _UnknownAnswer:
    reaches_venue: bool
    stream_update: bool


@dataclass(frozen=True)
class Call:
    """One call to the client, successful or not."""

    method: str
    args: dict[str, Any]
    timestamp: float


def default_contract(ticker: str) -> ContractInfo:
    return ContractInfo(
        ticker=ticker,
        contract_id=f"{ticker}-PERP",
        tick_size=Decimal("0.1"),
        size_step=Decimal("0.001"),
        min_size=Decimal("0.001"),
        min_notional=ZERO,
    )


class MockExchangeClient(BaseExchangeClient):
    """A venue double that does only what the test tells it to."""

    name = "mock"

    def __init__(
        self,
        config: TradingConfig,
        clock: Clock,
        contract: ContractInfo | None = None,
        best_bid: Decimal | str = "59999.9",
        best_ask: Decimal | str = "60000.0",
        enforce_post_only: bool = True,
        fill_market_orders: bool = True,
        minimum_applies_to_reduce_only: bool = True,
    ) -> None:
        super().__init__(config, clock)
        #: Market metadata returned by get_contract_info; replace it freely.
        self.contract = contract or default_contract(config.ticker)
        self.best_bid: Decimal = _dec(best_bid)  # type: ignore[assignment]
        self.best_ask: Decimal = _dec(best_ask)  # type: ignore[assignment]
        #: Refuse post-only orders that would cross the current bid/ask, as a venue would.
        self.enforce_post_only = enforce_post_only
        #: Fill market orders at once at the touch (off: they rest until you fill them).
        self.fill_market_orders = fill_market_orders
        #: Refuse reduce-only orders below min size/notional too (some venues let them through).
        self.minimum_applies_to_reduce_only = minimum_applies_to_reduce_only
        self.connected = False
        self.funding_rate = Decimal("0.0001")
        self.balance = Decimal("10000")
        #: Every order the venue accepted, by order id, in its current state.
        self.orders: dict[str, OrderInfo] = {}
        #: Every accepted placement, in order.
        self.placed: list[PlacedOrder] = []
        #: Order ids of every successful cancel, in order.
        self.cancelled: list[str] = []
        #: Every call made to the client, including the ones that raised.
        self.calls: list[Call] = []
        #: Every order update emitted, in order.
        self.updates: list[OrderUpdate] = []
        #: Net position (positive long), moved by fills.
        self.position = ZERO
        self._errors: dict[str, deque[ExchangeError]] = defaultdict(deque)
        self._unknown_answers: deque[_UnknownAnswer] = deque()
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)

    # -- scripting the venue (called by tests) -----------------------------------------------

    def set_prices(self, best_bid: Decimal | str, best_ask: Decimal | str, emit: bool = True) -> None:
        """Move the top of book (and tell market-data subscribers, unless ``emit`` is False)."""
        bid, ask = _dec(best_bid), _dec(best_ask)
        assert bid is not None and ask is not None
        if bid >= ask:
            raise ValueError(f"crossed book: bid {bid} >= ask {ask}")
        self.best_bid, self.best_ask = bid, ask
        if emit:
            self._emit_market_update(
                MarketUpdate(self.contract.contract_id, bid, ask, timestamp=self.clock.now())
            )

    def reject_next(self, method: str, error: ExchangeError) -> None:
        """Make the next call of ``method`` raise ``error`` (queue several for several calls)."""
        if method not in MOCKED_METHODS:
            raise ValueError(f"unknown method {method!r}; one of {', '.join(MOCKED_METHODS)}")
        self._errors[method].append(error)

    def answer_unknown_next(self, reaches_venue: bool = True, stream_update: bool = False) -> None:
        """Make the next placement answer ambiguously (status UNKNOWN, no order id).

        With ``reaches_venue`` the order does rest (find it with get_active_orders); without, it
        never arrived. ``stream_update`` says whether its "open" update still reaches subscribers.
        """
        self._unknown_answers.append(_UnknownAnswer(reaches_venue, stream_update))

    def seed_order(
        self,
        side: OrderSide,
        size: Decimal | str,
        price: Decimal | str,
        client_order_id: str | None = None,
        filled_size: Decimal | str = "0",
    ) -> OrderInfo:
        """Put a resting order on the book without a placement call (e.g. left by an earlier run).

        It carries our client-id prefix unless you pass another ``client_order_id``.
        """
        order_id = self._next_order_id()
        filled = _dec(filled_size) or ZERO
        info = OrderInfo(
            order_id=order_id,
            client_order_id=client_order_id or self.client_ids.next_id(self.clock.now()),
            contract_id=self.contract.contract_id,
            side=side,
            order_type=OrderType.LIMIT,
            size=_dec(size),  # type: ignore[arg-type]
            price=_dec(price),  # type: ignore[arg-type]
            status=OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN,
            filled_size=filled,
            timestamp=self.clock.now(),
        )
        self.orders[order_id] = info
        return replace(info)

    def fill(
        self,
        order_id: str,
        size: Decimal | str | None = None,
        price: Decimal | str | None = None,
        fee: Decimal | str = "0",
        is_maker: bool | None = None,
    ) -> OrderUpdate:
        """Execute ``size`` (default: all that remains) of an order at ``price`` (default: its price).

        Emits the OrderUpdate (with its Fill) to subscribers and returns it.
        """
        info = self._order(order_id)
        if not info.status.is_active:
            raise ValueError(f"order {order_id} is {info.status.value}; it cannot fill")
        fill_size = _dec(size) if size is not None else info.remaining_size
        fill_price = _dec(price) if price is not None else info.price
        assert fill_size is not None and fill_price is not None
        if not ZERO < fill_size <= info.remaining_size:
            raise ValueError(f"fill size {fill_size} not within (0, {info.remaining_size}] of {order_id}")
        previous = info.filled_size
        info.filled_size = previous + fill_size
        average = info.average_fill_price or ZERO
        info.average_fill_price = (average * previous + fill_price * fill_size) / info.filled_size
        info.status = OrderStatus.FILLED if info.filled_size == info.size else OrderStatus.PARTIALLY_FILLED
        self.position += fill_size * info.side.sign
        execution = Fill(
            order_id=order_id,
            client_order_id=info.client_order_id,
            contract_id=info.contract_id,
            side=info.side,
            price=fill_price,
            size=fill_size,
            fee=_dec(fee) or ZERO,
            is_maker=info.order_type is OrderType.LIMIT if is_maker is None else is_maker,
            timestamp=self.clock.now(),
            trade_id=f"T{next(self._trade_ids)}",
        )
        return self._emit(info, execution)

    def end_order(self, order_id: str, status: OrderStatus = OrderStatus.CANCELLED) -> OrderUpdate:
        """The venue ends an order by itself (cancelled by someone else, expired, rejected late)."""
        if not status.is_final or status is OrderStatus.FILLED:
            raise ValueError("use fill() to fill; end_order takes cancelled, expired or rejected")
        info = self._order(order_id)
        info.status = status
        return self._emit(info)

    # -- inspecting (called by tests) --------------------------------------------------------

    @property
    def last_placed(self) -> PlacedOrder:
        if not self.placed:
            raise AssertionError("no order has been placed")
        return self.placed[-1]

    def open_orders(self, side: OrderSide | None = None) -> list[OrderInfo]:
        """Resting orders (any owner), oldest first, optionally of one side."""
        return [
            replace(info)
            for info in self.orders.values()
            if info.status.is_active and (side is None or info.side is side)
        ]

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # -- the client contract -----------------------------------------------------------------

    async def connect(self) -> None:
        self._record("connect")
        self.connected = True

    async def disconnect(self) -> None:
        self._record("disconnect")
        self.connected = False

    async def get_contract_info(self, ticker: str) -> ContractInfo:
        self._record("get_contract_info", ticker=ticker)
        if ticker.upper() != self.contract.ticker.upper():
            raise ConfigurationError(f"mock venue lists only {self.contract.ticker}, not {ticker}")
        return self.contract

    async def fetch_bbo_prices(self, contract_id: str) -> tuple[Decimal, Decimal]:
        self._record("fetch_bbo_prices", contract_id=contract_id)
        return self.best_bid, self.best_ask

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        self._record("get_funding_rate", contract_id=contract_id)
        return FundingRate(contract_id, self.funding_rate)

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
        self._record(
            "place_limit_order",
            contract_id=contract_id,
            side=side,
            quantity=quantity,
            price=price,
            client_order_id=client_order_id,
            post_only=post_only,
            reduce_only=reduce_only,
        )
        self._check_order(contract_id, quantity, price, reduce_only)
        crosses = price >= self.best_ask if side is OrderSide.BUY else price <= self.best_bid
        if post_only and crosses and self.enforce_post_only:
            touch = self.best_ask if side is OrderSide.BUY else self.best_bid
            raise PostOnlyRejected(f"post-only {side.value} @ {price} would cross {touch}")
        unknown = self._unknown_answers.popleft() if self._unknown_answers else None
        if unknown is not None and not unknown.reaches_venue:
            return self._unknown_result(side, quantity, price, client_order_id)
        info = self._accept(
            side,
            OrderType.LIMIT,
            quantity,
            price,
            client_order_id,
            post_only,
            reduce_only,
            None,
            emit=unknown is None or unknown.stream_update,
        )
        if crosses and not post_only:
            self.fill(info.order_id, price=self.best_ask if side is OrderSide.BUY else self.best_bid)
        if unknown is not None:
            return self._unknown_result(side, quantity, price, client_order_id)
        return self._answer(info)

    async def place_market_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        client_order_id: str,
        max_slippage_pct: Decimal,
        reduce_only: bool = False,
    ) -> OrderResult:
        self._record(
            "place_market_order",
            contract_id=contract_id,
            side=side,
            quantity=quantity,
            client_order_id=client_order_id,
            max_slippage_pct=max_slippage_pct,
            reduce_only=reduce_only,
        )
        touch = self.best_ask if side is OrderSide.BUY else self.best_bid
        self._check_order(contract_id, quantity, touch, reduce_only)
        unknown = self._unknown_answers.popleft() if self._unknown_answers else None
        if unknown is not None and not unknown.reaches_venue:
            return self._unknown_result(side, quantity, None, client_order_id)
        info = self._accept(
            side,
            OrderType.MARKET,
            quantity,
            touch,
            client_order_id,
            False,
            reduce_only,
            max_slippage_pct,
            emit=unknown is None or unknown.stream_update,
        )
        if self.fill_market_orders:
            self.fill(info.order_id, price=touch)
        if unknown is not None:
            return self._unknown_result(side, quantity, None, client_order_id)
        return self._answer(info)

    async def cancel_order(self, contract_id: str, order_id: str) -> OrderResult:
        self._record("cancel_order", contract_id=contract_id, order_id=order_id)
        info = self.orders.get(order_id)
        if info is None or not info.status.is_active:
            raise OrderNotFound(f"no active order {order_id}")
        info.status = OrderStatus.CANCELLED
        self.cancelled.append(order_id)
        self._emit(info)
        return OrderResult(
            success=True,
            order_id=order_id,
            client_order_id=info.client_order_id,
            side=info.side,
            size=info.size,
            price=info.price,
            status=OrderStatus.CANCELLED,
            filled_size=info.filled_size,
            average_fill_price=info.average_fill_price,
        )

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        self._record("get_order_info", contract_id=contract_id, order_id=order_id)
        return replace(self._order(order_id))

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        self._record("get_active_orders", contract_id=contract_id)
        return [
            replace(info)
            for info in self.orders.values()
            if info.contract_id == contract_id
            and info.status.is_active
            and self.client_ids.is_ours(info.client_order_id)
        ]

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        self._record("find_order", contract_id=contract_id, client_order_id=client_order_id)
        for info in reversed(self.orders.values()):
            if info.client_order_id == client_order_id and info.contract_id == contract_id:
                return replace(info)
        raise OrderNotFound(f"no order with client id {client_order_id}")

    async def get_position(self, contract_id: str) -> Position:
        self._record("get_position", contract_id=contract_id)
        return Position(contract_id, self.position, self.best_bid if self.position else ZERO)

    async def get_account_snapshot(self) -> AccountSnapshot:
        self._record("get_account_snapshot")
        position = Position(self.contract.contract_id, self.position, ZERO)
        return AccountSnapshot(
            balance=self.balance,
            equity=self.balance,
            positions=(position,) if self.position else (),
            timestamp=self.clock.now(),
        )

    # -- internals ---------------------------------------------------------------------------

    def _record(self, method: str, **args: Any) -> None:
        self.calls.append(Call(method, args, self.clock.now()))
        errors = self._errors.get(method)
        if errors:
            raise errors.popleft()

    def _check_order(self, contract_id: str, quantity: Decimal, price: Decimal, reduce_only: bool) -> None:
        contract = self.contract
        if contract_id != contract.contract_id:
            raise InvalidOrder(f"unknown contract {contract_id}")
        if quantity <= 0 or not is_multiple(quantity, contract.size_step):
            raise InvalidOrder(f"quantity {quantity} is not a positive multiple of {contract.size_step}")
        if price <= 0 or not is_multiple(price, contract.tick_size):
            raise InvalidOrder(f"price {price} is not a positive multiple of {contract.tick_size}")
        if reduce_only and not self.minimum_applies_to_reduce_only:
            return
        if quantity < contract.min_size or quantity * price < contract.min_notional:
            raise OrderBelowMinimum(
                f"{quantity} @ {price} is below min size {contract.min_size} "
                f"/ notional {contract.min_notional}"
            )

    def _next_order_id(self) -> str:
        return f"M{next(self._order_ids)}"

    def _accept(
        self,
        side: OrderSide,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal,
        client_order_id: str,
        post_only: bool,
        reduce_only: bool,
        max_slippage_pct: Decimal | None,
        emit: bool = True,
    ) -> OrderInfo:
        order_id = self._next_order_id()
        now = self.clock.now()
        info = OrderInfo(
            order_id=order_id,
            client_order_id=client_order_id,
            contract_id=self.contract.contract_id,
            side=side,
            order_type=order_type,
            size=quantity,
            price=price,
            status=OrderStatus.OPEN,
            timestamp=now,
        )
        self.orders[order_id] = info
        self.placed.append(
            PlacedOrder(
                order_id=order_id,
                client_order_id=client_order_id,
                side=side,
                order_type=order_type,
                quantity=quantity,
                price=price if order_type is OrderType.LIMIT else None,
                post_only=post_only,
                reduce_only=reduce_only,
                max_slippage_pct=max_slippage_pct,
                timestamp=now,
            )
        )
        if emit:
            self._emit(info)
        return info

    @staticmethod
    def _unknown_result(
        side: OrderSide, quantity: Decimal, price: Decimal | None, client_order_id: str
    ) -> OrderResult:
        return OrderResult(
            success=False,
            client_order_id=client_order_id,
            side=side,
            size=quantity,
            price=price,
            status=OrderStatus.UNKNOWN,
            error_message="mock: the answer was lost",
        )

    def _answer(self, info: OrderInfo) -> OrderResult:
        return OrderResult(
            success=True,
            order_id=info.order_id,
            client_order_id=info.client_order_id,
            side=info.side,
            size=info.size,
            price=info.price,
            status=info.status,
            filled_size=info.filled_size,
            average_fill_price=info.average_fill_price,
        )

    def _order(self, order_id: str) -> OrderInfo:
        info = self.orders.get(order_id)
        if info is None:
            raise OrderNotFound(f"no order {order_id}")
        return info

    def _emit(self, info: OrderInfo, execution: Fill | None = None) -> OrderUpdate:
        update = OrderUpdate(order=replace(info), fill=execution)
        self.updates.append(update)
        self._emit_order_update(update)
        return update
