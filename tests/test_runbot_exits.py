"""runbot.py's exits as a new user meets them: one line and exit 2 for a bot that could not start
(bad feed, unknown market, wrong API key), and a quiet second Ctrl-C once the bot has stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import runbot
from trading_bot import BotSummary

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAH-secret-telegram-token-xyz"


def summary(**changes: object) -> BotSummary:
    fields: dict[str, object] = {
        "stop_reason": "configuration: Lighter has no perpetual market for ticker 'BTC'",
        "exit_code": 2,
        "runtime_seconds": 0.1,
        "orders_placed": 0,
        "orders_failed": 0,
        "fills": 0,
        "volume": Decimal(0),
        "fees": Decimal(0),
        "realized_pnl": Decimal(0),
        "position": Decimal(0),
        "resting_exit_orders": 0,
    }
    fields.update(changes)
    return BotSummary(**fields)  # type: ignore[arg-type]


def test_a_rejected_key_is_bad_configuration_other_errors_keep_their_code() -> None:
    rejected = "AuthenticationError: Lighter rejected the API key: private key does not match"
    assert runbot.exit_code_for(summary(stop_reason=rejected, exit_code=1)) == 2
    unavailable = "ExchangeUnavailable: lighter HTTP 503"
    assert runbot.exit_code_for(summary(stop_reason=unavailable, exit_code=1)) == 1
    assert runbot.exit_code_for(summary(stop_reason="unexpected KeyError: 'x'", exit_code=1)) == 1
    assert runbot.exit_code_for(summary(stop_reason="risk: loss 16 % >= 15 %", exit_code=3)) == 3
    assert runbot.exit_code_for(summary(stop_reason="SIGINT received", exit_code=0)) == 0


def test_nothing_to_report_only_when_the_run_left_nothing() -> None:
    assert runbot.nothing_to_report(summary())
    assert runbot.nothing_to_report(summary(fills=12, realized_pnl=Decimal("3")))  # earlier runs' history
    for changes in (
        {"orders_placed": 1},
        {"orders_failed": 1},
        {"position": Decimal("0.01")},
        {"venue_position": Decimal("-0.01")},
        {"resting_exit_orders": 2},
        {"live_entries": 1},
        {"unknown_orders": 1},
        {"uncovered_size": Decimal("0.002")},
    ):
        assert not runbot.nothing_to_report(summary(**changes)), changes


def run(argv: list[str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTER_", "TELEGRAM_", "LARK_"))}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, str(ROOT / "runbot.py"), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def assert_one_line_exit_2(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("runbot.py: error: "), done.stderr
    assert words in done.stderr
    assert "summary for" not in done.stdout and "PnL" not in done.stdout, done.stdout
    assert "stopped:" not in done.stdout, done.stdout  # stderr already says it
    assert "Traceback" not in done.stdout + done.stderr


def test_a_feed_in_an_unknown_format_is_one_line_and_exit_2(tmp_path: Path) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("garbage\n")
    done = run(
        ["--exchange", "paper", "--ticker", "BTC", "--quantity", "0.002", "--paper-feed", str(feed),
         "--log-dir", str(tmp_path / "logs"), "--env-file", str(tmp_path / "absent.env")],
        tmp_path,
    )  # fmt: skip
    assert_one_line_exit_2(done, "unknown market data format")


@pytest.fixture(scope="module")
def lighter_venue() -> Iterator[Any]:
    pytest.importorskip("lighter")
    from tests.mock_venues import MockLighterVenue

    venue = MockLighterVenue(start_price=Decimal("3000"), api_key_index=4).start()
    try:
        yield venue
    finally:
        venue.stop()


def lighter_env(tmp_path: Path, variables: dict[str, str]) -> Path:
    path = tmp_path / "lighter.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    path.chmod(0o600)
    return path


def test_a_wrong_api_key_is_one_line_and_exit_2(tmp_path: Path, lighter_venue: Any) -> None:
    from tests.mock_venues import generate_api_key

    other_key, _public = generate_api_key()
    env_file = lighter_env(tmp_path, {**lighter_venue.env(), "LIGHTER_API_PRIVATE_KEY": other_key})
    done = run(
        ["--exchange", "lighter", "--ticker", "ETH", "--quantity", "0.01", "--env-file", str(env_file),
         "--log-dir", str(tmp_path / "logs"), "--duration", "30"],
        tmp_path,
    )  # fmt: skip
    assert_one_line_exit_2(done, "AuthenticationError: Lighter rejected the API key")
    assert other_key not in done.stdout + done.stderr


def test_an_unknown_lighter_market_is_one_line_and_exit_2(tmp_path: Path, lighter_venue: Any) -> None:
    env_file = lighter_env(tmp_path, lighter_venue.env())
    done = run(
        ["--exchange", "lighter", "--ticker", "BTC", "--quantity", "0.01", "--env-file", str(env_file),
         "--log-dir", str(tmp_path / "logs"), "--duration", "30"],
        tmp_path,
    )  # fmt: skip
    assert_one_line_exit_2(done, "Lighter has no perpetual market for ticker 'BTC'")


def test_a_quantity_that_rounds_to_zero_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run(
        ["--exchange", "paper", "--ticker", "BTC", "--quantity", "0.0000001", "--duration", "30",
         "--log-dir", str(tmp_path / "logs"), "--env-file", str(tmp_path / "absent.env")],
        tmp_path,
    )  # fmt: skip
    assert_one_line_exit_2(done, "refusing to trade: quantity 0.000 is below the minimum order size")


# -- a second Ctrl-C after the bot has stopped ------------------------------------------------


class HangingStopEndpoint:
    """A Telegram stand-in that answers everything except the stop notice, which it holds: the
    bot is then past its summary, waiting (up to its flush bound) to send that notice."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stop_arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        text = (await request.json()).get("text", "")
        if "STOP:" in text and "stopped:" in text:
            self.stop_arrived.set()
            await self.release.wait()
        elif "START:" in text:
            self.started.set()
        return web.json_response({"ok": True, "result": {}})


@pytest.fixture
async def hanging_endpoint() -> AsyncIterator[tuple[HangingStopEndpoint, str]]:
    fake = HangingStopEndpoint()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}"
    fake.release.set()
    await runner.cleanup()


async def test_second_ctrl_c_after_the_summary_exits_quietly_with_the_runs_code(
    tmp_path: Path, hanging_endpoint: tuple[HangingStopEndpoint, str]
) -> None:
    fake, url = hanging_endpoint
    env_file = tmp_path / "bot.env"
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_CHAT_ID=-100\nTELEGRAM_API_URL={url}\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTER_", "TELEGRAM_", "LARK_"))}
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, str(ROOT / "runbot.py"), "--exchange", "paper", "--ticker", "BTC"],
        *["--quantity", "0.002", "--take-profit", "0.02", "--wait-time", "0", "--duration", "120"],
        *["--log-dir", str(tmp_path), "--env-file", str(env_file)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        await asyncio.wait_for(fake.started.wait(), 60)  # signal handlers are in place by then
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(fake.stop_arrived.wait(), 60)  # summary printed, notice on its way
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, out + err
    assert "forced exit" not in err and "Traceback" not in out + err, err
    assert "summary for paper_BTC_grid_buy" in out
    assert "gave up flushing" not in out  # the press skipped the wait for the held notice
    assert TOKEN not in out + err
