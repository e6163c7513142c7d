"""The mock Lighter venue, driven by the real lighter SDK (native signer) and a raw WS client."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.connector_fixtures import started_venue
from tests.mock_venues import MockLighterVenue
from tests.mock_venues.lighter_venue import fixture, now_ms

lighter = pytest.importorskip("lighter")

TIMEOUT = 5.0
REPO_ROOT = str(Path(__file__).resolve().parents[1])
MARKET = 0


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


class WsProbe:
    """A plain WebSocket client that records every frame and waits for specific ones."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.received: list[dict[str, Any]] = []
        self._new = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())
        self.closed = asyncio.Event()

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                msg = json.loads(raw)
                async with self._new:
                    self.received.append(msg)
                    self._new.notify_all()
        except Exception:  # connection dropped: tests look at `closed`
            pass
        finally:
            self.closed.set()
            async with self._new:
                self._new.notify_all()

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def expect(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT, start: int = 0
    ) -> dict[str, Any]:
        """The first frame (from index ``start`` on) matching ``predicate``."""

        async def wait() -> dict[str, Any]:
            async with self._new:
                while True:
                    for msg in self.received[start:]:
                        if predicate(msg):
                            return msg
                    if self.closed.is_set():
                        raise AssertionError("connection closed while waiting")
                    await self._new.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def expect_n(
        self, predicate: Callable[[dict[str, Any]], bool], n: int, timeout: float = TIMEOUT, start: int = 0
    ) -> list[dict[str, Any]]:
        async def wait() -> list[dict[str, Any]]:
            async with self._new:
                while True:
                    hits = [m for m in self.received[start:] if predicate(m)]
                    if len(hits) >= n:
                        return hits
                    if self.closed.is_set():
                        raise AssertionError("connection closed while waiting")
                    await self._new.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.conn.close()
        self._reader.cancel()


def of_type(kind: str, channel: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == kind and (channel is None or m.get("channel") == channel)


def order_update(status: str, client_order_index: int) -> Callable[[dict[str, Any]], bool]:
    def pred(m: dict[str, Any]) -> bool:
        if m.get("type") != "update/account_orders":
            return False
        return any(
            o["status"] == status and o["client_order_index"] == client_order_index
            for orders in m["orders"].values()
            for o in orders
        )

    return pred


def the_order(msg: dict[str, Any], client_order_index: int) -> dict[str, Any]:
    return next(
        o
        for orders in msg["orders"].values()
        for o in orders
        if o["client_order_index"] == client_order_index
    )


venue = started_venue(MockLighterVenue)


@pytest.fixture
async def signer(venue: MockLighterVenue) -> AsyncIterator[Any]:
    client = lighter.SignerClient(
        venue.base_url,
        venue.account_index,
        {venue.api_key_index: venue.api_private_key},
        chain_id=venue.chain_id,
    )
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def ws(venue: MockLighterVenue) -> AsyncIterator[WsProbe]:
    probe = WsProbe(await connect(venue.ws_url))
    await probe.expect(of_type("connected"))
    try:
        yield probe
    finally:
        await probe.close()


def auth_token(signer: Any, venue: MockLighterVenue) -> str:
    token, err = signer.create_auth_token_with_expiry(api_key_index=venue.api_key_index)
    assert err is None
    return token


async def subscribe_orders(ws: WsProbe, signer: Any, venue: MockLighterVenue) -> None:
    channel = f"account_orders/{MARKET}/{venue.account_index}"
    await ws.send({"type": "subscribe", "channel": channel, "auth": auth_token(signer, venue)})
    await ws.expect(of_type("subscribed/account_orders"))


async def place_post_only_bid(signer: Any, coi: int, price: int, size: int = 100) -> None:
    _, resp, err = await signer.create_order(
        MARKET,
        coi,
        size,
        price,
        False,
        signer.ORDER_TYPE_LIMIT,
        signer.ORDER_TIME_IN_FORCE_POST_ONLY,
    )
    assert err is None, err
    assert resp.code == 200


# ---------------------------------------------------------------------------------------------
# SDK handshake and reads
# ---------------------------------------------------------------------------------------------


async def test_check_client_accepts_configured_key_and_rejects_other(
    venue: MockLighterVenue, signer: Any
) -> None:
    # check_client's HTTP call is made from native code: run it off the loop.
    assert await asyncio.to_thread(signer.check_client) is None

    other_private, _other_public = lighter.signer_client.create_api_key()[:2]
    stranger = lighter.SignerClient(
        venue.base_url, venue.account_index, {venue.api_key_index: other_private}, chain_id=venue.chain_id
    )
    try:
        err = await asyncio.to_thread(stranger.check_client)
        assert err is not None and "does not match" in err
    finally:
        await stranger.close()


async def test_sdk_reads_markets_account_nonce_and_funding(venue: MockLighterVenue, signer: Any) -> None:
    tx_api = lighter.TransactionApi(signer.api_client)
    nonce = await tx_api.next_nonce(account_index=venue.account_index, api_key_index=venue.api_key_index)
    assert nonce.nonce == venue.next_nonce()

    order_api = lighter.OrderApi(signer.api_client)
    books = await order_api.order_books()
    assert books.order_books[0].symbol == "ETH"
    assert books.order_books[0].min_base_amount == "0.0050"
    details = await order_api.order_book_details(market_id=MARKET)
    detail = details.order_book_details[0]
    assert (detail.size_decimals, detail.price_decimals, detail.min_quote_amount) == (4, 2, "10.000000")
    top = await order_api.order_book_orders(MARKET, 5)
    assert Decimal(top.bids[0].price) < Decimal(3000) < Decimal(top.asks[0].price)

    account = await lighter.AccountApi(signer.api_client).account(by="index", value=str(venue.account_index))
    assert account.accounts[0].collateral == "10000.000000"
    assert account.accounts[0].positions[0].position == "0.0000"

    rates = await lighter.FundingApi(signer.api_client).funding_rates()
    assert rates.funding_rates[0].rate == pytest.approx(0.0001)


# ---------------------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------------------


async def test_post_only_order_rests_fills_partially_then_fully(
    venue: MockLighterVenue, signer: Any, ws: WsProbe
) -> None:
    await subscribe_orders(ws, signer, venue)
    await ws.send(
        {
            "type": "subscribe",
            "channel": f"account_all_trades/{venue.account_index}",
            "auth": auth_token(signer, venue),
        }
    )
    await ws.expect(of_type("subscribed/account_all_trades"))

    await place_post_only_bid(signer, coi=4201, price=299000, size=100)  # 0.0100 @ 2990.00
    opened = await ws.expect(order_update("open", 4201))
    assert set(opened) == set(fixture("ws_account_orders_update_partial_fill.json"))
    order = the_order(opened, 4201)
    assert set(order) == set(fixture("ws_account_orders_update_partial_fill.json")["orders"]["0"][0])
    assert (order["price"], order["initial_base_amount"], order["time_in_force"]) == (
        "2990.00",
        "0.0100",
        "post-only",
    )

    order_api = lighter.OrderApi(signer.api_client)
    active = await order_api.account_active_orders(
        account_index=venue.account_index, market_id=MARKET, authorization=auth_token(signer, venue)
    )
    assert [o.client_order_index for o in active.orders] == [4201]
    assert active.orders[0].order_index == order["order_index"]

    mark = len(ws.received)
    venue.trade_through("2985", size="0.0040")
    partial = await ws.expect(
        lambda m: (
            m.get("type") == "update/account_orders" and the_order(m, 4201)["filled_base_amount"] == "0.0040"
        ),
        start=mark,
    )
    partial_order = the_order(partial, 4201)
    assert (partial_order["status"], partial_order["remaining_base_amount"]) == ("open", "0.0060")
    fill = await ws.expect(of_type("update/account_all_trades"), start=mark)
    trade = fill["trades"]["0"][0]
    assert (trade["size"], trade["price"], trade["bid_client_id"]) == ("0.0040", "2990.00", 4201)
    assert trade["is_maker_ask"] is False  # we were the resting bid

    mark = len(ws.received)
    venue.trade_through("2980")
    done = await ws.expect(order_update("filled", 4201), start=mark)
    assert the_order(done, 4201)["remaining_base_amount"] == "0.0000"

    assert venue.position(MARKET) == Decimal("0.0100")
    account = await lighter.AccountApi(signer.api_client).account(by="index", value=str(venue.account_index))
    pos = account.accounts[0].positions[0]
    assert (pos.position, pos.sign, pos.avg_entry_price) == ("0.0100", 1, "2990.00")
    # maker fee 0.002 % of 29.90 USDC
    assert venue.collateral() == Decimal("10000") - Decimal("0.000598")
    assert venue.stats().orders_accepted == 1


async def test_post_only_crossing_order_is_cancelled_without_fill(
    venue: MockLighterVenue, signer: Any, ws: WsProbe
) -> None:
    await subscribe_orders(ws, signer, venue)
    _, best_ask = venue.best_bid_ask(MARKET)
    assert best_ask is not None
    await place_post_only_bid(signer, coi=77, price=int((best_ask + 1) * 100))
    cancelled = await ws.expect(order_update("canceled-post-only", 77))
    assert the_order(cancelled, 77)["filled_base_amount"] == "0.0000"
    assert venue.position(MARKET) == 0


async def test_cancel_by_order_index(venue: MockLighterVenue, signer: Any, ws: WsProbe) -> None:
    await subscribe_orders(ws, signer, venue)
    await place_post_only_bid(signer, coi=9001, price=295000)
    opened = await ws.expect(order_update("open", 9001))
    order_index = the_order(opened, 9001)["order_index"]

    _, resp, err = await signer.cancel_order(MARKET, order_index)
    assert err is None and resp.code == 200
    await ws.expect(order_update("canceled", 9001))

    active = await lighter.OrderApi(signer.api_client).account_active_orders(
        account_index=venue.account_index, market_id=MARKET, authorization=auth_token(signer, venue)
    )
    assert active.orders == []
    assert venue.stats().cancels == 1

    # cancelling it again: the venue no longer has it active
    _, _, err = await signer.cancel_order(MARKET, order_index)
    assert err is not None and "21600" in err


async def test_market_order_fills_within_price_bound(
    venue: MockLighterVenue, signer: Any, ws: WsProbe
) -> None:
    await subscribe_orders(ws, signer, venue)
    best_bid, best_ask = venue.best_bid_ask(MARKET)
    assert best_ask is not None and best_bid is not None
    # a buy of 0.0100 with a bound 1 % above the touch fills completely, as taker
    _, resp, err = await signer.create_market_order(MARKET, 501, 100, int(best_ask * 101), False)
    assert err is None and resp.code == 200
    filled = await ws.expect(order_update("filled", 501))
    assert the_order(filled, 501)["filled_base_amount"] == "0.0100"
    assert not any(order_update("open", 501)(m) for m in ws.received)  # IOC is never seen resting
    assert venue.position(MARKET) == Decimal("0.0100")

    # a sell bounded above the best bid cannot trade at all
    _, resp, err = await signer.create_market_order(MARKET, 502, 100, int(best_bid * 100) + 500, True)
    assert err is None
    await ws.expect(order_update("canceled-too-much-slippage", 502))
    assert venue.position(MARKET) == Decimal("0.0100")


async def test_invalid_nonce_answers_real_error_shape(venue: MockLighterVenue, signer: Any) -> None:
    await place_post_only_bid(signer, coi=1, price=290000)
    used = venue.stats().nonces_seen[-1][2]

    # the SDK with an explicit (stale) nonce
    _, _, err = await signer.create_order(
        MARKET, 2, 100, 290000, False, 0, 2, nonce=used, api_key_index=venue.api_key_index
    )
    assert err is not None and "invalid nonce" in err

    # the raw wire answer is exactly the captured body, with HTTP 400
    tx_type, tx_info, _, sign_err = signer.sign_create_order(
        MARKET, 3, 100, 290000, 0, 0, 2, nonce=used, api_key_index=venue.api_key_index
    )
    assert sign_err is None
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{venue.base_url}/api/v1/sendTx", data={"tx_type": tx_type, "tx_info": tx_info}) as resp,
    ):
        assert resp.status == 400
        assert await resp.json() == fixture("http_sendtx_error_invalid_nonce.json")
    stats = venue.stats()
    assert stats.invalid_nonces == 2
    assert (venue.account_index, venue.api_key_index, used) in stats.nonces_seen

    # the SDK's own nonce manager is still in step afterwards
    await place_post_only_bid(signer, coi=4, price=290000)
    assert venue.stats().orders_accepted == 2


async def test_missing_and_expired_auth_are_rejected(
    venue: MockLighterVenue, signer: Any, ws: WsProbe
) -> None:
    url = f"{venue.base_url}/api/v1/accountActiveOrders"
    params = {"account_index": venue.account_index, "market_id": MARKET}
    expired, err = signer.create_auth_token_with_expiry(
        deadline=60, timestamp=int(time.time()) - 3600, api_key_index=venue.api_key_index
    )
    assert err is None
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params=params) as resp:
            assert resp.status == 400
            body = await resp.json()
            assert set(body) == {"code", "message"} and "auth" in body["message"]
        async with http.get(url, params=params, headers={"authorization": expired}) as resp:
            assert resp.status == 400
            assert "expired" in (await resp.json())["message"]
        async with http.get(url, params=params, headers={"authorization": auth_token(signer, venue)}) as resp:
            assert resp.status == 200
            assert await resp.json() == {"code": 200, "orders": []}

    await ws.send({"type": "subscribe", "channel": f"account_orders/{MARKET}/{venue.account_index}"})
    error = await ws.expect(lambda m: "error" in m)
    assert "auth" in error["error"]["message"]


# ---------------------------------------------------------------------------------------------
# REST faults
# ---------------------------------------------------------------------------------------------


async def test_rate_limit_server_error_and_delay_injection(venue: MockLighterVenue) -> None:
    url = f"{venue.base_url}/api/v1/orderBooks"
    venue.rate_limit_next(1, retry_after=2)
    venue.fail_next(1, status=503)
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "2"
            assert (await resp.json())["code"] == 23000
        async with http.get(url) as resp:
            assert resp.status == 503
        async with http.get(url) as resp:
            assert resp.status == 200
        venue.set_delay(150)
        started = time.monotonic()
        async with http.get(url) as resp:
            assert resp.status == 200
        assert time.monotonic() - started >= 0.14
    assert venue.stats().rest_calls["/api/v1/orderBooks"] == 4


# ---------------------------------------------------------------------------------------------
# WebSocket book, faults and control frames
# ---------------------------------------------------------------------------------------------


async def subscribe_book(ws: WsProbe) -> dict[str, Any]:
    await ws.send({"type": "subscribe", "channel": f"order_book/{MARKET}"})
    return await ws.expect(of_type("subscribed/order_book", f"order_book:{MARKET}"))


async def test_book_snapshot_then_updates_with_increasing_offsets(
    venue: MockLighterVenue, ws: WsProbe
) -> None:
    snap = await subscribe_book(ws)
    assert set(snap) == set(fixture("ws_order_book_snapshot.json"))
    assert snap["order_book"]["asks"][0]["price"] > snap["order_book"]["bids"][0]["price"]

    venue.set_book(bids=[("2999.00", "1.5")], asks=[("3001.00", "2")])
    venue.set_book(bids=[("2999.50", "1")], asks=[("3001.00", "2")])
    first, second = await ws.expect_n(of_type("update/order_book"), 2)
    assert set(first) == set(fixture("ws_order_book_update.json"))
    assert snap["offset"] < first["offset"] < second["offset"]
    assert first["order_book"]["begin_nonce"] == snap["order_book"]["nonce"]
    assert second["order_book"]["begin_nonce"] == first["order_book"]["nonce"]
    # removed levels are sent with size zero, changed ones with their new size
    assert {"price": "2999.00", "size": "0.0000"} in second["order_book"]["bids"]
    assert {"price": "2999.50", "size": "1.0000"} in second["order_book"]["bids"]


async def test_gap_injection_skips_an_offset(venue: MockLighterVenue, ws: WsProbe) -> None:
    await subscribe_book(ws)
    venue.set_book(bids=[("2999.00", "1")], asks=[("3001.00", "1")])
    before = await ws.expect(of_type("update/order_book"))
    venue.inject_book_gap(MARKET)
    venue.set_book(bids=[("2998.00", "1")], asks=[("3001.00", "1")])  # dropped
    venue.set_book(bids=[("2997.00", "1")], asks=[("3001.00", "1")])
    after = (await ws.expect_n(of_type("update/order_book"), 2))[1]
    assert after["offset"] == before["offset"] + 2
    assert after["order_book"]["begin_nonce"] != before["order_book"]["nonce"]


async def test_duplicate_and_out_of_order_injection(venue: MockLighterVenue, ws: WsProbe) -> None:
    await subscribe_book(ws)
    venue.duplicate_next_message("order_book")
    venue.set_book(bids=[("2999.00", "1")], asks=[("3001.00", "1")])
    dup = await ws.expect_n(of_type("update/order_book"), 2)
    assert dup[0] == dup[1]

    mark = len(ws.received)
    venue.reorder_next_messages("order_book")
    venue.set_book(bids=[("2998.00", "1")], asks=[("3001.00", "1")])
    venue.set_book(bids=[("2997.00", "1")], asks=[("3001.00", "1")])
    late, early = await ws.expect_n(of_type("update/order_book"), 2, start=mark)
    assert late["offset"] == early["offset"] + 1


async def test_drop_connections_and_reconnect(venue: MockLighterVenue, ws: WsProbe) -> None:
    await subscribe_book(ws)
    assert venue.drop_connections() == 1
    await asyncio.wait_for(ws.closed.wait(), TIMEOUT)

    again = WsProbe(await connect(venue.ws_url))
    try:
        hello = await again.expect(of_type("connected"))
        assert set(hello) == set(fixture("ws_connected.json"))
        await subscribe_book(again)
    finally:
        await again.close()
    assert venue.stats().ws_connections == 2


async def test_ping_and_subscription_errors(ws: WsProbe) -> None:
    await ws.send({"type": "ping"})
    await ws.expect(of_type("pong"))
    await subscribe_book(ws)
    await ws.send({"type": "subscribe", "channel": f"order_book/{MARKET}"})
    already = await ws.expect(lambda m: m.get("error", {}).get("code") == 30003)
    assert already["error"]["message"] == f"Already Subscribed to : order_book:{MARKET}"
    await ws.send({"type": "subscribe", "channel": "order_book:0"})  # ':' is the reply form only
    await ws.expect(lambda m: m.get("error", {}).get("code") == 30005)


async def test_ws_sendtx_places_order(venue: MockLighterVenue, signer: Any, ws: WsProbe) -> None:
    await subscribe_orders(ws, signer, venue)
    nonce = venue.next_nonce()
    tx_type, tx_info, _, err = signer.sign_create_order(
        MARKET, 31, 100, 290000, 0, 0, 2, nonce=nonce, api_key_index=venue.api_key_index
    )
    assert err is None
    await ws.send(
        {
            "type": "jsonapi/sendtx",
            "data": {"id": "req-1", "tx_type": tx_type, "tx_info": json.loads(tx_info)},
        }
    )
    ack = await ws.expect(of_type("jsonapi/sendtx"))
    assert (ack["code"], ack["id"]) == (200, "req-1")
    await ws.expect(order_update("open", 31))
    assert venue.next_nonce() == nonce + 1


async def test_funding_and_expiry_update_account(venue: MockLighterVenue, signer: Any, ws: WsProbe) -> None:
    await subscribe_orders(ws, signer, venue)
    await place_post_only_bid(signer, coi=61, price=299000, size=1000)  # 0.1000 @ 2990.00
    await ws.expect(order_update("open", 61))
    venue.trade_through("2990")
    await ws.expect(order_update("filled", 61))
    before = venue.collateral()
    paid = venue.apply_funding(MARKET)
    assert paid[venue.account_index] > 0  # long pays a positive rate
    assert venue.collateral() == before - paid[venue.account_index]

    # an order whose expiry has passed is cancelled as expired
    _, _, err = await signer.create_order(
        MARKET, 62, 100, 280000, False, 0, 2, order_expiry=now_ms() + 60_000
    )
    assert err is None
    await ws.expect(order_update("open", 62))
    assert len(venue.expire_orders(at_ms=now_ms() + 120_000)) == 1
    await ws.expect(order_update("canceled-expired", 62))


async def test_cli_prints_urls_and_serves() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mock_venues.lighter_venue",
        "--port",
        "0",
        "--price",
        "3000",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        env: dict[str, str] = {}
        while "LIGHTER_WS_URL" not in env or "LIGHTER_API_PRIVATE_KEY" not in env:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "CLI exited early"
            if line.strip().startswith("export "):
                key, _, value = line.strip()[len("export ") :].partition("=")
                env[key] = value
        assert env["LIGHTER_WS_URL"].startswith("ws://127.0.0.1:") and env["LIGHTER_WS_URL"].endswith(
            "/stream"
        )
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{env['LIGHTER_BASE_URL']}/api/v1/orderBooks") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["order_books"][0]["symbol"] == "ETH"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


# ---------------------------------------------------------------------------------------------
# Seeded fault rates, broken frames, late answers and the walk
# ---------------------------------------------------------------------------------------------


async def raw_frames(url: str) -> tuple[Any, list[str]]:
    """A WebSocket with no frame-size limit, subscribed to the book; the frames it got so far."""
    conn = await connect(url, max_size=None, max_queue=100_000)  # unread frames never stall close()
    frames: list[str] = [str(await asyncio.wait_for(conn.recv(), TIMEOUT))]  # "connected"
    await conn.send(json.dumps({"type": "subscribe", "channel": f"order_book/{MARKET}"}))
    frames.append(str(await asyncio.wait_for(conn.recv(), TIMEOUT)))
    return conn, frames


async def seeded_ws_fault_counts(seed: int) -> dict[str, int]:
    """Fault counters after a fixed sequence of book changes seen by one subscriber."""
    venue = MockLighterVenue(start_price=Decimal("3000"), fault_seed=seed).start()
    try:
        conn, _ = await raw_frames(venue.ws_url)
        try:
            venue.set_fault_rates(
                ws_duplicate=0.3, ws_reorder=0.2, book_gap=0.2, malformed_frame=0.2, oversized_frame=0.1
            )
            venue.set_fault_rates(oversize_bytes=10_000)
            for step in range(40):
                venue.set_book(bids=[(f"{2990 + step % 7}", "1")], asks=[("3010", "1")])
            counts = venue.fault_counts()
            assert venue.best_bid_ask(MARKET) == (Decimal(2990 + 39 % 7), Decimal(3010))
        finally:
            await conn.close()
        return counts
    finally:
        venue.stop()


async def test_seeded_ws_fault_rates_repeat_for_the_same_seed() -> None:
    first = await seeded_ws_fault_counts(5)
    assert first == await seeded_ws_fault_counts(5)
    for kind in ("ws_duplicate", "ws_reorder", "book_gap", "malformed_frame", "oversized_frame"):
        assert first[kind] > 0, (kind, first)
    assert first["ws_drop"] == first["http_429"] == 0
    assert first != await seeded_ws_fault_counts(6)


async def test_malformed_and_oversized_copies_precede_the_genuine_frame(venue: MockLighterVenue) -> None:
    conn, _ = await raw_frames(venue.ws_url)
    try:
        venue.set_fault_rates(oversize_bytes=200_000)
        for n, kind in enumerate(("invalid_json", "wrong_types", "nan_price", None)):
            if kind is None:
                venue.oversize_next_message("order_book")
            else:
                venue.malform_next_message("order_book", kind=kind)
            venue.set_book(bids=[(f"{2990 + n}", "1")], asks=[("3010", "1")])
            bad = str(await asyncio.wait_for(conn.recv(), TIMEOUT))
            genuine = json.loads(str(await asyncio.wait_for(conn.recv(), TIMEOUT)))
            assert genuine["type"] == "update/order_book"
            assert {"price": f"{2990 + n}.00", "size": "1.0000"} in genuine["order_book"]["bids"]
            if kind == "invalid_json":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(bad)
            elif kind == "wrong_types":
                assert json.loads(bad)["order_book"] == "?"
                assert json.loads(bad)["channel"] == genuine["channel"]
            elif kind == "nan_price":
                prices = {level["price"] for level in json.loads(bad)["order_book"]["bids"]}
                assert prices == {"NaN"}
            else:
                assert len(bad) > 200_000
                assert json.loads(bad)["order_book"] == genuine["order_book"]
    finally:
        await conn.close()
    counts = venue.fault_counts()
    assert (counts["malformed_frame"], counts["oversized_frame"]) == (3, 1)
    assert venue.best_bid_ask(MARKET) == (Decimal("2993"), Decimal("3010"))


async def wait_for_venue_order(venue: MockLighterVenue, coi: int) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = [
            o
            for o in venue.state()["accounts"][str(venue.account_index)]["orders"]
            if o["client_order_index"] == coi
        ]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"order {coi} never reached the venue's state"
        await asyncio.sleep(0.02)


async def test_late_and_gateway_failed_replies_still_execute(venue: MockLighterVenue, signer: Any) -> None:
    await place_post_only_bid(signer, coi=90, price=299000)  # the SDK has its nonce: next call is sendTx
    calls = venue.stats().rest_calls
    venue.slow_next(1, ms=600_000)  # the answer would come long after both waits below
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(place_post_only_bid(signer, coi=91, price=298000), 0.5)
    assert (await wait_for_venue_order(venue, 91))["status"] == "open"
    assert venue.stats().rest_calls == {**calls, "/api/v1/sendTx": calls["/api/v1/sendTx"] + 1}

    venue.fail_next(1, status=504)
    with pytest.raises(lighter.exceptions.ServiceException):
        await place_post_only_bid(signer, coi=92, price=297000)
    assert (await wait_for_venue_order(venue, 92))["status"] == "open"

    venue.fail_next(1, status=503)
    with pytest.raises(lighter.exceptions.ServiceException):
        await place_post_only_bid(signer, coi=93, price=296000)
    assert all(o["client_order_index"] != 93 for o in venue.orders())
    counts = venue.fault_counts()
    assert (counts["slow_reply"], counts["http_5xx"]) == (1, 2)


async def test_walk_fills_resting_orders_on_both_sides_and_is_seeded(
    venue: MockLighterVenue, signer: Any
) -> None:
    await place_post_only_bid(signer, coi=301, price=299400)  # 2994.00, 0.2 % below
    _, _, err = await signer.create_order(
        MARKET, 302, 100, 300600, True, signer.ORDER_TYPE_LIMIT, signer.ORDER_TIME_IN_FORCE_POST_ONLY
    )
    assert err is None
    await wait_for_venue_order(venue, 301)
    await wait_for_venue_order(venue, 302)

    prices = []
    for _ in range(3000):
        prices.append(venue.walk_step(MARKET))
        statuses = {o["client_order_index"]: o["status"] for o in venue.orders()}
        if statuses == {301: "filled", 302: "filled"}:
            break
    assert statuses == {301: "filled", 302: "filled"}, (statuses, min(prices), max(prices))
    trades = venue.state()["accounts"][str(venue.account_index)]["trades"]
    assert sorted((t["client_order_index"], t["side"], t["role"], t["price"]) for t in trades) == [
        (301, "buy", "maker", "2994.00"),
        (302, "sell", "maker", "3006.00"),
    ]
    assert venue.position(MARKET) == Decimal(0)

    again = MockLighterVenue(start_price=Decimal("3000"))  # same default seed, never started
    assert [again.walk_step(MARKET) for _ in range(len(prices))] == prices


def test_stopping_the_venue_ends_its_walk() -> None:
    """The shared stop runs the venue's ``on_stop``: a walking market is cancelled, never left
    pending on a closed loop."""
    walking = MockLighterVenue(start_price=Decimal("3000")).start()
    try:
        walking.start_walk(0.01)
        task = walking.call(lambda: walking._walk_task)
    finally:
        walking.stop()
    assert task is not None and task.cancelled()
