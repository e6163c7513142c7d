"""A loopback edgeX venue (contract API v2): REST + two WebSockets on 127.0.0.1 in edgeX's wire
shapes, built from the captured messages in ``../shared/fixtures/edgex`` (see edgex_wire.py).

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
createOrder answers only ``{"orderId"}`` and the private stream tells the rest (``trade-event``
ORDER_UPDATE with ``order`` and ``orderFillTransaction`` lists; a FILLED event is sent twice, as
the live venue is known to duplicate it); a post-only order that would take is CANCELED with
cancelReason COULD_NOT_FILL, a reduce-only order that would not reduce with
REDUCE_ONLY_CANCELED (edgeX's CancelReason enum); active orders are paged by ``offsetData``;
``getOrderByClientOrderId`` lists active orders, ``getHistoryOrderByClientOrderId`` finished ones.
The public stream answers ``subscribe`` with ``subscribed``, sends ``depth.{id}.15`` as a
SNAPSHOT then CHANGED deltas with consecutive versions, and ``ticker.{id}``, all as
``quote-event`` (the live type; the docs show ``payload``). Both streams send
``{"type":"ping","time":...}`` every ``ping_interval`` seconds and count the pongs.

Run as its own process: ``python -m tests.mock_venues.edgex_venue --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSMsgType, web
from eth_account import Account

from tests.mock_venues.base import (
    BASE_CONTROL_ACTIONS,
    BASE_FAULT_KINDS,
    MockConn,
    MockVenueBase,
    add_common_options,
    run_foreground,
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
from tests.mock_venues.engine import BUY, CANCELLED, SELL, EngineFill, EngineOrder, PerpEngine

FAULT_KINDS = (*BASE_FAULT_KINDS, "book_gap")
CONTROL_ACTIONS = {
    **BASE_CONTROL_ACTIONS,
    "set_fault_rates": {"seed", *FAULT_KINDS},
    "trade_through": {"price", "size"},
    "inject_book_gap": {"n"},
}
PRIVATE = "private"
PRIVATE_WS_PATH = "/api/v1/private/ws"
PUBLIC_WS_PATH = "/api/v1/public/ws"
V2 = "/api/v2"
MAX_CLOCK_SKEW_MS = 60_000
#: Unanswered pings after which the venue drops a connection (its docs: 5).
MAX_MISSED_PONGS = 5


class MockEdgexVenue(MockVenueBase):
    """Loopback edgeX venue with one USD perpetual contract (``ETHUSD`` by default)."""

    name = "edgex"
    fault_kinds = FAULT_KINDS
    CONTROL_ACTIONS = CONTROL_ACTIONS

    def __init__(
        self,
        *,
        symbol: str = "ETH",
        start_price: Decimal | str = Decimal("3000"),
        collateral: Decimal | str = Decimal("10000"),
        step_size: Decimal | str | None = None,
        min_size: Decimal | str | None = None,
        book_levels: int = 10,
        level_size: Decimal | str = Decimal("0.5"),
        active_page_size_cap: int = 200,
        ping_interval: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_seed: int = 7,
    ) -> None:
        super().__init__(host=host, port=port, fault_seed=fault_seed)
        self.metadata = v2_metadata()
        name = f"{symbol.upper()}USD"
        contract = next((c for c in self.metadata["contractList"] if c["contractName"] == name), None)
        if contract is None:
            raise ValueError(f"the captured metadata has no {symbol.upper()} contract")
        # The captured contracts have minOrderSize == stepSize; a test of the minimum needs them apart.
        if step_size is not None:
            contract["stepSize"] = fmt(Decimal(str(step_size)))
        if min_size is not None:
            contract["minOrderSize"] = fmt(Decimal(str(min_size)))
        self.contract = contract
        self.contract_id = str(contract["contractId"])
        self.contract_name = name
        self.tick = Decimal(contract["tickSize"])
        self.step = Decimal(contract["stepSize"])
        self.min_size = Decimal(contract["minOrderSize"])
        self.collateral = Decimal(str(collateral))
        self.account_id = fixture("http_getAccountAsset.json")["data"]["account"]["id"]
        self.api_key = secrets.token_hex(16)
        self.api_passphrase = secrets.token_hex(8)
        self.api_secret = secrets.token_hex(24)
        trading = Account.create()
        self.trading_private_key = trading.key.hex()
        self.trading_address = trading.address
        self.engine = PerpEngine(
            tick=self.tick,
            start_price=Decimal(str(start_price)),
            levels=book_levels,
            level_size=Decimal(str(level_size)),
            maker_fee=Decimal(contract["defaultMakerFeeRate"]),
            taker_fee=Decimal(contract["defaultTakerFeeRate"]),
            first_order_id=564_829_588_270_612_618,
            first_trade_id=564_815_957_260_763_406,
        )
        self.engine.on_fill = self._on_fill
        self.active_page_size_cap = active_page_size_cap
        self.ping_interval = ping_interval
        self.version = 201_223_747
        self.event_version = 1000
        self._published = self.engine.aggregate()
        self._last_ticker: tuple[Decimal, Decimal] | None = None
        self._gaps_pending = 0
        self._requests: dict[int, dict[str, Any]] = {}
        self.signed_requests: list[dict[str, Any]] = []
        self.signature_failures = 0
        self.order_signature_failures = 0
        self.private_connections = 0
        self.pongs = 0
        self.ping_timeouts = 0
        self._missed: dict[MockConn, int] = {}

    # -- addresses ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "EDGEX_BASE_URL": self.base_url,
            "EDGEX_WS_URL": self.ws_url,
            "EDGEX_ACCOUNT_ID": self.account_id,
            "EDGEX_API_KEY": self.api_key,
            "EDGEX_API_PASSPHRASE": self.api_passphrase,
            "EDGEX_API_SECRET": self.api_secret,
            "EDGEX_TRADING_PRIVATE_KEY": self.trading_private_key,
        }

    # -- control (thread-safe) ---------------------------------------------------------------

    def trade_through(
        self, price: Decimal | str | float, size: Decimal | str | float | None = None
    ) -> list[dict[str, Any]]:
        """An external trade at ``price`` (for ``size``; unlimited when None) filling our
        resting orders it crosses as maker; the book moves there. Returns the fills."""

        def do() -> list[dict[str, Any]]:
            fills = self.engine.trade_through(
                Decimal(str(price)), None if size is None else Decimal(str(size))
            )
            self._publish_book()
            return [fill.as_dict() for fill in fills]

        return list(self.call(do))

    def inject_book_gap(self, n: int = 1) -> None:
        """Skip the next ``n`` depth deltas (the versions still advance: subscribers see a gap)."""
        self.call(lambda: setattr(self, "_gaps_pending", self._gaps_pending + int(n)))

    def clear_venue_faults(self) -> None:
        self._gaps_pending = 0

    def best_bid_ask(self) -> tuple[Decimal, Decimal]:
        return tuple(self.call(self.engine.top))  # type: ignore[return-value]

    # -- state -------------------------------------------------------------------------------

    def state_now(self) -> dict[str, Any]:
        engine = self.engine
        bid, ask = engine.top()
        return {
            "contract_id": self.contract_id,
            "best_bid": fmt(bid),
            "best_ask": fmt(ask),
            "version": self.version,
            "orders": [self._order_json(o) for o in engine.orders.values()],
            "position": {"openSize": fmt(engine.position), "avgEntryPrice": fmt(engine.entry_price)},
            "realized_pnl": fmt(engine.realized),
            "fees_paid": fmt(engine.fees),
            "signed_requests": list(self.signed_requests),
            "signature_failures": self.signature_failures,
            "order_signature_failures": self.order_signature_failures,
            "private_connections": self.private_connections,
            "pongs": self.pongs,
            "ping_timeouts": self.ping_timeouts,
            "ws_connections": len(self.conns),
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    # -- book --------------------------------------------------------------------------------

    def _levels(self, side: dict[Decimal, Decimal], descending: bool) -> list[list[str]]:
        return [[fmt(p), fmt(s)] for p, s in sorted(side.items(), reverse=descending)[:15]]

    def _snapshot_message(self) -> dict[str, Any]:
        bids, asks = self.engine.aggregate()
        row = depth_row(
            self.contract_id,
            self.version,
            self.version,
            True,
            self._levels(bids, True),
            self._levels(asks, False),
        )
        return quote_event(self._depth_channel, "Snapshot", [row])

    @property
    def _depth_channel(self) -> str:
        return f"depth.{self.contract_id}.15"

    def _publish_book(self) -> None:
        bids, asks = self.engine.aggregate()
        old_bids, old_asks = self._published
        self._published = (bids, asks)

        def diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[list[str]]:
            changed = {p: s for p, s in new.items() if old.get(p) != s}
            changed.update({p: Decimal(0) for p in old if p not in new})
            return [[fmt(p), fmt(s)] for p, s in sorted(changed.items())]

        b, a = diff(old_bids, bids), diff(old_asks, asks)
        if b or a:
            self.version += 1
            if self._gaps_pending > 0 or (
                self.subscribers.get(self._depth_channel) and self._roll("book_gap")
            ):
                self._gaps_pending = max(0, self._gaps_pending - 1)
                self._count("book_gap")
            else:
                row = depth_row(self.contract_id, self.version, self.version, False, b, a)
                self.broadcast(self._depth_channel, quote_event(self._depth_channel, "Changed", [row]))
        top = (max(bids), min(asks))
        if top != self._last_ticker:
            self._last_ticker = top
            channel = f"ticker.{self.contract_id}"
            row = ticker_row(self.contract_id, self.contract_name, top[0], top[1], self.engine.mark_price())
            self.broadcast(channel, quote_event(channel, "Changed", [row]))

    # -- orders and fills --------------------------------------------------------------------

    def _order_json(self, order: EngineOrder) -> dict[str, Any]:
        fee = order.extra.get("fees", Decimal(0))
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
            fee=fee,
            created_ms=order.created_ms,
            updated_ms=order.extra.get("updated_ms", order.created_ms),
            request=self._requests.get(order.id, {}),
        )

    def _push(self, order: EngineOrder, fills: list[dict[str, Any]] | None = None) -> None:
        order.extra["updated_ms"] = int(time.time() * 1000)
        self.event_version += 1
        message = trade_event("ORDER_UPDATE", self.event_version, [self._order_json(order)], fills or [])
        self.broadcast(PRIVATE, message)
        if order.status == "filled":
            self.broadcast(PRIVATE, json.loads(json.dumps(message)))  # the live venue's duplicate

    def _on_fill(self, fill: EngineFill) -> None:
        order = fill.order
        order.extra["fees"] = order.extra.get("fees", Decimal(0)) + fill.fee
        row = fill_object(
            fill_id=fill.trade_id,
            order_id=order.id,
            account_id=self.account_id,
            contract_id=self.contract_id,
            side="BUY" if order.side == BUY else "SELL",
            size=fill.quantity,
            price=fill.price,
            fee=fill.fee,
            is_maker=fill.is_maker,
            match_ms=int(time.time() * 1000),
        )
        self._push(order, [row])

    def _end(self, order: EngineOrder, reason: str) -> None:
        order.status = CANCELLED
        order.extra["cancel_reason"] = reason
        self._push(order)

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None and status == 429 else {}
        code = "RATE_LIMIT_EXCEEDED" if status == 429 else "SERVICE_UNAVAILABLE"
        return web.json_response(error_body(code, f"injected HTTP {status}"), status=status, headers=headers)

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response(error_body(code, message), status=status)

    # -- authentication ----------------------------------------------------------------------

    def _check_hmac(self, headers: Any, method: str, path: str, body: str) -> str | None:
        """None when the private request's headers check out, else the error code."""
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

    async def _signed(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's params (query of a GET, JSON body otherwise) once its HMAC checks out."""
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
        r.add_get(f"{V2}/private/order/getOrderById", self._h_lookup)
        r.add_get(f"{V2}/private/order/getOrderByClientOrderId", self._h_lookup)
        r.add_get(f"{V2}/private/order/getHistoryOrderById", self._h_lookup)
        r.add_get(f"{V2}/private/order/getHistoryOrderByClientOrderId", self._h_lookup)

    async def _h_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(envelope(self.metadata))

    async def _h_depth(self, request: web.Request) -> web.Response:
        if request.query.get("contractId") != self.contract_id:
            return self._error(
                400, "INVALID_CONTRACT_ID", f"invalid contractId:{request.query.get('contractId')}"
            )
        bids, asks = self.engine.aggregate()
        row = fixture("http_getDepth.json")["data"][0]
        row.update(
            startVersion=str(self.version),
            endVersion=str(self.version),
            contractId=self.contract_id,
            contractName=self.contract_name,
            bids=[{"price": p, "size": s} for p, s in self._levels(bids, True)],
            asks=[{"price": p, "size": s} for p, s in self._levels(asks, False)],
        )
        return web.json_response(envelope([row]))

    async def _h_ticker(self, request: web.Request) -> web.Response:
        bid, ask = self.engine.top()
        row = fixture("http_getTicker.json")["data"][0]
        mid = fmt(self.engine.mark_price())
        row.update(
            contractId=self.contract_id, contractName=self.contract_name, lastPrice=mid, oraclePrice=mid
        )
        row.update(ticker_row(self.contract_id, self.contract_name, bid, ask, self.engine.mark_price()))
        return web.json_response(envelope([row]))

    async def _h_funding(self, request: web.Request) -> web.Response:
        row = fixture("http_getLatestFundingRate_mainnet_live.json")["data"][0]
        mid = fmt(self.engine.mark_price())
        row.update(contractId=self.contract_id, oraclePrice=mid, indexPrice=mid)
        return web.json_response(envelope([row]))

    async def _h_asset(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        engine = self.engine
        data = fixture("http_getAccountAsset.json")["data"]
        unrealized = engine.unrealized()
        equity = self.collateral + engine.realized - engine.fees + unrealized
        collateral = data["collateralList"][0]
        collateral.update(cumFillFeeAmount=fmt(-engine.fees), cumFundingFeeAmount="0", amount=fmt(equity))
        position = data["positionList"][0]
        position.update(
            contractId=self.contract_id,
            openSize=fmt(engine.position),
            openValue=fmt(engine.position * engine.entry_price),
        )
        asset = data["positionAssetList"][0]
        asset.update(
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

    async def _h_create(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        client_id = str(params.get("clientOrderId") or "")
        existing = next((o for o in self.engine.orders.values() if o.client_id == client_id), None)
        if existing is not None:  # clientOrderId is the idempotency key: a retry is the same order
            return web.json_response(envelope({"orderId": str(existing.id)}))
        try:
            size = Decimal(str(params["size"]))
            price = Decimal(str(params["price"]))
            side = {"BUY": BUY, "SELL": SELL}[params["side"]]
        except (KeyError, InvalidOperation, ValueError):
            return self._error(400, "INVALID_PARAMETER", "invalid order parameters")
        if str(params.get("contractId")) != self.contract_id:
            return self._error(400, "INVALID_CONTRACT_ID", f"invalid contractId:{params.get('contractId')}")
        time_in_force = str(params.get("timeInForce") or "")
        if params.get("type") != "LIMIT" or time_in_force not in (
            "GOOD_TIL_CANCEL",
            "POST_ONLY",
            "IMMEDIATE_OR_CANCEL",
        ):
            return self._error(400, "INVALID_PARAMETER", "only LIMIT orders with GTC/POST_ONLY/IOC here")
        if size <= 0 or size % self.step != 0:
            return self._error(400, "INVALID_ORDER_SIZE", f"size must be a multiple of {fmt(self.step)}")
        if size < self.min_size:
            return self._error(
                400, "ORDER_SIZE_LESS_THAN_MIN_ORDER_SIZE", f"minOrderSize is {fmt(self.min_size)}"
            )
        if price <= 0 or price % self.tick != 0:
            return self._error(400, "INVALID_ORDER_PRICE", f"price must be a multiple of {fmt(self.tick)}")
        problem = verify_order_signature(params, self.metadata, self.trading_address)
        if problem is not None:
            self.order_signature_failures += 1
            return self._error(400, "INVALID_L2_SIGNATURE", problem)
        order = self.engine.new_order(
            client_id=client_id,
            side=side,
            quantity=size,
            price=price,
            time_in_force="IOC" if time_in_force == "IMMEDIATE_OR_CANCEL" else "GTC",
            post_only=time_in_force == "POST_ONLY",
            reduce_only=params.get("reduceOnly") is True,
            created_ms=int(time.time() * 1000),
            extra={"time_in_force": time_in_force},
        )
        self._requests[order.id] = dict(params)
        if order.post_only and self.engine.would_take(side, price):
            self._end(order, "COULD_NOT_FILL")
        elif order.reduce_only and not self.engine.reduces(side):
            self._end(order, "REDUCE_ONLY_CANCELED")
        else:
            self._push(order)
            self.engine.match(order)
            if order.status == CANCELLED:  # an IOC's unfilled rest
                self._end(order, "COULD_NOT_FILL")
            self._publish_book()
        return web.json_response(envelope({"orderId": str(order.id)}))

    def _find(self, *, order_id: Any = None, client_id: Any = None) -> EngineOrder | None:
        if order_id is not None:
            return self.engine.orders.get(int(order_id)) if str(order_id).isdigit() else None
        return next((o for o in self.engine.orders.values() if o.client_id == str(client_id)), None)

    async def _h_cancel(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        by_id = request.path.endswith("cancelOrderById")
        keys = params.get("orderIdList" if by_id else "clientOrderIdList")
        if not isinstance(keys, list):
            return self._error(400, "INVALID_PARAMETER", "id list missing")
        results = {}
        for key in keys:
            order = self._find(order_id=key) if by_id else self._find(client_id=key)
            if order is None or not order.is_open:
                results[str(key)] = "ORDER_NOT_FOUND"
                continue
            self._end(order, "USER_CANCELED")
            results[str(key)] = "SUCCESS"
        self._publish_book()
        return web.json_response(envelope({"cancelResultMap": results}))

    async def _h_active_page(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        try:
            size = int(params.get("size") or 100)
            after = int(params.get("offsetData") or 0)
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
            envelope({"dataList": [self._order_json(o) for o in page], "nextPageOffsetData": cursor})
        )

    async def _h_lookup(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        history = "History" in request.path
        if request.path.endswith("ById"):
            orders = [self._find(order_id=key) for key in str(params.get("orderIdList") or "").split(",")]
        else:
            orders = [
                self._find(client_id=key) for key in str(params.get("clientOrderIdList") or "").split(",")
            ]
        rows = [self._order_json(o) for o in orders if o is not None and o.is_open is not history]
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
            conn.send({"type": "ping", "time": str(int(time.time() * 1000))})

    def _on_pong(self, conn: MockConn) -> None:
        self.pongs += 1
        self._missed[conn] = 0

    async def _serve_socket(self, request: web.Request, *, private: bool) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = self.open_conn(ws)
        pinger = asyncio.ensure_future(self._pinger(conn))
        if private:
            self.private_connections += 1
            self.subscribe(conn, PRIVATE)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    conn.send({"type": "error", "content": {"code": "INVALID_JSON", "msg": "invalid json"}})
                    continue
                kind = data.get("type") if isinstance(data, dict) else None
                if kind == "pong":
                    self._on_pong(conn)
                elif kind == "ping":
                    conn.send({"type": "pong", "time": data.get("time")})
                elif kind == "subscribe" and not private:
                    self._subscribe_public(conn, str(data.get("channel") or ""), msg.data)
                else:
                    conn.send(
                        {"type": "error", "content": {"code": "INVALID_REQUEST", "msg": f"unknown {kind}"}}
                    )
        finally:
            pinger.cancel()
            self._missed.pop(conn, None)
            self.close_conn(conn)
        return ws

    def _subscribe_public(self, conn: MockConn, channel: str, request: str) -> None:
        if channel not in (self._depth_channel, f"ticker.{self.contract_id}"):
            conn.send(
                {
                    "type": "error",
                    "content": {"code": "INVALID_CONTRACT_ID", "msg": f"invalid channel:{channel}"},
                }
            )
            return
        self.subscribe(conn, channel)
        ack = fixture("ws_subscribed_ack_ticker_all_1s_live.json")
        ack.update(channel=channel, request=request)
        conn.send(ack)
        if channel == self._depth_channel:
            conn.send(self._snapshot_message())
        else:
            bid, ask = self.engine.top()
            row = ticker_row(self.contract_id, self.contract_name, bid, ask, self.engine.mark_price())
            conn.send(quote_event(channel, "Snapshot", [row]))

    async def _public_ws(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_socket(request, private=False)

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        text = f"accountId={query.get('accountId', '')}&timestamp={query.get('timestamp', '')}"
        problem = self._check_hmac(request.headers, "GET", PRIVATE_WS_PATH, text)
        if problem is None and query.get("accountId") != self.account_id:
            problem = "INVALID_ACCOUNT_ID"
        if problem is not None or request.headers.get("X-edgeX-Timestamp") != query.get("timestamp"):
            return self._error(401, problem or "INVALID_TIMESTAMP", "private stream authentication failed")
        return await self._serve_socket(request, private=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mock_venues.edgex_venue",
        description="Run a loopback mock edgeX venue (contract API v2: REST + public and private "
        "WebSockets) that verifies the HMAC headers and the EIP-712 order signatures. GET "
        "/_mock/state shows its truth; POST /_mock/control moves the market (trade_through) and "
        "queues or clears faults. SIGTERM or SIGINT stops it cleanly.",
    )
    add_common_options(parser, FAULT_KINDS, default_port=8790)
    parser.add_argument("--price", type=Decimal, default=Decimal("3000"), help="start price")
    parser.add_argument("--symbol", default="ETH", help="base asset of the <SYMBOL>USD contract (ETH or BTC)")
    parser.add_argument("--collateral", type=Decimal, default=Decimal("10000"))
    parser.add_argument("--ping-interval", type=float, default=5.0, help="seconds between the venue's pings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (FIXTURES / "http_getMetaData.json").is_file():
        print(f"error: captured edgeX messages not found in {FIXTURES} (set BOT_SHARED_DIR)", file=sys.stderr)
        return 2
    try:
        venue = MockEdgexVenue(
            symbol=args.symbol,
            start_price=args.price,
            collateral=args.collateral,
            ping_interval=args.ping_interval,
            host=args.host,
            port=args.port,
            fault_seed=args.fault_seed,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env: dict[str, Any] = {
        "EDGEX_BASE_URL": lambda: venue.base_url,
        "EDGEX_WS_URL": lambda: venue.ws_url,
        "EDGEX_ACCOUNT_ID": venue.account_id,
        "EDGEX_API_KEY": venue.api_key,
        "EDGEX_API_PASSPHRASE": venue.api_passphrase,
        "EDGEX_API_SECRET": venue.api_secret,
        "EDGEX_TRADING_PRIVATE_KEY": venue.trading_private_key,
    }
    return run_foreground(
        venue, args, env, {"ws_url": lambda: venue.ws_url, "contract_id": venue.contract_id}
    )


if __name__ == "__main__":
    raise SystemExit(main())
