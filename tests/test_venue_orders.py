"""The shared venue-side order book: cumulative reports and trades in, exact fills out.

Example-based tests pin each rule of exchanges/venue_orders.py; property-based tests (hypothesis)
throw random sequences of duplicated, reordered and late reports at it and check that sizes add
up exactly, never beyond the order, and that no fill is announced twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchanges.base import Fill, OrderSide, OrderStatus, OrderType, OrderUpdate
from exchanges.venue_orders import OrderReport, TradeReport, VenueOrders
from helpers.clock import SimulatedClock

D = Decimal
CID = "12300000000001"
SIZE = D("0.0050")
PRICE = D("2352.74")
MAKER, TAKER = D("0.0002"), D("0.001")

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def book(**kwargs: object) -> VenueOrders:
    return VenueOrders(
        lambda contract: (MAKER, TAKER),
        is_ours=lambda cid: cid.startswith("123"),
        fee_quantum=D("0.000001"),
        **kwargs,  # type: ignore[arg-type]
    )


def register(orders: VenueOrders, cid: str = CID, *, post_only: bool = True, size: Decimal = SIZE) -> None:
    orders.register(
        cid, "0", OrderSide.SELL, OrderType.LIMIT, size, PRICE, post_only=post_only, timestamp=1.0
    )


def report(
    filled: str | Decimal = "0",
    quote: str | Decimal | None = None,
    status: OrderStatus | None = None,
    *,
    cid: str = CID,
    size: Decimal = SIZE,
    timestamp: float = 2.0,
    **extra: object,
) -> OrderReport:
    filled = D(filled)
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if 0 < filled < size else OrderStatus.OPEN
        status = OrderStatus.FILLED if filled == size else status
    return OrderReport(
        client_order_id=cid,
        order_id="v" + cid,
        contract_id="0",
        side=OrderSide.SELL,
        order_type=OrderType.LIMIT,
        size=size,
        price=PRICE,
        status=status,
        venue_status=status.value,
        filled_size=filled,
        filled_quote=D(quote) if quote is not None else PRICE * filled,
        timestamp=timestamp,
        **extra,  # type: ignore[arg-type]
    )


def trade(
    trade_id: str, size: str, price: str = "2352.74", fee: str | None = "0.01", **extra: object
) -> TradeReport:
    fields: dict[str, object] = {"client_order_id": CID, "order_id": None, "timestamp": 3.0, **extra}
    return TradeReport(
        trade_id=trade_id,
        size=D(size),
        price=D(price),
        fee=D(fee) if fee is not None else None,
        **fields,  # type: ignore[arg-type]
    )


def fills(updates: list[OrderUpdate | None]) -> list[Fill]:
    return [u.fill for u in updates if u is not None and u.fill is not None]


# -- cumulative order reports ------------------------------------------------------------------


def test_partial_then_full_fill_with_duplicates_and_reordering() -> None:
    orders = book()
    register(orders)
    updates = [
        orders.apply(report("0")),
        orders.apply(report("0.0020", "4.705480")),
        orders.apply(report("0.0020", "4.705480")),
        orders.apply(report("0")),
        orders.apply(report("0.0050", "11.768", OrderStatus.FILLED)),
        orders.apply(report("0.0020", "4.705480")),
    ]
    assert updates[0] is not None and updates[0].fill is None and updates[0].order.status is OrderStatus.OPEN
    assert updates[2] is None and updates[3] is None and updates[5] is None
    first, second = fills(updates)
    assert (first.size, first.price, first.fee, first.is_maker) == (D("0.0020"), PRICE, D("0.000941"), True)
    assert first.fee_estimated
    assert (second.size, second.price) == (D("0.0030"), (D("11.768") - D("4.705480")) / D("0.0030"))
    assert updates[4] is not None and updates[4].order.status is OrderStatus.FILLED
    assert updates[4].order.filled_size == SIZE and updates[4].order.remaining_size == 0
    assert first.trade_id != second.trade_id and first.order_id == "v" + CID


def test_average_fill_price_reports_give_the_price_of_each_increment() -> None:
    orders = book()
    register(orders)
    first = orders.apply(dataclasses.replace(report("0.002"), filled_quote=None, average_fill_price=D("100")))
    assert first is not None and first.fill is not None and first.fill.price == D("100")
    later = orders.apply(
        dataclasses.replace(report("0.005"), filled_quote=None, average_fill_price=D("100.6"))
    )
    assert later is not None and later.fill is not None
    assert (later.fill.size, later.fill.price) == (D("0.003"), D("101"))
    assert later.order.average_fill_price == D("100.6")


def test_cumulative_fee_from_the_venue_is_exact_not_estimated() -> None:
    orders = book()
    register(orders)
    a = orders.apply(report("0.002", filled_fee=D("0.0005")))
    b = orders.apply(report("0.005", filled_fee=D("0.0012")))
    assert a is not None and a.fill is not None and (a.fill.fee, a.fill.fee_estimated) == (D("0.0005"), False)
    assert b is not None and b.fill is not None and (b.fill.fee, b.fill.fee_estimated) == (D("0.0007"), False)


def test_taker_fill_of_an_order_never_seen_resting_is_estimated_at_the_taker_rate() -> None:
    orders = book()
    register(orders, post_only=False)
    update = orders.apply(report("0.005"))
    assert update is not None and update.fill is not None
    assert not update.fill.is_maker and update.fill.fee == (PRICE * SIZE * TAKER).quantize(D("0.000001"))


def test_a_report_with_a_smaller_cumulative_size_is_older_and_changes_nothing() -> None:
    orders = book()
    register(orders)
    orders.apply(report("0.002"))
    assert orders.apply(report("0.001", status=OrderStatus.CANCELLED)) is None
    order = orders.get(CID)
    assert order is not None and order.status is OrderStatus.PARTIALLY_FILLED and order.filled == D("0.002")


def test_final_state_is_sticky() -> None:
    orders = book()
    register(orders)
    assert orders.apply(report("0", status=OrderStatus.CANCELLED)) is not None
    assert orders.apply(report("0", status=OrderStatus.OPEN)) is None
    assert orders.apply(report("0", status=OrderStatus.PENDING)) is None
    order = orders.get(CID)
    assert order is not None and order.status is OrderStatus.CANCELLED


def test_a_late_fill_after_cancel_is_applied_and_the_order_stays_cancelled() -> None:
    orders = book()
    register(orders)
    orders.apply(report("0"))
    orders.apply(report("0", status=OrderStatus.CANCELLED))
    late = orders.apply(report("0.002", status=OrderStatus.PARTIALLY_FILLED))
    assert late is not None and late.fill is not None and late.fill.size == D("0.002")
    assert late.order.status is OrderStatus.CANCELLED and late.order.filled_size == D("0.002")


def test_a_fill_completing_a_cancelled_order_makes_it_filled() -> None:
    orders = book()
    register(orders)
    orders.apply(report("0", status=OrderStatus.CANCELLED))
    won = orders.apply(report("0.005", status=OrderStatus.FILLED))
    assert won is not None and won.fill is not None and won.order.status is OrderStatus.FILLED


def test_order_first_seen_after_a_restart_is_a_baseline_with_its_cumulative_fill() -> None:
    orders = book()
    first = orders.apply(report("0.0020"))
    assert first is not None and first.fill is None
    assert first.order.filled_size == D("0.0020") and first.order.average_fill_price == PRICE
    order = orders.get(CID)
    assert order is not None and not order.registered
    later = orders.apply(report("0.0030"))
    assert later is not None and later.fill is not None and later.fill.size == D("0.0010")


def test_orders_without_our_prefix_are_ignored() -> None:
    orders = book()
    assert orders.apply(report("0.002", cid="99900000000001")) is None
    assert orders.get("99900000000001") is None


def test_lookup_by_client_id_or_venue_order_id() -> None:
    orders = book()
    register(orders)
    orders.apply(report("0"))
    assert orders.get("v" + CID) is orders.get(CID) is not None
    with pytest.raises(ValueError, match="already tracked"):
        register(orders)


def test_overfill_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    orders = book()
    register(orders)
    orders.apply(report("0.002"))
    with caplog.at_level(logging.WARNING):
        assert orders.apply(report("0.006", status=OrderStatus.FILLED)) is None
        assert orders.apply(report("0.006", size=D("0.006"))) is None  # disagrees with the size we sent
        assert orders.apply(report("0.009", cid="12300000000009")) is None  # baseline, overfilled
    assert orders.refused == 3 and "malformed report" in caplog.text
    order = orders.get(CID)
    assert order is not None and order.filled == D("0.002") and orders.get("12300000000009") is None


def test_status_never_goes_backwards() -> None:
    orders = book()
    register(orders)
    orders.apply(report("0.002"))
    assert orders.apply(report("0.002", status=OrderStatus.OPEN)) is None  # still partly filled
    assert orders.apply(report("0.002", status=OrderStatus.PENDING)) is None
    assert orders.apply(report("0.002", status=OrderStatus.UNKNOWN)) is None
    assert orders.get(CID).status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]


def test_send_failure_marks_unknown_or_rejected_and_reports_still_win() -> None:
    orders = book()
    register(orders)
    order = orders.get(CID)
    assert order is not None
    orders.send_failed(order, ambiguous=True)
    assert order.status is OrderStatus.UNKNOWN and order.event.is_set()
    assert orders.apply(report("0")) is not None and order.status is OrderStatus.OPEN
    register(orders, "12300000000002")
    other = orders.get("12300000000002")
    assert other is not None
    orders.send_failed(other, ambiguous=False)
    assert other.status is OrderStatus.REJECTED


def test_memory_is_bounded_and_only_finished_orders_are_forgotten() -> None:
    orders = book(keep_final=10)
    for n in range(200):
        cid = f"123{n:011d}"
        register(orders, cid)
        orders.apply(report("0", cid=cid, status=OrderStatus.OPEN if n % 50 == 0 else OrderStatus.CANCELLED))
    assert len(orders) <= 10 + 4 + 10
    assert all(orders.get(f"123{n:011d}") is not None for n in range(0, 200, 50))
    assert orders.get(f"123{199:011d}") is not None and orders.get(f"123{1:011d}") is None
    assert orders.get("v12300000000001") is None


# -- trade reports ---------------------------------------------------------------------------


def test_trades_are_deduplicated_by_id_and_carry_exact_fees() -> None:
    orders = book()
    register(orders)
    a = orders.apply_trade(trade("t1", "0.002", fee="0.0007", is_maker=True, order_id="v" + CID))
    assert orders.apply_trade(trade("t1", "0.002", fee="0.0007")) is None
    assert a is not None and a.fill is not None
    assert (a.fill.size, a.fill.fee, a.fill.fee_estimated, a.fill.trade_id) == (
        D("0.002"),
        D("0.0007"),
        False,
        "t1",
    )
    assert a.order.status is OrderStatus.PARTIALLY_FILLED and a.order.order_id == "v" + CID
    b = orders.apply_trade(trade("t2", "0.003", price="2353", fee=None, is_maker=False))
    assert b is not None and b.fill is not None and b.fill.fee_estimated and not b.fill.is_maker
    assert b.order.status is OrderStatus.FILLED
    assert b.order.average_fill_price == (D("0.002") * PRICE + D("0.003") * D("2353")) / SIZE


def test_a_cumulative_report_after_its_trades_adds_nothing() -> None:
    orders = book()
    register(orders)
    orders.apply_trade(trade("t1", "0.002"))
    orders.apply_trade(trade("t2", "0.001"))
    covered = orders.apply(report("0.003"))
    assert covered is None or covered.fill is None
    assert orders.get(CID).filled == D("0.003")  # type: ignore[union-attr]


def test_trades_after_a_cumulative_report_add_only_what_it_did_not_cover() -> None:
    orders = book()
    register(orders)
    announced = orders.apply(report("0.003"))
    assert announced is not None and announced.fill is not None and announced.fill.fee_estimated
    estimate = announced.fill.fee
    covered = orders.apply_trade(trade("t1", "0.002", fee="0.002"))
    # Nothing new is filled; the trade's exact fee replaces the estimate for its size, pro rata.
    assert covered is not None and covered.fill is None and covered.fee_correction is not None
    assert (covered.fee_correction.size, covered.fee_correction.fee) == (D("0.002"), D("0.002"))
    assert covered.fee_correction.replaces == (estimate * 2 / 3).quantize(D("0.000001"))
    partly = orders.apply_trade(trade("t2", "0.002", fee="0.002"))  # trades now 0.004, cumulative 0.003
    assert partly is not None and partly.fill is not None and partly.fee_correction is not None
    assert (partly.fill.size, partly.fill.fee, partly.fill.fee_estimated) == (D("0.001"), D("0.001"), False)
    assert partly.fee_correction.size == D("0.001")  # the rest of what the report announced
    assert orders.apply(report("0.004")) is None
    order = orders.get(CID)
    assert order is not None and order.filled == D("0.004")
    assert order.fees == D("0.004") and order.estimated_size == 0  # every fee now the venue's


def test_trades_of_untracked_orders_and_overfilling_trades_are_dropped() -> None:
    orders = book()
    assert orders.apply_trade(trade("t0", "0.001")) is None
    register(orders)
    assert orders.apply_trade(trade("t1", "0.006")) is None
    assert orders.refused == 1 and orders.get(CID).filled == 0  # type: ignore[union-attr]


def test_a_baseline_orders_old_trades_are_covered_and_its_new_trades_are_fills() -> None:
    orders = book()
    orders.apply(report("0.003", timestamp=10.0))  # first seen after a restart
    assert orders.apply_trade(dataclasses.replace(trade("t1", "0.002"), timestamp=9.0)) is None
    assert orders.apply_trade(dataclasses.replace(trade("t2", "0.001"), timestamp=10.0)) is None
    new = orders.apply_trade(dataclasses.replace(trade("t3", "0.001", fee="0.0004"), timestamp=11.0))
    assert new is not None and new.fill is not None
    assert (new.fill.size, new.fill.fee, new.fill.fee_estimated) == (D("0.001"), D("0.0004"), False)
    assert orders.apply(report("0.004", timestamp=11.0)) is None
    assert orders.get(CID).filled == D("0.004")  # type: ignore[union-attr]


def test_a_trade_found_by_venue_order_id() -> None:
    orders = book()
    register(orders)
    orders.apply(report("0"))
    update = orders.apply_trade(
        dataclasses.replace(trade("t1", "0.001"), client_order_id=None, order_id="v" + CID)
    )
    assert update is not None and update.fill is not None and update.fill.client_order_id == CID


# -- waiting ---------------------------------------------------------------------------------


async def test_wait_returns_when_the_awaited_state_arrives_or_times_out_on_the_clock() -> None:
    clock = SimulatedClock(100.0)
    orders = book()
    register(orders)
    order = orders.get(CID)
    assert order is not None

    def acknowledged(o: object) -> bool:
        return order.status is not OrderStatus.PENDING

    waiter = asyncio.ensure_future(orders.wait(order, acknowledged, 5.0, clock))
    await asyncio.sleep(0)
    assert not waiter.done()
    orders.apply(report("0"))
    assert await waiter is True

    register(orders, "12300000000002")
    silent = orders.get("12300000000002")
    assert silent is not None
    timed = asyncio.ensure_future(orders.wait(silent, lambda o: o.status.is_final, 5.0, clock))
    await asyncio.sleep(0)
    clock.advance_to(104.0)
    await asyncio.sleep(0)
    assert not timed.done()
    clock.advance_to(105.0)
    assert await timed is False


# -- properties ------------------------------------------------------------------------------

STEP = D("0.001")


@st.composite
def cumulative_histories(draw: st.DrawFn) -> tuple[int, list[OrderReport], bool]:
    """An order of ``steps`` size steps, the venue's true report history (cumulative fills rising,
    perhaps a cancel in between) delivered duplicated, reordered and with late reports."""
    steps = draw(st.integers(1, 12))
    size = STEP * steps
    levels = sorted(draw(st.lists(st.integers(0, steps), min_size=1, max_size=8)))
    cancel_at = draw(st.none() | st.integers(0, len(levels) - 1))
    history: list[OrderReport] = []
    for n, level in enumerate(levels):
        filled = STEP * level
        cancelled = cancel_at is not None and n >= cancel_at and level < steps
        status = OrderStatus.CANCELLED if cancelled else None
        # every increment at its own price
        quote = sum((PRICE + k) * STEP * (levels[k] - (levels[k - 1] if k else 0)) for k in range(n + 1))
        history.append(report(filled, quote, status, size=size, timestamp=float(n)))
    delivered = draw(st.lists(st.sampled_from(history), min_size=1, max_size=20))
    registered = draw(st.booleans())
    return steps, delivered, registered


@PROPERTY
@given(cumulative_histories())
def test_property_fills_add_up_to_the_largest_cumulative_size_seen(
    case: tuple[int, list[OrderReport], bool],
) -> None:
    steps, delivered, registered = case
    size = STEP * steps
    orders = book()
    if registered:
        register(orders, size=size)
    updates = [orders.apply(r) for r in delivered]
    emitted = fills(updates)
    baseline = D(0) if registered else delivered[0].filled_size
    assert sum((f.size for f in emitted), D(0)) == max(r.filled_size for r in delivered) - baseline
    assert sum((f.size for f in emitted), D(0)) <= size
    assert all(f.size > 0 for f in emitted)
    assert len({f.trade_id for f in emitted}) == len(emitted)
    latest_quote = max(delivered, key=lambda r: r.filled_size).filled_quote
    expected_quote = latest_quote - (0 if registered else delivered[0].filled_quote)  # type: ignore[operator]
    assert abs(sum((f.price * f.size for f in emitted), D(0)) - expected_quote) < D("1e-18")
    order = orders.get(CID)
    assert order is not None and order.filled == max(r.filled_size for r in delivered)
    if any(r.status is OrderStatus.CANCELLED for r in delivered) and order.filled < size:
        assert order.status is OrderStatus.CANCELLED


@st.composite
def mixed_histories(draw: st.DrawFn) -> tuple[int, list[OrderReport | TradeReport]]:
    """Trades of one order plus cumulative order reports at their running totals, interleaved at
    random, duplicated, some lost, with an occasional overfilling report thrown in."""
    steps = draw(st.integers(1, 12))
    size = STEP * steps
    trade_steps: list[int] = []
    left = steps
    while left and draw(st.booleans()):
        n = draw(st.integers(1, left))
        trade_steps.append(n)
        left -= n
    trades = [
        TradeReport(f"t{n}", CID, None, STEP * k, PRICE + n, D("0.0001") * k, True, float(n))
        for n, k in enumerate(trade_steps)
    ]
    running = [sum(trade_steps[: n + 1]) for n in range(len(trade_steps))]
    reports = [report(STEP * r, None, size=size) for r in running]
    events: list[OrderReport | TradeReport] = [*trades, *reports]
    if draw(st.booleans()):
        events.append(report(size + STEP, None, size=size + STEP))  # overfill against our size
    delivered = draw(st.lists(st.sampled_from(events), max_size=30)) if events else []
    return steps, delivered


@PROPERTY
@given(mixed_histories())
def test_property_trades_and_cumulative_reports_never_double_count(
    case: tuple[int, list[OrderReport | TradeReport]],
) -> None:
    steps, delivered = case
    size = STEP * steps
    orders = book()
    register(orders, size=size)
    updates = [orders.apply_trade(e) if isinstance(e, TradeReport) else orders.apply(e) for e in delivered]
    emitted = fills(updates)
    seen_trades = {e.trade_id: e.size for e in delivered if isinstance(e, TradeReport)}
    cumulative = [e.filled_size for e in delivered if isinstance(e, OrderReport) and e.filled_size <= size]
    expected = max(sum(seen_trades.values(), D(0)), max(cumulative, default=D(0)))
    assert sum((f.size for f in emitted), D(0)) == expected <= size
    assert all(f.size > 0 for f in emitted)
    assert len({f.trade_id for f in emitted}) == len(emitted)
    exact = [f for f in emitted if not f.fee_estimated]
    assert all(f.trade_id in seen_trades for f in exact)
