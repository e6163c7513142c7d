"""A loopback Paradex venue: REST under ``/v1`` and the JSON-RPC WebSocket at ``/v1``, on 127.0.0.1.

Messages are built from the captured ones in ``../shared/fixtures/paradex/`` (market, markets
summary, order book snapshot, order, fill, position, account summary, auth result, the 40111
bearer-token error and the error envelope ``{"error", "message", "data"}``). Two answers have
no capture and follow paradex-py's models: ``GET /system/config`` (SystemConfig) and the
``bbo.{market}`` channel (BBOResp).

The venue VERIFIES the Stark signatures as Paradex does, with paradex-py's own typed data:

* ``POST /v1/auth/{public key}``: ``PARADEX-STARKNET-SIGNATURE`` must sign the ``Request``
  message (POST /v1/auth, ``PARADEX-TIMESTAMP``, ``PARADEX-SIGNATURE-EXPIRATION``) for
  ``PARADEX-STARKNET-ACCOUNT`` under the account's public key; the timestamp must be within a
  minute of the venue's clock and the expiration in the future. It answers a JWT (with ``exp``,
  ``jwt_ttl`` seconds ahead) that private requests carry as ``Authorization: Bearer``.
* ``POST /v1/orders``: ``signature`` must sign the ``Order`` message (timestamp, market, side,
  type, size and price in 8-decimal quanta) for the token's account.

Refusals: a bad signature answers STARKNET_SIGNATURE_VERIFICATION_FAILED (auth) or
INVALID_ORDER_SIGNATURE (order), counted in ``signature_failures``; an unknown or expired token
answers 401 INVALID_TOKEN (REST) or error 40111 (WebSocket ``auth``). Control actions
``expire_tokens`` (revoke every JWT now) and ``set_jwt_ttl`` exercise the client's refresh.

Wire facts the mock follows: ``POST /orders`` answers the order as NEW; the book's verdict comes
on ``orders.{market}``: OPEN, or CLOSED with ``cancel_reason`` POST_ONLY_WOULD_CROSS for a
post-only order that would take. ``DELETE /orders/{id}`` answers 204 and the CLOSED
(USER_CANCELED) comes on the stream. ``GET /orders/{id}`` and ``/orders/by_client_id/{id}``
know open orders only; ``/orders-history`` knows all. The book channel
``order_book.{market}.snapshot@15@50ms`` sends 15-level snapshots (``update_type`` "s").

Run as its own process: ``python -m tests.mock_venues.paradex_venue --help`` (needs the
Paradex environment: ``bash scripts/paradex_env.sh``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from paradex_py.account.utils import typed_data_to_message_hash, unflatten_signature, verify_message_signature
from paradex_py.common.order import Order as SdkOrder
from paradex_py.common.order import OrderSide as SdkSide
from paradex_py.common.order import OrderType as SdkOrderType
from paradex_py.message.auth import build_auth_message
from paradex_py.message.order import build_order_message
from starknet_py.common import int_from_bytes
from starknet_py.constants import EC_ORDER
from starknet_py.net.signer.key_pair import KeyPair

from tests.mock_venues.base import (
    ENGINE_CONTROL_ACTIONS,
    ENGINE_FAULT_KINDS,
    EngineVenue,
    MockConn,
    fixture_loader,
    now_ms,
    signed,
    venue_main,
    venue_parser,
)
from tests.mock_venues.engine import (
    BUY,
    CANCELLED,
    EXPIRED,
    SELL,
    EngineFill,
    EngineOrder,
    PerpEngine,
    fmt,
)
from tests.shared_paths import FIXTURES_DIR as SHARED_FIXTURES_DIR

FIXTURES_DIR = Path(os.environ.get("PARADEX_FIXTURES_DIR", str(SHARED_FIXTURES_DIR / "paradex")))
FAULT_KINDS = ENGINE_FAULT_KINDS
CONTROL_ACTIONS = {**ENGINE_CONTROL_ACTIONS, "expire_tokens": set(), "set_jwt_ttl": {"seconds"}}
CHAIN_ID = "PRIVATE_SN_POTC_MOCK_SEPOLIA"
AUTH_CLOCK_SKEW = 60
BOOK_DEPTH = 15
PRIVATE_CHANNELS = ("orders.", "fills.", "positions", "account")

fixture = fixture_loader(FIXTURES_DIR)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class MockParadexVenue(EngineVenue):
    """Loopback Paradex venue with one USD perpetual market and one account."""

    name = "paradex"
    CONTROL_ACTIONS = CONTROL_ACTIONS
    api_prefixes = ("/v1/",)
    ORDER_EVENTS: ClassVar[dict[str, str]] = {
        "accepted": "OPEN",
        "fill": "FILL",
        CANCELLED: "CLOSED",
        EXPIRED: "CLOSED",
    }
    ENV_NAMES = (
        "PARADEX_BASE_URL",
        "PARADEX_WS_URL",
        "PARADEX_L1_ADDRESS",
        "PARADEX_L2_PRIVATE_KEY",
        "PARADEX_L2_ADDRESS",
        "PARADEX_ENVIRONMENT",
    )
    SYMBOL_FORMAT = "{base}-USD-PERP"
    DEPTH_STREAM = "order_book.{symbol}.snapshot@15@50ms"
    TICKER_STREAM = "bbo.{symbol}"
    WS_PATH = "/v1"
    FIRST_UPDATE_ID = 14_115_975

    def __init__(
        self, *, min_notional: Decimal | str = Decimal("10"), jwt_ttl: float = 300.0, **market: Any
    ) -> None:
        super().__init__(**market)
        self.min_notional = Decimal(str(min_notional))
        self.jwt_ttl = float(jwt_ttl)
        private_key = secrets.randbelow(EC_ORDER - 1) + 1
        self.key_pair = KeyPair.from_private_key(private_key)
        self.l2_address = secrets.randbits(250) | (1 << 249)
        self.l1_address = "0x" + secrets.token_hex(20)
        self.chain_id = int_from_bytes(CHAIN_ID.encode())
        self.tokens: dict[str, float] = {}  # JWT -> expiry (epoch seconds)
        self.auths = 0
        self.tokens_refused = 0
        self.orders_verified = 0

    def new_engine(self, tick: Decimal, start_price: Decimal) -> PerpEngine:
        return PerpEngine(
            tick=tick,
            start_price=start_price,
            maker_fee=Decimal("0.000075"),
            taker_fee=Decimal("0.000125"),
            fee_quantum=Decimal("0.0000001"),
            first_order_id=1718941725080201704028870000,
            first_trade_id=1718947571560201703986670001,
        )

    def credentials(self) -> tuple[str, ...]:
        return self.l1_address, hex(self.key_pair.private_key), hex(self.l2_address), "testnet"

    def env(self) -> dict[str, str]:
        values = (f"{self.base_url}/v1", self.ws_url, *self.credentials())
        return dict(zip(self.ENV_NAMES, values, strict=True))

    # -- control (thread-safe) ---------------------------------------------------------------

    def expire_tokens(self) -> int:
        """Revoke every JWT now: the next private request with one is refused (401)."""

        def do() -> int:
            count = len(self.tokens)
            self.tokens.clear()
            return count

        return int(self.call(do))

    def set_jwt_ttl(self, seconds: float) -> float:
        """The life of the JWTs issued from now on."""
        self.call(lambda: setattr(self, "jwt_ttl", float(seconds)))
        return float(seconds)

    def state_now(self) -> dict[str, Any]:
        """The shared state, each order also carrying the venue's truth in words the loopback
        tests share (Paradex's wire says only ``remaining_size`` and ``flags``)."""
        state = super().state_now()
        for row, order in zip(state["orders"], self.engine.orders.values(), strict=True):
            row["filled_size"] = fmt(order.executed)
            row["reduceOnly"] = order.reduce_only
        return state

    def venue_state(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "position": {
                "size": fmt(engine.position),
                "side": "SHORT" if engine.position < 0 else "LONG",
                "average_entry_price": fmt(engine.entry_price),
            },
            "auths": self.auths,
            "tokens_refused": self.tokens_refused,
            "orders_verified": self.orders_verified,
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    def _error(self, code: str, message: str, status: int = 400) -> web.Response:
        return web.json_response({"data": None, "error": code, "message": message}, status=status)

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {"data": None, "error": "RATE_LIMIT_EXCEEDED", "message": "rate limit exceeded"}
        return {"data": None, "error": "INTERNAL_ERROR", "message": "internal error"}

    def _issue_token(self) -> str:
        now = time.time()
        header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
        claims = {"sub": hex(self.l2_address), "iat": int(now), "exp": int(now + self.jwt_ttl)}
        token = f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"
        self.tokens[token] = now + self.jwt_ttl
        return token

    def _verify(self, typed_data: Any, signature: str, account: int) -> bool:
        try:
            message_hash = typed_data_to_message_hash(typed_data, account)
            return bool(
                verify_message_signature(
                    message_hash, unflatten_signature(signature), self.key_pair.public_key
                )
            )
        except (ValueError, TypeError, IndexError):
            return False

    # -- book and stream messages ------------------------------------------------------------

    def depth_message(self, bids: list[list[str]], asks: list[list[str]], previous: int) -> Any:
        """A 15-level snapshot (the snapshot channel sends the whole top, not the change)."""
        all_bids, all_asks = self.engine.aggregate()
        message = fixture("ws_order_book_snapshot.json")
        data = message["params"]
        data["channel"] = self.depth_stream
        inserts = [
            {"side": "BUY", "price": fmt(p), "size": fmt(s)}
            for p, s in sorted(all_bids.items(), reverse=True)[:BOOK_DEPTH]
        ] + [
            {"side": "SELL", "price": fmt(p), "size": fmt(s)}
            for p, s in sorted(all_asks.items())[:BOOK_DEPTH]
        ]
        data["data"].update(
            seq_no=self.update_id,
            market=self.symbol,
            last_updated_at=now_ms(),
            inserts=inserts,
            updates=[],
            deletes=[],
        )
        return message

    def ticker_message(
        self, top: tuple[Decimal, Decimal], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
    ) -> Any:
        data = {
            "market": self.symbol,
            "bid": fmt(top[0]),
            "bid_size": fmt(bids[top[0]]),
            "ask": fmt(top[1]),
            "ask_size": fmt(asks[top[1]]),
            "last_updated_at": now_ms(),
            "seq_no": self.update_id,
        }
        return {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": self.ticker_stream, "data": data},
        }

    def order_json(self, order: EngineOrder, *, status: str | None = None) -> dict[str, Any]:
        raw = fixture("http_order_closed_user_canceled.json")
        closed = not order.is_open
        raw.update(
            id=str(order.id),
            account=hex(self.l2_address),
            market=self.symbol,
            side="BUY" if order.side == BUY else "SELL",
            type="LIMIT",
            size=fmt(order.quantity),
            remaining_size=fmt(order.remaining) if status is None else fmt(order.quantity),
            price=fmt(order.price),
            status=status or ("CLOSED" if closed else "OPEN"),
            created_at=order.created_ms,
            last_updated_at=now_ms(),
            timestamp=order.created_ms,
            cancel_reason=order.extra.get("cancel_reason", "") if closed and status is None else "",
            client_id=str(order.client_id),
            seq_no=time.time_ns(),
            instruction=order.extra["instruction"],
            avg_fill_price=fmt(order.average_price) if order.executed and status is None else "",
            stp="EXPIRE_TAKER",
            received_at=order.created_ms,
            published_at=now_ms(),
            flags=["REDUCE_ONLY"] if order.reduce_only else [],
            trigger_price="0",
        )
        return raw

    def push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
        if order.status == EXPIRED and order.post_only:
            order.extra["cancel_reason"] = "POST_ONLY_WOULD_CROSS"
        elif order.status == CANCELLED and "cancel_reason" not in order.extra:
            order.extra["cancel_reason"] = (
                "USER_CANCELED" if order.time_in_force == "GTC" else "IOC_NOT_FILLED"
            )
        if fill is not None:
            message = fixture("ws_fills.json")
            message["params"]["channel"] = f"fills.{self.symbol}"
            message["params"]["data"].update(
                id=str(fill.trade_id),
                side="BUY" if order.side == BUY else "SELL",
                liquidity="MAKER" if fill.is_maker else "TAKER",
                market=self.symbol,
                order_id=str(order.id),
                price=fmt(fill.price),
                size=fmt(fill.quantity),
                fee=fmt(fill.fee),
                created_at=now_ms(),
                remaining_size=fmt(order.remaining),
                client_id=str(order.client_id),
            )
            self.broadcast(f"fills.{self.symbol}", message)
            self._push_position()
        message = fixture("ws_orders_doc.json")
        message["params"]["channel"] = f"orders.{self.symbol}"
        message["params"]["data"] = {
            key: value for key, value in self.order_json(order).items() if key in message["params"]["data"]
        }
        self.broadcast(f"orders.{self.symbol}", message)

    def _position_json(self) -> dict[str, Any]:
        engine = self.engine
        raw = fixture("http_positions.json")["results"][0]
        raw.update(
            id=f"{hex(self.l2_address)}-{self.symbol}",
            market=self.symbol,
            status="OPEN" if engine.position else "CLOSED",
            side="SHORT" if engine.position < 0 else "LONG",
            size=fmt(engine.position),
            average_entry_price=fmt(engine.entry_price),
            average_entry_price_usd=fmt(engine.entry_price),
            unrealized_pnl=fmt(engine.unrealized()),
            realized_pnl=fmt(engine.realized),
            last_updated_at=now_ms(),
        )
        return raw

    def _push_position(self) -> None:
        message = fixture("ws_positions.json")
        position = self._position_json()
        message["params"]["data"] = {k: v for k, v in position.items() if k in message["params"]["data"]}
        self.broadcast("positions", message)

    # -- signatures --------------------------------------------------------------------------

    async def verify_request(self, request: web.Request) -> dict[str, Any] | web.Response:
        """A private request's params (query plus JSON body) once its JWT checks out."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if not header.startswith("Bearer ") or self.tokens.get(token, 0.0) <= time.time():
            self.tokens_refused += 1
            return self._error("INVALID_TOKEN", "invalid bearer token", 401)
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            try:
                body = json.loads(await request.text())
            except json.JSONDecodeError:
                return self._error("BINDING_ERROR", "request body is not JSON")
            if not isinstance(body, dict):
                return self._error("BINDING_ERROR", "request body is not an object")
            params.update(body)
        self.signed_requests.append({"path": f"{request.method} {request.path}", "params": dict(params)})
        return params

    # -- REST handlers -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v1", self._ws)
        r.add_get("/v1/system/config", self._h_system_config)
        r.add_post("/v1/auth/{public_key}", self._h_auth)
        r.add_get("/v1/markets", self._h_markets)
        r.add_get("/v1/markets/summary", self._h_markets_summary)
        r.add_get("/v1/orderbook/{market}", self._h_orderbook)
        r.add_post("/v1/orders", self._h_new_order)
        r.add_get("/v1/orders", self._h_open_orders)
        r.add_get("/v1/orders/by_client_id/{client_id}", self._h_order_by_client_id)
        r.add_delete("/v1/orders/by_client_id/{client_id}", self._h_cancel_by_client_id)
        r.add_get("/v1/orders/{order_id}", self._h_order)
        r.add_delete("/v1/orders/{order_id}", self._h_cancel)
        r.add_get("/v1/orders-history", self._h_orders_history)
        r.add_get("/v1/positions", self._h_positions)
        r.add_get("/v1/account", self._h_account)

    async def _h_system_config(self, request: web.Request) -> web.Response:
        port = self.port
        return web.json_response(
            {
                "starknet_fullnode_rpc_url": f"http://127.0.0.1:{port}/rpc/v0_9",
                "starknet_chain_id": CHAIN_ID,
                "block_explorer_url": "",
                "paraclear_address": "0x1",
                "paraclear_decimals": 8,
                "paraclear_account_proxy_hash": "0x2",
                "paraclear_account_hash": "0x3",
                "oracle_address": "0x4",
                "bridged_tokens": [],
                "l1_core_contract_address": "0x5",
                "l1_operator_address": "0x6",
                "l1_chain_id": "11155111",
                "liquidation_fee": "0.2",
            }
        )

    async def _h_auth(self, request: web.Request) -> web.Response:
        headers = request.headers
        try:
            account = int(headers["PARADEX-STARKNET-ACCOUNT"], 16)
            timestamp = int(headers["PARADEX-TIMESTAMP"])
            expiration = int(headers["PARADEX-SIGNATURE-EXPIRATION"])
            signature = headers["PARADEX-STARKNET-SIGNATURE"]
        except (KeyError, ValueError):
            return self._error("BINDING_ERROR", "missing or malformed PARADEX-* headers")
        if account != self.l2_address or request.match_info["public_key"] != hex(self.key_pair.public_key):
            return self._error("ACCOUNT_NOT_FOUND", "account not found", 401)
        now = time.time()
        if abs(now - timestamp) > AUTH_CLOCK_SKEW:
            return self._error("INVALID_TIMESTAMP", "timestamp outside the allowed window")
        if expiration <= now:
            return self._error("INVALID_SIGNATURE_EXPIRATION", "signature expired", 401)
        if not self._verify(build_auth_message(self.chain_id, timestamp, expiration), signature, account):
            self.signature_failures += 1
            return self._error("STARKNET_SIGNATURE_VERIFICATION_FAILED", "signature verification failed", 401)
        self.auths += 1
        return web.json_response({"jwt_token": self._issue_token()})

    async def _h_markets(self, request: web.Request) -> web.Response:
        body = fixture("http_markets_boden_perp.json")
        market = body["results"][0]
        market.update(
            symbol=self.symbol,
            base_currency=self.base,
            order_size_increment=fmt(self.step),
            price_tick_size=fmt(self.tick),
            min_notional=fmt(self.min_notional),
        )
        return web.json_response(body)

    async def _h_markets_summary(self, request: web.Request) -> web.Response:
        body = fixture("http_markets_summary.json")
        row = body["results"][0]
        bid, ask = self.engine.top()
        mark = fmt(self.engine.mark_price())
        row.update(
            symbol=self.symbol,
            oracle_price=mark,
            mark_price=mark,
            last_traded_price=mark,
            bid=fmt(bid),
            ask=fmt(ask),
            created_at=now_ms(),
            underlying_price=mark,
        )
        if request.query.get("market") not in (None, "ALL", self.symbol):
            body["results"] = []
        return web.json_response(body)

    async def _h_orderbook(self, request: web.Request) -> web.Response:
        if request.match_info["market"] != self.symbol:
            return self._error("MARKET_NOT_FOUND", "market not found", 404)
        bids, asks = self.engine.aggregate()
        body = fixture("http_orderbook_snapshot.json")
        body.update(
            market=self.symbol,
            seq_no=self.update_id,
            last_updated_at=now_ms(),
            bids=[[fmt(p), fmt(s)] for p, s in sorted(bids.items(), reverse=True)[:BOOK_DEPTH]],
            asks=[[fmt(p), fmt(s)] for p, s in sorted(asks.items())[:BOOK_DEPTH]],
        )
        return web.json_response(body)

    @signed
    async def _h_new_order(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        if params.get("market") != self.symbol:
            return self._error("MARKET_NOT_FOUND", "market not found")
        side, kind = params.get("side"), params.get("type")
        instruction = params.get("instruction") or "GTC"
        if side not in ("BUY", "SELL") or kind != "LIMIT" or instruction not in ("GTC", "POST_ONLY", "IOC"):
            return self._error("VALIDATION_ERROR", "invalid side, type or instruction")
        try:
            quantity, price = Decimal(str(params["size"])), Decimal(str(params["price"]))
            signature_timestamp = int(params["signature_timestamp"])
            signature = str(params["signature"])
        except (KeyError, ArithmeticError, ValueError, TypeError):
            return self._error("BINDING_ERROR", "size, price, signature or signature_timestamp malformed")
        reduce_only = "REDUCE_ONLY" in (params.get("flags") or [])
        sdk_order = SdkOrder(
            market=self.symbol,
            order_type=SdkOrderType.Limit,
            order_side=SdkSide.Buy if side == "BUY" else SdkSide.Sell,
            size=quantity,
            limit_price=price,
            signature_timestamp=signature_timestamp,
        )
        if not self._verify(build_order_message(self.chain_id, sdk_order), signature, self.l2_address):
            self.signature_failures += 1
            return self._error("INVALID_ORDER_SIGNATURE", "order signature verification failed")
        self.orders_verified += 1
        if quantity <= 0 or quantity % self.step != 0:
            return self._error("VALIDATION_ERROR", f"size must be a multiple of {fmt(self.step)}")
        if price <= 0 or price % self.tick != 0:
            return self._error("INVALID_PRICE_PRECISION", f"price must be a multiple of {fmt(self.tick)}")
        order_side = BUY if side == "BUY" else SELL
        if quantity * price < self.min_notional and not reduce_only:
            return self._error(
                "VALIDATION_ERROR", f"order notional below min_notional {fmt(self.min_notional)}"
            )
        if reduce_only and not self.engine.reduces(order_side):
            return self._error("VALIDATION_ERROR", "reduce-only order would increase the position")
        client_id = str(params.get("client_id") or "")
        if client_id and any(o.client_id == client_id and o.is_open for o in self.engine.orders.values()):
            return self._error("DUPLICATED_CLIENT_ID", "client id already used by an open order")
        order = self.place(
            client_id=client_id,
            side=order_side,
            quantity=quantity,
            price=price,
            time_in_force="IOC" if instruction == "IOC" else "GTC",
            post_only=instruction == "POST_ONLY",
            reduce_only=reduce_only,
            extra={"instruction": instruction},
        )
        return web.json_response(self.order_json(order, status="NEW"), status=201)

    @signed
    async def _h_open_orders(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return web.json_response({"results": self.open_orders(params.get("market"))})

    def _open_by_client_id(self, client_id: str) -> EngineOrder | None:
        order = self.lookup(None, client_id)
        return order if order is not None and order.is_open else None

    @signed
    async def _h_order_by_client_id(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._open_by_client_id(request.match_info["client_id"])
        if order is None:
            return self._error("CLIENT_ORDER_ID_NOT_FOUND", "order not found", 404)
        return web.json_response(self.order_json(order))

    @signed
    async def _h_order(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self.lookup(request.match_info["order_id"], None)
        if order is None or not order.is_open:
            return self._error("ORDER_ID_NOT_FOUND", "order not found", 404)
        return web.json_response(self.order_json(order))

    def _cancel(self, order: EngineOrder | None) -> web.Response:
        if order is None:
            return self._error("ORDER_ID_NOT_FOUND", "order not found", 404)
        if not order.is_open:
            return self._error("ORDER_IS_CLOSED", "order is closed")
        order.extra["cancel_reason"] = "USER_CANCELED"
        self.end_order(order, CANCELLED)
        return web.Response(status=204)

    @signed
    async def _h_cancel(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return self._cancel(self.lookup(request.match_info["order_id"], None))

    @signed
    async def _h_cancel_by_client_id(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return self._cancel(self.lookup(None, request.match_info["client_id"]))

    @signed
    async def _h_orders_history(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        client_id, market = params.get("client_id"), params.get("market")
        rows = [
            self.order_json(o)
            for o in sorted(self.engine.orders.values(), key=lambda o: (o.created_ms, o.id), reverse=True)
            if (client_id is None or o.client_id == client_id) and market in (None, self.symbol)
        ]
        return web.json_response(
            {"next": None, "prev": None, "results": rows[: int(params.get("page_size", 100))]}
        )

    @signed
    async def _h_positions(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return web.json_response({"results": [self._position_json()] if self.engine.position else []})

    @signed
    async def _h_account(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        summary = fixture("ws_account_summary_doc.json")["params"]["data"]
        wallet = self.wallet()
        equity = wallet + self.engine.unrealized()
        summary.update(
            account=hex(self.l2_address),
            account_value=fmt(equity),
            total_collateral=fmt(wallet),
            free_collateral=fmt(equity),
            margin_cushion=fmt(equity),
            updated_at=now_ms(),
        )
        return web.json_response(summary)

    # -- WebSocket (JSON-RPC) ----------------------------------------------------------------

    def _on_frame(self, conn: MockConn, data: Any) -> None:
        if not isinstance(data, dict):
            conn.send(fixture("ws_error_invalid_subscribe.json"))
            return
        method, params, rpc_id = data.get("method"), data.get("params") or {}, data.get("id")
        if method == "auth":
            token = str(params.get("bearer") or "") if isinstance(params, dict) else ""
            if self.tokens.get(token, 0.0) <= time.time():
                self.tokens_refused += 1
                error = fixture("ws_error_invalid_bearer_token.json")
                error["id"] = rpc_id
                conn.send(error)
                return
            conn.streams.add("__authenticated__")
            answer = fixture("ws_auth_response.json")
            answer["id"] = rpc_id
            conn.send(answer)
            return
        channel = str(params.get("channel") or "") if isinstance(params, dict) else ""
        private = channel.startswith(PRIVATE_CHANNELS)
        if method != "subscribe" or not channel or (private and "__authenticated__" not in conn.streams):
            error = fixture("ws_error_invalid_subscribe.json")
            error["id"] = rpc_id
            conn.send(error)
            return
        self.subscribe(conn, channel)
        conn.send({"jsonrpc": "2.0", "id": rpc_id, "result": {"channel": channel}})

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(
            request, self._on_frame, lambda conn: conn.send(fixture("ws_error_invalid_subscribe.json"))
        )


def build_parser() -> argparse.ArgumentParser:
    return venue_parser(
        "paradex", signatures="Stark", fault_kinds=FAULT_KINDS, default_port=8790, market="<SYMBOL>-USD-PERP"
    )


def main(argv: list[str] | None = None) -> int:
    return venue_main(build_parser(), argv, MockParadexVenue, FIXTURES_DIR / "http_markets_boden_perp.json")


if __name__ == "__main__":
    raise SystemExit(main())
