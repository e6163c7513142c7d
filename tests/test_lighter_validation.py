"""Issue 8, point 1 for Lighter: the validation layer at the venue boundary.

helpers/venue_validation.py (shared by every connector) and its use in exchanges/lighter.py:
finite, in-range numbers; atomic book snapshots; crossed books flagged and unused; malformed
messages counted, logged once per kind, dropped, resynced; malformed REST bodies typed and
naming their endpoint. Then property-based fuzzing of every Lighter message parser: no crash,
and no invalid number reaches the bot.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchanges.base import (
    ExchangeError,
    MalformedMessage,
    MarketUpdate,
    OrderSide,
    OrderType,
    OrderUpdate,
)
from helpers import venue_validation as vv
from helpers.clock import LiveClock, SimulatedClock
from helpers.trading_config import TradingConfig
from tests.shared_paths import FIXTURES_DIR

pytest.importorskip("lighter")

from exchanges.lighter import LighterClient, LocalBook, order_report, trade_reports
from tests.connector_fixtures import started_venue
from tests.mock_venues.lighter_venue import MockLighterVenue

KEY = "ab" * 40
ACCOUNT = 712440


def fixture(name: str) -> Any:
    return json.loads((FIXTURES_DIR / "lighter" / name).read_text())


def config(**params: Any) -> TradingConfig:
    return TradingConfig(
        ticker="ETH", exchange="lighter", strategy="grid", quantity=Decimal("0.01"), exchange_params=params
    )


def offline_client(**params: Any) -> LighterClient:
    env = {
        "LIGHTER_API_PRIVATE_KEY": KEY,
        "LIGHTER_ACCOUNT_INDEX": str(ACCOUNT),
        "LIGHTER_API_KEY_INDEX": "4",
    }
    return LighterClient(config(**params), LiveClock(), env=env)


# -- shared checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("NaN", "non-finite number"),
        ("-Infinity", "non-finite number"),
        (Decimal("sNaN"), "non-finite number"),
        ("1" * 3_000_000, "bad number"),
        ("1e30", "number out of range"),
        ("abc", "bad number"),
        ("", "bad number"),
        (None, "missing field"),
        (True, "wrong type"),
        (1.5, "wrong type"),
        ([1], "wrong type"),
    ],
)
def test_venue_numbers_must_be_finite_and_bounded(value: Any, kind: str) -> None:
    with pytest.raises(vv.InvalidVenueData) as error:
        vv.venue_decimal(value, "x")
    assert error.value.kind == kind
    assert isinstance(error.value, MalformedMessage) and isinstance(error.value, ExchangeError)


def test_prices_positive_sizes_not_negative_fills_within_one_step() -> None:
    assert vv.price("2352.74") == Decimal("2352.74") and vv.size("0") == 0
    for bad in ("0", "-1"):
        with pytest.raises(vv.InvalidVenueData):
            vv.price(bad)
    with pytest.raises(vv.InvalidVenueData):
        vv.size("-0.0001")
    vv.filled_within(Decimal("0.0101"), Decimal("0.0100"), Decimal("0.0001"))
    with pytest.raises(vv.InvalidVenueData, match="overfilled"):
        vv.filled_within(Decimal("1000"), Decimal("0.01"), Decimal("0.0001"))


def test_book_side_is_all_or_nothing_and_crossing_is_detected() -> None:
    base = {Decimal("100"): Decimal("1")}
    good = vv.book_side([{"price": "101", "size": "2"}, {"price": "100", "size": "0"}], base)
    assert good == {Decimal("101"): Decimal("2")} and base == {Decimal("100"): Decimal("1")}
    with pytest.raises(vv.InvalidVenueData):
        vv.book_side([{"price": "101", "size": "2"}, {"price": "NaN", "size": "1"}], base)
    assert vv.crossed(Decimal("100"), Decimal("100")) and not vv.crossed(Decimal("99"), Decimal("100"))


def test_malformed_counter_logs_each_kind_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = SimulatedClock(start=1000.0)
    counter = vv.MalformedCounter("venue", clock.now, interval=60.0)
    with caplog.at_level(logging.WARNING, logger="helpers.venue_validation"):
        for _ in range(50):
            counter.record("nan price", "detail")
        counter.record("wrong type", "detail")
        clock.advance_to(1061.0)
        counter.record("nan price", "detail")
    assert counter.counts == {"nan price": 51, "wrong type": 1} and counter.total == 52
    assert len(caplog.records) == 3


def test_rest_body_turns_shape_errors_into_typed_errors_naming_the_endpoint() -> None:
    with pytest.raises(vv.InvalidVenueData, match="/api/v1/account: AttributeError"):
        with vv.rest_body("/api/v1/account"):
            "accounts".get("x")  # type: ignore[attr-defined]
    with pytest.raises(vv.InvalidVenueData, match="/api/v1/account: collateral"):
        with vv.rest_body("/api/v1/account"):
            vv.venue_decimal("NaN", "collateral")


# -- the local book ----------------------------------------------------------------------------


def snapshot(bids: list[tuple[str, str]], asks: list[tuple[str, str]], nonce: int = 10) -> dict[str, Any]:
    return {
        "bids": [{"price": p, "size": s} for p, s in bids],
        "asks": [{"price": p, "size": s} for p, s in asks],
        "nonce": nonce,
        "begin_nonce": nonce - 1,
        "offset": 1,
    }


def test_snapshot_with_one_bad_level_is_not_half_applied_and_not_valid() -> None:
    book = LocalBook("0")
    book.apply_snapshot(snapshot([("99", "1")], [("101", "1")]))
    assert book.top() == (Decimal("99"), Decimal("101"))
    with pytest.raises(vv.InvalidVenueData):
        book.apply_snapshot(snapshot([("98", "1"), ("97", "NaN")], [("102", "1")]))
    assert not book.valid and book.top() is None
    assert (
        book.apply_delta({"bids": [{"price": "100", "size": "1"}], "nonce": 11, "begin_nonce": 10}) is False
    )
    book.apply_snapshot(snapshot([("98", "1")], [("102", "1")]))
    assert book.top() == (Decimal("98"), Decimal("102"))


def test_delta_with_one_bad_level_changes_nothing() -> None:
    book = LocalBook("0")
    book.apply_snapshot(snapshot([("99", "1")], [("101", "1")]))
    bad = {"bids": [{"price": "100", "size": "1"}], "asks": [{"price": "101", "size": "-3"}]}
    with pytest.raises(vv.InvalidVenueData):
        book.apply_delta({**bad, "nonce": 11, "begin_nonce": 10})
    assert book.bids == {Decimal("99"): Decimal("1")} and book.asks == {Decimal("101"): Decimal("1")}


def test_crossed_book_is_flagged_and_not_used() -> None:
    book = LocalBook("0")
    book.apply_snapshot(snapshot([("101", "1")], [("100", "1")]))
    assert book.top() is None and book.crossed and not book.ready.is_set()


# -- order and trade reports -------------------------------------------------------------------


def order(**fields: Any) -> dict[str, Any]:
    raw = copy.deepcopy(fixture("ws_account_orders_update_partial_fill.json")["orders"]["0"][0])
    raw.update(fields)
    return raw


@pytest.mark.parametrize(
    "fields",
    [
        {"filled_base_amount": "1000"},  # a fill of 1,000 on an order of 0.005
        {"filled_quote_amount": "-4.7"},
        {"price": "9" * 3_000_000},
        {"price": "NaN"},
        {"initial_base_amount": "0"},
        {"status": ["open"]},
    ],
)
def test_order_reports_with_impossible_numbers_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        order_report(order(**fields), 0.0)


# -- the client: messages counted, dropped, resynced; REST bodies typed -------------------------


async def test_bad_frames_are_counted_dropped_and_the_state_resynced() -> None:
    client = offline_client()
    client._books["0"] = LocalBook("0")
    reconciles = []

    async def reconcile() -> None:
        reconciles.append(1)

    client._reconcile_orders = reconcile  # type: ignore[method-assign]
    updates: list[MarketUpdate] = []
    client.subscribe_market_updates(updates.append)
    good = fixture("ws_order_book_snapshot.json")
    await client._on_ws_message(good)
    assert client._books["0"].valid and len(updates) == 1
    nan = copy.deepcopy(good)
    nan["order_book"]["asks"][0]["price"] = "NaN"
    await client._on_ws_message(nan)
    assert not client._books["0"].valid  # dropped, and the book waits for a fresh snapshot
    await client._on_ws_message({"type": "update/account_orders", "orders": "garbage"})
    await client._on_ws_message(["not", "an", "object"])
    await asyncio.sleep(0)
    assert client.malformed.total == 3 and reconciles == [1]
    assert len(updates) == 1


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/api/v1/account", {"code": 200, "accounts": "abc"}, "get_account_snapshot"),
        ("/api/v1/account", {"code": 200, "accounts": [{"collateral": "NaN"}]}, "get_account_snapshot"),
        (
            "/api/v1/account",
            {"code": 200, "accounts": [{"positions": [{"market_id": 0, "position": []}]}]},
            "get_position",
        ),
        (
            "/api/v1/funding-rates",
            {"funding_rates": [{"market_id": 0, "rate": "Infinity"}]},
            "get_funding_rate",
        ),
        ("/api/v1/accountActiveOrders", {"code": 200, "orders": "x"}, "get_active_orders"),
        ("/api/v1/accountActiveOrders", {"code": 200, "orders": [1, 2]}, "find_order"),
    ],
)
async def test_malformed_rest_bodies_are_typed_errors_naming_the_endpoint(
    path: str, body: Any, call: str
) -> None:
    client = offline_client()

    async def get(requested: str, params: Any = None, *, auth: str | None = None) -> Any:
        return body

    async def token() -> str:
        return "token"

    client._rest.get = get  # type: ignore[method-assign]
    client._auth_token = token  # type: ignore[method-assign]
    method = getattr(client, call)
    args = {"get_account_snapshot": (), "find_order": ("0", "12300000000001")}.get(call, ("0",))
    with pytest.raises(MalformedMessage, match=path):
        await method(*args)


# -- the bot's side of it, end to end: faults from the mock venue ------------------------------


venue = started_venue(MockLighterVenue)


async def test_malformed_frames_from_the_venue_never_reach_the_bot(venue: MockLighterVenue) -> None:
    client = LighterClient(config(order_ack_timeout=3.0), LiveClock(), env=venue.env())
    await client.connect()
    try:
        market: list[MarketUpdate] = []
        orders: list[OrderUpdate] = []
        client.subscribe_market_updates(market.append)
        client.subscribe_order_updates(orders.append)
        bid, _ = await client.fetch_bbo_prices("0")
        cid = client.client_ids.next_id(time.time())
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, cid)
        venue.malform_next_message("order_book", kind="nan_price", n=2)
        venue.malform_next_message("account_orders", kind="wrong_types")
        venue.malform_next_message("account_orders", kind="nan_price")
        venue.trade_through(bid - 1, size=Decimal("0.004"))
        venue.trade_through(bid - 1)
        for _ in range(300):
            if sum(u.fill.size for u in orders if u.fill) == Decimal("0.0100") and client._books["0"].valid:
                break
            await asyncio.sleep(0.01)
        assert sum(u.fill.size for u in orders if u.fill) == Decimal("0.0100")
        assert client.malformed.total >= 3  # a bad delta to a book awaiting its snapshot is ignored
        for update in market:
            assert update.best_bid.is_finite() and 0 < update.best_bid < update.best_ask
        for _ in range(300):
            if client._books["0"].top() == venue.best_bid_ask():
                break
            await asyncio.sleep(0.01)
        assert client._books["0"].top() == venue.best_bid_ask()
    finally:
        await client.disconnect()


# -- property-based fuzzing of every Lighter message parser ------------------------------------

NUMBER_TEXT = st.sampled_from(
    [
        "NaN",
        "-NaN",
        "Infinity",
        "-inf",
        "sNaN",
        "1e999999",
        "-1",
        "0",
        "0.0000",
        "1" * 80,
        "",
        " 1",
        "0x10",
        "abc",
    ]
)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=True, allow_infinity=True),
    NUMBER_TEXT,
    st.text(max_size=12),
    st.decimals(min_value=0, max_value=10_000, places=4).map(str),
)
JSONISH = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def mutate(value: Any, draw: Any) -> Any:
    """A fixture with some leaves (and sometimes whole branches) replaced by hostile values."""
    if isinstance(value, dict):
        return {
            k: draw(JSONISH) if draw(st.integers(0, 5)) == 0 else mutate(v, draw) for k, v in value.items()
        }
    if isinstance(value, list):
        return [mutate(v, draw) for v in value]
    return draw(LEAF) if draw(st.integers(0, 2)) == 0 else value


OUR_CID = "12300000000001"
TEMPLATES = [
    fixture("ws_order_book_snapshot.json"),
    fixture("ws_order_book_update.json"),
    fixture("ws_order_book_update_ccxt.json"),
    fixture("ws_account_orders_update_partial_fill.json"),
    fixture("ws_account_all_trades_update.json"),
    fixture("ws_account_all_trades_ccxt.json"),
]
for _template in TEMPLATES:  # our order and account, so reports flow all the way to updates
    for _group in (_template.get("orders") or {}).values():
        for _order in _group:
            _order.update(client_order_index=int(OUR_CID), client_order_id=OUR_CID)
    for _group in (_template.get("trades") or {}).values():
        for _trade in _group:
            _trade.update(bid_account_id=ACCOUNT, bid_client_id=int(OUR_CID), bid_client_id_str=OUR_CID)


@st.composite
def hostile_messages(draw: Any) -> dict[str, Any]:
    return mutate(copy.deepcopy(draw(st.sampled_from(TEMPLATES))), draw)


def finite(*numbers: Decimal | None) -> bool:
    return all(n is None or (isinstance(n, Decimal) and n.is_finite()) for n in numbers)


ITEMS = [
    *(o for t in TEMPLATES for g in (t.get("orders") or {}).values() for o in g),
    *(tr for t in TEMPLATES for g in (t.get("trades") or {}).values() for tr in g),
    fixture("http_account_active_orders_ccxt.json")["orders"][0],
]


@st.composite
def hostile_items(draw: Any) -> Any:
    return mutate(copy.deepcopy(draw(st.sampled_from(ITEMS))), draw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=hostile_items() | JSONISH)
def test_fuzz_order_and_trade_parsers_raise_only_malformed(raw: Any) -> None:
    if not isinstance(raw, dict):
        return
    for parse in (lambda: order_report(raw, 0.0), lambda: trade_reports(raw, ACCOUNT, 0.0)):
        try:
            result = parse()
        except MalformedMessage:
            continue
        reports = result if isinstance(result, list) else [result] if result is not None else []
        for report in reports:
            numbers = [
                getattr(report, name, None)
                for name in ("size", "price", "filled_size", "filled_quote", "fee")
            ]
            assert finite(*numbers)
            assert report.price > 0 and report.size > 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(hostile_messages(), min_size=1, max_size=6))
def test_fuzz_stream_never_crashes_and_no_invalid_number_reaches_the_bot(
    messages: list[dict[str, Any]],
) -> None:
    client = offline_client()
    client._books["0"] = LocalBook("0")
    client._orders.register(
        OUR_CID, "0", OrderSide.SELL, OrderType.LIMIT, Decimal("0.0050"), Decimal("2352.74")
    )

    async def reconcile() -> None:
        return None

    client._reconcile_orders = reconcile  # type: ignore[method-assign]
    market: list[MarketUpdate] = []
    orders: list[OrderUpdate] = []
    client.subscribe_market_updates(market.append)
    client.subscribe_order_updates(orders.append)

    async def feed() -> None:
        await client._on_ws_message(fixture("ws_order_book_snapshot.json"))
        for message in messages:
            await client._on_ws_message(message)  # never raises

    asyncio.run(feed())
    for update in market:
        assert finite(update.best_bid, update.best_ask) and 0 < update.best_bid < update.best_ask
    for update in orders:
        info = update.order
        assert finite(info.size, info.price, info.filled_size, info.average_fill_price)
        assert 0 <= info.filled_size <= info.size
        if update.fill is not None:
            fill = update.fill
            assert finite(fill.size, fill.price, fill.fee) and fill.size > 0 and fill.price > 0
            assert not math.isnan(float(fill.fee))
