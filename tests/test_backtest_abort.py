"""A backtest that fails mid-run must fail promptly, not hang in asyncio's clean-up.

Each case runs in a child process with a timeout, so a regression fails the test instead of
hanging the suite. The cause being guarded: the bot task, cancelled by ``asyncio.run``'s
clean-up, shuts down in a ``finally`` that waits on the simulated clock for cancel
confirmations (the backtest's 20 ms latencies), and nothing advances that clock once the
engine's drive loop has raised.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Far above the few seconds these runs take; reached only by a hang.
TIMEOUT_SECONDS = 120

_BREAK_VENUE = """
import sys
from exchanges.paper import PaperExchangeClient

original = PaperExchangeClient.apply_bbo
calls = [0]


def apply_bbo(self, *args):
    calls[0] += 1
    if calls[0] == 200:  # mid-run: orders are resting and in flight by then
        raise {error}  # seed 7: the bot has orders to drain here (seed 3 hid the hang)
    return original(self, *args)


PaperExchangeClient.apply_bbo = apply_bbo
import backtest

sys.exit(backtest.main([
    "--synthetic-events", "20000", "--paper-seed", "7", "--take-profit", "0.02",
    "--wait-time", "30", "--out", sys.argv[1], "--no-plot",
]))
"""


def _run(error: str, out: Path) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(_BREAK_VENUE).replace("{error}", error)
    try:
        return subprocess.run(
            [sys.executable, "-c", script, str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the backtest hung after {error} instead of failing")


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ('RuntimeError("venue broke mid-run")', 1, "backtest.py: error: RuntimeError: venue broke mid-run"),
        ("KeyboardInterrupt", 130, "backtest.py: interrupted"),
    ],
)
def test_an_error_mid_run_surfaces_as_one_line_and_a_failing_exit_code(
    tmp_path: Path, error: str, code: int, message: str
) -> None:
    completed = _run(error, tmp_path / "out")
    assert completed.returncode == code, completed.stderr
    assert completed.stderr.strip().splitlines() == [message]
    assert "Traceback" not in completed.stdout + completed.stderr
