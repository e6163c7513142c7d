"""Aster perpetuals client (USDT-margined ``*USDT`` markets), Binance-futures style.

How it talks to the venue, and why (no SDK exists, so this is aiohttp and the shared layer):

* REST ``/fapi/v1`` and ``/fapi/v2`` over one aiohttp session for the client's life. Signed
  requests carry ``timestamp`` and ``recvWindow`` and an HMAC-SHA256 ``signature`` of the exact
  query string; the key goes in the X-MBX-APIKEY header. Each retry is signed afresh. Errors
  are ``{"code": -NNNN, "msg": ...}`` mapped by one table (ERROR_TABLE).
* Markets from ``exchangeInfo`` filters: PRICE_FILTER tick, LOT_SIZE step and minimum,
  MIN_NOTIONAL. Post-only is time-in-force GTX: a GTX order that would take liquidity comes
  back EXPIRED (or as error -5022) and raises :class:`PostOnlyRejected`.
* Two :class:`ReconnectingWebSocket`: the market stream (``<symbol>@depth@100ms`` diffs checked
  with U/u/pu: each diff's ``pu`` must be the previous diff's ``u``, or the book is rebuilt from a
  snapshot; ``<symbol>@bookTicker`` for the top while it is) and the user stream on a listenKey
  (ORDER_TRADE_UPDATE: each TRADE is a trade report with its exact commission and maker flag,
  each event an order report with the cumulative ``z``; ACCOUNT_UPDATE is not needed: positions
  are read by REST). The listenKey is kept alive every ``listen_key_keepalive`` seconds (the
  venue expires it after 60 minutes); on ``listenKeyExpired`` or a failed keep-alive a new key
  is made and the user stream moves to it, then our orders are read back.
* ``find_order`` is one request: GET /fapi/v1/order by ``origClientOrderId`` answers for open
  and finished orders (the venue forgets only cancelled orders without fills after a few days).

Settings come from the environment (the bot loads the .env first): ASTER_API_KEY,
ASTER_SECRET_KEY, optional ASTER_BASE_URL / ASTER_WS_URL (e.g. the loopback mock,
tests/mock_venues/aster_venue.py) and ASTER_RECV_WINDOW (ms, default 5000).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

from exchanges.base import (
    AccountSnapshot,
    AuthenticationError,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    FundingRate,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    MalformedMessage,
    OrderBelowMinimum,
    OrderInfo,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PostOnlyRejected,
    RateLimitExceeded,
    RequestTimeout,
)
from exchanges.connector_kit import (
    HttpSession,
    PriceLevels,
    depth_snapshot_levels,
    error_for_status,
    json_or_none,
    milliseconds_setting,
    opt_int,
    optional_price,
    plain,
    required_setting,
    timestamp_seconds,
    to_decimal,
    venue_urls,
    with_retry_after,
)
from exchanges.venue_client import COMMON_PARAMS, StreamingVenueClient
from exchanges.venue_orders import OrderReport, TradeReport, VenueOrder
from helpers.clock import Clock
from helpers.rate_limiter import Priority, RetryPolicy
from helpers.reconnecting_websocket import ReconnectingWebSocket
from helpers.trading_config import TradingConfig

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://fapi.asterdex.com"
DEFAULT_WS_URL = "wss://fstream.asterdex.com"
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000


@dataclass(frozen=True)
class AsterSettings:
    """Connection settings; the secret is excluded from repr so it never reaches a log."""

    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    base_url: str
    ws_url: str
    recv_window: int

    @classmethod
    def load(cls, env: Mapping[str, str], params: Mapping[str, Any]) -> AsterSettings:
        api_key, secret = required_setting(env, "ASTER_API_KEY"), required_setting(env, "ASTER_SECRET_KEY")
        for name, value in (("ASTER_API_KEY", api_key), ("ASTER_SECRET_KEY", secret)):
            if not value.isascii() or not value.isalnum():
                # Never echo the value: a key pasted into the wrong variable would reach the console.
                raise ConfigurationError(f"{name} must be letters and digits only (as the venue issues it)")
        base_url, ws_url = venue_urls(env, params, "ASTER", (DEFAULT_BASE_URL, DEFAULT_WS_URL))
        window = milliseconds_setting(
            env, params, "recv_window", "ASTER_RECV_WINDOW", DEFAULT_RECV_WINDOW, MAX_RECV_WINDOW
        )
        return cls(api_key=api_key, secret_key=secret, base_url=base_url, ws_url=ws_url, recv_window=window)


# ---------------------------------------------------------------------------------------------
# Statuses and errors
# ---------------------------------------------------------------------------------------------

STATUS_TABLE: dict[str, OrderStatus] = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
    "NEW_INSURANCE": OrderStatus.OPEN,
    "NEW_ADL": OrderStatus.OPEN,
}

#: Aster (Binance-futures) error codes -> our taxonomy (codes from the venue's error table).
ERROR_TABLE: dict[int, type[ExchangeError]] = {
    -1000: ExchangeUnavailable,
    -1001: ExchangeUnavailable,
    -1003: RateLimitExceeded,
    -1007: RequestTimeout,
    -1008: ExchangeUnavailable,
    -1015: RateLimitExceeded,
    -1021: InvalidNonce,  # timestamp outside recvWindow: resync the clock and retry
    -1022: AuthenticationError,
    -2014: AuthenticationError,
    -2015: AuthenticationError,
    -1013: InvalidOrder,
    -1111: InvalidOrder,
    -2010: InvalidOrder,
    -2011: OrderNotFound,  # cancel of an order that is not open
    -2013: OrderNotFound,
    -2018: InsufficientFunds,
    -2019: InsufficientFunds,
    -2022: InvalidOrder,  # reduce-only rejected
    -4003: InvalidOrder,
    -4014: InvalidOrder,
    -4164: OrderBelowMinimum,
    -5022: PostOnlyRejected,
}


def map_error(code: int | None, message: str, http_status: int) -> ExchangeError:
    text = f"aster {code if code is not None else 'HTTP ' + str(http_status)}: {message}".rstrip(": ")
    if http_status in (418, 429):
        return RateLimitExceeded(text)
    cls = ERROR_TABLE.get(code) if code is not None else None
    if cls is None:
        cls = error_for_status(http_status)
        if cls is ExchangeError and code is not None and -4999 <= code <= -4000:
            cls = InvalidOrder
    return cls(text)


def _side(raw: Any) -> OrderSide:
    if raw == "BUY":
        return OrderSide.BUY
    if raw == "SELL":
        return OrderSide.SELL
    raise MalformedMessage(f"bad order side {str(raw)[:20]!r}")


def _status(venue_status: str, time_in_force: str, filled: Decimal) -> OrderStatus:
    """One place for Aster statuses: a GTX order that EXPIRED unfilled was refused as a taker
    (post-only), so it is REJECTED, never an expiry; OPEN with a fill is PARTIALLY_FILLED."""
    status = STATUS_TABLE.get(venue_status, OrderStatus.UNKNOWN)
    if status is OrderStatus.EXPIRED and time_in_force == "GTX" and filled == 0:
        return OrderStatus.REJECTED
    if status is OrderStatus.OPEN and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def order_report(raw: Mapping[str, Any], now: float) -> OrderReport:
    """A REST order object (new, cancel, query, openOrders) as an OrderReport."""
    venue_status = str(raw.get("status") or "")
    tif = str(raw.get("timeInForce") or "")
    filled = to_decimal(raw.get("executedQty") or "0", "executedQty")
    quote = raw.get("cumQuote")
    average = raw.get("avgPrice")
    return OrderReport(
        client_order_id=str(raw.get("clientOrderId") or ""),
        order_id=str(raw.get("orderId") or "") or None,
        contract_id=str(raw.get("symbol") or ""),
        side=_side(raw.get("side")),
        order_type=OrderType.MARKET if raw.get("type") == "MARKET" or tif == "IOC" else OrderType.LIMIT,
        size=to_decimal(raw.get("origQty"), "origQty"),
        price=to_decimal(raw.get("price") or "0", "price"),
        status=_status(venue_status, tif, filled),
        venue_status=venue_status,
        filled_size=filled,
        filled_quote=to_decimal(quote, "cumQuote") if quote not in (None, "") else None,
        average_fill_price=to_decimal(average, "avgPrice") if quote in (None, "") and average else None,
        timestamp=timestamp_seconds(raw.get("updateTime") or raw.get("time"), now),
        post_only=tif == "GTX",
    )


def stream_reports(event: Mapping[str, Any], now: float) -> tuple[OrderReport, TradeReport | None]:
    """One ORDER_TRADE_UPDATE as (order report, trade report when it is a TRADE)."""
    o = event.get("o")
    if not isinstance(o, Mapping):
        raise MalformedMessage("aster: ORDER_TRADE_UPDATE without its order")
    client_id = str(o.get("c") or "")
    order_id = str(o.get("i") or "") or None
    stamp = timestamp_seconds(o.get("T") or event.get("T") or event.get("E"), now)
    venue_status, tif = str(o.get("X") or ""), str(o.get("f") or "")
    filled = to_decimal(o.get("z") or "0", "cumulative filled")
    average = to_decimal(o.get("ap") or "0", "average price")
    report = OrderReport(
        client_order_id=client_id,
        order_id=order_id,
        contract_id=str(o.get("s") or ""),
        side=_side(o.get("S")),
        order_type=OrderType.MARKET if o.get("o") == "MARKET" or tif == "IOC" else OrderType.LIMIT,
        size=to_decimal(o.get("q"), "quantity"),
        price=to_decimal(o.get("p") or "0", "price"),
        status=_status(venue_status, tif, filled),
        venue_status=venue_status,
        filled_size=filled,
        average_fill_price=average if average > 0 else None,
        timestamp=stamp,
        post_only=tif == "GTX",
    )
    trade = None
    if o.get("x") == "TRADE":
        trade = TradeReport(
            trade_id=str(o.get("t")),
            client_order_id=client_id or None,
            order_id=order_id,
            size=to_decimal(o.get("l"), "last filled quantity"),
            price=to_decimal(o.get("L"), "last filled price"),
            fee=to_decimal(o["n"], "commission") if o.get("n") not in (None, "") else None,
            is_maker=o.get("m") if isinstance(o.get("m"), bool) else None,
            timestamp=stamp,
        )
    return report, trade


def depth_continues(book: PriceLevels, data: Mapping[str, Any]) -> bool:
    """Binance-futures depth continuity. Right after a snapshot (``book.sequence`` is its
    lastUpdateId, not yet a diff's ``u``): diffs ending before it are skipped, and the first one
    applied must span it (U <= lastUpdateId <= u) or follow it exactly (pu == lastUpdateId, when
    the snapshot was taken between two diffs). After that each diff's ``pu`` must be the previous
    diff's ``u``. False on a gap."""
    first, last, previous = opt_int(data.get("U")), opt_int(data.get("u")), opt_int(data.get("pu"))
    if first is None or last is None or book.sequence is None:
        return False
    if book.synced:
        if previous != book.sequence:
            return False
    else:
        if last < book.sequence:
            return True  # older than the snapshot
        if first > book.sequence and previous != book.sequence:
            return False
        book.synced = True
    book.apply(data.get("b") or [], data.get("a") or [], last)
    return True


# ---------------------------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------------------------


class AsterRest:
    """Signed (HMAC-SHA256) and public requests with one error mapping, limiter and retries."""

    def __init__(self, settings: AsterSettings, *, timeout: float, retry: RetryPolicy) -> None:
        self.settings = settings
        self.retry = retry
        self.http = HttpSession("aster", timeout)

    def signed_query(self, params: Mapping[str, Any]) -> str:
        """``params`` + timestamp + recvWindow, and the HMAC-SHA256 of exactly that text."""
        fields = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None
        }
        fields["recvWindow"] = str(self.settings.recv_window)
        fields["timestamp"] = str(int(time.time() * 1000))
        query = urlencode(fields)
        signature = hmac.new(self.settings.secret_key.encode(), query.encode(), hashlib.sha256).hexdigest()
        return f"{query}&signature={signature}"

    async def public(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        return await self.retry.call(lambda: self._send("GET", f"{path}{query}"))

    async def signed(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = True,
        priority: Priority = Priority.NORMAL,
    ) -> Any:
        return await self.retry.call(
            lambda: self._send(method, f"{path}?{self.signed_query(params or {})}", keyed=True),
            idempotent=idempotent,
            priority=priority,
        )

    async def keyed(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """A request that carries only the API key (the listenKey endpoints)."""
        query = f"?{urlencode(params)}" if params else ""
        return await self.retry.call(lambda: self._send(method, f"{path}{query}", keyed=True))

    async def _send(self, method: str, path_and_query: str, *, keyed: bool = False) -> Any:
        path = path_and_query.split("?", 1)[0]
        headers = {"X-MBX-APIKEY": self.settings.api_key} if keyed else None
        status, text, retry_after = await self.http.request(
            method, f"{self.settings.base_url}{path_and_query}", headers=headers, what=f"{method} {path}"
        )
        body = json_or_none(text)
        code = opt_int(body.get("code")) if isinstance(body, dict) else None
        if status >= 400 or (code is not None and code < 0):
            message = str(body.get("msg") or "") if isinstance(body, dict) else text[:120]
            raise with_retry_after(map_error(code, message, status), retry_after)
        if body is None:
            raise MalformedMessage(f"aster {method} {path}: answer is not JSON")
        return body


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


class AsterClient(StreamingVenueClient):
    """Aster perpetuals: HMAC REST on one session, a market stream and a listenKey user stream."""

    name = "aster"
    PARAMS: ClassVar[dict[str, Any]] = {
        **COMMON_PARAMS,
        "maker_fee": "0.0001",
        "taker_fee": "0.00035",
        "listen_key_keepalive": 1800.0,  # seconds between keep-alives (the venue expires keys at 60 min)
    }

    def __init__(self, config: TradingConfig, clock: Clock, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(config, clock)
        self.settings: AsterSettings = self._load_settings(AsterSettings, env)
        self._rest = AsterRest(self.settings, timeout=float(self.params["rest_timeout"]), retry=self.retry)
        self._http = self._rest.http
        self._markets: dict[str, ContractInfo] = {}
        self._funding_hours: dict[str, Decimal] = {}
        self._market_ws: ReconnectingWebSocket | None = None
        self._user_ws: ReconnectingWebSocket | None = None
        self._listen_key: str | None = None
        self._user_connected_once = False
        self.listen_key_renewals = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        await self._load_markets()
        symbol = self._symbol_for_ticker(self.config.ticker)
        self._listen_key = await self._new_listen_key()
        self._market_ws = self._make_socket(
            f"{self.settings.ws_url}/ws",
            self._on_market_message,
            "aster-market",
            self._on_market_connect,
            self._stream_disconnected,
        )
        self._user_ws = self._make_socket(
            self._user_url(), self._on_user_message, "aster-user", self._on_user_connect
        )
        await self._ensure_streams(symbol)
        self._market_ws.start()
        self._user_ws.start()
        for ws in (self._market_ws, self._user_ws):
            await self._wait_connected(ws)
        self._tasks.spawn(self._keep_listen_key_alive(), "aster-listen-key")

    async def _close(self) -> None:
        for ws in (self._market_ws, self._user_ws):
            if ws is not None:
                await ws.close()
        self._market_ws = self._user_ws = None
        if self._listen_key is not None:
            try:
                await self._rest.keyed("DELETE", "/fapi/v1/listenKey")
            except ExchangeError as exc:
                logger.info("aster: closing the user stream: %s", exc)
            self._listen_key = None

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        body = await self._rest.public("/fapi/v1/exchangeInfo")
        for raw in body.get("symbols") or [] if isinstance(body, dict) else []:
            if raw.get("contractType") != "PERPETUAL" or raw.get("status") != "TRADING":
                continue
            filters = {f.get("filterType"): f for f in raw.get("filters") or [] if isinstance(f, dict)}
            price, lot = filters.get("PRICE_FILTER") or {}, filters.get("LOT_SIZE") or {}
            notional = filters.get("MIN_NOTIONAL") or {}
            symbol = str(raw.get("symbol"))
            self._markets[symbol] = ContractInfo(
                ticker=str(raw.get("baseAsset") or "").upper(),
                contract_id=symbol,
                tick_size=to_decimal(price.get("tickSize"), "tickSize"),
                size_step=to_decimal(lot.get("stepSize"), "stepSize"),
                min_size=to_decimal(lot.get("minQty") or "0", "minQty"),
                min_notional=to_decimal(
                    notional.get("notional") or notional.get("minNotional") or "0", "notional"
                ),
            )

    def _symbol_for_ticker(self, ticker: str) -> str:
        wanted = ticker.upper()
        for symbol in (wanted, f"{wanted}USDT"):
            if symbol in self._markets:
                return symbol
        raise ConfigurationError(f"Aster has no USDT perpetual market for ticker {ticker!r}")

    def contract(self, contract_id: str) -> ContractInfo:
        info = self._markets.get(contract_id)
        if info is None:
            raise InvalidOrder(f"aster: unknown market {contract_id!r}")
        return info

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        self.contract(contract_id)
        body = await self._rest.public("/fapi/v1/premiumIndex", {"symbol": contract_id})
        if not isinstance(body, dict):
            raise MalformedMessage("aster: premiumIndex answer is not an object")
        if contract_id not in self._funding_hours:
            info = await self._rest.public("/fapi/v1/fundingInfo")
            for item in info if isinstance(info, list) else []:
                if isinstance(item, dict) and item.get("fundingIntervalHours") is not None:
                    self._funding_hours[str(item.get("symbol"))] = to_decimal(item["fundingIntervalHours"])
        return FundingRate(
            contract_id=contract_id,
            rate=to_decimal(body.get("lastFundingRate"), "lastFundingRate"),
            interval_hours=self._funding_hours.get(contract_id, Decimal(8)),
            next_funding_time=timestamp_seconds(body.get("nextFundingTime"), 0.0) or None,
        )

    # -- order hooks -------------------------------------------------------------------------

    async def _send_order(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> OrderReport:
        params = {
            "symbol": order.contract_id,
            "side": "BUY" if order.side is OrderSide.BUY else "SELL",
            "type": "LIMIT",
            "timeInForce": "GTX" if order.post_only and time_in_force == "GTC" else time_in_force,
            "quantity": plain(order.size),
            "price": plain(order.price),
            "newClientOrderId": order.client_order_id,
            "reduceOnly": True if reduce_only else None,
            "newOrderRespType": "RESULT",
        }
        body = await self._rest.signed("POST", "/fapi/v1/order", params, idempotent=False, priority=priority)
        return order_report(body, self.clock.now())

    def _rejection(self, order: VenueOrder) -> ExchangeError:
        if order.post_only and order.venue_status == "EXPIRED":
            return PostOnlyRejected(
                f"aster: post-only order {order.client_order_id} would have taken liquidity"
            )
        return super()._rejection(order)

    async def _send_cancel(
        self, contract_id: str, venue_id: str | None, client_id: str | None
    ) -> OrderReport | None:
        params = {"symbol": contract_id}
        if venue_id:
            params["orderId"] = venue_id
        elif client_id:
            params["origClientOrderId"] = client_id
        else:
            raise OrderNotFound(f"aster: order on {contract_id} has no id to cancel by")
        body = await self._rest.signed(
            "DELETE", "/fapi/v1/order", params, idempotent=False, priority=Priority.HIGH
        )
        return order_report(body, self.clock.now()) if isinstance(body, dict) else None

    # -- reading orders back -----------------------------------------------------------------

    async def _query(self, contract_id: str, **ids: str) -> OrderInfo:
        body = await self._rest.signed("GET", "/fapi/v1/order", {"symbol": contract_id, **ids})
        if not isinstance(body, dict):
            raise MalformedMessage("aster: order answer is not an object")
        return self._info_of(order_report(body, self.clock.now()))

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        return await self._query(contract_id, origClientOrderId=client_order_id)

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        tracked = self._orders.get(order_id)
        if tracked is not None:
            if tracked.order_id:
                return await self._query(contract_id, orderId=tracked.order_id)
            return await self._query(contract_id, origClientOrderId=tracked.client_order_id)
        if self.client_ids.is_ours(order_id):
            return await self._query(contract_id, origClientOrderId=order_id)
        return await self._query(contract_id, orderId=order_id)

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        body = await self._rest.signed("GET", "/fapi/v1/openOrders", {"symbol": contract_id})
        return self._our_active(
            body,
            lambda raw: str(raw.get("clientOrderId") or ""),
            lambda raw: self._info_of(order_report(raw, self.clock.now())),
        )

    # -- positions and account ---------------------------------------------------------------

    async def _positions(self, symbol: str | None = None) -> list[Position]:
        body = await self._rest.signed("GET", "/fapi/v2/positionRisk", {"symbol": symbol})
        if not isinstance(body, list):
            raise MalformedMessage("aster: positionRisk answer is not a list")
        return [
            Position(
                contract_id=str(raw.get("symbol")),
                size=to_decimal(raw.get("positionAmt"), "positionAmt"),
                entry_price=to_decimal(raw.get("entryPrice") or "0", "entryPrice"),
                unrealized_pnl=to_decimal(raw.get("unRealizedProfit") or "0", "unRealizedProfit"),
                liquidation_price=optional_price(raw.get("liquidationPrice"), "liquidationPrice"),
            )
            for raw in body
            if isinstance(raw, dict)
        ]

    async def get_account_snapshot(self) -> AccountSnapshot:
        body = await self._rest.signed("GET", "/fapi/v2/account")
        if not isinstance(body, dict):
            raise MalformedMessage("aster: account answer is not an object")
        positions = tuple(p for p in await self._positions() if p.size != 0)
        return AccountSnapshot(
            balance=to_decimal(body.get("totalWalletBalance"), "totalWalletBalance"),
            equity=to_decimal(body.get("totalMarginBalance"), "totalMarginBalance"),
            positions=positions,
            timestamp=self.clock.now(),
        )

    # -- market stream -----------------------------------------------------------------------

    depth_continues = staticmethod(depth_continues)

    def _book_socket(self) -> ReconnectingWebSocket | None:
        return self._market_ws

    async def _subscribe_market(self, ws: ReconnectingWebSocket, symbol: str) -> None:
        streams = [f"{symbol.lower()}@depth@100ms", f"{symbol.lower()}@bookTicker"]
        await ws.subscribe(symbol, {"method": "SUBSCRIBE", "params": streams, "id": len(self._streams)})

    async def _depth_snapshot(self, symbol: str) -> tuple[Any, Any, int]:
        body = await self._rest.public("/fapi/v1/depth", {"symbol": symbol, "limit": 1000})
        return depth_snapshot_levels(body, "aster", symbol)

    async def _on_market_connect(self) -> None:
        self._stream_connected(reconcile=False)  # our orders travel on the user stream

    def _on_market_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        data = message.get("data") if isinstance(message.get("data"), dict) else message
        kind = data.get("e")
        book = self._books.get(str(data.get("s") or ""))
        if book is None:
            if "result" not in data and "id" not in data:
                logger.debug("aster-market: ignoring %.80s", kind)
            return
        if kind == "depthUpdate":
            book.on_delta(data, data.get("T") or data.get("E"))
        elif kind == "bookTicker":
            book.on_ticker(to_decimal(data.get("b"), "bid"), to_decimal(data.get("a"), "ask"), data.get("T"))

    # -- user stream -------------------------------------------------------------------------

    def _user_url(self) -> str:
        return f"{self.settings.ws_url}/ws/{self._listen_key}"

    async def _new_listen_key(self) -> str:
        body = await self._rest.keyed("POST", "/fapi/v1/listenKey")
        key = body.get("listenKey") if isinstance(body, dict) else None
        if not key:
            raise MalformedMessage("aster: listenKey answer without a key")
        return str(key)

    async def _renew_listen_key(self, reason: str) -> None:
        """A new key, and the user stream moved to it (then our orders are read back)."""
        logger.warning("aster: user stream key renewed (%s)", reason)
        self._listen_key = await self._new_listen_key()
        self.listen_key_renewals += 1
        if self._user_ws is not None:
            self._user_ws.url = self._user_url()
            await self._user_ws.reconnect("new listenKey")

    async def _keep_listen_key_alive(self) -> None:
        interval = float(self.params["listen_key_keepalive"])
        while True:
            await self.clock.sleep(interval)
            try:
                await self._rest.keyed("PUT", "/fapi/v1/listenKey")
            except (ExchangeError, MalformedMessage) as exc:
                try:
                    await self._renew_listen_key(f"keep-alive failed: {exc}")
                except ExchangeError as again:
                    logger.warning("aster: could not renew the user stream key: %s", again)

    async def _on_user_connect(self) -> None:
        if self._user_connected_once:
            self._tasks.spawn(self._reconcile_orders(), "aster-reconcile")
            self._emit_reconnected()
        self._user_connected_once = True

    def _on_user_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        event = message.get("data") if isinstance(message.get("data"), dict) else message
        kind = event.get("e")
        if kind == "ORDER_TRADE_UPDATE":
            report, trade = stream_reports(event, self.clock.now())
            self._apply_stream(report if report.client_order_id else None, trade)
        elif kind == "listenKeyExpired":
            self._tasks.spawn(self._renew_listen_key("the venue expired it"), "aster-listen-key-renewal")
        elif kind not in ("ACCOUNT_UPDATE", "ACCOUNT_CONFIG_UPDATE", "MARGIN_CALL"):
            logger.debug("aster-user: ignoring %.80s", kind)

    def __repr__(self) -> str:
        return f"AsterClient({self.settings!r})"


__all__ = ["AsterClient", "AsterSettings", "depth_continues", "map_error", "order_report", "stream_reports"]
