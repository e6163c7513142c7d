"""GRVT connector against its loopback venue: what the contract suite does not reach. The long
post-only expiry (and what a one-day expiry does a day later), expired and tampered signatures
refused by the venue, session renewal, signing off the event loop, book and private-stream
sequence gaps, duplicate fills, malformed frames and REST bodies, the bounded history search."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("pysdk")

from exchanges import grvt
from exchanges.base import (
    AuthenticationError,
    InvalidOrder,
    NetworkError,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    PostOnlyRejected,
)
from exchanges.grvt import GrvtClient
from exchanges.grvt_wire import DAY_NS, NANOS
from exchanges.venue_orders import OrderSearchTruncated
from helpers.clock import LiveClock, SimulatedClock
from helpers.venue_validation import InvalidVenueData
from tests.connector_fixtures import captured, venue_and_client, venue_config, wait_until
from tests.mock_venues.grvt_venue import MockGrvtVenue
from tests.shared_paths import FIXTURES_DIR

fixture = captured(FIXTURES_DIR / "grvt")
config = venue_config("grvt")
venue, client = venue_and_client(MockGrvtVenue, GrvtClient, config)
ETH = "ETH_USDT_Perp"
SIZE = Decimal("0.01")


def recorder(bot: GrvtClient) -> list[OrderUpdate]:
    updates: list[OrderUpdate] = []
    bot.subscribe_order_updates(updates.append)
    return updates


async def rest_buy(bot: GrvtClient, price: Decimal = Decimal("2990")) -> str:
    client_id = bot.client_ids.next_id(bot.clock.now())
    await bot.place_limit_order(ETH, OrderSide.BUY, SIZE, price, client_id)
    return client_id


def placed(venue: MockGrvtVenue) -> list[dict[str, Any]]:
    return [r["params"] for r in venue.state()["signed_requests"] if r["path"] == "create_order"]


# -- expiry ------------------------------------------------------------------------------------


async def test_post_only_orders_carry_the_long_expiry_and_market_orders_a_short_one(
    venue: MockGrvtVenue, client: GrvtClient
) -> None:
    before = time.time_ns()
    await rest_buy(client)
    await client.place_market_order(
        ETH, OrderSide.BUY, SIZE, client.client_ids.next_id(client.clock.now()), Decimal(1)
    )
    resting, taking = placed(venue)
    assert resting["postOnly"] is True and resting["timeInForce"] == "GOOD_TILL_TIME"
    assert int(resting["expiration"]) >= before + 28 * DAY_NS - 60 * NANOS
    assert taking["timeInForce"] == "IMMEDIATE_OR_CANCEL"
    assert int(taking["expiration"]) <= time.time_ns() + 300 * NANOS


async def test_a_day_later_the_one_day_expiry_has_removed_its_order_and_ours_rests(
    venue: MockGrvtVenue, client: GrvtClient
) -> None:
    """What happened to earlier bots' take-profits: the SDK's one-day expiry, and the venue
    cancels the order when it passes. With ours the order is still resting."""
    one_day_config = dataclasses.replace(
        config(order_expiry_days=1), bot_name="sdk_default", client_id_prefix=""
    )
    one_day = GrvtClient(one_day_config, LiveClock(), env=venue.env())
    assert one_day.client_ids.prefix != client.client_ids.prefix
    await one_day.connect()
    try:
        theirs = recorder(one_day)
        ours_id = await rest_buy(client)
        their_id = await rest_buy(one_day, Decimal("2980"))
        assert venue.advance_clock(2 * 86_400) == 1
        await wait_until(lambda: any(u.order.status is OrderStatus.EXPIRED for u in theirs))
        assert (await one_day.find_order(ETH, their_id)).status is OrderStatus.EXPIRED
        assert (await client.find_order(ETH, ours_id)).status is OrderStatus.OPEN
        assert venue.order_status(their_id) == ("CANCELLED", "EXPIRED")
    finally:
        await one_day.disconnect()


async def test_the_venue_refuses_a_signature_that_has_already_expired(venue: MockGrvtVenue) -> None:
    """A clock 40 days behind signs an expiration already past: 2001, a typed refusal."""
    behind = GrvtClient(config(), SimulatedClock(time.time() - 40 * 86_400), env=venue.env())
    await behind.connect()
    try:
        with pytest.raises(InvalidOrder, match="2001"):
            await rest_buy(behind)
        assert venue.state()["expired_refusals"] == 1 and venue.state()["orders"] == []
    finally:
        await behind.disconnect()


# -- signatures, sessions, the loop ------------------------------------------------------------


async def test_a_tampered_signature_is_refused_by_the_venue(venue: MockGrvtVenue, client: GrvtClient) -> None:
    sign = client.signer.sign

    def tampered(intent: Any) -> dict[str, Any]:
        body = sign(intent)
        body["order"]["legs"][0]["limit_price"] = "2989.99"  # signed for 2990
        return body

    client.signer.sign = tampered  # type: ignore[method-assign]
    with pytest.raises(AuthenticationError, match="2002"):
        await rest_buy(client)
    state = venue.state()
    assert state["signature_failures"] == 1 and state["orders"] == []


async def test_a_wrong_api_key_fails_connect_as_authentication(venue: MockGrvtVenue) -> None:
    bot = GrvtClient(config(), LiveClock(), env={**venue.env(), "GRVT_API_KEY": "0123456789abcdef"})
    with pytest.raises(AuthenticationError, match="GRVT_API_KEY") as refused:
        await bot.connect()
    assert "0123456789abcdef" not in str(refused.value)


async def test_a_dropped_session_logs_in_again_once(venue: MockGrvtVenue, client: GrvtClient) -> None:
    assert venue.state()["logins"] == 1  # the private stream's handshake reuses the cookie
    venue.expire_sessions()
    assert await client.get_active_orders(ETH) == []
    state = venue.state()
    assert state["logins"] == 2 and state["unauthenticated"] == 1


async def test_the_private_stream_comes_back_with_a_new_session(
    venue: MockGrvtVenue, client: GrvtClient
) -> None:
    """The venue logs everyone out and drops the sockets: the trades socket's next handshake is
    refused (401) until the client has logged in again, then it reconnects."""
    trades = client._trades_ws
    assert trades is not None and trades.connects == 1
    venue.expire_sessions()
    venue.drop_connections()
    await wait_until(lambda: trades.connects >= 2, timeout=10)
    state = venue.state()
    assert state["logins"] >= 2 and state["unauthenticated"] >= 1
    assert await client.get_active_orders(ETH) == []


async def test_orders_are_signed_off_the_event_loop(client: GrvtClient) -> None:
    threads: list[threading.Thread] = []
    sign = client.signer.sign

    def spy(intent: Any) -> dict[str, Any]:
        threads.append(threading.current_thread())
        return sign(intent)

    client.signer.sign = spy  # type: ignore[method-assign]
    await rest_buy(client)
    assert threads and all(t is not threading.main_thread() for t in threads)


async def test_a_post_only_order_that_would_cross_is_refused_on_the_stream(
    venue: MockGrvtVenue, client: GrvtClient
) -> None:
    _bid, ask = await client.fetch_bbo_prices(ETH)
    with pytest.raises(PostOnlyRejected):
        await client.place_limit_order(
            ETH, OrderSide.BUY, SIZE, ask, client.client_ids.next_id(client.clock.now())
        )
    (order,) = venue.state()["orders"]
    assert (order["status"], order["rejectReason"]) == ("REJECTED", "FAIL_POST_ONLY")


# -- streams -----------------------------------------------------------------------------------


async def test_a_book_gap_resubscribes_for_a_fresh_snapshot(venue: MockGrvtVenue, client: GrvtClient) -> None:
    await client.fetch_bbo_prices(ETH)
    market = client._books[ETH]
    await wait_until(lambda: market.book.valid and not market.resyncing)
    venue.inject_book_gap(1)
    await asyncio.to_thread(venue.trade_through, Decimal("2990"))  # this delta is skipped
    await asyncio.to_thread(venue.trade_through, Decimal("2980"))  # this one shows the gap
    await wait_until(
        lambda: market.book.gaps == 1 and market.book.valid and market.book.top() == venue.best_bid_ask()
    )
    assert await client.fetch_bbo_prices(ETH) == (Decimal("2979.99"), Decimal("2980.01"))
    await asyncio.to_thread(venue.trade_through, Decimal("2985"))  # deltas continue after it
    await wait_until(lambda: market.book.top() == (Decimal("2984.99"), Decimal("2985.01")))
    assert market.book.gaps == 1


async def test_a_private_gap_reads_our_orders_back_and_asks_the_bot_to_reconcile(
    venue: MockGrvtVenue, client: GrvtClient
) -> None:
    reconciles: list[int] = []
    client.subscribe_reconnects(lambda: reconciles.append(1))
    updates = recorder(client)
    client_id = await rest_buy(client)
    venue.inject_private_gap(3)  # the next trade's fill, order and state reports are lost
    await asyncio.to_thread(venue.trade_through, Decimal("2989"))
    assert not any(u.order.status is OrderStatus.FILLED for u in updates) and not reconciles
    await rest_buy(client, Decimal("2980"))  # its reports show the order feeds skipped numbers
    await wait_until(lambda: any(u.order.status is OrderStatus.FILLED for u in updates))
    assert reconciles and client.stream_gaps >= 1
    fills = [u.fill for u in updates if u.fill is not None and u.fill.client_order_id == client_id]
    assert sum(f.size for f in fills) == SIZE  # found by reading the order back, booked once


def private_message(stream: str, sequence: int, feed: dict[str, Any]) -> dict[str, Any]:
    return {
        "stream": stream,
        "selector": "2147050003876484-ETH_USDT_Perp",
        "sequence_number": str(sequence),
        "feed": feed,
        "prev_sequence_number": str(sequence - 1),
    }


async def test_a_fill_sent_twice_is_booked_once(client: GrvtClient) -> None:
    updates = recorder(client)
    client_id = await rest_buy(client)
    fill = fixture("ws_fill.json")["feed"]
    fill.update(client_order_id=client_id, size="0.005", price="2990", order_id="0x0a", instrument=ETH)
    client._on_trades_message(private_message("v1.fill", 1000, fill))
    client._on_trades_message(private_message("v1.fill", 1000, fill))  # the same message again
    client._on_trades_message(private_message("v1.fill", 1001, fill))  # re-sent with a new number
    fills = [u.fill for u in updates if u.fill is not None]
    assert len(fills) == 1 and fills[0].size == SIZE / 2 and fills[0].fee == Decimal("0.040263")


@pytest.mark.parametrize(
    "frame",
    [
        "not json at all",
        {"stream": "v1.fill", "sequence_number": "NaN", "feed": {}},
        {
            "stream": "v1.fill",
            "sequence_number": "7",
            "feed": {"trade_id": "1-1", "size": "NaN", "price": "1"},
        },
        {
            "stream": "v1.order",
            "sequence_number": "8",
            "feed": {"metadata": {"client_order_id": "1"}, "legs": 5},
        },
        {"stream": "v1.order", "sequence_number": "9", "feed": "a string"},
        {"jsonrpc": "2.0", "error": {"code": 1000, "message": "You need to authenticate"}},
    ],
)
async def test_hostile_private_frames_are_counted_and_dropped(client: GrvtClient, frame: Any) -> None:
    updates = recorder(client)
    client._on_trades_message(frame)
    assert updates == []
    if isinstance(frame, dict) and "feed" in frame and isinstance(frame["feed"], dict) and frame["feed"]:
        assert client.malformed.total == 1


async def test_a_mini_ticker_gap_waits_for_a_fresh_snapshot(venue: MockGrvtVenue, client: GrvtClient) -> None:
    await client.fetch_bbo_prices(ETH)
    await wait_until(lambda: ETH in client._minis)
    selector = next(s for (stream, s) in client._feeds if stream == "v1.mini.d")
    last = client._feeds[("v1.mini.d", selector)].last or 0
    gap = fixture("ws_mini_ticker_delta.json")
    gap.update(selector=selector, sequence_number=str(last + 5), prev_sequence_number=str(last + 4))
    gap["feed"]["instrument"] = ETH
    client._on_market_message(gap)
    assert ETH not in client._minis and client.stream_gaps == 1
    await wait_until(lambda: ETH in client._minis)  # the resubscription brought a snapshot


# -- REST answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "call", "endpoint"),
    [
        ((200, "<html>gateway</html>", {}), "get_active_orders", "/full/v1/open_orders"),
        (
            (200, '{"result": {"total_equity": "NaN"}}', {}),
            "get_account_snapshot",
            "/full/v1/account_summary",
        ),
        (
            (200, '{"result": [{"instrument": "ETH_USDT_Perp", "size": []}]}', {}),
            "get_position",
            "/full/v1/positions",
        ),
        ((200, '{"result": "ok"}', {}), "get_active_orders", "/full/v1/open_orders"),
    ],
)
async def test_a_malformed_rest_body_is_a_typed_error_naming_the_endpoint(
    client: GrvtClient, monkeypatch: pytest.MonkeyPatch, answer: Any, call: str, endpoint: str
) -> None:
    async def garbage(*args: Any, **kwargs: Any) -> Any:
        return answer

    monkeypatch.setattr(client._rest.http, "exchange", garbage)
    with pytest.raises(InvalidVenueData, match=endpoint):
        if call == "get_account_snapshot":
            await client.get_account_snapshot()
        else:
            await getattr(client, call)(ETH)


async def test_the_history_search_is_bounded_and_says_so(
    venue: MockGrvtVenue, client: GrvtClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [await rest_buy(client, Decimal(2990 - i)) for i in range(3)]
    for client_id in ids:
        await client.cancel_order(ETH, client_id)

    async def not_by_id(by: Any) -> Any:
        raise OrderNotFound("grvt /full/v1/order: 1004 Data Not Found")

    monkeypatch.setattr(client, "_read_order", not_by_id)
    monkeypatch.setattr(grvt, "HISTORY_PAGE_SIZE", 2)
    client.params["history_max_pages"] = 1
    with pytest.raises(OrderSearchTruncated):
        await client.find_order(ETH, ids[0])  # the oldest is on the second page
    client.params["history_max_pages"] = 2
    assert (await client.find_order(ETH, ids[0])).status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotFound):
        await client.find_order(ETH, client.client_ids.next_id(client.clock.now()))


async def test_an_unreadable_answer_to_a_placement_leaves_the_order_unknown_not_refused(
    client: GrvtClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venue may have taken the order: a garbled answer must not read as a refusal (the
    execution layer would place it again)."""

    async def garbage(*args: Any, **kwargs: Any) -> Any:
        return 200, "<html>bad gateway</html>", {}

    await client.fetch_bbo_prices(ETH)
    monkeypatch.setattr(client._rest.http, "exchange", garbage)
    client_id = client.client_ids.next_id(client.clock.now())
    with pytest.raises(NetworkError, match="/full/v1/create_order"):
        await client.place_limit_order(ETH, OrderSide.BUY, SIZE, Decimal("2990"), client_id)
    tracked = client._orders.get(client_id)
    assert tracked is not None and tracked.status is OrderStatus.UNKNOWN


async def test_a_book_delta_failing_validation_rebuilds_the_book_instead_of_skipping_it(
    venue: MockGrvtVenue, client: GrvtClient
) -> None:
    await client.fetch_bbo_prices(ETH)
    market = client._books[ETH]
    feed = client._feeds[("v1.book.d", ETH)]
    await wait_until(lambda: market.book.valid and not market.resyncing and feed.last is not None)
    bad = fixture("ws_book_delta_doc.json")
    bad.update(selector=f"{ETH}@100", sequence_number=str(feed.last + 1), prev_sequence_number=str(feed.last))
    bad["feed"].update(instrument=ETH, bids=[{"price": "NaN", "size": "1", "num_orders": 1}], asks=[])
    client._on_market_message(bad)
    assert market.book.gaps == 1 and client.malformed.total == 1
    await wait_until(lambda: market.book.valid and market.book.top() == venue.best_bid_ask())
    await asyncio.to_thread(venue.trade_through, Decimal("2985"))
    await wait_until(lambda: market.book.top() == (Decimal("2984.99"), Decimal("2985.01")))


async def test_account_equity_positions_and_funding(venue: MockGrvtVenue, client: GrvtClient) -> None:
    snapshot = await client.get_account_snapshot()
    assert (snapshot.balance, snapshot.equity, snapshot.positions) == (Decimal("10000"), Decimal("10000"), ())
    await client.place_market_order(
        ETH, OrderSide.BUY, SIZE, client.client_ids.next_id(client.clock.now()), Decimal(1)
    )
    position = await client.get_position(ETH)
    assert position.size == SIZE and position.entry_price == Decimal("3000.01")
    snapshot = await client.get_account_snapshot()
    assert [p.size for p in snapshot.positions] == [SIZE] and snapshot.balance < Decimal("10000")  # the fee
    await wait_until(lambda: ETH in client.streamed_positions)  # the v1.position feed agrees
    assert client.streamed_positions[ETH].size == SIZE
    funding = await client.get_funding_rate(ETH)
    assert (funding.rate, funding.interval_hours) == (Decimal("0.0001"), Decimal(8))  # "0.01" percent
