"""ReconnectingWebSocket against a tiny websockets server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from helpers.clock import LiveClock, SimulatedClock
from helpers.reconnecting_websocket import Backoff, ReconnectingWebSocket

TIMEOUT = 5.0


class TinyServer:
    """Records what each connection received; can push frames and drop connections."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.received: list[list[Any]] = []
        self.new_frame = asyncio.Event()
        self.server: Server | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        inbox: list[Any] = []
        self.received.append(inbox)
        async for raw in ws:
            inbox.append(json.loads(raw))
            self.new_frame.set()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def wait_for(self, predicate: Any, timeout: float = TIMEOUT) -> None:
        async def loop() -> None:
            while not predicate():
                self.new_frame.clear()
                await self.new_frame.wait()

        await asyncio.wait_for(loop(), timeout)

    async def drop_all(self) -> None:
        for ws in list(self.connections):
            await ws.close(code=1012, reason="restart")


@pytest.fixture
async def server() -> AsyncIterator[TinyServer]:
    tiny = TinyServer()
    async with serve(tiny.handler, "127.0.0.1", 0) as srv:
        tiny.server = srv
        yield tiny


def make_client(url: str, handler: Any = None, **kwargs: Any) -> ReconnectingWebSocket:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("backoff_cap", 0.05)
    return ReconnectingWebSocket(
        url, handler or (lambda message: None), LiveClock(), name="test-ws", **kwargs
    )


async def test_reconnects_and_resends_every_subscription(server: TinyServer) -> None:
    client = make_client(server.url, subscriptions={"a": {"type": "subscribe", "channel": "a"}})
    client.start()
    try:
        assert await client.wait_connected(TIMEOUT)
        await client.subscribe("b", {"type": "subscribe", "channel": "b"})
        await server.wait_for(lambda: len(server.received[0]) == 2)
        await server.drop_all()
        await server.wait_for(lambda: len(server.received) == 2 and len(server.received[1]) == 2)
        assert [m["channel"] for m in server.received[1]] == ["a", "b"]
        assert client.reconnects == 1
        assert client.connects == 2
        assert client.connected.is_set()
    finally:
        await client.close()


async def test_on_connect_runs_before_subscriptions_and_payloads_are_rebuilt(server: TinyServer) -> None:
    tokens = iter(["token-1", "token-2"])
    current: dict[str, str] = {}
    events: list[str] = []

    async def on_connect() -> None:
        current["token"] = next(tokens)
        events.append("on_connect")

    def payload() -> dict[str, str]:
        events.append("payload")
        return {"type": "subscribe", "channel": "private", "auth": current["token"]}

    client = make_client(server.url, on_connect=on_connect, subscriptions={"private": payload})
    client.start()
    try:
        await server.wait_for(lambda: len(server.received) == 1 and server.received[0])
        await server.drop_all()
        await server.wait_for(lambda: len(server.received) == 2 and server.received[1])
        assert server.received[0][0]["auth"] == "token-1"
        assert server.received[1][0]["auth"] == "token-2"
        assert events == ["on_connect", "payload", "on_connect", "payload"]
    finally:
        await client.close()


async def test_messages_reach_the_handler_and_handler_errors_do_not_kill_the_stream(
    server: TinyServer, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[Any] = []

    async def handler(message: Any) -> None:
        if message == {"boom": True}:
            raise RuntimeError("handler bug")
        got.append(message)

    client = make_client(server.url, handler)
    client.start()
    try:
        assert await client.wait_connected(TIMEOUT)
        ws = server.connections[0]
        await ws.send(json.dumps({"boom": True}))
        await ws.send(json.dumps({"n": 1}))
        await ws.send("not json")
        await asyncio.wait_for(_until(lambda: len(got) == 2), TIMEOUT)
        assert got == [{"n": 1}, "not json"]
        assert client.messages == 3
        assert client.handler_errors == 1
        assert client.reconnects == 0
        assert any("handler bug" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    finally:
        await client.close()


async def test_hostile_frames_are_counted_logged_once_and_dropped(
    server: TinyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame nested 100,000 deep (the issue #8 segfault) or carrying NaN never reaches the
    handler; the stream stays up and the warning names the kind, not the content."""
    got: list[Any] = []
    client = make_client(server.url, got.append)
    client.start()
    try:
        assert await client.wait_connected(TIMEOUT)
        ws = server.connections[0]
        for _ in range(3):
            await ws.send("[" * 100_000 + "]" * 100_000)
        await ws.send('{"price": NaN, "secret": "hunter2"}')
        await ws.send(json.dumps({"price": 1.5}))
        await asyncio.wait_for(_until(lambda: len(got) == 1), TIMEOUT)
        assert got == [{"price": Decimal("1.5")}]
        assert client.malformed_frames == {"too deep": 3, "non-finite number": 1}
        assert client.reconnects == 0
        warnings = [r.getMessage() for r in caplog.records if "malformed frame" in r.getMessage()]
        assert len(warnings) == 2
        assert not any("hunter2" in w or "[[[" in w for w in warnings)
    finally:
        await client.close()


async def test_close_stops_for_good(server: TinyServer) -> None:
    client = make_client(server.url)
    client.start()
    assert await client.wait_connected(TIMEOUT)
    await client.close()
    assert not client.connected.is_set()
    await asyncio.sleep(0.1)
    assert len(server.connections) == 1
    await client.close()


async def test_disconnect_hook_and_warning_with_reason(
    server: TinyServer, caplog: pytest.LogCaptureFixture
) -> None:
    reasons: list[str] = []
    client = make_client(server.url, on_disconnect=reasons.append)
    client.start()
    try:
        assert await client.wait_connected(TIMEOUT)
        await server.drop_all()
        await asyncio.wait_for(_until(lambda: client.connects == 2), TIMEOUT)
        assert len(reasons) == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("disconnected" in w and "reconnect 1" in w for w in warnings)
    finally:
        await client.close()


async def test_secrets_in_subscriptions_are_never_logged(
    server: TinyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(server.url, subscriptions={"acct": {"type": "subscribe", "auth": "SECRET-TOKEN"}})
    client.start()
    try:
        await server.wait_for(lambda: len(server.received) == 1 and server.received[0])
        await server.drop_all()
        await server.wait_for(lambda: len(server.received) == 2 and server.received[1])
    finally:
        await client.close()
    assert server.received[1][0]["auth"] == "SECRET-TOKEN"
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server")]
    assert ours
    assert not any("SECRET-TOKEN" in message for message in ours)


def test_backoff_sequence_is_exponential_capped_and_seeded() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(42))
    delays = [backoff.next_delay() for _ in range(6)]
    reference = random.Random(42)
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert delays == [reference.uniform(0.0, c) for c in ceilings]
    assert [backoff.ceiling(n) for n in range(1, 7)] == ceilings
    backoff.reset()
    assert backoff.attempt == 0


async def test_failed_connects_back_off_on_the_clock() -> None:
    """Nothing listens on the port: every attempt fails and waits a seeded, capped delay."""
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    clock = SimulatedClock(start=1000.0)
    client = ReconnectingWebSocket(
        f"ws://127.0.0.1:{port}",
        lambda message: None,
        clock,
        backoff_base=0.5,
        backoff_cap=2.0,
        rng=random.Random(3),
        open_timeout=1.0,
        name="refused",
    )
    client.start()
    try:
        for _ in range(500):
            if len(client.delays) >= 5:
                break
            await asyncio.sleep(0.01)
            deadline = clock.next_deadline()
            if deadline is not None:
                clock.advance_to(deadline)
        reference = random.Random(3)
        assert client.delays[:5] == [reference.uniform(0.0, c) for c in [0.5, 1.0, 2.0, 2.0, 2.0]]
        assert not client.connected.is_set()
        assert client.last_error
    finally:
        await client.close()


async def test_a_handshake_that_never_answers_is_given_up_after_open_timeout() -> None:
    """The venue accepts the TCP connection and never answers the upgrade: the attempt ends
    after ``open_timeout`` as a failed connection, and the client keeps trying."""
    silent: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = make_client(f"ws://127.0.0.1:{port}", open_timeout=0.2)
    client.start()
    try:
        await asyncio.wait_for(_until(lambda: client.reconnects >= 2), TIMEOUT)
        assert client.last_error is not None and "TimeoutError" in client.last_error
        assert client.connects == 0 and len(silent) >= 2
    finally:
        await client.close()
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


async def _until(predicate: Any) -> None:
    for _ in range(int(TIMEOUT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_application_heartbeat_is_sent_while_connected(server: TinyServer) -> None:
    client = make_client(server.url, heartbeat_interval=0.05, heartbeat_message={"type": "ping"})
    client.start()
    try:
        await server.wait_for(lambda: len(server.received) == 1 and len(server.received[0]) >= 2)
        assert all(m == {"type": "ping"} for m in server.received[0])
    finally:
        await client.close()


async def test_url_and_handshake_headers_are_built_afresh_for_every_connection() -> None:
    seen: list[tuple[str, str | None]] = []
    two_seen = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.append((ws.request.path, ws.request.headers.get("X-Stamp")))
        if len(seen) >= 2:
            two_seen.set()
        await ws.close(code=1012, reason="restart")

    calls = 0

    def stamp() -> str:
        nonlocal calls
        calls += 1
        return str(calls)

    async with serve(handler, "127.0.0.1", 0) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        client = make_client(
            lambda: f"ws://127.0.0.1:{port}/private?t={calls + 1}", headers=lambda: {"X-Stamp": stamp()}
        )
        client.start()
        try:
            await asyncio.wait_for(two_seen.wait(), TIMEOUT)
        finally:
            await client.close()
    assert seen[:2] == [("/private?t=1", "1"), ("/private?t=2", "2")]


async def test_handshake_headers_are_built_afresh_for_every_connection(server: TinyServer) -> None:
    """A venue that authenticates the socket with a session cookie renews it between connects:
    each handshake must carry the hook's current answer, not the first one."""
    issued: list[str] = []

    def headers() -> dict[str, str]:
        issued.append(f"gravity=session{len(issued)}")
        return {"Cookie": issued[-1]}

    client = make_client(server.url, headers=headers, subscriptions={"a": {"channel": "a"}})
    client.start()
    try:
        assert await client.wait_connected(TIMEOUT)
        await server.drop_all()
        await server.wait_for(lambda: len(server.received) == 2 and len(server.received[1]) == 1)
        seen = [ws.request.headers.get("Cookie") for ws in server.connections if ws.request is not None]
        assert seen == ["gravity=session0", "gravity=session1"]
    finally:
        await client.close()
