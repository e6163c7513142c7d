"""A compact status line for the console, written as an ordinary log line now and then.

Why a log line and not a line redrawn in place: bots run for days in tmux windows, and their
console is also piped into files and ``journalctl``. Carriage returns and cursor movement leave
half-overwritten lines in tmux's scrollback and escape codes in files, so the line is a plain
record through the normal logging handlers (console and activity log alike), and the rate is
bounded instead: at most one line every ``interval`` seconds, and a line that says nothing new
only every ``unchanged_interval`` seconds (so an idle bot still shows it is alive without filling
the scrollback).

The facts come as a mapping, so the bot decides what it knows (a strategy without take-profits
leaves them out) and this module only decides how it reads:

    status | trading | pos 0.03 | TPs 2 (0.015) | uncovered 0.01 | PnL 0.1100 fees 0.0050 net 0.1050

Known keys, in this order: ``state``, ``position``, ``take_profits`` with ``take_profit_size``,
``uncovered``, ``realized_pnl`` with ``fees`` (and ``unrealized_pnl``, folded into ``net``);
any other key follows as ``key value`` in the mapping's order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal

DEFAULT_INTERVAL = 30.0
DEFAULT_UNCHANGED_INTERVAL = 300.0
#: Longest text one value may take; the line stays one line on any terminal that shows 160 columns.
MAX_VALUE_CHARS = 60

_KNOWN = (
    "state",
    "position",
    "take_profits",
    "take_profit_size",
    "uncovered",
    "realized_pnl",
    "fees",
    "unrealized_pnl",
)


def _text(value: object) -> str:
    """One value as single-line text: no newlines or control characters, bounded length."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f") if value.is_finite() else str(value)
    else:
        text = str(value)
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _money(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, Decimal) and value.is_finite() else _text(value)


def format_status_line(facts: Mapping[str, object]) -> str:
    """The one line for ``facts`` (see the module docstring for the keys)."""
    parts = ["status"]
    if "state" in facts:
        parts.append(_text(facts["state"]))
    if "position" in facts:
        parts.append(f"pos {_text(facts['position'])}")
    if "take_profits" in facts:
        resting = _text(facts["take_profits"])
        if "take_profit_size" in facts:
            resting += f" ({_text(facts['take_profit_size'])})"
        parts.append(f"TPs {resting}")
    uncovered = facts.get("uncovered")
    if uncovered is not None and uncovered != 0:
        parts.append(f"uncovered {_text(uncovered)}")  # only when there is some: it needs attention
    if "realized_pnl" in facts:
        pnl = f"PnL {_money(facts['realized_pnl'])}"
        fees = facts.get("fees")
        if fees is not None:
            pnl += f" fees {_money(fees)}"
        realized = facts["realized_pnl"]
        unrealized = facts.get("unrealized_pnl")
        if isinstance(realized, Decimal) and isinstance(fees, Decimal | None):
            net = realized - (fees or Decimal(0))
            if isinstance(unrealized, Decimal):
                pnl += f" unrealized {_money(unrealized)}"
                net += unrealized
            pnl += f" net {_money(net)}"
        parts.append(pnl)
    parts.extend(f"{_text(key)} {_text(value)}" for key, value in facts.items() if key not in _KNOWN)
    return " | ".join(parts)


class StatusLine:
    """Logs :func:`format_status_line` at most every ``interval`` seconds (``unchanged_interval``
    when the line is the same as the last one written).

    ``now`` is the bot's clock (``clock.now``), so a backtest in simulated time writes its lines
    at simulated intervals and a test needs no sleeping.
    """

    def __init__(
        self,
        logger: logging.Logger,
        now: Callable[[], float],
        interval: float = DEFAULT_INTERVAL,
        unchanged_interval: float = DEFAULT_UNCHANGED_INTERVAL,
        level: int = logging.INFO,
    ) -> None:
        if interval <= 0 or unchanged_interval < interval:
            raise ValueError("need 0 < interval <= unchanged_interval")
        self._logger = logger
        self._now = now
        self.interval = interval
        self.unchanged_interval = unchanged_interval
        self.level = level
        self._last_line: str | None = None
        self._last_at: float | None = None

    def update(self, facts: Mapping[str, object]) -> bool:
        """Write the line if it is due; True when it was written. Cheap when not due: the line
        is only formatted once ``interval`` has passed."""
        now = self._now()
        last = self._last_at
        if last is not None and now - last < self.interval:
            return False
        line = format_status_line(facts)
        if last is not None and line == self._last_line and now - last < self.unchanged_interval:
            return False
        self._logger.log(self.level, "%s", line)
        self._last_line = line
        self._last_at = now
        return True
