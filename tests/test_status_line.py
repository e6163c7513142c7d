"""helpers/status_line.py: one plain log line of the bot's state, at a bounded rate.

Time is a number the test moves; nothing sleeps.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from helpers.status_line import MAX_VALUE_CHARS, StatusLine, format_status_line

FACTS: dict[str, object] = {
    "state": "trading",
    "position": Decimal("0.030"),
    "take_profits": 2,
    "take_profit_size": Decimal("0.015"),
    "uncovered": Decimal("0.01"),
    "realized_pnl": Decimal("0.11"),
    "fees": Decimal("0.005"),
}


def test_line_reads_in_a_fixed_order() -> None:
    assert format_status_line(FACTS) == (
        "status | trading | pos 0.03 | TPs 2 (0.015) | uncovered 0.01 | PnL 0.1100 fees 0.0050 net 0.1050"
    )


def test_unrealized_is_part_of_net_and_extra_facts_follow() -> None:
    facts = {**FACTS, "uncovered": Decimal(0), "unrealized_pnl": Decimal("-0.2"), "mid": Decimal("3001.5")}
    assert format_status_line(facts) == (
        "status | trading | pos 0.03 | TPs 2 (0.015) | PnL 0.1100 fees 0.0050 unrealized -0.2000 "
        "net -0.0950 | mid 3001.5"
    )


def test_missing_facts_are_left_out() -> None:
    assert format_status_line({"state": "paused: stale market data"}) == "status | paused: stale market data"
    assert format_status_line({"position": Decimal("-0.5"), "realized_pnl": Decimal("1")}) == (
        "status | pos -0.5 | PnL 1.0000 net 1.0000"
    )


def test_always_one_plain_line() -> None:
    """No newline, carriage return or escape sequence can reach the console through a value."""
    line = format_status_line({"state": "stopping:\nline two\r\x1b[2Kover", "note": "x" * 500})
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "stopping: line two [2Kover" in line
    assert f"note {'x' * (MAX_VALUE_CHARS - 3)}..." in line


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_written_at_most_every_interval_and_unchanged_lines_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeTime()
    logger = logging.getLogger("test.status_line")
    line = StatusLine(logger, clock, interval=30, unchanged_interval=300)
    written = []
    with caplog.at_level(logging.INFO, logger="test.status_line"):
        for step in range(0, 600, 5):  # an update every 5 s; the position changes at 100 s and 410 s
            clock.t = 1000.0 + step
            position = "0.03" if step < 100 else "0.04" if step < 410 else "0.05"
            if line.update({**FACTS, "position": Decimal(position)}):
                written.append(step)
    # 100: changed; 400: unchanged for 300 s; 430: changed at 410 but 30 s must pass after 400.
    assert written == [0, 100, 400, 430]
    positions = [record.getMessage().split(" | ")[2] for record in caplog.records]
    assert positions == ["pos 0.03", "pos 0.04", "pos 0.04", "pos 0.05"]
    assert all(record.levelno == logging.INFO for record in caplog.records)


def test_rates_must_make_sense() -> None:
    with pytest.raises(ValueError, match="interval"):
        StatusLine(logging.getLogger("x"), FakeTime(), interval=0)
    with pytest.raises(ValueError, match="interval"):
        StatusLine(logging.getLogger("x"), FakeTime(), interval=60, unchanged_interval=30)
