"""A loopback GRVT venue: REST + two JSON-RPC WebSockets on 127.0.0.1 in GRVT's wire shapes.

Messages are built from the captured ones in ``../shared/fixtures/grvt/`` (instrument, order
objects, create-order answer, fills, positions, account summary, ticker, book and mini-ticker
feeds, error bodies: loaded as templates, values filled in). What the venue checks, as GRVT does:

* Sessions: ``POST /auth/api_key/login`` with the right API key answers a ``gravity`` cookie
  (Set-Cookie with an expiry) and ``X-Grvt-Account-Id``; every private request and the trades
  socket's handshake must carry both, else 401 with code 1000. ``expire_sessions`` forgets the
  issued cookies (a venue that logs everyone out).
* Orders: the EIP-712 signature of every ``create_order`` is verified by
  :mod:`tests.mock_venues.grvt_signing` (signer recovered with eth_account, chain id, v/r/s shape)
  and so is its expiry: an expiration already past answers 2001, one beyond 30 days 2008. A
  resting order is cancelled with reject reason EXPIRED once its expiration passes on the
  venue's clock (``advance_clock`` moves that clock forward, so a test sees what a one-day
  expiry does to a take-profit a day later). A post-only order that would take is REJECTED with
  FAIL_POST_ONLY on the streams (the answer itself is PENDING, as captured), a reduce-only order
  that would not reduce answers 2401, an active order's client id again 2012, off-tick 2064,
  a size finer than the minimum 2065, below it 2062.
* Streams: ``/market/ws/full`` serves ``v1.book.d`` (a snapshot with sequence 0 on subscribe,
  then changed levels numbered on) and ``v1.mini.d`` (best bid/ask); ``/trades/ws/full``
  serves ``v1.order``, ``v1.state``, ``v1.fill`` and ``v1.position`` for ``<account>-<instrument>``.
  ``inject_book_gap`` skips book deltas, ``inject_private_gap`` skips private messages (their
  sequence numbers still advance, so a client sees the gap).

``GET /_mock/state`` lists orders flat (``clientOrderId``, ``orderId``, ``side`` buy/sell,
``price``, ``size``, ``tradedSize``, GRVT's ``status`` and ``rejectReason``, ``reduceOnly``,
``postOnly``, ``timeInForce`` GTT/IOC, ``expiration``), the position (``size``, ``entryPrice``),
and ``signed_requests`` as ``{"path": "create_order"|"cancel_order", "params": {...}}`` with
``clientOrderId``, ``orderId`` and ``reduceOnly`` flattened out for tests.

Run as its own process: ``python -m tests.mock_venues.grvt_venue --help`` (same state and
control endpoints, ready and .env files and fault options as the other mocks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from tests.mock_venues.base import (
    ENGINE_CONTROL_ACTIONS,
    ENGINE_FAULT_KINDS,
    EngineVenue,
    MockConn,
    fixture_loader,
    venue_main,
    venue_parser,
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
    fmt,
)
from tests.mock_venues.grvt_signing import Account, SignatureRefused, SigningInstrument, verify_order
from tests.shared_paths import FIXTURES_DIR as SHARED_FIXTURES_DIR

FIXTURES_DIR = Path(os.environ.get("GRVT_FIXTURES_DIR", str(SHARED_FIXTURES_DIR / "grvt")))
fixture = fixture_loader(FIXTURES_DIR)

NANOS = 1_000_000_000
SUB_ACCOUNT_ID = "2147050003876484"  # the captured messages' sub-account
MAIN_ACCOUNT_ID = "0x42c9f56f2c9da534f64b8806d64813b29c62a01d"
CHAIN_ID = 326  # GRVT_ENV=testnet
INSTRUMENT_HASH = "0x030401"
PRIVATE_STREAMS = ("v1.order", "v1.state", "v1.fill", "v1.position")
CONTROL_ACTIONS = {
    **ENGINE_CONTROL_ACTIONS,
    "expire_order": {"client_id"},
    "advance_clock": {"seconds"},
    "expire_sessions": set(),
    "inject_private_gap": {"n"},
}


class MockGrvtVenue(EngineVenue):
    """Loopback GRVT venue with one USDT perpetual."""

    name = "grvt"
    CONTROL_ACTIONS = CONTROL_ACTIONS
    fault_kinds = ENGINE_FAULT_KINDS
    api_prefixes = ("/full/", "/auth/")
    ORDER_EVENTS: ClassVar[dict[str, str]] = {
        "accepted": "accepted",
        "fill": "fill",
        CANCELLED: "cancelled",
        EXPIRED: "expired",
    }
    SYMBOL_FORMAT = "{base}_USDT_Perp"
    DEPTH_STREAM = "v1.book.d:{symbol}"
    TICKER_STREAM = "v1.mini.d:{symbol}"
    WS_PATH = "/market/ws/full"
    FIRST_UPDATE_ID = 1_061_717
    ENV_NAMES = (
        "GRVT_ENV",
        "GRVT_EDGE_URL",
        "GRVT_TRADES_URL",
        "GRVT_MARKET_DATA_URL",
        "GRVT_MARKET_DATA_WS_URL",
        "GRVT_TRADES_WS_URL",
        "GRVT_TRADING_ACCOUNT_ID",
        "GRVT_API_KEY",
        "GRVT_PRIVATE_KEY",
    )

    def __init__(
        self,
        *,
        book_levels: int = 10,
        level_size: Decimal | str = Decimal("0.5"),
        cookie_lifetime: float = 3600.0,
        **market: Any,
    ) -> None:
        self.book_levels, self.level_size = book_levels, Decimal(str(level_size))
        super().__init__(**{"min_quantity": Decimal("0.01"), "step_size": Decimal("0.01"), **market})
        self.api_key = secrets.token_hex(16)
        self.private_key = "0x" + secrets.token_hex(32)
        self.signer = Account.from_key(self.private_key).address
        self.cookie_lifetime = cookie_lifetime
        self.sessions: dict[str, float] = {}
        self.clock_offset_ns = 0
        self.mini_sequence = 0
        self.private_sequence = dict.fromkeys(PRIVATE_STREAMS, 0)
        self._private_gaps_pending = 0
        self.logins = 0
        self.expired_refusals = 0
        self.unauthenticated = 0
        self._sweeper: asyncio.Task[None] | None = None

    def new_engine(self, tick: Decimal, start_price: Decimal) -> PerpEngine:
        return PerpEngine(
            tick=tick,
            start_price=start_price,
            levels=self.book_levels,
            level_size=self.level_size,
            maker_fee=Decimal("-0.000001"),  # the captured maker fill earned a rebate
            taker_fee=Decimal("0.00045"),  # the captured taker fill's fee_rate 0.045 %
            first_order_id=int("0101010503a12f6e0000000077000000", 16),
            first_trade_id=74_150_425,
        )

    def credentials(self) -> tuple[str, ...]:
        return SUB_ACCOUNT_ID, self.api_key, self.private_key

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.WS_PATH}"

    @property
    def trades_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/trades/ws/full"

    def env(self) -> dict[str, str]:
        base = self.base_url
        values = ("testnet", base, base, base, self.ws_url, self.trades_ws_url, *self.credentials())
        return dict(zip(self.ENV_NAMES, values, strict=True))

    def now_ns(self) -> int:
        """The venue's clock (``advance_clock`` moves it forward)."""
        return time.time_ns() + self.clock_offset_ns

    # -- control (thread-safe) ---------------------------------------------------------------

    def expire_order(self, client_id: str) -> bool:
        """End one of our open orders as the venue does when its signature expires."""
        return bool(self.call(lambda: self._expire(self._by_client_id(str(client_id)))))

    def advance_clock(self, seconds: float) -> int:
        """Move the venue's clock forward; resting orders whose expiration passed are cancelled
        (reject reason EXPIRED). Returns how many expired."""

        def do() -> int:
            self.clock_offset_ns += int(float(seconds) * NANOS)
            return self._sweep()

        return int(self.call(do))

    def order_status(self, client_id: str) -> tuple[str, str] | None:
        """(status, reject reason) of our newest order with this client id, in GRVT's words."""

        def do() -> tuple[str, str] | None:
            order = self._by_client_id(str(client_id))
            return None if order is None else self.grvt_status(order)

        return self.call(do)  # type: ignore[no-any-return]

    def expire_sessions(self) -> int:
        """Forget every session cookie (the next private request answers 1000)."""

        def do() -> int:
            count = len(self.sessions)
            self.sessions.clear()
            return count

        return int(self.call(do))

    def inject_private_gap(self, n: int = 1) -> None:
        """Skip the next ``n`` private stream messages (their sequence numbers still advance)."""
        self.call(lambda: setattr(self, "_private_gaps_pending", self._private_gaps_pending + int(n)))

    def clear_venue_faults(self) -> None:
        super().clear_venue_faults()
        self._private_gaps_pending = 0

    def state_now(self) -> dict[str, Any]:
        state = super().state_now()
        state["orders"] = [self._flat(o) for o in self.engine.orders.values()]
        return state

    def venue_state(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "position": {"size": fmt(engine.position), "entryPrice": fmt(engine.entry_price)},
            "logins": self.logins,
            "sessions": len(self.sessions),
            "expired_refusals": self.expired_refusals,
            "unauthenticated": self.unauthenticated,
            "venue_time_ns": self.now_ns(),
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    # -- orders in GRVT's words --------------------------------------------------------------

    @staticmethod
    def venue_order_id(order: EngineOrder) -> str:
        return f"0x{order.id:032x}"

    @staticmethod
    def grvt_status(order: EngineOrder) -> tuple[str, str]:
        """(status, reject_reason) of an engine order."""
        reason = str(order.extra.get("reason") or "UNSPECIFIED")
        if order.status in ("open", "partially_filled"):
            return "OPEN", "UNSPECIFIED"
        if order.status == FILLED:
            return "FILLED", "UNSPECIFIED"
        if reason == "FAIL_POST_ONLY":
            return "REJECTED", reason
        return "CANCELLED", reason

    def _flat(self, order: EngineOrder) -> dict[str, Any]:
        status, reason = self.grvt_status(order)
        return {
            "clientOrderId": order.client_id,
            "orderId": self.venue_order_id(order),
            "side": order.side,
            "price": fmt(order.price),
            "size": fmt(order.quantity),
            "tradedSize": fmt(order.executed),
            "status": status,
            "rejectReason": reason,
            "reduceOnly": order.reduce_only,
            "postOnly": order.post_only,
            "timeInForce": order.time_in_force,
            "expiration": order.extra.get("expiration"),
        }

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
        raw = fixture("ws_order_open.json")["feed"]
        status, reason = self.grvt_status(order)
        update_ns = str(order.extra.get("update_ns") or order.created_ms * 1_000_000)
        raw.update(
            order_id=self.venue_order_id(order),
            sub_account_id=SUB_ACCOUNT_ID,
            time_in_force="IMMEDIATE_OR_CANCEL" if order.time_in_force == "IOC" else "GOOD_TILL_TIME",
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            legs=[
                {
                    "instrument": self.symbol,
                    "size": fmt(order.quantity),
                    "limit_price": fmt(order.price),
                    "is_buying_asset": order.side == BUY,
                }
            ],
            signature=order.extra.get("signature", raw["signature"]),
        )
        raw["metadata"].update(client_order_id=order.client_id, create_time=str(order.created_ms * 1_000_000))
        raw["state"] = {
            "status": status,
            "reject_reason": reason,
            "book_size": [fmt(order.remaining if order.is_open else Decimal(0))],
            "traded_size": [fmt(order.executed)],
            "update_time": update_ns,
            "avg_fill_price": [fmt(order.average_price)],
        }
        return raw

    def _feed(self, stream: str, feed: Any) -> dict[str, Any]:
        """A private feed message with the stream's next sequence number (a pending gap skips it)."""
        previous = self.private_sequence[stream]
        self.private_sequence[stream] = previous + 1
        return {
            "stream": stream,
            "selector": f"{SUB_ACCOUNT_ID}-{self.symbol}",
            "sequence_number": str(previous + 1),
            "feed": feed,
            "prev_sequence_number": str(previous),
        }

    def _push_private(self, stream: str, feed: Any) -> None:
        message = self._feed(stream, feed)
        if self._private_gaps_pending > 0:
            self._private_gaps_pending -= 1
            self._count("private_gap")
            return
        self.broadcast(f"{stream}:{SUB_ACCOUNT_ID}", message)

    def push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
        order.extra["update_ns"] = self.now_ns()
        if event == "cancelled" and not order.extra.get("reason"):
            order.extra["reason"] = "IOC_CANCEL" if order.time_in_force == "IOC" else "CLIENT_CANCEL"
        if event == "expired" and not order.extra.get("reason"):
            order.extra["reason"] = "EXPIRED"
        if fill is not None:
            feed = fixture("ws_fill.json")["feed"]
            feed.update(
                event_time=str(self.now_ns()),
                sub_account_id=SUB_ACCOUNT_ID,
                instrument=self.symbol,
                is_buyer=order.side == BUY,
                is_taker=not fill.is_maker,
                size=fmt(fill.quantity),
                price=fmt(fill.price),
                fee=fmt(fill.fee),
                fee_rate=fmt((self.engine.maker_fee if fill.is_maker else self.engine.taker_fee) * 100),
                trade_id=f"{fill.trade_id}-1",
                order_id=self.venue_order_id(order),
                client_order_id=order.client_id,
                signer=self.signer.lower(),
            )
            self._push_private("v1.fill", feed)
        order_feed = self.order_json(order)
        self._push_private("v1.order", order_feed)
        self._push_private(
            "v1.state",
            {
                "order_id": order_feed["order_id"],
                "client_order_id": order.client_id,
                "order_state": order_feed["state"],
            },
        )
        if fill is not None:
            self._push_private("v1.position", self._position_json())

    def _position_json(self) -> dict[str, Any]:
        engine = self.engine
        raw = fixture("ws_position.json")["feed"]
        raw.update(
            event_time=str(self.now_ns()),
            sub_account_id=SUB_ACCOUNT_ID,
            instrument=self.symbol,
            size=fmt(engine.position),
            notional=fmt(abs(engine.position) * engine.mark_price()),
            entry_price=fmt(engine.entry_price),
            mark_price=fmt(engine.mark_price()),
            unrealized_pnl=fmt(engine.unrealized()),
            realized_pnl=fmt(engine.realized),
            total_pnl=fmt(engine.realized + engine.unrealized()),
            cumulative_fee=fmt(engine.fees),
        )
        return raw

    def _by_client_id(self, client_id: str) -> EngineOrder | None:
        matches = [o for o in self.engine.orders.values() if o.client_id == client_id]
        matches.sort(key=lambda o: (o.is_open, o.created_ms, o.id))
        return matches[-1] if matches else None

    def _by_order_id(self, order_id: str) -> EngineOrder | None:
        try:
            return self.engine.orders.get(int(order_id, 16))
        except ValueError:
            return None

    def _expire(self, order: EngineOrder | None) -> bool:
        if order is None or not order.is_open:
            return False
        order.extra["reason"] = "EXPIRED"
        return self.end_order(order, EXPIRED)

    def _sweep(self) -> int:
        """Cancel (reason EXPIRED) every resting order whose signature expired."""
        now = self.now_ns()
        due = [
            o
            for o in self.engine.orders.values()
            if o.is_open and int(o.extra.get("expiration", now + 1)) <= now
        ]
        return sum(self._expire(o) for o in due)

    async def _sweep_forever(self, app: web.Application) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(0.2)
                self._sweep()

        self._sweeper = asyncio.ensure_future(loop())

    async def _stop_sweeper(self, app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # -- book on the wire --------------------------------------------------------------------

    def _levels(
        self, levels: list[list[str]] | dict[Decimal, Decimal], reverse: bool
    ) -> list[dict[str, Any]]:
        pairs = (
            [(p, s) for p, s in sorted(levels.items(), reverse=reverse)]
            if isinstance(levels, dict)
            else [(Decimal(p), Decimal(s)) for p, s in levels]
        )
        return [{"price": fmt(p), "size": fmt(s), "num_orders": 1 if s else 0} for p, s in pairs]

    def depth_message(self, bids: list[list[str]], asks: list[list[str]], previous: int) -> Any:
        message = fixture("ws_book_delta_doc.json")
        message.update(
            selector=f"{self.symbol}@{self._book_rate}",
            sequence_number=str(self.update_id),
            prev_sequence_number=str(previous),
        )
        message["feed"].update(
            event_time=str(self.now_ns()),
            instrument=self.symbol,
            bids=self._levels(bids, True),
            asks=self._levels(asks, False),
        )
        return message

    _book_rate = "100"
    _mini_rate = "100"

    def _book_snapshot(self) -> dict[str, Any]:
        bids, asks = self._published
        message = fixture("ws_book_snapshot.json")
        message.update(
            stream="v1.book.d",
            selector=f"{self.symbol}@{self._book_rate}",
            sequence_number="0",
            prev_sequence_number="0",
        )
        message["feed"].update(
            event_time=str(self.now_ns()),
            instrument=self.symbol,
            bids=self._levels(bids, True),
            asks=self._levels(asks, False),
        )
        return message

    def _mini_fields(
        self, top: tuple[Decimal, Decimal], bids: Mapping[Decimal, Decimal], asks: Mapping[Decimal, Decimal]
    ) -> dict[str, Any]:
        return {
            "event_time": str(self.now_ns()),
            "instrument": self.symbol,
            "mid_price": fmt((top[0] + top[1]) / 2),
            "best_bid_price": fmt(top[0]),
            "best_bid_size": fmt(bids[top[0]]),
            "best_ask_price": fmt(top[1]),
            "best_ask_size": fmt(asks[top[1]]),
        }

    def ticker_message(
        self, top: tuple[Decimal, Decimal], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
    ) -> Any:
        message = fixture("ws_mini_ticker_delta.json")
        previous = self.mini_sequence
        self.mini_sequence += 1
        message.update(
            selector=f"{self.symbol}@{self._mini_rate}",
            sequence_number=str(self.mini_sequence),
            prev_sequence_number=str(previous),
            feed=self._mini_fields(top, bids, asks),
        )
        return message

    def _mini_snapshot(self) -> dict[str, Any]:
        bids, asks = self._published
        top = (max(bids), min(asks))
        message = fixture("ws_mini_ticker_snapshot_bbo.json")
        mark = fmt(self.engine.mark_price())
        message.update(
            stream="v1.mini.d",
            selector=f"{self.symbol}@{self._mini_rate}",
            sequence_number="0",
            prev_sequence_number="0",
        )
        message["feed"].update(
            mark_price=mark, index_price=mark, last_price=mark, **self._mini_fields(top, bids, asks)
        )
        return message

    # -- errors ------------------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {"request_id": 1, "code": code, "message": message, "status": status}, status=status
        )

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {
                "request_id": 1,
                "code": 1006,
                "message": "You have surpassed the allocated rate limit for your tier",
                "status": 429,
            }
        return {"request_id": 1, "code": 1002, "message": "Internal Server Error", "status": status}

    # -- sessions ----------------------------------------------------------------------------

    def _session_ok(self, headers: Mapping[str, str], cookies: Mapping[str, Any]) -> bool:
        token = cookies.get("gravity")
        expires = self.sessions.get(str(token)) if token else None
        return (
            expires is not None
            and expires > time.time()
            and headers.get("X-Grvt-Account-Id") == MAIN_ACCOUNT_ID
        )

    async def verify_request(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The JSON body of an authenticated private request, else the venue's refusal."""
        if not self._session_ok(request.headers, request.cookies):
            self.unauthenticated += 1
            return self._error(401, 1000, "You need to authenticate prior to using this functionality")
        try:
            body = json.loads(await request.text() or "{}")
        except json.JSONDecodeError:
            return self._error(400, 1003, "Request could not be processed due to malformed syntax")
        if not isinstance(body, dict):
            return self._error(400, 1003, "Request could not be processed due to malformed syntax")
        account = body.get("sub_account_id", (body.get("order") or {}).get("sub_account_id"))
        if str(account) != SUB_ACCOUNT_ID:
            return self._error(403, 2003, "Order sub account does not match logged in user")
        return body

    async def _h_login(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or body.get("api_key") != self.api_key:
            return self._error(401, 1000, "You need to authenticate prior to using this functionality")
        token = secrets.token_urlsafe(24)
        expires = time.time() + self.cookie_lifetime
        self.sessions[token] = expires
        self.logins += 1
        stamp = format_datetime(datetime.fromtimestamp(expires, timezone.utc), usegmt=True)
        response = web.json_response({"status": "success"})
        response.headers["Set-Cookie"] = f"gravity={token}; Path=/; Expires={stamp}; HttpOnly; Secure"
        response.headers["X-Grvt-Account-Id"] = MAIN_ACCOUNT_ID
        return response

    # -- REST handlers -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/market/ws/full", self._ws_market)
        r.add_get("/trades/ws/full", self._ws_trades)
        r.add_post("/auth/api_key/login", self._h_login)
        r.add_post("/full/v1/instruments", self._h_instruments)
        r.add_post("/full/v1/ticker", self._h_ticker)
        r.add_post("/full/v1/create_order", self._h_create)
        r.add_post("/full/v1/cancel_order", self._h_cancel)
        r.add_post("/full/v1/order", self._h_order)
        r.add_post("/full/v1/open_orders", self._h_open_orders)
        r.add_post("/full/v1/order_history", self._h_history)
        r.add_post("/full/v1/positions", self._h_positions)
        r.add_post("/full/v1/account_summary", self._h_account)
        app.on_startup.append(self._sweep_forever)
        app.on_cleanup.append(self._stop_sweeper)

    def _instrument(self) -> dict[str, Any]:
        raw = fixture("http_instrument_btc_perp.json")
        raw.pop("min_notional", None)  # as on the captured AAVE instrument: no notional minimum
        raw.update(
            instrument=self.symbol,
            instrument_hash=INSTRUMENT_HASH,
            base=self.base,
            tick_size=fmt(self.tick),
            min_size=fmt(self.min_quantity),
        )
        return raw

    async def _h_instruments(self, request: web.Request) -> web.Response:
        return web.json_response({"result": [self._instrument()]})

    async def _h_ticker(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or body.get("instrument") != self.symbol:
            return self._error(400, 3000, "Instrument is invalid")
        ticker = fixture("http_ticker.json")
        bid, ask = self.engine.top()
        mark = fmt(self.engine.mark_price())
        ticker["result"].update(
            event_time=str(self.now_ns()),
            instrument=self.symbol,
            mark_price=mark,
            index_price=mark,
            mid_price=mark,
            best_bid_price=fmt(bid),
            best_ask_price=fmt(ask),
            funding_rate="0.01",
            funding_interval_hours=8,
        )
        return web.json_response(ticker)

    def _record(self, path: str, body: Mapping[str, Any], order: Mapping[str, Any] | None = None) -> None:
        flat: dict[str, Any] = dict(body)
        if order is not None:
            flat = {
                "clientOrderId": (order.get("metadata") or {}).get("client_order_id"),
                "reduceOnly": "true" if order.get("reduce_only") is True else "false",
                "postOnly": order.get("post_only") is True,
                "timeInForce": order.get("time_in_force"),
                "expiration": (order.get("signature") or {}).get("expiration"),
            }
        else:
            flat = {"orderId": body.get("order_id", ""), "clientOrderId": body.get("client_order_id", "")}
        self.signed_requests.append({"path": path, "params": flat})

    async def _h_create(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        order = body.get("order")
        if not isinstance(order, dict):
            return self._error(400, 1003, "Request could not be processed due to malformed syntax")
        try:
            verify_order(
                order,
                chain_id=CHAIN_ID,
                instruments={self.symbol: SigningInstrument(self.symbol, int(INSTRUMENT_HASH, 16), 9)},
                expected_signer=self.signer,
                now_ns=self.now_ns(),
            )
        except SignatureRefused as refused:
            if refused.code in (2001, 2008):
                self.expired_refusals += 1
            elif refused.code not in (2061, 2064, 2065):
                self.signature_failures += 1
            return self._error(refused.status, refused.code, refused.message)
        self._record("create_order", body, order)
        legs = order.get("legs") or []
        client_id = str((order.get("metadata") or {}).get("client_order_id") or "")
        try:
            (leg,) = legs
            quantity, price = Decimal(str(leg["size"])), Decimal(str(leg["limit_price"]))
        except (ValueError, KeyError, TypeError, InvalidOperation):
            return self._error(400, 2042, "Orderbook Orders must contain only one leg")
        if not client_id.isdigit() or int(client_id) >= 2**64:
            return self._error(400, 2011, "Client Order ID should be supplied when creating an order")
        if any(o.client_id == client_id and o.is_open for o in self.engine.orders.values()):
            return self._error(400, 2012, "Client Order ID overlaps with existing active order")
        tif = order.get("time_in_force")
        if tif not in ("GOOD_TILL_TIME", "IMMEDIATE_OR_CANCEL") or order.get("is_market") is True:
            return self._error(400, 2030, "Orderbook Orders must have a TimeInForce of GTT/IOC/FOK")
        post_only, reduce_only = order.get("post_only") is True, order.get("reduce_only") is True
        if post_only and tif != "GOOD_TILL_TIME":
            return self._error(400, 2032, "Post Only can only be set to true for GTT/AON orders")
        if price <= 0 or price % self.tick != 0:
            return self._error(400, 2064, "Invalid limit price tick")
        if quantity < self.min_quantity:
            return self._error(400, 2062, "Order size smaller than min size")
        if quantity % self.step != 0:
            return self._error(400, 2065, "Order size too granular")
        side = BUY if leg.get("is_buying_asset") is True else SELL
        if reduce_only and not self.engine.reduces(side):
            code = 2400 if self.engine.position == 0 else 2401
            return self._error(400, code, "Reduce only order must not increase position size")
        fields: dict[str, Any] = {
            "client_id": client_id,
            "side": side,
            "quantity": quantity,
            "price": price,
            "time_in_force": "IOC" if tif == "IMMEDIATE_OR_CANCEL" else "GTC",
            "post_only": post_only,
            "reduce_only": reduce_only,
        }
        fields["extra"] = {
            "signature": order["signature"],
            "expiration": str(order["signature"]["expiration"]),
        }
        if post_only and self.engine.would_take(side, price):
            placed = self.engine.new_order(created_ms=int(self.now_ns() / 1_000_000), **fields)
            placed.extra["reason"] = "FAIL_POST_ONLY"
            placed.status = EXPIRED
            self.push_order("rejected", placed)
        else:
            placed = self.place(**fields)
        answer = fixture("http_create_order_response.json")
        answer["result"].update(self.order_json(placed), order_id="0x00")
        answer["result"]["state"] = fixture("http_create_order_response.json")["result"]["state"]
        answer["result"]["state"].update(book_size=[fmt(quantity)], update_time=str(self.now_ns()))
        return web.json_response(answer)

    async def _h_cancel(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        if not body.get("order_id") and not body.get("client_order_id"):
            return self._error(400, 3021, "Either order ID or client order ID must be supplied")
        self._record("cancel_order", body)
        order = (
            self._by_order_id(str(body["order_id"]))
            if body.get("order_id")
            else self._by_client_id(str(body["client_order_id"]))
        )
        if order is not None and order.is_open:
            order.extra["reason"] = "CLIENT_CANCEL"
            self.end_order(order, CANCELLED)
        return web.json_response({"result": {"ack": "true"}})  # GRVT acknowledges whatever it was

    async def _h_order(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        order = (
            self._by_order_id(str(body["order_id"]))
            if body.get("order_id")
            else self._by_client_id(str(body.get("client_order_id")))
        )
        if order is None:
            return self._error(404, 1004, "Data Not Found")
        return web.json_response({"result": self.order_json(order)})

    async def _h_open_orders(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        rows = [self.order_json(o) for o in self.engine.orders.values() if o.is_open]
        return web.json_response({"result": rows})

    async def _h_history(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        try:
            limit = int(body.get("limit") or 500)
            offset = int(body.get("cursor") or 0)
        except ValueError:
            return self._error(400, 1003, "Request could not be processed due to malformed syntax")
        finished = sorted(
            (o for o in self.engine.orders.values() if not o.is_open),
            key=lambda o: (o.created_ms, o.id),
            reverse=True,
        )
        page = finished[offset : offset + limit]
        more = offset + limit < len(finished)
        return web.json_response(
            {"result": [self.order_json(o) for o in page], "next": str(offset + limit) if more else ""}
        )

    async def _h_positions(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        rows = [self._position_json()] if self.engine.position != 0 else []
        return web.json_response({"result": rows})

    async def _h_account(self, request: web.Request) -> web.Response:
        body = await self.verify_request(request)
        if isinstance(body, web.Response):
            return body
        summary = fixture("http_account_summary.json")
        wallet = self.wallet()
        equity = wallet + self.engine.unrealized()
        summary["result"].update(
            event_time=str(self.now_ns()),
            sub_account_id=SUB_ACCOUNT_ID,
            unrealized_pnl=fmt(self.engine.unrealized()),
            total_equity=fmt(equity),
            available_balance=fmt(equity),
            total_cross_equity=fmt(equity),
            positions=[self._position_json()] if self.engine.position != 0 else [],
        )
        summary["result"]["spot_balances"][0].update(balance=fmt(wallet))
        return web.json_response(summary)

    # -- WebSockets --------------------------------------------------------------------------

    def _rpc_error(self, conn: MockConn, request_id: Any, code: int, message: str) -> None:
        conn.send(
            {
                "jsonrpc": "2.0",
                "error": {"code": code, "message": message},
                "id": request_id,
                "method": "subscribe",
            }
        )

    def _on_frame(self, conn: MockConn, data: Any, *, private: bool) -> None:
        if not isinstance(data, dict) or data.get("method") not in ("subscribe", "unsubscribe"):
            self._rpc_error(conn, data.get("id") if isinstance(data, dict) else None, 1003, "Unknown method")
            return
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        stream, selectors = str(params.get("stream")), params.get("selectors") or []
        request_id = data.get("id")
        if (stream in PRIVATE_STREAMS) != private or not isinstance(selectors, list) or len(selectors) != 1:
            self._rpc_error(
                conn, request_id, 1101, "Feed Format must be in the format of <primary>@<secondary>"
            )
            return
        selector = str(selectors[0])
        wanted = f"{SUB_ACCOUNT_ID}-{self.symbol}" if private else self.symbol
        if selector.split("@")[0] not in (wanted, SUB_ACCOUNT_ID):
            self._rpc_error(conn, request_id, 3000, "Instrument is invalid")
            return
        key = f"{stream}:{SUB_ACCOUNT_ID if private else self.symbol}"
        if data["method"] == "unsubscribe":
            conn.streams.discard(key)
            self.subscribers.get(key, set()).discard(conn)
            conn.send(
                {
                    "jsonrpc": "2.0",
                    "result": {"stream": stream, "unsubs": [selector]},
                    "id": request_id,
                    "method": "unsubscribe",
                }
            )
            return
        self.subscribe(conn, key)
        first = {
            "v1.book.d": self.update_id + 1,
            "v1.mini.d": self.mini_sequence + 1,
        }.get(stream, self.private_sequence.get(stream, 0) + 1)
        snapshots = 1 if stream in ("v1.book.d", "v1.mini.d", "v1.position") else 0
        conn.send(
            {
                "jsonrpc": "2.0",
                "result": {
                    "stream": stream,
                    "subs": [selector],
                    "unsubs": [],
                    "num_snapshots": [snapshots],
                    "first_sequence_number": [first],
                },
                "id": request_id,
                "method": "subscribe",
            }
        )
        if stream == "v1.book.d":
            conn.send(self._book_snapshot())
        elif stream == "v1.mini.d":
            conn.send(self._mini_snapshot())
        elif stream == "v1.position":
            message = self._feed("v1.position", self._position_json())
            self.private_sequence["v1.position"] -= 1  # a snapshot does not advance the feed
            message.update(sequence_number="0", prev_sequence_number="0")
            conn.send(message)

    async def _ws_market(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(
            request,
            lambda conn, data: self._on_frame(conn, data, private=False),
            lambda conn: self._rpc_error(
                conn, None, 1003, "Request could not be processed due to malformed syntax"
            ),
        )

    async def _ws_trades(self, request: web.Request) -> web.StreamResponse:
        if not self._session_ok(request.headers, request.cookies):
            self.unauthenticated += 1
            return self._error(401, 1000, "You need to authenticate prior to using this functionality")
        return await self.serve_ws(
            request,
            lambda conn, data: self._on_frame(conn, data, private=True),
            lambda conn: self._rpc_error(
                conn, None, 1003, "Request could not be processed due to malformed syntax"
            ),
        )


def build_parser() -> argparse.ArgumentParser:
    return venue_parser(
        "grvt",
        signatures="EIP-712",
        fault_kinds=ENGINE_FAULT_KINDS,
        default_port=8790,
        market="<BASE>_USDT_Perp",
    )


def main(argv: list[str] | None = None) -> int:
    return venue_main(build_parser(), argv, MockGrvtVenue, FIXTURES_DIR / "http_instrument_btc_perp.json")


if __name__ == "__main__":
    raise SystemExit(main())
