#!/usr/bin/env python3
"""What the journal costs a fill's reaction: its calls queued on the loop, and the commit.

Not a test. It books ``--fills`` fills the way the execution engine does on the reaction path
(inside ``journal.deferred()``: the lot, the fill with the order's new state and the ledger, then
the order's final state) into a journal file with an orders CSV, and times, per fill:

* ``fill``: ``save_lot`` + ``save_fill`` as queued (what the reaction pays before it decides);
* ``order``: the ``save_order`` of the order's final state, queued;
* ``flush``: the commit of all of it (made beside the take-profit's signature in a live bot).

The loop yields every 50 fills so the CSV writer thread runs as it would. Medians of the fills
after the first ``--warmup``. Wall-clock: compare runs made side by side (``--root`` measures
another checkout's code with this harness).

Run:  python benchmarks/journal_reaction_writes.py [--fills 3000] [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def measure(fills: int, warmup: int) -> dict[str, float]:
    from exchanges.base import OrderSide, OrderStatus, OrderType
    from execution.journal import ExecutionJournal
    from execution.records import FillRecord, Lot, OrderRecord
    from helpers.position_ledger import PositionLedger
    from strategies.base_strategy import OrderRole

    folder = Path(tempfile.mkdtemp(prefix="journal-bench-"))
    journal = ExecutionJournal(folder / "journal.sqlite", folder / "orders.csv")
    ledger = PositionLedger()
    times: dict[str, list[float]] = {"fill": [], "order": [], "flush": []}
    for number in range(fills):
        cid = f"c{number}"
        record = OrderRecord(
            cid,
            OrderRole.ENTRY,
            OrderSide.BUY,
            OrderType.LIMIT,
            Decimal("0.1"),
            Decimal("3000.5"),
            "0",
            status=OrderStatus.OPEN,
            venue_order_id=f"v{number}",
        )
        fill = FillRecord(
            f"{cid}#0.1",
            cid,
            OrderRole.ENTRY,
            OrderSide.BUY,
            Decimal("3000.5"),
            Decimal("0.1"),
            Decimal("0.0123"),
            float(number),
            realized_pnl=Decimal("0.5"),
        )
        lot = Lot(fill.fill_id, cid, OrderSide.BUY, Decimal("0.1"), Decimal("3000.5"), float(number))
        started = time.perf_counter()
        with journal.deferred(), journal.atomic():
            journal.save_lot(lot)
            journal.save_fill(fill, record, ledger)
        booked = time.perf_counter()
        with journal.deferred(), journal.atomic():
            record.status = OrderStatus.FILLED
            journal.save_order(record, "filled", float(number))
        ended = time.perf_counter()
        journal.flush()
        flushed = time.perf_counter()
        if number >= warmup:
            times["fill"].append(booked - started)
            times["order"].append(ended - booked)
            times["flush"].append(flushed - ended)
        if number % 50 == 0:
            await asyncio.sleep(0.01)
    journal.close()
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose code is measured")
    args = parser.parse_args(argv)
    if args.fills <= args.warmup:
        parser.error("--fills must exceed --warmup")
    sys.path.insert(0, str(args.root.resolve()))
    result = asyncio.run(measure(args.fills, args.warmup))
    print(
        f"{args.root}: p50 us  fill {result['fill']:.1f}  order {result['order']:.1f}  "
        f"flush {result['flush']:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
