"""status.py: the table of bots read from their journals, without disturbing a running bot.

Journals are built with the execution layer's own ExecutionJournal, so the test reads exactly the
layout the bot writes. Times are fixed numbers handed in as ``now``; no wall clock is asserted.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import status
from exchanges.base import OrderSide, OrderStatus, OrderType
from execution.journal import ExecutionJournal, journal_path
from execution.records import FillRecord, Lot, OrderRecord
from helpers.position_ledger import PositionLedger
from strategies.base_strategy import OrderRole

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0


def order(cid: str, role: OrderRole, status_: OrderStatus, quantity: str, filled: str = "0") -> OrderRecord:
    return OrderRecord(
        client_order_id=cid,
        role=role,
        side=OrderSide.SELL if role is OrderRole.EXIT else OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(quantity),
        price=Decimal("3001"),
        contract_id="ETH",
        status=status_,
        filled_size=Decimal(filled),
        created_at=T0,
        updated_at=T0,
    )


def build_journal(log_dir: Path, name: str = "lighter_ETH_grid_buy") -> ExecutionJournal:
    """A bot with 0.03 long: two take-profits resting (one half filled), one lot uncovered."""
    journal = ExecutionJournal(journal_path(log_dir, name))
    journal.set_meta("bot_name", name)
    ledger = PositionLedger()
    for cid, price in (("e1", "3000"), ("e2", "2999"), ("e3", "2998")):
        ledger.apply_fill(OrderSide.BUY, Decimal(price), Decimal("0.01"), Decimal("0.001"))
        entry = order(cid, OrderRole.ENTRY, OrderStatus.FILLED, "0.01", "0.01")
        fill = FillRecord(
            cid + "-f",
            cid,
            OrderRole.ENTRY,
            OrderSide.BUY,
            Decimal(price),
            Decimal("0.01"),
            Decimal("0.001"),
            T0 + 10,
        )
        journal.save_fill(fill, entry, ledger)
    realized = ledger.apply_fill(OrderSide.SELL, Decimal("3010"), Decimal("0.01"), Decimal("0.002"))
    exit_fill = FillRecord(
        "x0-f",
        "x0",
        OrderRole.EXIT,
        OrderSide.SELL,
        Decimal("3010"),
        Decimal("0.01"),
        Decimal("0.002"),
        T0 + 100,
        realized_pnl=realized,
    )
    journal.save_fill(exit_fill, order("x0", OrderRole.EXIT, OrderStatus.FILLED, "0.01", "0.01"), ledger)
    ledger.apply_fill(OrderSide.BUY, Decimal("3000"), Decimal("0.01"))  # e4, below: back to 0.03
    journal.save_ledger(ledger)
    journal.save_order(order("x1", OrderRole.EXIT, OrderStatus.OPEN, "0.01"), "placed", T0 + 20)
    journal.save_order(
        order("x2", OrderRole.EXIT, OrderStatus.PARTIALLY_FILLED, "0.01", "0.005"), "fill", T0 + 30
    )
    journal.save_order(order("x3", OrderRole.EXIT, OrderStatus.CANCELLED, "0.01"), "cancelled", T0 + 40)
    journal.save_order(order("e5", OrderRole.ENTRY, OrderStatus.OPEN, "0.01"), "placed", T0 + 50)
    journal.save_order(order("e6", OrderRole.ENTRY, OrderStatus.UNKNOWN, "0.01"), "unknown", T0 + 60)
    journal.save_lot(Lot("l1", "e1", OrderSide.BUY, Decimal("0.01"), Decimal("3000"), T0, covered_by="x1"))
    journal.save_lot(Lot("l2", "e2", OrderSide.BUY, Decimal("0.005"), Decimal("2999"), T0, covered_by="x2"))
    journal.save_lot(Lot("l3", "e3", OrderSide.BUY, Decimal("0.01"), Decimal("2998"), T0))
    journal.save_lot(Lot("l4", "e4", OrderSide.BUY, Decimal("0.007"), Decimal("2998"), T0), closed=True)
    journal.note(T0 + 5, "reconciled", "0 journaled orders checked")
    journal.note(T0 + 200, "coverage_mismatch", "position 0.03 but lots cover 0.025")
    return journal


def test_reads_position_take_profits_uncovered_pnl_and_last_event(tmp_path: Path) -> None:
    build_journal(tmp_path).close()
    found = status.read_journal(journal_path(tmp_path, "lighter_ETH_grid_buy"))
    assert found.bot_name == "lighter_ETH_grid_buy"
    assert found.position == Decimal("0.03")
    assert (found.resting_exits, found.resting_exit_size) == (2, Decimal("0.015"))
    assert found.uncovered_size == Decimal("0.01")  # l3 only: l4 is closed, l1/l2 covered
    assert found.unresolved_orders == 1
    assert found.realized_pnl == Decimal("0.11") and found.fees == Decimal("0.005")
    assert found.fill_count == 5
    assert found.last_fill_at == T0 + 100
    assert found.last_event == status.LastEvent(
        T0 + 200, "coverage_mismatch", "position 0.03 but lots cover 0.025"
    )
    assert found.heartbeat_at is None and found.pid is None


def test_table_shows_each_fact(tmp_path: Path) -> None:
    build_journal(tmp_path).close()
    out = io.StringIO()
    code = status.print_status(status.find_journals(tmp_path), out, now=T0 + 260, width=200)
    text = out.getvalue()
    assert code == 0
    row = next(line for line in text.splitlines() if line.startswith(" lighter_ETH_grid_buy"))
    cells = row.split()
    assert cells[:3] == ["lighter_ETH_grid_buy", "unknown", "0.03"]
    assert cells[3:] == ["2", "(0.015)", "0.01", "0.1100", "0.0050", "2m40s", "coverage_mismatch", "1m00s"]
    assert "+1 unresolved" in text
    assert "lighter_ETH_grid_buy: coverage_mismatch 1m00s ago: position 0.03 but lots cover 0.025" in text


def test_narrow_terminal_gets_one_block_per_bot_with_nothing_cut(tmp_path: Path) -> None:
    build_journal(tmp_path).close()
    out = io.StringIO()
    status.print_status(status.find_journals(tmp_path), out, now=T0 + 260, width=80)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "┃" not in text
    for fact in (
        "position 0.03",
        "take-profits resting 2 (size 0.015)",
        "uncovered size 0.01",
        "realized PnL 0.1100",
        "fees 0.0050",
        "last fill 2m40s ago",
        "coverage_mismatch 1m00s ago",
    ):
        assert fact in text, fact


def test_running_bot_keeps_writing_while_status_reads(tmp_path: Path) -> None:
    """A reader in the middle of its snapshot never blocks the bot's commits (WAL), and cannot write."""
    journal = build_journal(tmp_path)
    path = journal_path(tmp_path, "lighter_ETH_grid_buy")
    reader = status.open_read_only(path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM orders").fetchone()  # holds a read snapshot open
    journal._db.execute("PRAGMA busy_timeout = 0")  # a blocked write would fail at once, not wait
    journal.set_meta("heartbeat", str(T0 + 300))
    journal.note(T0 + 300, "stopped", "SIGINT received")
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|query_only"):
        reader.execute("INSERT INTO meta VALUES ('x', 'y')")
    reader.execute("COMMIT")
    reader.close()
    found = status.read_journal(path)
    assert found.last_event is not None and found.last_event.kind == "stopped"
    assert found.heartbeat_at == T0 + 300
    journal.close()


def test_reading_leaves_the_journal_unchanged(tmp_path: Path) -> None:
    build_journal(tmp_path).close()
    path = journal_path(tmp_path, "lighter_ETH_grid_buy")
    before = path.read_bytes()
    status.read_journal(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("heartbeat", "pid", "event", "expected"),
    [
        (None, None, None, "unknown (no heartbeat)"),
        (T0 + 990, None, None, "alive (heartbeat 10s ago)"),
        (T0 + 800, None, None, "silent (heartbeat 3m20s ago)"),
        (T0 + 990, 2**22 + 12345, None, "gone (pid 4206649; heartbeat 10s ago)"),
        (T0 + 990, "self", None, "alive (heartbeat 10s ago)"),
        (T0 + 900, None, ("stopped", T0 + 901), "stopped 1m39s ago"),
        (T0 + 990, None, ("stopped", T0 + 500), "alive (heartbeat 10s ago)"),  # restarted since
        (None, None, ("stopped", T0 + 400), "stopped 10m00s ago"),
    ],
)
def test_process_state(
    tmp_path: Path,
    heartbeat: float | None,
    pid: int | str | None,
    event: tuple[str, float] | None,
    expected: str,
) -> None:
    journal = ExecutionJournal(journal_path(tmp_path, "bot"))
    if heartbeat is not None:
        journal.set_meta("heartbeat", repr(heartbeat))
    if pid is not None:
        journal.set_meta("pid", str(os.getpid() if pid == "self" else pid))
    if event is not None:
        journal.note(event[1], event[0], "SIGINT received")
    journal.close()
    found = status.read_journal(journal_path(tmp_path, "bot"))
    assert status.process_state(found, T0 + 1000, stale_after=60).text() == expected


def test_unreadable_files_are_one_row_each_and_exit_1(tmp_path: Path) -> None:
    build_journal(tmp_path).close()
    (tmp_path / "garbage_journal.sqlite3").write_bytes(b"not a database at all" * 100)
    newer = ExecutionJournal(journal_path(tmp_path, "newer"))
    newer.set_meta("schema_version", "9")
    newer.close()
    out = io.StringIO()
    code = status.print_status(status.find_journals(tmp_path), out, now=T0, width=250)
    assert code == 1
    text = out.getvalue()
    assert "lighter_ETH_grid_buy" in text
    assert "garbage_journal.sqlite3: not a readable journal" in text
    assert "newer_journal.sqlite3: journal schema version 9" in text


def test_json_output_is_exact(tmp_path: Path) -> None:
    build_journal(tmp_path).close()
    out = io.StringIO()
    assert status.main(["--log-dir", str(tmp_path), "--json"], out=out) == 0
    bot = json.loads(out.getvalue())["bots"][0]
    assert bot["position"] == "0.03" and bot["resting_take_profit_size"] == "0.015"
    assert bot["uncovered_size"] == "0.01" and Decimal(bot["realized_pnl"]) == Decimal("0.11")
    assert bot["last_event"]["kind"] == "coverage_mismatch"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log-dir", "{tmp}/absent"], "is not a folder"),
        (["--log-dir", "{tmp}"], "no bot journals"),
        (["{tmp}/absent_journal.sqlite3"], "no such journal file"),
        (["--stale-after", "-1"], "must be a number > 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "status.py"), *(arg.format(tmp=tmp_path) for arg in argv)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and message in completed.stderr
    assert completed.stdout == ""


def test_command_line_prints_the_table(tmp_path: Path) -> None:
    build_journal(tmp_path, "paper_BTC_grid_buy").close()
    completed = subprocess.run(
        [sys.executable, str(ROOT / "status.py"), "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "paper_BTC_grid_buy" in completed.stdout and "2 (0.015)" in completed.stdout
