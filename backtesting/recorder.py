"""Record a venue's public book and trades into the format the backtester reads.

Why: a trader should backtest the venue they trade, not a Binance tape. ``record.py`` connects
to a venue's public streams with the shared :class:`~helpers.reconnecting_websocket.
ReconnectingWebSocket`, keeps the venue's book with the connector's own parsing and continuity
checks, and writes header, snapshots, diffs, tops, trades and gaps through
:class:`~backtesting.recording.RecordingWriter` (the format is documented there).

A venue is one :class:`VenueHook` subclass in :data:`HOOKS`: where its streams are, how to read
its instrument metadata, what to subscribe to, and how to turn its messages into writer calls.
Everything else (the stream's life, gap lines on disconnects, flushing, stopping at the
duration or on a signal, closing the gzip) is :func:`record`'s, once for every venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from backtesting.recording import DEFAULT_FLUSH_SECONDS, RecordingWriter, WriterCounts
from exchanges.base import ConfigurationError, MalformedMessage
from helpers.clock import LiveClock
from helpers.instruments import Instrument
from helpers.reconnecting_websocket import Payload, ReconnectingWebSocket

logger = logging.getLogger(__name__)

#: Trade ids remembered to drop repeats (a venue may resend a trade; memory stays bounded).
SEEN_TRADES = 4096


@dataclass(frozen=True)
class VenueMarket:
    """What a hook learned about the market before streaming: the header's contents."""

    ticker: str
    market_id: str
    instrument: Instrument
    rest_url: str
    ws_url: str


class VenueHook(ABC):
    """One venue's part of a recording. Subclasses fill in the four abstract methods.

    ``writer`` is set before the stream starts. A message handler calls the writer's
    ``snapshot``/``depth``/``top``/``trade`` and, when its book can no longer be trusted,
    :meth:`resync` (a gap line, then a fresh snapshot from the venue).
    """

    name: ClassVar[str]

    def __init__(self, ticker: str, env: Mapping[str, str]) -> None:
        self.ticker = ticker.upper()
        self.env = env
        self.writer: RecordingWriter | None = None
        self.ws: ReconnectingWebSocket | None = None
        self._seen_trades: deque[Any] = deque(maxlen=SEEN_TRADES)
        self._seen_set: set[Any] = set()

    @abstractmethod
    async def load_market(self) -> VenueMarket:
        """Resolve the ticker and read the instrument's metadata (REST); ConfigurationError if unknown."""

    @abstractmethod
    def subscriptions(self) -> dict[str, Payload]:
        """The public streams to subscribe to (sent again on every reconnect)."""

    @abstractmethod
    async def on_message(self, message: Any) -> None:
        """One decoded frame."""

    async def on_connect(self) -> None:
        """A new connection, before the subscriptions are sent: forget the old book."""

    async def close(self) -> None:
        """Release what :meth:`load_market` opened."""

    async def resync(self, reason: str) -> None:
        """The book is not trustworthy: a gap line, then ask the venue for a snapshot."""
        assert self.writer is not None
        self.writer.gap(reason)
        logger.warning("%s: %s; resyncing the book", self.name, reason)
        await self.request_snapshot()

    async def request_snapshot(self) -> None:
        """Default: reconnect (every venue answers a fresh subscription with a snapshot)."""
        if self.ws is not None:
            await self.ws.reconnect("book resync", immediate=True)

    def first_time(self, trade_id: Any) -> bool:
        """True the first time a trade id is seen (bounded memory of recent ids)."""
        if trade_id in self._seen_set:
            return False
        if len(self._seen_trades) == self._seen_trades.maxlen:
            self._seen_set.discard(self._seen_trades[0])
        self._seen_trades.append(trade_id)
        self._seen_set.add(trade_id)
        return True


# ---------------------------------------------------------------------------------------------
# Lighter
# ---------------------------------------------------------------------------------------------


class LighterHook(VenueHook):
    """Lighter: ``order_book/{market}`` (snapshot + diffs, checked by the connector's
    :class:`~exchanges.lighter.LocalBook`) and ``trade/{market}``.

    Endpoints: ``LIGHTER_BASE_URL``/``LIGHTER_WS_URL`` or ``LIGHTER_NETWORK`` (mainnet by
    default), as for the trading client; no keys are needed. A diff's ``U``/``pu`` is Lighter's
    ``begin_nonce`` and ``u`` its ``nonce`` (continuity: ``pu`` = the previous ``u``); trades
    are written from ``update/trade`` only (``subscribed/trade`` replays trades from before the
    subscription); ``is_maker_ask`` false means the buyer was the maker (``m`` true).
    """

    name = "lighter"

    def __init__(self, ticker: str, env: Mapping[str, str]) -> None:
        super().__init__(ticker, env)
        # The connector module loads lighter-sdk (its signer is native): only when recording Lighter.
        from exchanges import lighter

        self._lighter = lighter
        network = str(env.get("LIGHTER_NETWORK") or "mainnet").strip().lower()
        if network not in lighter.NETWORKS:
            raise ConfigurationError(f"LIGHTER_NETWORK must be one of {', '.join(lighter.NETWORKS)}")
        default_url, default_ws, _chain = lighter.NETWORKS[network]
        self.rest_url = str(env.get("LIGHTER_BASE_URL") or default_url).rstrip("/")
        self.ws_url = str(env.get("LIGHTER_WS_URL") or default_ws)
        if not self.rest_url.startswith(("http://", "https://")):
            raise ConfigurationError("LIGHTER_BASE_URL must start with http:// or https://")
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigurationError("LIGHTER_WS_URL must start with ws:// or wss://")
        clock = LiveClock()
        limiter = lighter._minute_budget(clock, 60.0, "lighter-record-rest")
        retry = lighter.RetryPolicy(clock, max_attempts=4, limiter=limiter, name="lighter-record-rest")
        self._rest = lighter.LighterRest(self.rest_url, timeout=10.0, retry=retry)
        self.market_id = ""
        self.book: Any = None

    async def load_market(self) -> VenueMarket:
        lighter = self._lighter
        validate = lighter.venue_validation
        await self._rest.open()
        books = await self._rest.get("/api/v1/orderBooks")
        with lighter.rest_body("lighter /api/v1/orderBooks"):
            symbols = {
                str(item["symbol"]).upper(): str(int(item["market_id"]))
                for item in lighter._list_of(books, "order_books")
                if item.get("market_type", "perp") == "perp"
            }
        market_id = symbols.get(self.ticker)
        if market_id is None:
            known = ", ".join(sorted(symbols)[:20]) or "none"
            raise ConfigurationError(f"Lighter has no perpetual market {self.ticker!r} (markets: {known})")
        body = await self._rest.get("/api/v1/orderBookDetails", {"market_id": market_id})
        with lighter.rest_body("lighter /api/v1/orderBookDetails"):
            listed = lighter._list_of(body, "order_book_details")
            details = [d for d in listed if str(d.get("market_id")) == market_id]
            if not details:
                raise ConfigurationError(f"Lighter has no market with id {market_id}")
            d = details[0]
            size_decimals = lighter._decimals(
                d.get("size_decimals", d.get("supported_size_decimals")), "size"
            )
            price_decimals = lighter._decimals(
                d.get("price_decimals", d.get("supported_price_decimals")), "price"
            )
            instrument = Instrument(
                symbol=self.ticker,
                kind="linear",
                base=self.ticker,
                quote="USDC",  # Lighter's perpetuals are margined and settled in USDC
                settlement="USDC",
                tick_size=Decimal(1).scaleb(-price_decimals),
                size_step=Decimal(1).scaleb(-size_decimals),
                min_size=validate.size(d.get("min_base_amount", "0"), "min_base_amount"),
                min_notional=validate.size(d.get("min_quote_amount", "0"), "min_quote_amount"),
                contract_multiplier=Decimal(1),
                # orderBookDetails gives fees in percent ("0.0020" is 0.002 %), our unit too.
                maker_fee_pct=lighter.to_decimal(d.get("maker_fee", "0"), "maker_fee"),
                taker_fee_pct=lighter.to_decimal(d.get("taker_fee", "0"), "taker_fee"),
            )
        self.market_id = market_id
        self.book = lighter.LocalBook(market_id)
        return VenueMarket(self.ticker, market_id, instrument, self.rest_url, self.ws_url)

    def subscriptions(self) -> dict[str, Payload]:
        return {
            f"order_book/{self.market_id}": {"type": "subscribe", "channel": f"order_book/{self.market_id}"},
            f"trade/{self.market_id}": {"type": "subscribe", "channel": f"trade/{self.market_id}"},
        }

    async def on_connect(self) -> None:
        if self.book is not None:
            self.book.invalidate()

    async def close(self) -> None:
        await self._rest.close()

    async def request_snapshot(self) -> None:
        """Unsubscribe and subscribe the book again: Lighter answers with a full snapshot."""
        channel = f"order_book/{self.market_id}"
        if self.ws is None or not self.ws.connected.is_set():
            return  # the reconnect will subscribe afresh
        try:
            await self.ws.resubscribe(channel, {"type": "unsubscribe", "channel": channel})
        except (ConnectionError, OSError) as exc:
            logger.warning("lighter: could not resubscribe %s (%s); the reconnect will", channel, exc)

    async def on_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "ping" and self.ws is not None:
            await self.ws.send({"type": "pong"})
        elif kind in ("subscribed/order_book", "update/order_book"):
            await self._on_book(message, snapshot=kind == "subscribed/order_book")
        elif kind == "update/trade":
            self._on_trades(message)

    async def _on_book(self, message: Mapping[str, Any], *, snapshot: bool) -> None:
        lighter, book, writer = self._lighter, self.book, self.writer
        assert writer is not None and book is not None
        if str(message.get("channel", "")).split(":")[-1] != self.market_id:
            return
        data = message.get("order_book")
        stamp = lighter._opt_int(message.get("timestamp")) or time.time_ns() // 1_000_000
        try:
            if not isinstance(data, dict):
                raise lighter.InvalidVenueData("wrong type", "order_book is not an object")
            if snapshot:
                book.apply_snapshot(data, message.get("offset"))
                writer.snapshot(
                    book.nonce or 0,
                    sorted(book.bids.items(), reverse=True),
                    sorted(book.asks.items()),
                )
            else:
                if not book.apply_delta(data, message.get("offset")):
                    return  # a repeat, or no snapshot yet
                begin = book.begin_nonce or 0
                writer.depth(
                    begin,
                    book.nonce or 0,
                    begin,
                    lighter.LocalBook._parse_levels(data.get("bids") or []),
                    lighter.LocalBook._parse_levels(data.get("asks") or []),
                    stamp,
                )
        except lighter.BookGap as gap:
            await self.resync(f"book gap: {gap}")
            return
        except (MalformedMessage, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            await self.resync(f"malformed book message: {exc}"[:200])
            return
        top = book.top()
        if top is None:
            if book.crossed:
                book.invalidate()
                await self.resync("crossed book")
            return
        bid, ask = top
        writer.top(bid, book.bids[bid], ask, book.asks[ask], stamp)

    def _on_trades(self, message: Mapping[str, Any]) -> None:
        lighter, writer = self._lighter, self.writer
        assert writer is not None
        if str(message.get("channel", "")).split(":")[-1] != self.market_id:
            return
        trades = message.get("trades")
        if not isinstance(trades, list):
            logger.warning("lighter: a trade message without a trade list; skipped")
            return
        for trade in trades:
            try:
                trade_id = int(trade["trade_id"])
                price = lighter.venue_validation.price(trade["price"], "trade price")
                size = lighter.venue_validation.size(trade["size"], "trade size")
                maker_is_ask = trade["is_maker_ask"]
                if not isinstance(maker_is_ask, bool) or size <= 0:
                    raise ValueError("is_maker_ask is not a boolean or size is 0")
                stamp = lighter._opt_int(trade.get("timestamp")) or time.time_ns() // 1_000_000
            except (MalformedMessage, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                logger.warning("lighter: malformed trade skipped (%s)", str(exc)[:120])
                continue
            if self.first_time(trade_id):
                writer.trade(trade_id, price, size, not maker_is_ask, stamp)


# ---------------------------------------------------------------------------------------------
# Aster (Binance-futures style)
# ---------------------------------------------------------------------------------------------

#: Diffs held while a depth snapshot is fetched; more than this and the snapshot starts again.
MAX_BUFFERED_DIFFS = 10_000


class AsterHook(VenueHook):
    """Aster: ``<symbol>@depth@100ms`` diffs on a REST snapshot (``/fapi/v1/depth``, Binance's
    sync rule, the connector's :func:`~exchanges.aster.depth_continues`) and
    ``<symbol>@aggTrade`` (``m`` as the venue sends it, the aggregate id ``a`` as the trade id).

    Endpoints: ``ASTER_BASE_URL``/``ASTER_WS_URL`` as for the trading client; no keys. The
    tick, size step, minimum size and notional come from ``exchangeInfo``; Aster publishes fees
    only to a signed account (``commissionRate``), so the header carries the trading client's
    own fee estimate (``AsterClient.PARAMS``: maker 0.01 %, taker 0.035 %; give
    --paper-maker-fee / --paper-taker-fee to the backtest if your account's differ). The first
    diff after a snapshot spans
    it (``U <= lastUpdateId <= u``); after that ``pu`` is the previous ``u``.
    """

    name = "aster"

    def __init__(self, ticker: str, env: Mapping[str, str]) -> None:
        super().__init__(ticker, env)
        from exchanges import aster

        self._aster = aster
        self.rest_url = str(env.get("ASTER_BASE_URL") or aster.DEFAULT_BASE_URL).rstrip("/")
        self.ws_url = str(env.get("ASTER_WS_URL") or aster.DEFAULT_WS_URL).rstrip("/")
        if not self.rest_url.startswith(("http://", "https://")):
            raise ConfigurationError("ASTER_BASE_URL must start with http:// or https://")
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigurationError("ASTER_WS_URL must start with ws:// or wss://")
        # Public requests only: the REST client is given no keys (none are sent unsigned).
        settings = aster.AsterSettings(
            api_key="", secret_key="", base_url=self.rest_url, ws_url=self.ws_url, recv_window=5000
        )
        clock = LiveClock()
        retry = aster.RetryPolicy(clock, max_attempts=4, name="aster-record-rest")
        self._rest = aster.AsterRest(settings, timeout=10.0, retry=retry)
        self.symbol = ""
        self.book = aster.PriceLevels("aster-record")
        self._buffer: list[Mapping[str, Any]] = []
        self._syncing = False
        self._sync_task: asyncio.Task[None] | None = None

    async def load_market(self) -> VenueMarket:
        aster = self._aster
        await self._rest.http.open()
        body = await self._rest.public("/fapi/v1/exchangeInfo")
        symbols = {
            str(raw.get("symbol")): raw
            for raw in (body.get("symbols") or [] if isinstance(body, dict) else [])
            if isinstance(raw, dict)
            and raw.get("contractType") == "PERPETUAL"
            and raw.get("status") == "TRADING"
        }
        raw = next((symbols[s] for s in (self.ticker, f"{self.ticker}USDT") if s in symbols), None)
        if raw is None:
            known = ", ".join(sorted(symbols)[:20]) or "none"
            raise ConfigurationError(f"Aster has no USDT perpetual market {self.ticker!r} (markets: {known})")
        filters = {f.get("filterType"): f for f in raw.get("filters") or [] if isinstance(f, dict)}
        price, lot = filters.get("PRICE_FILTER") or {}, filters.get("LOT_SIZE") or {}
        notional = filters.get("MIN_NOTIONAL") or {}
        self.symbol = str(raw["symbol"])
        quote = str(raw.get("quoteAsset") or "USDT").upper()
        instrument = Instrument(
            symbol=self.ticker,
            kind="linear",
            base=str(raw.get("baseAsset") or self.ticker).upper(),
            quote=quote,
            settlement=str(raw.get("marginAsset") or quote).upper(),
            tick_size=aster.to_decimal(price.get("tickSize"), "tickSize"),
            size_step=aster.to_decimal(lot.get("stepSize"), "stepSize"),
            min_size=aster.to_decimal(lot.get("minQty") or "0", "minQty"),
            min_notional=aster.to_decimal(
                notional.get("notional") or notional.get("minNotional") or "0", "notional"
            ),
            contract_multiplier=Decimal(1),
            # The client's estimate is a fraction (0.0001); the header's unit is percent.
            maker_fee_pct=Decimal(str(aster.AsterClient.PARAMS["maker_fee"])) * 100,
            taker_fee_pct=Decimal(str(aster.AsterClient.PARAMS["taker_fee"])) * 100,
        )
        return VenueMarket(self.ticker, self.symbol, instrument, self.rest_url, f"{self.ws_url}/ws")

    def subscriptions(self) -> dict[str, Payload]:
        streams = [f"{self.symbol.lower()}@depth@100ms", f"{self.symbol.lower()}@aggTrade"]
        return {self.symbol: {"method": "SUBSCRIBE", "params": streams, "id": 1}}

    async def on_connect(self) -> None:
        self.book.invalidate()
        self._start_sync()

    async def request_snapshot(self) -> None:
        self.book.invalidate()
        self._start_sync()

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        await self._rest.http.close()

    def _start_sync(self) -> None:
        """Buffer diffs from now on and fetch a snapshot (once at a time)."""
        self._buffer = []
        if self._syncing:
            return
        self._syncing = True
        self._sync_task = asyncio.create_task(self._sync(), name="aster-record-snapshot")

    async def _sync(self) -> None:
        aster, writer = self._aster, self.writer
        assert writer is not None
        pause = 1.0
        try:
            while True:
                if self.ws is not None:
                    await self.ws.wait_connected(None)  # diffs are subscribed (and buffered) first
                try:
                    body = await self._rest.public("/fapi/v1/depth", {"symbol": self.symbol, "limit": 1000})
                    last = aster.opt_int(body.get("lastUpdateId")) if isinstance(body, dict) else None
                    if last is None:
                        raise MalformedMessage("aster: depth snapshot has no lastUpdateId")
                    self.book.replace(body.get("bids") or [], body.get("asks") or [], last)
                except (aster.ExchangeError, MalformedMessage) as exc:
                    logger.warning("aster: depth snapshot failed (%s); retrying in %.0f s", exc, pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 30.0)
                    continue
                writer.snapshot(last, self.book.sorted_bids(), self.book.sorted_asks())
                buffered, self._buffer = self._buffer, []
                if all(self._apply(diff) for diff in buffered):
                    break
                writer.gap("depth did not continue its snapshot")
        finally:
            self._syncing = False
        self._write_top(None)

    def _apply(self, diff: Mapping[str, Any]) -> bool:
        """Apply one diff by the venue's rule and write it; False on a gap."""
        aster, writer = self._aster, self.writer
        assert writer is not None
        before = self.book.sequence
        if not aster.depth_continues(self.book, diff):
            return False
        last = aster.opt_int(diff.get("u"))
        if self.book.sequence == last and before != last:  # applied (not older than the snapshot)
            writer.depth(
                aster.opt_int(diff.get("U")) or 0,
                last or 0,
                aster.opt_int(diff.get("pu")) or 0,
                [(aster.to_decimal(p, "price"), aster.to_decimal(q, "size")) for p, q in diff.get("b") or []],
                [(aster.to_decimal(p, "price"), aster.to_decimal(q, "size")) for p, q in diff.get("a") or []],
                aster.opt_int(diff.get("E")) or time.time_ns() // 1_000_000,
            )
        return True

    def _write_top(self, stamp: Any) -> None:
        top = self.book.top()
        if top is not None and self.writer is not None:
            bid, ask = top
            event_ms = self._aster.opt_int(stamp) or time.time_ns() // 1_000_000
            self.writer.top(bid, self.book.bids[bid], ask, self.book.asks[ask], event_ms)

    async def on_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        data = message.get("data") if isinstance(message.get("data"), dict) else message
        if str(data.get("s") or "") != self.symbol:
            return
        kind = data.get("e")
        try:
            if kind == "depthUpdate":
                if self._syncing:
                    self._buffer.append(data)
                    if len(self._buffer) > MAX_BUFFERED_DIFFS:
                        self._buffer = []  # the snapshot is too late: it starts again after it
                    return
                if not self.book.valid:
                    return
                if not self._apply(data):
                    await self.resync("book gap: a depth diff does not continue the last one")
                    return
                self._write_top(data.get("E"))
            elif kind == "aggTrade":
                trade_id = int(data["a"])
                price = self._aster.to_decimal(data["p"], "trade price")
                size = self._aster.to_decimal(data["q"], "trade size")
                if not isinstance(data["m"], bool) or price <= 0 or size <= 0:
                    raise ValueError("bad trade fields")
                if self.first_time(trade_id) and self.writer is not None:
                    self.writer.trade(
                        trade_id, price, size, data["m"], int(data.get("T") or data.get("E") or 0)
                    )
        except (MalformedMessage, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            if kind == "depthUpdate":
                await self.resync(f"malformed depth message: {exc}"[:200])
            else:
                logger.warning("aster: malformed %s skipped (%s)", str(kind)[:20], str(exc)[:120])


#: Venues ``record.py`` can record: name -> hook class. A new venue adds its hook here.
HOOKS: dict[str, type[VenueHook]] = {"lighter": LighterHook, "aster": AsterHook}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def header_metadata(hook: VenueHook, market: VenueMarket) -> dict[str, Any]:
    return {
        "venue": hook.name,
        "ticker": market.ticker,
        "market_id": market.market_id,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rest_url": market.rest_url,
        "ws_url": market.ws_url,
        "instrument": market.instrument.metadata(),
    }


async def record(
    hook: VenueHook,
    out: Path,
    *,
    duration: float | None,
    stop: asyncio.Event,
    flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    connect_timeout: float = 30.0,
    ws_options: Mapping[str, Any] | None = None,
) -> WriterCounts:
    """Record until ``duration`` seconds pass or ``stop`` is set; the file is always closed.

    A disconnect writes a gap line at once (the stream loop then reconnects with back-off and
    resubscribes; the venue's snapshot ends the gap). A first connection that does not come up
    within ``connect_timeout`` is an error (ConnectionError), so a wrong URL fails in seconds.
    """
    clock = LiveClock()
    writer: RecordingWriter | None = None
    ws: ReconnectingWebSocket | None = None
    closing = asyncio.Event()  # set before the stream is closed on purpose: no gap line for that
    try:
        market = await hook.load_market()
        writer = RecordingWriter(out, market.ticker, flush_seconds=flush_seconds)
        writer.header(header_metadata(hook, market))
        hook.writer = writer

        def on_disconnect(reason: str) -> None:
            if not closing.is_set() and writer is not None:
                writer.gap(f"disconnected: {reason}")

        ws = ReconnectingWebSocket(
            market.ws_url,
            hook.on_message,
            clock,
            subscriptions=hook.subscriptions(),
            on_connect=hook.on_connect,
            on_disconnect=on_disconnect,
            compression=None,
            name=f"{hook.name}-record",
            **dict(ws_options or {}),
        )
        hook.ws = ws
        ws.start()
        if not await ws.wait_connected(connect_timeout):
            raise ConnectionError(
                f"{hook.name} stream {market.ws_url} not connected after {connect_timeout:g}s "
                f"({ws.last_error or 'no answer'})"
            )
        logger.info("recording %s %s to %s", hook.name, market.ticker, out)
        flush_every = max(flush_seconds, 0.05)
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            left = flush_every if deadline is None else min(flush_every, deadline - time.monotonic())
            if left <= 0:
                break
            await clock.wait_for_event(stop, left)
            writer.flush()  # also when no message arrives: the file stays current
        return writer.counts
    except BaseException:
        if writer is not None and writer.counts.lines <= 1:
            writer.close()
            # A failed start leaves no header-only file behind.
            await asyncio.to_thread(out.unlink, missing_ok=True)
        raise
    finally:
        closing.set()
        if ws is not None:
            await ws.close()
        await hook.close()
        if writer is not None:
            writer.close()


def make_hook(exchange: str, ticker: str, env: Mapping[str, str] | None = None) -> VenueHook:
    hook_class = HOOKS.get(exchange)
    if hook_class is None:
        raise ConfigurationError(f"no recorder for {exchange!r}; venues: {', '.join(sorted(HOOKS))}")
    return hook_class(ticker, os.environ if env is None else env)
