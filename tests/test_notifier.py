"""Notifier against a local fake Telegram/Lark endpoint on 127.0.0.1.

What must hold: messages arrive with the right chat id and body; a failing endpoint (500,
timeout, refused) never raises into the logging call nor blocks it; the bounded queue drops and
counts; de-duplication and the rate limit are counted; the token never reaches a log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from helpers.notifier import (
    LarkChannel,
    Notifier,
    TelegramChannel,
    channels_from_environment,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAH-secret-telegram-token-xyz"
LARK = "lark-hook-secret-0123456789abcdef"
CHAT = "-1001234"


class FakeEndpoint:
    """Records every request; ``mode`` picks the answer: ok, error (500), hang, hold."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.mode = "ok"
        self.release = asyncio.Event()
        self.arrived = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self.arrived:
            self.requests.append((request.path, body))
            self.arrived.notify_all()
        if self.mode == "error":
            return web.json_response({"ok": False}, status=500)
        if self.mode == "hang":
            await self.release.wait()  # set only at teardown
        if self.mode == "hold" and len(self.requests) == 1:
            await self.release.wait()
        if request.path.startswith("/open-apis/"):
            return web.json_response({"code": 0, "msg": "success"})
        return web.json_response({"ok": True, "result": {}})

    async def wait_for_requests(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.requests) >= count), 5)

    def texts(self) -> list[str]:
        return [body.get("text") or body["content"]["text"] for _path, body in self.requests]


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[FakeEndpoint, str]]:
    fake = FakeEndpoint()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)  # the server side would log the URL, token included
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}"
    fake.release.set()
    await runner.cleanup()


class FakeTime:
    """Monotonic clock the test moves; ``sleep`` moves it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def bot_logger() -> logging.Logger:
    log = logging.getLogger("test.notifier.bot")
    log.setLevel(logging.DEBUG)
    log.propagate = True
    return log


async def started(notifier: Notifier, log: logging.Logger) -> Notifier:
    await notifier.start()
    log.addHandler(notifier.handler)
    return notifier


async def stopped(notifier: Notifier, log: logging.Logger) -> None:
    log.removeHandler(notifier.handler)
    await asyncio.wait_for(notifier.aclose(timeout=1.0), 5)


async def test_telegram_and_lark_receive_marked_records_and_errors(endpoint, bot_logger):
    fake, url = endpoint
    channels = [TelegramChannel(TOKEN, CHAT, url), LarkChannel(LARK, url)]
    notifier = await started(Notifier(channels, "paper_BTC_grid"), bot_logger)
    bot_logger.info("an ordinary line")  # neither marked nor an error: not sent
    bot_logger.warning("loss limit reached: closing 1 position", extra={"notify": "risk"})
    bot_logger.error("order rejected: margin")
    await fake.wait_for_requests(4)
    await stopped(notifier, bot_logger)

    telegram = [body for path, body in fake.requests if path == f"/bot{TOKEN}/sendMessage"]
    lark = [body for path, body in fake.requests if path == f"/open-apis/bot/v2/hook/{LARK}"]
    assert [body["chat_id"] for body in telegram] == [CHAT, CHAT]
    assert [body["text"] for body in telegram] == [
        "[paper_BTC_grid] RISK: loss limit reached: closing 1 position",
        "[paper_BTC_grid] ERROR: order rejected: margin",
    ]
    assert [body["msg_type"] for body in lark] == ["text", "text"]
    assert [body["content"]["text"] for body in lark] == [body["text"] for body in telegram]
    assert notifier.stats.sent_messages == 4
    assert notifier.stats.failed_requests == 0


@pytest.mark.parametrize("mode", ["error", "hang", "refused"])
async def test_failing_endpoint_never_raises_nor_blocks_the_caller(endpoint, bot_logger, mode, caplog):
    fake, url = endpoint
    if mode == "refused":
        with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    fake.mode = mode
    notifier = await started(
        Notifier([TelegramChannel(TOKEN, CHAT, url)], "bot", request_timeout=0.3), bot_logger
    )
    caplog.set_level(logging.DEBUG)
    bot_logger.error("venue unreachable")
    # The call returned before any request was even attempted: it only queued the text.
    assert notifier.stats.queued == 1
    assert notifier.stats.sent_messages == notifier.stats.failed_requests == 0

    if mode != "refused":
        await fake.wait_for_requests(1)
    await notifier.dispatched()
    bot_logger.error("still unreachable")  # the notifier keeps working after a failure
    await stopped(notifier, bot_logger)
    assert notifier.stats.failed_requests == 2
    assert notifier.stats.sent_messages == 0
    assert "notification to telegram not delivered" in caplog.text
    assert TOKEN not in caplog.text


async def test_close_is_bounded_when_the_endpoint_hangs(endpoint, bot_logger):
    fake, url = endpoint
    fake.mode = "hang"
    notifier = await started(
        Notifier([TelegramChannel(TOKEN, CHAT, url)], "bot", request_timeout=60), bot_logger
    )
    bot_logger.error("one")
    await fake.wait_for_requests(1)
    bot_logger.error("two")
    # A flush that waited for the 60 s request timeout would trip the 5 s guard instead.
    bot_logger.removeHandler(notifier.handler)
    await asyncio.wait_for(notifier.aclose(timeout=0.2), 5)


async def test_full_queue_drops_and_counts(endpoint, bot_logger):
    _fake, url = endpoint
    notifier = await started(Notifier([TelegramChannel(TOKEN, CHAT, url)], "bot", queue_size=2), bot_logger)
    for number in range(5):  # no await in between: the sender cannot drain the queue
        bot_logger.error("error %d", number)
    assert notifier.stats.queued == 2
    assert notifier.stats.dropped_queue_full == 3
    await stopped(notifier, bot_logger)


async def test_log_calls_from_other_threads_are_delivered(endpoint, bot_logger):
    fake, url = endpoint
    notifier = await started(Notifier([TelegramChannel(TOKEN, CHAT, url)], "bot"), bot_logger)
    await asyncio.to_thread(bot_logger.error, "from the signer thread")
    await fake.wait_for_requests(1)
    await stopped(notifier, bot_logger)
    assert fake.texts() == ["[bot] ERROR: from the signer thread"]


async def test_same_text_within_the_window_sends_once_then_a_repeat_count(endpoint, bot_logger):
    fake, url = endpoint
    clock = FakeTime()
    notifier = await started(
        Notifier([LarkChannel(LARK, url)], "bot", dedup_window=60, monotonic=clock, sleep=clock.sleep),
        bot_logger,
    )
    for _ in range(5):
        bot_logger.warning("position mismatch: venue 0.004, ledger 0.002", extra={"notify": "mismatch"})
    await notifier.dispatched()
    clock.now += 61  # the window is over: the next one reports the repeats before itself
    bot_logger.warning("position mismatch: venue 0.004, ledger 0.002", extra={"notify": "mismatch"})
    bot_logger.warning("position mismatch: venue 0.004, ledger 0.002", extra={"notify": "mismatch"})
    await stopped(notifier, bot_logger)
    text = "[bot] MISMATCH: position mismatch: venue 0.004, ledger 0.002"
    delivered = "\n".join(fake.texts()).splitlines()
    assert delivered == [
        text,
        f"{text} (repeated 4 more times within 60 s)",
        text,
        f"{text} (repeated 1 more time within 60 s)",  # sent by the flush at close
    ]
    assert notifier.stats.deduplicated == 5


async def test_rate_limit_merges_what_waited_into_one_message(endpoint, bot_logger):
    fake, url = endpoint
    fake.mode = "hold"  # the first answer waits until every text is queued for the channel
    clock = FakeTime()
    notifier = await started(
        Notifier([TelegramChannel(TOKEN, CHAT, url)], "bot", monotonic=clock, sleep=clock.sleep),
        bot_logger,
    )
    for number in range(6):
        bot_logger.error("error %d", number)
    await fake.wait_for_requests(1)
    fake.release.set()
    await fake.wait_for_requests(4)
    await stopped(notifier, bot_logger)
    # Telegram's bucket holds 3: three texts go one by one, the other three wait and go together.
    assert fake.texts() == [
        "[bot] ERROR: error 0",
        "[bot] ERROR: error 1",
        "[bot] ERROR: error 2",
        "[bot] ERROR: error 3\n[bot] ERROR: error 4\n[bot] ERROR: error 5",
    ]
    assert notifier.stats.rate_limited == 3


async def test_secrets_are_redacted_from_messages(endpoint, bot_logger):
    fake, url = endpoint
    notifier = await started(Notifier([TelegramChannel(TOKEN, CHAT, url)], "bot"), bot_logger)
    bot_logger.error("request to https://api.telegram.org/bot%s/sendMessage failed", TOKEN)
    await fake.wait_for_requests(1)
    await stopped(notifier, bot_logger)
    assert fake.texts() == ["[bot] ERROR: request to https://api.telegram.org/bot***/sendMessage failed"]


def test_channels_from_environment() -> None:
    def names(env: dict[str, str]) -> list[str]:
        return [channel.name for channel in channels_from_environment(env)]

    assert names({}) == []
    assert names({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT}) == ["telegram"]
    assert names({"LARK_TOKEN": LARK, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT}) == [
        "telegram",
        "lark",
    ]
    with pytest.raises(ValueError, match="TELEGRAM_CHAT_ID") as caught:
        channels_from_environment({"TELEGRAM_BOT_TOKEN": TOKEN})
    assert TOKEN not in str(caught.value)


async def test_runbot_sends_start_and_stop_from_its_env_file(endpoint, tmp_path):
    """The real wiring: runbot.py reads the variables from --env-file and reports start and stop."""
    fake, url = endpoint
    env_file = tmp_path / "bot.env"
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_CHAT_ID={CHAT}\nTELEGRAM_API_URL={url}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTER_", "TELEGRAM_", "LARK_"))}
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, str(ROOT / "runbot.py"), "--exchange", "paper", "--ticker", "BTC"],
        *["--quantity", "0.002", "--take-profit", "0.02", "--duration", "1", "--log-dir", str(tmp_path)],
        *["--env-file", str(env_file)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    texts = fake.texts()
    assert texts[0] == (
        "[paper_BTC_grid_buy] START: starting paper_BTC_grid_buy: grid BTC on paper, quantity 0.002"
    )
    assert texts[-1].startswith("[paper_BTC_grid_buy] STOP: stopped: duration of 1 s reached")
    assert texts[-1].endswith("(exit code 0)")
    assert {body["chat_id"] for _path, body in fake.requests} == {CHAT}
    assert "notifications: telegram" in stdout.decode()
    activity = (tmp_path / "paper_BTC_grid_buy_activity.log").read_text()
    for output in (stdout.decode(), stderr.decode(), activity):
        assert TOKEN not in output
