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
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from tests.mock_venues.base import (
    ENGINE_CONTROL_ACTIONS,
    ENGINE_FAULT_KINDS,
    EngineVenue,
    MockConn,
    fixture_loader,
    signed,
    venue_main,
    venue_parser,
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
FAULT_KINDS = ENGINE_FAULT_KINDS
CONTROL_ACTIONS = {**ENGINE_CONTROL_ACTIONS, "expire_order": {"client_id"}}

fixture = fixture_loader(FIXTURES_DIR)


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


class MockBackpackVenue(EngineVenue):
    """Loopback Backpack venue with one USDC perpetual market."""

    name = "backpack"
    CONTROL_ACTIONS = CONTROL_ACTIONS
    api_prefixes = ("/api/", "/wapi/")
    ORDER_EVENTS: ClassVar[dict[str, str]] = {
        "accepted": "orderAccepted",
        "fill": "orderFill",
        CANCELLED: "orderCancelled",
        EXPIRED: "orderExpired",
    }
    ENV_NAMES = ("BACKPACK_BASE_URL", "BACKPACK_WS_URL", "BACKPACK_PUBLIC_KEY", "BACKPACK_SECRET_KEY")

    SYMBOL_FORMAT = "{base}_USDC_PERP"
    WS_PATH = "/ws"
    FIRST_UPDATE_ID = 1_027_024

    def __init__(
        self, *, book_levels: int = 10, level_size: Decimal | str = Decimal("0.5"), **market: Any
    ) -> None:
        self.book_levels, self.level_size = book_levels, Decimal(str(level_size))
        super().__init__(**{"step_size": Decimal("0.0001"), **market})
        self.public_key, self.secret_key = generate_keys()
        self._verifier = Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))
        self.private_subscriptions = 0

    def new_engine(self, tick: Decimal, start_price: Decimal) -> PerpEngine:
        return PerpEngine(
            tick=tick,
            start_price=start_price,
            levels=self.book_levels,
            level_size=self.level_size,
            first_order_id=4_228_978_331,
            first_trade_id=9_748_827,
        )

    def credentials(self) -> tuple[str, ...]:
        return self.public_key, self.secret_key

    # -- control (thread-safe) ---------------------------------------------------------------

    def expire_order(self, client_id: int) -> bool:
        """End one of our open orders as Expired (as the venue does on its own)."""

        def do() -> bool:
            open_ones = (
                o for o in self.engine.orders.values() if o.client_id == int(client_id) and o.is_open
            )
            return self.end_order(next(open_ones, None), EXPIRED)

        return bool(self.call(do))

    def venue_state(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "position": {"netQuantity": fmt(engine.position), "entryPrice": fmt(engine.entry_price)},
            "private_subscriptions": self.private_subscriptions,
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    def depth_message(self, bids: list[list[str]], asks: list[list[str]], previous: int) -> Any:
        now_us = int(time.time() * 1e6)
        data = fixture("ws_depth_update.json")
        data["stream"] = self.depth_stream
        data["data"].update(
            E=now_us, T=now_us, s=self.symbol, U=self.update_id, u=self.update_id, b=bids, a=asks
        )
        return data

    def ticker_message(
        self, top: tuple[Decimal, Decimal], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
    ) -> Any:
        now_us = int(time.time() * 1e6)
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
        return {"stream": self.ticker_stream, "data": ticker}

    # -- orders and fills --------------------------------------------------------------------

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
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

    def push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
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

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {"code": "TOO_MANY_REQUESTS", "message": "Too many requests"}
        return fixture("http_error_service_unavailable.json")

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

    async def verify_request(self, request: web.Request) -> dict[str, Any] | web.Response:
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

    @signed
    async def _h_execute(self, request: web.Request, params: dict[str, Any]) -> web.Response:
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
        order = self.place(
            client_id=client_id,
            side=side,
            quantity=quantity,
            price=price,
            time_in_force=str(params.get("timeInForce") or "GTC"),
            post_only=post_only,
            reduce_only=reduce_only,
        )
        return web.json_response(self.order_json(order))

    def _lookup(self, params: dict[str, Any]) -> EngineOrder | None:
        client_id = params.get("clientId")
        return self.lookup(params.get("orderId"), None if client_id in (None, "") else int(str(client_id)))

    @signed
    async def _h_cancel(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._lookup(params)
        if order is None or not self.end_order(order, CANCELLED):
            return self._error(404, "RESOURCE_NOT_FOUND", "Order not found")
        return web.json_response(self.order_json(order))

    @signed
    async def _h_order(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._lookup(params)
        if order is None or not order.is_open:
            return self._error(404, "RESOURCE_NOT_FOUND", "Order not found")
        return web.json_response(self.order_json(order))

    @signed
    async def _h_orders(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return web.json_response(self.open_orders(params.get("symbol")))

    @signed
    async def _h_history(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        try:
            limit, offset = int(params.get("limit", 100)), int(params.get("offset", 0))
        except ValueError:
            return self._error(400, "INVALID_CLIENT_REQUEST", "Invalid limit or offset")
        rows = [
            o
            for o in sorted(self.engine.orders.values(), key=lambda o: (o.created_ms, o.id), reverse=True)
            if not o.is_open and (not params.get("orderId") or str(o.id) == params["orderId"])
        ]
        return web.json_response([self.order_json(o) for o in rows[offset : offset + limit]])

    @signed
    async def _h_position(self, request: web.Request, params: dict[str, Any]) -> web.Response:
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

    @signed
    async def _h_collateral(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        body = fixture("http_collateral_balances_partial.json")
        total = self.wallet()
        body["netEquity"] = body["netEquityAvailable"] = fmt(total)
        body["collateral"] = [
            {"symbol": "USDC", "totalQuantity": fmt(total), "availableQuantity": fmt(total)}
        ]
        return web.json_response(body)

    # -- WebSocket ---------------------------------------------------------------------------

    def _on_frame(self, conn: MockConn, data: Any) -> None:
        if not isinstance(data, dict) or data.get("method") != "SUBSCRIBE":
            conn.send({"id": None, "error": {"code": 4001, "message": "Unknown method"}})
            return
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

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(
            request,
            self._on_frame,
            lambda conn: conn.send({"id": None, "error": {"code": 4000, "message": "Invalid JSON"}}),
        )


def build_parser() -> argparse.ArgumentParser:
    return venue_parser(
        "backpack",
        signatures="ED25519",
        fault_kinds=FAULT_KINDS,
        default_port=8788,
        market="<SYMBOL>_USDC_PERP",
    )


def main(argv: list[str] | None = None) -> int:
    return venue_main(
        build_parser(), argv, MockBackpackVenue, FIXTURES_DIR / "http_markets_sol_spot_and_perp.json"
    )


if __name__ == "__main__":
    raise SystemExit(main())
