"""The in-flight order tracker: tracked before sending, folded from updates, bounded in memory."""

from __future__ import annotations

from decimal import Decimal

from exchanges.base import OrderInfo, OrderResult, OrderSide, OrderStatus, OrderType, OrderUpdate
from helpers.order_tracker import OrderTracker
from strategies.base_strategy import OrderParams, OrderRole


def submit(tracker: OrderTracker, client_id: str, role: OrderRole = OrderRole.ENTRY) -> None:
    params = OrderParams(OrderSide.BUY, Decimal("0.01"), Decimal("100"), role=role, client_order_id=client_id)
    tracker.submitted(params)
    tracker.acknowledged(client_id, OrderResult(True, order_id=f"v{client_id}", status=OrderStatus.OPEN))


def update(client_id: str, status: OrderStatus, filled: str = "0") -> OrderUpdate:
    info = OrderInfo(
        order_id=f"v{client_id}",
        client_order_id=client_id,
        contract_id="BTC",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        size=Decimal("0.01"),
        price=Decimal("100"),
        status=status,
        filled_size=Decimal(filled),
    )
    return OrderUpdate(info)


def test_updates_find_orders_by_client_or_venue_id_and_final_states_stick() -> None:
    tracker = OrderTracker()
    submit(tracker, "1")
    tracked = tracker.apply_update(update("1", OrderStatus.FILLED, "0.01"))
    assert tracked is not None and tracked.status is OrderStatus.FILLED
    late_open = OrderUpdate(update("1", OrderStatus.OPEN).order)
    assert tracker.apply_update(late_open).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert tracker.apply_update(update("999", OrderStatus.OPEN)) is None


def test_active_by_role_includes_unknown_outcomes() -> None:
    tracker = OrderTracker()
    submit(tracker, "1", OrderRole.ENTRY)
    submit(tracker, "2", OrderRole.EXIT)
    tracker.submitted(OrderParams(OrderSide.BUY, Decimal("0.01"), Decimal("100"), client_order_id="3"))
    tracker.acknowledged("3", OrderResult(False, client_order_id="3", status=OrderStatus.UNKNOWN))
    assert [o.client_order_id for o in tracker.active(OrderRole.ENTRY)] == ["1", "3"]
    assert [o.client_order_id for o in tracker.active(OrderRole.EXIT)] == ["2"]


def test_final_orders_are_forgotten_oldest_first_but_active_ones_never() -> None:
    tracker = OrderTracker(keep_final=3)
    submit(tracker, "resting")
    for number in range(10):
        client_id = f"done{number}"
        submit(tracker, client_id)
        tracker.apply_update(update(client_id, OrderStatus.CANCELLED))
    assert tracker.submitted_count == 11
    assert "resting" in tracker.orders
    kept_final = [key for key, order in tracker.orders.items() if order.status.is_final]
    assert len(tracker.orders) <= 2 * 3 + 1 and kept_final[-1] == "done9"
    assert "done0" not in tracker.orders and tracker.find(None, "vdone0") is None
