"""A loopback Aster venue: Binance-futures-style REST + WebSocket on 127.0.0.1.

Messages are built from the captured ones in ``../shared/fixtures/aster/`` (exchangeInfo
symbol, order objects, depth snapshot and diffs, bookTicker, ORDER_TRADE_UPDATE, listenKey,
position risk, account, premium index). The venue VERIFIES every signed request as Aster does:
X-MBX-APIKEY must be the venue's key, ``signature`` must be the HMAC-SHA256 (hex) of the query
string before it (plus the body, if any) under the secret, and ``timestamp`` must lie within
``recvWindow`` of the venue's clock. A bad signature answers -1022, a stale timestamp -1021, an
unknown key -2015.

Wire facts the mock follows: a post-only order is time-in-force GTX; one that would take
liquidity is answered 200 with status EXPIRED (and an ORDER_TRADE_UPDATE x=EXPIRED), as the
Binance-style engines do; GET /fapi/v1/order answers for open and finished orders; cancelling an
order that is not open is -2011. The market stream is ``/ws`` with
``{"method":"SUBSCRIBE","params":[...],"id":n}``; depth diffs carry U/u/pu (one update id per
diff here, ``pu`` the previous diff's ``u``); the user stream is ``/ws/<listenKey>``; a
listenKey lives 60 minutes unless kept alive (PUT), and ``expire_listen_key`` ends it at once
with a ``listenKeyExpired`` event.

Run as its own process: ``python -m tests.mock_venues.aster_venue --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

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
from tests.mock_venues.engine import BUY, CANCELLED, EXPIRED, SELL, EngineFill, EngineOrder, PerpEngine, fmt
from tests.shared_paths import FIXTURES_DIR as SHARED_FIXTURES_DIR

FIXTURES_DIR = Path(os.environ.get("ASTER_FIXTURES_DIR", str(SHARED_FIXTURES_DIR / "aster")))
FAULT_KINDS = ENGINE_FAULT_KINDS
CONTROL_ACTIONS = {**ENGINE_CONTROL_ACTIONS, "expire_listen_key": set()}
LISTEN_KEY_TTL = 3600.0
STATUS_NAMES = {
    "open": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    CANCELLED: "CANCELED",
    EXPIRED: "EXPIRED",
}

fixture = fixture_loader(FIXTURES_DIR)


class MockAsterVenue(EngineVenue):
    """Loopback Aster venue with one USDT perpetual market."""

    name = "aster"
    CONTROL_ACTIONS = CONTROL_ACTIONS
    api_prefixes = ("/fapi/",)
    ORDER_EVENTS: ClassVar[dict[str, str]] = {
        "accepted": "NEW",
        "fill": "TRADE",
        CANCELLED: "CANCELED",
        EXPIRED: "EXPIRED",
    }
    IOC_REST_STATUS = EXPIRED  # an IOC's unfilled rest expires on Binance-style venues
    ENV_NAMES = ("ASTER_BASE_URL", "ASTER_WS_URL", "ASTER_API_KEY", "ASTER_SECRET_KEY")

    SYMBOL_FORMAT = "{base}USDT"
    DEPTH_STREAM = "{lower}@depth@100ms"
    TICKER_STREAM = "{lower}@bookTicker"
    FIRST_UPDATE_ID = 156_391_349_814

    def __init__(self, *, min_notional: Decimal | str = Decimal("5"), **market: Any) -> None:
        super().__init__(**{"min_quantity": Decimal("0.005"), **market})
        self.min_notional = Decimal(str(min_notional))
        self.api_key = secrets.token_hex(32)
        self.secret_key = secrets.token_hex(32)
        self.listen_keys: dict[str, float] = {}  # key -> expiry (venue clock)
        self.user_conns: dict[str, set[MockConn]] = {}
        self.keepalives = 0

    def new_engine(self, tick: Decimal, start_price: Decimal) -> PerpEngine:
        return PerpEngine(
            tick=tick,
            start_price=start_price,
            maker_fee=Decimal("0.0001"),
            taker_fee=Decimal("0.00035"),
            fee_quantum=Decimal("0.00000001"),
            first_order_id=22_542_179,
            first_trade_id=698_759,
        )

    def credentials(self) -> tuple[str, ...]:
        return self.api_key, self.secret_key

    # -- control (thread-safe) ---------------------------------------------------------------

    def expire_listen_key(self) -> int:
        """End every listenKey now: its sockets get ``listenKeyExpired`` and are closed."""

        def do() -> int:
            keys = list(self.listen_keys)
            for key in keys:
                del self.listen_keys[key]
                for conn in list(self.user_conns.pop(key, set())):
                    conn.send({"e": "listenKeyExpired", "E": now_ms(), "listenKey": key})
            return len(keys)

        return int(self.call(do))

    def venue_state(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "position": {"positionAmt": fmt(engine.position), "entryPrice": fmt(engine.entry_price)},
            "listen_keys": len(self.listen_keys),
            "keepalives": self.keepalives,
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    def depth_message(self, bids: list[list[str]], asks: list[list[str]], previous: int) -> Any:
        stamp = now_ms()
        data = fixture("ws_depth_update.json")
        data.update(E=stamp, T=stamp, s=self.symbol, U=self.update_id, u=self.update_id, pu=previous)
        data.update(b=bids, a=asks)
        return data

    def ticker_message(
        self, top: tuple[Decimal, Decimal], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
    ) -> Any:
        stamp = now_ms()
        ticker = fixture("ws_book_ticker_bbo.json")
        ticker.update(
            u=self.update_id,
            s=self.symbol,
            b=fmt(top[0]),
            B=fmt(bids[top[0]]),
            a=fmt(top[1]),
            A=fmt(asks[top[1]]),
            T=stamp,
            E=stamp,
        )
        return ticker

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
        raw = fixture("http_new_order_response_doc.json")
        for key in ("stopPrice", "activatePrice", "priceRate", "positionSide", "closePosition"):
            raw.pop(key, None)
        raw.update(
            clientOrderId=order.client_id,
            cumQty=fmt(order.executed),
            cumQuote=fmt(order.executed_quote),
            executedQty=fmt(order.executed),
            orderId=order.id,
            avgPrice=fmt(order.average_price),
            origQty=fmt(order.quantity),
            price=fmt(order.price),
            reduceOnly=order.reduce_only,
            side="BUY" if order.side == BUY else "SELL",
            status=STATUS_NAMES[order.status],
            symbol=self.symbol,
            timeInForce=order.extra["tif"],
            type="LIMIT",
            origType="LIMIT",
            updateTime=order.created_ms,
        )
        return raw

    def push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
        stamp = now_ms()
        message = fixture("ws_order_trade_update_doc.json")
        o = message["o"]
        o.update(
            s=self.symbol,
            c=order.client_id,
            S="BUY" if order.side == BUY else "SELL",
            o="LIMIT",
            f=order.extra["tif"],
            q=fmt(order.quantity),
            p=fmt(order.price),
            ap=fmt(order.average_price),
            sp="0",
            x=event,
            X=STATUS_NAMES[order.status],
            i=order.id,
            l=fmt(fill.quantity) if fill else "0",
            z=fmt(order.executed),
            L=fmt(fill.price) if fill else "0",
            n=fmt(fill.fee) if fill else "0",
            T=stamp,
            t=fill.trade_id if fill else 0,
            m=fill.is_maker if fill else False,
            R=order.reduce_only,
            wt="CONTRACT_PRICE",
            ot="LIMIT",
            ps="BOTH",
        )
        for key in ("AP", "cr"):
            o.pop(key, None)
        message.update(E=stamp, T=stamp)
        for conns in self.user_conns.values():
            for conn in list(conns):
                conn.send(message)

    def _error(self, code: int, message: str, status: int = 400) -> web.Response:
        return web.json_response({"code": code, "msg": message}, status=status)

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {"code": -1003, "msg": "Too many requests."}
        return {"code": -1001, "msg": "Internal error; unable to process your request."}

    # -- signatures --------------------------------------------------------------------------

    async def verify_request(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's params once key, signature and timestamp check out, else the error."""
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return self._error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query = request.query_string
        body = await request.text()
        total = f"{query}{body}"
        payload, _, signature = total.rpartition("&signature=")
        expected = hmac.new(self.secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature, expected):
            self.signature_failures += 1
            return self._error(-1022, "Signature for this request is not valid.")
        params = {**request.query, **(dict(await request.post()) if body else {})}
        params.pop("signature", None)
        try:
            age = time.time() * 1000 - int(params["timestamp"])
            window = int(params.get("recvWindow", 5000))
        except (KeyError, ValueError):
            return self._error(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        if not -1000 <= age <= window:
            return self._error(-1021, "Timestamp for this request is outside of the recvWindow.")
        self.signed_requests.append({"path": f"{request.method} {request.path}", "params": dict(params)})
        return {str(k): str(v) for k, v in params.items()}

    # -- REST handlers -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/ws", self._ws_market)
        r.add_get("/ws/{key}", self._ws_user)
        r.add_get("/fapi/v1/exchangeInfo", self._h_exchange_info)
        r.add_get("/fapi/v1/depth", self._h_depth)
        r.add_get("/fapi/v1/premiumIndex", self._h_premium_index)
        r.add_get("/fapi/v1/fundingInfo", self._h_funding_info)
        r.add_post("/fapi/v1/order", self._h_new_order)
        r.add_delete("/fapi/v1/order", self._h_cancel)
        r.add_get("/fapi/v1/order", self._h_query)
        r.add_get("/fapi/v1/openOrders", self._h_open_orders)
        r.add_get("/fapi/v2/positionRisk", self._h_position_risk)
        r.add_get("/fapi/v2/account", self._h_account)
        r.add_post("/fapi/v1/listenKey", self._h_listen_key)
        r.add_put("/fapi/v1/listenKey", self._h_listen_key)
        r.add_delete("/fapi/v1/listenKey", self._h_listen_key)

    async def _h_exchange_info(self, request: web.Request) -> web.Response:
        info = fixture("http_exchange_info_doc.json")
        item = fixture("http_exchange_info_symbol_btcusdt_perp.json")
        item.update(symbol=self.symbol, pair=self.symbol, baseAsset=self.base)
        for f in item["filters"]:
            if f["filterType"] == "PRICE_FILTER":
                f.update(tickSize=fmt(self.tick), minPrice=fmt(self.tick))
            elif f["filterType"] in ("LOT_SIZE", "MARKET_LOT_SIZE"):
                f.update(stepSize=fmt(self.step), minQty=fmt(self.min_quantity))
            elif f["filterType"] == "MIN_NOTIONAL":
                f.update(notional=fmt(self.min_notional))
        info["symbols"] = [item]
        return web.json_response(info)

    async def _h_depth(self, request: web.Request) -> web.Response:
        if request.query.get("symbol") != self.symbol:
            return self._error(-1121, "Invalid symbol.")
        bids, asks = self.engine.aggregate()
        snapshot = fixture("http_depth_snapshot_doc.json")
        stamp = now_ms()
        snapshot.update(
            lastUpdateId=self.update_id,
            E=stamp,
            T=stamp,
            bids=[[fmt(p), fmt(s)] for p, s in sorted(bids.items(), reverse=True)],
            asks=[[fmt(p), fmt(s)] for p, s in sorted(asks.items())],
        )
        return web.json_response(snapshot)

    async def _h_premium_index(self, request: web.Request) -> web.Response:
        item = fixture("http_premium_index.json")
        mark = fmt(self.engine.mark_price())
        item.update(symbol=self.symbol, markPrice=mark, indexPrice=mark, time=now_ms())
        return web.json_response(item)

    async def _h_funding_info(self, request: web.Request) -> web.Response:
        item = fixture("http_funding_info.json")
        rows = item if isinstance(item, list) else [item]
        for row in rows:
            row["symbol"] = self.symbol
        return web.json_response(rows[:1])

    @signed
    async def _h_new_order(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        if params.get("symbol") != self.symbol:
            return self._error(-1121, "Invalid symbol.")
        if params.get("side") not in ("BUY", "SELL") or params.get("type") != "LIMIT":
            return self._error(-1116, "Invalid orderType.")
        tif = params.get("timeInForce", "GTC")
        if tif not in ("GTC", "IOC", "GTX", "FOK"):
            return self._error(-1115, "Invalid timeInForce.")
        try:
            quantity, price = Decimal(params["quantity"]), Decimal(params["price"])
        except (KeyError, ArithmeticError):
            return self._error(-1102, "Mandatory parameter was not sent, was empty/null, or malformed.")
        if quantity <= 0 or quantity % self.step != 0:
            return self._error(-1111, "Precision is over the maximum defined for this asset.")
        if price <= 0 or price % self.tick != 0:
            return self._error(-4014, "Price not increased by tick size.")
        side, reduce_only = (BUY if params["side"] == "BUY" else SELL), params.get("reduceOnly") == "true"
        if quantity < self.min_quantity:
            return self._error(-4003, f"Quantity less than minimum quantity {fmt(self.min_quantity)}.")
        if quantity * price < self.min_notional and not reduce_only:
            return self._error(-4164, f"Order's notional must be no smaller than {fmt(self.min_notional)}")
        if reduce_only and not self.engine.reduces(side):
            return self._error(-2022, "ReduceOnly Order is rejected.")
        client_id = params.get("newClientOrderId") or f"mock{secrets.token_hex(6)}"
        if any(o.client_id == client_id for o in self.engine.orders.values()):
            return self._error(-4015, "Client order id is not valid.")
        order = self.place(  # a GTX order that would take expires unfilled
            client_id=client_id,
            side=side,
            quantity=quantity,
            price=price,
            time_in_force="IOC" if tif in ("IOC", "FOK") else "GTC",
            post_only=tif == "GTX",
            reduce_only=reduce_only,
            extra={"tif": tif},
        )
        return web.json_response(self.order_json(order))

    def _lookup(self, params: dict[str, Any]) -> EngineOrder | None:
        return self.lookup(params.get("orderId"), params.get("origClientOrderId") or None)

    @signed
    async def _h_cancel(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._lookup(params)
        if order is None or not self.end_order(order, CANCELLED):
            return self._error(-2011, "Unknown order sent.")
        return web.json_response(self.order_json(order))

    @signed
    async def _h_query(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._lookup(params)
        if order is None:
            return self._error(-2013, "Order does not exist.")
        return web.json_response(self.order_json(order))

    @signed
    async def _h_open_orders(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return web.json_response(self.open_orders(params.get("symbol")))

    @signed
    async def _h_position_risk(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        (item,) = fixture("http_position_risk_v3_doc.json")
        engine = self.engine
        item.update(
            symbol=self.symbol,
            positionAmt=fmt(engine.position),
            entryPrice=fmt(engine.entry_price),
            markPrice=fmt(engine.mark_price()),
            unRealizedProfit=fmt(engine.unrealized()),
            updateTime=now_ms(),
        )
        return web.json_response([item])

    @signed
    async def _h_account(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        account = fixture("http_account_v3_doc.json")
        wallet = self.wallet()
        unrealized = self.engine.unrealized()
        account.update(
            totalWalletBalance=fmt(wallet),
            totalUnrealizedProfit=fmt(unrealized),
            totalMarginBalance=fmt(wallet + unrealized),
            availableBalance=fmt(wallet),
            assets=[],
            positions=[],
        )
        return web.json_response(account)

    async def _h_listen_key(self, request: web.Request) -> web.Response:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return self._error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        now = time.time()
        live = [key for key, expiry in self.listen_keys.items() if expiry > now]
        if request.method == "POST":
            key = live[0] if live else secrets.token_hex(32)
            self.listen_keys[key] = now + LISTEN_KEY_TTL
            return web.json_response({"listenKey": key})
        if not live:
            return self._error(-1125, "This listenKey does not exist.")
        if request.method == "PUT":
            self.keepalives += 1
            self.listen_keys[live[0]] = now + LISTEN_KEY_TTL
        else:
            del self.listen_keys[live[0]]
        return web.json_response({})

    # -- WebSocket ---------------------------------------------------------------------------

    def _on_market_frame(self, conn: MockConn, data: Any) -> None:
        if not isinstance(data, dict) or data.get("method") != "SUBSCRIBE":
            conn.send({"code": 1, "msg": "Invalid request", "id": None})
            return
        for stream in data.get("params") or []:
            self.subscribe(conn, str(stream))
        conn.send({"result": None, "id": data.get("id")})

    async def _ws_market(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(
            request, self._on_market_frame, lambda conn: conn.send({"code": 3, "msg": "Invalid JSON"})
        )

    async def _ws_user(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if self.listen_keys.get(key, 0.0) <= time.time():
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        return await self.serve_ws(
            request,
            on_open=lambda conn: self.user_conns.setdefault(key, set()).add(conn),
            on_close=lambda conn: self.user_conns.get(key, set()).discard(conn),
        )


def build_parser() -> argparse.ArgumentParser:
    return venue_parser(
        "aster", signatures="HMAC-SHA256", fault_kinds=FAULT_KINDS, default_port=8789, market="<SYMBOL>USDT"
    )


def main(argv: list[str] | None = None) -> int:
    return venue_main(
        build_parser(), argv, MockAsterVenue, FIXTURES_DIR / "http_exchange_info_symbol_btcusdt_perp.json"
    )


if __name__ == "__main__":
    raise SystemExit(main())
