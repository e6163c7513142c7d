"""Pieces every venue connector needs, so a venue file holds only its wire format.

Lifted out of the Lighter connector when Backpack needed the same things: parsing venue numbers
and timestamps, the worst price of a market order, a local price-level book, one aiohttp session
with typed transport errors, background tasks that log their failures, and the OrderResult of a
tracked order. Nothing here knows a venue's field names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import aiohttp

from exchanges.base import (
    AuthenticationError,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrder,
    MalformedMessage,
    MarketUpdate,
    NetworkError,
    OrderBelowMinimum,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    RateLimitExceeded,
    RequestTimeout,
)
from exchanges.venue_orders import VenueOrder
from helpers import safe_json, venue_validation
from helpers.clock import Clock
from helpers.rounding import is_multiple, round_down, round_up
from helpers.venue_validation import InvalidVenueData

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Numbers and times on the wire
# ---------------------------------------------------------------------------------------------


def optional_price(value: Any, what: str) -> Decimal | None:
    """A price the venue may leave out or report as 0 (e.g. no liquidation price when flat)."""
    if value is None or value == "":
        return None
    price = to_decimal(value, what)
    return price if price > 0 else None


def to_decimal(value: Any, what: str = "number") -> Decimal:
    """Parse a venue number (string, int or Decimal from a parse_float=Decimal decoder).

    The shared check of helpers.venue_validation: finite and bounded; NaN, infinities, bools,
    floats and absurdly long digit strings raise InvalidVenueData (a MalformedMessage) naming
    ``what``."""
    if value == "":
        raise InvalidVenueData("missing field", what)
    return venue_validation.venue_decimal(value, what)


def opt_int(value: Any) -> int | None:
    """An integer field that may be missing or junk (None then)."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def timestamp_seconds(raw: Any, fallback: float) -> float:
    """A venue stamp in s, ms or µs as epoch seconds (``fallback`` when missing or junk)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return fallback
    if value <= 0 or value != value:
        return fallback
    if value > 1e14:
        return value / 1e6
    if value > 1e11:
        return value / 1e3
    return value


def plain(value: Decimal) -> str:
    """A Decimal as the venue wants it in JSON strings: no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def slippage_bound(
    side: OrderSide, bid: Decimal, ask: Decimal, max_slippage_pct: Decimal, tick: Decimal
) -> Decimal:
    """The worst price a market order may fill at: ``max_slippage_pct`` percent beyond the touch,
    rounded towards the touch to the tick (never looser than asked). InvalidOrder if none."""
    factor = Decimal(max_slippage_pct) / 100
    if side is OrderSide.BUY:
        bound = round_down(ask * (1 + factor), tick)
    else:
        bound = round_up(bid * (1 - factor), tick)
    if bound <= 0:
        raise InvalidOrder(f"slippage {max_slippage_pct}% leaves no valid price bound")
    return bound


# ---------------------------------------------------------------------------------------------
# A local book of price levels
# ---------------------------------------------------------------------------------------------


class PriceLevels:
    """Bids and asks as {price: size}, from a snapshot plus deltas (size 0 removes a level).

    The top is always the true best level, found by price, never by arrival order: an earlier
    bot took the first level of an unsorted list for the best price. ``sequence`` is whatever
    continuity counter the venue uses (the connector checks it; see its docstring).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.valid = False
        self.sequence: int | None = None
        #: For continuity rules that treat the first delta after a snapshot specially.
        self.synced = False
        self.gaps = 0
        self.ready = asyncio.Event()

    def invalidate(self) -> None:
        self.valid = False
        self.sequence = None
        self.ready.clear()

    def replace(self, bids: Iterable[Any], asks: Iterable[Any], sequence: int | None) -> None:
        self.bids.clear()
        self.asks.clear()
        self.synced = False
        self.apply(bids, asks, sequence)
        self.valid = True
        self._update_ready()

    def apply(self, bids: Iterable[Any], asks: Iterable[Any], sequence: int | None) -> None:
        self._levels(self.bids, bids)
        self._levels(self.asks, asks)
        if sequence is not None:
            self.sequence = sequence
        self._update_ready()

    def top(self) -> tuple[Decimal, Decimal] | None:
        if not self.valid or not self.bids or not self.asks:
            return None
        bid, ask = max(self.bids), min(self.asks)
        return (bid, ask) if bid < ask else None

    def sorted_bids(self, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.bids.items(), reverse=True)[:depth]

    def sorted_asks(self, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.asks.items())[:depth]

    def _levels(self, side: dict[Decimal, Decimal], levels: Iterable[Any]) -> None:
        for level in levels:
            if not isinstance(level, list | tuple) or len(level) < 2:
                raise MalformedMessage(f"{self.name}: bad book level {str(level)[:40]!r}")
            price = to_decimal(level[0], "level price")
            size = to_decimal(level[1], "level size")
            if price <= 0 or size < 0:
                raise MalformedMessage(f"{self.name}: bad book level {price} x {size}")
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size

    def _update_ready(self) -> None:
        if self.top() is not None:
            self.ready.set()
        else:
            self.ready.clear()


#: First pause before a failed depth snapshot is fetched again, and the longest pause.
RESYNC_PAUSE = 1.0
RESYNC_PAUSE_CAP = 30.0


class MarketBook:
    """One market's top of book from a snapshot-plus-deltas depth stream, with a top-of-book
    ticker as the fallback while the depth book is being rebuilt.

    While a snapshot is fetched, deltas are buffered; the snapshot is applied and the buffer
    replayed through ``apply_delta`` (the venue's continuity rule: it returns False on a gap).
    A gap at any time starts a fresh snapshot, so the book is never silently stale. Every change
    of the top (depth, or ticker while the book is invalid) is emitted once as a MarketUpdate.
    The connector supplies ``fetch_snapshot`` (bids, asks, sequence) and ``apply_delta``.
    """

    def __init__(
        self,
        name: str,
        contract_id: str,
        fetch_snapshot: Callable[[], Awaitable[tuple[Iterable[Any], Iterable[Any], int]]],
        apply_delta: Callable[[PriceLevels, Mapping[str, Any]], bool],
        emit: Callable[[MarketUpdate], None],
        clock: Clock,
        tasks: BackgroundTasks,
    ) -> None:
        self.contract_id = contract_id
        self.book = PriceLevels(name)
        self.fetch_snapshot = fetch_snapshot
        self.apply_delta = apply_delta
        self.emit = emit
        self.clock = clock
        self.tasks = tasks
        self.ticker: tuple[Decimal, Decimal] | None = None
        self.resyncing = False
        self.resyncs = 0
        self._buffer: list[Mapping[str, Any]] = []
        self._last_top: tuple[Decimal, Decimal] | None = None

    def top(self) -> tuple[Decimal, Decimal] | None:
        return self.book.top() or self.ticker

    async def wait_top(self, timeout: float) -> tuple[Decimal, Decimal]:
        """The top, waiting (bounded) for one; never zeros or a crossed book."""
        deadline = self.clock.now() + timeout
        while True:
            top = self.top()
            if top is not None:
                return top
            remaining = deadline - self.clock.now()
            if remaining <= 0 or not await self.clock.wait_for_event(self.book.ready, remaining):
                raise ExchangeUnavailable(f"{self.book.name}: no two-sided book within {timeout}s")

    def disconnected(self) -> None:
        """The stream is gone: nothing we hold is current."""
        self.book.invalidate()
        self.ticker = None

    def restart(self) -> None:
        """Drop the book and rebuild it from a fresh snapshot (once at a time)."""
        self.book.invalidate()
        if not self.resyncing:
            self.resyncing = True
            self._buffer = []
            self.tasks.spawn(self._resync(), f"{self.book.name} depth")

    def on_delta(self, delta: Mapping[str, Any], stamp: Any = None) -> None:
        if self.resyncing:
            self._buffer.append(delta)
            return
        if not self.book.valid:
            return
        if not self.apply_delta(self.book, delta):
            self.book.gaps += 1
            logger.warning("%s: depth gap; rebuilding the book from a snapshot", self.book.name)
            self.restart()
            return
        self._publish(stamp)

    def on_ticker(self, bid: Decimal, ask: Decimal, stamp: Any = None) -> None:
        if not 0 < bid < ask:
            return
        self.ticker = (bid, ask)
        if not self.book.valid:
            self.book.ready.set()
            self._publish(stamp)

    async def _resync(self) -> None:
        """Snapshot, then replay the buffer; a failed snapshot is retried after a bounded,
        growing pause (a book left invalid would silently fall back to the ticker for good)."""
        pause = RESYNC_PAUSE
        try:
            while True:
                try:
                    bids, asks, sequence = await self.fetch_snapshot()
                    self.book.replace(bids, asks, sequence)
                except ExchangeError as exc:
                    self.book.invalidate()
                    logger.warning(
                        "%s: depth snapshot failed (%s); retrying in %.0f s", self.book.name, exc, pause
                    )
                    await self.clock.sleep(pause)
                    pause = min(pause * 2, RESYNC_PAUSE_CAP)
                    continue
                buffered, self._buffer = self._buffer, []
                if all(self.apply_delta(self.book, delta) for delta in buffered):
                    break
                self.book.gaps += 1
                logger.warning("%s: depth did not continue its snapshot; fetching another", self.book.name)
        except BaseException:
            self.book.invalidate()
            raise
        finally:
            self.resyncing = False
            self.resyncs += 1
        self._publish(None)

    def _publish(self, stamp: Any) -> None:
        top = self.top()
        if top is None or top == self._last_top:
            return
        self._last_top = top
        now = self.clock.now()
        self.emit(MarketUpdate(self.contract_id, top[0], top[1], timestamp_seconds(stamp, now)))


def check_amounts(info: ContractInfo, quantity: Decimal, price: Decimal | None) -> None:
    """Refuse, before anything is sent, what the venue would refuse: off-step sizes, off-tick
    prices (InvalidOrder), sizes or notionals below the minimum (OrderBelowMinimum)."""
    if 0 < quantity < info.min_size:
        # Before the step check: where the step is the minimum (GRVT), a smaller size is off-step
        # too, and "below the minimum" is the reason worth telling.
        raise OrderBelowMinimum(f"quantity {quantity} below the minimum {info.min_size}")
    if quantity <= 0 or not is_multiple(quantity, info.size_step):
        raise InvalidOrder(f"quantity {quantity} is not a positive multiple of {info.size_step}")
    if price is not None and (price <= 0 or not is_multiple(price, info.tick_size)):
        raise InvalidOrder(f"price {price} is not a positive multiple of {info.tick_size}")
    if price is not None and quantity * price < info.min_notional:
        raise OrderBelowMinimum(f"notional {quantity * price} below the minimum {info.min_notional}")


# ---------------------------------------------------------------------------------------------
# One HTTP session with typed transport errors
# ---------------------------------------------------------------------------------------------


class HttpSession:
    """One aiohttp session for the client's life; a request returns (status, text, Retry-After).

    Transport failures are typed here once: no answer in time is RequestTimeout (the outcome is
    unknown), anything else aiohttp raises is NetworkError. What the answer *means* is the
    venue's to decide (its error bodies differ).
    """

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> tuple[int, str, str | None]:
        status, text, answer_headers = await self.exchange(
            method, url, params=params, data=data, headers=headers, what=what
        )
        return status, text, answer_headers.get("Retry-After")

    async def exchange(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> tuple[int, str, Mapping[str, str]]:
        """Like :meth:`request`, with all the answer's headers (a login answer carries its session
        cookie in ``Set-Cookie``)."""
        if self._session is None:
            raise NetworkError(f"{self.name} HTTP session is not open (call connect first)")
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items()}
        label = what or f"{method} {url.split('?')[0]}"
        try:
            async with self._session.request(method, url, params=query, data=data, headers=headers) as resp:
                return resp.status, await resp.text(), resp.headers
        except asyncio.TimeoutError:
            raise RequestTimeout(f"{self.name} {label}: no answer within {self.timeout}s") from None
        except aiohttp.ClientError as exc:
            raise NetworkError(f"{self.name} {label}: {type(exc).__name__}: {exc}") from None


def retry_after_seconds(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None


def json_or_none(text: str) -> Any:
    """A REST answer's JSON, or None when it is empty or not JSON (the caller decides whether
    that is an error: an error status is typed from the status alone, a 2xx is malformed)."""
    try:
        return safe_json.loads(text) if text else None
    except MalformedMessage:
        return None


def with_retry_after(error: ExchangeError, header: str | None) -> ExchangeError:
    """``error``, carrying the venue's Retry-After when it is a rate limit."""
    if isinstance(error, RateLimitExceeded):
        error.retry_after = retry_after_seconds(header)
    return error


def error_for_status(http_status: int, *, not_found_404: bool = False) -> type[ExchangeError]:
    """The error class of an answer whose venue code says nothing we know: 5xx unavailable,
    401/403 authentication (404 order-not-found where the venue means that), else generic."""
    if http_status >= 500:
        return ExchangeUnavailable
    if http_status in (401, 403):
        return AuthenticationError
    if not_found_404 and http_status == 404:
        return OrderNotFound
    return ExchangeError


def depth_snapshot_levels(body: Any, venue: str, symbol: str) -> tuple[Any, Any, int]:
    """(bids, asks, lastUpdateId) of a REST depth snapshot; MalformedMessage without the id."""
    last = opt_int(body.get("lastUpdateId")) if isinstance(body, dict) else None
    if last is None:
        raise MalformedMessage(f"{venue}: depth snapshot of {symbol} has no lastUpdateId")
    return body.get("bids") or [], body.get("asks") or [], last


# ---------------------------------------------------------------------------------------------
# Settings from the environment
# ---------------------------------------------------------------------------------------------


def required_setting(env: Mapping[str, str], name: str) -> str:
    """The stripped value of ``name``; a one-line ConfigurationError when it is missing."""
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set (put it in your .env file)")
    return value


def venue_urls(
    env: Mapping[str, str],
    params: Mapping[str, Any],
    prefix: str,
    defaults: tuple[str, str],
    *,
    strip_ws_slash: bool = True,
) -> tuple[str, str]:
    """(REST base URL, WebSocket URL): ``exchange_params`` first, then ``<PREFIX>_BASE_URL`` /
    ``<PREFIX>_WS_URL``, then the venue's defaults; each checked for its scheme."""
    base_url = str(params.get("base_url") or env.get(f"{prefix}_BASE_URL") or defaults[0]).rstrip("/")
    ws_url = str(params.get("ws_url") or env.get(f"{prefix}_WS_URL") or defaults[1])
    if strip_ws_slash:
        ws_url = ws_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{prefix}_BASE_URL must start with http:// or https://")
    if not ws_url.startswith(("ws://", "wss://")):
        raise ConfigurationError(f"{prefix}_WS_URL must start with ws:// or wss://")
    return base_url, ws_url


def milliseconds_setting(
    env: Mapping[str, str], params: Mapping[str, Any], key: str, name: str, default: int, maximum: int
) -> int:
    """A signature window in milliseconds, 1..``maximum``: ``exchange_params[key]``, else the
    environment's ``name``, else ``default``; a one-line ConfigurationError naming ``name``."""
    raw = params.get(key) or env.get(name) or default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer (milliseconds)") from None
    if not 0 < value <= maximum:
        raise ConfigurationError(f"{name} must be between 1 and {maximum} ms")
    return value


# ---------------------------------------------------------------------------------------------
# Background work and results
# ---------------------------------------------------------------------------------------------


class BackgroundTasks:
    """Fire-and-forget work (reconciles, keep-alives) that is logged when it fails and cancelled
    on disconnect, instead of vanishing with an unretrieved exception."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("%s: background task failed: %s", self.name, task.exception())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # already logged by _done
                pass


def order_result(order: VenueOrder, error_message: str | None = None) -> OrderResult:
    """What a placement or cancel came to for a tracked order (UNKNOWN shows as PENDING)."""
    info = order.info()
    status = OrderStatus.PENDING if order.status is OrderStatus.UNKNOWN else order.status
    return OrderResult(
        success=status not in (OrderStatus.REJECTED, OrderStatus.EXPIRED),
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        side=order.side,
        size=order.size,
        price=order.price,
        status=status,
        filled_size=info.filled_size,
        average_fill_price=info.average_fill_price,
        error_message=error_message,
    )
