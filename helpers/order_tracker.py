"""Tracks every order the bot sends, from before the request leaves until a final state.

After hummingbot's in-flight orders: an order is tracked *before* it is sent, so a fill that
races the placement answer, or a timeout with an unknown outcome, never leaves an order the bot
forgot about. Shutdown uses it to cancel exactly our entry orders. Orders in a final state are
forgotten oldest-first once more than ``keep_final`` of them pile up, so a bot that runs for days
keeps bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from exchanges.base import OrderResult, OrderSide, OrderStatus, OrderType, OrderUpdate
from strategies.base_strategy import OrderParams, OrderRole


@dataclass
class TrackedOrder:
    client_order_id: str
    role: OrderRole
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    status: OrderStatus = OrderStatus.PENDING
    order_id: str | None = None
    filled_size: Decimal = Decimal(0)
    error: str | None = None


@dataclass
class OrderTracker:
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    keep_final: int = 2000
    submitted_count: int = 0
    _by_order_id: dict[str, str] = field(default_factory=dict)

    def submitted(self, params: OrderParams) -> TrackedOrder:
        if params.client_order_id is None:
            raise ValueError("an order must carry its client id before it is tracked")
        tracked = TrackedOrder(
            client_order_id=params.client_order_id,
            role=params.role,
            side=params.side,
            order_type=params.order_type,
            quantity=params.quantity,
            price=params.price,
        )
        self.orders[tracked.client_order_id] = tracked
        self.submitted_count += 1
        if len(self.orders) > 2 * self.keep_final:
            self._forget_oldest_final()
        return tracked

    def _forget_oldest_final(self) -> None:
        """Drop final orders, oldest first, down to ``keep_final`` of them (active ones stay)."""
        final = [key for key, order in self.orders.items() if order.status.is_final]
        for key in final[: max(0, len(final) - self.keep_final)]:
            order = self.orders.pop(key)
            if order.order_id is not None:
                self._by_order_id.pop(order.order_id, None)

    def acknowledged(self, client_order_id: str, result: OrderResult) -> None:
        tracked = self.orders[client_order_id]
        if result.order_id:
            tracked.order_id = result.order_id
            self._by_order_id[result.order_id] = client_order_id
        if tracked.status.is_final:
            return
        tracked.status = result.status
        tracked.filled_size = max(tracked.filled_size, result.filled_size)

    def failed(self, client_order_id: str, error: Exception) -> None:
        tracked = self.orders[client_order_id]
        tracked.status = OrderStatus.REJECTED
        tracked.error = str(error)

    def find(self, client_order_id: str | None, order_id: str | None) -> TrackedOrder | None:
        if client_order_id and client_order_id in self.orders:
            return self.orders[client_order_id]
        if order_id and order_id in self._by_order_id:
            return self.orders[self._by_order_id[order_id]]
        return None

    def apply_update(self, update: OrderUpdate) -> TrackedOrder | None:
        """Fold a venue update into the tracked order; None when the order is not ours."""
        info = update.order
        tracked = self.find(info.client_order_id, info.order_id)
        if tracked is None:
            return None
        if info.order_id and tracked.order_id is None:
            tracked.order_id = info.order_id
            self._by_order_id[info.order_id] = tracked.client_order_id
        tracked.filled_size = max(tracked.filled_size, info.filled_size)
        if not tracked.status.is_final or info.status.is_final:
            tracked.status = info.status
        return tracked

    def active(self, role: OrderRole | None = None) -> list[TrackedOrder]:
        return [
            order
            for order in self.orders.values()
            if order.status.is_active or order.status is OrderStatus.UNKNOWN
            if role is None or order.role is role
        ]

    def count(self, status: OrderStatus) -> int:
        """Tracked orders in ``status`` (forgotten final orders not included)."""
        return sum(1 for order in self.orders.values() if order.status is status)
