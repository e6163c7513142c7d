"""runbot.py --exchange lighter as a trader runs it, against the loopback Lighter venue.

The venue (tests/mock_venues/lighter_venue.py) runs in this test's process, in its own thread; the
bot is a child process that finds it through the URLs and keys in a temporary .env file and signs
every transaction with lighter-sdk's native signer. The test plays the market: it waits (bounded
polling of the venue's state) until the bot's entry rests, trades through it, checks the
take-profit that comes back (reduce-only sell at fill x (1 + 0.02 %) rounded up to the tick),
fills that too, then runs a second cycle whose take-profit stays unfilled, and stops the bot with
Ctrl-C while its third entry rests. It then checks the exit code, the orders CSV, the signed
transactions the venue accepted, what was left on the venue, and that the private key appears in
no output or log.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lighter")

from tests.loopback_processes import QUANTITY, start_bot, take_profit_target, wait_for
from tests.mock_venues import MockLighterVenue

# QUANTITY (0.0100) clears the mock's ETH market minimums (0.005 ETH and 10 USDC).
TX_CREATE_ORDER = 14
TX_CANCEL_ORDER = 15
TIF_POST_ONLY = 2
STEP_TIMEOUT = 20.0


@pytest.fixture
def venue() -> Any:
    mock = MockLighterVenue(start_price=Decimal("3000"), api_key_index=4).start()
    try:
        yield mock
    finally:
        mock.stop()


def resting(venue: MockLighterVenue, *, reduce_only: bool, exclude: set[int]) -> dict[str, Any] | None:
    """The bot's resting order of the given kind that the test has not handled yet."""
    for order in venue.orders():
        if (
            order["status"] == "open"
            and bool(order["reduce_only"]) is reduce_only
            and order["client_order_index"] not in exclude
        ):
            return order
    return None


def venue_order(venue: MockLighterVenue, client_order_index: int) -> dict[str, Any]:
    (order,) = [o for o in venue.orders() if o["client_order_index"] == client_order_index]
    return order


def read_rows(log_dir: Path) -> list[dict[str, str]]:
    with (log_dir / "lighter_ETH_grid_buy_orders.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def rows_for(
    rows: list[dict[str, str]], event: str, role: str, client_order_index: int
) -> list[dict[str, str]]:
    return [
        r
        for r in rows
        if r["event"] == event and r["role"] == role and r["client_order_id"] == str(client_order_index)
    ]


def test_grid_on_lighter_places_fills_and_takes_profit_end_to_end(
    venue: MockLighterVenue, tmp_path: Path
) -> None:
    env_file = tmp_path / "lighter.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in venue.env().items()))
    private_key = venue.api_private_key
    log_dir = tmp_path / "logs"
    bot = start_bot(tmp_path, "lighter", env_file, log_dir=log_dir)
    try:
        handled: set[int] = set()
        cycles: list[dict[str, Any]] = []
        for cycle in (1, 2):
            entry = wait_for(
                lambda: resting(venue, reduce_only=False, exclude=handled),
                f"resting entry {cycle}",
                [bot],
                STEP_TIMEOUT,
            )
            handled.add(entry["client_order_index"])
            assert entry["side"] == "buy" and entry["time_in_force"] == "post-only"
            assert Decimal(entry["initial_base_amount"]) == QUANTITY
            entry_price = Decimal(entry["price"])
            trades = venue.trade_through(entry_price)
            assert [(t["bid_client_id"], Decimal(t["price"])) for t in trades] == [
                (entry["client_order_index"], entry_price)
            ]

            take_profit = wait_for(
                lambda: resting(venue, reduce_only=True, exclude=handled),
                f"take-profit {cycle}",
                [bot],
                STEP_TIMEOUT,
            )
            handled.add(take_profit["client_order_index"])
            assert take_profit["side"] == "sell" and take_profit["time_in_force"] == "post-only"
            assert Decimal(take_profit["initial_base_amount"]) == QUANTITY
            assert Decimal(take_profit["price"]) == take_profit_target(entry_price)
            cycles.append({"entry": entry, "take_profit": take_profit})

            if cycle == 1:  # the first take-profit fills; the second is left resting
                trades = venue.trade_through(Decimal(take_profit["price"]))
                assert [t["ask_client_id"] for t in trades] == [take_profit["client_order_index"]]
                wait_for(
                    lambda cid=take_profit["client_order_index"]: (
                        any(
                            r["event"] == "fill" and r["client_order_id"] == str(cid)
                            for r in read_rows(log_dir)
                        )
                        or None
                    ),
                    "take-profit fill in the orders CSV",
                    [bot],
                    STEP_TIMEOUT,
                )

        last_entry = wait_for(
            lambda: resting(venue, reduce_only=False, exclude=handled),
            "third entry resting",
            [bot],
            STEP_TIMEOUT,
        )
        exit_code = bot.stop()
        stdout, stderr = bot.output()
    finally:
        bot.close()

    assert exit_code == 0, bot.describe()
    assert "Traceback" not in stdout + stderr
    assert "SIGINT received" in stdout

    # What the venue ended with: cycle 1 closed, cycle 2 long with its take-profit resting,
    # the third entry cancelled by the shutdown.
    first, second = cycles
    assert venue_order(venue, first["entry"]["client_order_index"])["status"] == "filled"
    assert venue_order(venue, first["take_profit"]["client_order_index"])["status"] == "filled"
    assert venue_order(venue, second["entry"]["client_order_index"])["status"] == "filled"
    assert venue_order(venue, second["take_profit"]["client_order_index"])["status"] == "open"
    assert venue_order(venue, last_entry["client_order_index"])["status"] == "canceled"
    assert venue.position() == QUANTITY

    # The signed transactions the venue accepted: five orders and one cancel, consecutive nonces.
    stats = venue.stats()
    assert stats.rejected == [] and stats.invalid_nonces == 0
    creates = [tx for tx in stats.txs if tx["tx_type"] == TX_CREATE_ORDER]
    cancels = [tx for tx in stats.txs if tx["tx_type"] == TX_CANCEL_ORDER]
    assert len(creates) == 5 and len(cancels) == 1 and len(stats.txs) == 6
    for tx in stats.txs:
        assert tx["AccountIndex"] == venue.account_index and tx["ApiKeyIndex"] == venue.api_key_index
        assert tx["Sig"]
    nonces = [tx["Nonce"] for tx in stats.txs]
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))
    take_profit_ids = {c["take_profit"]["client_order_index"] for c in cycles}
    for tx in creates:
        is_take_profit = tx["ClientOrderIndex"] in take_profit_ids
        assert bool(tx["ReduceOnly"]) is is_take_profit
        assert bool(tx["IsAsk"]) is is_take_profit
        assert tx["TimeInForce"] == TIF_POST_ONLY
    assert cancels[0]["Index"] == last_entry["order_index"]

    # The orders CSV: entry fills, take-profits placed at exactly the target, the exit fill,
    # and the shutdown cancel of the resting entry (never of the resting take-profit).
    rows = read_rows(log_dir)
    for c in cycles:
        entry_id, tp_id = c["entry"]["client_order_index"], c["take_profit"]["client_order_index"]
        (entry_fill,) = rows_for(rows, "fill", "entry", entry_id)
        fill_price = Decimal(entry_fill["fill_price"])
        assert fill_price == Decimal(c["entry"]["price"])
        assert Decimal(entry_fill["fill_size"]) == QUANTITY and entry_fill["side"] == "buy"
        (tp_placed,) = rows_for(rows, "placed", "exit", tp_id)
        assert tp_placed["side"] == "sell" and Decimal(tp_placed["quantity"]) == QUANTITY
        assert Decimal(tp_placed["price"]) == take_profit_target(fill_price)
    (exit_fill,) = rows_for(rows, "fill", "exit", first["take_profit"]["client_order_index"])
    assert Decimal(exit_fill["fill_price"]) == Decimal(first["take_profit"]["price"])
    assert Decimal(exit_fill["fill_size"]) == QUANTITY and exit_fill["side"] == "sell"
    assert not rows_for(rows, "fill", "exit", second["take_profit"]["client_order_index"])
    shutdown_cancels = [r for r in rows if r["event"] == "cancelled" and r["detail"] == "shutdown"]
    assert [r["order_id"] for r in shutdown_cancels] == [str(last_entry["order_index"])]

    # The key never leaves the .env file.
    activity_log = (log_dir / "lighter_ETH_grid_buy_activity.log").read_text()
    assert "FILL entry buy" in activity_log
    for text in (stdout, stderr, activity_log, (log_dir / "lighter_ETH_grid_buy_orders.csv").read_text()):
        assert private_key not in text
        assert private_key.lower() not in text.lower()
