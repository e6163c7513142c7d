"""ExecutionJournal.deferred(): writes queued for the reaction path, flushed before any send.

The execution layer queues a fill's writes and its take-profit's intent, and the venue client
commits them while it signs (``send_gate``). What must hold: nothing queued is visible to a
crash (another connection) until the flush; every read through the journal sees the queue; a
block that raises queues nothing (its fill id included); a flush that fails keeps the writes
and says so with a typed error; a queue nobody flushes is written within the loop's next step.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchanges.base import OrderSide, OrderStatus, OrderType
from execution import journal as journal_module
from execution.journal import WRITE_BEHIND_LIMIT, ExecutionJournal, JournalWriteError
from execution.records import FillRecord, Lot, OrderRecord
from helpers.position_ledger import PositionLedger
from strategies.base_strategy import OrderRole


class FlakyConnection:
    """A sqlite connection whose writes fail while ``failing`` is set (a full disk, say)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.failing = False

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if self.failing and sql.startswith(("INSERT", "UPDATE")):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, args)

    def close(self) -> None:
        self._db.close()


def order(cid: str = "c1") -> OrderRecord:
    return OrderRecord(
        client_order_id=cid,
        role=OrderRole.ENTRY,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("1"),
        price=Decimal("100"),
        contract_id="ETH",
        created_at=1.0,
        updated_at=1.0,
        group=cid,
    )


def fill(record: OrderRecord, fill_id: str) -> FillRecord:
    return FillRecord(
        fill_id=fill_id,
        client_order_id=record.client_order_id,
        role=record.role,
        side=record.side,
        price=Decimal("100"),
        size=Decimal("1"),
        fee=Decimal("0"),
        timestamp=2.0,
        is_maker=True,
        fee_estimated=False,
        inferred=False,
        realized_pnl=Decimal("0"),
    )


def committed(path: Path, table: str) -> int:
    """Rows another connection sees: what a crash at this moment would leave."""
    with sqlite3.connect(path) as reader:
        return int(reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_queued_writes_are_invisible_until_the_flush(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = ExecutionJournal(path)
    with journal.deferred(), journal.atomic():
        journal.save_order(order(), "intent", 1.0)
    assert committed(path, "orders") == 0
    journal.flush()
    assert committed(path, "orders") == 1


def test_a_read_through_the_journal_sees_the_queue(tmp_path: Path) -> None:
    journal = ExecutionJournal(tmp_path / "j.sqlite")
    with journal.deferred(), journal.atomic():
        journal.save_order(order(), "intent", 1.0)
    found = journal.order("c1")
    assert found is not None and found.status is OrderStatus.PENDING
    assert committed(tmp_path / "j.sqlite", "orders") == 1


def test_a_queued_fill_is_known_without_flushing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = ExecutionJournal(path)
    record = order()
    with journal.deferred(), journal.atomic():
        journal.save_fill(fill(record, "c1#1"), record, PositionLedger())
    assert journal.has_fill("c1#1")
    assert committed(path, "fills") == 0  # has_fill put no commit on the reaction path


def test_a_block_that_raises_queues_nothing_not_even_its_fill_id(tmp_path: Path) -> None:
    journal = ExecutionJournal(tmp_path / "j.sqlite")
    record = order()
    with journal.deferred(), journal.atomic():
        journal.save_order(record, "intent", 1.0)
    with pytest.raises(RuntimeError), journal.deferred(), journal.atomic():
        journal.save_fill(fill(record, "c1#1"), record, PositionLedger())
        raise RuntimeError("the booking failed half way")
    assert not journal.has_fill("c1#1")
    journal.flush()
    assert [o.client_order_id for o in journal.orders()] == ["c1"]
    assert journal.fills() == []


def test_a_failed_flush_keeps_the_writes_and_raises_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = ExecutionJournal(path)
    flaky = FlakyConnection(journal._transaction._db)
    journal._transaction._db = flaky  # type: ignore[assignment]
    record = order()
    with journal.deferred(), journal.atomic():
        journal.save_fill(fill(record, "c1#1"), record, PositionLedger())
    flaky.failing = True
    with pytest.raises(JournalWriteError, match="disk is full"):
        journal.flush()
    assert committed(path, "fills") == 0
    assert journal.has_fill("c1#1")  # still queued, so a duplicate report is still a duplicate
    flaky.failing = False
    journal.flush()
    assert committed(path, "fills") == 1


async def test_a_queue_nobody_flushes_is_written_at_the_loops_next_step(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = ExecutionJournal(path)
    with journal.deferred(), journal.atomic():
        journal.save_order(order(), "intent", 1.0)
    journal.flush_soon()
    assert committed(path, "orders") == 0
    await asyncio.sleep(0)
    assert committed(path, "orders") == 1


# -- an in-memory journal (backtests) writes behind -------------------------------------------


def traced(journal: ExecutionJournal) -> list[str]:
    """The statements SQLite runs for ``journal`` from now on."""
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    return statements


def test_an_in_memory_journal_writes_when_read_and_an_order_row_once() -> None:
    journal = ExecutionJournal(None)
    statements = traced(journal)
    record = order()
    for status in (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.FILLED):
        record.status = status
        journal.save_order(record, status.value, 1.0)
    journal.flush()  # the intent's flush: nothing to wait for in memory
    journal.flush_soon()
    assert statements == []
    assert journal.order("c1") is not None  # a read writes the queue first
    assert journal.order("c1").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert sum(s.startswith("INSERT INTO orders") for s in statements) == 1
    assert sum(s.startswith("INSERT INTO events") for s in statements) == 3
    journal.close()


def test_an_in_memory_journal_knows_a_fill_it_has_not_written() -> None:
    journal = ExecutionJournal(None)
    record = order()
    journal.save_fill(fill(record, "c1#1"), record, PositionLedger())
    assert journal._transaction.pending
    assert journal.has_fill("c1#1")
    assert not journal.has_fill("c1#2")


def test_an_in_memory_journals_queue_stays_short() -> None:
    """A long backtest's writes do not pile up (each holds the objects its row is built from)."""
    journal = ExecutionJournal(None)
    statements = traced(journal)
    for number in range(WRITE_BEHIND_LIMIT + 10):
        journal.save_order(order(f"c{number}"), "intent", 1.0)
    assert len(journal._transaction.pending) < WRITE_BEHIND_LIMIT
    assert statements  # written on the way, not at the end
    journal.close()


def table_rows(journal: ExecutionJournal) -> dict[str, list[tuple[Any, ...]]]:
    journal._transaction.flush()
    return {
        table: journal._db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        for table in ("meta", "orders", "fills", "lots", "events")
    }


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["order", "lot", "meta", "read", "flush"]),
            st.integers(0, 3),
            st.sampled_from(list(OrderStatus)),
        ),
        max_size=40,
    )
)
def test_writing_behind_leaves_the_tables_that_writing_at_once_leaves(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, OrderStatus]]
) -> None:
    """Random upserts of a few orders, lots and meta keys (their objects changing between
    writes), with reads and flushes between: the in-memory journal, which queues and runs
    only the last upsert of each row, ends with the rows of a journal on disk that wrote
    every statement as it came."""
    behind = ExecutionJournal(None)
    at_once = ExecutionJournal(tmp_path_factory.mktemp("j") / "j.sqlite")
    records = [order(f"c{number}") for number in range(4)]
    saved: set[str] = set()
    lots = [
        Lot(f"l{number}", "g", OrderSide.BUY, Decimal(1), Decimal(100), created_at=1.0) for number in range(4)
    ]
    for number, (kind, which, status) in enumerate(steps):
        for journal in (behind, at_once):
            if kind == "order":
                saved.add(records[which].client_order_id)
                records[which].status = status
                records[which].updated_at = float(number)
                journal.save_order(records[which], status.value, float(number))
            elif kind == "lot":
                lots[which].covered_by = f"x{number}"
                journal.save_lot(lots[which], closed=status.is_final)
            elif kind == "meta":
                journal.set_meta(f"k{which}", str(number))
            elif kind == "read":  # a read sees every order saved so far, as it stands now
                seen = {o.client_order_id: o.status for o in journal.orders()}
                assert seen == {r.client_order_id: r.status for r in records if r.client_order_id in saved}
            else:
                journal.flush()
    assert table_rows(behind) == table_rows(at_once)
    behind.close()
    at_once.close()


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["queue", "queue_fail", "read", "flush", "plain"]), st.integers(0, 5)),
        max_size=25,
    )
)
def test_any_interleaving_ends_with_exactly_the_blocks_that_completed(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    """Random queueing blocks (some raising), reads, flushes and plain writes: after a final
    flush the journal holds the orders of the blocks that completed and nothing else, and
    the committed rows never include a write of a block that raised."""
    path = tmp_path_factory.mktemp("j") / "j.sqlite"
    journal = ExecutionJournal(path)
    expected: set[str] = set()
    for number, (kind, key) in enumerate(steps):
        cid = f"c{number}-{key}"
        if kind == "queue":
            with journal.deferred(), journal.atomic():
                journal.save_order(order(cid), "intent", 1.0)
            expected.add(cid)
        elif kind == "queue_fail":
            with pytest.raises(ValueError), journal.deferred(), journal.atomic():
                journal.save_order(order(cid), "intent", 1.0)
                raise ValueError
        elif kind == "read":
            assert {o.client_order_id for o in journal.orders()} == expected
        elif kind == "flush":
            journal.flush()
        else:
            journal.save_order(order(cid), "intent", 1.0)
            expected.add(cid)
        with sqlite3.connect(path) as reader:
            seen = {row[0] for row in reader.execute("SELECT client_order_id FROM orders")}
        assert seen <= expected
    journal.flush()
    assert {o.client_order_id for o in journal.orders()} == expected
    journal.close()


# -- whole calls queued: the flush makes them, and their CSV rows follow its commit ----------


def test_a_queued_call_waits_in_the_queue_as_one_entry(tmp_path: Path) -> None:
    """The reaction pays for queueing a call, not for building its statements."""
    journal = ExecutionJournal(tmp_path / "j.sqlite", tmp_path / "orders.csv")
    assert journal.csv is not None
    rows: list[str] = []
    write = journal.csv.write
    journal.csv.write = lambda *args: (rows.append(args[1]), write(*args))  # type: ignore[method-assign]
    record = order()
    with journal.deferred(), journal.atomic():
        journal.save_fill(fill(record, "c1#1"), record, PositionLedger())
    assert len(journal._transaction.pending) == 1
    assert rows == []  # no CSV row before the commit
    journal.flush()
    assert committed(tmp_path / "j.sqlite", "fills") == 1
    assert rows == ["fill"]
    journal.close()


class FillsFailConnection(FlakyConnection):
    """Only the fills table fails: a flush fails after its first calls went through."""

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if self.failing and sql.startswith("INSERT INTO fills"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, args)


def test_a_failed_flush_writes_no_csv_row_and_the_retry_writes_each_once(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = ExecutionJournal(path, tmp_path / "orders.csv")
    flaky = FillsFailConnection(journal._transaction._db)
    journal._transaction._db = flaky  # type: ignore[assignment]
    record = order()
    record.status = OrderStatus.OPEN
    with journal.deferred(), journal.atomic():
        journal.save_order(record, "open", 1.5)
        journal.save_fill(fill(record, "c1#1"), record, PositionLedger())
    flaky.failing = True
    with pytest.raises(JournalWriteError):
        journal.flush()
    assert journal.csv is not None and journal.csv._pending == []
    flaky.failing = False
    journal.flush()
    journal.close()
    events = [line.split(",")[1] for line in (tmp_path / "orders.csv").read_text().splitlines()[1:]]
    assert events == ["open", "fill"]


def _csv_rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as reader:
        return {
            table: sorted(reader.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("orders", "fills", "lots", "events", "meta")
        }


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["open", "fill", "cancel", "lot", "flush", "read"]),
            st.integers(0, 2),
            st.booleans(),
        ),
        max_size=20,
    )
)
def test_queued_calls_leave_the_same_rows_as_plain_ones(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, bool]]
) -> None:
    """The same calls, with the orders' states moving between them, made once in queueing
    blocks (flushed and read at random points) and once plainly: the journals end with the
    same rows and the CSVs with the same lines, each showing the state at its event."""
    from execution.records import Lot

    folders = [tmp_path_factory.mktemp("queued"), tmp_path_factory.mktemp("plain")]
    results = []
    for queued, folder in zip((True, False), folders, strict=True):
        journal = ExecutionJournal(folder / "j.sqlite", folder / "orders.csv")
        records = {key: order(f"c{key}") for key in range(3)}
        ledger = PositionLedger()
        for number, (kind, key, in_block) in enumerate(steps):
            record = records[key]
            block = journal.deferred() if queued and in_block else None
            if kind in ("flush", "read"):
                if queued:
                    journal.flush() if kind == "flush" else journal.orders()
                continue
            with block if block is not None else journal.atomic(), journal.atomic():
                timestamp = 10.0 + number
                if kind == "open":
                    record.status = OrderStatus.OPEN
                    record.venue_order_id = f"v{number}"
                    journal.save_order(record, "open", timestamp)
                elif kind == "fill":
                    record.filled_size += 1
                    record.status = OrderStatus.PARTIALLY_FILLED
                    ledger.size += 1  # booked before the fill is saved, as the engine does
                    journal.save_fill(fill(record, f"{record.client_order_id}#{number}"), record, ledger)
                elif kind == "cancel":
                    record.status = OrderStatus.CANCELLED
                    record.cancel_reason = f"reason {number}"
                    journal.save_order(record, "cancelled", timestamp)
                else:
                    lot = Lot(f"lot{number}", record.group, record.side, Decimal(1), Decimal(100), timestamp)
                    journal.save_lot(lot)
                    lot.covered_by = f"exit{number}"  # a later state: the upsert writes the newest
                    journal.save_lot(lot)
        journal.close()
        results.append((_tables(folder / "j.sqlite"), _csv_rows(folder / "orders.csv")))
    assert results[0] == results[1]


def test_journals_without_a_file_start_empty_and_apart_from_any_thread() -> None:
    """Each has its own copy of the empty tables (made once per process, copied for each): what
    one journal writes is not in the next, nor in the copy's source."""
    first = ExecutionJournal(None)
    first.save_order(order("c1"), "intent", 1.0)
    first.set_meta("note", "first")
    assert first.order("c1") is not None and first.get_meta("note") == "first"

    def opened(number: int) -> tuple[Any, ...]:
        other = ExecutionJournal(None)
        other.save_order(order(f"t{number}"), "intent", 1.0)
        seen = (
            other.order("c1"),
            other.get_meta("note"),
            other.get_meta("schema_version"),
            len(other.open_orders()),
        )
        other.close()
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(opened, range(8))) == [(None, None, "1", 1)] * 8
    empty = journal_module._empty_scratch
    assert empty is not None
    counts = [empty.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("meta", "orders")]
    assert counts == [0, 0]
    first.close()
