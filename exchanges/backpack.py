"""Backpack Exchange perpetuals client (USDC-margined ``*_USDC_PERP`` markets).

How it talks to the venue, and why:

* REST requests are built and ED25519-signed by bpx-py's ``BaseAccount`` (the instruction
  string ``instruction=...&<sorted params>&timestamp=...&window=...``; headers X-API-Key,
  X-Signature, X-Timestamp, X-Window) and sent over one aiohttp session of our own
  (:class:`~exchanges.connector_kit.HttpSession`): bpx-py's async client opens a new session per
  request and returns error bodies as results, so every answer here goes through one error
  mapping, one rate limiter and one retry policy instead. Each attempt is signed afresh, so a
  retry never carries a stale timestamp.
* One :class:`ReconnectingWebSocket` carries ``depth.{symbol}`` (a local book from a REST
  snapshot plus deltas, checked for continuity with ``U``/``u``: a delta must start right after
  the last one applied, or the book is rebuilt), ``bookTicker.{symbol}`` (top of book while the
  depth book is being rebuilt) and the signed ``account.orderUpdate.{symbol}`` (our orders: each
  ``orderFill`` is a trade report with its exact fee and maker flag, each event also an order
  report with the cumulative ``z``/``Z``, both folded by the shared
  :class:`~exchanges.venue_orders.VenueOrders`).
* Client ids: Backpack's ``clientId`` is a 32-bit integer, so this client makes its ids with
  :class:`~exchanges.base.U32ClientOrderIdFactory` (the bot's 3-digit prefix is kept, so a
  restarted bot still knows its orders).
* Placing answers with the order: a post-only order that would take liquidity is refused by
  the venue ("Order would immediately match and take liquidity") and raises
  :class:`PostOnlyRejected`, for the strategy to retry at a fresh price. An order that traded
  at once waits (bounded) for its trades on the stream, so its fills carry exact fees; market
  orders are IOC limit orders at the slippage bound.
* ``find_order`` asks for the open order by ``clientId``, then reads the order history page by
  page (at most ``history_max_pages`` pages of 100); a search cut short by that bound raises
  OrderSearchTruncated, never OrderNotFound.

Settings come from the environment (the bot loads the .env first): BACKPACK_PUBLIC_KEY and
BACKPACK_SECRET_KEY (base64 ED25519 keys from the Backpack UI), optional BACKPACK_BASE_URL /
BACKPACK_WS_URL (e.g. the loopback mock, tests/mock_venues/backpack_venue.py) and
BACKPACK_WINDOW (signature validity in ms, default 5000). ``config.exchange_params`` tunes
timeouts (``PARAMS``: the shared ``COMMON_PARAMS`` plus ``history_max_pages``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from bpx.base.base_account import BaseAccount
from bpx.models.objects import RequestConfiguration

from exchanges.base import (
    AccountSnapshot,
    AuthenticationError,
    ClientOrderIdFactory,
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
    U32ClientOrderIdFactory,
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
    retry_after_seconds,
    timestamp_seconds,
    to_decimal,
    venue_urls,
    with_retry_after,
)
from exchanges.venue_client import COMMON_PARAMS, StreamingVenueClient
from exchanges.venue_orders import OrderReport, OrderSearchTruncated, TradeReport, VenueOrder
from helpers.clock import Clock
from helpers.rate_limiter import Priority, RetryPolicy
from helpers.reconnecting_websocket import ReconnectingWebSocket
from helpers.trading_config import TradingConfig

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.backpack.exchange"
DEFAULT_WS_URL = "wss://ws.backpack.exchange"
DEFAULT_WINDOW_MS = 5000
MAX_WINDOW_MS = 60000
HISTORY_PAGE_SIZE = 100


@dataclass(frozen=True)
class BackpackSettings:
    """Connection settings; the secret is excluded from repr so it never reaches a log."""

    public_key: str
    secret_key: str = field(repr=False)
    base_url: str
    ws_url: str
    window_ms: int

    @classmethod
    def load(cls, env: Mapping[str, str], params: Mapping[str, Any]) -> BackpackSettings:
        """Read and validate; every problem is a one-line ConfigurationError naming the variable."""
        public = required_setting(env, "BACKPACK_PUBLIC_KEY")
        secret = required_setting(env, "BACKPACK_SECRET_KEY")
        for name, value in (("BACKPACK_PUBLIC_KEY", public), ("BACKPACK_SECRET_KEY", secret)):
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                # Never echo the value: a key pasted into the wrong variable would reach the console.
                raise ConfigurationError(f"{name} is not a base64 ED25519 key (32 bytes)")
        base_url, ws_url = venue_urls(
            env, params, "BACKPACK", (DEFAULT_BASE_URL, DEFAULT_WS_URL), strip_ws_slash=False
        )
        window = milliseconds_setting(
            env, params, "window_ms", "BACKPACK_WINDOW", DEFAULT_WINDOW_MS, MAX_WINDOW_MS
        )
        return cls(public_key=public, secret_key=secret, base_url=base_url, ws_url=ws_url, window_ms=window)


# ---------------------------------------------------------------------------------------------
# Statuses and errors: one table each
# ---------------------------------------------------------------------------------------------

STATUS_TABLE: dict[str, OrderStatus] = {
    "New": OrderStatus.OPEN,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELLED,
    "Expired": OrderStatus.EXPIRED,
    "TriggerPending": OrderStatus.PENDING,
    "TriggerFailed": OrderStatus.REJECTED,
}

#: Backpack error codes (the ``code`` of an error body) -> our taxonomy.
ERROR_TABLE: dict[str, type[ExchangeError]] = {
    "INSUFFICIENT_FUNDS": InsufficientFunds,
    "INSUFFICIENT_MARGIN": InsufficientFunds,
    "MAX_LEVERAGE_REACHED": InsufficientFunds,
    "INVALID_PRICE": InvalidOrder,
    "INVALID_QUANTITY": InvalidOrder,
    "INVALID_ORDER": InvalidOrder,
    "ORDER_LIMIT": InvalidOrder,
    "POSITION_LIMIT": InvalidOrder,
    "RESOURCE_NOT_FOUND": OrderNotFound,
    "INVALID_SIGNATURE": AuthenticationError,
    "UNAUTHORIZED": AuthenticationError,
    "FORBIDDEN": AuthenticationError,
    "TIMESTAMP_OUT_OF_RANGE": InvalidNonce,
    "TOO_MANY_REQUESTS": RateLimitExceeded,
    "SERVICE_UNAVAILABLE": ExchangeUnavailable,
    "SERVER_ERROR": ExchangeUnavailable,
    "MAINTENANCE": ExchangeUnavailable,
    "TRADING_PAUSED": ExchangeUnavailable,
    "TIMEOUT": RequestTimeout,
}


def map_error(code: str, message: str, http_status: int) -> ExchangeError:
    """The typed error for a Backpack error body (or bare HTTP status)."""
    text = f"backpack {code or 'HTTP ' + str(http_status)}: {message}".rstrip(": ")
    lowered = message.lower()
    if http_status == 429 or code == "TOO_MANY_REQUESTS":
        return RateLimitExceeded(text)
    if "immediately match" in lowered or "take liquidity" in lowered:
        return PostOnlyRejected(text)
    if "quantity" in lowered and ("minimum" in lowered or "too small" in lowered or "below" in lowered):
        return OrderBelowMinimum(text)
    if "not found" in lowered and code in ("INVALID_ORDER", "RESOURCE_NOT_FOUND", ""):
        return OrderNotFound(text)
    cls = ERROR_TABLE.get(code) or error_for_status(http_status, not_found_404=True)
    return cls(text)


# ---------------------------------------------------------------------------------------------
# Backpack order objects -> the shared report vocabulary
# ---------------------------------------------------------------------------------------------


def _side(raw: Any) -> OrderSide:
    if raw == "Bid":
        return OrderSide.BUY
    if raw == "Ask":
        return OrderSide.SELL
    raise MalformedMessage(f"bad order side {str(raw)[:20]!r}")


def _client_id(raw: Any) -> str | None:
    value = opt_int(raw)
    return str(value) if value is not None else None


def order_report(raw: Mapping[str, Any], now: float) -> OrderReport | None:
    """A REST order object (order, orders, history) as an OrderReport; None without a clientId."""
    client_id = _client_id(raw.get("clientId"))
    if client_id is None:
        return None
    venue_status = str(raw.get("status") or "")
    filled = to_decimal(raw.get("executedQuantity") or "0", "executedQuantity")
    status = STATUS_TABLE.get(venue_status, OrderStatus.UNKNOWN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    is_market = raw.get("orderType") == "Market" or raw.get("timeInForce") == "IOC"
    return OrderReport(
        client_order_id=client_id,
        order_id=str(raw.get("id") or "") or None,
        contract_id=str(raw.get("symbol") or ""),
        side=_side(raw.get("side")),
        order_type=OrderType.MARKET if is_market else OrderType.LIMIT,
        size=to_decimal(raw.get("quantity"), "quantity"),
        price=to_decimal(raw.get("price") or "0", "price"),
        status=status,
        venue_status=venue_status,
        filled_size=filled,
        filled_quote=to_decimal(raw.get("executedQuoteQuantity") or "0", "executedQuoteQuantity"),
        timestamp=timestamp_seconds(raw.get("createdAt"), now),
        post_only=bool(raw.get("postOnly")),
    )


def stream_reports(data: Mapping[str, Any], now: float) -> tuple[OrderReport | None, TradeReport | None]:
    """One ``account.orderUpdate`` event as (order report, trade report of an ``orderFill``)."""
    client_id = _client_id(data.get("c"))
    order_id = str(data.get("i") or "") or None
    stamp = timestamp_seconds(data.get("T") or data.get("E"), now)
    trade = None
    if data.get("e") == "orderFill":
        trade = TradeReport(
            trade_id=str(data.get("t") or f"{order_id}:{data.get('z')}"),
            client_order_id=client_id,
            order_id=order_id,
            size=to_decimal(data.get("l"), "fill quantity"),
            price=to_decimal(data.get("L"), "fill price"),
            fee=to_decimal(data["n"], "fee") if data.get("n") not in (None, "") else None,
            is_maker=data.get("m") if isinstance(data.get("m"), bool) else None,
            timestamp=stamp,
        )
    if client_id is None or data.get("q") in (None, ""):
        return None, trade
    venue_status = str(data.get("X") or "")
    filled = to_decimal(data.get("z") or "0", "executed quantity")
    status = STATUS_TABLE.get(venue_status, OrderStatus.UNKNOWN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    report = OrderReport(
        client_order_id=client_id,
        order_id=order_id,
        contract_id=str(data.get("s") or ""),
        side=_side(data.get("S")),
        order_type=OrderType.MARKET
        if data.get("o") == "MARKET" or data.get("f") == "IOC"
        else OrderType.LIMIT,
        size=to_decimal(data.get("q"), "quantity"),
        price=to_decimal(data.get("p") or "0", "price"),
        status=status,
        venue_status=venue_status,
        filled_size=filled,
        filled_quote=to_decimal(data["Z"], "executed quote") if data.get("Z") not in (None, "") else None,
        timestamp=stamp,
    )
    return report, trade


def depth_continues(book: PriceLevels, data: Mapping[str, Any]) -> bool:
    """Backpack's depth continuity: a delta covers update ids U..u and must start right after
    the last id applied (older deltas are skipped); False on a gap."""
    first, last = opt_int(data.get("U")), opt_int(data.get("u"))
    if first is None or last is None or book.sequence is None:
        return False
    if last <= book.sequence:
        return True  # older than the snapshot, or a repeat
    if first > book.sequence + 1:
        return False
    book.apply(data.get("b") or [], data.get("a") or [], last)
    return True


# ---------------------------------------------------------------------------------------------
# REST: bpx-py builds and signs, one session sends
# ---------------------------------------------------------------------------------------------


class BackpackRest:
    """Signed and public requests with one error mapping, limiter and retry policy."""

    def __init__(self, settings: BackpackSettings, *, timeout: float, retry: RetryPolicy) -> None:
        self.settings = settings
        self.retry = retry
        self.http = HttpSession("backpack", timeout)
        self.account = BaseAccount(settings.public_key, settings.secret_key, settings.window_ms, False)
        # bpx-py joins this prefix with its paths; an instance attribute points it at our venue.
        self.account.BPX_API_URL = settings.base_url + "/"

    def sign_subscription(self) -> list[str]:
        """The ``signature`` field of a private stream subscription (instruction ``subscribe``)."""
        stamp = int(time.time() * 1000)
        window = self.settings.window_ms
        signature = self.account._sign({}, "subscribe", stamp, window)  # bpx-py's one signing routine
        return [self.settings.public_key, signature, str(stamp), str(window)]

    async def public(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        url = f"{self.settings.base_url}{path}"
        return await self.retry.call(lambda: self._send("GET", url, params=params, what=f"GET {path}"))

    async def signed(
        self,
        method: str,
        build: Callable[[], RequestConfiguration],
        *,
        idempotent: bool = True,
        priority: Priority = Priority.NORMAL,
    ) -> Any:
        async def attempt() -> Any:
            request = build()
            body = json.dumps(request.data) if request.data is not None else None
            return await self._send(
                method, request.url, params=request.params, data=body, headers=request.headers
            )

        return await self.retry.call(attempt, idempotent=idempotent, priority=priority)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Any:
        path = url[len(self.settings.base_url) :] if url.startswith(self.settings.base_url) else url
        status, text, retry_after = await self.http.request(
            method, url, params=params, data=data, headers=headers, what=what or f"{method} {path}"
        )
        body = json_or_none(text)
        if status >= 400:
            code = str(body.get("code") or "") if isinstance(body, dict) else ""
            message = str(body.get("message") or "") if isinstance(body, dict) else text[:120]
            if status == 429:
                raise RateLimitExceeded(
                    f"backpack {method} {path}: too many requests", retry_after_seconds(retry_after)
                )
            raise with_retry_after(map_error(code, message, status), retry_after)
        if body is None and text:
            raise MalformedMessage(f"backpack {method} {path}: answer is not JSON")
        return body


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackpackMarket:
    symbol: str
    base: str
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    funding_interval_hours: Decimal

    def contract_info(self) -> ContractInfo:
        return ContractInfo(
            ticker=self.base,
            contract_id=self.symbol,
            tick_size=self.tick_size,
            size_step=self.step_size,
            min_size=self.min_quantity,
        )


class BackpackClient(StreamingVenueClient):
    """Backpack perpetuals: bpx-py signing, our REST session, one reconnecting stream."""

    name = "backpack"
    PARAMS: ClassVar[dict[str, Any]] = {**COMMON_PARAMS, "history_max_pages": 10}

    def __init__(self, config: TradingConfig, clock: Clock, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(config, clock)
        self.settings: BackpackSettings = self._load_settings(BackpackSettings, env)
        try:
            self._rest = BackpackRest(
                self.settings, timeout=float(self.params["rest_timeout"]), retry=self.retry
            )
        except ValueError:
            raise ConfigurationError("BACKPACK_SECRET_KEY is not a valid ED25519 private key") from None
        self._http = self._rest.http
        self._markets: dict[str, BackpackMarket] = {}
        self._ws: ReconnectingWebSocket | None = None

    def _make_client_ids(self) -> ClientOrderIdFactory:
        try:
            return U32ClientOrderIdFactory(prefix=self.config.client_id_prefix)
        except ValueError as exc:
            raise ConfigurationError(f"backpack: {exc}") from None

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        await self._load_markets()
        market = self._market_for_ticker(self.config.ticker)
        self._ws = self._make_socket(
            self.settings.ws_url,
            self._on_ws_message,
            "backpack-ws",
            self._on_ws_connect,
            self._stream_disconnected,
        )
        await self._ensure_streams(market.symbol)
        self._ws.start()
        await self._wait_connected(self._ws, self.settings.ws_url)
        # A signed read proves the keys before the bot trades (a bad key fails here, typed).
        await self._rest.signed("GET", lambda: self._rest.account.get_open_orders(symbol=market.symbol))

    async def _close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        body = await self._rest.public("/api/v1/markets")
        for raw in body if isinstance(body, list) else []:
            if raw.get("marketType") != "PERP" or raw.get("quoteSymbol") != "USDC":
                continue
            filters = raw.get("filters") or {}
            price, quantity = filters.get("price") or {}, filters.get("quantity") or {}
            interval_ms = opt_int(raw.get("fundingInterval")) or 3_600_000
            market = BackpackMarket(
                symbol=str(raw.get("symbol")),
                base=str(raw.get("baseSymbol") or "").upper(),
                tick_size=to_decimal(price.get("tickSize"), "tickSize"),
                step_size=to_decimal(quantity.get("stepSize"), "stepSize"),
                min_quantity=to_decimal(quantity.get("minQuantity") or "0", "minQuantity"),
                funding_interval_hours=Decimal(interval_ms) / 3_600_000,
            )
            self._markets[market.symbol] = market

    def _symbol_for_ticker(self, ticker: str) -> str:
        return self._market_for_ticker(ticker).symbol

    def _market_for_ticker(self, ticker: str) -> BackpackMarket:
        wanted = ticker.upper()
        market = self._markets.get(wanted) or self._markets.get(f"{wanted}_USDC_PERP")
        if market is None:
            raise ConfigurationError(f"Backpack has no USDC perpetual market for ticker {ticker!r}")
        return market

    def _market(self, symbol: str) -> BackpackMarket:
        market = self._markets.get(symbol)
        if market is None:
            raise InvalidOrder(f"backpack: unknown market {symbol!r}")
        return market

    def contract(self, contract_id: str) -> ContractInfo:
        return self._market(contract_id).contract_info()

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        market = self._market(contract_id)
        body = await self._rest.public("/api/v1/markPrices", {"symbol": contract_id})
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and item.get("symbol") == contract_id:
                return FundingRate(
                    contract_id=contract_id,
                    rate=to_decimal(item.get("fundingRate"), "fundingRate"),
                    interval_hours=market.funding_interval_hours,
                    next_funding_time=timestamp_seconds(item.get("nextFundingTimestamp"), 0.0) or None,
                )
        raise ExchangeError(f"backpack: no funding rate for {contract_id}")

    # -- order hooks -------------------------------------------------------------------------

    def _answer(self, body: Any, what: str) -> OrderReport:
        report = order_report(body, self.clock.now()) if isinstance(body, dict) else None
        if report is None:
            raise MalformedMessage(f"backpack: {what} answered without the order's clientId")
        return report

    async def _send_order(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> OrderReport:
        def build() -> RequestConfiguration:
            return self._rest.account.execute_order(
                symbol=order.contract_id,
                side="Bid" if order.side is OrderSide.BUY else "Ask",
                order_type="Limit",
                time_in_force=time_in_force,
                quantity=plain(order.size),
                price=plain(order.price),
                client_id=int(order.client_order_id),
                post_only=order.post_only or None,
                reduce_only=reduce_only or None,
            )

        body = await self._rest.signed("POST", build, idempotent=False, priority=priority)
        return self._answer(body, f"order {order.client_order_id}")

    async def _send_cancel(
        self, contract_id: str, venue_id: str | None, client_id: str | None
    ) -> OrderReport | None:
        if venue_id is None and client_id is None:
            raise OrderNotFound(f"backpack: order on {contract_id} has no id to cancel by")

        def build() -> RequestConfiguration:
            if venue_id:
                return self._rest.account.cancel_order(contract_id, order_id=venue_id)
            return self._rest.account.cancel_order(contract_id, client_id=int(client_id or 0))

        body = await self._rest.signed("DELETE", build, idempotent=False, priority=Priority.HIGH)
        return order_report(body, self.clock.now()) if isinstance(body, dict) else None

    # -- reading orders back -----------------------------------------------------------------

    async def _open_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Any:
        """The open order with this id, or None when the venue says it is not open (404)."""
        try:
            return await self._rest.signed(
                "GET",
                lambda: self._rest.account.get_open_order(
                    symbol, order_id=order_id, client_id=int(client_id) if client_id else None
                ),
            )
        except OrderNotFound:
            return None

    async def _history(
        self, symbol: str, match: Callable[[Mapping[str, Any]], bool], *, order_id: str | None = None
    ) -> Any:
        """The first order in the history matching ``match``; None when the history ends without
        one; OrderSearchTruncated when the page bound cut the search short."""
        pages = int(self.params["history_max_pages"])
        for page in range(pages):
            body = await self._rest.signed(
                "GET",
                lambda page=page: self._rest.account.get_order_history(
                    HISTORY_PAGE_SIZE, page * HISTORY_PAGE_SIZE, order_id=order_id, symbol=symbol
                ),
            )
            rows = [row for row in body or [] if isinstance(row, dict)] if isinstance(body, list) else []
            for row in rows:
                if match(row):
                    return row
            if len(rows) < HISTORY_PAGE_SIZE:
                return None
        raise OrderSearchTruncated(
            f"backpack: not among the open and the newest {pages * HISTORY_PAGE_SIZE} finished orders of "
            f"{symbol} (search bounded at {pages} pages)"
        )

    def _order_info(self, raw: Mapping[str, Any]) -> OrderInfo:
        report = order_report(raw, self.clock.now())
        if report is None:
            raise MalformedMessage(f"backpack: order {raw.get('id')} has no clientId")
        return self._info_of(report)

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        if not client_order_id.isdigit() or int(client_order_id) >= 2**32:
            raise OrderNotFound(f"backpack: {client_order_id!r} cannot be a Backpack clientId")
        raw = await self._open_order(contract_id, client_id=client_order_id)
        if raw is None:
            raw = await self._history(
                contract_id, lambda row: _client_id(row.get("clientId")) == client_order_id
            )
        if raw is None:
            raise OrderNotFound(f"backpack: no order with clientId {client_order_id} on {contract_id}")
        return self._order_info(raw)

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        tracked = self._orders.get(order_id)
        if tracked is not None and tracked.order_id is None:
            return await self.find_order(contract_id, tracked.client_order_id)
        venue_id = tracked.order_id if tracked is not None else order_id
        raw = await self._open_order(contract_id, order_id=venue_id)
        if raw is None:
            raw = await self._history(
                contract_id, lambda row: str(row.get("id")) == venue_id, order_id=venue_id
            )
        if raw is None:
            raise OrderNotFound(f"backpack: order {order_id} not found on {contract_id}")
        return self._order_info(raw)

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        body = await self._rest.signed("GET", lambda: self._rest.account.get_open_orders(symbol=contract_id))
        return self._our_active(body, lambda raw: _client_id(raw.get("clientId")), self._order_info)

    # -- positions and account ---------------------------------------------------------------

    async def _positions(self, symbol: str | None = None) -> list[Position]:
        body = await self._rest.signed("GET", self._rest.account.get_open_positions)
        if not isinstance(body, list):
            raise MalformedMessage("backpack: positions answer is not a list")
        return [
            Position(
                contract_id=str(raw.get("symbol")),
                size=to_decimal(raw.get("netQuantity"), "netQuantity"),
                entry_price=to_decimal(raw.get("entryPrice") or "0", "entryPrice"),
                unrealized_pnl=to_decimal(raw.get("pnlUnrealized") or "0", "pnlUnrealized"),
                realized_pnl=to_decimal(raw.get("pnlRealized") or "0", "pnlRealized"),
                liquidation_price=optional_price(raw.get("estLiquidationPrice"), "estLiquidationPrice"),
            )
            for raw in body
            if isinstance(raw, dict)
        ]

    async def get_account_snapshot(self) -> AccountSnapshot:
        body = await self._rest.signed("GET", self._rest.account.get_collateral)
        if not isinstance(body, dict):
            raise MalformedMessage("backpack: collateral answer is not an object")
        positions = tuple(p for p in await self._positions() if p.size != 0)
        usdc = [c for c in body.get("collateral") or [] if isinstance(c, dict) and c.get("symbol") == "USDC"]
        balance = (
            to_decimal(usdc[0].get("totalQuantity"), "totalQuantity")
            if usdc
            else to_decimal(body.get("netEquity"), "netEquity")
        )
        return AccountSnapshot(
            balance=balance,
            equity=to_decimal(body.get("netEquity"), "netEquity"),
            positions=positions,
            realized_pnl=sum((p.realized_pnl for p in positions), Decimal(0)),
            timestamp=self.clock.now(),
        )

    # -- stream ------------------------------------------------------------------------------

    depth_continues = staticmethod(depth_continues)

    def _book_socket(self) -> ReconnectingWebSocket | None:
        return self._ws

    async def _subscribe_market(self, ws: ReconnectingWebSocket, symbol: str) -> None:
        for stream in (f"depth.{symbol}", f"bookTicker.{symbol}"):
            await ws.subscribe(stream, {"method": "SUBSCRIBE", "params": [stream]})
        private = f"account.orderUpdate.{symbol}"
        await ws.subscribe(
            private,
            lambda: {"method": "SUBSCRIBE", "params": [private], "signature": self._rest.sign_subscription()},
        )

    async def _depth_snapshot(self, symbol: str) -> tuple[Any, Any, int]:
        snapshot = await self._rest.public("/api/v1/depth", {"symbol": symbol})
        return depth_snapshot_levels(snapshot, "backpack", symbol)

    async def _on_ws_connect(self) -> None:
        self._stream_connected()

    def _on_ws_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            logger.debug("backpack-ws: ignoring a non-JSON frame")
            return
        data = message.get("data")
        stream = str(message.get("stream") or "")
        if not isinstance(data, dict):
            if "error" in message:
                logger.warning("backpack-ws: venue error: %.200s", message.get("error"))
            return
        kind = data.get("e")
        book = self._books.get(str(data.get("s") or ""))
        if kind == "depth" and book is not None:
            book.on_delta(data, data.get("T") or data.get("E"))
        elif kind == "bookTicker" and book is not None:
            book.on_ticker(to_decimal(data.get("b"), "bid"), to_decimal(data.get("a"), "ask"), data.get("T"))
        elif stream.startswith("account.orderUpdate"):
            self._apply_stream(*stream_reports(data, self.clock.now()))

    def __repr__(self) -> str:
        return f"BackpackClient({self.settings!r})"


__all__ = ["BackpackClient", "BackpackSettings", "map_error", "order_report", "stream_reports"]
