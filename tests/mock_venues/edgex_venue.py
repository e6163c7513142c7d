"""A loopback edgeX venue (contract API v2): REST + two WebSockets on 127.0.0.1 in edgeX's wire
shapes, built from the captured messages in ``../shared/fixtures/edgex`` (see edgex_wire.py), on
the shared :class:`~tests.mock_venues.base.EngineVenue`.

It VERIFIES what a real edgeX verifies:

* every private REST request: the four ``X-edgeX-*`` headers, the HMAC-SHA256 (key
  ``base64(secret)``) over ``timestamp + METHOD + path + body`` (body: the sorted query of a GET,
  the docs' sorted rendering of the JSON body otherwise), the key and passphrase, and the
  timestamp within 60 s. A bad signature answers 401 ``INVALID_SIGNATURE``; a stale stamp 400
  ``INVALID_TIMESTAMP``.
* every order's EIP-712 signature: the typed ``LimitOrderParams`` is rebuilt from the request's
  own fields and the signer recovered with eth-account; it must be the account's trading key, and
  the signed amounts must be the order's own (size, price x size, nonce from the client id). A bad
  one answers 400 ``INVALID_L2_SIGNATURE`` and the order does not exist.
* the private stream's handshake: the same HMAC over ``GET /api/v1/private/ws`` and
  ``accountId=...&timestamp=...`` (refused with HTTP 401 otherwise).

Wire behaviour it follows: answers in the ``{"code": "SUCCESS", "data": ...}`` envelope;
createOrder answers only ``{"orderId"}`` (a repeated ``clientOrderId`` gets the same order: it is
the idempotency key) and the private stream tells the rest (``trade-event`` ORDER_UPDATE with
``order`` and ``orderFillTransaction`` lists; a FILLED event is sent twice, as the live venue is
known to duplicate it); a post-only order that would take is CANCELED with cancelReason
COULD_NOT_FILL, a reduce-only order that would not reduce with REDUCE_ONLY_CANCELED (edgeX's
CancelReason enum); active orders are paged by ``offsetData``; ``getOrderByClientOrderId`` lists
active orders, ``getHistoryOrderByClientOrderId`` finished ones. The public stream answers
``subscribe`` with ``subscribed``, sends ``depth.{id}.15`` as a SNAPSHOT then CHANGED deltas with
consecutive versions, and ``ticker.{id}``, all as ``quote-event`` (the live type; the docs show
``payload``). Both streams send ``{"type":"ping","time":...}`` every ``ping_interval`` seconds,
count the pongs and drop a connection after 5 unanswered pings.

Run as its own process: ``python -m tests.mock_venues.edgex_venue --help``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from aiohttp import web
from eth_account import Account

from tests.mock_venues.base import (
    ENGINE_CONTROL_ACTIONS,
    ENGINE_FAULT_KINDS,
    EngineVenue,
    MockConn,
    now_ms,
    signed,
    venue_main,
    venue_parser,
)
from tests.mock_venues.edgex_wire import (
    FIXTURES,
    STATUS_NAMES,
    depth_row,
    envelope,
    error_body,
    fill_object,
    fixture,
    fmt,
    order_object,
    quote_event,
    signed_text,
    ticker_row,
    trade_event,
    v2_metadata,
    verify_hmac,
    verify_order_signature,
)
from tests.mock_venues.engine import (
    BUY,
    CANCELLED,
    EXPIRED,
    FILLED,
    SELL,
    EngineFill,
    EngineOrder,
    PerpEngine,
)

PRIVATE = "private"
PRIVATE_WS_PATH = "/api/v1/private/ws"
PUBLIC_WS_PATH = "/api/v1/public/ws"
V2 = "/api/v2"
MAX_CLOCK_SKEW_MS = 60_000
#: Unanswered pings after which the venue drops a connection (its docs: 5).
MAX_MISSED_PONGS = 5
TIME_IN_FORCE = {"GOOD_TIL_CANCEL": "GTC", "POST_ONLY": "GTC", "IMMEDIATE_OR_CANCEL": "IOC"}


class MockEdgexVenue(EngineVenue):
    """Loopback edgeX venue with one USD perpetual contract (``ETHUSD`` by default)."""

    name = "edgex"
    CONTROL_ACTIONS = ENGINE_CONTROL_ACTIONS
    fault_kinds = ENGINE_FAULT_KINDS
    #: REST only: the streams live under /api/v1/ and must stay out of the REST faults (and in
    #: reach of hold_connections).
    api_prefixes = (f"{V2}/",)
    #: Our words for order events; on the wire every one is an ORDER_UPDATE trade-event whose
    #: order carries the status and cancelReason.
    ORDER_EVENTS: ClassVar[dict[str, str]] = {
        "accepted": "accepted",
        "fill": "fill",
        CANCELLED: CANCELLED,
        EXPIRED: EXPIRED,
    }
    IOC_REST_STATUS = CANCELLED
    ENV_NAMES = (
        "EDGEX_BASE_URL",
        "EDGEX_WS_URL",
        "EDGEX_ACCOUNT_ID",
        "EDGEX_API_KEY",
        "EDGEX_API_PASSPHRASE",
        "EDGEX_API_SECRET",
        "EDGEX_TRADING_PRIVATE_KEY",
    )
    SYMBOL_FORMAT = "{base}USD"
    FIRST_UPDATE_ID = 201_223_747

    def __init__(
        self,
        *,
        symbol: str = "ETH",
        ping_interval: float = 5.0,
        active_page_size_cap: int = 200,
        **market: Any,
    ) -> None:
        self.metadata = v2_metadata()
        name = f"{symbol.upper()}USD"
        contract = next((c for c in self.metadata["contractList"] if c["contractName"] == name), None)
        if contract is None:
            raise ValueError(f"the captured metadata has no {name} contract")
        self.contract = contract
        self.contract_id = str(contract["contractId"])
        for key, field_name in (
            ("tick_size", "tickSize"),
            ("step_size", "stepSize"),
            ("min_quantity", "minOrderSize"),
        ):
            market.setdefault(key, Decimal(contract[field_name]))
        super().__init__(symbol=symbol, **market)
        # The captured contracts have minOrderSize == stepSize; a test of the minimum sets them apart.
        contract.update(tickSize=fmt(self.tick), stepSize=fmt(self.step), minOrderSize=fmt(self.min_quantity))
        self.account_id = fixture("http_getAccountAsset.json")["data"]["account"]["id"]
        self.api_key = secrets.token_hex(16)
        self.api_passphrase = secrets.token_hex(8)
        self.api_secret = secrets.token_hex(24)
        trading = Account.create()
        self.trading_private_key = trading.key.hex()
        self.trading_address = trading.address
        self.ping_interval = ping_interval
        self.active_page_size_cap = active_page_size_cap
        self.event_version = 1000
        self.order_signature_failures = 0
        self.private_connections = 0
        self.pongs = 0
        self.ping_timeouts = 0
        self._missed: dict[MockConn, int] = {}
        self._pingers: dict[MockConn, asyncio.Future[Any]] = {}

    def new_engine(self, tick: Decimal, start_price: Decimal) -> PerpEngine:
        return PerpEngine(
            tick=tick,
            start_price=start_price,
            maker_fee=Decimal(self.contract["defaultMakerFeeRate"]),
            taker_fee=Decimal(self.contract["defaultTakerFeeRate"]),
            first_order_id=564_829_588_270_612_618,
            first_trade_id=564_815_957_260_763_406,
        )

    def credentials(self) -> tuple[str, ...]:
        return (
            self.account_id,
            self.api_key,
            self.api_passphrase,
            self.api_secret,
            self.trading_private_key,
        )

    @property
    def depth_stream(self) -> str:
        return f"depth.{self.contract_id}.15"

    @property
    def ticker_stream(self) -> str:
        return f"ticker.{self.contract_id}"

    def venue_state(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "position": {"openSize": fmt(engine.position), "avgEntryPrice": fmt(engine.entry_price)},
            "contract_id": self.contract_id,
            "order_signature_failures": self.order_signature_failures,
            "private_connections": self.private_connections,
            "pongs": self.pongs,
            "ping_timeouts": self.ping_timeouts,
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    # -- the wire ----------------------------------------------------------------------------

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
        return order_object(
            order_id=order.id,
            account_id=self.account_id,
            contract_id=self.contract_id,
            client_id=str(order.client_id),
            side="BUY" if order.side == BUY else "SELL",
            price=order.price,
            size=order.quantity,
            time_in_force=order.extra["time_in_force"],
            reduce_only=order.reduce_only,
            status=STATUS_NAMES[order.status],
            cancel_reason=order.extra.get("cancel_reason", "UNKNOWN_ORDER_CANCEL_REASON"),
            filled=order.executed,
            filled_quote=order.executed_quote,
            fee=order.extra.get("fees", Decimal(0)),
            created_ms=order.created_ms,
            updated_ms=order.extra.get("updated_ms", order.created_ms),
            request=order.extra.get("request", {}),
        )

    def push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
        if event == "accepted":
            order.extra["rested"] = True
        elif event == EXPIRED:  # place(): a post-only order that would take; else the clock
            rested = order.extra.get("rested", False)
            order.extra.setdefault("cancel_reason", "EXPIRE_CANCELED" if rested else "COULD_NOT_FILL")
        elif event == CANCELLED:
            default = "COULD_NOT_FILL" if order.time_in_force == "IOC" else "USER_CANCELED"
            order.extra.setdefault("cancel_reason", default)
        fills = []
        if fill is not None:
            order.extra["fees"] = order.extra.get("fees", Decimal(0)) + fill.fee
            fills.append(
                fill_object(
                    fill_id=fill.trade_id,
                    order_id=order.id,
                    account_id=self.account_id,
                    contract_id=self.contract_id,
                    side="BUY" if order.side == BUY else "SELL",
                    size=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    is_maker=fill.is_maker,
                    match_ms=now_ms(),
                )
            )
        order.extra["updated_ms"] = now_ms()
        self.event_version += 1
        message = trade_event("ORDER_UPDATE", self.event_version, [self.order_json(order)], fills)
        self.broadcast(PRIVATE, message)
        if order.status == FILLED:
            self.broadcast(PRIVATE, json.loads(json.dumps(message)))  # the live venue's duplicate

    def _depth(self, bids: list[list[str]], asks: list[list[str]], start: int, snapshot: bool) -> Any:
        row = depth_row(self.contract_id, start, self.update_id, snapshot, bids, asks)
        return quote_event(self.depth_stream, "Snapshot" if snapshot else "Changed", [row])

    def depth_message(self, bids: list[list[str]], asks: list[list[str]], previous: int) -> Any:
        return self._depth(bids, asks, previous + 1, False)

    def _top15(self) -> tuple[list[list[str]], list[list[str]]]:
        bids, asks = self.engine.aggregate()
        return (
            [[fmt(p), fmt(s)] for p, s in sorted(bids.items(), reverse=True)[:15]],
            [[fmt(p), fmt(s)] for p, s in sorted(asks.items())[:15]],
        )

    def ticker_message(
        self, top: tuple[Decimal, Decimal], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
    ) -> Any:
        row = ticker_row(self.contract_id, self.symbol, top[0], top[1], (top[0] + top[1]) / 2)
        return quote_event(self.ticker_stream, "Changed", [row])

    def fault_body(self, status: int) -> Any:
        code = "RATE_LIMIT_EXCEEDED" if status == 429 else "SERVICE_UNAVAILABLE"
        return error_body(code, f"injected HTTP {status}")

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response(error_body(code, message), status=status)

    # -- authentication ----------------------------------------------------------------------

    def _check_hmac(self, headers: Any, method: str, path: str, body: str) -> str | None:
        """None when a private request's headers check out, else the error code."""
        if (
            headers.get("X-edgeX-Api-Key") != self.api_key
            or headers.get("X-edgeX-Passphrase") != self.api_passphrase
        ):
            self.signature_failures += 1
            return "INVALID_API_KEY"
        if not verify_hmac(self.api_secret, headers, method, path, body):
            self.signature_failures += 1
            return "INVALID_SIGNATURE"
        try:
            skew = abs(time.time() * 1000 - int(headers.get("X-edgeX-Timestamp") or ""))
        except ValueError:
            return "INVALID_TIMESTAMP"
        return None if skew <= MAX_CLOCK_SKEW_MS else "INVALID_TIMESTAMP"

    async def verify_request(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The params (query of a GET, JSON body otherwise) once the HMAC headers check out."""
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query)
            text = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        else:
            try:
                body = json.loads(await request.text() or "{}")
            except json.JSONDecodeError:
                return self._error(400, "INVALID_PARAMETER", "body is not JSON")
            if not isinstance(body, dict):
                return self._error(400, "INVALID_PARAMETER", "body is not an object")
            params, text = body, signed_text(body)
        problem = self._check_hmac(request.headers, request.method, request.path, text)
        if problem == "INVALID_TIMESTAMP":
            return self._error(400, problem, "timestamp out of range")
        if problem is not None:
            return self._error(401, problem, "authentication failed")
        if str(params.get("accountId")) != self.account_id:
            return self._error(400, "INVALID_ACCOUNT_ID", "accountId is not this key's account")
        self.signed_requests.append({"path": request.path, "params": params})
        return params

    # -- REST --------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(PUBLIC_WS_PATH, self._public_ws)
        r.add_get(PRIVATE_WS_PATH, self._private_ws)
        r.add_get(f"{V2}/public/meta/getMetaData", self._h_metadata)
        r.add_get(f"{V2}/public/quote/getDepth", self._h_depth)
        r.add_get(f"{V2}/public/quote/getTicker", self._h_ticker)
        r.add_get(f"{V2}/public/funding/getLatestFundingRate", self._h_funding)
        r.add_get(f"{V2}/private/account/getAccountAsset", self._h_asset)
        r.add_post(f"{V2}/private/order/createOrder", self._h_create)
        r.add_post(f"{V2}/private/order/cancelOrderById", self._h_cancel)
        r.add_post(f"{V2}/private/order/cancelOrderByClientOrderId", self._h_cancel)
        r.add_get(f"{V2}/private/order/getActiveOrderPage", self._h_active_page)
        for name in (
            "getOrderById",
            "getOrderByClientOrderId",
            "getHistoryOrderById",
            "getHistoryOrderByClientOrderId",
        ):
            r.add_get(f"{V2}/private/order/{name}", self._h_lookup)

    async def _h_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(envelope(self.metadata))

    async def _h_depth(self, request: web.Request) -> web.Response:
        if request.query.get("contractId") != self.contract_id:
            return self._error(
                400, "INVALID_CONTRACT_ID", f"invalid contractId:{request.query.get('contractId')}"
            )
        bids, asks = self._top15()
        row = fixture("http_getDepth.json")["data"][0]
        row.update(
            startVersion=str(self.update_id),
            endVersion=str(self.update_id),
            contractId=self.contract_id,
            contractName=self.symbol,
            bids=[{"price": p, "size": s} for p, s in bids],
            asks=[{"price": p, "size": s} for p, s in asks],
        )
        return web.json_response(envelope([row]))

    async def _h_ticker(self, request: web.Request) -> web.Response:
        bid, ask = self.engine.top()
        row = fixture("http_getTicker.json")["data"][0]
        row.update(ticker_row(self.contract_id, self.symbol, bid, ask, self.engine.mark_price()))
        return web.json_response(envelope([row]))

    async def _h_funding(self, request: web.Request) -> web.Response:
        row = fixture("http_getLatestFundingRate_mainnet_live.json")["data"][0]
        mid = fmt(self.engine.mark_price())
        row.update(contractId=self.contract_id, oraclePrice=mid, indexPrice=mid)
        return web.json_response(envelope([row]))

    @signed
    async def _h_asset(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        engine = self.engine
        data = fixture("http_getAccountAsset.json")["data"]
        unrealized = engine.unrealized()
        equity = self.wallet() + unrealized
        data["collateralList"][0].update(
            cumFillFeeAmount=fmt(-engine.fees), cumFundingFeeAmount="0", amount=fmt(self.wallet())
        )
        data["positionList"][0].update(
            contractId=self.contract_id,
            openSize=fmt(engine.position),
            openValue=fmt(engine.position * engine.entry_price),
        )
        data["positionAssetList"][0].update(
            contractId=self.contract_id,
            avgEntryPrice=fmt(engine.entry_price),
            unrealizePnl=fmt(unrealized),
            totalRealizePnl=fmt(engine.realized),
            liquidatePrice="0",
        )
        if engine.position == 0:
            data["positionList"], data["positionAssetList"] = [], []
        data["collateralAssetModelList"][0].update(totalEquity=fmt(equity), availableAmount=fmt(equity))
        return web.json_response(envelope(data))

    @signed
    async def _h_create(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        client_id = str(params.get("clientOrderId") or "")
        existing = self.lookup(None, client_id) if client_id else None
        if existing is not None:  # clientOrderId is the idempotency key: a retry is the same order
            return web.json_response(envelope({"orderId": str(existing.id)}))
        try:
            size, price = Decimal(str(params["size"])), Decimal(str(params["price"]))
            side = {"BUY": BUY, "SELL": SELL}[params["side"]]
        except (KeyError, InvalidOperation, ValueError):
            return self._error(400, "INVALID_PARAMETER", "invalid order parameters")
        if str(params.get("contractId")) != self.contract_id:
            return self._error(400, "INVALID_CONTRACT_ID", f"invalid contractId:{params.get('contractId')}")
        time_in_force = str(params.get("timeInForce") or "")
        if params.get("type") != "LIMIT" or time_in_force not in TIME_IN_FORCE:
            return self._error(400, "INVALID_PARAMETER", "only LIMIT orders with GTC/POST_ONLY/IOC here")
        if size <= 0 or size % self.step != 0:
            return self._error(400, "INVALID_ORDER_SIZE", f"size must be a multiple of {fmt(self.step)}")
        if size < self.min_quantity:
            return self._error(
                400, "ORDER_SIZE_LESS_THAN_MIN_ORDER_SIZE", f"minOrderSize is {fmt(self.min_quantity)}"
            )
        if price <= 0 or price % self.tick != 0:
            return self._error(400, "INVALID_ORDER_PRICE", f"price must be a multiple of {fmt(self.tick)}")
        problem = verify_order_signature(params, self.metadata, self.trading_address)
        if problem is not None:
            self.order_signature_failures += 1
            return self._error(400, "INVALID_L2_SIGNATURE", problem)
        fields = {
            "client_id": client_id,
            "side": side,
            "quantity": size,
            "price": price,
            "time_in_force": TIME_IN_FORCE[time_in_force],
            "post_only": time_in_force == "POST_ONLY",
            "reduce_only": params.get("reduceOnly") is True,
            "extra": {"time_in_force": time_in_force, "request": dict(params)},
        }
        if fields["reduce_only"] and not self.engine.reduces(side):
            order = self.engine.new_order(created_ms=now_ms(), **fields)
            order.status = CANCELLED
            order.extra["cancel_reason"] = "REDUCE_ONLY_CANCELED"
            self.push_order(CANCELLED, order)
        else:
            order = self.place(**fields)
        return web.json_response(envelope({"orderId": str(order.id)}))

    @signed
    async def _h_cancel(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        by_id = request.path.endswith("cancelOrderById")
        keys = params.get("orderIdList" if by_id else "clientOrderIdList")
        if not isinstance(keys, list):
            return self._error(400, "INVALID_PARAMETER", "id list missing")
        results = {}
        for key in keys:
            order = self.lookup(key, None) if by_id else self.lookup(None, str(key))
            results[str(key)] = "SUCCESS" if self.end_order(order, CANCELLED) else "ORDER_NOT_FOUND"
        return web.json_response(envelope({"cancelResultMap": results}))

    @signed
    async def _h_active_page(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        try:
            size, after = int(params.get("size") or 100), int(params.get("offsetData") or 0)
        except ValueError:
            return self._error(400, "INVALID_PARAMETER", "bad size or offsetData")
        if not 0 < size <= self.active_page_size_cap:
            return self._error(400, "INVALID_PARAMETER", f"size must be 1..{self.active_page_size_cap}")
        wanted = str(params.get("filterContractIdList") or self.contract_id).split(",")
        rows = sorted(
            (
                o
                for o in self.engine.orders.values()
                if o.is_open and o.id > after and self.contract_id in wanted
            ),
            key=lambda o: o.id,
        )
        page = rows[:size]
        cursor = str(page[-1].id) if len(rows) > size else ""
        return web.json_response(
            envelope({"dataList": [self.order_json(o) for o in page], "nextPageOffsetData": cursor})
        )

    @signed
    async def _h_lookup(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        history = "History" in request.path
        if request.path.endswith("ById"):
            orders = [self.lookup(key, None) for key in str(params.get("orderIdList") or "").split(",")]
        else:
            keys = str(params.get("clientOrderIdList") or "").split(",")
            orders = [self.lookup(None, key) for key in keys]
        rows = [self.order_json(o) for o in orders if o is not None and o.is_open is not history]
        return web.json_response(envelope(rows))

    # -- WebSockets --------------------------------------------------------------------------

    async def _pinger(self, conn: MockConn) -> None:
        """The venue's heartbeat: a ping every ``ping_interval``; 5 unanswered end the socket."""
        while not conn.ws.closed:
            await asyncio.sleep(self.ping_interval)
            if self._missed.get(conn, 0) >= MAX_MISSED_PONGS:
                self.ping_timeouts += 1
                await conn.ws.close(code=1008, message=b"ping timeout")
                return
            self._missed[conn] = self._missed.get(conn, 0) + 1
            conn.send({"type": "ping", "time": str(now_ms())})

    def _opened(self, conn: MockConn, *, private: bool) -> None:
        self._pingers[conn] = asyncio.ensure_future(self._pinger(conn))
        if private:
            self.private_connections += 1
            self.subscribe(conn, PRIVATE)

    def _closed(self, conn: MockConn) -> None:
        pinger = self._pingers.pop(conn, None)
        if pinger is not None:
            pinger.cancel()
        self._missed.pop(conn, None)

    def _on_frame(self, conn: MockConn, data: Any, *, private: bool) -> None:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "pong":
            self.pongs += 1
            self._missed[conn] = 0
        elif kind == "ping":
            conn.send({"type": "pong", "time": data.get("time")})
        elif kind == "subscribe" and not private:
            self._subscribe_public(conn, str(data.get("channel") or ""), json.dumps(data))
        else:
            conn.send({"type": "error", "content": {"code": "INVALID_REQUEST", "msg": f"unknown {kind}"}})

    def _subscribe_public(self, conn: MockConn, channel: str, request: str) -> None:
        if channel not in (self.depth_stream, self.ticker_stream):
            conn.send(
                {"type": "error", "content": {"code": "INVALID_CONTRACT_ID", "msg": f"invalid:{channel}"}}
            )
            return
        self.subscribe(conn, channel)
        ack = fixture("ws_subscribed_ack_ticker_all_1s_live.json")
        ack.update(channel=channel, request=request)
        conn.send(ack)
        if channel == self.depth_stream:
            bids, asks = self._top15()
            conn.send(self._depth(bids, asks, self.update_id, True))
        else:
            bid, ask = self.engine.top()
            row = ticker_row(self.contract_id, self.symbol, bid, ask, self.engine.mark_price())
            conn.send(quote_event(channel, "Snapshot", [row]))

    def _socket(self, request: web.Request, *, private: bool) -> Any:
        return self.serve_ws(
            request,
            lambda conn, data: self._on_frame(conn, data, private=private),
            lambda conn: conn.send(
                {"type": "error", "content": {"code": "INVALID_JSON", "msg": "invalid json"}}
            ),
            lambda conn: self._opened(conn, private=private),
            self._closed,
        )

    async def _public_ws(self, request: web.Request) -> web.StreamResponse:
        return await self._socket(request, private=False)

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        text = f"accountId={query.get('accountId', '')}&timestamp={query.get('timestamp', '')}"
        problem = self._check_hmac(request.headers, "GET", PRIVATE_WS_PATH, text)
        if problem is None and query.get("accountId") != self.account_id:
            problem = "INVALID_ACCOUNT_ID"
        if problem is None and request.headers.get("X-edgeX-Timestamp") != query.get("timestamp"):
            problem = "INVALID_TIMESTAMP"
        if problem is not None:
            return self._error(401, problem, "private stream authentication failed")
        return await self._socket(request, private=True)


def build_parser() -> Any:
    return venue_parser(
        "edgex",
        signatures="HMAC-SHA256 header and EIP-712 order",
        fault_kinds=ENGINE_FAULT_KINDS,
        default_port=8790,
        market="<SYMBOL>USD (ETH or BTC)",
    )


def main(argv: list[str] | None = None) -> int:
    return venue_main(build_parser(), argv, MockEdgexVenue, FIXTURES / "http_getMetaData.json")


if __name__ == "__main__":
    raise SystemExit(main())
