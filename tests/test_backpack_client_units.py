"""Backpack connector: wire mapping from the captured messages, settings, and the behaviours the
contract suite does not reach (sorted book, depth gaps, signature refusal, expiry), each against
the loopback venue that verifies ED25519 signatures."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

pytest.importorskip("bpx")

from exchanges.backpack import BackpackClient, BackpackSettings, map_error, order_report, stream_reports
from exchanges.base import (
    AuthenticationError,
    ConfigurationError,
    ExchangeUnavailable,
    InvalidNonce,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PostOnlyRejected,
    U32ClientOrderIdFactory,
)
from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig
from tests.connector_fixtures import captured, venue_and_client, venue_config, wait_until
from tests.mock_venues.backpack_venue import MockBackpackVenue, generate_keys
from tests.shared_paths import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "backpack"


fixture = captured(FIXTURES)
config = venue_config("backpack")


# -- pure mapping ------------------------------------------------------------------------------


def test_errors_from_captured_bodies_are_typed() -> None:
    post_only = fixture("http_error_post_only_would_take_liquidity.json")
    assert isinstance(map_error(post_only["code"], post_only["message"], 400), PostOnlyRejected)
    stale = fixture("http_error_timestamp_out_of_range.json")
    assert isinstance(map_error(stale["code"], stale["message"], 400), InvalidNonce)
    down = fixture("http_error_service_unavailable.json")
    assert isinstance(map_error(down["code"], down["message"], 503), ExchangeUnavailable)
    assert isinstance(map_error("RESOURCE_NOT_FOUND", "Order not found", 404), OrderNotFound)
    assert isinstance(map_error("INVALID_SIGNATURE", "Invalid signature", 401), AuthenticationError)


def test_a_captured_fill_event_is_a_trade_with_its_exact_fee() -> None:
    report, trade = stream_reports(fixture("ws_order_update_fill.json")["data"], now=1.0)
    assert report is None  # the capture carries no order quantity: only its trade is usable
    assert trade is not None
    assert (trade.trade_id, trade.client_order_id, trade.order_id) == ("1", "2200123", "8886774")
    assert (trade.size, trade.price, trade.fee) == (Decimal("0.1"), Decimal("10000"), Decimal("20"))
    assert trade.timestamp == pytest.approx(1694687692.98)


def test_a_captured_order_object_maps_to_a_report() -> None:
    report = order_report(fixture("http_order_limit_postonly_new.json"), now=0.0)
    assert report is not None
    assert (report.client_order_id, report.order_id, report.side) == (
        "123456789",
        "4228978331",
        OrderSide.BUY,
    )
    assert (report.status, report.order_type, report.post_only) == (OrderStatus.OPEN, OrderType.LIMIT, True)
    assert (report.size, report.price, report.filled_size) == (Decimal("0.001"), Decimal("3000"), 0)
    assert (
        order_report(fixture("http_order_history_cancelled.json"), now=0.0) is None
    )  # no clientId: not ours


def test_settings_name_the_variable_and_never_echo_a_key() -> None:
    public, secret = generate_keys()
    with pytest.raises(ConfigurationError, match="BACKPACK_SECRET_KEY is not set"):
        BackpackSettings.load({"BACKPACK_PUBLIC_KEY": public}, {})
    with pytest.raises(ConfigurationError) as error:
        BackpackSettings.load(
            {"BACKPACK_PUBLIC_KEY": public, "BACKPACK_SECRET_KEY": "not-a-key-" + secret}, {}
        )
    assert "BACKPACK_SECRET_KEY" in str(error.value) and secret not in str(error.value)
    settings = BackpackSettings.load({"BACKPACK_PUBLIC_KEY": public, "BACKPACK_SECRET_KEY": secret}, {})
    assert secret not in repr(settings)


def test_client_ids_fit_32_bits_and_keep_the_prefix() -> None:
    ids = U32ClientOrderIdFactory(prefix="999")
    made = [ids.next_id(1_800_000_000.0) for _ in range(1000)]
    assert len(set(made)) == 1000 and all(int(cid) < 2**32 and ids.is_ours(cid) for cid in made)
    assert not U32ClientOrderIdFactory(prefix="998").is_ours(made[0])
    assert not ids.is_ours("99912345678901")  # a 14-digit id of the usual kind is not one of these


# -- against the venue -------------------------------------------------------------------------


venue, client = venue_and_client(MockBackpackVenue, BackpackClient, config)


async def test_a_wrong_secret_is_refused_by_the_venue_as_authentication(venue: MockBackpackVenue) -> None:
    _other_public, other_secret = generate_keys()
    env = {**venue.env(), "BACKPACK_SECRET_KEY": other_secret}
    bot = BackpackClient(config(), LiveClock(), env=env)
    with pytest.raises(AuthenticationError):
        await bot.connect()
    assert venue.state()["signature_failures"] >= 1


async def test_best_prices_come_from_the_sorted_book(
    venue: MockBackpackVenue, client: BackpackClient
) -> None:
    # The venue lists bids lowest first; the top must still be the highest bid.
    bid, ask = await client.fetch_bbo_prices("ETH_USDC_PERP")
    assert (bid, ask) == venue.best_bid_ask() == (Decimal("2999.99"), Decimal("3000.01"))


async def test_a_depth_gap_rebuilds_the_book(venue: MockBackpackVenue, client: BackpackClient) -> None:
    await client.fetch_bbo_prices("ETH_USDC_PERP")
    book = client._books["ETH_USDC_PERP"].book
    venue.inject_book_gap(1)
    await asyncio.to_thread(venue.trade_through, Decimal("2990"))  # a delta is skipped here
    await asyncio.to_thread(venue.trade_through, Decimal("2980"))  # this one exposes the gap
    await wait_until(lambda: book.gaps == 1 and book.valid and book.top() == venue.best_bid_ask())
    assert await client.fetch_bbo_prices("ETH_USDC_PERP") == (Decimal("2979.99"), Decimal("2980.01"))


async def test_market_updates_follow_the_top(venue: MockBackpackVenue, client: BackpackClient) -> None:
    tops: list[tuple[Decimal, Decimal]] = []
    client.subscribe_market_updates(lambda update: tops.append((update.best_bid, update.best_ask)))
    await asyncio.to_thread(venue.trade_through, Decimal("3010"))
    await wait_until(lambda: (Decimal("3009.99"), Decimal("3010.01")) in tops)


async def test_an_expired_order_arrives_as_expired(venue: MockBackpackVenue, client: BackpackClient) -> None:
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    client_id = client.client_ids.next_id(client.clock.now())
    await client.place_limit_order(
        "ETH_USDC_PERP", OrderSide.BUY, Decimal("0.01"), Decimal("2990"), client_id
    )
    assert venue.expire_order(int(client_id))
    await wait_until(lambda: any(u.order.status is OrderStatus.EXPIRED for u in updates))
    assert (await client.find_order("ETH_USDC_PERP", client_id)).status is OrderStatus.EXPIRED


async def test_a_failed_snapshot_is_fetched_again(venue: MockBackpackVenue) -> None:
    bot = BackpackClient(
        TradingConfig(
            ticker="ETH",
            exchange="backpack",
            strategy="grid",
            quantity=Decimal("0.01"),
            exchange_params={"rest_max_attempts": 1, "backoff_base": 0.05},
        ),
        LiveClock(),
        env=venue.env(),
    )
    await bot.connect()
    try:
        await bot.fetch_bbo_prices("ETH_USDC_PERP")
        market = bot._books["ETH_USDC_PERP"]
        venue.inject_book_gap(1)
        venue.fail_next(1, status=503)  # the snapshot after the gap fails once
        await asyncio.to_thread(venue.trade_through, Decimal("2990"))
        await asyncio.to_thread(venue.trade_through, Decimal("2980"))
        await wait_until(lambda: market.book.valid and market.book.top() == venue.best_bid_ask(), timeout=10)
        assert venue.fault_counts()["http_5xx"] == 1
    finally:
        await bot.disconnect()
