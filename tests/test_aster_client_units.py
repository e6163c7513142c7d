"""Aster connector: wire mapping from the captured messages, settings, and the behaviours the
contract suite does not reach (HMAC refusal, GTX expiry as a post-only rejection, depth gaps by
``pu``, the listenKey's expiry and keep-alive), against the loopback venue that verifies HMAC."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from exchanges.aster import (
    AsterClient,
    AsterSettings,
    depth_continues,
    map_error,
    order_report,
    stream_reports,
)
from exchanges.base import (
    AuthenticationError,
    ConfigurationError,
    InvalidNonce,
    OrderBelowMinimum,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    PostOnlyRejected,
    RateLimitExceeded,
)
from exchanges.connector_kit import PriceLevels
from helpers.clock import LiveClock
from tests.connector_fixtures import captured, venue_and_client, venue_config, wait_until
from tests.mock_venues.aster_venue import MockAsterVenue
from tests.shared_paths import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "aster"
SYMBOL = "ETHUSDT"


fixture = captured(FIXTURES)
config = venue_config("aster")


# -- pure mapping ------------------------------------------------------------------------------


def test_error_codes_from_the_venue_table_are_typed() -> None:
    assert isinstance(map_error(-1022, "Signature for this request is not valid.", 400), AuthenticationError)
    assert isinstance(map_error(-1021, "Timestamp outside of the recvWindow.", 400), InvalidNonce)
    assert isinstance(map_error(-2011, "Unknown order sent.", 400), OrderNotFound)
    assert isinstance(
        map_error(-4164, "Order's notional must be no smaller than 5.0", 400), OrderBelowMinimum
    )
    assert isinstance(map_error(-5022, "Post Only order will be rejected", 400), PostOnlyRejected)
    assert isinstance(map_error(-1003, "Too many requests", 429), RateLimitExceeded)
    envelope = fixture("http_error_envelope_doc.json")
    assert "Invalid symbol" in str(map_error(envelope["code"], envelope["msg"], 400))


def test_captured_order_objects_and_events_map_to_reports() -> None:
    report = order_report(fixture("http_new_order_response_doc.json"), now=0.0)
    assert (report.client_order_id, report.order_id, report.side) == ("testOrder", "22542179", OrderSide.BUY)
    assert (report.status, report.size, report.filled_size) == (OrderStatus.OPEN, Decimal("10"), 0)
    cancelled = order_report(fixture("http_cancel_order_response_doc.json"), now=0.0)
    assert cancelled.status is OrderStatus.CANCELLED
    event = fixture("ws_order_trade_update_doc.json")
    report, trade = stream_reports(event, now=0.0)
    assert trade is None and report.client_order_id == "TEST" and report.side is OrderSide.SELL
    event["o"].update(
        x="TRADE", X="PARTIALLY_FILLED", l="0.001", L="7100", z="0.001", n="0.0024", t=42, m=True
    )
    report, trade = stream_reports(event, now=0.0)
    assert report.status is OrderStatus.PARTIALLY_FILLED and report.filled_size == Decimal("0.001")
    assert trade is not None and (trade.trade_id, trade.size, trade.price, trade.fee, trade.is_maker) == (
        "42",
        Decimal("0.001"),
        Decimal("7100"),
        Decimal("0.0024"),
        True,
    )


def test_a_gtx_order_that_expired_unfilled_is_a_post_only_rejection() -> None:
    raw = fixture("http_new_order_response_doc.json")
    raw.update(status="EXPIRED", timeInForce="GTX", executedQty="0")
    assert order_report(raw, now=0.0).status is OrderStatus.REJECTED
    raw.update(timeInForce="GTC")
    assert order_report(raw, now=0.0).status is OrderStatus.EXPIRED


def test_depth_continuity_follows_u_and_pu() -> None:
    book = PriceLevels("test")
    book.replace([["100", "1"]], [["101", "1"]], 50)

    def diff(first: int, last: int, previous: int, bid: str = "100") -> dict[str, Any]:
        return {"U": first, "u": last, "pu": previous, "b": [[bid, "2"]], "a": []}

    assert depth_continues(book, diff(40, 45, 39))  # older than the snapshot: skipped
    assert book.bids[Decimal("100")] == 1
    assert not depth_continues(book, diff(52, 55, 51))  # starts after the snapshot: a gap
    book.replace([["100", "1"]], [["101", "1"]], 50)
    assert depth_continues(book, diff(51, 51, 50, "99"))  # follows the snapshot exactly: applied
    book.replace([["100", "1"]], [["101", "1"]], 50)
    assert depth_continues(book, diff(48, 53, 47))  # spans the snapshot: applied
    assert depth_continues(book, diff(54, 54, 53, "99.5"))  # pu continues u
    assert not depth_continues(book, diff(56, 56, 55))  # pu 55 != last u 54: a gap
    assert book.top() == (Decimal("100"), Decimal("101")) and book.bids[Decimal("99.5")] == 2


def test_settings_name_the_variable_and_never_echo_a_key() -> None:
    with pytest.raises(ConfigurationError, match="ASTER_SECRET_KEY is not set"):
        AsterSettings.load({"ASTER_API_KEY": "abc123"}, {})
    secret = "s3cr3tValue"
    with pytest.raises(ConfigurationError) as error:
        AsterSettings.load({"ASTER_API_KEY": "abc123", "ASTER_SECRET_KEY": secret + " !"}, {})
    assert "ASTER_SECRET_KEY" in str(error.value) and secret not in str(error.value)
    settings = AsterSettings.load({"ASTER_API_KEY": "abc123", "ASTER_SECRET_KEY": secret}, {})
    assert secret not in repr(settings) and "abc123" not in repr(settings)


# -- against the venue -------------------------------------------------------------------------


venue, client = venue_and_client(MockAsterVenue, AsterClient, config)


async def test_a_wrong_secret_is_refused_by_the_venue_as_authentication(venue: MockAsterVenue) -> None:
    bot = AsterClient(config(), LiveClock(), env={**venue.env(), "ASTER_SECRET_KEY": "0" * 64})
    with pytest.raises(AuthenticationError):
        await bot.connect()
        await bot.get_active_orders(SYMBOL)
    await bot.disconnect()
    assert venue.state()["signature_failures"] >= 1


async def test_a_depth_gap_rebuilds_the_book(venue: MockAsterVenue, client: AsterClient) -> None:
    await client.fetch_bbo_prices(SYMBOL)
    book = client._books[SYMBOL].book
    await asyncio.to_thread(venue.trade_through, Decimal("3000.5"))  # continues: no gap
    await wait_until(lambda: book.top() == venue.best_bid_ask())
    assert book.gaps == 0
    venue.inject_book_gap(1)
    await asyncio.to_thread(venue.trade_through, Decimal("2990"))
    await asyncio.to_thread(venue.trade_through, Decimal("2980"))
    await wait_until(lambda: book.gaps == 1 and book.valid and book.top() == venue.best_bid_ask())
    assert await client.fetch_bbo_prices(SYMBOL) == (Decimal("2979.99"), Decimal("2980.01"))


async def test_fills_keep_arriving_after_the_listen_key_expires(
    venue: MockAsterVenue, client: AsterClient
) -> None:
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    assert venue.expire_listen_key() == 1
    user_ws = client._user_ws
    assert user_ws is not None
    await wait_until(lambda: client.listen_key_renewals == 1 and user_ws.connects == 2)
    client_id = client.client_ids.next_id(client.clock.now())
    await client.place_limit_order(SYMBOL, OrderSide.BUY, Decimal("0.01"), Decimal("2990"), client_id)
    await asyncio.to_thread(venue.trade_through, Decimal("2989"))
    await wait_until(
        lambda: any(u.fill is not None and u.order.client_order_id == client_id for u in updates)
    )
    fill = next(u.fill for u in updates if u.fill is not None)
    assert fill.fee == Decimal("0.00299") and not fill.fee_estimated  # the venue's exact commission


async def test_the_listen_key_is_kept_alive(venue: MockAsterVenue) -> None:
    bot = AsterClient(config(listen_key_keepalive=0.05), LiveClock(), env=venue.env())
    await bot.connect()
    try:
        await wait_until(lambda: venue.state()["keepalives"] >= 2)
        assert bot.listen_key_renewals == 0
    finally:
        await bot.disconnect()
    assert venue.state()["listen_keys"] == 0  # closed on disconnect
