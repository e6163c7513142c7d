"""A loopback Backpack venue: REST + WebSocket on 127.0.0.1 in Backpack's wire shapes.

Messages are built from the captured ones in ``../shared/fixtures/backpack/`` (markets, order
objects, positions, collateral, mark prices, depth and order-update events: loaded as templates,
values filled in). The venue VERIFIES every signed request the way Backpack does: the ED25519
signature in X-Signature over ``instruction=<instruction>&<params sorted by key>&timestamp=<X-
Timestamp>&window=<X-Window>`` with the key in X-API-Key (params from the query of a GET, from
the JSON body otherwise; booleans as ``true``/``false``), and the timestamp within its window.
A bad signature answers 401 INVALID_SIGNATURE, a stale one 400 TIMESTAMP_OUT_OF_RANGE. Private
stream subscriptions carry ``signature: [key, signature, timestamp, window]`` over
``instruction=subscribe&timestamp=...&window=...`` and are verified the same way.

Wire facts the mock follows: REST answers are bare JSON (an order object, a list), errors are
``{"code": "...", "message": "..."}``; ``GET /api/v1/depth`` lists bids lowest first (as
Backpack does: a client must sort); the WS takes ``{"method":"SUBSCRIBE","params":[...]}`` and
pushes ``{"stream": name, "data": {...}}``; ``depth.{symbol}`` deltas carry ``U``/``u`` (one
update id per message here), ``bookTicker.{symbol}`` the top, ``account.orderUpdate.{symbol}``
our orders' events (orderAccepted, orderFill with ``l``/``L``/``z``/``Z``/``n``/``m``/``t``,
orderCancelled, orderExpired); WS times are microseconds, REST times milliseconds.

The matching is simple: an external book of ``book_levels`` levels a side around the price,
``trade_through(price)`` prints an external trade that fills our resting orders the price
crosses (at their own prices, as maker) and moves the book there; our orders that cross the
book take from it (taker). A post-only order that would take liquidity is refused with the
captured 400 INVALID_ORDER "Order would immediately match and take liquidity".

Run as its own process: ``python -m tests.mock_venues.backpack_venue --help`` (same state and
control endpoints, ready and .env files and fault options as the Lighter mock).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from tests.mock_venues.base import (
    BASE_CONTROL_ACTIONS,
    BASE_FAULT_KINDS,
    MockVenueBase,
    add_common_options,
    run_foreground,
)
from tests.mock_venues.engine import BUY, CANCELLED, EXPIRED, SELL, EngineFill, EngineOrder, PerpEngine, fmt
from tests.shared_paths import FIXTURES_DIR as SHARED_FIXTURES_DIR

FIXTURES_DIR = Path(os.environ.get("BACKPACK_FIXTURES_DIR", str(SHARED_FIXTURES_DIR / "backpack")))

#: (method, path) -> Backpack's signing instruction.
INSTRUCTIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/order"): "orderExecute",
    ("DELETE", "/api/v1/order"): "orderCancel",
    ("GET", "/api/v1/order"): "orderQuery",
    ("GET", "/api/v1/orders"): "orderQueryAll",
    ("DELETE", "/api/v1/orders"): "orderCancelAll",
    ("GET", "/wapi/v1/history/orders"): "orderHistoryQueryAll",
    ("GET", "/api/v1/position"): "positionQuery",
    ("GET", "/api/v1/capital/collateral"): "collateralQuery",
}
FAULT_KINDS = (*BASE_FAULT_KINDS, "book_gap")
CONTROL_ACTIONS = {
    **BASE_CONTROL_ACTIONS,
    "set_fault_rates": {"seed", *FAULT_KINDS},
    "trade_through": {"price", "size"},
    "inject_book_gap": {"n"},
    "expire_order": {"client_id"},
}


def fixture(name: str) -> Any:
    return copy.deepcopy(json.loads((FIXTURES_DIR / name).read_text()))


def sign_string(instruction: str, params: dict[str, Any], timestamp: str, window: str) -> bytes:
    """Backpack's signed text (written from its docs, independently of the client's bpx-py)."""
    parts = [f"instruction={instruction}"]
    for key in sorted(params):
        value = params[key]
        parts.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    parts += [f"timestamp={timestamp}", f"window={window}"]
    return "&".join(parts).encode()


def generate_keys() -> tuple[str, str]:
    """(public key, secret key) as base64, as the Backpack UI hands them out."""
    private = Ed25519PrivateKey.generate()
    secret = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(public).decode(), base64.b64encode(secret).decode()


#: Engine statuses in Backpack's words.
STATUS_NAMES = {
    "open": "New",
    "partially_filled": "PartiallyFilled",
    "filled": "Filled",
    CANCELLED: "Cancelled",
    EXPIRED: "Expired",
}


class MockBackpackVenue(MockVenueBase):
    """Loopback Backpack venue with one USDC perpetual market."""

    name = "backpack"
    fault_kinds = FAULT_KINDS
    CONTROL_ACTIONS = CONTROL_ACTIONS
    api_prefixes = ("/api/", "/wapi/")

    def __init__(
        self,
        *,
        symbol: str = "ETH",
        start_price: Decimal | str = Decimal("3000"),
        tick_size: Decimal | str = Decimal("0.01"),
        step_size: Decimal | str = Decimal("0.0001"),
        min_quantity: Decimal | str = Decimal("0.001"),
        collateral: Decimal | str = Decimal("10000"),
        book_levels: int = 10,
        level_size: Decimal | str = Decimal("0.5"),
        host: str = "127.0.0.1",
        port: int = 0,
        fault_seed: int = 7,
    ) -> None:
        super().__init__(host=host, port=port, fault_seed=fault_seed)
        self.base = symbol.upper()
        self.symbol = f"{self.base}_USDC_PERP"
        self.tick = Decimal(str(tick_size))
        self.step = Decimal(str(step_size))
        self.min_quantity = Decimal(str(min_quantity))
        self.collateral = Decimal(str(collateral))
        self.public_key, self.secret_key = generate_keys()
        self._verifier = Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))
        self.engine = PerpEngine(
            tick=self.tick,
            start_price=Decimal(str(start_price)),
            levels=book_levels,
            level_size=Decimal(str(level_size)),
            first_order_id=4_228_978_331,
            first_trade_id=9_748_827,
        )
        self.engine.on_fill = self._on_fill
        self.update_id = 1_027_024
        self._published = self.engine.aggregate()
        self._last_ticker: tuple[Decimal, Decimal] | None = None
        self._gaps_pending = 0
        self.signed_requests: list[dict[str, Any]] = []
        self.signature_failures = 0
        self.private_subscriptions = 0

    # -- addresses ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def env(self) -> dict[str, str]:
        return {
            "BACKPACK_BASE_URL": self.base_url,
            "BACKPACK_WS_URL": self.ws_url,
            "BACKPACK_PUBLIC_KEY": self.public_key,
            "BACKPACK_SECRET_KEY": self.secret_key,
        }

    # -- control (thread-safe) ---------------------------------------------------------------

    def trade_through(
        self, price: Decimal | str | float, size: Decimal | str | float | None = None
    ) -> list[dict]:
        """An external trade at ``price`` (for ``size``, unlimited when None): fills our resting
        buys at or above it and sells at or below it at their own prices, then moves the book
        there. Returns the fills as dicts."""

        def do() -> list[dict[str, Any]]:
            fills = self.engine.trade_through(
                Decimal(str(price)), None if size is None else Decimal(str(size))
            )
            self._publish_book()
            return [fill.as_dict() for fill in fills]

        return list(self.call(do))

    def inject_book_gap(self, n: int = 1) -> None:
        """Skip the next ``n`` depth deltas (the update ids still advance: subscribers see a gap)."""
        self.call(lambda: setattr(self, "_gaps_pending", self._gaps_pending + int(n)))

    def expire_order(self, client_id: int) -> bool:
        """End one of our open orders as Expired (as the venue does on its own)."""

        def do() -> bool:
            for order in self.engine.orders.values():
                if order.client_id == int(client_id) and order.is_open:
                    order.status = EXPIRED
                    self._push_order("orderExpired", order)
                    self._publish_book()
                    return True
            return False

        return bool(self.call(do))

    def clear_venue_faults(self) -> None:
        self._gaps_pending = 0

    def best_bid_ask(self) -> tuple[Decimal, Decimal]:
        return tuple(self.call(self.engine.top))  # type: ignore[return-value]

    # -- state -------------------------------------------------------------------------------

    def state_now(self) -> dict[str, Any]:
        engine = self.engine
        bid, ask = engine.top()
        return {
            "symbol": self.symbol,
            "best_bid": fmt(bid),
            "best_ask": fmt(ask),
            "update_id": self.update_id,
            "orders": [self._order_json(o) for o in engine.orders.values()],
            "position": {"netQuantity": fmt(engine.position), "entryPrice": fmt(engine.entry_price)},
            "realized_pnl": fmt(engine.realized),
            "fees_paid": fmt(engine.fees),
            "signed_requests": list(self.signed_requests),
            "signature_failures": self.signature_failures,
            "private_subscriptions": self.private_subscriptions,
            "ws_connections": len(self.conns),
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    def _publish_book(self) -> None:
        bids, asks = self.engine.aggregate()
        old_bids, old_asks = self._published
        self._published = (bids, asks)

        def diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[list[str]]:
            changed = {p: s for p, s in new.items() if old.get(p) != s}
            changed.update({p: Decimal(0) for p in old if p not in new})
            return [[fmt(p), fmt(s)] for p, s in sorted(changed.items())]

        b, a = diff(old_bids, bids), diff(old_asks, asks)
        now_us = int(time.time() * 1e6)
        if b or a:
            self.update_id += 1
            if self._gaps_pending > 0 or (
                self.subscribers.get(f"depth.{self.symbol}") and self._roll("book_gap")
            ):
                self._gaps_pending = max(0, self._gaps_pending - 1)
                self._count("book_gap")
            else:
                data = fixture("ws_depth_update.json")
                data["stream"] = f"depth.{self.symbol}"
                data["data"].update(
                    E=now_us, T=now_us, s=self.symbol, U=self.update_id, u=self.update_id, b=b, a=a
                )
                self.broadcast(data["stream"], data)
        top = (max(bids), min(asks))
        if top != self._last_ticker:
            self._last_ticker = top
            stream = f"bookTicker.{self.symbol}"
            ticker = {
                "e": "bookTicker",
                "E": now_us,
                "s": self.symbol,
                "a": fmt(top[1]),
                "A": fmt(asks[top[1]]),
                "b": fmt(top[0]),
                "B": fmt(bids[top[0]]),
                "u": self.update_id,
                "T": now_us,
            }
            self.broadcast(stream, {"stream": stream, "data": ticker})

    # -- orders and fills --------------------------------------------------------------------

    def _order_json(self, order: EngineOrder) -> dict[str, Any]:
        raw = fixture("http_order_limit_postonly_new.json")
        raw.update(
            clientId=order.client_id,
            createdAt=order.created_ms,
            executedQuantity=fmt(order.executed),
            executedQuoteQuantity=fmt(order.executed_quote),
            id=str(order.id),
            orderType="Limit",
            postOnly=order.post_only,
            price=fmt(order.price),
            quantity=fmt(order.quantity),
            reduceOnly=order.reduce_only or None,
            side="Bid" if order.side == BUY else "Ask",
            status=STATUS_NAMES[order.status],
            symbol=self.symbol,
            timeInForce=order.time_in_force,
        )
        return raw

    def _push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
        now_us = int(time.time() * 1e6)
        data: dict[str, Any] = {
            "e": event,
            "E": now_us,
            "s": self.symbol,
            "c": order.client_id,
            "S": "Bid" if order.side == BUY else "Ask",
            "o": "LIMIT",
            "f": order.time_in_force,
            "q": fmt(order.quantity),
            "p": fmt(order.price),
            "X": STATUS_NAMES[order.status],
            "i": str(order.id),
            "z": fmt(order.executed),
            "Z": fmt(order.executed_quote),
            "T": now_us,
        }
        if fill is not None:
            data["N"] = fixture("ws_order_update_fill.json")["data"]["N"]
            data.update(
                l=fmt(fill.quantity), L=fmt(fill.price), n=fmt(fill.fee), m=fill.is_maker, t=fill.trade_id
            )
        stream = f"account.orderUpdate.{self.symbol}"
        self.broadcast(stream, {"stream": stream, "data": data})

    def _on_fill(self, fill: EngineFill) -> None:
        self._push_order("orderFill", fill.order, fill)

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        if status == 429:
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            body = {"code": "TOO_MANY_REQUESTS", "message": "Too many requests"}
            return web.json_response(body, status=429, headers=headers)
        return web.json_response(fixture("http_error_service_unavailable.json"), status=status)

    # -- signatures --------------------------------------------------------------------------

    def _verify(
        self, instruction: str, params: dict[str, Any], key: str, signature: str, stamp: str, window: str
    ) -> str | None:
        """None when the signature is good and fresh, else the error code."""
        try:
            if key != self.public_key:
                raise InvalidSignature
            self._verifier.verify(
                base64.b64decode(signature), sign_string(instruction, params, stamp, window)
            )
        except (InvalidSignature, ValueError, TypeError):
            self.signature_failures += 1
            return "INVALID_SIGNATURE"
        try:
            age = time.time() * 1000 - int(stamp)
            if not (-1000 <= age <= int(window)):
                return "TIMESTAMP_OUT_OF_RANGE"
        except ValueError:
            return "TIMESTAMP_OUT_OF_RANGE"
        return None

    async def _signed(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's params once its signature checks out, else the error response."""
        instruction = INSTRUCTIONS[(request.method, request.path)]
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query)
        else:
            try:
                body = json.loads(await request.text() or "{}")
            except json.JSONDecodeError:
                return self._error(400, "INVALID_CLIENT_REQUEST", "Body is not JSON")
            if not isinstance(body, dict):
                return self._error(400, "INVALID_CLIENT_REQUEST", "Body is not an object")
            params = body
        headers = request.headers
        missing = [h for h in ("X-API-Key", "X-Signature", "X-Timestamp", "X-Window") if not headers.get(h)]
        if missing:
            return self._error(401, "UNAUTHORIZED", f"Missing header {missing[0]}")
        problem = self._verify(
            instruction,
            params,
            headers["X-API-Key"],
            headers["X-Signature"],
            headers["X-Timestamp"],
            headers["X-Window"],
        )
        if problem == "INVALID_SIGNATURE":
            return self._error(401, problem, "Invalid signature")
        if problem is not None:
            return self._error(400, problem, fixture("http_error_timestamp_out_of_range.json")["message"])
        self.signed_requests.append({"instruction": instruction, "params": params})
        return params

    # -- REST handlers -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/ws", self._ws_handler)
        r.add_get("/api/v1/markets", self._h_markets)
        r.add_get("/api/v1/depth", self._h_depth)
        r.add_get("/api/v1/markPrices", self._h_mark_prices)
        r.add_post("/api/v1/order", self._h_execute)
        r.add_delete("/api/v1/order", self._h_cancel)
        r.add_get("/api/v1/order", self._h_order)
        r.add_get("/api/v1/orders", self._h_orders)
        r.add_get("/wapi/v1/history/orders", self._h_history)
        r.add_get("/api/v1/position", self._h_position)
        r.add_get("/api/v1/capital/collateral", self._h_collateral)

    async def _h_markets(self, request: web.Request) -> web.Response:
        spot, perp = fixture("http_markets_sol_spot_and_perp.json")
        spot.update(symbol=f"{self.base}_USDC", baseSymbol=self.base)
        perp.update(symbol=self.symbol, baseSymbol=self.base, quoteSymbol="USDC", fundingInterval=3_600_000)
        perp["filters"]["price"].update(tickSize=fmt(self.tick), minPrice=fmt(self.tick), maxPrice=None)
        perp["filters"]["quantity"].update(stepSize=fmt(self.step), minQuantity=fmt(self.min_quantity))
        return web.json_response([spot, perp])

    async def _h_depth(self, request: web.Request) -> web.Response:
        if request.query.get("symbol") != self.symbol:
            return self._error(400, "INVALID_SYMBOL", "Invalid symbol")
        bids, asks = self.engine.aggregate()
        snapshot = fixture("http_depth_snapshot_placeholder.json")
        snapshot.update(
            lastUpdateId=self.update_id,
            bids=[[fmt(p), fmt(s)] for p, s in sorted(bids.items())],  # lowest first, as Backpack
            asks=[[fmt(p), fmt(s)] for p, s in sorted(asks.items())],
        )
        return web.json_response(snapshot)

    async def _h_mark_prices(self, request: web.Request) -> web.Response:
        item = fixture("http_mark_prices_item.json")
        mid = fmt(self.engine.mark_price())
        item.update(symbol=self.symbol, markPrice=mid, indexPrice=mid)
        return web.json_response([item])

    async def _h_execute(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        try:
            quantity = Decimal(str(params["quantity"]))
            price = Decimal(str(params["price"]))
            client_id = int(params["clientId"]) if "clientId" in params else None
        except (KeyError, ArithmeticError, ValueError):
            return self._error(400, "INVALID_CLIENT_REQUEST", "Invalid order parameters")
        if params.get("symbol") != self.symbol:
            return self._error(400, "INVALID_SYMBOL", "Invalid symbol")
        if params.get("side") not in ("Bid", "Ask") or params.get("orderType") != "Limit":
            return self._error(400, "INVALID_CLIENT_REQUEST", "Invalid side or order type")
        if client_id is not None and not 0 <= client_id < 2**32:
            return self._error(400, "INVALID_CLIENT_REQUEST", "clientId must be a uint32")
        if quantity <= 0 or quantity % self.step != 0:
            return self._error(400, "INVALID_QUANTITY", f"Quantity must be a multiple of {fmt(self.step)}")
        if quantity < self.min_quantity:
            return self._error(
                400, "INVALID_QUANTITY", f"Quantity is below the minimum {fmt(self.min_quantity)}"
            )
        if price <= 0 or price % self.tick != 0:
            return self._error(400, "INVALID_PRICE", f"Price must be a multiple of {fmt(self.tick)}")
        side = BUY if params["side"] == "Bid" else SELL
        post_only, reduce_only = params.get("postOnly") is True, params.get("reduceOnly") is True
        if post_only and self.engine.would_take(side, price):
            return web.json_response(fixture("http_error_post_only_would_take_liquidity.json"), status=400)
        if reduce_only and not self.engine.reduces(side):
            return self._error(400, "INVALID_ORDER", "Reduce only order not reduced")
        order = self.engine.new_order(
            client_id=client_id,
            side=side,
            quantity=quantity,
            price=price,
            time_in_force=str(params.get("timeInForce") or "GTC"),
            post_only=post_only,
            reduce_only=reduce_only,
            created_ms=int(time.time() * 1000),
        )
        self._push_order("orderAccepted", order)
        self.engine.match(order)
        if order.status == CANCELLED:  # an IOC's unfilled rest
            self._push_order("orderCancelled", order)
        self._publish_book()
        return web.json_response(self._order_json(order))

    def _lookup(self, params: dict[str, Any]) -> EngineOrder | None:
        """By orderId; else by clientId, the open order with it first, then the newest."""
        order_id, client_id = params.get("orderId"), params.get("clientId")
        if order_id:
            return self.engine.orders.get(int(order_id)) if str(order_id).isdigit() else None
        if client_id in (None, ""):
            return None
        matches = [o for o in self.engine.orders.values() if o.client_id == int(str(client_id))]
        matches.sort(key=lambda o: (o.is_open, o.created_ms))
        return matches[-1] if matches else None

    async def _h_cancel(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        order = self._lookup(params)
        if order is None or not order.is_open:
            return self._error(404, "RESOURCE_NOT_FOUND", "Order not found")
        order.status = CANCELLED
        self._push_order("orderCancelled", order)
        self._publish_book()
        return web.json_response(self._order_json(order))

    async def _h_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        order = self._lookup(params)
        if order is None or not order.is_open:
            return self._error(404, "RESOURCE_NOT_FOUND", "Order not found")
        return web.json_response(self._order_json(order))

    async def _h_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        wanted = params.get("symbol")
        return web.json_response(
            [
                self._order_json(o)
                for o in self.engine.orders.values()
                if o.is_open and wanted in (None, self.symbol)
            ]
        )

    async def _h_history(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        try:
            limit, offset = int(params.get("limit", 100)), int(params.get("offset", 0))
        except ValueError:
            return self._error(400, "INVALID_CLIENT_REQUEST", "Invalid limit or offset")
        rows = [
            o
            for o in sorted(self.engine.orders.values(), key=lambda o: (o.created_ms, o.id), reverse=True)
            if not o.is_open and (not params.get("orderId") or str(o.id) == params["orderId"])
        ]
        return web.json_response([self._order_json(o) for o in rows[offset : offset + limit]])

    async def _h_position(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        engine = self.engine
        if engine.position == 0:
            return web.json_response([])
        item = fixture("http_position_item_ccxt.json")
        item.update(
            symbol=self.symbol,
            netQuantity=fmt(engine.position),
            netExposureQuantity=fmt(abs(engine.position)),
            entryPrice=fmt(engine.entry_price),
            markPrice=fmt(engine.mark_price()),
            pnlRealized=fmt(engine.realized),
            pnlUnrealized=fmt(engine.unrealized()),
        )
        return web.json_response([item])

    async def _h_collateral(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        body = fixture("http_collateral_balances_partial.json")
        total = self.collateral + self.engine.realized - self.engine.fees
        body["netEquity"] = body["netEquityAvailable"] = fmt(total)
        body["collateral"] = [
            {"symbol": "USDC", "totalQuantity": fmt(total), "availableQuantity": fmt(total)}
        ]
        return web.json_response(body)

    # -- WebSocket ---------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = self.open_conn(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    conn.send({"id": None, "error": {"code": 4000, "message": "Invalid JSON"}})
                    continue
                if not isinstance(data, dict) or data.get("method") != "SUBSCRIBE":
                    conn.send({"id": None, "error": {"code": 4001, "message": "Unknown method"}})
                    continue
                for stream in data.get("params") or []:
                    if str(stream).startswith("account."):
                        sig = data.get("signature")
                        if not (isinstance(sig, list) and len(sig) == 4) or self._verify(
                            "subscribe", {}, str(sig[0]), str(sig[1]), str(sig[2]), str(sig[3])
                        ):
                            conn.send({"id": None, "error": {"code": 4006, "message": "Invalid signature"}})
                            continue
                        self.private_subscriptions += 1
                    self.subscribe(conn, str(stream))
        finally:
            self.close_conn(conn)
        return ws


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mock_venues.backpack_venue",
        description="Run a loopback mock Backpack venue (REST + WebSocket) that verifies ED25519 "
        "signatures. GET /_mock/state shows its truth; POST /_mock/control moves the market "
        "(trade_through) and queues or clears faults. SIGTERM or SIGINT stops it cleanly.",
    )
    add_common_options(parser, FAULT_KINDS, default_port=8788)
    parser.add_argument("--price", type=Decimal, default=Decimal("3000"), help="start price")
    parser.add_argument("--symbol", default="ETH", help="base asset of the <SYMBOL>_USDC_PERP market")
    parser.add_argument("--collateral", type=Decimal, default=Decimal("10000"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (FIXTURES_DIR / "http_markets_sol_spot_and_perp.json").is_file():
        print(
            f"error: captured Backpack messages not found in {FIXTURES_DIR} (set BOT_SHARED_DIR)",
            file=sys.stderr,
        )
        return 2
    venue = MockBackpackVenue(
        symbol=args.symbol,
        start_price=args.price,
        collateral=args.collateral,
        host=args.host,
        port=args.port,
        fault_seed=args.fault_seed,
    )
    env: dict[str, Any] = {
        "BACKPACK_BASE_URL": lambda: venue.base_url,
        "BACKPACK_WS_URL": lambda: venue.ws_url,
        "BACKPACK_PUBLIC_KEY": venue.public_key,
        "BACKPACK_SECRET_KEY": venue.secret_key,
    }
    return run_foreground(venue, args, env, {"ws_url": lambda: venue.ws_url, "symbol": venue.symbol})


if __name__ == "__main__":
    raise SystemExit(main())
