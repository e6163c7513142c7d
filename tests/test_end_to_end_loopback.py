"""runbot.py --exchange backpack|aster|edgex|grvt|paradex as a trader runs it, against each loopback venue
(Paradex in .venv-paradex; skipped elsewhere).

Both run as their own processes: the venue (``python -m tests.mock_venues.<venue>_venue``)
writes a ready file and a .env with its URLs and a throwaway key (ED25519 for Backpack, an HMAC
secret for Aster, HMAC credentials and an EIP-712 trading key for edgeX, a Stark key for
Paradex); the bot reads the .env and signs every request; the
venue verifies each signature. The test plays the market through the venue's control endpoint
and reads its truth from the state endpoint: it waits for the bot's entry, trades through it,
checks the take-profit (reduce-only post-only sell at fill x (1 + 0.02 %) rounded up to the
tick), fills that too, runs a second cycle whose take-profit stays resting, and stops the bot
with Ctrl-C while its third entry rests. Each venue's wire names are read through a small
:class:`Wire` table.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_processes import (
    QUANTITY,
    VenueProcess,
    start_bot,
    take_profit_target,
    venue_process,
    wait_for,
)

venue = pytest.fixture(params=["aster", "backpack", "edgex", "grvt", "paradex"])(venue_process)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def rows_for(rows: list[dict[str, str]], event: str, role: str, client_id: Any) -> list[dict[str, str]]:
    return [
        r
        for r in rows
        if r["event"] == event and r["role"] == role and r["client_order_id"] == str(client_id)
    ]


def test_grid_places_fills_and_takes_profit_end_to_end(venue: VenueProcess, tmp_path: Path) -> None:
    wire = venue.wire
    secret = next(
        line.split("=", 1)[1]
        for line in venue.env_file.read_text().splitlines()
        if line.startswith(wire.secret_variable)
    )
    bot = start_bot(tmp_path, wire.exchange, venue.env_file)
    log_dir = tmp_path / "logs"
    orders_csv = log_dir / f"{wire.exchange}_ETH_grid_buy_orders.csv"
    watched = [bot, venue]
    cid = wire.client_id
    try:
        handled: set[Any] = set()
        cycles: list[dict[str, Any]] = []
        for cycle in (1, 2):
            entry = wait_for(
                lambda: venue.resting(reduce_only=False, exclude=handled), f"resting entry {cycle}", watched
            )
            handled.add(entry[cid])
            assert entry["side"] == wire.buy and wire.post_only(entry)
            assert Decimal(entry[wire.quantity]) == QUANTITY
            entry_price = Decimal(entry["price"])
            fills = venue.control("trade_through", price=str(entry_price))
            assert [(f["client_id"], Decimal(f["price"]), f["is_maker"]) for f in fills] == [
                (entry[cid], entry_price, True)
            ]

            take_profit = wait_for(
                lambda: venue.resting(reduce_only=True, exclude=handled), f"take-profit {cycle}", watched
            )
            handled.add(take_profit[cid])
            assert take_profit["side"] == wire.sell and wire.post_only(take_profit)
            assert Decimal(take_profit[wire.quantity]) == QUANTITY
            assert Decimal(take_profit["price"]) == take_profit_target(entry_price)
            cycles.append({"entry": entry, "take_profit": take_profit})

            if cycle == 1:  # the first take-profit fills; the second is left resting
                fills = venue.control("trade_through", price=take_profit["price"])
                assert [f["client_id"] for f in fills] == [take_profit[cid]]
                wait_for(
                    lambda tp=take_profit[cid]: (
                        any(
                            r["event"] == "fill" and r["client_order_id"] == str(tp)
                            for r in read_rows(orders_csv)
                        )
                        or None
                    ),
                    "take-profit fill in the orders CSV",
                    watched,
                )

        last_entry = wait_for(
            lambda: venue.resting(reduce_only=False, exclude=handled), "third entry resting", watched
        )
        exit_code = bot.stop()
        stdout, stderr = bot.output()
        state = venue.state()
    finally:
        bot.close()

    assert exit_code == 0, bot.describe()
    assert "Traceback" not in stdout + stderr
    assert "SIGINT received" in stdout

    # The venue's truth: cycle 1 closed, cycle 2 long with its take-profit resting, the third
    # entry cancelled by the shutdown.
    first, second = cycles
    for order, status, executed in (
        (first["entry"], wire.filled, QUANTITY),
        (first["take_profit"], wire.filled, QUANTITY),
        (second["entry"], wire.filled, QUANTITY),
        (second["take_profit"], wire.resting, 0),
        (last_entry, wire.cancelled, 0),
    ):
        truth = venue.order(order[cid])
        assert truth["status"] == status and Decimal(truth[wire.executed]) == executed
    assert Decimal(state["position"][wire.position]) == QUANTITY

    # Every request was signed and verified; five orders and one cancel went out.
    assert state["signature_failures"] == 0
    requests = [(r.get("instruction") or r.get("path"), r["params"]) for r in state["signed_requests"]]
    places = [params for key, params in requests if key == wire.place]
    cancels = [wire.cancelled_id(key, params) for key, params in requests]
    cancels = [order_id for order_id in cancels if order_id is not None]
    assert len(places) == 5 and len(cancels) == 1
    take_profit_ids = {str(c["take_profit"][cid]) for c in cycles}
    for params in places:
        is_take_profit = str(params[wire.placed_client_id]) in take_profit_ids
        assert wire.placed_reduce_only(params) is is_take_profit
    assert cancels[0] == str(last_entry[wire.order_id])

    # The orders CSV: entry fills at the entry price, take-profits placed at exactly the target,
    # the exit fill, and the shutdown cancel of the resting entry.
    rows = read_rows(orders_csv)
    for c in cycles:
        entry_id, tp_id = c["entry"][cid], c["take_profit"][cid]
        (entry_fill,) = rows_for(rows, "fill", "entry", entry_id)
        fill_price = Decimal(entry_fill["fill_price"])
        assert fill_price == Decimal(c["entry"]["price"]) and Decimal(entry_fill["fill_size"]) == QUANTITY
        (tp_placed,) = rows_for(rows, "placed", "exit", tp_id)
        assert tp_placed["side"] == "sell" and Decimal(tp_placed["price"]) == take_profit_target(fill_price)
    (exit_fill,) = rows_for(rows, "fill", "exit", first["take_profit"][cid])
    assert Decimal(exit_fill["fill_price"]) == Decimal(first["take_profit"]["price"])
    assert not rows_for(rows, "fill", "exit", second["take_profit"][cid])
    shutdown_cancels = [r for r in rows if r["event"] == "cancelled" and r["detail"] == "shutdown"]
    assert [r["order_id"] for r in shutdown_cancels] == [str(last_entry[wire.order_id])]

    # The secret never leaves the .env file.
    activity_log = (log_dir / f"{wire.exchange}_ETH_grid_buy_activity.log").read_text()
    assert "FILL entry buy" in activity_log
    for text in (stdout, stderr, activity_log, orders_csv.read_text()):
        assert secret not in text


def test_boost_closes_each_filled_entry_at_market(venue: VenueProcess, tmp_path: Path) -> None:
    """--boost: every filled entry is closed by a reduce-only market order (IOC at the slippage
    bound on these venues), so the position goes back to flat after each fill."""
    wire = venue.wire
    bot = start_bot(tmp_path, wire.exchange, venue.env_file, "--boost")
    watched = [bot, venue]
    cid = wire.client_id
    try:
        handled: set[Any] = set()
        for cycle in (1, 2):
            entry = wait_for(
                lambda: venue.resting(reduce_only=False, exclude=handled), f"resting entry {cycle}", watched
            )
            handled.add(entry[cid])
            venue.control("trade_through", price=entry["price"])

            def closed(entry: dict[str, Any] = entry) -> dict[str, Any] | None:
                state = venue.state()
                exits = [o for o in state["orders"] if o["reduceOnly"] and o[cid] not in handled]
                if Decimal(state["position"][wire.position]) != 0 or not exits:
                    return None
                return exits[0]

            exit_order = wait_for(closed, f"market close {cycle}", watched)
            handled.add(exit_order[cid])
            assert exit_order["side"] == wire.sell and wire.immediate_or_cancel(exit_order)
            assert exit_order["status"] == wire.filled and Decimal(exit_order[wire.quantity]) == QUANTITY
            assert Decimal(exit_order[wire.executed]) == QUANTITY
            assert Decimal(exit_order["price"]) < Decimal(entry["price"])  # the bound lies below the bid
        exit_code = bot.stop()
        stdout, stderr = bot.output()
    finally:
        bot.close()
    assert exit_code == 0, bot.describe()
    assert "Traceback" not in stdout + stderr
    rows = read_rows(tmp_path / "logs" / f"{wire.exchange}_ETH_grid_buy_orders.csv")
    exit_fills = [r for r in rows if r["event"] == "fill" and r["role"] == "exit"]
    assert len(exit_fills) == 2 and all(r["side"] == "sell" and r["type"] == "market" for r in exit_fills)
