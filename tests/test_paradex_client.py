"""Paradex connector: wire mapping from the captured messages, hostile inputs, settings, and the
behaviours the contract suite does not reach (Stark signatures refused by the venue, JWT refresh
before expiry and after a refusal, POST_ONLY_WOULD_CROSS, fills reported twice), against the
loopback venue that verifies the signatures with paradex-py's typed data.

Runs in .venv-paradex (``bash scripts/paradex_env.sh --dev``); skipped elsewhere unless
PARADEX_TESTS_REQUIRED=1 (CI), where a missing SDK fails instead.
"""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.request
from decimal import Decimal
from typing import Any

import pytest

from tests.paradex_support import require_paradex_sdk

require_paradex_sdk()

from exchanges.base import (  # noqa: E402  (after the SDK check, on purpose)
    AuthenticationError,
    ConfigurationError,
    InsufficientFunds,
    MalformedMessage,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    PostOnlyRejected,
    RateLimitExceeded,
)
from exchanges.connector_kit import PriceLevels  # noqa: E402
from exchanges.paradex import (  # noqa: E402
    ParadexClient,
    ParadexSettings,
    TokenRejected,
    depth_continues,
    jwt_expiry,
    map_error,
    market_of,
    order_report,
    position_of,
    trade_report,
)
from helpers import safe_json  # noqa: E402
from helpers.clock import LiveClock  # noqa: E402
from helpers.venue_validation import InvalidVenueData  # noqa: E402
from tests.connector_fixtures import venue_and_client, venue_config, wait_until  # noqa: E402
from tests.mock_venues.paradex_venue import MockParadexVenue  # noqa: E402
from tests.shared_paths import FIXTURES_DIR  # noqa: E402

FIXTURES = FIXTURES_DIR / "paradex"
MARKET = "ETH-USD-PERP"


def fixture(name: str) -> Any:
    """A captured message parsed as the client parses the wire (fractions as Decimal)."""
    return safe_json.loads((FIXTURES / name).read_text())


config = venue_config("paradex")
venue, client = venue_and_client(MockParadexVenue, ParadexClient, config)


class OffsetClock(LiveClock):
    """Wall-clock time moved on by ``offset`` seconds (the JWT's view of time, without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset


async def stream_authenticated(venue: MockParadexVenue) -> None:
    """Until the venue has taken the stream's ``auth`` (its private subscription is in): a token
    revoked before that would refuse the stream too, and the test would count that refusal."""
    await wait_until(lambda: len(venue.subscribers.get(f"orders.{MARKET}", ())) == 1)


# -- pure mapping from the captured messages ---------------------------------------------------


def test_order_messages_map_into_our_vocabulary() -> None:
    streamed = order_report(fixture("ws_orders_doc.json")["params"]["data"], 0.0)
    assert (streamed.client_order_id, streamed.order_id, streamed.side) == ("x1234", "123456", OrderSide.BUY)
    assert streamed.status is OrderStatus.PENDING  # NEW: accepted, not yet in the book
    assert streamed.size == Decimal("0.05") and streamed.filled_size == Decimal("0.05")
    assert streamed.average_fill_price == Decimal("26000") and streamed.timestamp == 1681493746.016

    closed = order_report(fixture("http_order_closed_user_canceled.json"), 0.0)
    assert closed.status is OrderStatus.CANCELLED and closed.venue_status == "USER_CANCELED"
    assert closed.filled_size == 0 and closed.average_fill_price is None and closed.side is OrderSide.SELL

    rejected = dict(fixture("http_order_closed_user_canceled.json"), cancel_reason="POST_ONLY_WOULD_CROSS")
    rejected["instruction"] = "POST_ONLY"
    report = order_report(rejected, 0.0)
    assert report.status is OrderStatus.REJECTED and report.post_only
    assert report.venue_status == "POST_ONLY_WOULD_CROSS"

    filled = dict(
        fixture("http_order_closed_user_canceled.json"), remaining_size="0", avg_fill_price="70784.5"
    )
    assert order_report(filled, 0.0).status is OrderStatus.FILLED
    (open_row,) = fixture("http_open_orders_doc.json")["results"]
    assert order_report(open_row, 0.0).order_type.value == "market"


def test_fills_positions_markets_and_the_book_map_from_the_captured_messages() -> None:
    streamed = trade_report(fixture("ws_fills.json")["params"]["data"], 0.0)
    (rest,) = fixture("http_fills.json")["results"]
    rest_fill = trade_report(rest, 0.0)
    assert streamed.fee == Decimal("0.1945587") and streamed.is_maker is False
    assert streamed.size == Decimal("0.01") and streamed.price == Decimal("64852.9")
    assert streamed.client_order_id is None and rest_fill.order_id == streamed.order_id

    (position_row,) = fixture("http_positions.json")["results"]
    position = position_of(position_row)
    assert position.size == Decimal("0.01") and position.entry_price == Decimal("64839.96053748")
    assert position.liquidation_price is None  # "" on the wire
    short = position_of(dict(fixture("ws_positions.json")["params"]["data"], side="SHORT"))
    assert short.size == Decimal("-0.01")

    (market_row,) = fixture("http_markets_boden_perp.json")["results"]
    market = market_of(market_row, Decimal("0.03"))
    assert (market.contract_id, market.ticker) == ("BODEN-USD-PERP", "BODEN")
    assert market.tick_size == Decimal("0.00001") and market.size_step == Decimal("1")
    assert market.min_notional == Decimal("200") and market.min_size == Decimal("6667")

    book = PriceLevels("paradex BTC-USD-PERP")
    snapshot = fixture("http_orderbook_snapshot.json")
    book.replace(snapshot["bids"], snapshot["asks"], snapshot["seq_no"])
    assert book.top() == (Decimal("68477.6"), Decimal("69578.2"))
    assert depth_continues(book, fixture("ws_order_book_snapshot.json")["params"]["data"])
    assert book.top() == (Decimal("67629.7"), Decimal("69378.6")) and book.sequence == 14127815
    older = dict(fixture("ws_order_book_snapshot.json")["params"]["data"], seq_no=14127000, inserts=[])
    assert depth_continues(book, older) and book.top() == (Decimal("67629.7"), Decimal("69378.6"))
    gap = {"seq_no": 14127817, "update_type": "d", "inserts": [], "updates": [], "deletes": []}
    assert not depth_continues(book, gap)


def test_error_codes_are_typed() -> None:
    assert isinstance(
        map_error(fixture("http_error_not_onboarded.json"), 400, "POST /auth/0x1"), AuthenticationError
    )
    assert "onboard" in str(map_error(fixture("http_error_not_onboarded.json"), 400, "POST /auth/0x1"))
    assert isinstance(map_error({"error": "INVALID_TOKEN"}, 401, "GET /orders"), TokenRejected)
    assert isinstance(map_error({"error": "ORDER_IS_CLOSED"}, 400, "DELETE /orders/1"), OrderNotFound)
    assert isinstance(map_error({"error": "NOT_ENOUGH_MARGIN"}, 400, "POST /orders"), InsufficientFunds)
    assert isinstance(map_error(None, 429, "GET /orders"), RateLimitExceeded)
    assert isinstance(map_error("<html>", 404, "GET /orders/7"), OrderNotFound)
    token = fixture("ws_auth_response.json")["result"]["node_id"]
    assert jwt_expiry(token) is None and jwt_expiry("a.eyJleHAiOiAxNzAwMDAwMDAwfQ.c") == 1700000000.0


# -- hostile inputs ----------------------------------------------------------------------------

HOSTILE_ORDERS = {
    "NaN size": {"size": "NaN"},
    "infinite remaining": {"remaining_size": "Infinity"},
    "huge size": {"size": "1e999999"},
    "float size": {"size": 0.05},
    "bool size": {"size": True},
    "negative remaining": {"remaining_size": "-1"},
    "remaining above size": {"remaining_size": "0.06"},
    "unknown side": {"side": "HOLD"},
    "missing size": {"size": None},
}


@pytest.mark.parametrize("change", HOSTILE_ORDERS.values(), ids=HOSTILE_ORDERS.keys())
def test_hostile_order_messages_raise_invalid_venue_data(change: dict[str, Any]) -> None:
    raw = dict(fixture("ws_orders_doc.json")["params"]["data"], **change)
    with pytest.raises(InvalidVenueData):
        order_report(raw, 0.0)


@pytest.mark.parametrize(
    "change",
    [{"price": "0"}, {"price": "-64852.9"}, {"size": "abc"}, {"fee": "NaN"}, {"id": ""}, {"price": 64852.9}],
)
def test_hostile_fills_raise_invalid_venue_data(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidVenueData):
        trade_report(dict(fixture("ws_fills.json")["params"]["data"], **change), 0.0)


async def test_a_malformed_stream_message_is_counted_not_raised(client: ParadexClient) -> None:
    message = fixture("ws_orders_doc.json")
    message["params"]["data"]["size"] = "NaN"
    client._on_message(message)
    client._on_message(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "fills.X", "data": 7}}
    )
    assert client._malformed.total == 2


async def test_a_malformed_rest_body_is_invalid_venue_data_naming_the_endpoint(
    client: ParadexClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {
        "/positions": {"results": [{"market": MARKET, "size": "1.5x", "side": "LONG"}]},
        "/account": {"account_value": "1000"},
        "/orders": {"result": []},
    }

    async def send(method: str, path: str, **_: Any) -> Any:
        return answers[path]

    monkeypatch.setattr(client._rest, "send", send)
    with pytest.raises(InvalidVenueData, match="GET /positions"):
        await client.get_position(MARKET)
    with pytest.raises(InvalidVenueData, match="GET /account"):
        await client.get_account_snapshot()
    with pytest.raises(InvalidVenueData, match="GET /orders"):
        await client.get_active_orders(MARKET)


async def test_an_unreadable_order_answer_leaves_the_order_pending_not_refused(
    client: ParadexClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    send = client._rest.send

    async def garbled(method: str, path: str, **kwargs: Any) -> Any:
        answer = await send(method, path, **kwargs)
        return {"id": "7", "size": "NaN"} if (method, path) == ("POST", "/orders") else answer

    monkeypatch.setattr(client._rest, "send", garbled)
    client.params["order_ack_timeout"] = 0.2
    bid, _ask = await client.fetch_bbo_prices(MARKET)
    cid = client.client_ids.next_id(client.clock.now())
    result = await client.place_limit_order(MARKET, OrderSide.BUY, Decimal("0.01"), bid - 1, cid)
    assert result.status in (OrderStatus.PENDING, OrderStatus.OPEN)  # the stream may confirm it
    assert client._malformed.counts == {"non-finite number": 1}
    assert (await client.find_order(MARKET, cid)).status is OrderStatus.OPEN


# -- settings ------------------------------------------------------------------------------------


def test_settings_are_checked_and_never_echo_the_key(venue: MockParadexVenue) -> None:
    env = venue.env()
    ParadexSettings.load(env, {})
    secret = env["PARADEX_L2_PRIVATE_KEY"]
    for name, value in [
        ("PARADEX_L2_PRIVATE_KEY", ""),
        ("PARADEX_L2_PRIVATE_KEY", secret + "zz"),
        ("PARADEX_L1_ADDRESS", "0x1234"),
        ("PARADEX_L2_ADDRESS", secret + "g"),
        ("PARADEX_ENVIRONMENT", "mainnet"),
        ("PARADEX_BASE_URL", "ftp://127.0.0.1"),
    ]:
        with pytest.raises(ConfigurationError, match=name) as error:
            ParadexSettings.load({**env, name: value}, {})
        assert secret not in str(error.value)
    assert secret not in repr(ParadexSettings.load(env, {}))


# -- Stark signatures, verified by the venue ----------------------------------------------------


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_the_venue_refuses_a_tampered_auth_signature(
    client: ParadexClient, venue: MockParadexVenue
) -> None:
    signer = client._auth.signer
    assert signer is not None
    url = f"{venue.base_url}/v1/auth/{signer.public_key}"
    headers = signer.auth_headers()
    assert (await asyncio.to_thread(_post, url, headers))[0] == 200
    r, s = json.loads(headers["PARADEX-STARKNET-SIGNATURE"])
    tampered = {**headers, "PARADEX-STARKNET-SIGNATURE": json.dumps([str(int(r) + 1), s])}
    status, body = await asyncio.to_thread(_post, url, tampered)
    assert status == 401 and body["error"] == "STARKNET_SIGNATURE_VERIFICATION_FAILED"
    later = {**headers, "PARADEX-SIGNATURE-EXPIRATION": str(int(headers["PARADEX-SIGNATURE-EXPIRATION"]) + 1)}
    status, body = await asyncio.to_thread(_post, url, later)  # signed fields changed after signing
    assert status == 401 and body["error"] == "STARKNET_SIGNATURE_VERIFICATION_FAILED"
    assert venue.state()["signature_failures"] == 2


async def test_a_client_with_the_wrong_key_cannot_connect(venue: MockParadexVenue) -> None:
    env = {**venue.env(), "PARADEX_L2_PRIVATE_KEY": "0x1234567"}
    bot = ParadexClient(config(), LiveClock(), env=env)
    with pytest.raises(AuthenticationError, match="ACCOUNT_NOT_FOUND"):
        await bot.connect()  # the venue knows no account under that key's public key
    await bot.disconnect()
    assert venue.state()["auths"] == 0


async def test_the_venue_refuses_an_order_whose_signed_fields_were_changed(
    client: ParadexClient, venue: MockParadexVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = client._auth.signer
    assert signer is not None
    sign = signer.signed_order

    def tampered(*args: Any, **kwargs: Any) -> dict[str, Any]:
        body = sign(*args, **kwargs)
        return dict(body, price=str(Decimal(body["price"]) - 1))  # a cheaper price than was signed

    monkeypatch.setattr(signer, "signed_order", tampered)
    bid, _ask = await client.fetch_bbo_prices(MARKET)
    with pytest.raises(AuthenticationError, match="INVALID_ORDER_SIGNATURE"):
        await client.place_limit_order(
            MARKET, OrderSide.BUY, Decimal("0.01"), bid - 1, client.client_ids.next_id(client.clock.now())
        )
    state = venue.state()
    assert state["signature_failures"] == 1 and state["orders"] == []

    monkeypatch.setattr(signer, "signed_order", sign)
    result = await client.place_limit_order(
        MARKET, OrderSide.BUY, Decimal("0.01"), bid - 1, client.client_ids.next_id(client.clock.now())
    )
    assert result.status is OrderStatus.OPEN and venue.state()["orders_verified"] == 1


# -- the JWT -------------------------------------------------------------------------------------


async def test_the_jwt_is_refreshed_before_it_expires(venue: MockParadexVenue) -> None:
    clock = OffsetClock()
    bot = ParadexClient(config(jwt_refresh_margin=30.0), clock, env=venue.env())
    await bot.connect()
    try:
        first = bot._auth.token
        await bot.get_active_orders(MARKET)
        assert venue.state()["auths"] == 1
        clock.offset = 300.0 - 30.0 + 1.0  # the venue's tokens live 300 s: now inside the margin
        await bot.get_active_orders(MARKET)
        state = venue.state()
        assert state["auths"] == 2 and state["tokens_refused"] == 0
        assert bot._auth.token != first and bot._rest.tokens_refused == 0
    finally:
        await bot.disconnect()


async def test_a_refused_jwt_is_replaced_and_the_request_sent_again(
    client: ParadexClient, venue: MockParadexVenue
) -> None:
    assert await client.get_active_orders(MARKET) == []
    await stream_authenticated(venue)
    assert venue.expire_tokens() == 1
    bid, _ask = await client.fetch_bbo_prices(MARKET)
    cid = client.client_ids.next_id(client.clock.now())
    result = await client.place_limit_order(MARKET, OrderSide.BUY, Decimal("0.01"), bid - 1, cid)
    assert result.status is OrderStatus.OPEN
    state = venue.state()
    assert state["tokens_refused"] == 1 and state["auths"] == 2 and len(state["orders"]) == 1
    assert client._rest.tokens_refused == 1


async def test_a_bearer_token_error_on_the_stream_reconnects_with_a_fresh_token(
    client: ParadexClient, venue: MockParadexVenue
) -> None:
    ws = client._ws
    assert ws is not None and ws.connects == 1
    await stream_authenticated(venue)
    venue.expire_tokens()
    client._on_message(fixture("ws_error_invalid_bearer_token.json"))
    await wait_until(lambda: ws.connects == 2 and ws.connected.is_set())
    state = venue.state()
    assert state["auths"] == 2 and state["tokens_refused"] == 0
    await wait_until(lambda: client._books[MARKET].top() is not None)


# -- post-only and fills -----------------------------------------------------------------------


async def test_post_only_would_cross_is_a_typed_rejection(
    client: ParadexClient, venue: MockParadexVenue
) -> None:
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    _bid, ask = await client.fetch_bbo_prices(MARKET)
    cid = client.client_ids.next_id(client.clock.now())
    with pytest.raises(PostOnlyRejected):
        await client.place_limit_order(MARKET, OrderSide.BUY, Decimal("0.01"), ask, cid)
    (order,) = venue.state()["orders"]
    assert (order["status"], order["cancel_reason"], order["instruction"]) == (
        "CLOSED",
        "POST_ONLY_WOULD_CROSS",
        "POST_ONLY",
    )
    assert [u.order.status for u in updates if u.order.client_order_id == cid][-1] is OrderStatus.REJECTED
    assert all(u.fill is None for u in updates)


async def test_a_fill_reported_twice_and_by_both_channels_is_counted_once(
    client: ParadexClient, venue: MockParadexVenue
) -> None:
    fills: list[Any] = []
    client.subscribe_order_updates(lambda u: fills.append(u.fill) if u.fill is not None else None)
    bid, _ask = await client.fetch_bbo_prices(MARKET)
    cid = client.client_ids.next_id(client.clock.now())
    await client.place_limit_order(MARKET, OrderSide.BUY, Decimal("0.01"), bid, cid)
    half = Decimal("0.005")
    await asyncio.to_thread(venue.trade_through, bid, half)
    await wait_until(lambda: sum(f.size for f in fills) == half)
    (venue_fill,) = fills
    assert venue_fill.is_maker and not venue_fill.fee_estimated  # the fills channel's exact fee
    assert venue_fill.fee == (half * bid * Decimal("0.000075")).quantize(Decimal("0.0000001"))

    replay = fixture("ws_fills.json")
    replay["params"]["data"].update(
        id=venue_fill.trade_id, client_id=cid, order_id=venue_fill.order_id, size=str(half), price=str(bid)
    )
    order_message = fixture("ws_orders_doc.json")
    order_message["params"]["data"].update(
        client_id=cid,
        id=venue_fill.order_id,
        market=MARKET,
        size="0.01",
        remaining_size="0.005",
        status="OPEN",
    )
    for message in (replay, copy.deepcopy(replay), order_message):
        client._on_message(message)
    found = await client.find_order(MARKET, cid)  # the REST read-back reports it once more
    assert found.status is OrderStatus.PARTIALLY_FILLED and found.filled_size == half
    assert len(fills) == 1


async def test_find_order_reads_finished_orders_from_the_history(
    client: ParadexClient, venue: MockParadexVenue
) -> None:
    bid, _ask = await client.fetch_bbo_prices(MARKET)
    cid = client.client_ids.next_id(client.clock.now())
    result = await client.place_limit_order(MARKET, OrderSide.BUY, Decimal("0.01"), bid - 5, cid)
    await client.cancel_order(MARKET, result.order_id or "")
    before = sum(1 for r in venue.state()["signed_requests"] if r["path"] == "GET /v1/orders-history")
    found = await client.find_order(MARKET, cid)
    after = sum(1 for r in venue.state()["signed_requests"] if r["path"] == "GET /v1/orders-history")
    assert found.status is OrderStatus.CANCELLED and after == before + 1
    with pytest.raises(OrderNotFound):
        await client.find_order(MARKET, client.client_ids.next_id(client.clock.now()))


def test_hostile_frames_never_reach_the_handler_as_exceptions() -> None:
    with pytest.raises(MalformedMessage):
        trade_report("not a fill", 0.0)  # type: ignore[arg-type]
