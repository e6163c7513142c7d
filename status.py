#!/usr/bin/env python3
"""What each bot is doing, read from its journal, without touching the bot.

    python status.py                      # every *_journal.sqlite3 in logs/
    python status.py --log-dir /srv/bots/logs
    python status.py logs/lighter_ETH_grid_buy_journal.sqlite3 --json

Why the journal and not the log: the journal (execution/journal.py) is the bot's own record of
its orders, fills, lots and ledger, committed before the bot acts, so it is the truth a restart
would start from. Reading it needs nothing from the bot process and works the same for a
running bot, a stopped one, or a journal copied from a server.

Why it cannot disturb a running bot: the file is opened with SQLite's ``mode=ro`` (the
connection cannot write) and ``query_only``; the journal is in WAL mode, where readers never
block the writer, and each file is read in one short read transaction (a consistent snapshot
across tables) that is closed at once, so a checkpoint is never held back for long. Reading a
stopped bot's journal can leave empty ``-wal``/``-shm`` files beside it; the next bot run uses
them as usual.

Liveness: a journal says what a bot did, not whether its process still runs. When the bot
writes the meta keys ``heartbeat`` (unix time of its last write) and ``pid``, the table shows the
heartbeat's age and checks the pid on this machine; without them it shows the last event only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from execution.journal import SCHEMA_VERSION, ledger_fields

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_BAD_INPUT = 2

JOURNAL_SUFFIX = "_journal.sqlite3"
#: A heartbeat older than this (seconds) means the bot is not writing any more.
DEFAULT_STALE_AFTER = 60.0
#: Longest a read waits for a lock (WAL readers only wait during a crash recovery).
READ_TIMEOUT = 2.0
ZERO = Decimal(0)
_RESTING = ("open", "partially_filled")
#: Orders whose fate the bot does not know yet (sent, or sent with an ambiguous answer).
_UNRESOLVED = ("pending", "unknown")


class JournalUnreadable(Exception):
    """The file is not a journal this code can read (one line, names the file and why)."""


@dataclass(frozen=True)
class LastEvent:
    at: float
    kind: str
    detail: str


@dataclass(frozen=True)
class BotStatus:
    """One journal's facts, exactly as stored; nothing here is estimated."""

    bot_name: str
    path: Path
    position: Decimal
    resting_exits: int
    resting_exit_size: Decimal
    uncovered_size: Decimal
    unresolved_orders: int
    realized_pnl: Decimal
    fees: Decimal
    fill_count: int
    last_fill_at: float | None
    last_event: LastEvent | None
    heartbeat_at: float | None
    pid: int | None


# -- reading ---------------------------------------------------------------------------------


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: SQLite's ``mode=ro`` plus ``query_only``."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=READ_TIMEOUT, isolation_level=None)
    db.execute("PRAGMA query_only = 1")
    return db


def read_journal(path: Path) -> BotStatus:
    """The facts of one journal, read in one read-only snapshot."""
    try:
        db = open_read_only(path)
    except sqlite3.Error as exc:
        raise JournalUnreadable(f"{path}: cannot open ({exc})") from None
    try:
        db.execute("BEGIN")  # one snapshot: the tables agree with each other
        try:
            return _read(db, path)
        finally:
            db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise JournalUnreadable(f"{path}: not a readable journal ({exc})") from None
    finally:
        db.close()


def _read(db: sqlite3.Connection, path: Path) -> BotStatus:
    meta = dict(db.execute("SELECT key, value FROM meta"))
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise JournalUnreadable(
            f"{path}: journal schema version {version}, this status reads {SCHEMA_VERSION}"
        )
    resting = db.execute(
        "SELECT quantity, filled_size FROM orders WHERE role = 'exit' AND status IN (?, ?)", _RESTING
    ).fetchall()
    uncovered = db.execute("SELECT size FROM lots WHERE covered_by IS NULL AND closed = 0").fetchall()
    unresolved = db.execute("SELECT COUNT(*) FROM orders WHERE status IN (?, ?)", _UNRESOLVED).fetchone()[0]
    last_fill = db.execute("SELECT MAX(ts) FROM fills").fetchone()[0]
    event = db.execute(
        "SELECT ts, kind, detail FROM events WHERE client_order_id IS NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    try:
        ledger = ledger_fields(meta.get("ledger"))
    except ValueError as exc:
        raise JournalUnreadable(f"{path}: {exc}") from None
    return BotStatus(
        bot_name=meta.get("bot_name") or path.name.removesuffix(JOURNAL_SUFFIX),
        path=path,
        position=_decimal(meta.get("ledger.size"), path, "ledger.size"),
        resting_exits=len(resting),
        resting_exit_size=sum(
            (
                max(ZERO, _decimal(q, path, "order quantity") - _decimal(f, path, "filled size"))
                for q, f in resting
            ),
            ZERO,
        ),
        uncovered_size=sum((_decimal(size, path, "lot size") for (size,) in uncovered), ZERO),
        unresolved_orders=int(unresolved),
        realized_pnl=_decimal(ledger.get("realized_pnl"), path, "ledger realized_pnl"),
        fees=_decimal(ledger.get("fees"), path, "ledger fees"),
        fill_count=_int(ledger.get("fill_count")),
        last_fill_at=None if last_fill is None else float(last_fill),
        last_event=None if event is None else LastEvent(float(event[0]), str(event[1]), str(event[2])),
        heartbeat_at=_unix_time(meta.get("heartbeat")),
        pid=_pid(meta.get("pid")),
    )


def _decimal(text: str | None, path: Path, what: str) -> Decimal:
    """A stored amount; absent is zero (a bot that never filled has no ledger yet)."""
    if text is None:
        return ZERO
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise JournalUnreadable(f"{path}: {what} is not a number") from None
    if not value.is_finite():
        raise JournalUnreadable(f"{path}: {what} is not a finite number")
    return value


def _int(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() else 0


def _unix_time(text: str | None) -> float | None:
    """The heartbeat, if it is a plausible unix time; anything else counts as absent."""
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _pid(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and int(text) > 0 else None


def find_journals(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob(f"*{JOURNAL_SUFFIX}"))


# -- judging liveness -------------------------------------------------------------------------


def pid_running(pid: int) -> bool:
    """Is there a process with this id on this machine (signal 0 checks without sending)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ProcessState:
    """stopped, alive, silent (heartbeat too old), gone (pid not running) or unknown."""

    word: str
    #: Seconds since the stop (stopped) or since the last heartbeat (the others).
    age: float | None = None
    pid: int | None = None

    def text(self) -> str:
        if self.age is None:
            return "unknown (no heartbeat)"
        if self.word == "stopped":
            return f"stopped {age_text(self.age)} ago"
        pid = f"pid {self.pid}; " if self.word == "gone" else ""
        return f"{self.word} ({pid}heartbeat {age_text(self.age)} ago)"

    def short(self) -> str:
        """For the table's narrow column (its heading says what the age is)."""
        return self.word if self.age is None else f"{self.word} {age_text(self.age)}"


def process_state(status: BotStatus, now: float, stale_after: float, pid_check: bool = True) -> ProcessState:
    """What the journal tells about the bot's process.

    A "stopped" event newer than the last heartbeat wins: the bot said goodbye. A pid is only
    checked when the bot wrote one and ``pid_check`` is on (a journal from another machine
    would name some unrelated process here).
    """
    event = status.last_event
    heartbeat = status.heartbeat_at
    if event is not None and event.kind == "stopped" and (heartbeat is None or event.at >= heartbeat):
        return ProcessState("stopped", now - event.at)
    if heartbeat is None:
        return ProcessState("unknown")
    age = now - heartbeat
    if pid_check and status.pid is not None and not pid_running(status.pid):
        return ProcessState("gone", age, status.pid)
    return ProcessState("silent" if age > stale_after else "alive", age)


def age_text(seconds: float) -> str:
    """Compact age for a table cell: 42s, 7m05s, 3h12m, 2d04h (a clock moved back reads 0s)."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


# -- presenting -------------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return f"{value:.4f}"


def _event_text(event: LastEvent | None, now: float, detail_width: int | None = 60) -> str:
    """``kind age ago``, then the detail (cut to ``detail_width``; None leaves it out)."""
    if event is None:
        return "-"
    head = f"{event.kind} {age_text(now - event.at)} ago"
    detail = " ".join(event.detail.split())
    if detail_width is None or not detail:
        return head
    if len(detail) > detail_width:
        detail = detail[: detail_width - 3] + "..."
    return f"{head}: {detail}"


def build_table(
    statuses: Sequence[BotStatus],
    now: float,
    stale_after: float = DEFAULT_STALE_AFTER,
    pid_check: bool = True,
) -> Table:
    """One row per bot; cells never wrap, so the caller can tell whether the table fits."""
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    for heading, justify in (
        ("bot", "left"),
        ("process\n(age)", "left"),
        ("position", "right"),
        ("resting TPs\n(size)", "right"),
        ("uncovered\nsize", "right"),
        ("realized\nPnL", "right"),
        ("fees", "right"),
        ("last fill\n(age)", "right"),
        ("last event\n(age)", "left"),
    ):
        table.add_column(heading, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for status in statuses:
        resting = f"{status.resting_exits} ({status.resting_exit_size})"
        if status.unresolved_orders:
            resting += f"\n+{status.unresolved_orders} unresolved"
        uncovered = str(status.uncovered_size)
        event = status.last_event
        table.add_row(
            status.bot_name,
            process_state(status, now, stale_after, pid_check).short(),
            str(status.position),
            resting,
            f"[bold red]{uncovered}[/]" if status.uncovered_size else uncovered,
            _money(status.realized_pnl),
            _money(status.fees),
            "-" if status.last_fill_at is None else age_text(now - status.last_fill_at),
            "-" if event is None else f"{event.kind} {age_text(now - event.at)}",
        )
    return table


def event_details(statuses: Sequence[BotStatus], now: float) -> list[str]:
    """The last events' details (a stop reason, what the reconciliation found), one line each:
    too long for a table cell, and cut they would say nothing."""
    return [
        f"{status.bot_name}: {_event_text(status.last_event, now, detail_width=200)}"
        for status in statuses
        if status.last_event is not None and status.last_event.detail.strip()
    ]


def stacked_lines(status: BotStatus, now: float, stale_after: float, pid_check: bool = True) -> Text:
    """The table's facts for one bot as a few short lines, for terminals too narrow for the table."""
    resting = f"{status.resting_exits} (size {status.resting_exit_size})"
    if status.unresolved_orders:
        resting += f", {status.unresolved_orders} order(s) unresolved"
    last_fill = "-" if status.last_fill_at is None else f"{age_text(now - status.last_fill_at)} ago"
    text = Text()
    text.append(status.bot_name, style="bold")
    text.append(f"  {process_state(status, now, stale_after, pid_check).text()}\n")
    text.append(f"  position {status.position}, take-profits resting {resting}\n")
    text.append("  uncovered size ")
    text.append(str(status.uncovered_size), style="bold red" if status.uncovered_size else "")
    text.append(f", realized PnL {_money(status.realized_pnl)}, fees {_money(status.fees)}\n")
    text.append(f"  last fill {last_fill}; last event {_event_text(status.last_event, now)}")
    return text


def as_json(status: BotStatus, now: float, stale_after: float, pid_check: bool = True) -> dict[str, Any]:
    event = status.last_event
    return {
        "bot_name": status.bot_name,
        "journal": str(status.path),
        "process": process_state(status, now, stale_after, pid_check).text(),
        "position": str(status.position),
        "resting_take_profits": status.resting_exits,
        "resting_take_profit_size": str(status.resting_exit_size),
        "uncovered_size": str(status.uncovered_size),
        "unresolved_orders": status.unresolved_orders,
        "realized_pnl": str(status.realized_pnl),
        "fees": str(status.fees),
        "fills": status.fill_count,
        "last_fill_time": status.last_fill_at,
        "last_event": None
        if event is None
        else {"time": event.at, "kind": event.kind, "detail": event.detail},
        "heartbeat_time": status.heartbeat_at,
        "pid": status.pid,
    }


def collect(paths: Sequence[Path]) -> tuple[list[BotStatus], list[str]]:
    """Read every journal; an unreadable one becomes an error line, never an exception."""
    statuses: list[BotStatus] = []
    errors: list[str] = []
    for path in paths:
        try:
            statuses.append(read_journal(path))
        except JournalUnreadable as exc:
            errors.append(str(exc))
    return statuses, errors


def print_status(
    paths: Sequence[Path],
    out: TextIO,
    *,
    now: float | None = None,
    stale_after: float = DEFAULT_STALE_AFTER,
    json_output: bool = False,
    pid_check: bool = True,
    width: int | None = None,
) -> int:
    """Print the table (or JSON) for ``paths``; 0 when all were read, 1 when one was not."""
    current = time.time() if now is None else now
    statuses, errors = collect(paths)
    if json_output:
        document = {
            "bots": [as_json(status, current, stale_after, pid_check) for status in statuses],
            "errors": errors,
        }
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        console = Console(file=out, width=width, highlight=False, soft_wrap=False)
        if statuses:
            table = build_table(statuses, current, stale_after, pid_check)
            natural = Measurement.get(console, console.options.update_width(10**6), table).maximum
            if natural <= console.width:
                console.print(table)
                for line in event_details(statuses, current):
                    console.print(line, markup=False, soft_wrap=True)
            else:  # a squeezed table cuts numbers ("0.1…"): one block per bot instead
                for status in statuses:
                    console.print(stacked_lines(status, current, stale_after, pid_check), soft_wrap=False)
        for error in errors:  # below the table, whole: a path cut to fit a cell helps nobody
            console.print(f"unreadable: {error}", markup=False, soft_wrap=True)
    return EXIT_UNREADABLE if errors else EXIT_OK


# -- CLI ------------------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="status.py",
        description="Each bot's position, resting take-profits, PnL, last fill and last event,\n"
        "read from its journal (read-only: a running bot is never disturbed).",
        epilog="examples:\n  python status.py\n  python status.py --log-dir /srv/bots/logs --json\n"
        "  python status.py logs/lighter_ETH_grid_buy_journal.sqlite3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("journals", nargs="*", type=Path, help="journal files (default: all in --log-dir)")
    parser.add_argument(
        "--log-dir", type=Path, default=Path("logs"), help="folder of the bots' journals (default logs)"
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        default=DEFAULT_STALE_AFTER,
        help="seconds after which a heartbeat counts as silent (default %(default)g)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--no-pid-check",
        action="store_true",
        help="do not look the journal's pid up on this machine (journals copied from elsewhere)",
    )
    return parser


def journal_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Path]:
    if args.journals:
        missing = [str(path) for path in args.journals if not path.is_file()]
        if missing:
            parser.error(f"no such journal file: {missing[0]}")
        return list(args.journals)
    if not args.log_dir.is_dir():
        parser.error(f"argument --log-dir: {args.log_dir} is not a folder")
    paths = find_journals(args.log_dir)
    if not paths:
        parser.error(f"argument --log-dir: no bot journals (*{JOURNAL_SUFFIX}) in {args.log_dir}")
    return paths


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not math.isfinite(args.stale_after) or args.stale_after <= 0:
        parser.error("argument --stale-after: must be a number > 0")
    paths = journal_paths(parser, args)
    try:
        return print_status(
            paths,
            out or sys.stdout,
            stale_after=args.stale_after,
            json_output=args.json,
            pid_check=not args.no_pid_check,
        )
    except BrokenPipeError:
        return EXIT_OK  # `python status.py | head`: the reader has what it wanted


if __name__ == "__main__":
    sys.exit(main())
