"""edgeX wire mapping, read from the captured messages in ../shared/fixtures/edgex, plus hostile
variations of them: every venue number goes through the shared checks, every malformed body is
InvalidVenueData naming its endpoint, and the SDK's signatures verify (and a changed field does
not)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("edgex_sdk")

from eth_account import Account
from eth_account.messages import encode_typed_data

from exchanges.base import (
    AuthenticationError,
    ConfigurationError,
    InsufficientFunds,
    OrderBelowMinimum,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    PostOnlyRejected,
    RateLimitExceeded,
)
from exchanges.edgex import (
    ACTIVE_PAGE_PATH,
    ASSET_PATH,
    META_PATH,
    EdgexSettings,
    OrderSigner,
    OrderSpec,
    account_snapshot,
    body_text,
    contract_for_ticker,
    contracts_from_metadata,
    depth_entry,
    envelope_data,
    funding_rate,
    hmac_headers,
    map_error,
    next_page,
    order_list,
    order_report,
    positions_from_asset,
    ticker_top,
    trade_report,
)
from helpers.venue_validation import InvalidVenueData
from tests.mock_venues.edgex_wire import (
    fixture,
    order_typed_data,
    v2_metadata,
    verify_hmac,
    verify_order_signature,
)

NOW = 1_700_000_000.0
KEY = "0x" + "4f" * 32
ENV = {
    "EDGEX_ACCOUNT_ID": "543429922991899150",
    "EDGEX_API_KEY": "key-1",
    "EDGEX_API_PASSPHRASE": "pass-1",
    "EDGEX_API_SECRET": "secret-1",
    "EDGEX_TRADING_PRIVATE_KEY": KEY,
}


def settings() -> EdgexSettings:
    return EdgexSettings.load(ENV, {})


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENV))
def test_a_missing_setting_is_named_and_its_value_never_shown(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        EdgexSettings.load({**ENV, name: " "}, {})


def test_a_malformed_key_or_account_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="EDGEX_TRADING_PRIVATE_KEY") as info:
        EdgexSettings.load({**ENV, "EDGEX_TRADING_PRIVATE_KEY": "zz" * 32}, {})
    assert "zz" not in str(info.value)
    with pytest.raises(ConfigurationError, match="EDGEX_ACCOUNT_ID"):
        EdgexSettings.load({**ENV, "EDGEX_ACCOUNT_ID": "-5"}, {})
    assert "secret-1" not in repr(settings()) and "4f4f" not in repr(settings())


# -- metadata ----------------------------------------------------------------------------------


def test_contracts_from_the_testnet_and_mainnet_metadata() -> None:
    testnet = contracts_from_metadata(fixture("http_getMetaData.json")["data"])
    eth = contract_for_ticker(testnet, "eth")
    assert (eth.contract_id, eth.name, eth.base) == ("10000002", "ETHUSDT", "ETH")
    assert (eth.tick_size, eth.step_size, eth.min_size) == (Decimal("0.01"), Decimal("0.01"), Decimal("0.01"))
    assert eth.funding_interval_hours == 4
    mainnet = contracts_from_metadata(fixture("http_getMetaData_mainnet_excerpt.json")["data"])
    btc = contract_for_ticker(mainnet, "BTC")
    assert (btc.name, btc.tick_size, btc.step_size, btc.min_size) == (
        "BTCUSD",
        Decimal("0.1"),
        Decimal("0.001"),
        Decimal("0.001"),
    )
    with pytest.raises(ConfigurationError, match="DOGEUSD"):
        contract_for_ticker(mainnet, "DOGE")


@pytest.mark.parametrize("bad", ["NaN", "-0.1", "Infinity", "1e400", True, 0.1, "9" * 80])
def test_a_hostile_tick_size_is_invalid_venue_data_naming_the_endpoint(bad: Any) -> None:
    data = fixture("http_getMetaData.json")["data"]
    data["contractList"][0]["tickSize"] = bad
    with pytest.raises(InvalidVenueData, match=META_PATH):
        contracts_from_metadata(data)


def test_a_metadata_body_of_the_wrong_shape_is_invalid_venue_data() -> None:
    for data in ("not an object", {"coinList": []}, {"coinList": [], "contractList": "x"}, None):
        with pytest.raises(InvalidVenueData, match=META_PATH):
            contracts_from_metadata(data)


# -- envelopes and errors ----------------------------------------------------------------------


def test_a_success_envelope_gives_its_data_and_others_are_typed() -> None:
    assert envelope_data(fixture("http_createOrder.json"), "create") == {"orderId": "564814927928230158"}
    for body in ("[]", [], {"data": {}}, {"code": 7}):
        with pytest.raises(InvalidVenueData, match="create"):
            envelope_data(body, "create")
    cases = {
        "INVALID_SIGNATURE": AuthenticationError,
        "ORDER_POST_ONLY_WOULD_TAKE": PostOnlyRejected,
        "ORDER_NOT_FOUND": OrderNotFound,
        "ORDER_SIZE_LESS_THAN_MIN_ORDER_SIZE": OrderBelowMinimum,
        "INSUFFICIENT_BALANCE": InsufficientFunds,
        "RATE_LIMIT_EXCEEDED": RateLimitExceeded,
    }
    for code, kind in cases.items():
        with pytest.raises(kind, match=code):
            envelope_data({"code": code, "msg": "no"}, "create")
    assert isinstance(map_error("", "", 429, "x"), RateLimitExceeded)
    assert isinstance(map_error("", "", 401, "x"), AuthenticationError)


# -- orders and fills --------------------------------------------------------------------------


def test_an_active_order_page_maps_to_open_limit_orders() -> None:
    data = envelope_data(fixture("http_getActiveOrderPage.json"), ACTIVE_PAGE_PATH)
    rows = order_list(data, ACTIVE_PAGE_PATH)
    reports = [order_report(row, NOW) for row in rows]
    first = reports[0]
    assert first is not None
    assert (first.client_order_id, first.order_id, first.contract_id) == (
        "553364074986685",
        "564815695875932430",
        "10000001",
    )
    assert (first.side, first.order_type, first.status) == (OrderSide.BUY, OrderType.LIMIT, OrderStatus.OPEN)
    assert (first.size, first.price, first.filled_size) == (Decimal("0.001"), Decimal("97444.5"), 0)
    assert first.timestamp == pytest.approx(1734662555.672)  # updatedTime, not the fallback
    assert (
        next_page(data) == ""
        and next_page({"nextPageOffsetData": "551109015904453258"}) == "551109015904453258"
    )


def test_a_finished_order_carries_its_cumulative_fill_value_and_fee() -> None:
    rows = order_list(fixture("http_getHistoryOrderByClientOrderId.json")["data"], "history")
    report = order_report(rows[0], NOW)
    assert report is not None
    assert report.status is OrderStatus.FILLED
    assert report.filled_size == Decimal("0.001")
    assert report.filled_quote == Decimal("97.4445")
    assert report.filled_fee == Decimal("0.017540")


def test_cancel_reasons_decide_expired_and_post_only_refusals() -> None:
    row = dict(order_list(fixture("http_getOrderByClientOrderId.json")["data"], "x")[0])
    row.update(status="CANCELED", cancelReason="EXPIRE_CANCELED", cumFillSize="0")
    assert order_report(row, NOW).status is OrderStatus.EXPIRED  # type: ignore[union-attr]
    row.update(cancelReason="COULD_NOT_FILL", timeInForce="POST_ONLY")
    refused = order_report(row, NOW)
    assert refused is not None and refused.status is OrderStatus.REJECTED and refused.post_only
    row.update(cancelReason="USER_CANCELED")
    assert order_report(row, NOW).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    row.update(status="OPEN", cumFillSize="0.0005", cancelReason="UNKNOWN_ORDER_CANCEL_REASON")
    assert order_report(row, NOW).status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    row.update(clientOrderId="")
    assert order_report(row, NOW) is None  # placed by hand, not by a bot


@pytest.mark.parametrize(
    ("field", "bad"),
    [("cumFillSize", "NaN"), ("cumFillSize", "-1"), ("size", "0"), ("side", "UP"), ("price", "-3")],
)
def test_a_hostile_order_field_is_invalid_venue_data(field: str, bad: str) -> None:
    row = dict(order_list(fixture("http_getOrderByClientOrderId.json")["data"], "x")[0])
    row[field] = bad
    with pytest.raises(InvalidVenueData):
        order_report(row, NOW)


def test_a_fill_transaction_is_a_trade_with_its_exact_fee_and_maker_flag() -> None:
    rows = order_list(fixture("http_getHistoryOrderFillTransactionPage.json")["data"], "fills")
    trade = trade_report(rows[0], NOW)
    assert (trade.trade_id, trade.order_id, trade.client_order_id) == (
        "564815957260763406",
        "564815695875932430",
        None,
    )
    assert (trade.size, trade.price, trade.fee, trade.is_maker) == (
        Decimal("0.001"),
        Decimal("97444.5"),
        Decimal("0.017540"),
        True,
    )
    hostile = dict(rows[0], fillPrice="Infinity")
    with pytest.raises(InvalidVenueData):
        trade_report(hostile, NOW)
    with pytest.raises(InvalidVenueData):
        trade_report(dict(rows[0], id="", matchFillId=""), NOW)


# -- account -----------------------------------------------------------------------------------


def test_positions_and_the_account_from_get_account_asset() -> None:
    data = fixture("http_getAccountAsset.json")["data"]
    (position,) = positions_from_asset(data)
    assert (position.contract_id, position.size, position.entry_price) == (
        "10000001",
        Decimal("0.001"),
        Decimal("97444.5"),
    )
    assert position.liquidation_price == Decimal("82354.9")
    snapshot = account_snapshot(data, NOW)
    assert snapshot.equity == Decimal("15.791238609240472316741943359375")
    assert snapshot.balance == snapshot.equity - position.unrealized_pnl
    assert snapshot.fees_paid == Decimal("0.215388")
    assert snapshot.positions == (position,)


def test_a_hostile_account_body_is_invalid_venue_data_naming_the_endpoint() -> None:
    data = fixture("http_getAccountAsset.json")["data"]
    broken = copy.deepcopy(data)
    broken["positionList"][0]["openSize"] = "NaN"
    with pytest.raises(InvalidVenueData, match=ASSET_PATH):
        positions_from_asset(broken)
    for body in ({}, {"collateralAssetModelList": []}, {"collateralAssetModelList": "x"}):
        with pytest.raises(InvalidVenueData, match=ASSET_PATH):
            account_snapshot(body, NOW)


def test_the_live_funding_rate_is_per_four_hours() -> None:
    contracts = contracts_from_metadata(fixture("http_getMetaData_mainnet_excerpt.json")["data"])
    rate = funding_rate(fixture("http_getLatestFundingRate_mainnet_live.json")["data"], contracts["10000001"])
    assert rate.rate == Decimal("-0.00005574")
    assert rate.interval_hours == 4
    assert rate.next_funding_time == pytest.approx(1758268800.0 + 4 * 3600)


# -- market data -------------------------------------------------------------------------------


def test_rest_depth_objects_and_websocket_depth_arrays_read_alike() -> None:
    rest = fixture("http_getDepth.json")["data"][0]
    bids, asks, start, end, snapshot = depth_entry(rest)
    assert bids[0] == ("101695.5", "1.710") and asks[0] == ("101695.9", "0.579")
    assert (start, end, snapshot) == (201223746, 201223747, True)
    ws = fixture("ws_depth_snapshot_doc.json")["content"]["data"][0]
    bids, asks, start, end, snapshot = depth_entry(ws)
    assert bids[0] == ("26092", "0.9014") and snapshot and start is None  # the doc shows "string"
    with pytest.raises(InvalidVenueData):
        depth_entry({"bids": "x"})
    with pytest.raises(InvalidVenueData):
        depth_entry({"bids": [7]})


def test_the_live_ticker_quote_event_gives_a_top_only_when_there_is_a_book() -> None:
    message = fixture("ws_ticker_all_1s_quote_event_live.json")
    assert message["type"] == "quote-event"  # not "payload" as the docs show
    assert all(ticker_top(row) is None for row in message["content"]["data"])  # "0" = no book
    assert ticker_top({"bestBidPrice": "10.1", "bestAskPrice": "10.2"}) == (Decimal("10.1"), Decimal("10.2"))
    assert ticker_top({"bestBidPrice": "10.3", "bestAskPrice": "10.2"}) is None  # crossed
    with pytest.raises(InvalidVenueData):
        ticker_top({"bestBidPrice": "NaN", "bestAskPrice": "10.2"})


# -- signatures --------------------------------------------------------------------------------


def test_hmac_headers_are_the_sdks_and_verify_over_the_sorted_body() -> None:
    body = {"accountId": "1", "orderIdList": ["5", "6"], "b": True}
    signed = body_text("POST", None, body)
    assert signed == "accountId=1&b=true&orderIdList=5&6"
    headers = hmac_headers(
        settings(), "POST", "/api/v2/private/order/cancelOrderById", signed, 1_700_000_000_000
    )
    assert set(headers) == {"X-edgeX-Api-Key", "X-edgeX-Passphrase", "X-edgeX-Signature", "X-edgeX-Timestamp"}
    assert verify_hmac("secret-1", headers, "POST", "/api/v2/private/order/cancelOrderById", signed)
    assert not verify_hmac("secret-2", headers, "POST", "/api/v2/private/order/cancelOrderById", signed)
    assert not verify_hmac("secret-1", headers, "POST", "/api/v2/private/order/cancelOrderById", signed + "x")
    assert body_text("GET", {"size": "100", "accountId": "7"}, None) == "accountId=7&size=100"


def test_the_sdks_order_signature_recovers_to_the_trading_key_and_a_changed_field_does_not() -> None:
    metadata = v2_metadata()
    signer = OrderSigner(settings())
    spec = OrderSpec("10000002", OrderSide.SELL, "0.01", "3000.55", "POST_ONLY", "12345000000001")
    body = signer.build(spec, metadata)
    address = Account.from_key(KEY).address
    assert signer.signer_address() == address
    assert body["timeInForce"] == "POST_ONLY" and body["clientOrderId"] == spec.client_order_id
    assert verify_order_signature(body, metadata, address) is None
    recovered = Account.recover_message(
        encode_typed_data(full_message=order_typed_data(body, metadata, address)),
        signature=bytes.fromhex(body["l2Signature"]),
    )
    assert recovered == address
    for field, value in (("price", "3000.56"), ("size", "0.02"), ("side", "BUY"), ("l2Nonce", "1")):
        tampered = dict(body, **{field: value})
        assert verify_order_signature(tampered, metadata, address) is not None, field
    # One bit of r flipped. (Zeroing the last bytes was flaky: they hold the recovery id, which
    # reads 0 as 27, so about one signature in 500 survived it unchanged.)
    signature = bytearray.fromhex(body["l2Signature"])
    signature[7] ^= 0x01
    forged = dict(body, l2Signature=signature.hex())
    assert verify_order_signature(forged, metadata, address) is not None


def test_metadata_without_the_v2_signing_fields_is_invalid_venue_data() -> None:
    metadata = fixture("http_getMetaData.json")["data"]  # a v1 capture: no chain id, no resolution
    with pytest.raises(InvalidVenueData, match=META_PATH):
        OrderSigner(settings()).build(
            OrderSpec("10000002", OrderSide.BUY, "0.01", "3000", "POST_ONLY", "12345000000002"), metadata
        )
