"""A journal that stops writing (disk full) stops the bot as a kill would, and a restart heals.

No order may leave unjournaled, so the bot cannot go on trading; it must not crash either (no
traceback, a summary, exit code 1), and it must not act on the venue on its way out (cancels
would need journaling too). What it could not write, the venue knows: the next start, with a
journal that writes again, reconciles and covers the fill that came meanwhile.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest

from exchanges.base import OrderSide
from tests.test_journal_deferral import FlakyConnection
from tests.test_risk_and_shutdown import Session
from trading_bot import EXIT_ERROR, TradingBot


def make_flaky(bot: TradingBot) -> FlakyConnection:
    journal = bot.journal
    flaky = FlakyConnection(journal._transaction._db)
    journal._transaction._db = flaky  # type: ignore[assignment]
    journal._db = flaky  # type: ignore[assignment]
    return flaky


async def test_a_journal_that_cannot_write_stops_the_bot_cleanly_and_a_restart_covers_the_fill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = Session()
    session.config.log_dir = tmp_path
    session.bot = TradingBot(session.config, clock=session.clock, exchange_client=session.venue)
    await session.start()
    entry = session.entry()
    flaky = make_flaky(session.bot)
    flaky.failing = True
    session.venue.fill(entry.order_id)  # its booking and its take-profit's intent cannot be written
    summary = await session.finished()

    assert summary.exit_code == EXIT_ERROR
    assert "the journal could not write" in summary.stop_reason
    assert "disk is full" in summary.stop_reason
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    # Nothing was sent without its intent, and nothing was cancelled on the way out.
    assert session.venue.position == D("0.01")
    assert session.resting(OrderSide.SELL) == []

    # A new process in life; here the same mock venue object, so the stopped bot stops listening.
    session.venue._order_handlers.clear()
    session.venue._market_handlers.clear()
    restarted = TradingBot(session.config, clock=session.clock, exchange_client=session.venue)
    task = asyncio.ensure_future(restarted.run())
    restarted.expect_activity()
    await asyncio.wait_for(restarted.wait_until_idle(), timeout=10)
    assert restarted.execution.position == D("0.01") == session.venue.position
    assert sum((o.remaining_size for o in session.resting(OrderSide.SELL)), D(0)) == D("0.01")
    restarted.request_shutdown("done")
    final = await asyncio.wait_for(task, timeout=10)
    assert final.exit_code == 0 and final.uncovered_size == 0
