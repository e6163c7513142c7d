"""GRVT perpetuals client (USDT-margined ``{BASE}_USDT_Perp`` instruments).

How it talks to the venue, and why:

* Orders are built and EIP-712-signed with grvt-pysdk (``grvt_raw_signing.sign_order``; see
  :mod:`exchanges.grvt_wire`) in a worker thread, so the ECDSA work never stalls the event
  loop, and sent over one aiohttp session of our own: the SDK's REST clients are synchronous
  (requests) or open their own session, log the API key and the session cookie at INFO, and
  take their endpoint domains from the environment name only. Here the endpoints are plain
  settings (:class:`~exchanges.grvt_wire.GrvtEndpoints`, each overridable, which is how the
  loopback mock is targeted) and every answer goes through one error table, one rate limiter
  and one retry policy. A signed order is signed once: a retried request carries the same nonce
  and signature, which the venue treats as the same order.
* Authentication: ``POST {edge}/auth/api_key/login`` with the API key answers a ``gravity``
  session cookie (and an ``X-Grvt-Account-Id`` header); both go on every private request and on
  the private stream's handshake. The cookie is renewed a minute before it expires, and once
  more when the venue answers 1000 (unauthenticated) anyway.
* Resting orders are good-till-time with an explicit expiry of ``order_expiry_days`` (28 by
  default, below the venue's 30-day cap): the SDK's ccxt layer signs one day, and the venue then
  cancels the order (reject reason EXPIRED), which silently removed earlier bots' take-profits.
  An order that expires anyway is reported EXPIRED (logged as a warning) and the execution
  layer's coverage check re-places its cover.
* ``create_order`` answers PENDING (order id "0x00"); the order's fate (OPEN, FILLED, REJECTED
  with FAIL_POST_ONLY...) comes on the ``v1.order``/``v1.state`` streams. Placing waits for it
  (bounded by ``order_ack_timeout``), so a post-only order that would cross raises
  :class:`PostOnlyRejected` as on every venue. ``cancel_order`` answers an ack only: the cancel
  waits (bounded) for the stream, then reads the order back.
* The SDK's WebSocket client is tied to websockets 13 and its own reconnect loop, so the streams
  use the project's :class:`ReconnectingWebSocket` and speak GRVT's JSON-RPC themselves: the
  market socket carries ``v1.book.d`` (a snapshot on subscribe, then changed levels) and
  ``v1.mini.d`` (best bid/ask, changed fields only); the trades socket carries ``v1.order``,
  ``v1.state``, ``v1.fill`` (exact fee and maker flag) and ``v1.position``. Every feed's
  ``sequence_number`` is checked (:class:`~exchanges.grvt_wire.FeedSequence`): duplicates are
  dropped, a gap in the book or mini ticker resubscribes for a fresh snapshot, a gap in a
  private feed reads our orders back and tells the bot to reconcile.
* ``find_order`` asks ``full/v1/order`` by client id (it answers finished orders too), then
  pages through ``full/v1/order_history`` (at most ``history_max_pages`` pages of 500): a search
  cut short raises OrderSearchTruncated, never OrderNotFound.

Settings come from the environment (the bot loads the .env first): GRVT_TRADING_ACCOUNT_ID,
GRVT_PRIVATE_KEY, GRVT_API_KEY, GRVT_ENV (prod, testnet...), and optional endpoint overrides
GRVT_EDGE_URL, GRVT_TRADES_URL, GRVT_MARKET_DATA_URL, GRVT_TRADES_WS_URL and
GRVT_MARKET_DATA_WS_URL (e.g. the loopback mock, tests/mock_venues/grvt_venue.py).
``config.exchange_params`` tunes timeouts (``PARAMS``), ``order_expiry_days``, the feed rates
(``book_rate_ms``, ``mini_rate_ms``) and ``history_max_pages``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Mapping
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, ClassVar

from exchanges.base import (
    AccountSnapshot,
    AuthenticationError,
    ClientOrderIdFactory,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    FundingRate,
    InvalidOrder,
    MalformedMessage,
    OrderInfo,
    OrderNotFound,
    OrderStatus,
    Position,
    PostOnlyRejected,
)
from exchanges.connector_kit import HttpSession, PriceLevels, json_or_none, with_retry_after
from exchanges.grvt_wire import (
    DAY_NS,
    DUPLICATE,
    GAP,
    IOC_EXPIRY_NS,
    NANOS,
    POST_ONLY_REASON,
    SNAPSHOT,
    FeedSequence,
    GrvtClientOrderIdFactory,
    GrvtInstrument,
    GrvtSettings,
    OrderIntent,
    OrderSigner,
    SessionExpired,
    StateUpdate,
    best_bid_ask,
    book_levels,
    error_fields,
    funding_fraction,
    map_error,
    order_report,
    order_status,
    parse_instrument,
    position,
    state_update,
    timestamp_seconds,
    trade_report,
    venue_status,
)
from exchanges.venue_client import COMMON_PARAMS, StreamingVenueClient
from exchanges.venue_orders import OrderReport, OrderSearchTruncated, VenueOrder
from helpers import venue_validation
from helpers.clock import Clock
from helpers.rate_limiter import Priority, RetryPolicy
from helpers.reconnecting_websocket import ReconnectingWebSocket
from helpers.trading_config import TradingConfig
from helpers.venue_validation import InvalidVenueData, MalformedCounter, rest_body

logger = logging.getLogger(__name__)

#: Renew the session cookie this long before it expires; assume this lifetime when it says none.
COOKIE_MARGIN = 60.0
COOKIE_DEFAULT_LIFETIME = 300.0
HISTORY_PAGE_SIZE = 500
PRIVATE_STREAMS = ("v1.order", "v1.state", "v1.fill", "v1.position")
#: Least seconds between two read-backs of our orders caused by malformed private messages.
MALFORMED_RESYNC_INTERVAL = 5.0


class GrvtRest:
    """Public and cookie-authenticated JSON POSTs with one error mapping, limiter and retry policy."""

    def __init__(self, settings: GrvtSettings, *, timeout: float, retry: RetryPolicy, clock: Clock) -> None:
        self.settings = settings
        self.retry = retry
        self.clock = clock
        self.http = HttpSession("grvt", timeout)
        self._cookie: str | None = None
        self._cookie_expires = 0.0
        self._account_header: str | None = None
        self._login_lock = asyncio.Lock()
        self.logins = 0

    # -- session cookie ----------------------------------------------------------------------

    async def login(self) -> None:
        """A fresh session cookie from the API key; AuthenticationError when the venue refuses it."""
        url = f"{self.settings.endpoints.edge}/auth/api_key/login"
        status, text, headers = await self.http.exchange(
            "POST",
            url,
            data=json.dumps({"api_key": self.settings.api_key}),
            headers={"Content-Type": "application/json"},
            what="login",
        )
        if status >= 400:
            code, message = error_fields(json_or_none(text))
            error = map_error(code, message, status, "login")
            if isinstance(error, AuthenticationError) or status in (400, 401, 403):
                raise AuthenticationError(f"grvt: the venue refused GRVT_API_KEY ({error})")
            raise with_retry_after(error, headers.get("Retry-After"))
        cookie = SimpleCookie()
        try:
            for value in headers.getall("Set-Cookie", []) if hasattr(headers, "getall") else []:
                cookie.load(value)
        except CookieError:
            cookie.clear()
        morsel = cookie.get("gravity")
        if morsel is None or not morsel.value:
            raise AuthenticationError("grvt: login answered without a session cookie (check GRVT_API_KEY)")
        now = self.clock.now()
        try:
            expires = parsedate_to_datetime(morsel["expires"]).timestamp() if morsel["expires"] else 0.0
        except (TypeError, ValueError):
            expires = 0.0
        self._cookie = morsel.value
        self._cookie_expires = expires if expires > now else now + COOKIE_DEFAULT_LIFETIME
        self._account_header = headers.get("X-Grvt-Account-Id") or None
        self.logins += 1

    async def auth_headers(self) -> dict[str, str]:
        """Cookie and account headers, renewing the cookie first when it is about to expire."""
        await self.fresh_session()
        return self.session_headers()

    async def fresh_session(self) -> None:
        """Log in unless the cookie has more than COOKIE_MARGIN seconds left."""
        async with self._login_lock:
            if self._cookie is None or self.clock.now() > self._cookie_expires - COOKIE_MARGIN:
                await self.login()

    def session_headers(self) -> dict[str, str]:
        """The current session's headers, as they stand (the private stream's handshake takes
        them; the client renews the session before every reconnect)."""
        headers = {"Cookie": f"gravity={self._cookie}"} if self._cookie else {}
        if self._account_header:
            headers["X-Grvt-Account-Id"] = self._account_header
        return headers

    def forget_cookie(self) -> None:
        self._cookie = None

    # -- requests ----------------------------------------------------------------------------

    async def public(self, path: str, body: Mapping[str, Any]) -> Any:
        url = f"{self.settings.endpoints.market_data}{path}"
        return await self.retry.call(lambda: self._send(url, body, None, path))

    async def private(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        idempotent: bool = True,
        priority: Priority = Priority.NORMAL,
    ) -> Any:
        url = f"{self.settings.endpoints.trades}{path}"

        async def attempt() -> Any:
            try:
                return await self._send(url, body, await self.auth_headers(), path)
            except SessionExpired:
                # The venue dropped our session early: nothing was executed, log in and resend once.
                self.forget_cookie()
                return await self._send(url, body, await self.auth_headers(), path)

        return await self.retry.call(attempt, idempotent=idempotent, priority=priority)

    async def _send(
        self, url: str, body: Mapping[str, Any], auth: Mapping[str, str] | None, path: str
    ) -> Any:
        headers = {"Content-Type": "application/json", **(auth or {})}
        status, text, answer_headers = await self.http.exchange(
            "POST", url, data=json.dumps(body), headers=headers, what=path
        )
        parsed = json_or_none(text)
        if status >= 400 or (isinstance(parsed, dict) and "result" not in parsed and "code" in parsed):
            code, message = error_fields(parsed)
            raise with_retry_after(map_error(code, message, status, path), answer_headers.get("Retry-After"))
        if not isinstance(parsed, dict) or "result" not in parsed:
            raise InvalidVenueData("malformed body", f"grvt {path}: not a JSON object with a result")
        return parsed


class GrvtClient(StreamingVenueClient):
    """GRVT perpetuals: SDK signing off the loop, our REST session, two reconnecting streams."""

    name = "grvt"
    PARAMS: ClassVar[dict[str, Any]] = {
        **COMMON_PARAMS,
        "order_expiry_days": 28,
        "book_rate_ms": 100,
        "mini_rate_ms": 100,
        "history_max_pages": 4,
    }

    def __init__(self, config: TradingConfig, clock: Clock, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(config, clock)
        self.settings: GrvtSettings = self._load_settings(GrvtSettings, env)
        self.signer = OrderSigner(self.settings)
        self._rest = GrvtRest(
            self.settings, timeout=float(self.params["rest_timeout"]), retry=self.retry, clock=clock
        )
        self._http = self._rest.http
        self._markets: dict[str, GrvtInstrument] = {}
        self._bad_markets: dict[str, InvalidVenueData] = {}
        self._market_ws: ReconnectingWebSocket | None = None
        self._trades_ws: ReconnectingWebSocket | None = None
        self._trades_connected_once = False
        self._feeds: dict[tuple[str, str], FeedSequence] = {}
        self._minis: dict[str, dict[str, Any]] = {}
        self._snapshot_waiters: dict[str, asyncio.Future[tuple[Any, Any, int]]] = {}
        #: Books whose (re)subscription is sent and whose snapshot has not come yet.
        self._snapshot_requested: set[str] = set()
        #: Books that drop deltas until a snapshot comes (their feed broke or is being replaced).
        self._awaiting_snapshot: set[str] = set()
        self._request_ids = itertools.count(1)
        self.malformed = MalformedCounter("grvt", clock.now)
        self.stream_gaps = 0
        self._last_malformed_resync = float("-inf")
        #: The latest position of each instrument from the ``v1.position`` stream (information
        #: only: positions the bot acts on are read by REST, which never lags a fill).
        self.streamed_positions: dict[str, Position] = {}

    def _make_client_ids(self) -> ClientOrderIdFactory:
        return GrvtClientOrderIdFactory(prefix=self.config.client_id_prefix)

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        await self._load_markets()
        symbol = self._symbol_for_ticker(self.config.ticker)
        # A refused API key fails here, typed, before anything trades (a 5xx is retried).
        await self.retry.call(self._rest.login)
        endpoints = self.settings.endpoints
        self._market_ws = self._make_socket(
            endpoints.market_data_ws,
            self._on_market_message,
            "grvt-market",
            self._on_market_connect,
            self._stream_disconnected,
        )
        self._trades_ws = self._make_socket(
            endpoints.trades_ws,
            self._on_trades_message,
            "grvt-trades",
            self._on_trades_connect,
            self._on_trades_disconnect,
            headers=self._rest.session_headers,
        )
        await self._ensure_streams(symbol)
        self._market_ws.start()
        self._trades_ws.start()
        await self._wait_connected(self._market_ws, endpoints.market_data_ws)
        await self._wait_connected(self._trades_ws, endpoints.trades_ws)
        # A private read proves the sub-account id belongs to the key before the bot trades.
        await self.get_active_orders(symbol)

    async def _close(self) -> None:
        for ws in (self._market_ws, self._trades_ws):
            if ws is not None:
                await ws.close()
        self._market_ws = self._trades_ws = None
        for waiter in self._snapshot_waiters.values():
            waiter.cancel()
        self._snapshot_waiters.clear()

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        path = "/full/v1/instruments"
        answer = await self._rest.public(
            path, {"kind": ["PERPETUAL"], "quote": ["USDT"], "is_active": True, "limit": 1000}
        )
        with rest_body(f"grvt {path}"):
            rows = answer["result"]
            if not isinstance(rows, list):
                raise InvalidVenueData("wrong type", "result is not a list")
        for raw in rows:
            name = str(raw.get("instrument")) if isinstance(raw, dict) else "?"
            try:
                instrument = parse_instrument(raw)
            except (InvalidVenueData, AttributeError) as exc:
                # One unusable instrument must not keep the bot off the others; ours is refused
                # with this reason in _symbol_for_ticker.
                self._bad_markets[name] = InvalidVenueData("malformed body", f"grvt {path}: {name}: {exc}")
                continue
            self._markets[instrument.name] = instrument

    def _symbol_for_ticker(self, ticker: str) -> str:
        wanted = ticker.upper()
        for name in (ticker, f"{wanted}_USDT_Perp"):
            if name in self._markets:
                return name
            if name in self._bad_markets:
                raise self._bad_markets[name]
        raise ConfigurationError(f"GRVT has no USDT perpetual for ticker {ticker!r}")

    def _market(self, symbol: str) -> GrvtInstrument:
        instrument = self._markets.get(symbol)
        if instrument is None:
            raise InvalidOrder(f"grvt: unknown instrument {symbol!r}")
        return instrument

    def contract(self, contract_id: str) -> ContractInfo:
        instrument = self._market(contract_id)
        return ContractInfo(
            ticker=instrument.base,
            contract_id=instrument.name,
            tick_size=instrument.tick_size,
            size_step=instrument.size_step,
            min_size=instrument.min_size,
            min_notional=instrument.min_notional,
        )

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        instrument = self._market(contract_id)
        path = "/full/v1/ticker"
        answer = await self._rest.public(path, {"instrument": contract_id})
        with rest_body(f"grvt {path}"):
            ticker = answer["result"]
            interval = ticker.get("funding_interval_hours")
            next_time = timestamp_seconds(ticker.get("next_funding_time"), 0.0)
            return FundingRate(
                contract_id=contract_id,
                rate=funding_fraction(ticker.get("funding_rate", ticker.get("funding_rate_8h_curr"))),
                interval_hours=Decimal(int(interval))
                if interval not in (None, "", 0, "0")
                else instrument.funding_interval_hours,
                next_funding_time=next_time or None,
            )

    # -- order hooks -------------------------------------------------------------------------

    def _answer(self, answer: Any, what: str) -> OrderReport:
        with rest_body(f"grvt {what}"):
            report = order_report(answer["result"], self.clock.now())
        if report is None:
            raise InvalidVenueData("malformed body", f"grvt {what}: answered without a client order id")
        return report

    async def _send_order(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> OrderReport:
        ioc = time_in_force == "IOC"
        now_ns = int(self.clock.now() * NANOS)
        lifetime = IOC_EXPIRY_NS if ioc else int(self.settings.expiry_days * DAY_NS)
        intent = OrderIntent(
            instrument=self._market(order.contract_id),
            side=order.side,
            size=order.size,
            price=order.price,
            time_in_force="IOC" if ioc else "GTT",
            post_only=order.post_only and not ioc,
            reduce_only=reduce_only,
            client_order_id=order.client_order_id,
            nonce=secrets.randbelow(2**32),
            expiration_ns=now_ns + lifetime,
        )
        body = await asyncio.to_thread(self.signer.sign, intent)
        path = "/full/v1/create_order"
        # An unreadable answer (MalformedMessage) leaves the order's outcome unknown: the shared
        # placement path's rule (StreamingVenueClient._place).
        answer = await self._rest.private(path, body, idempotent=False, priority=priority)
        report = self._answer(answer, path)
        if report.client_order_id != order.client_order_id:
            raise InvalidVenueData("malformed body", f"grvt {path}: answered for another order")
        if report.status is OrderStatus.PENDING:
            # The venue decides on the stream: give it a bounded moment, so a refused post-only
            # order raises here as on every venue (still PENDING after it: the caller looks up).
            self._apply(report)
            await self._orders.wait(
                order,
                lambda o: o.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN),
                float(self.params["order_ack_timeout"]),
                self.clock,
            )
        return report

    def _rejection(self, order: VenueOrder) -> ExchangeError:
        if POST_ONLY_REASON in order.venue_status:
            return PostOnlyRejected(f"grvt: post-only order {order.client_order_id} would have crossed")
        return InvalidOrder(f"grvt: order {order.client_order_id} rejected ({order.venue_status})")

    async def _send_cancel(
        self, contract_id: str, venue_id: str | None, client_id: str | None
    ) -> OrderReport | None:
        by: dict[str, str] = {}
        if venue_id and venue_id.startswith("0x"):
            by["order_id"] = venue_id
        elif client_id or (venue_id and venue_id.isdigit()):
            by["client_order_id"] = str(client_id or venue_id)
        else:
            raise OrderNotFound(f"grvt: order on {contract_id} has no id to cancel by")
        body = {"sub_account_id": self.settings.trading_account_id, **by}
        await self._rest.private("/full/v1/cancel_order", body, idempotent=False, priority=Priority.HIGH)
        tracked = self._orders.get(client_id or venue_id or "")
        if tracked is not None:
            await self._orders.wait(
                tracked, lambda o: o.status.is_final, float(self.params["order_ack_timeout"]), self.clock
            )
            if tracked.status.is_final:
                return None
        # The venue only acknowledged: read the order back (OrderNotFound if it never existed).
        return await self._read_order(by)

    # -- reading orders back -----------------------------------------------------------------

    async def _read_order(self, by: Mapping[str, str]) -> OrderReport:
        answer = await self._rest.private(
            "/full/v1/order", {"sub_account_id": self.settings.trading_account_id, **by}
        )
        return self._answer(answer, "/full/v1/order")

    async def _history(self, contract_id: str, client_order_id: str) -> OrderReport | None:
        """Our order in the order history; None when the history ends without it."""
        pages = int(self.params["history_max_pages"])
        cursor = ""
        instrument = self._market(contract_id)
        path = "/full/v1/order_history"
        for _ in range(pages):
            request: dict[str, Any] = {
                "sub_account_id": self.settings.trading_account_id,
                "kind": ["PERPETUAL"],
                "base": [instrument.base],
                "limit": HISTORY_PAGE_SIZE,
            }
            if cursor:
                request["cursor"] = cursor
            answer = await self._rest.private(path, request)
            with rest_body(f"grvt {path}"):
                rows = answer["result"]
                cursor = str(answer.get("next") or "")
                for raw in rows:
                    if str(raw["metadata"].get("client_order_id")) == client_order_id:
                        return order_report(raw, self.clock.now())
            if not cursor or len(rows) < HISTORY_PAGE_SIZE:
                return None
        raise OrderSearchTruncated(
            f"grvt: {client_order_id} is not among the open and the newest {pages * HISTORY_PAGE_SIZE} "
            f"finished orders of {contract_id} (search bounded at {pages} pages)"
        )

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        if not client_order_id.isdigit() or int(client_order_id) >= 2**64:
            raise OrderNotFound(f"grvt: {client_order_id!r} cannot be a GRVT client order id")
        try:
            report: OrderReport | None = await self._read_order({"client_order_id": client_order_id})
        except OrderNotFound:
            report = await self._history(contract_id, client_order_id)
        if report is None:
            raise OrderNotFound(f"grvt: no order with client id {client_order_id} on {contract_id}")
        return self._info_of(report)

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        tracked = self._orders.get(order_id)
        if tracked is not None and tracked.order_id is None:
            return await self.find_order(contract_id, tracked.client_order_id)
        venue_id = tracked.order_id if tracked is not None and tracked.order_id else order_id
        if venue_id.isdigit():
            return await self.find_order(contract_id, venue_id)
        return self._info_of(await self._read_order({"order_id": venue_id}))

    def _order_info(self, raw: Mapping[str, Any]) -> OrderInfo:
        report = order_report(raw, self.clock.now())
        if report is None:
            raise InvalidVenueData("malformed body", "grvt open_orders: an order without a client id")
        return self._info_of(report)

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        instrument = self._market(contract_id)
        path = "/full/v1/open_orders"
        answer = await self._rest.private(
            path,
            {
                "sub_account_id": self.settings.trading_account_id,
                "kind": ["PERPETUAL"],
                "base": [instrument.base],
            },
        )
        with rest_body(f"grvt {path}"):
            rows = [raw for raw in answer["result"] if raw["legs"][0]["instrument"] == contract_id]
            return self._our_active(rows, _client_id_of, self._order_info)

    # -- positions and account ---------------------------------------------------------------

    async def _positions(self, symbol: str | None = None) -> list[Position]:
        path = "/full/v1/positions"
        request: dict[str, Any] = {"sub_account_id": self.settings.trading_account_id, "kind": ["PERPETUAL"]}
        if symbol is not None:
            request["base"] = [self._market(symbol).base]
        answer = await self._rest.private(path, request)
        with rest_body(f"grvt {path}"):
            return [position(raw) for raw in answer["result"]]

    async def get_account_snapshot(self) -> AccountSnapshot:
        path = "/full/v1/account_summary"
        answer = await self._rest.private(path, {"sub_account_id": self.settings.trading_account_id})
        with rest_body(f"grvt {path}"):
            summary = answer["result"]
            equity = venue_validation.venue_decimal(summary["total_equity"], "total_equity")
            settle = summary.get("settle_currency") or "USDT"
            wallet = [b for b in summary.get("spot_balances") or [] if b.get("currency") == settle]
            balance = venue_validation.venue_decimal(wallet[0]["balance"], "balance") if wallet else equity
            positions = tuple(p for p in (position(raw) for raw in summary.get("positions") or []) if p.size)
        return AccountSnapshot(
            balance=balance,
            equity=equity,
            positions=positions,
            realized_pnl=sum((p.realized_pnl for p in positions), Decimal(0)),
            timestamp=self.clock.now(),
        )

    # -- streams -----------------------------------------------------------------------------

    def _book_socket(self) -> ReconnectingWebSocket | None:
        return self._market_ws

    def _subscribe_payload(self, stream: str, selector: str, method: str = "subscribe") -> Any:
        return lambda: {
            "jsonrpc": "2.0",
            "method": method,
            "params": {"stream": stream, "selectors": [selector]},
            "id": next(self._request_ids),
        }

    def _market_selectors(self, symbol: str) -> dict[str, str]:
        return {
            "v1.book.d": f"{symbol}@{int(self.params['book_rate_ms'])}",
            "v1.mini.d": f"{symbol}@{int(self.params['mini_rate_ms'])}",
        }

    async def _subscribe_market(self, ws: ReconnectingWebSocket, contract_id: str) -> None:
        if ws.connected.is_set():
            self._snapshot_requested.add(contract_id)
            self._awaiting_snapshot.add(contract_id)
        for stream, selector in self._market_selectors(contract_id).items():
            await ws.subscribe(f"{stream}:{contract_id}", self._subscribe_payload(stream, selector))
        if self._trades_ws is not None:
            selector = f"{self.settings.trading_account_id}-{contract_id}"
            for stream in PRIVATE_STREAMS:
                await self._trades_ws.subscribe(
                    f"{stream}:{contract_id}", self._subscribe_payload(stream, selector)
                )

    async def _resubscribe(self, stream: str, contract_id: str) -> None:
        ws = self._market_ws
        if ws is None:
            return
        selector = self._market_selectors(contract_id)[stream]
        try:
            await ws.resubscribe(
                f"{stream}:{contract_id}", self._subscribe_payload(stream, selector, "unsubscribe")
            )
        except ConnectionError as exc:  # the reconnect resubscribes anyway
            logger.info("grvt: resubscribing %s %s: %s", stream, contract_id, exc)

    async def _depth_snapshot(self, contract_id: str) -> tuple[Any, Any, int]:
        """The book snapshot the venue sends on (re)subscription: GRVT's REST book carries no
        sequence number to join deltas to, so the stream's own snapshot is the one to use."""
        waiter = self._snapshot_waiters.get(contract_id)
        if waiter is None or waiter.done():
            waiter = self._snapshot_waiters[contract_id] = asyncio.get_running_loop().create_future()
        self._awaiting_snapshot.add(contract_id)
        if contract_id not in self._snapshot_requested:
            self._snapshot_requested.add(contract_id)
            await self._resubscribe("v1.book.d", contract_id)
        timeout = float(self.params["bbo_timeout"])
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            self._snapshot_requested.discard(contract_id)
            raise ExchangeUnavailable(f"grvt: no book snapshot of {contract_id} within {timeout}s") from None

    def depth_continues(self, book: PriceLevels, delta: Mapping[str, Any]) -> bool:  # type: ignore[override]
        """GRVT's rule: a book delta must be the next of its feed (sequence + 1); a repeat is
        dropped, a gap makes the book resubscribe for a fresh snapshot. So does a delta that
        fails validation: skipping it would leave the book silently wrong."""
        levels = delta.get("feed") or {}
        symbol = str(levels.get("instrument"))
        feed = self._feed("v1.book.d", str(delta.get("selector")))
        try:
            kind = feed.classify(delta)
            bids = book_levels(levels.get("bids") or [], "bids")
            asks = book_levels(levels.get("asks") or [], "asks")
        except MalformedMessage as exc:
            self.malformed.record(getattr(exc, "kind", "malformed"), f"book of {symbol}: {exc}")
            kind = GAP
        if kind == GAP:
            self.stream_gaps += 1
            feed.reset()
            self._awaiting_snapshot.add(symbol)
            return False
        if kind == DUPLICATE:
            return True
        if kind == SNAPSHOT:
            book.replace(bids, asks, None)
        else:
            book.apply(bids, asks, None)
        return True

    def _feed(self, stream: str, selector: str) -> FeedSequence:
        """The sequence of one feed, keyed by its primary selector (the venue answers deltas
        with and without the ``@rate`` part)."""
        key = (stream, selector.split("@")[0])
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = FeedSequence()
        return feed

    async def _on_market_connect(self) -> None:
        for (stream, _selector), feed in self._feeds.items():
            if not stream.startswith(PRIVATE_STREAMS):
                feed.reset()
        self._minis.clear()
        # The socket resubscribes right after this hook: each book's snapshot is on its way.
        self._snapshot_requested.update(self._books)
        self._awaiting_snapshot.update(self._books)
        self._stream_connected(reconcile=False)

    async def _on_trades_connect(self) -> None:
        for (stream, _selector), feed in self._feeds.items():
            if stream in PRIVATE_STREAMS:
                feed.reset()
        if self._trades_connected_once:
            self._private_resync("the private stream reconnected")
        self._trades_connected_once = True

    def _on_trades_disconnect(self, reason: str = "") -> None:
        """Renew the session while the socket backs off, so its next handshake carries a live
        cookie (the venue may have closed the socket because the old one expired)."""
        if "401" in reason:  # the handshake was refused: the cookie is dead whatever its date
            self._rest.forget_cookie()
        self._tasks.spawn(self._rest.fresh_session(), "grvt-session")

    def _private_resync(self, why: str) -> None:
        """Private messages may have been lost: read our orders back and let the bot reconcile."""
        logger.warning("grvt: %s; reading our orders back", why)
        self._tasks.spawn(self._reconcile_orders(), "grvt-reconcile")
        self._emit_reconnected()

    def _on_market_message(self, message: Any) -> None:
        try:
            self._market_message(message)
        except MalformedMessage as exc:
            self.malformed.record(getattr(exc, "kind", "malformed"), str(exc))

    def _market_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if "feed" not in message:
            self._rpc_answer(message)
            return
        stream, selector = str(message.get("stream")), str(message.get("selector"))
        feed = message.get("feed")
        if not isinstance(feed, dict):
            raise InvalidVenueData("wrong type", f"{stream} feed is not an object")
        symbol = str(feed.get("instrument") or selector.split("@")[0])
        book = self._books.get(symbol)
        if book is None:
            return
        stamp = timestamp_seconds(feed.get("event_time"), self.clock.now())
        if stream == "v1.book.d":
            self._book_message(symbol, message, stamp)
        elif stream == "v1.mini.d":
            self._mini_message(symbol, selector, message, feed, stamp)

    def _book_message(self, symbol: str, message: dict[str, Any], stamp: float) -> None:
        book = self._books[symbol]
        is_snapshot = str(message.get("sequence_number")) == "0"
        waiter = self._snapshot_waiters.get(symbol)
        if is_snapshot:
            # The feed's numbering after it was set by the subscription's answer.
            self._snapshot_requested.discard(symbol)
            self._awaiting_snapshot.discard(symbol)
            levels = message["feed"]
            bids = book_levels(levels.get("bids") or [], "bids")
            asks = book_levels(levels.get("asks") or [], "asks")
            if waiter is not None and not waiter.done():
                waiter.set_result((bids, asks, 0))
                return
        elif symbol in self._awaiting_snapshot:
            return  # a delta of a broken or replaced feed: older than the snapshot on its way
        book.on_delta(message, stamp)

    def _mini_message(
        self, symbol: str, selector: str, message: dict[str, Any], feed: dict[str, Any], stamp: float
    ) -> None:
        kind = self._feed("v1.mini.d", selector).classify(message)
        if kind == DUPLICATE:
            return
        if kind == GAP:
            self.stream_gaps += 1
            self._minis.pop(symbol, None)
            logger.warning("grvt: mini ticker of %s skipped messages; resubscribing", symbol)
            self._tasks.spawn(self._resubscribe("v1.mini.d", symbol), "grvt-mini-resync")
            return
        if kind == SNAPSHOT:
            merged = dict(feed)
        elif symbol in self._minis:
            merged = {**self._minis[symbol], **feed}
        else:
            return  # a delta without its snapshot: wait for the next one
        try:
            top = best_bid_ask(merged)
        except MalformedMessage:
            # A bad field would stay in the merged ticker: drop it and start from a snapshot.
            self._minis.pop(symbol, None)
            self._feed("v1.mini.d", selector).reset()
            self._tasks.spawn(self._resubscribe("v1.mini.d", symbol), "grvt-mini-resync")
            raise
        self._minis[symbol] = merged
        if top is not None:
            self._books[symbol].on_ticker(top[0], top[1], stamp)

    def _rpc_answer(self, message: Mapping[str, Any]) -> None:
        """A subscription's answer names the first sequence number of each feed: the first delta
        after the snapshot must carry it (one lost in between is a gap, as any other)."""
        result = message.get("result")
        if isinstance(result, Mapping) and isinstance(result.get("first_sequence_number"), list):
            subs, firsts = result.get("subs") or [], result["first_sequence_number"]
            for selector, first in zip(subs, firsts, strict=False):
                feed = self._feed(str(result.get("stream")), str(selector))
                number = venue_validation.venue_decimal(first, "first_sequence_number")
                if number > 0 and number == number.to_integral_value():
                    feed.expect(int(number))
                else:
                    feed.reset()
        error = message.get("error")
        if isinstance(error, Mapping):
            logger.warning(
                "grvt: the venue refused a request: %s %.120s", error.get("code"), error.get("message")
            )

    def _on_trades_message(self, message: Any) -> None:
        try:
            self._trades_message(message)
        except MalformedMessage as exc:
            self.malformed.record(getattr(exc, "kind", "malformed"), str(exc))
            # What it said about our orders is lost: read them back (at most every few seconds,
            # so a venue sending junk cannot turn into a flood of reads).
            now = self.clock.now()
            if now - self._last_malformed_resync >= MALFORMED_RESYNC_INTERVAL:
                self._last_malformed_resync = now
                self._private_resync("a private message failed validation")

    def _trades_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if "feed" not in message:
            self._rpc_answer(message)
            return
        stream = str(message.get("stream"))
        feed = message.get("feed")
        if stream not in PRIVATE_STREAMS or not isinstance(feed, dict):
            return
        kind = self._feed(stream, str(message.get("selector"))).classify(message)
        if kind == DUPLICATE:
            return
        if kind == GAP:
            self.stream_gaps += 1
            self._private_resync(f"{stream} skipped messages")
        now = self.clock.now()
        if stream == "v1.order":
            report = order_report(feed, now)
            if report is not None:
                self._apply(report)
        elif stream == "v1.state":
            update = state_update(feed, now)
            if update is not None:
                self._apply_state(update)
        elif stream == "v1.fill":
            self._apply_trade(trade_report(feed, now))
        elif stream == "v1.position":
            held = position(feed)
            self.streamed_positions[held.contract_id] = held

    def _apply_state(self, update: StateUpdate) -> None:
        """A ``v1.state`` change of an order we track (the feed does not repeat the order; an
        order we do not track arrives whole on ``v1.order``)."""
        tracked = self._orders.get(update.client_order_id)
        if tracked is None:
            return
        self._apply(
            OrderReport(
                client_order_id=tracked.client_order_id,
                order_id=update.order_id,
                contract_id=tracked.contract_id,
                side=tracked.side,
                order_type=tracked.order_type,
                size=tracked.size,
                price=tracked.price,
                status=order_status(update.status, update.reject_reason, update.traded),
                venue_status=venue_status(update.status, update.reject_reason),
                filled_size=update.traded,
                average_fill_price=update.average_fill_price,
                timestamp=update.timestamp,
                post_only=tracked.post_only,
            )
        )

    def __repr__(self) -> str:
        return f"GrvtClient({self.settings!r})"


def _client_id_of(raw: Mapping[str, Any]) -> str | None:
    metadata = raw.get("metadata")
    value = metadata.get("client_order_id") if isinstance(metadata, Mapping) else None
    return str(value) if value not in (None, "") else None


__all__ = ["GrvtClient", "GrvtRest"]
