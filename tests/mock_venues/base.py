"""Machinery every loopback mock venue shares: its own thread and loop, REST fault injection,
WebSocket connections with writer queues, the ``/_mock/state`` and ``/_mock/control`` endpoints,
and the command line around them (ready file, .env file, signals).

A venue subclass adds its routes (``add_routes``), its truth (``state_now``) and its control
actions (``CONTROL_ACTIONS``: method name -> the JSON fields it takes); everything here behaves
the same on every venue, so a test that drives one mock by HTTP drives them all the same way.
Faults change only what is *delivered*, never the venue's own state.

Adding a venue
--------------
A CEX-style venue (REST answers with the order, a WebSocket pushes depth and order events)
subclasses :class:`EngineVenue`, which owns the matching engine, the order flow (place, match,
IOC rest, cancel, expire, look-up by id or client id), depth/ticker publishing with injectable
gaps, ``trade_through``/``inject_book_gap``/``best_bid_ask``, ``state_now``, fault bodies and the
signed-handler plumbing (``@signed``). The venue file keeps only its wire:

* ``name``, ``api_prefixes``, ``CONTROL_ACTIONS`` (start from ``ENGINE_CONTROL_ACTIONS``),
  ``fault_kinds`` (``ENGINE_FAULT_KINDS``), ``SYMBOL_FORMAT`` (``"{base}USDT"``),
  ``DEPTH_STREAM``/``TICKER_STREAM`` (``"{lower}@depth"``), ``WS_PATH``, ``FIRST_UPDATE_ID``,
  ``ORDER_EVENTS`` (``accepted``/``fill``/``cancelled``/``expired`` -> wire event name),
  ``IOC_REST_STATUS`` (what an IOC's unfilled rest becomes: CANCELLED or EXPIRED),
  ``ENV_NAMES`` (the .env variables ``env()`` returns, in order);
* ``new_engine(tick, start_price)``: the :class:`PerpEngine` with the venue's fees and id
  ranges; ``credentials()``: the throwaway key(s); an ``__init__`` only for the venue's extra
  knobs (its market defaults passed on to ``super().__init__``);
* ``verify_request(request)``: the params of a signed request, or the venue's error response
  (append to ``self.signed_requests``, bump ``self.signature_failures`` on a bad signature);
* ``order_json(order)`` and ``push_order(event, order, fill)``: the order object and the stream
  event in the venue's shape;
* ``depth_message(bids, asks, previous_id)`` and ``ticker_message(top, bids, asks)``: the book
  on the wire (broadcast on ``depth_stream``/``ticker_stream``);
* ``venue_state()`` (position in the venue's words, extra counters), ``fault_body(status)``,
  ``add_routes`` (handlers decorated with ``@signed`` get the params);
* a ``main`` that calls :func:`venue_main` with its parser (:func:`venue_parser`).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from tests.mock_venues.engine import CANCELLED, EXPIRED, EngineFill, EngineOrder, PerpEngine, fmt

#: Seeded fault kinds every mock offers (``set_fault_rates``, CLI ``--<kind>-rate``).
BASE_FAULT_KINDS = ("http_429", "http_5xx", "ws_drop")
BASE_CONTROL_ACTIONS: dict[str, set[str]] = {
    "drop_connections": set(),
    "hold_connections": {"hold"},
    "clear_faults": set(),
    "fail_next": {"n", "status"},
    "rate_limit_next": {"n", "retry_after"},
    "slow_next": {"n", "ms"},
    "set_fault_rates": {"seed", *BASE_FAULT_KINDS},
}


class MockConn:
    """One WebSocket client: frames are queued and written in order by one writer task."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[tuple[str, Callable[[], None] | None] | None] = asyncio.Queue()
        self.streams: set[str] = set()
        self.writer = asyncio.ensure_future(self._write_loop())

    def send(self, message: Any, before_write: Callable[[], None] | None = None) -> None:
        """Queue a frame (text as given: broken or padded frames; anything else as JSON);
        ``before_write`` runs right before it is written (timing marks of a benchmark)."""
        text = message if isinstance(message, str) else json.dumps(message)
        self.queue.put_nowait((text, before_write))

    async def _write_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None or self.ws.closed:
                return
            text, before_write = item
            if before_write is not None:
                before_write()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


class MockVenueBase:
    """A venue on 127.0.0.1 in its own thread; control methods are thread-safe."""

    name = "mock"
    fault_kinds: tuple[str, ...] = BASE_FAULT_KINDS
    CONTROL_ACTIONS: dict[str, set[str]] = BASE_CONTROL_ACTIONS
    #: REST paths under these prefixes are counted and faulted (never /_mock/ or the socket).
    api_prefixes: tuple[str, ...] = ("/api/",)

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, fault_seed: int = 7) -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._start_error: BaseException | None = None
        self.conns: set[MockConn] = set()
        self.subscribers: dict[str, set[MockConn]] = {}
        self.rest_calls: dict[str, int] = {}
        self._closing: set[asyncio.Future[Any]] = set()
        self._refusing = False
        self.refused_connections = 0
        self._rest_faults: list[tuple[int, float | None]] = []
        self._slow: list[float] = []
        self._fault_counts: dict[str, int] = dict.fromkeys((*self.fault_kinds, "slow_reply"), 0)
        self._fault_rates: dict[str, float] = dict.fromkeys(self.fault_kinds, 0.0)
        self._fault_seed = fault_seed
        self._rngs = self._seeded(fault_seed)

    # -- to be provided by the venue ---------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def state_now(self) -> dict[str, Any]:
        raise NotImplementedError

    async def on_stop(self) -> None:
        """End the venue's own background work; runs as the venue stops, before its
        connections close."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("venue not started")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Any:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._thread_main, name=f"mock-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"mock {self.name} venue did not start in time")
        if self._start_error is not None:
            raise RuntimeError(f"mock {self.name} venue failed to start") from self._start_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout)
        self._thread = None

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            app = web.Application(middlewares=[self._fault_middleware])
            app.router.add_get("/_mock/state", self._h_state)
            app.router.add_post("/_mock/control", self._h_control)
            self.add_routes(app)
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
            self.port = int(runner.addresses[0][1])
        except Exception as exc:  # start() re-raises it in the caller's thread
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()
        await self.on_stop()
        for conn in list(self.conns):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.ws.close()
        await runner.cleanup()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the venue loop and return its result (thread-safe)."""
        loop = self._loop
        if loop is None or self._thread is None or threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout=10)

    # -- WebSocket plumbing ------------------------------------------------------------------

    def open_conn(self, ws: web.WebSocketResponse) -> MockConn:
        conn = MockConn(ws)
        self.conns.add(conn)
        return conn

    def close_conn(self, conn: MockConn) -> None:
        self.conns.discard(conn)
        for stream in conn.streams:
            self.subscribers.get(stream, set()).discard(conn)
        conn.queue.put_nowait(None)

    def subscribe(self, conn: MockConn, stream: str) -> None:
        conn.streams.add(stream)
        self.subscribers.setdefault(stream, set()).add(conn)

    def broadcast(self, stream: str, message: Any) -> None:
        """Send to every subscriber of ``stream``; a drawn ws_drop loses it with the connections."""
        conns = list(self.subscribers.get(stream, ()))
        if not conns:
            return
        if self._roll("ws_drop"):
            self._drop_now()
            return
        for conn in conns:
            conn.send(message)

    def drop_connections(self) -> int:
        """Close every WebSocket connection (close code 1012); returns how many were open."""
        return int(self.call(self._drop_now))

    def hold_connections(self, hold: bool = True) -> int:
        """An outage: drop every WebSocket and refuse new ones (HTTP 503) until released with
        ``hold=False``. What is pushed meanwhile is lost, as on a real outage; REST still works."""

        def do() -> int:
            self._refusing = bool(hold)
            return self._drop_now() if hold else 0

        return int(self.call(do))

    def _drop_now(self) -> int:
        conns = list(self.conns)
        for conn in conns:
            self.close_conn(conn)
            task = asyncio.ensure_future(conn.ws.close(code=1012, message=b"restart"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if conns:
            self._count("ws_drop")
        return len(conns)

    # -- REST faults -------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """The next ``n`` API calls answer HTTP ``status`` without being handled."""
        self.call(lambda: self._rest_faults.extend([(int(status), None)] * int(n)))

    def rate_limit_next(self, n: int = 1, retry_after: float | None = 1.0) -> None:
        """The next ``n`` API calls answer 429 (with Retry-After unless None)."""
        self.call(lambda: self._rest_faults.extend([(429, retry_after)] * int(n)))

    def slow_next(self, n: int = 1, ms: float = 11_000.0) -> None:
        """Answer the next ``n`` API calls ``ms`` late (handled at once, as a slow network)."""
        self.call(lambda: self._slow.extend([float(ms) / 1000.0] * int(n)))

    def set_fault_rates(self, seed: int | None = None, **rates: float) -> None:
        """Draw faults at seeded random moments: ``rates`` maps fault kinds to a probability per
        eligible event (API request for http_*, pushed message for ws_drop and book gaps)."""
        unknown = sorted(set(rates) - set(self.fault_kinds))
        if unknown:
            raise ValueError(
                f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(self.fault_kinds)}"
            )
        for kind, rate in rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"rate for {kind} must be between 0 and 1, got {rate}")

        def do() -> None:
            self._fault_rates.update({k: float(v) for k, v in rates.items()})
            if seed is not None:
                self._fault_seed = int(seed)
                self._rngs = self._seeded(int(seed))

        self.call(do)

    def clear_faults(self) -> None:
        """Forget queued faults and set every rate to zero (counters are kept)."""

        def do() -> None:
            self._rest_faults.clear()
            self._slow.clear()
            self._fault_rates = dict.fromkeys(self.fault_kinds, 0.0)
            self.clear_venue_faults()

        self.call(do)

    def clear_venue_faults(self) -> None:
        """A venue's own queued faults (book gaps...), cleared with the rest."""

    def fault_counts(self) -> dict[str, int]:
        return dict(self.call(lambda: dict(self._fault_counts)))

    def _seeded(self, seed: int) -> dict[str, random.Random]:
        return {kind: random.Random(f"{seed}:{kind}") for kind in self.fault_kinds}

    def _roll(self, kind: str) -> bool:
        rate = self._fault_rates.get(kind, 0.0)
        return rate > 0.0 and self._rngs[kind].random() < rate

    def _count(self, kind: str) -> None:
        self._fault_counts[kind] = self._fault_counts.get(kind, 0) + 1

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        if not request.path.startswith(self.api_prefixes):
            if self._refusing and request.headers.get("Upgrade", "").lower() == "websocket":
                self.refused_connections += 1
                return web.json_response({"message": "stream unavailable (outage)"}, status=503)
            return await handler(request)
        key = f"{request.method} {request.path}"
        self.rest_calls[key] = self.rest_calls.get(key, 0) + 1
        if self._roll("http_429"):
            self._rest_faults.append((429, None))
        elif self._roll("http_5xx"):
            self._rest_faults.append((503, None))
        fault = self._rest_faults.pop(0) if self._rest_faults else None
        delay = self._slow.pop(0) if self._slow else 0.0
        if fault is None:
            response = await handler(request)
        else:
            status, retry_after = fault
            self._count("http_429" if status == 429 else "http_5xx")
            response = self.fault_response(status, retry_after)
        if delay and self._stopped is not None:
            self._count("slow_reply")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
        return response

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        """An injected fault: the venue's body (``fault_body``), Retry-After on a 429."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return web.json_response(self.fault_body(status), status=status, headers=headers)

    def fault_body(self, status: int) -> Any:
        """The JSON body of an injected HTTP ``status`` (venues answer in their error shape)."""
        return {"message": f"injected HTTP {status}"}

    async def serve_ws(
        self,
        request: web.Request,
        on_message: Callable[[MockConn, Any], None] | None = None,
        on_bad_json: Callable[[MockConn], None] | None = None,
        on_open: Callable[[MockConn], None] | None = None,
        on_close: Callable[[MockConn], None] | None = None,
    ) -> web.WebSocketResponse:
        """One WebSocket session: each JSON text frame goes to ``on_message``; the connection is
        registered for broadcasts and drops, and forgotten when it ends."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = self.open_conn(ws)
        if on_open is not None:
            on_open(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT or on_message is None:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    if on_bad_json is not None:
                        on_bad_json(conn)
                    continue
                on_message(conn, data)
        finally:
            if on_close is not None:
                on_close(conn)
            self.close_conn(conn)
        return ws

    # -- /_mock endpoints --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The venue's truth as JSON-ready data (what ``GET /_mock/state`` answers)."""
        return dict(self.call(self._full_state))

    def _full_state(self) -> dict[str, Any]:
        return {
            **self.state_now(),
            "faults": {
                "counts": dict(self._fault_counts),
                "rates": dict(self._fault_rates),
                "seed": self._fault_seed,
            },
            "rest_calls": dict(self.rest_calls),
            "refused_connections": self.refused_connections,
        }

    async def _h_state(self, request: web.Request) -> web.Response:
        return web.json_response(self._full_state(), dumps=lambda obj: json.dumps(obj, default=str))

    async def _h_control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        action = body.get("action")
        allowed = self.CONTROL_ACTIONS.get(action) if isinstance(action, str) else None
        if allowed is None:
            known = ", ".join(sorted(self.CONTROL_ACTIONS))
            return web.json_response({"error": f"unknown action {action!r}; known: {known}"}, status=400)
        args = {key: value for key, value in body.items() if key != "action"}
        extra = sorted(set(args) - allowed - ({"rates"} if action == "set_fault_rates" else set()))
        if extra:
            return web.json_response(
                {"error": f"{action} takes no argument(s) {', '.join(extra)}; it takes {sorted(allowed)}"},
                status=400,
            )
        if action == "set_fault_rates" and isinstance(args.get("rates"), dict):
            args.update(args.pop("rates"))  # the rates may also come as one object
        try:
            result = getattr(self, action)(**args)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            return web.json_response({"error": f"{action}: {type(exc).__name__}: {exc}"}, status=400)
        return web.json_response(
            {"action": action, "result": result}, dumps=lambda obj: json.dumps(obj, default=str)
        )


# ---------------------------------------------------------------------------------------------
# A venue around the matching engine (CEX-style: REST answers with the order)
# ---------------------------------------------------------------------------------------------

#: Fault kinds and control actions of every engine venue (venues add their own).
ENGINE_FAULT_KINDS = (*BASE_FAULT_KINDS, "book_gap")
ENGINE_CONTROL_ACTIONS: dict[str, set[str]] = {
    **BASE_CONTROL_ACTIONS,
    "set_fault_rates": {"seed", *ENGINE_FAULT_KINDS},
    "trade_through": {"price", "size"},
    "inject_book_gap": {"n"},
}


def fixture_loader(directory: Path) -> Callable[[str], Any]:
    """A reader of captured messages in ``directory``: a fresh copy per call (a template the
    venue fills in must never leak into the next message). Each file is read once: venues build
    messages from templates while a client waits for them (reaction benchmarks). The copy is
    decoded from the file's text: 2-4 times cheaper than ``copy.deepcopy`` of a decoded template
    (12-15 µs against 26-49 µs for Lighter's order and account messages), where deep copies
    were a fifth of the Lighter venue's work per fill."""
    texts: dict[str, str] = {}

    def fixture(name: str) -> Any:
        text = texts.get(name)
        if text is None:
            text = texts[name] = (directory / name).read_text()
        return json.loads(text)

    return fixture


def now_ms() -> int:
    return int(time.time() * 1000)


Handler = Callable[[Any, web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


def signed(handler: Handler) -> Callable[[Any, web.Request], Awaitable[web.StreamResponse]]:
    """A REST handler that runs only once ``verify_request`` accepted the request; it gets the
    request's params (the venue's refusal is answered otherwise)."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: web.Request) -> web.StreamResponse:
        params = await self.verify_request(request)
        if isinstance(params, web.StreamResponse):
            return params
        return await handler(self, request, params)

    return wrapper


class EngineVenue(MockVenueBase):
    """One perpetual market on a :class:`PerpEngine`: the venue-independent order flow and book
    publishing; the subclass supplies the wire (see "Adding a venue" above)."""

    fault_kinds = ENGINE_FAULT_KINDS
    CONTROL_ACTIONS = ENGINE_CONTROL_ACTIONS
    #: Our words for an order's events -> the venue's (accepted, fill, cancelled, expired).
    ORDER_EVENTS: ClassVar[dict[str, str]] = {}
    #: What an IOC's unfilled rest becomes (Binance-style venues say EXPIRED).
    IOC_REST_STATUS = CANCELLED
    ENV_NAMES: tuple[str, ...] = ()
    #: The market's name from its base asset (``{base}``).
    SYMBOL_FORMAT = "{base}-PERP"
    #: Stream names from the market's name (``{symbol}``, ``{lower}`` for it in lower case).
    DEPTH_STREAM = "depth.{symbol}"
    TICKER_STREAM = "bookTicker.{symbol}"
    #: The WebSocket path below the venue's address.
    WS_PATH = ""
    #: The venue's first update id (captured messages' magnitude, so parsers meet real sizes).
    FIRST_UPDATE_ID = 1

    def __init__(
        self,
        *,
        symbol: str = "ETH",
        start_price: Decimal | str = Decimal("3000"),
        tick_size: Decimal | str = Decimal("0.01"),
        step_size: Decimal | str = Decimal("0.001"),
        min_quantity: Decimal | str = Decimal("0.001"),
        collateral: Decimal | str = Decimal("10000"),
        host: str = "127.0.0.1",
        port: int = 0,
        fault_seed: int = 7,
    ) -> None:
        super().__init__(host=host, port=port, fault_seed=fault_seed)
        self.base = symbol.upper()
        self.symbol = self.SYMBOL_FORMAT.format(base=self.base)
        self.tick, self.step = Decimal(str(tick_size)), Decimal(str(step_size))
        self.min_quantity = Decimal(str(min_quantity))
        self.collateral = Decimal(str(collateral))
        self.engine = self.new_engine(self.tick, Decimal(str(start_price)))
        self.engine.on_fill = self._on_fill
        self.update_id = self.FIRST_UPDATE_ID
        self._published = self.engine.aggregate()
        self._last_ticker: tuple[Decimal, Decimal] | None = None
        self._gaps_pending = 0
        self.signed_requests: list[dict[str, Any]] = []
        self.signature_failures = 0

    # -- venue hooks -------------------------------------------------------------------------

    def new_engine(self, tick: Decimal, start_price: Decimal) -> PerpEngine:
        """The venue's engine (fees, book shape, id ranges of its captured messages)."""
        raise NotImplementedError

    def credentials(self) -> tuple[str, ...]:
        """The test key(s) a bot signs with, in ``ENV_NAMES`` order after the two URLs."""
        raise NotImplementedError

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.WS_PATH}"

    def env(self) -> dict[str, str]:
        """The .env variables (``ENV_NAMES``) pointing a bot at this venue."""
        return dict(zip(self.ENV_NAMES, (self.base_url, self.ws_url, *self.credentials()), strict=True))

    async def verify_request(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The params of a signed request, or the venue's refusal."""
        raise NotImplementedError

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
        raise NotImplementedError

    def push_order(self, event: str, order: EngineOrder, fill: EngineFill | None = None) -> None:
        """Send an order event (``event`` is the venue's word, from ``ORDER_EVENTS``)."""
        raise NotImplementedError

    @property
    def depth_stream(self) -> str:
        return self.DEPTH_STREAM.format(symbol=self.symbol, lower=self.symbol.lower())

    @property
    def ticker_stream(self) -> str:
        return self.TICKER_STREAM.format(symbol=self.symbol, lower=self.symbol.lower())

    def depth_message(self, bids: list[list[str]], asks: list[list[str]], previous: int) -> Any:
        """One depth diff (levels changed, size "0" = gone) ending at ``self.update_id``."""
        raise NotImplementedError

    def ticker_message(
        self, top: tuple[Decimal, Decimal], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
    ) -> Any:
        raise NotImplementedError

    def venue_state(self) -> dict[str, Any]:
        """The venue's own part of ``state_now`` (position in its words, counters)."""
        return {}

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
            self.publish_book()
            return [fill.as_dict() for fill in fills]

        return list(self.call(do))

    def inject_book_gap(self, n: int = 1) -> None:
        """Skip the next ``n`` depth diffs (the update ids still advance: subscribers see a gap)."""
        self.call(lambda: setattr(self, "_gaps_pending", self._gaps_pending + int(n)))

    def clear_venue_faults(self) -> None:
        self._gaps_pending = 0

    def best_bid_ask(self) -> tuple[Decimal, Decimal]:
        return tuple(self.call(self.engine.top))  # type: ignore[return-value]

    def state_now(self) -> dict[str, Any]:
        engine = self.engine
        bid, ask = engine.top()
        venue = self.venue_state()
        return {
            "symbol": self.symbol,
            "best_bid": fmt(bid),
            "best_ask": fmt(ask),
            "update_id": self.update_id,
            "orders": [self.order_json(o) for o in engine.orders.values()],
            "position": venue.pop("position"),
            "realized_pnl": fmt(engine.realized),
            "fees_paid": fmt(engine.fees),
            "signed_requests": list(self.signed_requests),
            "signature_failures": self.signature_failures,
            **venue,
            "ws_connections": len(self.conns),
        }

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    def publish_book(self) -> None:
        """Push what changed since the last call: a depth diff (unless a gap is due) and the top."""
        bids, asks = self.engine.aggregate()
        old_bids, old_asks = self._published
        self._published = (bids, asks)

        def diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[list[str]]:
            changed = {p: s for p, s in new.items() if old.get(p) != s}
            changed.update({p: Decimal(0) for p in old if p not in new})
            return [[fmt(p), fmt(s)] for p, s in sorted(changed.items())]

        b, a = diff(old_bids, bids), diff(old_asks, asks)
        if b or a:
            previous = self.update_id
            self.update_id += 1
            stream = self.depth_stream
            if self._gaps_pending > 0 or (self.subscribers.get(stream) and self._roll("book_gap")):
                self._gaps_pending = max(0, self._gaps_pending - 1)
                self._count("book_gap")
            else:
                self.broadcast(stream, self.depth_message(b, a, previous))
        top = (max(bids), min(asks))
        if top != self._last_ticker:
            self._last_ticker = top
            self.broadcast(self.ticker_stream, self.ticker_message(top, bids, asks))

    def _on_fill(self, fill: EngineFill) -> None:
        self.push_order(self.ORDER_EVENTS["fill"], fill.order, fill)

    def place(self, **fields: Any) -> EngineOrder:
        """A new order (``PerpEngine.new_order`` fields): a post-only order that would take
        expires unfilled (a venue that refuses it instead answers before calling this); else it
        is accepted, matched, and an IOC's unfilled rest ends as ``IOC_REST_STATUS``."""
        order = self.engine.new_order(created_ms=now_ms(), **fields)
        if order.post_only and self.engine.would_take(order.side, order.price):
            order.status = EXPIRED
            self.push_order(self.ORDER_EVENTS[EXPIRED], order)
            return order
        self.push_order(self.ORDER_EVENTS["accepted"], order)
        self.engine.match(order)
        if order.status == CANCELLED:
            order.status = self.IOC_REST_STATUS
            self.push_order(self.ORDER_EVENTS[self.IOC_REST_STATUS], order)
        self.publish_book()
        return order

    def end_order(self, order: EngineOrder | None, status: str = CANCELLED) -> bool:
        """End an open order as ``status`` (CANCELLED or EXPIRED); False when it is not open."""
        if order is None or not order.is_open:
            return False
        order.status = status
        self.push_order(self.ORDER_EVENTS[status], order)
        self.publish_book()
        return True

    def lookup(self, order_id: Any, client_id: Any) -> EngineOrder | None:
        """By venue order id; else by client id, the open order with it first, then the newest."""
        if order_id:
            return self.engine.orders.get(int(order_id)) if str(order_id).isdigit() else None
        if client_id is None:
            return None
        matches = [o for o in self.engine.orders.values() if o.client_id == client_id]
        matches.sort(key=lambda o: (o.is_open, o.created_ms))
        return matches[-1] if matches else None

    def open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        return [
            self.order_json(o)
            for o in self.engine.orders.values()
            if o.is_open and symbol in (None, self.symbol)
        ]

    def wallet(self) -> Decimal:
        """Collateral plus realized PnL less fees (what the account endpoints report)."""
        return self.collateral + self.engine.realized - self.engine.fees


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def add_common_options(
    parser: argparse.ArgumentParser, fault_kinds: tuple[str, ...], default_port: int
) -> None:
    """Host, port, ready file, .env file and seeded fault rates: the same on every mock."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=default_port, help="0 = random free port (see --ready-file)"
    )
    files = parser.add_argument_group("files for other processes")
    files.add_argument(
        "--env-out",
        type=Path,
        metavar="FILE",
        help="write a .env (mode 0600) pointing a bot at this venue (written before the ready file)",
    )
    files.add_argument(
        "--ready-file",
        type=Path,
        metavar="FILE",
        help="once listening, write JSON {base_url, ws_url, port, pid, state_url, control_url, ...} here "
        "(atomically); removed on a clean stop",
    )
    faults = parser.add_argument_group(
        "fault injection",
        "Faults at seeded random moments; each RATE is a probability (0..1) per eligible event.",
    )
    faults.add_argument("--fault-seed", type=int, default=7, help="seed of the fault streams")
    for kind in fault_kinds:
        faults.add_argument(
            f"--{kind.replace('_', '-')}-rate",
            dest=f"rate_{kind}",
            type=probability,
            default=0.0,
            metavar="RATE",
        )


def run_foreground(
    venue: MockVenueBase, args: argparse.Namespace, env: dict[str, Any], ready: dict[str, Any]
) -> int:
    """Start ``venue``, write the .env and ready files, serve until SIGTERM/SIGINT, clean up."""
    venue.set_fault_rates(seed=args.fault_seed, **{k: getattr(args, f"rate_{k}") for k in venue.fault_kinds})
    stop = threading.Event()
    # Installed before the venue starts, so a SIGTERM at any moment still stops it cleanly.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            venue.start()
        except RuntimeError as exc:
            print(f"error: {exc}: {exc.__cause__}", file=sys.stderr)
            return 2
        try:
            values = {key: (value() if callable(value) else value) for key, value in env.items()}
            if args.env_out is not None:
                lines = [f"# Loopback mock {venue.name} venue; a throwaway test key."]
                write_private_file(
                    args.env_out, "\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n"
                )
            info = {
                "base_url": venue.base_url,
                "port": venue.port,
                "pid": os.getpid(),
                "state_url": f"{venue.base_url}/_mock/state",
                "control_url": f"{venue.base_url}/_mock/control",
                **{key: (value() if callable(value) else value) for key, value in ready.items()},
            }
            if args.ready_file is not None:
                write_private_file(args.ready_file, json.dumps(info) + "\n")
            print(f"Mock {venue.name} venue running on {venue.base_url}")
            print(f"  state: {info['state_url']}   control: POST {info['control_url']}")
            if args.env_out is not None:
                print(f"  .env for the bot: {args.env_out}")
            print("  Ctrl-C or SIGTERM to stop.", flush=True)
            while not stop.wait(0.5):  # a timeout, so the signal handler gets to run promptly
                pass
        finally:
            venue.stop()
            if args.ready_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    args.ready_file.unlink()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def venue_parser(
    venue: str, *, signatures: str, fault_kinds: tuple[str, ...], default_port: int, market: str
) -> argparse.ArgumentParser:
    """The command line of an engine venue: the common options plus price, symbol, collateral."""
    parser = argparse.ArgumentParser(
        prog=f"python -m tests.mock_venues.{venue}_venue",
        description=f"Run a loopback mock {venue.capitalize()} venue (REST + WebSocket) that verifies "
        f"{signatures} signatures. GET /_mock/state shows its truth; POST /_mock/control moves the "
        "market (trade_through) and queues or clears faults. SIGTERM or SIGINT stops it cleanly.",
    )
    add_common_options(parser, fault_kinds, default_port=default_port)
    parser.add_argument("--price", type=Decimal, default=Decimal("3000"), help="start price")
    parser.add_argument("--symbol", default="ETH", help=f"base asset of the {market} market")
    parser.add_argument("--collateral", type=Decimal, default=Decimal("10000"))
    return parser


def venue_main(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    venue_cls: type[EngineVenue],
    required_fixture: Path,
) -> int:
    """Parse, check the captured messages are there (a clear error otherwise), build and serve."""
    args = parser.parse_args(argv)
    if not required_fixture.is_file():
        print(
            f"error: captured {venue_cls.name.capitalize()} messages not found in {required_fixture.parent} "
            "(set BOT_SHARED_DIR)",
            file=sys.stderr,
        )
        return 2
    venue = venue_cls(
        symbol=args.symbol,
        start_price=args.price,
        collateral=args.collateral,
        host=args.host,
        port=args.port,
        fault_seed=args.fault_seed,
    )
    env: dict[str, Any] = {
        name: functools.partial(lambda n: venue.env()[n], name) for name in venue.ENV_NAMES
    }
    return run_foreground(venue, args, env, {"ws_url": lambda: venue.ws_url, "symbol": venue.symbol})
