"""runbot.py as a trader runs it, on the paper venue, in a child process.

These tests check what lands in the orders CSV and the process's exit: entries placed and
filled, take-profits at exactly fill x (1 + take-profit %) rounded up to the tick, for the filled
size; and a clean Ctrl-C that cancels entries but leaves take-profits resting.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TICK = Decimal("0.1")


def runbot_command(log_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "runbot.py"),
        "--exchange",
        "paper",
        "--ticker",
        "BTC",
        "--quantity",
        "0.002",
        "--take-profit",
        "0.02",
        "--log-dir",
        str(log_dir),
        "--env-file",
        str(log_dir / "absent.env"),
        *extra,
    ]


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LIGHTER_")}
    env["COLUMNS"] = "200"
    return env


def read_rows(log_dir: Path) -> list[dict[str, str]]:
    path = log_dir / "paper_BTC_grid_buy_orders.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def take_profit_target(fill_price: Decimal) -> Decimal:
    raw = fill_price * (1 + Decimal("0.02") / 100)
    return (raw / TICK).to_integral_value(rounding=ROUND_CEILING) * TICK


def test_paper_run_places_fills_and_takes_profit_at_the_right_prices(tmp_path: Path) -> None:
    completed = subprocess.run(
        runbot_command(
            tmp_path,
            "--wait-time",
            "1",
            "--duration",
            "10",
            "--paper-step",
            "0.02",
            "--paper-volatility",
            "2",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    assert "duration of 10 s reached" in completed.stdout
    assert "realized PnL" in completed.stdout

    rows = read_rows(tmp_path)
    entry_fills = [row for row in rows if row["event"] == "fill" and row["role"] == "entry"]
    exits_placed = [row for row in rows if row["event"] == "placed" and row["role"] == "exit"]
    assert entry_fills, "the grid should have had an entry filled in 10 s of a volatile market"
    assert exits_placed, "every entry fill should produce a take-profit order"

    full_fills = [row for row in entry_fills if Decimal(row["fill_size"]) == Decimal("0.002")]
    assert full_fills
    targets = {take_profit_target(Decimal(row["fill_price"])) for row in full_fills}
    exit_prices = {Decimal(row["price"]) for row in exits_placed}
    assert targets & exit_prices, f"take-profits {sorted(exit_prices)} miss targets {sorted(targets)}"
    for row in exits_placed:
        assert row["side"] == "sell"
        assert Decimal(row["price"]) % TICK == 0
    filled_entry_size = sum(Decimal(row["fill_size"]) for row in entry_fills)
    take_profit_size = sum(Decimal(row["quantity"]) for row in exits_placed)
    assert take_profit_size <= filled_entry_size

    activity_log = tmp_path / "paper_BTC_grid_buy_activity.log"
    assert "FILL entry buy" in activity_log.read_text()


def test_ctrl_c_cancels_entries_leaves_take_profits_and_exits_zero(tmp_path: Path) -> None:
    process = subprocess.Popen(
        runbot_command(tmp_path, "--wait-time", "0", "--duration", "120", "--paper-volatility", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(row["event"] == "placed" and row["role"] == "entry" for row in read_rows(tmp_path)):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "no entry order within 60 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stdout + stderr
    assert "SIGINT received" in stdout
    assert "summary for paper_BTC_grid" in stdout

    rows = read_rows(tmp_path)
    entry_ids = {row["order_id"] for row in rows if row["event"] == "placed" and row["role"] == "entry"}
    exit_ids = {row["order_id"] for row in rows if row["event"] == "placed" and row["role"] == "exit"}
    finished = {row["order_id"] for row in rows if row["event"] == "cancelled" or row["status"] == "filled"}
    shutdown_cancels = {
        row["order_id"] for row in rows if row["event"] == "cancelled" and row["detail"] == "shutdown"
    }
    assert entry_ids - finished == set(), "every entry must be filled or cancelled at shutdown"
    assert shutdown_cancels <= entry_ids and not (shutdown_cancels & exit_ids)


@pytest.mark.parametrize("bad", [["--quantity", "0"], ["--take-profit", "lots"], ["--paper-spread", "-2"]])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, bad: list[str]) -> None:
    completed = subprocess.run(
        [*runbot_command(tmp_path), *bad],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        cwd=tmp_path,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "error:" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_second_ctrl_c_forces_exit_without_a_traceback(tmp_path: Path) -> None:
    process = subprocess.Popen(
        runbot_command(tmp_path, "--duration", "120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(row["event"] == "placed" for row in read_rows(tmp_path)):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    # Whether the second press lands while cleaning up (forced, 130) or after (0), never a traceback.
    assert process.returncode in (0, 130)
    assert "Traceback" not in stdout + stderr and "KeyboardInterrupt" not in stdout + stderr
