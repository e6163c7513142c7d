"""The durable journal: one SQLite file per bot identity, written before the bot acts.

Every intent (before the request leaves), venue acknowledgement, fill, cancel and the link from
each filled lot to the exit that covers it is committed here first, so a process killed at any
moment restarts knowing exactly which orders it may have on the venue and which fills still need
an exit. The orders CSV is derived from the same writes (one row per event). The risk baseline
(start equity, high-water mark) lives here too, so a restart does not re-arm the loss limits.

Durability: WAL mode with ``synchronous=NORMAL``. A commit is in the WAL file (the OS page cache)
before ``commit()`` returns, so it survives the process being killed (SIGKILL, a crash, the OOM
killer); only a power loss can take the last few commits. The WAL is checkpointed by a thread of
its own (:mod:`execution.wal_checkpointer`), never inside a commit. A commit costs tens of
microseconds, and it must finish before the order it records is sent, so it runs on the event
loop's thread: handing it to another thread would add a hop to the reaction path without freeing
the loop.
Backtests use SQLite's private temporary database (no sync, deleted on close, memory bounded).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import logging
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from exchanges.base import OrderSide, OrderStatus, OrderType
from execution.records import FillRecord, Lot, OrderRecord
from execution.wal_checkpointer import WalCheckpointer
from helpers.log_setup import wait_while_output_paused
from helpers.position_ledger import PositionLedger
from strategies.base_strategy import OrderRole

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    role TEXT NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL,
    quantity TEXT NOT NULL, price TEXT, contract_id TEXT NOT NULL,
    reduce_only INTEGER NOT NULL, post_only INTEGER NOT NULL,
    status TEXT NOT NULL, venue_order_id TEXT,
    filled_size TEXT NOT NULL, filled_quote TEXT NOT NULL, fees TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    covers TEXT NOT NULL, grp TEXT NOT NULL, error TEXT NOT NULL, cancel_reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (status);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL, role TEXT NOT NULL, side TEXT NOT NULL,
    price TEXT NOT NULL, size TEXT NOT NULL, fee TEXT NOT NULL, ts REAL NOT NULL,
    is_maker INTEGER NOT NULL, fee_estimated INTEGER NOT NULL, inferred INTEGER NOT NULL,
    realized_pnl TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lots (
    lot_id TEXT PRIMARY KEY, grp TEXT NOT NULL, side TEXT NOT NULL,
    size TEXT NOT NULL, price TEXT NOT NULL, created_at REAL NOT NULL,
    covered_by TEXT, refused_price TEXT, closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS fills_order ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS lots_open ON lots (closed);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
    client_order_id TEXT, detail TEXT NOT NULL
);
"""

_FINAL = tuple(status.value for status in OrderStatus if status.is_final)

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
#: How long a row may wait on the loop before its batch goes to the CSV writer thread: long
#: enough that a fill's take-profit has left before any formatting, short enough to tail.
CSV_HANDOVER_SECONDS = 0.05


def journal_path(log_dir: Path, bot_name: str) -> Path:
    return log_dir / f"{bot_name}_journal.sqlite3"


def orders_csv_path(log_dir: Path, bot_name: str) -> Path:
    return log_dir / f"{bot_name}_orders.csv"


def prefix_owner(log_dir: Path, prefix: str, bot_name: str) -> str | None:
    """The name of another bot in ``log_dir`` whose journal uses ``prefix`` for its order ids.

    Ids are told apart by a 3-digit prefix derived from the bot's name; two names can map to
    the same prefix, and two such bots on one account would adopt each other's orders.
    """
    own = journal_path(log_dir, bot_name)
    for path in sorted(log_dir.glob("*_journal.sqlite3")) if log_dir.is_dir() else []:
        if path == own:
            continue
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                rows = dict(
                    db.execute("SELECT key, value FROM meta WHERE key IN ('bot_name', 'client_id_prefix')")
                )
            finally:
                db.close()
        except sqlite3.Error:
            continue
        if rows.get("client_id_prefix") == prefix and rows.get("bot_name", bot_name) != bot_name:
            return rows.get("bot_name")
    return None


LEDGER_FIELDS = ("size", "entry_price", "realized_pnl", "fees", "volume", "fill_count")


def ledger_fields(text: str | None) -> dict[str, str]:
    """The journal's ledger row (meta key ``ledger``) as field name -> text; {} if absent."""
    if not text:
        return {}
    values = text.split()
    if len(values) != len(LEDGER_FIELDS):
        raise ValueError("the journal's ledger row has the wrong number of fields")
    return dict(zip(LEDGER_FIELDS, values, strict=True))


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class OrdersCsv:
    """The trader's spreadsheet view of the journal: one row per order event, appended.

    The event loop only appends the row's raw values to a list: a fill and its take-profit are
    never held up by formatting or a disk. ``CSV_HANDOVER_SECONDS`` after the first row of a
    batch, the batch goes to a writer thread that formats and appends it (the journal commit
    already made each event durable; the CSV is a view), row by row, waiting while a reaction
    holds background output off (``helpers.reaction_hold``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if self._file.tell() == 0:
            self._writer.writerow(CSV_COLUMNS)
            self._file.flush()
        self._pending: list[tuple[object, ...]] = []
        self._batches: queue.SimpleQueue[list[tuple[object, ...]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._write_batches, name="orders-csv", daemon=True
        )
        self._thread.start()

    def write(
        self,
        timestamp: float,
        event: str,
        order: OrderRecord,
        status: OrderStatus,
        venue_order_id: str | None,
        fields: dict[str, object],
    ) -> None:
        """One row; ``status`` and ``venue_order_id`` as they were at the event (a queued
        journal call writes its row later, when the order may have moved on)."""
        self._pending.append(
            (
                timestamp,
                event,
                order.role.value,
                order.side.value,
                order.order_type.value,
                order.quantity,
                order.price,
                venue_order_id,
                order.client_order_id,
                status.value,
                fields,
            )
        )
        if len(self._pending) > 1:
            return  # a handover is already due
        try:
            asyncio.get_running_loop().call_later(CSV_HANDOVER_SECONDS, self._hand_over)
        except RuntimeError:  # no event loop (a tool, a test): hand over at once
            self._hand_over()

    def _hand_over(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._batches.put(batch)

    def _write_batches(self) -> None:
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            for row in batch:
                wait_while_output_paused()  # a reaction has the GIL to itself meanwhile
                self._writer.writerow(self._format(row))
            self._file.flush()

    @staticmethod
    def _format(row: tuple[object, ...]) -> list[object]:
        timestamp, *named, fields = row
        values: dict[str, object] = dict(zip(CSV_COLUMNS[1:10], named, strict=True))
        values["time"] = datetime.fromtimestamp(float(timestamp), tz=timezone.utc).isoformat()  # type: ignore[arg-type]
        values.update(fields)  # type: ignore[call-overload]
        return ["" if values.get(column) is None else values.get(column, "") for column in CSV_COLUMNS]

    def close(self) -> None:
        """Write everything still waiting, then stop the writer thread."""
        if self._thread is None:
            return
        self._hand_over()
        self._batches.put(None)
        self._thread.join()
        self._thread = None
        self._file.close()


class JournalWriteError(RuntimeError):
    """The journal could not write what was queued (disk full, I/O error). The writes stay
    queued for the next flush; a request that was waiting for them must not be sent."""


class _Transaction:
    """``with journal.atomic():`` - BEGIN at the outermost entry, COMMIT (or ROLLBACK) at its exit.

    Inside ``journal.deferred()`` the writes are not executed but queued, and the queue runs as
    one transaction at the next :meth:`flush`: the execution layer defers a fill's and its
    take-profit's writes and the venue client flushes them while the order is being signed,
    right before it sends (see :meth:`ExecutionJournal.deferred`). A block that raises drops
    what it queued, as a rollback would. Whole journal calls are queued too (:meth:`call`):
    the flush makes them, with nothing deferred, inside its transaction, and the orders-CSV
    rows they make are written once it has committed.

    An in-memory journal (backtests) writes behind: every statement is queued, and the queue
    runs as one transaction when something reads, when it holds :data:`WRITE_BEHIND_LIMIT`
    statements, or at close. Its upserts that build their row from an object's current state
    name the row (``key``), and the flush runs one of those per row, where the first stood, with
    the last one's arguments: the others would write the same row again. Nothing but the
    journal's own reads sees its tables, and they flush first.

    A plain class rather than a generator-based context manager: the journal opens one for
    every write, and this costs a third as much.
    """

    __slots__ = (
        "_behind",
        "_db",
        "_deferring",
        "_depth",
        "_durable",
        "_fills_mark",
        "_mark",
        "after_commit",
        "flushing",
        "pending",
        "pending_fills",
        "write_error",
    )

    def __init__(self, db: sqlite3.Connection, durable: bool) -> None:
        self._db = db
        self._depth = 0
        #: An in-memory journal (backtests) dies with the process anyway: no commit per block.
        self._durable = durable
        #: It writes behind instead (see the class doc).
        self._behind = not durable
        self._deferring = 0
        self._mark = 0
        self._fills_mark = 0
        #: Statements with their arguments and the row they upsert (or None), and whole calls
        #: (``None`` in place of the SQL).
        self.pending: list[tuple[str | None, tuple[object, ...] | Callable[[], object], object]] = []
        #: Fill ids among the queued writes (a duplicate must be known before the flush); a
        #: handful at most, so a list, which a failed block can cut back like the queue.
        self.pending_fills: list[str] = []
        #: The last flush's failure, None once one succeeds (the bot stops on it).
        self.write_error: JournalWriteError | None = None
        #: True while a flush makes queued calls; what they must do only once the flush has
        #: committed (append CSV rows) waits in ``after_commit``.
        self.flushing = False
        self.after_commit: list[Callable[[], None]] = []

    @property
    def queueing(self) -> bool:
        return self._deferring > 0 or self._behind

    def __enter__(self) -> None:
        if self._depth == 0:
            if self._deferring:
                self._mark = len(self.pending)
                self._fills_mark = len(self.pending_fills)
            elif self._durable:
                self.flush()
                self._db.execute("BEGIN")
        self._depth += 1

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            if self._deferring:
                if kind is not None:
                    del self.pending[self._mark :]
                    del self.pending_fills[self._fills_mark :]
            elif self._durable:
                self._db.execute("COMMIT" if kind is None else "ROLLBACK")

    def write(
        self,
        sql: str,
        args: tuple[object, ...] | Callable[[], tuple[object, ...]],
        key: object = None,
    ) -> None:
        """Run (or queue) one statement. ``args`` may be a function that builds them: only for
        rows of immutable values or of an object's current state (an upsert), where building
        them at the flush writes the same or a later state. A queued write then costs the
        reaction nothing: the flush runs while the order is signed. ``key``: the row such an
        upsert writes (its primary key), so a writing-behind flush runs it once (see the class)."""
        if self._deferring:
            self.pending.append((sql, args, None))
        elif self._behind and not self.flushing:
            self.pending.append((sql, args, key))
            if len(self.pending) >= WRITE_BEHIND_LIMIT:
                self.flush()  # inside a block too: writing behind, blocks are not transactions
        else:
            self._db.execute(sql, args() if callable(args) else args)

    def call(self, call: Callable[[], object]) -> None:
        """Make a whole journal call now, or queue it while queueing: its statements, and the
        work of building them, then move into the flush, which runs beside the signature."""
        if self._deferring:
            self.pending.append((None, call, None))
        else:
            call()

    def defer(self, on: bool) -> None:
        self._deferring += 1 if on else -1

    def flush(self) -> None:
        """Run the queued writes as one transaction (nothing to do when none wait)."""
        if not self.pending:
            return
        fills = self.pending_fills
        if self._depth and self._deferring:
            # A read inside a queueing block: the block's own writes stay queued, all or none.
            pending, self.pending = self.pending[: self._mark], self.pending[self._mark :]
            fills, self.pending_fills = fills[: self._fills_mark], fills[self._fills_mark :]
        else:
            pending, self.pending = self.pending, []
            self.pending_fills = []
        self._mark = self._fills_mark = 0
        if not pending:
            return
        db = self._db
        # Queued calls run as plain writes of this transaction: not queued again, and their
        # own atomic() blocks join it.
        deferring, self._deferring = self._deferring, 0
        self._depth += 1
        self.flushing = True
        try:
            if self._behind:
                pending = _coalesced(pending)
            db.execute("BEGIN")
            for sql, args, _key in pending:
                if sql is None:
                    args()
                else:
                    db.execute(sql, args() if callable(args) else args)  # type: ignore[arg-type]
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.pending[:0] = pending
            self.pending_fills[:0] = fills
            if not isinstance(exc, Exception):
                raise
            self.write_error = JournalWriteError(f"the journal could not write: {exc}")
            raise self.write_error from exc
        finally:
            self._deferring = deferring
            self._depth -= 1
            self.flushing = False
            committed, self.after_commit = self.after_commit, []
        self.write_error = None
        for call in committed:
            call()


#: Statements an in-memory journal queues before it writes them (memory stays flat in a long
#: backtest: each holds the objects its row is built from).
WRITE_BEHIND_LIMIT = 1024


def _coalesced(pending: list[tuple[str | None, Any, object]]) -> list[tuple[str | None, Any, object]]:
    """``pending`` with one upsert per keyed row: where the row's first upsert stood (so rows
    are inserted in the order the writes came), with its last upsert's arguments."""
    kept: list[tuple[str | None, Any, object]] = []
    where: dict[tuple[str, object], int] = {}
    for entry in pending:
        sql, _args, key = entry
        if key is not None and sql is not None:
            index = where.get((sql, key))
            if index is not None:
                kept[index] = entry
                continue
            where[(sql, key)] = len(kept)
        kept.append(entry)
    return kept


class _Deferred:
    """``with journal.deferred():`` - see :meth:`ExecutionJournal.deferred`."""

    __slots__ = ("_transaction",)

    def __init__(self, transaction: _Transaction) -> None:
        self._transaction = transaction

    def __enter__(self) -> None:
        self._transaction.defer(True)

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._transaction.defer(False)


class _NoDeferral:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        return None


_NOT_DEFERRED = _NoDeferral()


_empty_scratch: sqlite3.Connection | None = None
_empty_scratch_lock = threading.Lock()


def _scratch_database() -> sqlite3.Connection:
    """SQLite's private temporary database with the journal's tables, for a journal without a
    file (a backtest's): pages beyond its small cache spill to a file deleted on close, so a
    long backtest's journal does not grow the process's memory. The tables are copied page by
    page from an empty database made once per process: creating them costs about 0.8 ms, the
    copy about 0.2, and a backtest opens a journal per run."""
    global _empty_scratch
    database = sqlite3.connect("", isolation_level=None)
    with _empty_scratch_lock:
        if _empty_scratch is None:
            empty = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            empty.executescript(_SCHEMA)
            _empty_scratch = empty
        _empty_scratch.backup(database)
    database.execute("PRAGMA journal_mode=OFF")
    database.execute("PRAGMA synchronous=OFF")
    return database


class ExecutionJournal:
    """SQLite store of orders, fills, lots, events and a few key/value facts."""

    def __init__(self, path: Path | None, csv_path: Path | None = None) -> None:
        self.path = path
        if path is None:
            self._db = _scratch_database()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are the checkpointer thread's, never a commit's (see its module).
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.executescript(_SCHEMA)
        self._transaction = _Transaction(self._db, durable=path is not None)
        self._flush_scheduled = False
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise ValueError(f"journal {path} has schema version {version}, expected {SCHEMA_VERSION}")
        self.csv = OrdersCsv(csv_path) if csv_path is not None else None
        self.checkpointer: WalCheckpointer | None = None
        if path is not None:
            self.checkpointer = WalCheckpointer(path)
            weakref.finalize(self, self.checkpointer.stop, False)

    # -- transactions ----------------------------------------------------------------------

    def atomic(self) -> _Transaction:
        """Group writes into one commit; nested uses join the outer one."""
        return self._transaction

    def deferred(self) -> _Deferred:
        """Queue the writes of the block instead of running them, until :meth:`flush`.

        For the reaction path: a fill's writes and its take-profit's intent become one
        transaction that the venue client runs while it signs the order and before it sends it
        (``BaseExchangeClient.send_gate``), instead of two commits ahead of the signature.
        Reads flush first, so nothing reads around the queue; :meth:`flush_soon` makes sure a
        queue nobody flushes is written within the loop's next step. An in-memory journal
        (backtests) has no durability to buy this way: it writes behind anyway (see
        :class:`_Transaction`), and this is the plain path.
        """
        return _Deferred(self._transaction) if self.path is not None else _NOT_DEFERRED

    def flush(self) -> None:
        """Write what :meth:`deferred` queued, as one transaction (raises if it cannot). An
        in-memory journal has no durability to wait for: it writes when read, when its queue is
        full, or at close (see :class:`_Transaction`)."""
        if self.path is not None:
            self._transaction.flush()

    def flush_soon(self) -> None:
        """Flush at the loop's next step (at once without a running loop); see :meth:`flush`."""
        if not self._transaction.pending or self._flush_scheduled or self.path is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        try:
            self.flush()
        except JournalWriteError as exc:
            # Nothing is lost yet: the writes stay queued and the next flush (every send
            # waits for one) tries again, or refuses to send.
            logger.error("%s; the writes stay queued", exc)

    def _read(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        """A query, after any queued writes (so it sees them)."""
        if self._transaction.pending:
            self._transaction.flush()
        return self._db.execute(sql, args)

    @property
    def write_error(self) -> JournalWriteError | None:
        """Why the last write failed, if it did (None once one succeeds)."""
        return self._transaction.write_error

    def close(self) -> None:
        """Write what is queued and close. A journal that cannot write loses what is queued:
        said once, loudly; the venue has the truth, and the next start reconciles with it."""
        try:
            self._transaction.flush()
        except JournalWriteError as exc:
            logger.error(
                "%s: %d queued journal writes are lost; the next start reconciles with the venue",
                exc,
                len(self._transaction.pending),
            )
            self._transaction.pending.clear()  # a flush still scheduled finds nothing to write
        if self.csv is not None:
            self.csv.close()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self._db.close()

    # -- meta --------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._read("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | Callable[[], str]) -> None:
        """Set one meta value; ``value`` may be a function giving the current state (see write)."""
        with self.atomic():
            self._transaction.write(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value) if isinstance(value, str) else lambda: (key, value()),
                key,
            )

    # -- orders ------------------------------------------------------------------------------

    def save_order(
        self, order: OrderRecord, event: str, timestamp: float, detail: str = "", **csv_fields: object
    ) -> None:
        """Upsert the order's current state and append the event that changed it (and its CSV row)."""
        self._transaction.call(
            functools.partial(
                self._save_order,
                order,
                event,
                timestamp,
                detail,
                order.status,
                order.venue_order_id,
                detail or order.error or order.cancel_reason,
                csv_fields,
            )
        )

    def _save_order(
        self,
        order: OrderRecord,
        event: str,
        timestamp: float,
        detail: str,
        status: OrderStatus,
        venue_order_id: str | None,
        csv_detail: str,
        csv_fields: dict[str, object],
    ) -> None:
        """:meth:`save_order`, with what the CSV row shows as it was when the event happened."""
        with self.atomic():
            self._transaction.write(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(client_order_id) DO UPDATE SET status = excluded.status, "
                "venue_order_id = excluded.venue_order_id, filled_size = excluded.filled_size, "
                "filled_quote = excluded.filled_quote, fees = excluded.fees, "
                "updated_at = excluded.updated_at, covers = excluded.covers, error = excluded.error, "
                "cancel_reason = excluded.cancel_reason",
                lambda: (
                    order.client_order_id,
                    order.role.value,
                    order.side.value,
                    order.order_type.value,
                    str(order.quantity),
                    None if order.price is None else str(order.price),
                    order.contract_id,
                    int(order.reduce_only),
                    int(order.post_only),
                    order.status.value,
                    order.venue_order_id,
                    str(order.filled_size),
                    str(order.filled_quote),
                    str(order.fees),
                    order.created_at,
                    order.updated_at,
                    ",".join(order.covers),
                    order.group,
                    order.error,
                    order.cancel_reason,
                ),
                order.client_order_id,
            )
            self._event(timestamp, event, order.client_order_id, detail)
        if self.csv is not None and event != "intent":
            row = functools.partial(
                self.csv.write,
                timestamp,
                event,
                order,
                status,
                venue_order_id,
                {"detail": csv_detail, **csv_fields},
            )
            if self._transaction.flushing:
                self._transaction.after_commit.append(row)
            else:
                row()

    def _event(self, timestamp: float, kind: str, client_order_id: str | None, detail: str) -> None:
        self._transaction.write(
            "INSERT INTO events (ts, kind, client_order_id, detail) VALUES (?, ?, ?, ?)",
            (timestamp, kind, client_order_id, detail),
        )

    def note(self, timestamp: float, kind: str, detail: str) -> None:
        """A bot-level event (start, stop, reconciliation, repair) for the audit trail."""
        with self.atomic():
            self._event(timestamp, kind, None, detail)

    def open_orders(self) -> list[OrderRecord]:
        """Every order not yet in a final state (what a restart must account for)."""
        placeholders = ",".join("?" for _ in _FINAL)
        rows = self._read(
            f"SELECT * FROM orders WHERE status NOT IN ({placeholders}) ORDER BY created_at", _FINAL
        ).fetchall()
        return [self._order_from_row(row) for row in rows]

    def order(self, client_order_id: str) -> OrderRecord | None:
        row = self._read("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
        return None if row is None else self._order_from_row(row)

    def orders(self) -> list[OrderRecord]:
        """Every order ever journaled, oldest first (reports and tests; not for the hot path)."""
        rows = self._read("SELECT * FROM orders ORDER BY created_at, rowid").fetchall()
        return [self._order_from_row(row) for row in rows]

    def count_orders(self, *, role: OrderRole | None = None, status: OrderStatus | None = None) -> int:
        query = "SELECT COUNT(*) FROM orders WHERE 1=1"
        args: list[str] = []
        if role is not None:
            query += " AND role = ?"
            args.append(role.value)
        if status is not None:
            query += " AND status = ?"
            args.append(status.value)
        return int(self._read(query, args).fetchone()[0])

    @staticmethod
    def _order_from_row(row: tuple) -> OrderRecord:  # type: ignore[type-arg]
        return OrderRecord(
            client_order_id=row[0],
            role=OrderRole(row[1]),
            side=OrderSide(row[2]),
            order_type=OrderType(row[3]),
            quantity=Decimal(row[4]),
            price=_dec(row[5]),
            contract_id=row[6],
            reduce_only=bool(row[7]),
            post_only=bool(row[8]),
            status=OrderStatus(row[9]),
            venue_order_id=row[10],
            filled_size=Decimal(row[11]),
            filled_quote=Decimal(row[12]),
            fees=Decimal(row[13]),
            created_at=row[14],
            updated_at=row[15],
            covers=tuple(item for item in row[16].split(",") if item),
            group=row[17],
            error=row[18],
            cancel_reason=row[19],
            previous_run=True,
            from_journal=True,
            acknowledged=row[9] not in (OrderStatus.PENDING.value, OrderStatus.UNKNOWN.value),
        )

    # -- fills -------------------------------------------------------------------------------

    def has_fill(self, fill_id: str) -> bool:
        if fill_id in self._transaction.pending_fills:
            return True
        # Not through _read: the queue is known not to hold it, and a flush here would put a
        # commit back on the reaction path.
        return self._db.execute("SELECT 1 FROM fills WHERE fill_id = ?", (fill_id,)).fetchone() is not None

    def save_fill(self, fill: FillRecord, order: OrderRecord, ledger: PositionLedger) -> None:
        """The fill, the order's new cumulative state and the ledger, in one commit."""
        transaction = self._transaction
        if transaction.queueing:
            transaction.pending_fills.append(fill.fill_id)  # has_fill must see it before the flush
        transaction.call(
            functools.partial(
                self._save_fill,
                fill,
                order,
                ledger,
                order.status,
                order.venue_order_id,
                order.error or order.cancel_reason,
            )
        )

    def _save_fill(
        self,
        fill: FillRecord,
        order: OrderRecord,
        ledger: PositionLedger,
        status: OrderStatus,
        venue_order_id: str | None,
        reason: str,
    ) -> None:
        """:meth:`save_fill`, with the order's status, venue id and error or cancel reason as
        they were at the fill (its CSV row shows them)."""
        with self.atomic():
            self._transaction.write(
                "INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                lambda: (
                    fill.fill_id,
                    fill.client_order_id,
                    fill.role.value,
                    fill.side.value,
                    str(fill.price),
                    str(fill.size),
                    str(fill.fee),
                    fill.timestamp,
                    int(fill.is_maker),
                    int(fill.fee_estimated),
                    int(fill.inferred),
                    str(fill.realized_pnl),
                ),
            )
            self.save_ledger(ledger)
            detail = "inferred from the venue's cumulative fill" if fill.inferred else ""
            self._save_order(
                order,
                "fill",
                fill.timestamp,
                detail,
                status,
                venue_order_id,
                detail or reason,
                {
                    "fill_size": fill.size,
                    "fill_price": fill.price,
                    "fee": f"{fill.fee}{' (estimate)' if fill.fee_estimated else ''}",
                    "realized_pnl": f"{fill.realized_pnl:.8f}".rstrip("0").rstrip(".")
                    if fill.realized_pnl
                    else "0",
                },
            )

    def correct_fee(
        self, order: OrderRecord, size: Decimal, delta: Decimal, ledger: PositionLedger, timestamp: float
    ) -> None:
        """The venue's exact fee arrived for ``size`` of the order booked with an estimate: the
        difference goes onto its oldest estimated fill (marked exact once ``size`` covers it),
        the order and the ledger, in one commit, with a CSV row."""
        with self.atomic():
            row = self._read(
                "SELECT fill_id, fee, size FROM fills WHERE client_order_id = ? AND fee_estimated = 1 "
                "ORDER BY ts, rowid LIMIT 1",
                (order.client_order_id,),
            ).fetchone()
            if row is not None:
                still_estimated = int(Decimal(row[2]) > size)
                self._transaction.write(
                    "UPDATE fills SET fee = ?, fee_estimated = ? WHERE fill_id = ?",
                    (str(Decimal(row[1]) + delta), still_estimated, row[0]),
                )
            self.save_ledger(ledger)
            self.save_order(order, "fee_corrected", timestamp, fee=f"{delta:+}", fill_size=size)

    def fills(self) -> list[FillRecord]:
        rows = self._read("SELECT * FROM fills ORDER BY ts, rowid").fetchall()
        return [
            FillRecord(
                fill_id=row[0],
                client_order_id=row[1],
                role=OrderRole(row[2]),
                side=OrderSide(row[3]),
                price=Decimal(row[4]),
                size=Decimal(row[5]),
                fee=Decimal(row[6]),
                timestamp=row[7],
                is_maker=bool(row[8]),
                fee_estimated=bool(row[9]),
                inferred=bool(row[10]),
                realized_pnl=Decimal(row[11]),
            )
            for row in rows
        ]

    # -- ledger ------------------------------------------------------------------------------

    def save_ledger(self, ledger: PositionLedger) -> None:
        """The ledger as one row (``size entry_price realized fees volume fill_count``), and its
        position alone under ``ledger.size`` for readers such as the status command."""
        with self.atomic():
            self.set_meta("ledger", lambda: " ".join(str(getattr(ledger, name)) for name in LEDGER_FIELDS))
            self.set_meta("ledger.size", lambda: str(ledger.size))

    def load_ledger(self) -> PositionLedger:
        ledger = PositionLedger()
        for name, value in ledger_fields(self.get_meta("ledger")).items():
            setattr(ledger, name, int(value) if name == "fill_count" else Decimal(value))
        return ledger

    # -- lots --------------------------------------------------------------------------------

    def save_lot(self, lot: Lot, closed: bool = False) -> None:
        self._transaction.call(functools.partial(self._save_lot, lot, closed))

    def _save_lot(self, lot: Lot, closed: bool) -> None:
        with self.atomic():
            self._transaction.write(
                "INSERT INTO lots VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(lot_id) DO UPDATE SET "
                "covered_by = excluded.covered_by, refused_price = excluded.refused_price, "
                "closed = excluded.closed",
                lambda: (
                    lot.lot_id,
                    lot.group,
                    lot.side.value,
                    str(lot.size),
                    str(lot.price),
                    lot.created_at,
                    lot.covered_by,
                    None if lot.refused_price is None else str(lot.refused_price),
                    int(closed),
                ),
                lot.lot_id,
            )

    def open_lots(self) -> list[Lot]:
        rows = self._read("SELECT * FROM lots WHERE closed = 0 ORDER BY created_at, rowid").fetchall()
        return [
            Lot(
                lot_id=row[0],
                group=row[1],
                side=OrderSide(row[2]),
                size=Decimal(row[3]),
                price=Decimal(row[4]),
                created_at=row[5],
                covered_by=row[6],
                refused_price=_dec(row[7]),
            )
            for row in rows
        ]

    def lots(self) -> list[tuple[Lot, bool]]:
        """Every lot with its closed flag (tests and audits)."""
        rows = self._read("SELECT * FROM lots ORDER BY created_at, rowid").fetchall()
        return [
            (
                Lot(
                    row[0],
                    row[1],
                    OrderSide(row[2]),
                    Decimal(row[3]),
                    Decimal(row[4]),
                    row[5],
                    row[6],
                    _dec(row[7]),
                ),
                bool(row[8]),
            )
            for row in rows
        ]

    def events(self, kind: str | None = None) -> list[tuple[float, str, str | None, str]]:
        if kind is None:
            rows = self._read("SELECT ts, kind, client_order_id, detail FROM events ORDER BY seq")
        else:
            rows = self._read(
                "SELECT ts, kind, client_order_id, detail FROM events WHERE kind = ? ORDER BY seq", (kind,)
            )
        return [(row[0], row[1], row[2], row[3]) for row in rows.fetchall()]
