"""Fault soak: the Lighter bot trades through every fault the mock venue can inject.

The mock Lighter venue runs in its own process with a fast seeded random walk (so the bot's
orders fill on both sides) and every fault type at seeded random moments: dropped connections,
429 with and without Retry-After, 5xx, replies slower than the client's timeout, duplicated and
reordered messages, book gaps, malformed and oversized frames. Once the venue has injected
FAULT_SOAK_FAULTS faults (1,000 here; ``FAULT_SOAK_FAULTS=10000`` for the long version, marked
``soak``), the faults stop and the bot must still be trading, and its journal must agree with
the venue: every venue fill journaled, the same position, position = resting take-profits +
filled size waiting (below the venue minimum), at most one entry resting. Then Ctrl-C: exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.bot_process import Bot, ours, read_journal, settled
from tests.venue_process import HTTP_TIMEOUT, control, get_state, venue_process

pytest.importorskip("lighter")

FAULTS = int(os.environ.get("FAULT_SOAK_FAULTS", "1000"))
SEED = int(os.environ.get("FAULT_SOAK_SEED", "5"))
#: Bounded: faults arrive at ~8 a second at these rates on the 2-core CI machine.
SOAK_TIMEOUT = max(300.0, FAULTS / 5)

RATES = (
    ("--ws-drop-rate", "0.002"),
    ("--http-429-retry-after-rate", "0.03"),
    ("--http-429-rate", "0.03"),
    ("--http-5xx-rate", "0.03"),
    ("--slow-reply-rate", "0.01"),
    ("--slow-ms", "11000"),
    ("--retry-after", "0.5"),
    ("--ws-duplicate-rate", "0.08"),
    ("--ws-reorder-rate", "0.05"),
    ("--book-gap-rate", "0.03"),
    ("--malformed-frame-rate", "0.03"),
    ("--oversized-frame-rate", "0.002"),
)


def _soak_marker(function):  # type: ignore[no-untyped-def]
    return pytest.mark.soak(function) if FAULTS > 1000 else function


@_soak_marker
async def test_the_bot_trades_through_a_thousand_faults_and_agrees_with_the_venue(tmp_path: Path) -> None:
    env_file = tmp_path / "bot.env"
    args = ["--env-out", str(env_file), "--seed", str(SEED), "--fault-seed", str(SEED), "--walk", "0.02"]
    for flag, value in RATES:
        args += [flag, value]
    async with venue_process(tmp_path, *args) as venue:
        bot = Bot(tmp_path, env_file, "--max-consecutive-failures", "1000")
        bot.start()
        try:
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                deadline = time.monotonic() + SOAK_TIMEOUT
                counts: dict[str, int] = {}
                while time.monotonic() < deadline:
                    if not bot.alive():
                        pytest.fail(f"the bot exited during the soak:\n{bot.output()}")
                    counts = (await get_state(http, venue))["faults"]["counts"]
                    if sum(counts.values()) >= FAULTS:
                        break
                    await asyncio.sleep(0.5)
                injected = sum(counts.values())
                assert injected >= FAULTS, f"only {injected} faults in {SOAK_TIMEOUT:.0f} s: {counts}"
                await control(http, venue, action="clear_faults")
                journal_before = read_journal(bot.journal)
                assert journal_before is not None
                # Still trading: orders keep being placed after the storm.
                placed_before = len(journal_before["orders"])
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    journal = read_journal(bot.journal)
                    if journal is not None and len(journal["orders"]) > placed_before:
                        break
                    await asyncio.sleep(0.2)
                else:
                    pytest.fail(f"no new order within 60 s after the faults stopped:\n{bot.output()}")
                await settled(http, venue, bot, reconciliations=1)
                account = (await get_state(http, venue))["accounts"][str(venue.info["account_index"])]
                final = read_journal(bot.journal)
                assert final is not None
        finally:
            if bot.alive():
                bot.process.send_signal(signal.SIGINT)  # type: ignore[union-attr]
                bot.process.wait(timeout=60)  # type: ignore[union-attr]
        venue_trades = sum(1 for trade in account["trades"] if ours(trade))
        print(
            f"\nfault soak: {injected} faults {dict(sorted(counts.items()))}, {venue_trades} venue trades of "
            f"the bot, {final['fills']} journaled fills, {len(final['orders'])} orders, position "
            f"{final['position']}, waiting {final['uncovered']}"
        )
        assert final["fills"] >= 1
        assert bot.process is not None and bot.process.returncode == 0, bot.output()
