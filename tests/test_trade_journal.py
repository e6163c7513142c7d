"""The orders CSV: one header, rows appended across restarts, every row on disk after close."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from exchanges.base import OrderResult, OrderSide, OrderStatus
from helpers.trade_journal import CSV_COLUMNS, TradeJournal
from strategies.base_strategy import OrderParams, OrderRole


def place(journal: TradeJournal, client_id: str) -> None:
    params = OrderParams(OrderSide.BUY, Decimal("0.002"), Decimal("60000.0"), role=OrderRole.ENTRY)
    params.client_order_id = client_id
    journal.order_placed(
        1_700_000_000.0, params, OrderResult(True, order_id=f"v{client_id}", status=OrderStatus.OPEN)
    )


def test_rows_append_across_restarts_under_one_header(tmp_path: Path) -> None:
    path = tmp_path / "paper_BTC_grid_orders.csv"
    first = TradeJournal(path)
    place(first, "1")
    first.order_failed(
        1_700_000_001.0, OrderParams(OrderSide.BUY, Decimal("0.002"), Decimal("1")), ValueError("x, y")
    )
    first.close()
    second = TradeJournal(path)
    place(second, "2")
    second.close()

    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(CSV_COLUMNS)
    assert [row[1] for row in rows[1:]] == ["placed", "failed", "placed"]
    assert rows[2][CSV_COLUMNS.index("detail")] == "ValueError: x, y"  # a comma stays inside its field
    assert [row[CSV_COLUMNS.index("order_id")] for row in rows[1:]] == ["v1", "", "v2"]


def test_no_file_means_no_rows_but_the_ledger_still_counts(tmp_path: Path) -> None:
    journal = TradeJournal(None)
    place(journal, "1")
    journal.close()
    assert list(tmp_path.iterdir()) == []
