"""Notifications to Telegram and Lark, fed by log records, kept apart from the trading core.

The bot does not call the notifier: it logs. A :class:`NotificationHandler` on the root logger
picks every ERROR record and every record marked for notification
(``logger.warning("...", extra={"notify": "risk"})``) and hands its text to a background task.
So the trading code needs no reference to the notifier, and a bot without notification
settings runs exactly the same code.

Why each rule:

- ``emit`` only renders the text and puts it on a bounded queue (thread-safely from other
  threads), so a log call on the event loop never waits for the network; when the queue is
  full the record is dropped and counted rather than letting memory grow behind a dead
  endpoint.
- The same text within ``dedup_window`` seconds is sent once; when the window closes a single
  "repeated N more times" line follows. A reconnect loop thus costs two messages, not hundreds.
- Each channel has a token bucket (Telegram allows about one message a second per chat and
  Lark about five). Text that arrives while the bucket is empty is merged into the next message
  instead of being lost, so a burst becomes one message and a stop notice still arrives.
- HTTP failures (status, timeout, refused connection) are counted and logged once per failure
  with the channel's name and the HTTP status only: the Telegram token is part of the URL and
  the Lark token is the webhook path, so neither URLs nor aiohttp's exception text are logged.
- ``aclose`` sends what is queued within a short bound, then gives up, so a stop never hangs on
  a slow endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from helpers.log_setup import SecretRedactor, secret_values_from_environment

if TYPE_CHECKING:
    import aiohttp

logger = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
LARK_API = "https://open.larksuite.com"
MAX_MESSAGE_CHARS = 3500  # Telegram's limit is 4096; Lark's is larger. Leave room for merging.


@dataclass
class NotifierStats:
    """Counters a test or the shutdown line can read; nothing here is ever reset."""

    queued: int = 0
    sent_messages: int = 0
    failed_requests: int = 0
    dropped_queue_full: int = 0
    deduplicated: int = 0
    rate_limited: int = 0
    dropped_backlog: int = 0


class TokenBucket:
    """``capacity`` sends at once, refilled at ``rate`` per second."""

    def __init__(self, capacity: float, rate: float, monotonic: Callable[[], float]) -> None:
        self.capacity = capacity
        self.rate = rate
        self._monotonic = monotonic
        self._tokens = capacity
        self._updated = monotonic()

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def seconds_until_token(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    def hold_off(self, seconds: float) -> None:
        """The service asked us to wait (HTTP 429): empty the bucket for that long."""
        self._refill()
        self._tokens = min(self._tokens, 1 - seconds * self.rate)


class Channel:
    """One destination. Subclasses say how to build the request and read the answer."""

    name = "channel"

    def __init__(self, base_url: str, capacity: float, per_second: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.capacity = capacity
        self.per_second = per_second

    def request(self, text: str) -> tuple[str, dict[str, object]]:
        raise NotImplementedError

    def accepted(self, status: int, body: object) -> bool:
        return 200 <= status < 300

    def secrets(self) -> list[str]:
        return []


class TelegramChannel(Channel):
    """Bot API ``sendMessage`` to one chat (plain text, no parse mode: log text is not markup)."""

    name = "telegram"

    def __init__(self, token: str, chat_id: str, base_url: str = TELEGRAM_API) -> None:
        super().__init__(base_url, capacity=3, per_second=1 / 3)  # group chats: 20 a minute
        self._token = token
        self.chat_id = chat_id

    def request(self, text: str) -> tuple[str, dict[str, object]]:
        body = {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}
        return f"{self.base_url}/bot{self._token}/sendMessage", body

    def accepted(self, status: int, body: object) -> bool:
        return status == 200 and isinstance(body, dict) and body.get("ok") is True

    def secrets(self) -> list[str]:
        return [self._token]


class LarkChannel(Channel):
    """Custom-bot webhook (``/open-apis/bot/v2/hook/<token>``); answers HTTP 200 with ``code``."""

    name = "lark"

    def __init__(self, token: str, base_url: str = LARK_API) -> None:
        super().__init__(base_url, capacity=5, per_second=1.0)
        self._token = token

    def request(self, text: str) -> tuple[str, dict[str, object]]:
        body = {"msg_type": "text", "content": {"text": text}}
        return f"{self.base_url}/open-apis/bot/v2/hook/{self._token}", body

    def accepted(self, status: int, body: object) -> bool:
        if status != 200 or not isinstance(body, dict):
            return False
        code = body.get("code", body.get("StatusCode", 0))
        return code == 0

    def secrets(self) -> list[str]:
        return [self._token]


def channels_from_environment(environ: Mapping[str, str]) -> list[Channel]:
    """Channels whose settings are present. A Telegram token without a chat id is a config error."""
    channels: list[Channel] = []
    token = environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    chat_id = environ.get("TELEGRAM_CHAT_ID", "").strip()
    if token or chat_id:
        if not (token and chat_id):
            missing = "TELEGRAM_CHAT_ID" if token else "TELEGRAM_BOT_TOKEN"
            raise ValueError(f"Telegram notifications need both TELEGRAM_BOT_TOKEN and {missing}")
        channels.append(TelegramChannel(token, chat_id, environ.get("TELEGRAM_API_URL") or TELEGRAM_API))
    lark = environ.get("LARK_TOKEN", "").strip()
    if lark:
        channels.append(LarkChannel(lark, environ.get("LARK_API_URL") or LARK_API))
    return channels


@dataclass
class _Outbox:
    """Texts waiting for one channel's next request, and why they waited."""

    channel: Channel
    bucket: TokenBucket
    texts: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Notifier:
    """Background sender. ``start`` on the running loop, ``handler`` on a logger, ``aclose`` at the end."""

    def __init__(
        self,
        channels: Iterable[Channel],
        bot_name: str = "bot",
        *,
        queue_size: int = 100,
        backlog_size: int = 20,
        dedup_window: float = 60.0,
        request_timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.channels = list(channels)
        self.bot_name = bot_name
        self.stats = NotifierStats()
        self.dedup_window = dedup_window
        self._queue_size = queue_size
        self._backlog_size = backlog_size
        self._request_timeout = request_timeout
        self._monotonic = monotonic
        self._sleep = sleep
        secrets = set(secret_values_from_environment())
        for channel in self.channels:
            secrets.update(channel.secrets())
        self.redactor = SecretRedactor(secrets)
        self.handler = NotificationHandler(self)
        # Unbounded as a structure so the stop marker always fits; _put enforces queue_size.
        self._queue: asyncio.Queue[str | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._recent: dict[str, tuple[float, int]] = {}
        self._outboxes: list[_Outbox] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closing = False  # no new records
        self._final = False  # everything is in the outboxes: send it now and end

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], bot_name: str) -> Notifier | None:
        """A notifier for the channels configured in ``environ``, or None when there are none."""
        channels = channels_from_environment(environ)
        return cls(channels, bot_name) if channels else None

    @property
    def channel_names(self) -> list[str]:
        return [channel.name for channel in self.channels]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._queue = asyncio.Queue()
        # Imported here, not at module load: aiohttp costs ~15 MB of memory, and every backtest
        # and paper run imports this module without ever sending a notification.
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._request_timeout))
        self._outboxes = [
            _Outbox(channel, TokenBucket(channel.capacity, channel.per_second, self._monotonic))
            for channel in self.channels
        ]
        self._tasks = [asyncio.create_task(self._dispatch(), name="notifier-dispatch")]
        self._tasks += [
            asyncio.create_task(self._deliver(outbox), name=f"notifier-{outbox.channel.name}")
            for outbox in self._outboxes
        ]

    # -- producer side: called from NotificationHandler.emit, any thread ------------------------

    def submit(self, text: str) -> None:
        """Queue ``text`` without waiting; drops (and counts) when full or not running."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or self._closing:
            self.stats.dropped_queue_full += 1
            return
        if threading.get_ident() == self._loop_thread:
            self._put(text)
            return
        try:
            loop.call_soon_threadsafe(self._put, text)
        except RuntimeError:  # the loop has closed
            self.stats.dropped_queue_full += 1

    def _put(self, text: str) -> None:
        assert self._queue is not None
        if self._queue.qsize() >= self._queue_size:
            self.stats.dropped_queue_full += 1
            return
        self._queue.put_nowait(text)
        self.stats.queued += 1

    async def dispatched(self) -> None:
        """Wait until every queued text has been de-duplicated and handed to the channels."""
        assert self._queue is not None
        await self._queue.join()

    # -- consumer side: background tasks on the loop ---------------------------------------------

    async def _dispatch(self) -> None:
        """De-duplicate and fan out to the channels' outboxes; emit repeat counts when windows end.

        Ends on the stop marker (None) that ``aclose`` queues, rather than by cancellation: a
        cancel that lands as ``wait_for`` gets an item can be lost on Python 3.10/3.11.
        """
        assert self._queue is not None
        while True:
            timeout = self._next_window_end()
            try:
                text = await asyncio.wait_for(self._queue.get(), timeout)
            except asyncio.TimeoutError:
                self._close_windows(force=False)
                continue
            self._queue.task_done()
            if text is None:
                self._close_windows(force=True)
                self._final = True
                for outbox in self._outboxes:
                    outbox.wake.set()  # each deliverer sends its rest now, bucket or not, and ends
                return
            self._accept(text)

    def _accept(self, text: str) -> None:
        now = self._monotonic()
        seen = self._recent.get(text)
        if seen is not None and now - seen[0] < self.dedup_window:
            self._recent[text] = (seen[0], seen[1] + 1)
            self.stats.deduplicated += 1
            return
        if seen is not None and seen[1]:
            self._fan_out(self._repeat_line(text, seen[1]))
        self._recent[text] = (now, 0)
        self._fan_out(text)

    def _next_window_end(self) -> float | None:
        if not self._recent:
            return None
        first = min(started for started, _ in self._recent.values())
        return max(0.0, first + self.dedup_window - self._monotonic())

    def _close_windows(self, force: bool) -> None:
        now = self._monotonic()
        for text, (started, repeats) in list(self._recent.items()):
            if force or now - started >= self.dedup_window:
                del self._recent[text]
                if repeats:
                    self._fan_out(self._repeat_line(text, repeats))

    def _repeat_line(self, text: str, repeats: int) -> str:
        times = "time" if repeats == 1 else "times"
        return f"{text} (repeated {repeats} more {times} within {self.dedup_window:g} s)"

    def _fan_out(self, text: str) -> None:
        for outbox in self._outboxes:
            if len(outbox.texts) >= self._backlog_size:
                outbox.texts.popleft()
                self.stats.dropped_backlog += 1
            outbox.texts.append(text)
            outbox.wake.set()

    async def _deliver(self, outbox: _Outbox) -> None:
        """One request per text while the bucket has tokens; after a wait, one for all that waited.

        When closing, the rest goes at once (bucket or not) and the task ends.
        """
        waited = False
        while True:
            await outbox.wake.wait()
            outbox.wake.clear()
            while outbox.texts:
                delay = 0.0 if self._final else outbox.bucket.seconds_until_token()
                if delay > 0:
                    waited = True
                    await self._pause(delay, outbox.wake)
                    continue
                merge = waited or self._final
                sent = await self._send_batch(outbox, merge)
                if waited:
                    self.stats.rate_limited += sent
                waited = False
            if self._final:
                return

    async def _pause(self, seconds: float, wake: asyncio.Event) -> None:
        """Sleep ``seconds``, or less if ``wake`` is set (closing, or more text to count)."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        wake.clear()

    async def _send_batch(self, outbox: _Outbox, merge: bool) -> int:
        """Send the next text (or, merging, as many as fit in one message); returns how many."""
        parts = [outbox.texts.popleft()]
        size = len(parts[0])
        while merge and outbox.texts and size + len(outbox.texts[0]) + 1 <= MAX_MESSAGE_CHARS:
            parts.append(outbox.texts.popleft())
            size += len(parts[-1]) + 1
        outbox.bucket.take()
        await self._post(outbox, "\n".join(parts))
        return len(parts)

    async def _post(self, outbox: _Outbox, text: str) -> None:
        import aiohttp  # loaded by start() already

        assert self._session is not None
        channel = outbox.channel
        url, body = channel.request(text)
        try:
            async with self._session.post(url, json=body) as response:
                answer: object = None
                with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                    answer = await response.json(content_type=None)
                if channel.accepted(response.status, answer):
                    self.stats.sent_messages += 1
                    return
                if response.status == 429:
                    outbox.bucket.hold_off(_retry_after(answer, response.headers.get("Retry-After")))
                problem = f"HTTP {response.status}"
        except asyncio.TimeoutError:
            problem = "timed out"
        except aiohttp.ClientError as exc:
            problem = type(exc).__name__  # its text would carry the URL, hence the token
        self.stats.failed_requests += 1
        # Not an ERROR record, and from this module: the handler ignores it, so no loop.
        logger.warning("notification to %s not delivered: %s", channel.name, self.redactor.redact(problem))

    async def aclose(self, timeout: float = 3.0) -> None:
        """Stop taking records, send what is queued within ``timeout`` seconds, release the session."""
        if self._closing or self._loop is None:
            return
        self._closing = True
        try:
            await asyncio.wait_for(self._flush(), timeout)
        except asyncio.TimeoutError:
            logger.warning("notifications: gave up flushing after %g s", timeout)
        finally:  # also when cancelled (a second Ctrl-C skips the flush): no unclosed session
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

    async def _flush(self) -> None:
        assert self._queue is not None
        await asyncio.sleep(0)  # let call_soon_threadsafe puts from other threads land first
        self._queue.put_nowait(None)
        await asyncio.gather(*self._tasks)


def _retry_after(answer: object, header: str | None) -> float:
    if isinstance(answer, dict):
        parameters = answer.get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
            return float(parameters["retry_after"])
    try:
        return float(header) if header else 5.0
    except ValueError:
        return 5.0


class NotificationHandler(logging.Handler):
    """Picks ERROR records and records with ``extra={"notify": kind}``; never blocks, never raises."""

    def __init__(self, notifier: Notifier) -> None:
        super().__init__(logging.NOTSET)
        self.notifier = notifier

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = getattr(record, "notify", None)
            if kind is None and record.levelno < logging.ERROR:
                return
            if record.name == logger.name:
                return  # the notifier's own troubles are never notified (no feedback loop)
            label = str(kind).upper() if kind else record.levelname
            message = self.notifier.redactor.redact(record.getMessage())
            self.notifier.submit(f"[{self.notifier.bot_name}] {label}: {message}"[:MAX_MESSAGE_CHARS])
        except Exception:
            self.notifier.stats.dropped_queue_full += 1
