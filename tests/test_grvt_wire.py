"""GRVT wire format: settings, client ids, EIP-712 signing (checked by the mock venue's own
verifier), and the parsing of the captured messages in ../shared/fixtures/grvt, hostile
variants included."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("pysdk")

from exchanges.base import (
    ConfigurationError,
    InvalidOrder,
    MalformedMessage,
    OrderBelowMinimum,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    RateLimitExceeded,
)
from exchanges.grvt_wire import (
    CLIENT_ID_BASE,
    DAY_NS,
    DELTA,
    DUPLICATE,
    GAP,
    SNAPSHOT,
    FeedSequence,
    GrvtClientOrderIdFactory,
    GrvtSettings,
    OrderIntent,
    OrderSigner,
    SessionExpired,
    best_bid_ask,
    book_levels,
    error_fields,
    funding_fraction,
    map_error,
    order_report,
    parse_instrument,
    position,
    state_update,
    trade_report,
)
from tests.mock_venues.grvt_signing import SignatureRefused, SigningInstrument, verify_order
from tests.shared_paths import FIXTURES_DIR, ROOT

FIXTURES = FIXTURES_DIR / "grvt"
NOW = 1_767_000_000.0


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def env(**changes: str) -> dict[str, str]:
    values = {
        "GRVT_TRADING_ACCOUNT_ID": "2147050003876484",
        "GRVT_PRIVATE_KEY": "0x" + "11" * 32,
        "GRVT_API_KEY": "not-a-real-key",
        "GRVT_ENV": "testnet",
    }
    values.update(changes)
    return values


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"GRVT_API_KEY": ""}, "GRVT_API_KEY"),
        ({"GRVT_PRIVATE_KEY": "0xnothex" + "1" * 58}, "GRVT_PRIVATE_KEY"),
        ({"GRVT_TRADING_ACCOUNT_ID": "acct-xyz"}, "GRVT_TRADING_ACCOUNT_ID"),
        ({"GRVT_ENV": "mainnet"}, "GRVT_ENV"),
        ({"GRVT_TRADES_URL": "ftp://example"}, "GRVT_TRADES_URL"),
        ({"GRVT_TRADES_WS_URL": "http://example"}, "GRVT_TRADES_WS_URL"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_variable_not_the_value(
    changes: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        GrvtSettings.load(env(**changes), {})
    for value in changes.values():
        if value:
            assert value not in str(caught.value)


def test_settings_endpoints_come_from_the_sdk_table_and_override_one_by_one() -> None:
    settings = GrvtSettings.load(env(GRVT_TRADES_URL="http://127.0.0.1:9/"), {})
    assert settings.chain_id == 326
    assert settings.endpoints.trades == "http://127.0.0.1:9"
    assert settings.endpoints.market_data == "https://market-data.testnet.grvt.io"
    assert settings.endpoints.trades_ws == "wss://trades.testnet.grvt.io/ws/full"
    prod = GrvtSettings.load(env(GRVT_ENV="prod"), {})
    assert prod.chain_id == 325 and prod.endpoints.edge == "https://edge.grvt.io"
    assert "11" * 32 not in repr(prod) and "not-a-real-key" not in repr(prod)


@pytest.mark.parametrize("days", ["0", "30", "45", "-1", "nan"])
def test_an_expiry_at_or_beyond_the_venue_cap_is_refused(days: str) -> None:
    with pytest.raises(ConfigurationError, match="order_expiry_days"):
        GrvtSettings.load(env(), {"order_expiry_days": days})


def test_client_ids_live_above_2_63_and_keep_the_bot_prefix() -> None:
    ours = GrvtClientOrderIdFactory(prefix="042")
    other = GrvtClientOrderIdFactory(prefix="043")
    ids = [ours.next_id(NOW + i / 1000) for i in range(5)]
    assert len(set(ids)) == 5
    assert all(CLIENT_ID_BASE <= int(i) < 2**64 for i in ids)
    assert all(ours.is_ours(i) and not other.is_ours(i) for i in ids)
    for foreign in ("23042", "588129369", str(2**64), "-1", "", None, "0x10", str(CLIENT_ID_BASE - 1)):
        assert not ours.is_ours(foreign)


# -- signing ----------------------------------------------------------------------------------

BTC = parse_instrument(fixture("http_instrument_btc_perp.json"))
SIGNING = {BTC.name: SigningInstrument(BTC.name, int(BTC.instrument_hash, 16), BTC.base_decimals)}


def signed(signer: OrderSigner, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "instrument": BTC,
        "side": OrderSide.BUY,
        "size": Decimal("0.003"),
        "price": Decimal("87443.1"),
        "time_in_force": "GTT",
        "post_only": True,
        "reduce_only": False,
        "client_order_id": str(CLIENT_ID_BASE + 4212345678901),
        "nonce": 747860882,
        "expiration_ns": time.time_ns() + 28 * DAY_NS,
    }
    fields.update(changes)
    return signer.sign(OrderIntent(**fields))["order"]


def verify(order: dict[str, Any], signer: OrderSigner, chain_id: int = 326) -> None:
    verify_order(
        order, chain_id=chain_id, instruments=SIGNING, expected_signer=signer.address, now_ns=time.time_ns()
    )


def test_the_sdk_signature_verifies_with_the_venue_rules_and_carries_the_wire_amounts() -> None:
    signer = OrderSigner(GrvtSettings.load(env(GRVT_PRIVATE_KEY="0x" + secrets.token_hex(32)), {}))
    order = signed(signer)
    verify(order, signer)
    assert order["legs"] == [
        {"instrument": "BTC_USDT_Perp", "size": "0.003", "limit_price": "87443.1", "is_buying_asset": True}
    ]
    assert order["time_in_force"] == "GOOD_TILL_TIME" and order["post_only"] is True
    assert order["signature"]["chain_id"] == "326" and order["signature"]["nonce"] == 747860882
    ioc = signed(signer, time_in_force="IOC", post_only=False, side=OrderSide.SELL, reduce_only=True)
    verify(ioc, signer)
    assert ioc["time_in_force"] == "IMMEDIATE_OR_CANCEL" and ioc["legs"][0]["is_buying_asset"] is False


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        (("legs", 0, "limit_price"), "87443.2", 2002),
        (("legs", 0, "size"), "0.004", 2002),
        (("legs", 0, "is_buying_asset"), False, 2002),
        (("post_only",), False, 2002),
        (("reduce_only",), True, 2002),
        (("signature", "nonce"), 747860883, 2002),
        (("signature", "r"), "0x" + "ab" * 32, 2002),
        (("signature", "v"), 29, 2005),
        (("signature", "chain_id"), "325", 1012),
        (("legs", 0, "size"), "0.0030000000001", 2065),
    ],
)
def test_a_tampered_order_is_refused_by_the_venue_verifier(
    path: tuple[Any, ...], value: Any, code: int
) -> None:
    signer = OrderSigner(GrvtSettings.load(env(GRVT_PRIVATE_KEY="0x" + secrets.token_hex(32)), {}))
    order = copy.deepcopy(signed(signer))
    target: Any = order
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SignatureRefused) as refused:
        verify(order, signer)
    assert refused.value.code == code


def test_a_signature_of_another_key_and_an_expiry_outside_the_window_are_refused() -> None:
    signer = OrderSigner(GrvtSettings.load(env(GRVT_PRIVATE_KEY="0x" + secrets.token_hex(32)), {}))
    stranger = OrderSigner(GrvtSettings.load(env(GRVT_PRIVATE_KEY="0x" + secrets.token_hex(32)), {}))
    with pytest.raises(SignatureRefused) as refused:
        verify(signed(stranger), signer)
    assert refused.value.code == 2000
    for expiration, code in ((time.time_ns() - 1, 2001), (time.time_ns() + 31 * DAY_NS, 2008)):
        with pytest.raises(SignatureRefused) as refused:
            verify(signed(signer, expiration_ns=expiration), signer)
        assert refused.value.code == code


def test_amounts_finer_than_the_signed_precision_are_refused_before_signing() -> None:
    signer = OrderSigner(GrvtSettings.load(env(), {}))
    with pytest.raises(InvalidOrder, match="size"):
        signed(signer, size=Decimal("0.0000000001"))
    with pytest.raises(InvalidOrder, match="price"):
        signed(signer, price=Decimal("1.0000000001"))


# -- errors -----------------------------------------------------------------------------------


def test_error_bodies_in_both_schemas_are_typed() -> None:
    full = fixture("http_error_envelope_full_doc.json")
    assert error_fields(full) == (1000, full["message"])
    assert error_fields(fixture("http_error_envelope_lite_doc.json"))[0] == 1000
    assert isinstance(map_error(1000, "auth", 401, "x"), SessionExpired)  # an AuthenticationError
    assert isinstance(map_error(1004, "Data Not Found", 404, "x"), OrderNotFound)
    assert isinstance(map_error(2062, "small", 400, "x"), OrderBelowMinimum)
    assert isinstance(map_error(None, "", 429, "x"), RateLimitExceeded)
    assert isinstance(map_error(2090, "Max open orders exceeded", 429, "x"), RateLimitExceeded)
    assert error_fields("not an object") == (None, "")
    table = {row["code"]: row["http_status"] for row in fixture("error_codes_doc_table.json")["errors"]}
    assert table[2001] == 403 and table[2008] == 403 and table[2012] == 400  # codes the mock answers


# -- orders, fills, positions, markets ---------------------------------------------------------


def test_rest_and_stream_orders_map_to_reports() -> None:
    filled = order_report(fixture("http_order.json")["result"], NOW)
    assert filled is not None
    assert (filled.status, filled.filled_size, filled.average_fill_price) == (
        OrderStatus.FILLED,
        Decimal("0.001"),
        Decimal("90000.0"),
    )
    assert filled.side is OrderSide.BUY and filled.order_type is OrderType.LIMIT
    assert filled.order_id == "0x01010105034cddc7000000006621285c" and filled.client_order_id == "1375879248"
    assert filled.timestamp == pytest.approx(1764945709.704912)

    (resting,) = [order_report(o, NOW) for o in fixture("http_open_orders.json")["result"]]
    assert resting is not None and resting.status is OrderStatus.OPEN and resting.filled_size == 0
    assert resting.average_fill_price is None and resting.price == Decimal("88123.0")

    pending = order_report(fixture("http_create_order_response.json")["result"], NOW)
    assert pending is not None and pending.status is OrderStatus.PENDING and pending.order_id is None

    streamed = order_report(fixture("ws_order_open.json")["feed"], NOW)
    assert streamed is not None and streamed.status is OrderStatus.OPEN and streamed.size == Decimal("0.001")


@pytest.mark.parametrize(
    ("status", "reason", "traded", "expected"),
    [
        ("REJECTED", "FAIL_POST_ONLY", "0", OrderStatus.REJECTED),
        ("CANCELLED", "EXPIRED", "0", OrderStatus.EXPIRED),
        ("CANCELLED", "CLIENT_CANCEL", "0.5", OrderStatus.CANCELLED),
        ("CANCELLED", "IOC_CANCEL", "0", OrderStatus.CANCELLED),
        ("OPEN", "UNSPECIFIED", "0.5", OrderStatus.PARTIALLY_FILLED),
        ("SOMETHING_NEW", "UNSPECIFIED", "0", OrderStatus.UNKNOWN),
    ],
)
def test_statuses_and_reject_reasons(status: str, reason: str, traded: str, expected: OrderStatus) -> None:
    raw = copy.deepcopy(fixture("ws_order_open.json")["feed"])
    raw["state"].update(status=status, reject_reason=reason, traded_size=[traded])
    report = order_report(raw, NOW)
    assert report is not None and report.status is expected
    assert report.venue_status == (status if reason == "UNSPECIFIED" else f"{status}:{reason}")


def test_state_fill_and_position_feeds() -> None:
    state = state_update(fixture("ws_order_state_doc.json")["feed"], NOW)
    assert state is not None and state.client_order_id == "23042" and state.traded == Decimal("1.5")
    assert state.average_fill_price == Decimal("60000.4")

    fill = trade_report(fixture("ws_fill.json")["feed"], NOW)
    assert (fill.trade_id, fill.size, fill.price, fill.fee, fill.is_maker) == (
        "74150425-1",
        Decimal("0.001"),
        Decimal("89473.4"),
        Decimal("0.040263"),
        False,
    )
    rebate = trade_report(fixture("http_fill_history_item.json"), NOW)
    assert rebate.fee == Decimal("-0.00009") and rebate.is_maker is True

    (held,) = [position(p) for p in fixture("http_positions.json")["result"]]
    assert held.size == Decimal("0.001") and held.entry_price == Decimal("90000.0")
    assert held.liquidation_price == Decimal("77951.450008979")
    streamed = position(fixture("ws_position.json")["feed"])
    assert streamed.unrealized_pnl == Decimal("0.003718")


def test_instruments_books_tickers_and_funding() -> None:
    aave = parse_instrument(fixture("http_instrument_aave_perp.json"))  # decimals as strings
    assert (aave.base_decimals, aave.tick_size, aave.min_size, aave.size_step) == (
        9,
        Decimal("0.01"),
        Decimal("0.1"),
        Decimal("0.1"),
    )
    assert BTC.min_notional == Decimal("100.0") and BTC.funding_interval_hours == 8
    snapshot = fixture("ws_book_snapshot.json")["feed"]
    assert book_levels(snapshot["bids"], "bids") == [(Decimal("88107.3"), Decimal("5.322"))]
    assert best_bid_ask(fixture("ws_mini_ticker_snapshot_bbo.json")["feed"]) == (
        Decimal("87799.9"),
        Decimal("87800.0"),
    )
    assert best_bid_ask(fixture("ws_mini_ticker_delta.json")["feed"]) is None  # a delta without the top
    assert funding_fraction(fixture("http_ticker.json")["result"]["funding_rate"]) == Decimal("0.000037")


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o["state"].update(traded_size=["NaN"]), "traded_size"),
        (lambda o: o["state"].update(traded_size=["-0.001"]), "traded_size"),
        (lambda o: o["state"].update(traded_size=[]), "traded_size"),
        (lambda o: o["legs"][0].update(size="Infinity"), "size"),
        (lambda o: o["legs"][0].update(size=0.001), "size"),  # a float: precision already lost
        (lambda o: o.update(legs="BTC_USDT_Perp"), "legs"),
        (lambda o: o.update(state=None), "state"),
    ],
)
def test_hostile_order_fields_raise_a_typed_error_naming_the_field(mutate: Any, field: str) -> None:
    raw = copy.deepcopy(fixture("ws_order_open.json")["feed"])
    mutate(raw)
    with pytest.raises(MalformedMessage, match=field):
        order_report(raw, NOW)


def test_hostile_fills_instruments_and_levels_raise_typed_errors() -> None:
    fill = copy.deepcopy(fixture("ws_fill.json")["feed"])
    fill["price"] = "-89473.4"
    with pytest.raises(MalformedMessage, match="fill price"):
        trade_report(fill, NOW)
    instrument = dict(fixture("http_instrument_btc_perp.json"), base_decimals="9.5")
    with pytest.raises(MalformedMessage, match="base_decimals"):
        parse_instrument(instrument)
    with pytest.raises(MalformedMessage, match="instrument_hash"):
        parse_instrument(dict(fixture("http_instrument_btc_perp.json"), instrument_hash="DROP TABLE"))
    with pytest.raises(MalformedMessage):
        book_levels([["88107.3", "5.3"]], "bids")
    with pytest.raises(MalformedMessage, match="bids size"):
        book_levels([{"price": "88107.3", "size": "NaN"}], "bids")


def test_feed_sequence_tells_snapshots_deltas_duplicates_and_gaps_apart() -> None:
    feed = FeedSequence()

    def message(sequence: int, previous: int | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"sequence_number": str(sequence)}
        if previous is not None:
            msg["prev_sequence_number"] = str(previous)
        return msg

    assert feed.classify(fixture("ws_book_snapshot.json")) == SNAPSHOT
    assert feed.classify(fixture("ws_mini_ticker_delta.json")) == DELTA  # first delta: the start
    assert feed.classify(message(1061719, 1061718)) == DELTA
    assert feed.classify(message(1061719, 1061718)) == DUPLICATE
    assert feed.classify(message(1061700)) == DUPLICATE
    assert feed.classify(message(1061722, 1061721)) == GAP
    assert feed.gaps == 1
    assert feed.classify(message(1061723, 1061722)) == DELTA  # after a gap: a fresh start
    for junk in ("NaN", "-5", "1.5", None, "x" * 100):
        with pytest.raises(MalformedMessage, match="sequence"):
            feed.classify({"sequence_number": junk})


def test_importing_the_connector_keeps_the_interpreter_recursion_limit() -> None:
    """eth-account pulls in py_ecc, which raises the limit to 100,000 (a C-stack overflow guard
    gone); the connector puts it back."""
    code = (
        "import sys; before = sys.getrecursionlimit(); import exchanges.grvt; "
        "print(before, sys.getrecursionlimit())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    before, after = result.stdout.split()
    assert before == after


def test_announced_first_numbers_that_never_match_stop_being_trusted() -> None:
    """A venue whose first delta never carries the announced number would otherwise make every
    resubscription "gap" at once, forever: after three misses in a row the feed stops trusting
    the announcements (and still checks continuity from the first delta on)."""
    feed = FeedSequence()
    delta = {"sequence_number": "12", "prev_sequence_number": "11"}
    for _ in range(FeedSequence.TRUSTED_FIRST_MISSES):
        feed.expect(10)
        assert feed.classify(delta) == GAP
    feed.expect(10)
    assert not feed.trusts_announcements and feed.classify(delta) == DELTA
    assert feed.classify({"sequence_number": "14", "prev_sequence_number": "13"}) == GAP

    honest = FeedSequence()  # a hit resets the count
    for first in (10, 20, 30, 40):
        honest.expect(first)
        assert honest.classify({"sequence_number": str(first + 2)}) == GAP
        honest.expect(first)
        assert honest.classify({"sequence_number": str(first)}) == DELTA
    assert honest.trusts_announcements
