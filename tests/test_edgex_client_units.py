"""edgeX client behaviours below the contract suite, without a venue: the private stream's
trade-events (duplicated FILLED events counted once, fills before or after their order report,
hostile frames dropped and counted), the public stream (quote-event and payload alike, ping
answered with pong, a malformed depth frame rebuilds the book) and the depth continuity rule."""

from __future__ import annotations

import asyncio
import copy
import functools
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("edgex_sdk")

from exchanges.base import OrderSide, OrderStatus, OrderType, OrderUpdate
from exchanges.connector_kit import PriceLevels
from exchanges.edgex import EdgexClient, depth_continues
from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig
from tests.connector_fixtures import venue_and_client, venue_config, wait_until
from tests.mock_venues.edgex_venue import MockEdgexVenue
from tests.mock_venues.edgex_wire import fixture

ENV = {
    "EDGEX_ACCOUNT_ID": "543429922991899150",
    "EDGEX_API_KEY": "key-1",
    "EDGEX_API_PASSPHRASE": "pass-1",
    "EDGEX_API_SECRET": "secret-1",
    "EDGEX_TRADING_PRIVATE_KEY": "0x" + "4f" * 32,
}
SIZE = Decimal("0.01")
PRICE = Decimal("3000.5")


def make_client() -> tuple[EdgexClient, list[OrderUpdate]]:
    config = TradingConfig(ticker="ETH", exchange="edgex", strategy="grid", quantity=SIZE)
    client = EdgexClient(config, LiveClock(), env=ENV)
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    return client, updates


def order_row(client_id: str, status: str, filled: str, **extra: Any) -> dict[str, Any]:
    """A captured order object with our values filled in."""
    row = copy.deepcopy(fixture("http_getOrderByClientOrderId.json")["data"][0])
    row.update(
        id="700000000000000001",
        clientOrderId=client_id,
        contractId="10000002",
        side="BUY",
        price=str(PRICE),
        size=str(SIZE),
        timeInForce="POST_ONLY",
        status=status,
        cumFillSize=filled,
        cumFillValue=str(Decimal(filled) * PRICE),
        cumFillFee=str(Decimal(filled) * PRICE * Decimal("0.0002")),
        updatedTime="1734665867876",
        **extra,
    )
    return row


def fill_row(fill_id: str, size: str) -> dict[str, Any]:
    row = copy.deepcopy(fixture("http_getHistoryOrderFillTransactionPage.json")["data"]["dataList"][0])
    row.update(
        id=fill_id,
        orderId="700000000000000001",
        fillSize=size,
        fillPrice=str(PRICE),
        fillValue=str(Decimal(size) * PRICE),
        fillFee=str(Decimal(size) * PRICE * Decimal("0.0002")),
        matchTime="1734665867999",
    )
    return row


def trade_event(orders: list[dict[str, Any]], fills: list[dict[str, Any]]) -> dict[str, Any]:
    message = fixture("ws_private_trade_event_envelope_doc.json")
    message["content"]["event"] = "ORDER_UPDATE"
    message["content"]["data"]["order"] = orders
    message["content"]["data"]["orderFillTransaction"] = fills
    return message


def track(client: EdgexClient) -> str:
    client_id = client.client_ids.next_id(client.clock.now())
    client._track(client_id, "10000002", OrderSide.BUY, OrderType.LIMIT, SIZE, PRICE, post_only=True)
    return client_id


async def test_a_duplicated_filled_event_is_one_fill_with_the_exact_fee_and_maker_flag() -> None:
    client, updates = make_client()
    client_id = track(client)
    await client._on_private_message(trade_event([order_row(client_id, "OPEN", "0")], []))
    filled = trade_event([order_row(client_id, "FILLED", str(SIZE))], [fill_row("900", str(SIZE))])
    await client._on_private_message(filled)
    await client._on_private_message(copy.deepcopy(filled))  # the venue's duplicate
    fills = [u.fill for u in updates if u.fill is not None]
    assert len(fills) == 1
    (fill,) = fills
    assert (fill.size, fill.price, fill.is_maker, fill.fee_estimated) == (SIZE, PRICE, True, False)
    assert fill.fee == SIZE * PRICE * Decimal("0.0002")
    assert updates[-1].order.status is OrderStatus.FILLED


async def test_fills_split_over_events_and_replayed_in_any_order_add_up_to_the_size() -> None:
    client, updates = make_client()
    client_id = track(client)
    half = str(SIZE / 2)
    first = trade_event([order_row(client_id, "OPEN", half)], [fill_row("901", half)])
    second = trade_event([order_row(client_id, "FILLED", str(SIZE))], [fill_row("902", half)])
    for message in (first, second, first, second):
        await client._on_private_message(copy.deepcopy(message))
    assert sum(u.fill.size for u in updates if u.fill is not None) == SIZE
    assert client._orders.get(client_id).status is OrderStatus.FILLED  # type: ignore[union-attr]


async def test_a_post_only_order_cancelled_for_crossing_is_rejected() -> None:
    client, _updates = make_client()
    client_id = track(client)
    refused = order_row(client_id, "CANCELED", "0", cancelReason="COULD_NOT_FILL")
    await client._on_private_message(trade_event([refused], []))
    order = client._orders.get(client_id)
    assert order is not None and order.status is OrderStatus.REJECTED
    assert type(client._rejection(order)).__name__ == "PostOnlyRejected"


@pytest.mark.parametrize(
    "message",
    [
        "not json at all",
        [],
        {"type": "trade-event"},
        {"type": "trade-event", "content": {"data": "x"}},
        "order-nan",
        "fill-negative",
    ],
)
async def test_hostile_private_frames_are_dropped_and_counted_not_raised(message: Any) -> None:
    client, updates = make_client()
    client_id = track(client)
    if message == "order-nan":
        message = trade_event([order_row(client_id, "FILLED", "NaN")], [])
    elif message == "fill-negative":
        message = trade_event([], [fill_row("903", "-0.01")])
    await client._on_private_message(message)
    assert client.malformed.total == 1
    assert [u for u in updates if u.fill is not None] == []


async def test_pings_on_either_stream_are_answered_with_the_same_time() -> None:
    client, _updates = make_client()
    sent: list[Any] = []

    class Socket:
        async def send(self, message: Any) -> None:
            sent.append(message)

    client._public_ws = client._private_ws = Socket()  # type: ignore[assignment]
    await client._on_public_message(fixture("ws_ping.json"))
    await client._on_private_message(fixture("ws_ping.json"))
    assert sent == [fixture("ws_pong.json")] * 2


async def test_public_quote_event_and_payload_frames_both_move_the_book() -> None:
    client, _updates = make_client()
    client._metadata = {}
    book = client._add_book("10000002", lambda: None, depth_continues)  # type: ignore[arg-type,return-value]
    tops: list[Any] = []
    client.subscribe_market_updates(tops.append)
    snapshot = fixture("ws_depth_snapshot_doc.json")
    snapshot["channel"] = snapshot["content"]["channel"] = "depth.10000002.15"
    entry = snapshot["content"]["data"][0]
    entry.update(contractId="10000002", startVersion="10", endVersion="10", depthType="SNAPSHOT")
    book.book.valid = True  # as after a snapshot resync
    await client._on_public_message(snapshot)
    assert book.top() == (Decimal("26092"), Decimal("26093"))
    delta = copy.deepcopy(snapshot)
    delta["type"] = "quote-event"  # the live envelope type
    delta["content"]["data"][0].update(
        depthType="CHANGED", startVersion="11", endVersion="11", bids=[["26092", "0"]], asks=[]
    )
    await client._on_public_message(delta)
    assert book.top() == (Decimal("26091"), Decimal("26093"))
    assert [(t.best_bid, t.best_ask) for t in tops][-1] == (Decimal("26091"), Decimal("26093"))


async def test_a_malformed_depth_frame_is_counted_and_the_book_rebuilt() -> None:
    client, _updates = make_client()
    restarts: list[int] = []
    book = client._add_book("10000002", lambda: None, depth_continues)  # type: ignore[arg-type,return-value]
    book.restart = lambda: restarts.append(1)  # type: ignore[method-assign]
    frame = {
        "type": "quote-event",
        "channel": "depth.10000002.15",
        "content": {"data": [{"depthType": "CHANGED", "bids": [["NaN-ish"]], "asks": []}]},
    }
    await client._on_public_message(frame)
    assert client.malformed.total == 1 and restarts == [1]


def test_depth_continuity_skips_old_deltas_and_refuses_gaps() -> None:
    book = PriceLevels("edgex test")
    assert depth_continues(
        book, {"depthType": "SNAPSHOT", "endVersion": "5", "bids": [["10", "1"]], "asks": [["11", "1"]]}
    )
    assert book.sequence == 5 and book.top() == (Decimal("10"), Decimal("11"))
    old = {"depthType": "CHANGED", "startVersion": "4", "endVersion": "5", "bids": [["10", "0"]], "asks": []}
    assert depth_continues(book, old) and book.top() == (Decimal("10"), Decimal("11"))
    nxt = {
        "depthType": "CHANGED",
        "startVersion": "6",
        "endVersion": "6",
        "bids": [["10.5", "2"]],
        "asks": [],
    }
    assert depth_continues(book, nxt) and book.top() == (Decimal("10.5"), Decimal("11"))
    gap = {"depthType": "CHANGED", "startVersion": "8", "endVersion": "8", "bids": [], "asks": []}
    assert not depth_continues(book, gap)
    assert not depth_continues(book, {"depthType": "CHANGED", "bids": [], "asks": []})


# -- against the loopback venue, which verifies both signatures --------------------------------


config = venue_config("edgex")
# The venue pings every 50 ms here, so a test sees the heartbeat (and its 5-ping limit) at once.
venue, client = venue_and_client(functools.partial(MockEdgexVenue, ping_interval=0.05), EdgexClient, config)


def venue_client(venue: Any, params: dict[str, Any] | None = None, **env: str) -> EdgexClient:
    """A client of ``venue`` (its .env, with ``env`` overriding variables; ``params`` tuning)."""
    return EdgexClient(config(**(params or {})), LiveClock(), env={**venue.env(), **env})


async def test_an_order_signed_by_another_key_is_refused_by_the_venue(venue: Any) -> None:
    from exchanges.base import AuthenticationError

    client = venue_client(venue, EDGEX_TRADING_PRIVATE_KEY="0x" + "5a" * 32)
    await client.connect()
    try:
        bid, _ask = await client.fetch_bbo_prices("10000002")
        with pytest.raises(AuthenticationError, match="INVALID_L2_SIGNATURE"):
            await client.place_limit_order("10000002", OrderSide.BUY, SIZE, bid - 1, track_id(client))
        state = venue.state()
        assert state["order_signature_failures"] == 1 and state["orders"] == []
    finally:
        await client.disconnect()


async def test_a_tampered_order_signature_or_field_is_refused_and_the_true_one_accepted(venue: Any) -> None:
    import json as _json
    import urllib.request

    from exchanges.edgex import CREATE_PATH, OrderSigner, OrderSpec, body_text, hmac_headers, now_ms

    client = venue_client(venue)
    signer = OrderSigner(client.settings)
    spec = OrderSpec("10000002", OrderSide.BUY, "0.01", "2990", "POST_ONLY", "12345000000009")
    body = await signer.build_async(spec, venue.metadata)

    def post(data: dict[str, Any]) -> dict[str, Any]:
        headers = hmac_headers(client.settings, "POST", CREATE_PATH, body_text("POST", None, data), now_ms())
        request = urllib.request.Request(
            venue.base_url + CREATE_PATH,
            data=_json.dumps(data).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return _json.loads(response.read())
        except urllib.error.HTTPError as error:
            return _json.loads(error.read())

    flipped = (
        body["l2Signature"][:10] + ("0" if body["l2Signature"][10] != "0" else "1") + body["l2Signature"][11:]
    )
    for tampered in (dict(body, l2Signature=flipped), dict(body, price="2989.99"), dict(body, side="SELL")):
        answer = await asyncio.to_thread(post, tampered)
        assert answer["code"] == "INVALID_L2_SIGNATURE", answer
    assert venue.state()["orders"] == []
    answer = await asyncio.to_thread(post, body)
    assert answer["code"] == "SUCCESS" and answer["data"]["orderId"]
    assert venue.state()["order_signature_failures"] == 3 and len(venue.state()["orders"]) == 1


async def test_a_wrong_api_secret_fails_connect_typed_and_the_private_stream_refuses_it(venue: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from exchanges.base import AuthenticationError

    client = venue_client(venue, EDGEX_API_SECRET="not-the-secret")
    with pytest.raises(AuthenticationError, match="INVALID_SIGNATURE"):
        await client.connect()
    assert venue.state()["signature_failures"] == 1
    with pytest.raises(InvalidStatus) as refused:
        async with connect(client._private_url(), additional_headers=client._private_headers()):
            pass
    assert refused.value.response.status_code == 401
    good = venue_client(venue)
    async with connect(good._private_url(), additional_headers=good._private_headers()) as ws:
        assert ws.response is not None and ws.response.status_code == 101


async def test_the_venues_pings_are_answered_so_it_keeps_both_sockets(
    venue: Any, client: EdgexClient
) -> None:
    # Seven of the venue's 50 ms pings answered on each socket: five unanswered would end it.
    await wait_until(lambda: venue.state()["pongs"] >= 14)
    state = venue.state()
    assert state["ping_timeouts"] == 0 and state["ws_connections"] == 2 and state["private_connections"] == 1


async def test_active_orders_are_read_page_by_page(venue: Any) -> None:
    client = venue_client(venue, params={"active_page_size": 2})
    await client.connect()
    try:
        bid, _ask = await client.fetch_bbo_prices("10000002")
        placed = []
        for i in range(5):
            client_id = track_id(client)
            await client.place_limit_order("10000002", OrderSide.BUY, SIZE, bid - 10 - i, client_id)
            placed.append(client_id)
        before = venue.state()["rest_calls"].get("GET /api/v2/private/order/getActiveOrderPage", 0)
        active = await client.get_active_orders("10000002")
        assert sorted(o.client_order_id for o in active) == sorted(placed)
        after = venue.state()["rest_calls"]["GET /api/v2/private/order/getActiveOrderPage"]
        assert after - before == 3  # pages of 2, 2 and 1
    finally:
        await client.disconnect()


def track_id(client: EdgexClient) -> str:
    return client.client_ids.next_id(client.clock.now())


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (200, '{"code": "SUCCESS", "data": {"coinList": [], "contractList": "x"}}', "InvalidVenueData"),
        (200, "<html>gateway</html>", "InvalidVenueData"),
        (
            200,
            '{"code":"SUCCESS","data":{"coinList":[],"contractList":[{"contractId":"1","tickSize":"-1"}]}}',
            "InvalidVenueData",
        ),
        (503, "", "ExchangeUnavailable"),
        (429, "", "RateLimitExceeded"),
    ],
)
async def test_a_malformed_or_failed_rest_answer_is_a_typed_error_naming_the_endpoint(
    status: int, text: str, kind: str
) -> None:
    client, _updates = make_client()
    client.retry.max_attempts = 1

    async def answer(*_args: Any, **_kwargs: Any) -> tuple[int, str, str | None]:
        return status, text, "2"

    client._rest.http.request = answer  # type: ignore[method-assign]
    with pytest.raises(Exception) as info:
        await client.get_contract_info("ETH")
    assert type(info.value).__name__ == kind
    assert "getMetaData" in str(info.value) or kind != "InvalidVenueData"


async def test_a_hostile_order_in_a_looked_up_page_is_invalid_venue_data_naming_the_endpoint() -> None:
    import json as _json

    from exchanges.edgex import ACTIVE_PAGE_PATH, BY_CLIENT_ID_PATH
    from helpers.venue_validation import InvalidVenueData

    client, _updates = make_client()
    client.retry.max_attempts = 1
    ours = track_id(client)
    row = order_row(ours, "OPEN", "NaN")

    async def answer(method: str, url: str, **_kwargs: Any) -> tuple[int, str, str | None]:
        data: Any = {"dataList": [row], "nextPageOffsetData": ""} if ACTIVE_PAGE_PATH in url else [row]
        return 200, _json.dumps({"code": "SUCCESS", "data": data}), None

    client._rest.http.request = answer  # type: ignore[method-assign]
    with pytest.raises(InvalidVenueData, match=ACTIVE_PAGE_PATH):
        await client.get_active_orders("10000002")
    with pytest.raises(InvalidVenueData, match=BY_CLIENT_ID_PATH):
        await client.find_order("10000002", ours)
