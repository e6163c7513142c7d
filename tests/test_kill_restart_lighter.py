"""Money survives kill -9: the Lighter bot killed at random moments while trading, and restarted.

The mock Lighter venue runs in its own process and outlives the bot. Each round the test fills
some of the bot's orders on the venue (entries, take-profits, partly or fully), lets a random
moment pass and SIGKILLs the bot, then starts it again with the same command. After every restart
(once the bot has reconciled and has nothing in flight) and at the end, the bot's journal is
compared with the venue's truth:

* every venue fill of the bot's orders is in the journal (per order, the same filled size);
* the journaled position equals the venue's position;
* position = size of the take-profits resting on the venue + filled size the journal holds as
  waiting for its take-profit, and once the bot has settled nothing is left waiting;
* no entry is orphaned: every live entry on the venue is one the journal knows.

The counts (kills, fills, uncovered size) are printed for the closing note.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bot_process import POLL, SETTLE_TIMEOUT, Bot, ours, read_journal, settled
from tests.venue_process import HTTP_TIMEOUT, control, get_state, venue_process

pytest.importorskip("lighter")

KILLS = int(os.environ.get("KILL_TEST_ROUNDS", "20"))
SEED = int(os.environ.get("KILL_TEST_SEED", "11"))


async def live_entry(http: aiohttp.ClientSession, venue: Any) -> dict[str, Any]:
    """The bot's entry resting on the venue, once there is one (bounded wait)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        account = (await get_state(http, venue))["accounts"][str(venue.info["account_index"])]
        for order in account["orders"]:
            if ours(order) and order["status"] == "open" and not order["reduce_only"]:
                return dict(order)
        await asyncio.sleep(POLL)
    pytest.fail(f"no entry of the bot rested on the venue within {SETTLE_TIMEOUT} s")


async def test_kill_9_at_random_moments_never_loses_a_fill_or_leaves_one_uncovered(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    env_file = tmp_path / "bot.env"
    async with venue_process(tmp_path, "--env-out", str(env_file), "--seed", str(SEED)) as venue:
        bot = Bot(tmp_path, env_file, "--no-risk")
        fills_made = 0
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            bot.start()
            try:
                for round_number in range(1, KILLS + 1):
                    await settled(http, venue, bot, reconciliations=round_number)
                    # Trade against what the bot has on the venue, then kill it at a random moment.
                    account = (await get_state(http, venue))["accounts"][str(venue.info["account_index"])]
                    mine = [o for o in account["orders"] if ours(o) and o["status"] == "open"]
                    for order in rng.sample(mine, k=min(len(mine), rng.randint(1, 3))):
                        part = rng.choice([Decimal("0.0030"), Decimal(order["remaining_size"])])
                        size = min(part, Decimal(order["remaining_size"]))
                        await control(
                            http, venue, action="trade_through", price=order["price"], size=str(size)
                        )
                        fills_made += 1
                        await asyncio.sleep(rng.uniform(0, 0.3))
                    await asyncio.sleep(rng.uniform(0.05, 1.5))
                    bot.kill()
                    bot.start()
                await settled(http, venue, bot, reconciliations=KILLS + 1)
                # One full fill of the live entry: anything below the minimum joins its take-profit.
                # (An entry whose request the last kill cut off is looked up for at least 12 s
                # before the bot places another: wait for the one that rests.)
                entry = await live_entry(http, venue)
                await control(http, venue, action="trade_through", price=entry["price"])
                await settled(http, venue, bot, reconciliations=KILLS + 1, strict=True)
                final = read_journal(bot.journal)
                account = (await get_state(http, venue))["accounts"][str(venue.info["account_index"])]
            finally:
                if bot.alive():
                    bot.process.send_signal(signal.SIGINT)  # type: ignore[union-attr]
                    try:
                        bot.process.wait(timeout=30)  # type: ignore[union-attr]
                    except subprocess.TimeoutExpired:
                        bot.kill()
        venue_fills = sum(1 for trade in account["trades"] if ours(trade))
        summary = (
            f"kill test: {KILLS} kills, {fills_made} fills made by the test, {venue_fills} venue trades "
            f"of the bot, {final['fills']} journaled fills, position {final['position']}, "
            f"uncovered {final['uncovered']}"
        )
        print("\n" + summary)
        assert bot.process is not None and bot.process.returncode == 0, bot.output()
        assert final["fills"] >= 1 and final["uncovered"] == 0
