"""Kill test on Backpack, Aster, edgeX, GRVT and Paradex (Paradex in .venv-paradex): the bot is killed with
SIGKILL at random moments while it trades against the loopback venue (its own process) and
restarted with the same command each time.

After every restart, once the bot has reconciled its journal with the venue, and at the end this
must hold against the venue's truth: position = size of the resting take-profits (nothing
uncovered). At the end, after a clean Ctrl-C stop, every fill the venue made of our orders is in
the journal with the venue's filled size, and no entry is left open (none orphaned). The numbers
(kills, fills, uncovered size) are printed for the closing note. A quarter of the kills come
before an entry fills, so the restarted bot must find that fill by looking its order up.
``KILL_TEST_KILLS`` sets the number of kills per venue (default 20); ``KILL_TEST_SEED`` the
moments.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_processes import Child, VenueProcess, start_bot, venue_process, wait_for

venue = pytest.fixture(params=["aster", "backpack", "edgex", "grvt", "paradex"])(venue_process)

KILLS = int(os.environ.get("KILL_TEST_KILLS", "20"))
SEED = int(os.environ.get("KILL_TEST_SEED", "11"))


def uncovered(venue: VenueProcess) -> Decimal:
    """Venue position minus the unfilled size of our resting take-profits."""
    wire = venue.wire
    state = venue.state()
    resting = sum(
        (
            Decimal(o[wire.quantity]) - Decimal(o[wire.executed])
            for o in state["orders"]
            if o["status"] in (wire.resting, "PartiallyFilled", "PARTIALLY_FILLED") and o["reduceOnly"]
        ),
        Decimal(0),
    )
    return Decimal(state["position"][wire.position]) - resting


def started(bot: Child) -> bool | None:
    return True if "started as" in bot.output()[0] else None


def kill_now(bot: Child) -> None:
    if bot.process.poll() is None:
        bot.process.kill()
        bot.process.wait(timeout=10)


def settled(venue: VenueProcess, watched: list[Child]) -> None:
    """Wait (bounded) until nothing is uncovered; the failure names the uncovered size."""
    try:
        wait_for(lambda: True if uncovered(venue) == 0 else None, "position covered by take-profits", watched)
    except BaseException:
        print(f"uncovered: {uncovered(venue)}")
        raise


def test_sigkill_at_random_moments_leaves_nothing_uncovered_or_orphaned(
    venue: VenueProcess, tmp_path: Path
) -> None:
    wire = venue.wire
    rng = random.Random(SEED)
    dead_fills = 0
    for kill in range(KILLS):
        bot = start_bot(
            tmp_path / f"run{kill}", wire.exchange, venue.env_file, "--log-dir", str(tmp_path / "logs")
        )
        try:
            wait_for(lambda bot=bot: started(bot), f"bot start {kill}", [bot, venue])
            settled(venue, [bot, venue])
            entry = wait_for(
                lambda: venue.resting(reduce_only=False, exclude=set()), "resting entry", [bot, venue]
            )
            roll = rng.random()
            if roll < 0.35:  # the entry fills; the kill lands in the bot's reaction to it
                venue.control("trade_through", price=entry["price"])
                time.sleep(rng.uniform(0.0, 0.05))
            elif roll < 0.6:  # the kill comes first; the entry fills while no bot is running
                kill_now(bot)
                dead_fills += 1
                venue.control("trade_through", price=entry["price"])
            elif roll < 0.8:  # a take-profit fills, then the kill
                exit_order = venue.resting(reduce_only=True, exclude=set())
                if exit_order is not None:
                    venue.control("trade_through", price=exit_order["price"])
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.0, 0.4))
        finally:
            kill_now(bot)
            bot.close()

    final = start_bot(tmp_path / "final", wire.exchange, venue.env_file, log_dir=tmp_path / "logs")
    try:
        wait_for(lambda: started(final), "final bot start", [final, venue])
        settled(venue, [final, venue])
        exit_code = final.stop()
    finally:
        final.close()
    assert exit_code == 0, final.describe()

    state = venue.state()
    ours = [o for o in state["orders"] if Decimal(o[wire.executed]) > 0]
    fills = len(ours)
    assert uncovered(venue) == 0
    open_entries = [
        o for o in state["orders"] if o["status"] in (wire.resting, "PartiallyFilled", "PARTIALLY_FILLED")
    ]
    assert all(o["reduceOnly"] for o in open_entries), "an entry was left open after the clean stop"

    journal = next((tmp_path / "logs").glob("*_journal.sqlite3"))
    with sqlite3.connect(journal) as db:
        booked: dict[str, Any] = dict(db.execute("SELECT client_order_id, filled_size FROM orders"))
    for order in ours:
        client_id = str(order[wire.client_id])
        assert client_id in booked, f"venue fill of {client_id} missing from the journal"
        assert Decimal(booked[client_id]) == Decimal(order[wire.executed])
    print(
        f"{wire.exchange}: {KILLS} kills ({dead_fills} entries filled while no bot ran), "
        f"{fills} orders filled on the venue, "
        f"position {state['position'][wire.position]}, uncovered {uncovered(venue)}"
    )
