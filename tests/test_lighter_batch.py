"""Lighter's batch path against the loopback mock venue, with lighter-sdk's real signer.

One ``jsonapi/sendtxbatch`` frame (or one HTTP sendTxBatch) per batch; outcomes per transaction:
accepted, refused (the venue's error for the one it stopped at, NotProcessed after it), or
unknown (lost stream, timeout) and then found by look-up like a single order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from exchanges.base import (
    InsufficientFunds,
    LimitOrderRequest,
    NetworkError,
    NotProcessed,
    OrderSide,
    OrderStatus,
)
from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig

pytest.importorskip("lighter")
mock = pytest.importorskip("tests.mock_venues.lighter_venue")

from exchanges.lighter import LighterClient  # noqa: E402

QTY = Decimal("0.0100")


def config(**params: Any) -> TradingConfig:
    params.setdefault("order_ack_timeout", 3.0)
    params.setdefault("backoff_base", 0.05)
    return TradingConfig(
        ticker="ETH", exchange="lighter", strategy="grid", quantity=QTY, exchange_params=params
    )


@pytest.fixture
def venue() -> Iterator[Any]:
    v = mock.MockLighterVenue(start_price=Decimal("3000"), api_key_index=5).start()
    try:
        yield v
    finally:
        v.stop()


async def connected(venue: Any, **params: Any) -> LighterClient:
    client = LighterClient(config(**params), LiveClock(), env=venue.env())
    await client.connect()
    return client


@pytest.fixture
async def client(venue: Any) -> AsyncIterator[LighterClient]:
    c = await connected(venue)
    try:
        yield c
    finally:
        await c.disconnect()


async def bids(client: LighterClient, n: int) -> list[LimitOrderRequest]:
    bid, _ = await client.fetch_bbo_prices("0")
    return [
        LimitOrderRequest("0", OrderSide.BUY, QTY, bid - 2 - i, client.client_ids.next_id(time.time()))
        for i in range(n)
    ]


def venue_active(venue: Any) -> set[str]:
    return {str(o["client_order_index"]) for o in venue.orders() if o.get("status") == "open"}


def batch_nonces(venue: Any) -> list[int]:
    return [nonce for _, _, nonce in venue.stats().nonces_seen]


async def test_a_batch_of_places_and_cancels_is_one_frame_each(venue: Any, client: LighterClient) -> None:
    requests = await bids(client, 4)
    before = len(batch_nonces(venue))
    placed = await client.place_limit_orders(requests)
    assert all(o.ok and o.result is not None and o.result.status is OrderStatus.OPEN for o in placed)
    assert venue_active(venue) == {r.client_order_id for r in requests}
    nonces = batch_nonces(venue)[before:]
    assert nonces == list(range(nonces[0], nonces[0] + 4))  # consecutive, in the batch's order
    assert (venue.stats().batches, client.ws_batches, client.http_batches) == (1, 1, 0)
    assert client._tx_limiter.acquired == 1  # the venue counts a batch as one request

    order_ids = [o.result.order_id for o in placed if o.result is not None]
    cancelled = await client.cancel_orders("0", [str(i) for i in order_ids])
    assert all(o.ok and o.result is not None and o.result.status is OrderStatus.CANCELLED for o in cancelled)
    assert venue_active(venue) == set()
    assert venue.stats().batches == 2 and client._tx_limiter.acquired == 2


async def test_partial_refusal_names_the_refused_order_and_leaves_no_nonce_ahead(
    venue: Any, client: LighterClient
) -> None:
    requests = await bids(client, 3)
    venue.reject_next_tx(after=1)  # the second transaction of the batch is refused
    placed = await client.place_limit_orders(requests)
    assert placed[0].ok
    assert isinstance(placed[1].error, InsufficientFunds)
    assert isinstance(placed[2].error, NotProcessed)
    assert venue_active(venue) == {requests[0].client_order_id}
    assert client._orders.get(requests[1].client_order_id).status is OrderStatus.REJECTED  # type: ignore[union-attr]
    # The nonce manager was resynced from the venue: the next send is not an invalid nonce.
    again = await client.place_limit_orders(await bids(client, 2))
    assert all(o.ok for o in again)
    assert venue.stats().invalid_nonces == 0


async def test_a_stale_nonce_resyncs_and_resends_the_batch_once(venue: Any, client: LighterClient) -> None:
    await client.place_limit_orders(await bids(client, 1))
    client._signer.nonce_manager.nonce[client.settings.api_key_index] -= 1
    placed = await client.place_limit_orders(await bids(client, 3))
    assert all(o.ok for o in placed), placed
    assert venue.stats().invalid_nonces == 1 and venue.stats().batches == 3


async def test_a_stream_lost_before_the_reply_leaves_every_order_unknown_then_found(
    venue: Any, client: LighterClient
) -> None:
    handled = client._on_tx_reply

    def lose_the_reply(message: Any) -> bool:
        venue.drop_connections()  # the venue took the batch; its answer never arrives
        return True

    client._on_tx_reply = lose_the_reply  # type: ignore[method-assign]
    requests = await bids(client, 3)
    placed = await client.place_limit_orders(requests)
    client._on_tx_reply = handled  # type: ignore[method-assign]
    assert all(isinstance(o.error, NetworkError) for o in placed)
    assert client._nonce_dirty
    for request in requests:  # what the execution layer does with an unknown outcome
        info = await client.find_order("0", request.client_order_id)
        assert info.status is OrderStatus.OPEN
    # Resynced before the next transaction: the batch's nonces are not reused.
    assert all(o.ok for o in await client.place_limit_orders(await bids(client, 1)))
    assert venue.stats().invalid_nonces == 0


async def test_without_the_stream_a_batch_goes_over_http(venue: Any) -> None:
    client = await connected(venue, ws_orders=False)
    try:
        placed = await client.place_limit_orders(await bids(client, 3))
        assert all(o.ok for o in placed)
        assert venue.stats().rest_calls.get("/api/v1/sendTxBatch") == 1
        assert (client.ws_batches, client.http_batches) == (0, 1)
    finally:
        await client.disconnect()


async def test_a_batch_reply_without_an_id_is_matched_by_its_first_hash(client: LighterClient) -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Any] = loop.create_future()
    second: asyncio.Future[Any] = loop.create_future()
    client._pending_txs = {"1": ("hash-a", first), "2": ("hash-b", second)}
    reply = {"type": "jsonapi/sendtxbatch", "code": 200, "tx_hash": ["hash-b", "hash-c"]}
    assert client._on_tx_reply(reply)
    assert second.done() and not first.done()
    first.cancel()
    client._pending_txs.clear()


async def test_a_batch_frame_that_cannot_be_written_goes_over_http(venue: Any, client: LighterClient) -> None:
    assert client._ws is not None

    async def refuse(frame: Any) -> None:
        raise ConnectionError("socket closed under us")

    client._ws.send = refuse  # type: ignore[method-assign]
    placed = await client.place_limit_orders(await bids(client, 2))
    assert all(o.ok for o in placed)
    assert venue.stats().rest_calls.get("/api/v1/sendTxBatch") == 1 and client.http_batches == 1
