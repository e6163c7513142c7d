"""The backtest report's numbers on small cases checked by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backtesting.report import (
    FillRecord,
    OrderRecord,
    Sample,
    SampleLog,
    build_figure,
    max_drawdown,
    metrics_rows,
    resting_take_profits,
    save_result,
    summarize,
)
from exchanges.base import OrderSide

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def fill(time: float, side: OrderSide, price: str, size: str, fee: str, role: str, tp: bool = False):
    return FillRecord(time, f"o{time}", side, D(price), D(size), D(fee), True, role, tp)


def sample(time: float, equity: str, position: str = "0") -> Sample:
    return Sample(time, D("99"), D("101"), D(position), D(equity), D(0), D(0))


def test_a_sample_log_reads_as_the_samples_it_was_given() -> None:
    """Samples as a run records them (a time and a shared state each) read back as Sample
    objects: by index, slice and iteration, equal to the list, and the equity curve summarize
    takes its drawdown from."""
    samples = [sample(1.0, "100"), sample(2.0, "80", "0.5"), sample(3.0, "90"), sample(4.0, "70")]
    log = SampleLog(samples)
    assert len(log) == 4 and log[1] == samples[1] and log[-1] == samples[-1]
    assert log[1:3] == samples[1:3] and list(log) == samples and log == samples
    assert log == SampleLog(samples) and log != SampleLog(samples[:3])
    assert log != SampleLog([*samples[:3], sample(4.0, "71")])
    assert list(log.equities()) == [D(100), D(80), D(90), D(70)]
    shared = (D("99"), D("101"), D(0), D(95), D(0), D(0))
    log.add(5.0, shared)
    log.add(6.0, shared)
    assert [(item.time, item.equity) for item in log[4:]] == [(5.0, D(95)), (6.0, D(95))]
    result = summarize(
        spec={},
        data={},
        orders=[],
        fills=[],
        samples=log,
        start_equity=D(100),
        funding=D(0),
        final_bid=D(99),
        final_ask=D(101),
    )
    assert result.samples is log
    assert (result.metrics.max_drawdown, result.metrics.max_drawdown_pct) == (D(30), D(30))


def test_drawdown_is_peak_to_trough_absolute_and_percent() -> None:
    # 120 -> 90 is the deepest fall (30, 25 %); 130 -> 110 later is 20 (15.4 %).
    assert max_drawdown([D(100), D(120), D(90), D(130), D(110)]) == (D(30), D(25))
    assert max_drawdown([D(100), D(101), D(102)]) == (D(0), D(0))
    assert max_drawdown([]) == (D(0), D(0))
    # The percent maximum can come from a different episode than the absolute one.
    absolute, percent = max_drawdown([D(10), D(5), D(100), D(90)])
    assert (absolute, percent) == (D(10), D(50))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.decimals(min_value=-50, max_value=10_000, places=3), max_size=40))
# A deep fall under a peak at or below zero (no percent), then a shallow one under a peak above.
@example([D(-10), D(-40), D(5), D(4)])
# Samples share their state: one value object many times in a row.
@example([D(100)] + [D(80)] * 3 + [D(70)])
def test_drawdown_is_the_worst_fall_over_every_pair(equity: list[D]) -> None:
    """Against the definition, value by value: the fall from the highest value before it, and
    that fall as a percent of that peak (when above zero), each maximum over every value."""
    worst = worst_pct = D(0)
    for later, value in enumerate(equity):
        if later == 0:
            continue
        peak = max(equity[:later])
        worst = max(worst, peak - value)
        if peak > 0:
            worst_pct = max(worst_pct, (peak - value) / peak * 100)
    assert max_drawdown(equity) == (worst, worst_pct)


def test_pnl_fees_volume_and_cycles_by_hand() -> None:
    fills = [
        fill(1, BUY, "100", "1", "0.10", "entry"),
        fill(2, BUY, "110", "1", "0.11", "entry"),
        # average entry 105: selling 1 at 120 realizes 15 and completes one take-profit
        fill(3, SELL, "120", "1", "0.12", "exit", tp=True),
        # a partial take-profit fill that did not complete its order is not a cycle
        fill(4, SELL, "106", "0.5", "0.053", "exit"),
    ]
    orders = [OrderRecord(1, "placed", "o1", BUY, "limit", D("100"), D("1"))]
    samples = [sample(0, "1000"), sample(1, "1010"), sample(2, "995"), sample(3, "1012")]
    result = summarize(
        spec={},
        data={"events_applied": 42, "first_time": 0.0, "last_time": 4.0},
        orders=orders,
        fills=fills,
        samples=samples,
        start_equity=D("1000"),
        funding=D("-0.5"),
        final_bid=D("99"),
        final_ask=D("101"),
        stop_reason="end of market data",
    )
    m = result.metrics
    assert m.realized_pnl == D("15") + D("0.5")  # 15 on the first exit, 0.5 x (106 - 105) on the second
    assert m.final_position == D("0.5")
    assert m.unrealized_pnl == D("0.5") * (D("100") - D("105"))  # at the final mid 100: -2.5
    assert m.fees == D("0.383")
    assert m.volume == D("100") + D("110") + D("120") + D("53")
    assert m.net_pnl == D("15.5") - D("2.5") - D("0.383") - D("0.5")
    assert m.end_equity == D("1000") + m.net_pnl
    assert m.completed_cycles == 1
    assert (m.fills, m.entry_fills, m.exit_fills) == (4, 2, 2)
    assert m.max_abs_position == D("2")
    assert (m.max_drawdown, m.max_drawdown_pct) == (D("15"), D("15") / D("1010") * 100)
    assert m.orders_placed == 1 and m.orders_cancelled == 0
    assert m.events == 42 and m.simulated_seconds == 4.0
    names = [name for name, _ in metrics_rows(result)]
    assert names[0] == "net PnL (after fees)" and "completed take-profit cycles" in names


def test_short_position_pnl_by_hand() -> None:
    fills = [
        fill(1, SELL, "200", "2", "0", "entry"),
        fill(2, BUY, "190", "1", "0", "exit", tp=True),
    ]
    result = summarize(
        spec={},
        data={},
        orders=[],
        fills=fills,
        samples=[],
        start_equity=D("100"),
        funding=D(0),
        final_bid=D("209"),
        final_ask=D("211"),
    )
    assert result.metrics.realized_pnl == D("10")
    assert result.metrics.final_position == D("-1")
    assert result.metrics.unrealized_pnl == D("-10")  # short 1 from 200, mid 210
    assert result.metrics.net_pnl == D("0")


def test_saved_files_hold_exact_decimals(tmp_path) -> None:
    result = summarize(
        spec={"strategy": "grid"},
        data={},
        orders=[],
        fills=[fill(1, BUY, "60000.1", "0.002", "0.0024", "entry")],
        samples=[sample(1, "10000.00")],
        start_equity=D("10000"),
        funding=D(0),
        final_bid=D("60000.0"),
        final_ask=D("60000.2"),
    )
    paths = save_result(result, tmp_path)
    assert "60000.1" in paths["fills"].read_text()
    header = paths["samples"].read_text().splitlines()[0]
    assert header.startswith("utc,time,best_bid,best_ask,position,equity")
    assert '"price": "60000.1"' in paths["json"].read_text()


def _run_with_take_profits():
    def order(time: float, action: str, order_id: str, side: OrderSide, price: str, size: str = "1"):
        return OrderRecord(time, action, order_id, side, "limit", D(price), D(size))

    orders = [
        order(1, "placed", "e1", BUY, "100"),
        order(2, "placed", "t1", SELL, "101"),  # filled completely: not resting
        order(3, "placed", "e2", BUY, "99"),
        order(4, "placed", "t2", SELL, "100"),  # half filled: rests with 0.5
        order(5, "placed", "e3", BUY, "98"),
        order(6, "placed", "t3", SELL, "99"),  # rests untouched
        order(7, "placed", "t4", SELL, "102"),
        order(8, "cancelled", "t4", SELL, "102"),  # cancelled: not resting
        order(9, "placed", "e4", BUY, "97"),  # an entry still open is not a take-profit
    ]
    fills = [
        FillRecord(1.5, "e1", BUY, D("100"), D("1"), D(0), True, "entry", False),
        FillRecord(2.5, "t1", SELL, D("101"), D("1"), D(0), True, "exit", True),
        FillRecord(3.5, "e2", BUY, D("99"), D("1"), D(0), True, "entry", False),
        FillRecord(4.5, "t2", SELL, D("100"), D("0.5"), D(0), True, "exit", False),
        FillRecord(5.5, "e3", BUY, D("98"), D("1"), D(0), True, "entry", False),
    ]
    return summarize(
        spec={"ticker": "BTC"},
        data={"events_applied": 10, "first_time": 0.0, "last_time": 10.0},
        orders=orders,
        fills=fills,
        samples=[sample(t, "1000", "1") for t in range(11)],
        start_equity=D("1000"),
        funding=D(0),
        final_bid=D("99"),
        final_ask=D("101"),
    )


def test_resting_take_profits_at_the_end_come_from_the_orders() -> None:
    resting = resting_take_profits(_run_with_take_profits())
    assert [(order.order_id, order.price, order.size) for order in resting] == [
        ("t2", D("100"), D("0.5")),
        ("t3", D("99"), D("1")),
    ]


def test_chart_has_units_on_its_axes_and_draws_resting_take_profits() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.collections import LineCollection

    figure = build_figure(_run_with_take_profits(), "test")
    price_ax, equity_ax, inventory_ax = figure.axes
    assert price_ax.get_ylabel() == "price (quote currency)"
    assert equity_ax.get_ylabel() == "equity (quote currency)"
    assert inventory_ax.get_ylabel() == "position (BTC)"
    assert inventory_ax.get_xlabel() == "time (UTC)"
    (levels,) = [item for item in price_ax.collections if isinstance(item, LineCollection)]
    assert sorted(segment[0][1] for segment in levels.get_segments()) == [99.0, 100.0]
    assert "resting take-profit at the end (2)" in [text.get_text() for text in price_ax.get_legend().texts]
