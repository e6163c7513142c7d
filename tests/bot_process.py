"""A runbot.py process against the mock Lighter venue, and its journal compared with the venue.

Shared by the kill test and the fault soak: both run the real bot in its own process and judge
it by what the venue says it holds, against what the bot's journal says.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from helpers.trading_config import default_client_id_prefix
from tests.venue_process import ROOT, get_state

QUANTITY = Decimal("0.0100")
MIN_SIZE = Decimal("0.0050")  # the mock ETH market's min_base_amount (from the captured fixture)
SETTLE_TIMEOUT = 40.0
POLL = 0.05
BOT_NAME = "lighter_ETH_grid_buy"
PREFIX = default_client_id_prefix(BOT_NAME)


class Bot:
    """One runbot.py process at a time, always the same command (the grid on the mock ETH)."""

    def __init__(self, tmp_path: Path, env_file: Path, *extra: str) -> None:
        self.log_dir = tmp_path / "logs"
        self.env_file = env_file
        self.tmp_path = tmp_path
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def journal(self) -> Path:
        return self.log_dir / f"{BOT_NAME}_journal.sqlite3"

    def start(self) -> None:
        self.starts += 1
        output = (self.tmp_path / f"bot{self.starts}.out").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "runbot.py"),
                "--exchange",
                "lighter",
                "--env-file",
                str(self.env_file),
                "--ticker",
                "ETH",
                "--quantity",
                str(QUANTITY),
                "--take-profit",
                "0.05",
                "--wait-time",
                "1",
                "--requote-ticks",
                "1000",
                "--log-dir",
                str(self.log_dir),
                *self.extra,
            ],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("LIGHTER_")},
        )
        output.close()

    def output(self) -> str:
        return (self.tmp_path / f"bot{self.starts}.out").read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def read_journal(path: Path) -> dict[str, Any] | None:
    """The journal as a reader in another process sees it (read-only; WAL never blocks); None
    while the bot has not created its tables yet."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        orders = {
            row[0]: {"role": row[1], "status": row[2], "filled": Decimal(row[3]), "side": row[4]}
            for row in db.execute("SELECT client_order_id, role, status, filled_size, side FROM orders")
        }
        uncovered = sum(
            (
                Decimal(row[0])
                for row in db.execute("SELECT size FROM lots WHERE closed = 0 AND covered_by IS NULL")
            ),
            Decimal(0),
        )
        reconciled = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'reconciled'").fetchone()[0]
        fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return {
        "heartbeat": float(meta.get("heartbeat", "0")),
        "position": Decimal(meta.get("ledger.size", "0")),
        "orders": orders,
        "uncovered": uncovered,
        "reconciled": reconciled,
        "fills": fills,
    }


def ours(item: dict[str, Any]) -> bool:
    """An order or trade of this bot (its client ids carry the bot's prefix)."""
    return str(item.get("client_order_index", "")).startswith(PREFIX)


def compare(journal: dict[str, Any], account: dict[str, Any], *, strict: bool) -> list[str]:
    """Every way the journal and the venue disagree (empty when they agree and all is covered).

    Filled size below the venue's minimum order size cannot have a take-profit of its own: it
    waits to join the next fill (the grid's rule). Unless ``strict``, that much may wait.
    """
    problems = []
    venue_orders = [o for o in account["orders"] if ours(o)]
    for order in venue_orders:
        cid = str(order["client_order_index"])
        known = journal["orders"].get(cid)
        filled = Decimal(order["filled_size"])
        if known is None:
            if filled > 0 or order["status"] == "open":
                problems.append(f"venue order {cid} ({order['status']}, filled {filled}) not in the journal")
            continue
        if known["filled"] != filled:
            problems.append(f"order {cid}: venue filled {filled}, journal {known['filled']}")
        if order["status"] == "open" and known["status"] not in ("open", "partially_filled"):
            problems.append(f"order {cid} rests on the venue but the journal says {known['status']}")
    position = Decimal(account["positions"].get("0", {}).get("size", "0"))
    if journal["position"] != position:
        problems.append(f"position: venue {position}, journal {journal['position']}")
    resting_exits = sum(
        (
            Decimal(o["remaining_size"])
            for o in venue_orders
            if o["status"] == "open" and o["reduce_only"] and o["side"] == "sell"
        ),
        Decimal(0),
    )
    if resting_exits + journal["uncovered"] != position:
        problems.append(
            f"position {position} != resting take-profits {resting_exits} + waiting {journal['uncovered']}"
        )
    if journal["uncovered"] >= (Decimal(0) if strict else MIN_SIZE) and journal["uncovered"] != 0:
        problems.append(f"{journal['uncovered']} filled but waiting for its take-profit")
    live_entries = [o for o in venue_orders if o["status"] == "open" and not o["reduce_only"]]
    if len(live_entries) > 1:
        problems.append(f"{len(live_entries)} entries rest at once (orphans)")
    return problems


async def settled(
    http: aiohttp.ClientSession, venue: Any, bot: Bot, reconciliations: int, *, strict: bool = False
) -> None:
    """Wait (bounded) until the bot has reconciled after its start and agrees with the venue."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    problems: list[str] = ["not started"]
    while time.monotonic() < deadline:
        if not bot.alive():
            pytest.fail(f"the bot exited ({bot.process.returncode if bot.process else '?'}):\n{bot.output()}")
        journal = read_journal(bot.journal) if bot.journal.exists() else None
        if journal is not None:
            if journal["reconciled"] >= reconciliations:
                account = (await get_state(http, venue))["accounts"][str(venue.info["account_index"])]
                problems = compare(journal, account, strict=strict)
                if not problems:
                    return
        await asyncio.sleep(POLL)
    pytest.fail("journal and venue never agreed:\n  " + "\n  ".join(problems) + f"\n{bot.output()}")
