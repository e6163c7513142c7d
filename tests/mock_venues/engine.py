"""The matching every perpetuals mock venue shares: an external book around a price, our
orders, fills, one net position. Venues only translate it into their wire shapes.

The external book is ``levels`` levels a side, one tick apart around the price (the price
itself empty). ``trade_through(price)`` prints an external trade: our resting buys at or above
it and sells at or below it fill at their own prices as maker, then the book moves there. An
order of ours that crosses the external book takes from it (taker, at the level prices); an IOC
order's unfilled rest is cancelled, a GTC order's rests. Post-only and reduce-only checks are
the venue's (the answers differ), with ``would_take`` and ``reduces`` to decide them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

BUY, SELL = "buy", "sell"
OPEN, PARTIAL, FILLED, CANCELLED, EXPIRED = "open", "partially_filled", "filled", "cancelled", "expired"


def fmt(value: Decimal) -> str:
    """A Decimal as venues print it: no exponent, no trailing zeros."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(eq=False)
class EngineOrder:
    id: int
    client_id: Any
    side: str
    quantity: Decimal
    price: Decimal
    time_in_force: str  # GTC or IOC
    post_only: bool
    reduce_only: bool
    created_ms: int
    executed: Decimal = Decimal(0)
    executed_quote: Decimal = Decimal(0)
    status: str = OPEN
    extra: dict[str, Any] = field(default_factory=dict)  # venue-specific fields (order type names...)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in (OPEN, PARTIAL)

    @property
    def sign(self) -> int:
        return 1 if self.side == BUY else -1

    @property
    def average_price(self) -> Decimal:
        return self.executed_quote / self.executed if self.executed else Decimal(0)


@dataclass(frozen=True)
class EngineFill:
    trade_id: int
    order: EngineOrder
    quantity: Decimal
    price: Decimal
    fee: Decimal
    is_maker: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "trade_id": self.trade_id,
            "order_id": self.order.id,
            "client_id": self.order.client_id,
            "side": self.order.side,
            "quantity": fmt(self.quantity),
            "price": fmt(self.price),
            "fee": fmt(self.fee),
            "is_maker": self.is_maker,
        }


class PerpEngine:
    """One market's matching and our account on it. ``on_fill`` is called for every fill
    (after the order and position are updated), for the venue to push its messages."""

    def __init__(
        self,
        *,
        tick: Decimal,
        start_price: Decimal,
        levels: int = 10,
        level_size: Decimal = Decimal("0.5"),
        maker_fee: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0005"),
        fee_quantum: Decimal = Decimal("0.000001"),
        first_order_id: int = 1,
        first_trade_id: int = 1,
    ) -> None:
        self.tick = tick
        self.levels = levels
        self.level_size = level_size
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.fee_quantum = fee_quantum
        self.order_ids = itertools.count(first_order_id)
        self.trade_ids = itertools.count(first_trade_id)
        self.orders: dict[int, EngineOrder] = {}
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.position = Decimal(0)
        self.entry_price = Decimal(0)
        self.realized = Decimal(0)
        self.fees = Decimal(0)
        self.on_fill: Callable[[EngineFill], None] = lambda fill: None
        self.recenter(start_price)

    # -- the book ----------------------------------------------------------------------------

    def recenter(self, mid: Decimal) -> None:
        mid = (mid / self.tick).to_integral_value() * self.tick
        self.bids = {mid - self.tick * i: self.level_size for i in range(1, self.levels + 1)}
        self.asks = {mid + self.tick * i: self.level_size for i in range(1, self.levels + 1)}

    def aggregate(self) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """External levels plus our resting orders, as the venue's book shows them."""
        bids, asks = dict(self.bids), dict(self.asks)
        for order in self.orders.values():
            if order.is_open:
                side = bids if order.side == BUY else asks
                side[order.price] = side.get(order.price, Decimal(0)) + order.remaining
        return bids, asks

    def top(self) -> tuple[Decimal, Decimal]:
        bids, asks = self.aggregate()
        return max(bids), min(asks)

    def would_take(self, side: str, price: Decimal) -> bool:
        bid, ask = self.top()
        return price >= ask if side == BUY else price <= bid

    def reduces(self, side: str) -> bool:
        """True when an order of ``side`` would reduce the position (reduce-only allowed)."""
        return self.position != 0 and (self.position > 0) == (side == SELL)

    # -- orders ------------------------------------------------------------------------------

    def new_order(self, **fields: Any) -> EngineOrder:
        order = EngineOrder(id=next(self.order_ids), **fields)
        self.orders[order.id] = order
        return order

    def match(self, order: EngineOrder) -> None:
        """Take from the external book up to the order's price; cancel an IOC's rest."""
        levels = self.asks if order.side == BUY else self.bids
        while order.remaining > 0 and levels:
            best = min(levels) if order.side == BUY else max(levels)
            if (order.side == BUY and best > order.price) or (order.side == SELL and best < order.price):
                break
            quantity = min(order.remaining, levels[best])
            levels[best] -= quantity
            if levels[best] == 0:
                del levels[best]
            self._fill(order, quantity, best, maker=False)
        if order.time_in_force == "IOC" and order.remaining > 0:
            order.status = CANCELLED

    def trade_through(self, price: Decimal, size: Decimal | None) -> list[EngineFill]:
        left = size
        crossed = [
            o
            for o in self.orders.values()
            if o.is_open and ((o.side == BUY and o.price >= price) or (o.side == SELL and o.price <= price))
        ]
        crossed.sort(key=lambda o: (-o.price if o.side == BUY else o.price, o.created_ms, o.id))
        fills = []
        for order in crossed:
            quantity = order.remaining if left is None else min(order.remaining, left)
            if quantity <= 0:
                break
            fills.append(self._fill(order, quantity, order.price, maker=True))
            if left is not None:
                left -= quantity
        self.recenter(price)
        return fills

    def _fill(self, order: EngineOrder, quantity: Decimal, price: Decimal, *, maker: bool) -> EngineFill:
        fee = (quantity * price * (self.maker_fee if maker else self.taker_fee)).quantize(self.fee_quantum)
        order.executed += quantity
        order.executed_quote += quantity * price
        order.status = FILLED if order.remaining == 0 else PARTIAL
        self._book_position(order.sign * quantity, price)
        self.fees += fee
        fill = EngineFill(next(self.trade_ids), order, quantity, price, fee, maker)
        self.on_fill(fill)
        return fill

    def _book_position(self, signed_qty: Decimal, price: Decimal) -> None:
        old = self.position
        new = old + signed_qty
        if old == 0 or (old > 0) == (signed_qty > 0):
            self.entry_price = (old * self.entry_price + signed_qty * price) / new if new else Decimal(0)
        else:
            closed = min(abs(signed_qty), abs(old))
            self.realized += closed * (price - self.entry_price) * (1 if old > 0 else -1)
            if new == 0:
                self.entry_price = Decimal(0)
            elif (new > 0) != (old > 0):
                self.entry_price = price
        self.position = new

    def mark_price(self) -> Decimal:
        bid, ask = self.top()
        return (bid + ask) / 2

    def unrealized(self) -> Decimal:
        return (self.mark_price() - self.entry_price) * self.position if self.position else Decimal(0)
