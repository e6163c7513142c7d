"""Issue 10 (points 1-8): every Lighter reply we rely on, handled in every plausible form.

Against the loopback venue (tests/mock_venues/lighter_venue.py); where the venue's real reply
is not known from a source, the mock's knob for it says "unsourced" and the test runs the
client against several forms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from exchanges.base import (
    AuthenticationError,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    NetworkError,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    RateLimitExceeded,
    SlippageExceeded,
)
from helpers.clock import LiveClock
from helpers.rate_limiter import Priority
from helpers.trading_config import TradingConfig
from tests.connector_fixtures import started_venue, wait_until
from tests.shared_paths import FIXTURES_DIR

pytest.importorskip("lighter")

from exchanges.lighter import LighterClient, trade_reports
from tests.mock_venues.lighter_venue import MockLighterVenue


def config(**params: Any) -> TradingConfig:
    return TradingConfig(
        ticker="ETH", exchange="lighter", strategy="grid", quantity=Decimal("0.01"), exchange_params=params
    )


venue = started_venue(MockLighterVenue)


def offline_client() -> LighterClient:
    env = {
        "LIGHTER_API_PRIVATE_KEY": "ab" * 40,
        "LIGHTER_ACCOUNT_INDEX": "712440",
        "LIGHTER_API_KEY_INDEX": "4",
    }
    return LighterClient(config(), LiveClock(), env=env)


async def connected(venue: MockLighterVenue, **params: Any) -> LighterClient:
    c = LighterClient(
        config(**{"order_ack_timeout": 3.0, "backoff_base": 0.05, **params}), LiveClock(), env=venue.env()
    )
    await c.connect()
    return c


@pytest.fixture
async def client(venue: MockLighterVenue) -> AsyncIterator[LighterClient]:
    c = await connected(venue)
    try:
        yield c
    finally:
        await c.disconnect()


def next_id(client: LighterClient) -> str:
    return client.client_ids.next_id(time.time())


# -- 1. an IOC that fills nothing, whatever cancelled status the venue gives it -----------------


@pytest.mark.parametrize(
    "status",
    [None, "canceled", "canceled-expired", "canceled-not-enough-liquidity", "canceled-some-new-reason"],
)
async def test_unfilled_market_order_is_slippage_exceeded_for_every_cancelled_status(
    venue: MockLighterVenue, client: LighterClient, status: str | None
) -> None:
    venue.set_ioc_unfilled_status(status)
    await client.fetch_bbo_prices("0")
    # Our view of the touch is stale (2900) while the venue's asks start at 3000.30: the price
    # bound (0.5 % above 2900) is below every ask, so the IOC ends with nothing filled.
    book = client._books["0"]
    book.bids, book.asks = {Decimal("2899"): Decimal(1)}, {Decimal("2900"): Decimal(1)}
    with pytest.raises(SlippageExceeded, match="not filled"):
        await client.place_market_order(
            "0", OrderSide.BUY, Decimal("0.0100"), next_id(client), Decimal("0.5")
        )
    assert venue.position() == 0


# -- 2. a refused account subscription is seen at connect, and recovered from later ------------


@pytest.mark.parametrize(("code", "message"), [(20001, "denied"), (30005, "Invalid Channel"), (None, "x")])
async def test_refused_account_subscription_fails_connect_with_a_typed_error(
    venue: MockLighterVenue, code: int | None, message: str
) -> None:
    venue.refuse_next_subscription("account_orders", code=code or 0, message=message)
    c = LighterClient(config(), LiveClock(), env=venue.env())
    with pytest.raises(AuthenticationError, match="refused the account_orders subscription"):
        await c.connect()
    assert c._ws is None or not c._ws.connected.is_set()
    assert venue.stats().rest_calls.get("/api/v1/accountActiveOrders", 0) == 0


async def test_refusal_after_connect_is_recovered_and_orders_do_not_wait_meanwhile(
    venue: MockLighterVenue, client: LighterClient, caplog: pytest.LogCaptureFixture
) -> None:
    channel = client._account_channel("0")
    venue.refuse_next_subscription("account_orders", code=20001, message="denied")
    with caplog.at_level(logging.WARNING, logger="exchanges.lighter"):
        await client._refresh_account_streams()
        await wait_until(lambda: "refused the account_orders" in caplog.text)
    # The recovery (new token, subscribe again) is answered "already subscribed": confirmed.
    await wait_until(lambda: client._subscriptions.get(channel) == "ok")
    bid, _ = await client.fetch_bbo_prices("0")
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    assert result.status is OrderStatus.OPEN

    # While refused (the venue sends nothing on it), an order returns without waiting for an
    # acknowledgement that cannot come, and without a REST read-back per order.
    assert client._ws is not None
    await client._ws.send({"type": "unsubscribe", "channel": channel})
    key = channel.replace("/", ":")
    await wait_until(lambda: not venue.call(lambda: venue.subscribers.get(key)))
    client._subscriptions[channel] = "refused: test"
    reads = venue.stats().rest_calls.get("/api/v1/accountActiveOrders", 0)
    pending = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 2, next_id(client))
    assert pending.status is OrderStatus.PENDING
    assert venue.stats().rest_calls.get("/api/v1/accountActiveOrders", 0) == reads


# -- 3. token renewal: subscribe again with the new token; 30003 is harmless --------------------


async def test_token_renewal_subscribes_again_without_a_gap(
    venue: MockLighterVenue, client: LighterClient, caplog: pytest.LogCaptureFixture
) -> None:
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    first_token = client._token
    client._token_expiry = 0.0  # due for renewal
    with caplog.at_level(logging.WARNING, logger="exchanges.lighter"):
        await client._refresh_account_streams()
        await wait_until(lambda: all(client._subscriptions.get(c) == "ok" for c in client._auth_channels()))
    assert client._token != first_token
    sent = [m for m in venue.stats().ws_messages_in if m.get("channel") == client._account_channel("0")]
    assert [m["type"] for m in sent] == ["subscribe", "subscribe"]  # no unsubscribe: no gap
    assert sent[1]["auth"] != sent[0]["auth"]
    assert "lighter-ws" not in caplog.text  # the 30003 answer is not a warning

    bid, _ = await client.fetch_bbo_prices("0")
    cid = next_id(client)
    await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, cid)
    venue.trade_through(bid - 1)
    await wait_until(lambda: any(u.fill and u.fill.client_order_id == cid for u in updates))


# -- 4. fees from the venue's trade records ----------------------------------------------------


def test_trade_record_maps_to_our_side_with_the_exact_fee() -> None:
    raw = json.loads((FIXTURES_DIR / "lighter" / "ws_account_all_trades_update.json").read_text())
    trade = raw["trades"]["0"][0]
    (ours,) = trade_reports(trade, 1234, 0.0)  # the bid side's account; the ask was the maker
    assert (ours.client_order_id, ours.order_id, ours.is_maker) == ("7001011966", "562947905631053", False)
    assert ours.fee == Decimal("0.061608")  # 314.324728 USDC * 196 millionths
    (maker,) = trade_reports(trade, 91249, 0.0)
    assert maker.is_maker and maker.fee == Decimal("0.008801")  # * 28 millionths
    assert trade_reports(trade, 1, 0.0) == []
    trade.pop("taker_fee")
    assert trade_reports(trade, 1234, 0.0)[0].fee == 0  # no fee key: that side paid none


@pytest.mark.parametrize("taker", [False, True])
async def test_fees_end_as_the_trade_records_exact_fees_not_the_estimate(
    venue: MockLighterVenue, taker: bool
) -> None:
    client = await connected(venue)
    try:
        updates = []
        client.subscribe_order_updates(updates.append)
        # The venue now charges other rates than orderBookDetails advertised at connect.
        venue.call(lambda: setattr(venue.markets[0], "maker_fee", Decimal("0.0003")))
        venue.call(lambda: setattr(venue.markets[0], "taker_fee", Decimal("0.0007")))
        bid, _ = await client.fetch_bbo_prices("0")
        if taker:  # trades are pushed before the order's final state: exact at once
            await client.place_market_order(
                "0", OrderSide.SELL, Decimal("0.0100"), next_id(client), Decimal("1")
            )
        else:  # the order's fill is pushed before its trade: announced at once, corrected later
            await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
            venue.trade_through(bid - 1)
        fills = lambda: [u.fill for u in updates if u.fill is not None]  # noqa: E731
        corrections = lambda: [u.fee_correction for u in updates if u.fee_correction is not None]  # noqa: E731
        estimated = lambda: sum((f.size for f in fills() if f.fee_estimated), Decimal(0))  # noqa: E731
        await wait_until(
            lambda: (
                sum(f.size for f in fills()) == Decimal("0.0100")
                and sum((c.size for c in corrections()), Decimal(0)) == estimated()
            )
        )
        state = venue.state(venue.account_index)["accounts"][str(venue.account_index)]
        venue_fees = sum(Decimal(t["fee"]) for t in state["trades"])
        booked = sum(f.fee for f in fills()) + sum(c.delta for c in corrections())
        assert booked == venue_fees > 0
        # The maker fill did not wait for its trade record; the taker's trades came first.
        assert (estimated() > 0) is (not taker)
    finally:
        await client.disconnect()


async def test_without_trade_records_fees_are_estimated_and_marked(venue: MockLighterVenue) -> None:
    client = await connected(venue, trade_fees=False)
    try:
        fills = []
        client.subscribe_order_updates(lambda u: fills.append(u.fill) if u.fill else None)
        bid, _ = await client.fetch_bbo_prices("0")
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
        venue.trade_through(bid - 1)
        await wait_until(lambda: len(fills) == 1)
        assert fills[0].fee_estimated
    finally:
        await client.disconnect()


# -- 6. the venue's shutdown notice: move before the connection is closed ---------------------


async def test_shutdown_notice_reconnects_before_the_venue_closes(
    venue: MockLighterVenue, client: LighterClient
) -> None:
    assert client._ws is not None
    connects = client._ws.connects
    assert venue.announce_shutdown(close_in_ms=600) == 1
    await wait_until(lambda: client._ws is not None and client._ws.connects == connects + 1)
    assert client.shutdown_notices == 1
    await asyncio.sleep(0.8)  # past the venue's deadline: nothing of ours was left to close
    assert venue.shutdown_forced_closes == 0
    assert client._ws.connected.is_set()
    assert await client.fetch_bbo_prices("0") == venue.best_bid_ask()


# -- 8. the SDK's own REST calls spend our budget too ------------------------------------------


async def test_every_rest_request_including_the_sdks_takes_a_limiter_token(venue: MockLighterVenue) -> None:
    client = await connected(venue)
    try:
        bid, _ = await client.fetch_bbo_prices("0")
        result = await client.place_limit_order(
            "0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client)
        )
        await client.cancel_order("0", result.order_id or "")
        calls = venue.stats().rest_calls
        assert calls.get("/api/v1/nextNonce", 0) >= 1 and calls.get("/api/v1/apikeys", 0) >= 1
        assert client._limiter.acquired == sum(calls.values())
    finally:
        await client.disconnect()


# -- issue 10 point 2: transactions over the WebSocket, HTTP as the fallback --------------------


async def test_orders_and_cancels_go_over_the_stream_without_spending_rest_budget(
    venue: MockLighterVenue, client: LighterClient
) -> None:
    bid, _ = await client.fetch_bbo_prices("0")
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    assert result.status is OrderStatus.OPEN
    cancelled = await client.cancel_order("0", result.order_id or "")
    assert cancelled.status is OrderStatus.CANCELLED
    venue.reject_next_tx(21029, "insufficient margin")
    with pytest.raises(InsufficientFunds):
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    assert client.ws_txs == 3
    assert venue.stats().rest_calls.get("/api/v1/sendTx", 0) == 0
    assert [m["type"] for m in venue.stats().ws_messages_in if "sendtx" in str(m.get("type"))] == [
        "jsonapi/sendtx"
    ] * 3


async def test_a_stream_that_cannot_take_the_frame_falls_back_to_http(
    venue: MockLighterVenue, client: LighterClient
) -> None:
    assert client._ws is not None

    async def broken(message: Any) -> None:
        raise ConnectionError("closed")

    client._ws.send = broken  # type: ignore[method-assign]
    bid, _ = await client.fetch_bbo_prices("0")
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    assert result.status is OrderStatus.OPEN
    assert venue.stats().rest_calls.get("/api/v1/sendTx", 0) == 1 and client.ws_txs == 0


async def test_replies_are_matched_by_id_then_hash_then_order_of_sending() -> None:
    client = offline_client()
    loop = asyncio.get_running_loop()
    futures = {name: loop.create_future() for name in ("a", "b", "c", "d")}
    client._pending_txs.update({name: (f"hash-{name}", future) for name, future in futures.items()})
    assert client._on_tx_reply({"type": "jsonapi/sendtx", "code": 200, "id": "c", "tx_hash": "x"})
    assert futures["c"].result()["id"] == "c"
    assert client._on_tx_reply({"type": "jsonapi/sendtx", "data": {"code": 200, "tx_hash": "hash-b"}})
    assert futures["b"].done() and not futures["a"].done()
    client._on_ws_error({"error": {"code": 21104, "message": "invalid nonce"}})  # the oldest: a
    with pytest.raises(InvalidNonce):
        futures["a"].result()
    client._on_ws_disconnect("test")
    with pytest.raises(NetworkError):
        futures["d"].result()
    assert not client._on_tx_reply({"type": "jsonapi/sendtx", "code": 200})


# -- issue 10 point 4: the live check's flow, against the loopback venue -----------------------


async def test_live_check_places_sees_and_cancels_one_far_order(venue: MockLighterVenue) -> None:
    from exchanges.lighter_check import run_check

    lines: list[str] = []
    code = await run_check("testnet", "ETH", Decimal("5"), venue.env(), lines.append)
    assert code == 0, "\n".join(lines)
    steps = [line.split()[1] for line in lines if line.startswith(("OK", "FAIL"))]
    assert steps == ["connect", "market", "account", "place", "seen", "cancel", "seen", "disconnect"]
    assert all(line.startswith("OK") and " ms " in line for line in lines if line[:2] in ("OK", "FA"))
    (order,) = venue.orders()
    assert order["status"] == "canceled" and Decimal(order["filled_base_amount"]) == 0
    bid, _ = venue.best_bid_ask()
    assert bid is not None and Decimal(order["price"]) <= bid * Decimal("0.95")
    assert not any(venue.api_private_key in line for line in lines)


async def test_live_check_reports_a_failing_step_and_exits_1(venue: MockLighterVenue) -> None:
    from exchanges.lighter_check import run_check

    venue.reject_next_tx(21029, "insufficient margin")
    lines: list[str] = []
    assert await run_check("testnet", "ETH", Decimal("5"), venue.env(), lines.append) == 1
    assert any(line.startswith("FAIL place post-only") and "InsufficientFunds" in line for line in lines)
    assert lines[-1] == "some steps FAILED"


async def test_stream_transactions_are_paced_by_their_own_limiter(venue: MockLighterVenue) -> None:
    client = await connected(venue, ws_tx_per_minute=6000.0)
    try:
        bid, _ = await client.fetch_bbo_prices("0")
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
        rest_tokens = client._limiter.acquired  # the first transaction also fetched the nonce
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 2, next_id(client))
        assert client._tx_limiter.acquired == 2 and client._limiter.acquired == rest_tokens
        venue.reject_next_tx(23000, "Too Many Requests!")
        with pytest.raises(RateLimitExceeded):
            await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
        assert client._tx_limiter.throttled == 1 and client._tx_limiter.paused_until > 0
    finally:
        await client.disconnect()


def test_client_budgets_never_exceed_the_rolling_minute() -> None:
    """Lighter counts requests in a rolling minute: burst + refill per minute must stay within it."""
    from exchanges.lighter import _minute_budget
    from helpers.clock import SimulatedClock

    for per_minute in (60.0, 600.0, 24_000.0):
        bucket = _minute_budget(SimulatedClock(start=0.0), per_minute, "test")
        assert bucket.capacity + bucket.rate * 60 <= per_minute
        assert bucket.capacity >= 1 and bucket.rate * 60 >= per_minute * 0.9


async def test_mock_models_a_standard_accounts_rolling_limits(venue: MockLighterVenue) -> None:
    import aiohttp

    venue.set_account_limits(rest_per_minute=3, tx_per_minute=None)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(4):
            async with http.get(f"{venue.base_url}/api/v1/orderBooks") as response:
                statuses.append(response.status)
    assert statuses == [200, 200, 200, 429] and venue.limit_refusals["rest"] == 1


def test_trades_of_an_order_from_before_a_restart_are_not_counted_again() -> None:
    """A restart's baseline already counts the fills; the trades snapshot must add nothing,
    even when the trade is stamped after the order's updated_at (the venue does that)."""
    client = offline_client()
    client._subscriptions[client._trades_channel()] = "ok"
    updates: list[OrderUpdate] = []
    client.subscribe_order_updates(updates.append)
    cid = next_id(client)
    order = json.loads((FIXTURES_DIR / "lighter" / "ws_account_orders_update_partial_fill.json").read_text())
    raw = order["orders"]["0"][0]
    raw.update(
        client_order_index=int(cid),
        client_order_id=cid,
        initial_base_amount="0.0100",
        filled_base_amount="0.0030",
        filled_quote_amount="7.058220",
        updated_at=1777941383900,
    )
    client._apply_order(raw)  # what a restart's look-up reads: the baseline
    assert client._orders.get(cid).filled == Decimal("0.0030")  # type: ignore[union-attr]
    trade = {
        "trade_id": 1,
        "size": "0.0030",
        "price": "2352.74",
        "usd_amount": "7.058220",
        "ask_id": raw["order_index"],
        "ask_client_id": int(cid),
        "ask_account_id": 712440,
        "bid_id": 5,
        "bid_client_id": 0,
        "bid_account_id": 9,
        "is_maker_ask": True,
        "timestamp": 1777941383901,
        "maker_fee": 20,
    }
    client._on_trades({"type": "subscribed/account_all_trades", "trades": {"0": [trade]}})
    assert client._orders.get(cid).filled == Decimal("0.0030")  # type: ignore[union-attr]
    assert [u.fill for u in updates if u.fill is not None] == []


async def test_exits_and_cancels_go_before_entries_at_the_transaction_limiter(
    venue: MockLighterVenue, client: LighterClient
) -> None:
    """Issue 8: while entries are paced, a take-profit (reduce-only) or a cancel is not queued
    behind them."""
    seen: list[Priority] = []
    original = client._tx_limiter.acquire

    async def spy(cost: float = 1.0, priority: Priority = Priority.NORMAL) -> None:
        seen.append(priority)
        await original(cost, priority)

    client._tx_limiter.acquire = spy  # type: ignore[method-assign]
    bid, _ = await client.fetch_bbo_prices("0")
    entry = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.0100"), bid - 1, next_id(client))
    await client.cancel_order("0", entry.order_id or "")
    with pytest.raises(InvalidOrder):  # reduce-only with no position: refused, but sent first in line
        await client.place_limit_order(
            "0", OrderSide.SELL, Decimal("0.0100"), bid + 50, next_id(client), reduce_only=True
        )
    assert seen == [Priority.LOW, Priority.HIGH, Priority.HIGH]
