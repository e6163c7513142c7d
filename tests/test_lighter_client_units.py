"""Pure parts of the Lighter client, plus a short end-to-end run against the loopback mock venue.

Pure parts: Decimal <-> integer units, the status table, the local book (deltas, gaps), fill
dedupe, error-code mapping and settings validation. They use the captured messages in
/work/shared/fixtures/lighter/ as inputs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from exchanges.base import (
    AuthenticationError,
    ConfigurationError,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    MalformedMessage,
    OrderBelowMinimum,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PostOnlyRejected,
    RateLimitExceeded,
    SlippageExceeded,
)
from helpers.clock import LiveClock
from helpers.rate_limiter import Priority
from helpers.trading_config import TradingConfig
from tests.connector_fixtures import wait_until
from tests.shared_paths import FIXTURES_DIR

lighter_sdk = pytest.importorskip("lighter")

from exchanges.lighter import (  # noqa: E402
    ERROR_CODE_TABLE,
    STATUS_TABLE,
    BookGap,
    LighterClient,
    LighterRest,
    LighterSettings,
    LocalBook,
    from_units,
    map_error,
    map_order_status,
    order_report,
    rejection_error,
    to_units,
)
from exchanges.venue_orders import OrderSearchTruncated, VenueOrder, VenueOrders  # noqa: E402

FIXTURES = FIXTURES_DIR / "lighter"
KEY = "ab" * 40
OUR_PREFIX = "123"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def env(**overrides: str) -> dict[str, str]:
    base = {
        "LIGHTER_API_PRIVATE_KEY": "0x" + KEY,
        "LIGHTER_ACCOUNT_INDEX": "712440",
        "LIGHTER_API_KEY_INDEX": "4",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v != ""}


def config(**params: Any) -> TradingConfig:
    return TradingConfig(
        ticker="ETH", exchange="lighter", strategy="grid", quantity=Decimal("0.01"), exchange_params=params
    )


# ---------------------------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "units"),
    [
        (Decimal("2352.74"), 2, 235274),
        (Decimal("0.0050"), 4, 50),
        (Decimal("0.005"), 4, 50),
        (Decimal("83693.9"), 1, 836939),
        (Decimal("1"), 0, 1),
        (Decimal("123456789.123456"), 6, 123456789123456),
    ],
)
def test_decimal_to_units_and_back_is_exact(value: Decimal, decimals: int, units: int) -> None:
    assert to_units(value, decimals) == units
    assert from_units(units, decimals) == value


def test_off_grid_value_is_refused_not_rounded() -> None:
    with pytest.raises(InvalidOrder, match=r"multiple of 0\.01"):
        to_units(Decimal("2352.745"), 2, "price")


def test_units_from_fixture_order_match_its_decimal_fields() -> None:
    order = fixture("http_account_active_orders.json")["orders"][0]
    assert from_units(order["base_price"], 2) == Decimal(order["price"])
    assert from_units(order["base_size"], 4) == Decimal(order["initial_base_amount"])


# ---------------------------------------------------------------------------------------------
# statuses
# ---------------------------------------------------------------------------------------------


def test_status_table_covers_every_sdk_status() -> None:
    sdk_statuses = [
        "in-progress",
        "pending",
        "open",
        "filled",
        "canceled",
        "canceled-post-only",
        "canceled-reduce-only",
        "canceled-position-not-allowed",
        "canceled-margin-not-allowed",
        "canceled-too-much-slippage",
        "canceled-not-enough-liquidity",
        "canceled-self-trade",
        "canceled-expired",
        "canceled-oco",
        "canceled-child",
        "canceled-liquidation",
        "canceled-invalid-balance",
    ]
    for status in sdk_statuses:
        lighter_sdk.models.Order.status_validate_enum(status)
        assert status in STATUS_TABLE
        assert map_order_status(status) is not OrderStatus.UNKNOWN
    assert set(STATUS_TABLE) == set(sdk_statuses)


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("open", "0", OrderStatus.OPEN),
        ("open", "0.002", OrderStatus.PARTIALLY_FILLED),
        ("pending", "0", OrderStatus.PENDING),
        ("in-progress", "0", OrderStatus.PENDING),
        ("filled", "0.005", OrderStatus.FILLED),
        ("canceled", "0", OrderStatus.CANCELLED),
        ("canceled", "0.002", OrderStatus.CANCELLED),
        ("canceled-post-only", "0", OrderStatus.REJECTED),
        ("canceled-margin-not-allowed", "0", OrderStatus.REJECTED),
        ("canceled-margin-not-allowed", "0.001", OrderStatus.CANCELLED),
        ("canceled-too-much-slippage", "0", OrderStatus.CANCELLED),
        ("canceled-expired", "0", OrderStatus.EXPIRED),
        ("canceled-something-new", "0", OrderStatus.CANCELLED),
        ("weird", "0", OrderStatus.UNKNOWN),
        (None, "0", OrderStatus.UNKNOWN),
    ],
)
def test_status_mapping(status: str | None, filled: str, expected: OrderStatus) -> None:
    assert map_order_status(status, Decimal(filled)) is expected


def test_rejections_surface_typed_errors() -> None:
    assert rejection_error("canceled-post-only") is PostOnlyRejected
    assert rejection_error("canceled-margin-not-allowed") is InsufficientFunds
    assert rejection_error("canceled-too-much-slippage") is SlippageExceeded
    assert rejection_error("open") is None


def test_fixture_ccxt_order_status_maps_to_rejected() -> None:
    order = fixture("http_account_active_orders_ccxt.json")["orders"][0]
    assert map_order_status(order["status"], Decimal(order["filled_base_amount"])) is OrderStatus.REJECTED


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (21104, 400, InvalidNonce),
        (21029, 400, InsufficientFunds),
        (21739, 400, InsufficientFunds),
        (23000, 400, RateLimitExceeded),
        (21506, 400, RateLimitExceeded),
        (21700, 400, OrderNotFound),
        (21600, 400, OrderNotFound),
        (21706, 400, OrderBelowMinimum),
        (21702, 400, InvalidOrder),
        (21728, 400, InvalidOrder),
        (None, 503, ExchangeUnavailable),
        (None, 429, RateLimitExceeded),
        (None, 401, AuthenticationError),
        (1001, 400, ExchangeError),
    ],
)
def test_error_codes_map_to_the_taxonomy(code: int | None, status: int, expected: type) -> None:
    error = map_error(code, "msg", status)
    assert type(error) is expected


def test_errors_without_a_known_code_are_typed_by_status_then_by_wording() -> None:
    """A venue that words a refused key without a code is still an authentication failure, but
    a 5xx stays "unavailable" whatever its text says (it is worth retrying)."""
    assert type(map_error(None, "invalid signature", 400)) is AuthenticationError
    assert type(map_error(1001, "API key not found")) is AuthenticationError
    assert type(map_error(None, "auth backend down", 503)) is ExchangeUnavailable
    assert type(map_error(None, "not found", 404)) is ExchangeError


def test_an_order_result_names_lighters_cancel_reason() -> None:
    order = VenueOrder("7", "0", OrderSide.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("3000"))
    order.status, order.venue_status = OrderStatus.REJECTED, "canceled-post-only"
    result = LighterClient._result(order)
    assert (result.success, result.error_message) == (False, "canceled-post-only")
    order.status, order.venue_status = OrderStatus.UNKNOWN, "open"
    result = LighterClient._result(order)
    assert (result.status, result.error_message) == (OrderStatus.PENDING, None)


def test_every_ccxt_code_maps_consistently() -> None:
    for row in fixture("error_codes_ccxt_table.json")["errors"]:
        error = map_error(int(row["code_or_text"]), row["comment_message"], 400)
        if row["ccxt_exception"] == "RateLimitExceeded":
            assert isinstance(error, RateLimitExceeded), row
        elif row["ccxt_exception"] == "InvalidOrder":
            assert isinstance(error, (InvalidOrder, OrderNotFound)), row
        else:
            assert isinstance(error, ExchangeError), row
    assert set(ERROR_CODE_TABLE.values()) <= {
        InvalidNonce,
        InsufficientFunds,
        RateLimitExceeded,
        OrderNotFound,
        OrderBelowMinimum,
    }


def test_rest_answers_become_typed_errors() -> None:
    body = json.dumps(fixture("http_sendtx_error_invalid_nonce.json"))
    with pytest.raises(InvalidNonce):
        LighterRest._parse("POST", "/api/v1/sendTx", 400, body, None)
    with pytest.raises(RateLimitExceeded) as limited:
        LighterRest._parse(
            "GET", "/api/v1/account", 429, '{"code":23000,"message":"Too Many Requests!"}', "2.5"
        )
    assert limited.value.retry_after == 2.5
    with pytest.raises(ExchangeUnavailable):
        LighterRest._parse("GET", "/api/v1/account", 502, "<html>bad gateway</html>", None)
    with pytest.raises(ExchangeError, match="invalid market"):
        LighterRest._parse("GET", "/x", 400, json.dumps(fixture("http_error_invalid_market.json")), None)
    ok = LighterRest._parse("GET", "/x", 200, json.dumps(fixture("http_funding_rates.json")), None)
    assert isinstance(ok["funding_rates"][0]["rate"], Decimal)


# ---------------------------------------------------------------------------------------------
# local book
# ---------------------------------------------------------------------------------------------


def snapshot_book() -> LocalBook:
    book = LocalBook("0")
    msg = fixture("ws_order_book_snapshot.json")
    book.apply_snapshot(msg["order_book"], msg["offset"])
    return book


def delta(begin: int, nonce: int, offset: int, bids: Any = (), asks: Any = ()) -> dict[str, Any]:
    return {
        "bids": [{"price": p, "size": s} for p, s in bids],
        "asks": [{"price": p, "size": s} for p, s in asks],
        "begin_nonce": begin,
        "nonce": nonce,
        "offset": offset,
    }


def test_snapshot_top_is_the_true_best_levels() -> None:
    book = snapshot_book()
    assert book.top() == (Decimal("2000.00"), Decimal("2325.00"))
    assert book.ready.is_set()


def test_tiny_level_is_still_the_best_price() -> None:
    book = snapshot_book()
    book.apply_delta(delta(904845, 904850, 2165, bids=[("2100.00", "0.0001")]))
    assert book.top() == (Decimal("2100.00"), Decimal("2325.00"))


def test_delta_applies_and_zero_size_removes_a_level() -> None:
    book = snapshot_book()
    assert book.apply_delta(delta(904845, 904860, 2165, asks=[("2325.00", "0.0000"), ("2330.00", "1")]))
    assert book.top() == (Decimal("2000.00"), Decimal("2330.00"))
    assert Decimal("2325.00") not in book.asks


def test_duplicate_delta_is_ignored() -> None:
    book = snapshot_book()
    message = delta(904845, 904860, 2165, asks=[("2320.00", "1")])
    assert book.apply_delta(message)
    assert not book.apply_delta(copy.deepcopy(message))
    assert book.asks[Decimal("2320.00")] == 1


def test_gap_in_nonces_invalidates_the_book() -> None:
    book = snapshot_book()
    with pytest.raises(BookGap):
        book.apply_delta(delta(904999, 905010, 2166, asks=[("2320.00", "1")]))
    assert book.top() is None
    assert not book.ready.is_set()
    assert book.gaps == 1
    assert not book.apply_delta(delta(905010, 905020, 2167, asks=[("2300.00", "1")]))
    assert book.top() is None
    book.apply_snapshot(fixture("ws_order_book_snapshot.json")["order_book"])
    assert book.top() is not None


def test_offset_only_messages_must_move_forward() -> None:
    book = LocalBook("0")
    book.apply_snapshot({"bids": [{"price": "10", "size": "1"}], "asks": [{"price": "11", "size": "1"}]}, 50)
    assert book.apply_delta({"bids": [{"price": "10.5", "size": "1"}], "asks": []}, 52)
    assert not book.apply_delta({"bids": [], "asks": []}, 52)
    with pytest.raises(BookGap):
        book.apply_delta({"bids": [], "asks": []}, 51)


def test_ccxt_delta_fixture_removes_the_zero_level() -> None:
    book = LocalBook("0")
    book.apply_snapshot(
        {"bids": [{"price": "2979.36", "size": "1"}, {"price": "2979.00", "size": "2"}], "asks": []}, 11413308
    )
    msg = fixture("ws_order_book_update_ccxt.json")
    book.apply_delta(msg["order_book"], msg["offset"])
    assert book.top() == (Decimal("2979.00"), Decimal("2979.64"))


# ---------------------------------------------------------------------------------------------
# order reports: Lighter's order object into the shared VenueOrders
# ---------------------------------------------------------------------------------------------

CID = OUR_PREFIX + "00000000001"


def raw_order(filled: str, quote: str, status: str = "open", cid: str = CID) -> dict[str, Any]:
    order = copy.deepcopy(fixture("ws_account_orders_update_partial_fill.json")["orders"]["0"][0])
    order.update(
        client_order_index=int(cid),
        client_order_id=cid,
        filled_base_amount=filled,
        filled_quote_amount=quote,
        status=status,
        time_in_force="post-only",
    )
    return order


def tracker() -> VenueOrders:
    return VenueOrders(
        lambda mid: (Decimal("0.0002"), Decimal("0.001")),
        is_ours=lambda cid: cid.startswith(OUR_PREFIX),
        fee_quantum=Decimal("0.000001"),
    )


def apply(t: VenueOrders, raw: dict[str, Any]) -> OrderUpdate | None:
    report = order_report(raw, 0.0)
    assert report is not None
    return t.apply(report)


def test_order_report_maps_every_field_of_the_fixture() -> None:
    raw = fixture("ws_account_orders_update_partial_fill.json")["orders"]["0"][0]
    report = order_report(raw, 0.0)
    assert report is not None
    assert (report.client_order_id, report.order_id, report.contract_id) == ("42", "281476929510110", "0")
    assert (report.side, report.order_type) == (OrderSide.SELL, OrderType.LIMIT)
    assert (report.size, report.price) == (Decimal("0.0050"), Decimal("2352.74"))
    assert report.status is OrderStatus.PARTIALLY_FILLED and report.venue_status == "open"
    assert (report.filled_size, report.filled_quote) == (Decimal("0.0020"), Decimal("4.705480"))
    assert report.timestamp == pytest.approx(1777941383.900)
    assert not report.post_only
    assert order_report({k: v for k, v in raw.items() if not k.startswith("client_order")}, 0.0) is None
    with pytest.raises(MalformedMessage):
        order_report({**raw, "client_order_index": "x1"}, 0.0)


def test_partial_then_full_fill_with_duplicates_and_reordering() -> None:
    t = tracker()
    t.register(
        CID, "0", OrderSide.SELL, OrderType.LIMIT, Decimal("0.0050"), Decimal("2352.74"), post_only=True
    )
    updates: list[OrderUpdate | None] = [
        apply(t, raw_order("0.0000", "0.000000")),
        apply(t, raw_order("0.0020", "4.705480")),
        apply(t, raw_order("0.0020", "4.705480")),
        apply(t, raw_order("0.0000", "0.000000")),
        apply(t, raw_order("0.0050", "11.763700", "filled")),
        apply(t, raw_order("0.0020", "4.705480")),
        apply(t, raw_order("0.0050", "11.763700", "filled")),
    ]
    assert updates[0] is not None and updates[0].order.status is OrderStatus.OPEN
    assert updates[0].order.order_id == "281476929510110"
    first = updates[1]
    assert first is not None and first.fill is not None
    assert (first.fill.size, first.fill.price) == (Decimal("0.0020"), Decimal("2352.74"))
    assert first.order.status is OrderStatus.PARTIALLY_FILLED
    assert first.fill.is_maker and first.fill.fee == Decimal("0.000941") and first.fill.fee_estimated
    assert updates[2] is None and updates[3] is None
    final = updates[4]
    assert final is not None and final.fill is not None
    assert (final.fill.size, final.fill.price) == (Decimal("0.0030"), Decimal("2352.74"))
    assert final.order.status is OrderStatus.FILLED
    assert final.order.remaining_size == 0
    assert updates[5] is None and updates[6] is None
    fills = [u.fill for u in updates if u is not None and u.fill is not None]
    assert sum(f.size for f in fills) == Decimal("0.0050")
    assert len({f.trade_id for f in fills}) == 2


def test_orders_without_our_prefix_are_ignored() -> None:
    t = tracker()
    assert apply(t, raw_order("0.0020", "4.705480", cid="99900000000001")) is None
    assert t.get("99900000000001") is None


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"LIGHTER_API_PRIVATE_KEY": ""}, "LIGHTER_API_PRIVATE_KEY"),
        ({"LIGHTER_ACCOUNT_INDEX": ""}, "LIGHTER_ACCOUNT_INDEX"),
        ({"LIGHTER_API_KEY_INDEX": ""}, "LIGHTER_API_KEY_INDEX"),
        ({"LIGHTER_ACCOUNT_INDEX": "abc"}, "LIGHTER_ACCOUNT_INDEX"),
        ({"LIGHTER_API_KEY_INDEX": "300"}, "LIGHTER_API_KEY_INDEX"),
        ({"LIGHTER_NETWORK": "moon"}, "LIGHTER_NETWORK"),
        ({"LIGHTER_BASE_URL": "ftp://x"}, "LIGHTER_BASE_URL"),
        ({"LIGHTER_WS_URL": "http://x"}, "LIGHTER_WS_URL"),
        ({"LIGHTER_CHAIN_ID": "x"}, "LIGHTER_CHAIN_ID"),
    ],
)
def test_bad_settings_raise_one_line_configuration_errors(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        LighterClient(config(), LiveClock(), env=env(**overrides))
    message = str(error.value)
    assert variable in message
    assert "\n" not in message
    assert KEY not in message


def test_invalid_key_is_reported_without_echoing_it() -> None:
    bad = "zz" + KEY[2:]
    with pytest.raises(ConfigurationError) as error:
        LighterClient(config(), LiveClock(), env=env(LIGHTER_API_PRIVATE_KEY=bad))
    assert "LIGHTER_API_PRIVATE_KEY" in str(error.value)
    assert bad not in str(error.value) and KEY[2:20] not in str(error.value)


def test_settings_defaults_overrides_and_repr_hide_the_key(caplog: pytest.LogCaptureFixture) -> None:
    settings = LighterSettings.load(env(), {})
    assert settings.base_url == "https://mainnet.zklighter.elliot.ai"
    assert settings.chain_id == 304
    assert settings.private_key == KEY
    assert KEY not in repr(settings)
    testnet = LighterSettings.load(env(LIGHTER_NETWORK="testnet"), {})
    assert testnet.chain_id == 300 and "testnet" in testnet.ws_url
    mock = LighterSettings.load(
        env(LIGHTER_BASE_URL="http://127.0.0.1:1/", LIGHTER_WS_URL="ws://127.0.0.1:1/stream"),
        {"chain_id": 304},
    )
    assert mock.base_url == "http://127.0.0.1:1" and mock.chain_id == 304
    with caplog.at_level(logging.WARNING):
        LighterSettings.load(env(LIGHTER_API_KEY_INDEX="1"), {})
    assert "reserved" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("index", "level"),
    [("0", logging.WARNING), ("1", logging.WARNING), ("2", logging.INFO), ("3", logging.INFO), ("4", None)],
)
def test_api_key_index_warning_follows_the_current_docs(
    index: str, level: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Lighter's docs (Get Started) reserve 0-1 for its apps; some versions also 2-3."""
    with caplog.at_level(logging.DEBUG, logger="exchanges.lighter"):
        LighterSettings.load(env(LIGHTER_API_KEY_INDEX=index), {})
    records = [r for r in caplog.records if "LIGHTER_API_KEY_INDEX" in r.getMessage()]
    assert [r.levelno for r in records] == ([] if level is None else [level])


# ---------------------------------------------------------------------------------------------
# end to end against the loopback mock venue (real SDK signing)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def venue() -> Iterator[Any]:
    mock = pytest.importorskip("tests.mock_venues.lighter_venue")
    v = mock.MockLighterVenue(start_price=Decimal("3000"), api_key_index=5).start()
    try:
        yield v
    finally:
        v.stop()


@pytest.fixture
async def client(venue: Any) -> AsyncIterator[LighterClient]:
    c = LighterClient(config(order_ack_timeout=3.0, backoff_base=0.05), LiveClock(), env=venue.env())
    await c.connect()
    try:
        yield c
    finally:
        await c.disconnect()


def next_id(client: LighterClient) -> str:
    return client.client_ids.next_id(time.time())


async def test_e2e_place_fill_cancel(venue: Any, client: LighterClient) -> None:
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    info = await client.get_contract_info("ETH")
    assert (info.tick_size, info.size_step, info.min_size) == (
        Decimal("0.01"),
        Decimal("0.0001"),
        Decimal("0.005"),
    )
    bid, ask = await client.fetch_bbo_prices(info.contract_id)
    assert 0 < bid < ask

    cid = next_id(client)
    result = await client.place_limit_order(info.contract_id, OrderSide.BUY, Decimal("0.0100"), bid - 1, cid)
    assert result.status is OrderStatus.OPEN and result.order_id and result.client_order_id == cid
    assert [o.client_order_id for o in await client.get_active_orders(info.contract_id)] == [cid]

    venue.duplicate_next_message("account_orders", n=2)
    venue.trade_through(bid - 1, size=Decimal("0.004"))
    venue.trade_through(bid - 1)
    await wait_until(lambda: client._orders.get(cid).status is OrderStatus.FILLED)  # type: ignore[union-attr]
    fills = [u.fill for u in updates if u.fill is not None and u.fill.client_order_id == cid]
    assert sum(f.size for f in fills) == Decimal("0.0100")
    assert (await client.get_position(info.contract_id)).size == Decimal("0.0100")
    snapshot = await client.get_account_snapshot()
    assert snapshot.equity > 0 and snapshot.positions[0].size == Decimal("0.0100")

    bid, ask = await client.fetch_bbo_prices(info.contract_id)
    resting = next_id(client)
    await client.place_limit_order(info.contract_id, OrderSide.SELL, Decimal("0.0100"), ask + 5, resting)
    cancelled = await client.cancel_order(info.contract_id, resting)
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotFound):
        await client.cancel_order(info.contract_id, resting)
    assert (await client.get_order_info(info.contract_id, resting)).status is OrderStatus.CANCELLED

    with pytest.raises(PostOnlyRejected):
        await client.place_limit_order(
            info.contract_id, OrderSide.BUY, Decimal("0.0100"), ask + 1, next_id(client)
        )


async def test_e2e_market_order_is_bounded_and_fills(client: LighterClient) -> None:
    bid, _ = await client.fetch_bbo_prices("0")
    result = await client.place_market_order(
        "0", OrderSide.SELL, Decimal("0.0100"), next_id(client), Decimal("0.5")
    )
    assert result.status is OrderStatus.FILLED and result.filled_size == Decimal("0.0100")
    assert result.price == (bid * Decimal("0.995")).quantize(Decimal("0.01"), rounding="ROUND_CEILING")


async def test_e2e_invalid_nonce_resyncs_and_retries_once(venue: Any, client: LighterClient) -> None:
    bid, _ = await client.fetch_bbo_prices("0")
    await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 2, next_id(client))
    client._signer.nonce_manager.nonce[client.settings.api_key_index] -= 1
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 3, next_id(client))
    assert result.status is OrderStatus.OPEN
    assert venue.stats().invalid_nonces == 1


async def test_e2e_reconnect_resubscribes_and_recovers_missed_fills(
    venue: Any, client: LighterClient
) -> None:
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    bid, _ = await client.fetch_bbo_prices("0")
    cid = next_id(client)
    await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 3, cid)
    venue.drop_connections()
    venue.trade_through(bid - 3)
    await wait_until(lambda: any(u.fill and u.fill.client_order_id == cid for u in updates))
    assert client._ws is not None and client._ws.reconnects >= 1
    assert await client.fetch_bbo_prices("0") == venue.best_bid_ask()


async def test_e2e_book_gap_triggers_a_fresh_snapshot(venue: Any, client: LighterClient) -> None:
    await client.fetch_bbo_prices("0")
    venue.inject_book_gap(n=1)
    venue.seed_book(Decimal("3010"))
    venue.seed_book(Decimal("3020"))
    await wait_until(lambda: client._books["0"].gaps == 1 and client._books["0"].ready.is_set())
    await wait_until(lambda: client._books["0"].top() == venue.best_bid_ask())


async def test_e2e_rate_limit_slows_down_instead_of_failing(venue: Any, client: LighterClient) -> None:
    venue.rate_limit_next(1, retry_after=0.2)
    assert await client.get_active_orders("0") == []
    assert client._limiter.throttled == 1


async def test_e2e_bbo_without_snapshot_raises_typed_error(venue: Any) -> None:
    c = LighterClient(config(bbo_timeout=0.3), LiveClock(), env=venue.env())
    await c.connect()
    try:
        await c.fetch_bbo_prices("0")
        assert c._ws is not None
        await c._ws.unsubscribe("order_book/0", {"type": "unsubscribe", "channel": "order_book/0"})
        await asyncio.sleep(0.2)
        c._books["0"].invalidate()
        with pytest.raises(ExchangeUnavailable):
            await c.fetch_bbo_prices("0")
    finally:
        await c.disconnect()


def test_factory_builds_the_client_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from exchanges.factory import ExchangeFactory

    for name, value in env().items():
        monkeypatch.setenv(name, value)
    client = ExchangeFactory.create_exchange("lighter", config(), LiveClock())
    assert isinstance(client, LighterClient) and client.name == "lighter"
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY")
    with pytest.raises(ConfigurationError, match="LIGHTER_API_PRIVATE_KEY"):
        ExchangeFactory.create_exchange("lighter", config(), LiveClock())


# ---------------------------------------------------------------------------------------------
# nonce handling and auth tokens with fakes (no network)
# ---------------------------------------------------------------------------------------------


class FakeNonceManager:
    """Mimics the SDK's optimistic nonce manager: local counter, hard refresh from 'the venue'."""

    def __init__(self, venue_nonce: int) -> None:
        self.venue_nonce = venue_nonce
        self.nonce: int | None = None
        self.hard_refreshes = 0
        self.failures = 0
        self._lock = asyncio.Lock()

    def lock(self, key: int) -> asyncio.Lock:
        return self._lock

    async def async_hard_refresh_nonce(self, key: int) -> None:
        self.hard_refreshes += 1
        self.nonce = self.venue_nonce - 1

    async def async_next_nonce(self, key: int) -> tuple[int, int]:
        if self.nonce is None:
            self.nonce = self.venue_nonce - 1
        self.nonce += 1
        return key, self.nonce

    def acknowledge_failure(self, key: int) -> None:
        self.failures += 1
        assert self.nonce is not None
        self.nonce -= 1


class FakeSigner:
    def __init__(self, manager: FakeNonceManager) -> None:
        self.nonce_manager = manager
        self.tokens = 0

    def create_auth_token_with_expiry(self, deadline: int, *, timestamp: int, api_key_index: int) -> Any:
        self.tokens += 1
        return f"{timestamp + deadline}:712440:{api_key_index}:{self.tokens:02x}", None


def fake_client(sim_clock: Any = None, **params: Any) -> tuple[LighterClient, FakeNonceManager, list[int]]:
    client = LighterClient(config(**params), sim_clock or LiveClock(), env=env())
    manager = FakeNonceManager(venue_nonce=10)
    client._signer = FakeSigner(manager)
    sent: list[int] = []
    return client, manager, sent


def signer_for(sent: list[int]) -> Any:
    def sign(nonce: int, key: int) -> tuple[int, str, str, None]:
        sent.append(nonce)
        return 14, json.dumps({"Nonce": nonce}), "hash", None

    return sign


async def test_invalid_nonce_resyncs_and_retries_exactly_once() -> None:
    client, manager, sent = fake_client()
    answers: list[Any] = [InvalidNonce("stale"), {"code": 200}]

    async def send_tx(tx_type: int, tx_info: str, priority: Priority = Priority.NORMAL) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            manager.venue_nonce = 20
            raise answer
        return answer

    client._rest.send_tx = send_tx  # type: ignore[method-assign]
    assert await client._send_signed(signer_for(sent), "order") == {"code": 200}
    assert sent == [10, 20]
    assert manager.hard_refreshes == 2

    answers[:] = [InvalidNonce("stale"), InvalidNonce("still stale")]
    with pytest.raises(InvalidNonce):
        await client._send_signed(signer_for(sent), "order")


async def test_rejection_rolls_the_nonce_back_and_ambiguity_forces_a_resync() -> None:
    client, manager, sent = fake_client()
    client._nonce_dirty = False
    manager.nonce = 9

    async def reject(tx_type: int, tx_info: str, priority: Priority = Priority.NORMAL) -> Any:
        raise InsufficientFunds("margin")

    client._rest.send_tx = reject  # type: ignore[method-assign]
    with pytest.raises(InsufficientFunds):
        await client._send_signed(signer_for(sent), "order")
    assert manager.failures == 1 and manager.nonce == 9 and not client._nonce_dirty

    async def timeout(tx_type: int, tx_info: str, priority: Priority = Priority.NORMAL) -> Any:
        raise ExchangeUnavailable("502")

    client._rest.send_tx = timeout  # type: ignore[method-assign]
    with pytest.raises(ExchangeUnavailable):
        await client._send_signed(signer_for(sent), "order")
    assert client._nonce_dirty


async def test_auth_token_is_renewed_at_half_life_on_the_clock() -> None:
    from helpers.clock import SimulatedClock

    clock = SimulatedClock(start=1_800_000_000.0)
    client, _, _ = fake_client(clock, auth_token_ttl=7200)
    first = await client._auth_token()
    assert first.startswith("1800007200:")
    clock.advance_to(1_800_000_000.0 + 3599)
    assert await client._auth_token() == first
    clock.advance_to(1_800_000_000.0 + 3600)
    second = await client._auth_token()
    assert second != first and second.startswith(str(1_800_003_600 + 7200))


async def test_a_known_keys_nonce_is_counted_by_the_sdk_manager_without_an_sdk_await() -> None:
    """The SDK's optimistic manager: the first nonce is fetched (through our REST limiter),
    later ones are counted locally by its synchronous ``next_nonce``; the sent nonces are
    consecutive either way, and a refused signature hands its nonce back."""
    from lighter.nonce_manager import OptimisticNonceManager

    client, _, sent = fake_client()
    manager = OptimisticNonceManager(client.settings.account_index, None, [client.settings.api_key_index])
    fetches: list[int] = []

    async def fetch(key: int) -> int:
        fetches.append(key)
        return 41

    manager._fetch_nonce = fetch  # type: ignore[method-assign]
    awaited: list[int] = []
    real_async_next = manager.async_next_nonce

    async def counted_async_next(key: int | None = None) -> tuple[int, int]:
        awaited.append(key or 0)
        return await real_async_next(key)

    manager.async_next_nonce = counted_async_next  # type: ignore[method-assign]
    client._signer.nonce_manager = manager
    client._nonce_dirty = False

    async def send_tx(tx_type: int, tx_info: str, priority: Priority = Priority.NORMAL) -> Any:
        return {"code": 200}

    client._rest.send_tx = send_tx  # type: ignore[method-assign]
    for _ in range(3):
        await client._send_signed(signer_for(sent), "order")
    assert sent == [41, 42, 43]
    assert fetches == [client.settings.api_key_index]  # fetched once, on first use
    assert len(awaited) == 1  # only that first fetch went through the SDK's coroutine

    def refused(nonce: int, key: int) -> tuple[None, None, None, str]:
        return None, None, None, "bad order"

    with pytest.raises(InvalidOrder):
        await client._send_signed(refused, "order")
    await client._send_signed(signer_for(sent), "order")
    assert sent[-1] == 44  # the refused signature's nonce was handed back


async def test_transactions_are_signed_in_one_dedicated_thread_closed_on_disconnect() -> None:
    client, _, _ = fake_client()
    threads: list[threading.Thread] = []

    def sign(nonce: int, key: int) -> tuple[int, str, str, None]:
        threads.append(threading.current_thread())
        return 14, json.dumps({"Nonce": nonce}), "hash", None

    async def send_tx(tx_type: int, tx_info: str, priority: Priority = Priority.NORMAL) -> Any:
        return {"code": 200}

    client._rest.send_tx = send_tx  # type: ignore[method-assign]
    for _ in range(3):
        await client._send_signed(sign, "order")
    assert len({id(t) for t in threads}) == 1
    assert threads[0] is not threading.main_thread() and threads[0].name.startswith("lighter-signer")
    assert client._signing_thread.running
    await client.disconnect()
    assert not client._signing_thread.running
    threads[0].join(5)
    assert not threads[0].is_alive()  # stopped: the thread ends once idle


def test_token_ttl_is_capped_below_the_venue_maximum() -> None:
    client = LighterClient(config(auth_token_ttl=86400), LiveClock(), env=env())
    assert client._ttl < 8 * 3600


async def test_e2e_venue_rejection_is_typed_and_next_order_works(venue: Any, client: LighterClient) -> None:
    bid, _ = await client.fetch_bbo_prices("0")
    venue.reject_next_tx(21029, "insufficient margin")
    with pytest.raises(InsufficientFunds):
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    assert result.status is OrderStatus.OPEN and result.order_id
    by_index = await client.get_order_info("0", result.order_id)
    assert by_index.client_order_id == result.client_order_id


async def test_e2e_thin_book_market_order_reports_the_partial_fill(venue: Any, client: LighterClient) -> None:
    venue.set_book([("2999", "0.5")], [("3001", "0.003"), ("3100", "5")])
    await wait_until(lambda: client._books["0"].top() == (Decimal("2999.00"), Decimal("3001.00")))
    result = await client.place_market_order(
        "0", OrderSide.BUY, Decimal("0.0100"), next_id(client), Decimal("0.5")
    )
    assert result.status is OrderStatus.CANCELLED
    assert result.filled_size == Decimal("0.0030") and result.average_fill_price == Decimal("3001.00")


async def test_e2e_bad_sizes_are_refused_before_sending(venue: Any, client: LighterClient) -> None:
    bid, _ = await client.fetch_bbo_prices("0")
    with pytest.raises(OrderBelowMinimum):
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.001"), bid - 1, next_id(client))
    with pytest.raises(InvalidOrder):
        await client.place_limit_order(
            "0", OrderSide.BUY, Decimal("0.01"), bid - Decimal("0.001"), next_id(client)
        )
    assert venue.stats().txs == []


# ---------------------------------------------------------------------------------------------
# finding orders among the finished ones: accountInactiveOrders paged by cursor
# ---------------------------------------------------------------------------------------------


def paged_client(**params: Any) -> tuple[LighterClient, list[dict[str, Any]]]:
    """A client whose order reads come from ``pages`` (keyed by the cursor asked for)."""
    client, _, _ = fake_client(**params)
    queries: list[dict[str, Any]] = []

    async def token() -> str:
        return "token"

    client._auth_token = token  # type: ignore[method-assign]
    return client, queries


def serve(client: LighterClient, queries: list[dict[str, Any]], pages: dict[str | None, Any]) -> None:
    async def get(path: str, params: Any = None, *, auth: str | None = None) -> Any:
        queries.append({"path": path, **(params or {})})
        if path.endswith("accountActiveOrders"):
            return {"code": 200, "orders": []}
        answer = pages[params.get("cursor")]
        if isinstance(answer, Exception):
            raise answer
        return answer

    client._rest.get = get  # type: ignore[method-assign]


def finished(cid: str, index: int, filled: str = "0.0020") -> dict[str, Any]:
    order = raw_order(filled, str(Decimal(filled) * Decimal("2352.74")), "canceled", cid=cid)
    order.update(order_index=index, order_id=str(index))
    return order


OLD = OUR_PREFIX + "00000000007"


async def test_find_order_follows_the_cursor_to_an_older_finished_order() -> None:
    client, queries = paged_client()
    serve(
        client,
        queries,
        {
            None: {"code": 200, "orders": [finished(CID, 9)], "next_cursor": "c-1"},
            "c-1": {"code": 200, "orders": [finished(OLD, 7)], "next_cursor": None},
        },
    )
    info = await client.find_order("0", OLD)
    assert (info.client_order_id, info.order_id, info.status) == (OLD, "7", OrderStatus.CANCELLED)
    assert info.filled_size == Decimal("0.0020")  # a baseline: what filled is in the snapshot
    inactive = [q for q in queries if q["path"].endswith("accountInactiveOrders")]
    assert [q.get("cursor") for q in inactive] == [None, "c-1"]
    assert all(q["limit"] == 100 and q["market_id"] == "0" for q in inactive)


@pytest.mark.parametrize("end", [None, ""])
async def test_find_order_is_not_found_only_after_the_last_page(end: str | None) -> None:
    client, queries = paged_client()
    serve(
        client,
        queries,
        {
            None: {"code": 200, "orders": [finished(CID, 9)], "next_cursor": "c-1"},
            "c-1": {"code": 200, "orders": [finished(OLD, 7)], "next_cursor": end},
        },
    )
    with pytest.raises(OrderNotFound):
        await client.find_order("0", OUR_PREFIX + "00000000003")
    assert len(queries) == 3


async def test_a_search_cut_short_by_the_page_bound_is_not_order_not_found() -> None:
    client, queries = paged_client(inactive_orders_max_pages=3)
    serve(
        client,
        queries,
        {
            None: {"code": 200, "orders": [finished(CID, 9)], "next_cursor": "c-1"},
            "c-1": {"code": 200, "orders": [finished(OLD, 7)], "next_cursor": "c-2"},
            "c-2": {"code": 200, "orders": [finished(OLD[:-1] + "6", 6)], "next_cursor": "c-3"},
        },
    )
    with pytest.raises(OrderSearchTruncated, match="3 pages") as error:
        await client.find_order("0", OUR_PREFIX + "00000000003")
    assert not isinstance(error.value, OrderNotFound)
    assert len(queries) == 4


async def test_a_failed_or_looping_page_read_is_never_order_not_found() -> None:
    client, queries = paged_client()
    serve(client, queries, {None: {"code": 200, "orders": [], "next_cursor": "c-1"}})
    with pytest.raises(OrderNotFound):  # an empty page ends the listing
        await client.find_order("0", OLD)
    for failure, expected in [
        (ExchangeUnavailable("lighter HTTP 503"), ExchangeUnavailable),
        (OrderNotFound("lighter error 21700: invalid order index"), ExchangeError),
    ]:
        serve(
            client,
            queries,
            {None: {"code": 200, "orders": [finished(CID, 9)], "next_cursor": "c-1"}, "c-1": failure},
        )
        with pytest.raises(expected) as error:
            await client.find_order("0", OLD)
        assert not isinstance(error.value, OrderNotFound)
    serve(
        client,
        queries,
        {
            None: {"code": 200, "orders": [finished(CID, 9)], "next_cursor": "c-1"},
            "c-1": {"code": 200, "orders": [finished(CID, 9)], "next_cursor": "c-1"},
        },
    )
    with pytest.raises(MalformedMessage, match="repeated the cursor"):
        await client.find_order("0", OLD)


async def test_e2e_restarted_client_finds_an_old_finished_order_page_by_page(venue: Any) -> None:
    params = {"order_ack_timeout": 3.0, "backoff_base": 0.05, "rest_requests_per_minute": 6000.0}
    first = LighterClient(config(**params), LiveClock(), env=venue.env())
    await first.connect()
    try:
        bid, _ = await first.fetch_bbo_prices("0")
        placed = []
        for n in range(5):
            cid = next_id(first)
            result = await first.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 5 - n, cid)
            if n == 0:
                venue.trade_through(bid - 5, size=Decimal("0.004"))
                tracked = first._orders.get(cid)
                assert tracked is not None
                await wait_until(lambda tracked=tracked: tracked.filled == Decimal("0.0040"))
            assert result.order_id is not None
            await first.cancel_order("0", result.order_id)
            placed.append(cid)
    finally:
        await first.disconnect()

    restarted = LighterClient(config(**params, inactive_orders_page_size=2), LiveClock(), env=venue.env())
    await restarted.connect()
    try:
        calls = venue.stats().rest_calls.get("/api/v1/accountInactiveOrders", 0)
        oldest = await restarted.find_order("0", placed[0])
        assert (oldest.status, oldest.filled_size) == (OrderStatus.CANCELLED, Decimal("0.0040"))
        assert venue.stats().rest_calls.get("/api/v1/accountInactiveOrders", 0) - calls == 3
        restarted.params["inactive_orders_max_pages"] = 2
        with pytest.raises(OrderSearchTruncated):
            await restarted.find_order("0", placed[0])
        restarted.params["inactive_orders_max_pages"] = 10
        with pytest.raises(OrderNotFound):
            await restarted.find_order("0", next_id(restarted))
    finally:
        await restarted.disconnect()
