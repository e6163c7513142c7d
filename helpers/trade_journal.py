"""The orders/fills CSV and the trader-facing console lines about them.

One CSV per bot (``<exchange>_<ticker>_<strategy>_orders.csv``), appended across restarts, so a
trader can reconcile every order and fill the bot ever made. Rows are built on the event loop but
written by a listener thread, so a slow disk never sits between a fill and its take-profit.
"""

from __future__ import annotations

import csv
import io
import logging
import logging.handlers
import queue
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from exchanges.base import Fill, OrderResult, OrderUpdate
from helpers.position_ledger import PositionLedger
from strategies.base_strategy import OrderParams

logger = logging.getLogger("trades")

CSV_COLUMNS = (
    "time",
    "event",
    "role",
    "side",
    "type",
    "quantity",
    "price",
    "order_id",
    "client_order_id",
    "status",
    "fill_size",
    "fill_price",
    "fee",
    "realized_pnl",
    "detail",
)


def orders_csv_path(log_dir: Path, bot_name: str) -> Path:
    return log_dir / f"{bot_name}_orders.csv"


class TradeJournal:
    """Writes every order event to the CSV and keeps the bot's own PnL tally."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.ledger = PositionLedger()
        self._row_buffer = io.StringIO()
        self._row_writer = csv.writer(self._row_buffer, lineterminator="")
        self._writer: logging.handlers.QueueListener | None = None
        self._rows: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            is_new = not path.exists() or path.stat().st_size == 0
            file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
            file_handler.setFormatter(logging.Formatter("%(message)s"))
            if is_new:
                file_handler.handle(logging.makeLogRecord({"msg": self._csv_line(CSV_COLUMNS)}))
            # Rows are written and flushed by a listener thread: no disk I/O on the event loop.
            self._writer = logging.handlers.QueueListener(self._rows, file_handler)
            self._writer.start()

    def _csv_line(self, values: Iterable[object]) -> str:
        self._row_buffer.seek(0)
        self._row_buffer.truncate()
        self._row_writer.writerow(values)
        return self._row_buffer.getvalue()

    def _write(self, timestamp: float, event: str, **fields: object) -> None:
        if self._writer is None:
            return
        row = {"time": datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(), "event": event}
        row.update({key: "" if value is None else str(value) for key, value in fields.items()})
        line = self._csv_line(row.get(column, "") for column in CSV_COLUMNS)
        self._rows.put(logging.makeLogRecord({"msg": line}))

    def order_placed(self, timestamp: float, params: OrderParams, result: OrderResult) -> None:
        # Console lines and CSV rows are built only when someone will read them.
        if logger.isEnabledFor(logging.INFO):
            price = params.price if params.price is not None else result.average_fill_price
            logger.info(
                "placed %s %s %s %s @ %s (%s, id %s)",
                params.role.value,
                params.side.value,
                params.order_type.value,
                params.quantity,
                price if price is not None else "market",
                result.status.value,
                result.order_id or params.client_order_id,
            )
        if self._writer is None:
            return
        self._write(
            timestamp,
            "placed",
            role=params.role.value,
            side=params.side.value,
            type=params.order_type.value,
            quantity=params.quantity,
            price=params.price,
            order_id=result.order_id,
            client_order_id=params.client_order_id,
            status=result.status.value,
        )

    def order_failed(self, timestamp: float, params: OrderParams, error: Exception) -> None:
        logger.warning(
            "order refused: %s %s %s @ %s: %s",
            params.role.value,
            params.side.value,
            params.quantity,
            params.price if params.price is not None else "market",
            error,
        )
        self._write(
            timestamp,
            "failed",
            role=params.role.value,
            side=params.side.value,
            type=params.order_type.value,
            quantity=params.quantity,
            price=params.price,
            client_order_id=params.client_order_id,
            status="rejected",
            detail=f"{type(error).__name__}: {error}",
        )

    def order_cancelled(self, timestamp: float, order_id: str, detail: str = "") -> None:
        if logger.isEnabledFor(logging.INFO):
            logger.info("cancelled order %s%s", order_id, f" ({detail})" if detail else "")
        if self._writer is None:
            return
        self._write(timestamp, "cancelled", order_id=order_id, status="cancelled", detail=detail)

    def order_update(self, timestamp: float, update: OrderUpdate, role: str) -> None:
        fill: Fill | None = update.fill
        order = update.order
        if fill is None:
            if self._writer is not None and order.status.is_final:
                self._write(
                    timestamp,
                    order.status.value,
                    role=role,
                    side=order.side.value,
                    quantity=order.size,
                    price=order.price,
                    order_id=order.order_id,
                    client_order_id=order.client_order_id,
                    status=order.status.value,
                )
            return
        realized = self.ledger.apply_fill(fill.side, fill.price, fill.size, fill.fee)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "FILL %s %s %s @ %s (fee %s)%s | position %s, realized PnL %s, fees %s",
                role,
                fill.side.value,
                fill.size,
                fill.price,
                fill.fee,
                f", realized {realized:+.4f}" if realized else "",
                self.ledger.size,
                _money(self.ledger.realized_pnl),
                _money(self.ledger.fees),
            )
        if self._writer is None:
            return
        self._write(
            timestamp,
            "fill",
            role=role,
            side=fill.side.value,
            quantity=order.size,
            price=order.price,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            status=order.status.value,
            fill_size=fill.size,
            fill_price=fill.price,
            fee=fill.fee,
            realized_pnl=realized,
        )

    def close(self) -> None:
        """Write out every queued row and close the file."""
        if self._writer is not None:
            self._writer.stop()
            for handler in self._writer.handlers:
                handler.close()
            self._writer = None


def _money(value: Decimal) -> str:
    return f"{value:.4f}"
