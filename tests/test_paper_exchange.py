"""The paper venue, driven by hand-made events on a SimulatedClock so every number is hand-checked.

Unless a test says otherwise the book starts at 60000.0 / 60000.1, fees are the defaults (maker
0.02 %, taker 0.05 %), and the clock sits one hour after a funding boundary.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backtesting.market_feed import (
    FeedStats,
    MarketEvent,
    MarketEventKind,
    SyntheticMarket,
    read_recorded_feed,
)
from exchanges.base import (
    ConfigurationError,
    ExchangeUnavailable,
    Fill,
    InvalidOrder,
    MarketUpdate,
    OrderBelowMinimum,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PostOnlyRejected,
    QuietQuotes,
    RateLimitExceeded,
    SlippageExceeded,
)
from exchanges.factory import ExchangeFactory
from exchanges.paper import PaperExchangeClient, PaperOptions
from helpers.clock import LiveClock, SimulatedClock
from helpers.trading_config import TradingConfig
from tests.shared_paths import RECORDED_FEED

BUY, SELL = OrderSide.BUY, OrderSide.SELL
FUNDING_BOUNDARY = 1_700_006_400.0  # a multiple of 8 h since the epoch
T0 = FUNDING_BOUNDARY + 3600.0


def D(text: str) -> Decimal:
    return Decimal(text)


def bbo(bid: str, ask: str, timestamp: float = T0) -> MarketEvent:
    return MarketEvent.bbo(timestamp, D(bid), D(ask), D("1.000"), D("1.000"))


def trade(price: str, size: str, aggressor: OrderSide = SELL, timestamp: float = T0) -> MarketEvent:
    return MarketEvent.trade(timestamp, D(price), D(size), aggressor)


def make_config(**params: Any) -> TradingConfig:
    return TradingConfig(
        ticker="BTC",
        exchange="paper",
        strategy="grid",
        quantity=D("0.01"),
        exchange_params={
            "drive_externally": True,
            "maker_fee_pct": D("0.02"),
            "taker_fee_pct": D("0.05"),
            # These tests pin the quote-touch rules; the queue model has test_paper_queue.py.
            "fill_model": "touch",
            **params,
        },
    )


class Venue:
    """A connected paper venue on a simulated clock, recording every update it emits."""

    def __init__(self, client: PaperExchangeClient, clock: SimulatedClock) -> None:
        self.client = client
        self.clock = clock
        self.order_updates: list[OrderUpdate] = []
        self.market_updates: list[MarketUpdate] = []
        client.subscribe_order_updates(self.order_updates.append)
        client.subscribe_market_updates(self.market_updates.append)

    def apply(self, event: MarketEvent) -> None:
        self.clock.advance_to(event.timestamp)
        self.client.apply_market_event(event)

    def cid(self) -> str:
        return self.client.client_ids.next_id(self.clock.now())

    async def limit(
        self, side: OrderSide, size: str, price: str, post_only: bool = True, reduce_only: bool = False
    ) -> OrderResult:
        return await self.client.place_limit_order(
            "BTC", side, D(size), D(price), self.cid(), post_only, reduce_only
        )

    async def market(
        self, side: OrderSide, size: str, slippage: str = "0.5", reduce_only: bool = False
    ) -> OrderResult:
        return await self.client.place_market_order(
            "BTC", side, D(size), self.cid(), D(slippage), reduce_only
        )

    def fills(self) -> list[Fill]:
        return [update.fill for update in self.order_updates if update.fill is not None]


async def open_venue(**params: Any) -> Venue:
    clock = SimulatedClock(T0)
    client = PaperExchangeClient(make_config(**params), clock)
    await client.connect()
    venue = Venue(client, clock)
    venue.apply(bbo("60000.0", "60000.1"))
    return venue


@pytest.fixture
async def venue() -> Venue:
    return await open_venue()


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def test_options_defaults_and_parsing_from_cli_strings() -> None:
    defaults = PaperOptions.from_params({})
    assert defaults == PaperOptions()
    assert (defaults.start_price, defaults.tick_size, defaults.size_step) == (
        D("60000"),
        D("0.1"),
        D("0.001"),
    )
    assert (defaults.maker_fee_pct, defaults.taker_fee_pct, defaults.min_notional) == (
        D("0.002"),
        D("0.02"),
        D("5"),
    )
    assert defaults.drive_externally is False and defaults.feed_path is None
    parsed = PaperOptions.from_params(
        {
            "seed": "42",
            "start_price": "3000.5",
            "drive_externally": "true",
            "replay_speed": "0",
            "feed_path": "x.gz",
        }
    )
    assert (parsed.seed, parsed.start_price, parsed.drive_externally, parsed.replay_speed) == (
        42,
        D("3000.5"),
        True,
        0.0,
    )
    assert parsed.feed_path == Path("x.gz")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"colour": "red"}, "'colour'"),
        ({"seed": "abc"}, "'seed'"),
        ({"tick_size": "0"}, "'tick_size'"),
        ({"spread_ticks": 0}, "'spread_ticks'"),
        ({"maker_fee_pct": "5"}, "'maker_fee_pct'"),
        ({"drive_externally": "maybe"}, "'drive_externally'"),
        ({"start_balance": "NaN"}, "'start_balance'"),
    ],
)
def test_invalid_options_raise_one_line_configuration_errors(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PaperOptions.from_params(params)
    message = str(caught.value)
    assert named in message and "\n" not in message


def test_factory_builds_the_paper_venue() -> None:
    client = ExchangeFactory.create_exchange("paper", make_config(), SimulatedClock(T0))
    assert isinstance(client, PaperExchangeClient) and client.name == "paper"


# ---------------------------------------------------------------------------------------------
# Market data and metadata
# ---------------------------------------------------------------------------------------------


async def test_contract_info_bbo_and_funding_rate(venue: Venue) -> None:
    info = await venue.client.get_contract_info("eth")
    assert (info.ticker, info.contract_id) == ("ETH", "ETH")
    assert (info.tick_size, info.size_step, info.min_size, info.min_notional) == (
        D("0.1"),
        D("0.001"),
        D("0.001"),
        D("5"),
    )
    assert await venue.client.fetch_bbo_prices("BTC") == (D("60000.0"), D("60000.1"))
    funding = await venue.client.get_funding_rate("BTC")
    assert (funding.rate, funding.interval_hours) == (D("0.0001"), D("8"))
    assert funding.next_funding_time == FUNDING_BOUNDARY + 8 * 3600


async def test_no_market_data_before_the_first_bbo() -> None:
    client = PaperExchangeClient(make_config(), SimulatedClock(T0))
    await client.connect()
    with pytest.raises(ExchangeUnavailable):
        await client.fetch_bbo_prices("BTC")
    with pytest.raises(ExchangeUnavailable):
        await client.place_limit_order("BTC", BUY, D("0.01"), D("59000.0"), "1")


async def test_market_updates_on_price_changes_and_trades_only(venue: Venue) -> None:
    venue.market_updates.clear()
    venue.apply(MarketEvent.bbo(T0 + 1, D("60000.0"), D("60000.1"), D("5"), D("7")))  # sizes only
    venue.apply(bbo("60000.1", "60000.2", T0 + 2))
    venue.apply(trade("60000.2", "0.3", BUY, T0 + 3))
    assert [(u.best_bid, u.best_ask, u.last_trade_price, u.timestamp) for u in venue.market_updates] == [
        (D("60000.1"), D("60000.2"), None, T0 + 2),
        (D("60000.1"), D("60000.2"), D("60000.2"), T0 + 3),
    ]
    assert all(update.contract_id == "BTC" for update in venue.market_updates)


# ---------------------------------------------------------------------------------------------
# Placing and matching
# ---------------------------------------------------------------------------------------------


async def test_post_only_orders_that_would_cross_are_rejected(venue: Venue) -> None:
    with pytest.raises(PostOnlyRejected, match=re.escape("best ask 60000.1")):
        await venue.limit(BUY, "0.01", "60000.1")
    with pytest.raises(PostOnlyRejected, match=re.escape("best bid 60000.0")):
        await venue.limit(SELL, "0.01", "59990.0")
    assert venue.order_updates == []
    result = await venue.limit(BUY, "0.01", "60000.0")
    assert result.success and result.status is OrderStatus.OPEN
    assert (result.order_id, result.side, result.size, result.price) == ("1", BUY, D("0.01"), D("60000.0"))
    assert [u.order.status for u in venue.order_updates] == [OrderStatus.OPEN]
    assert venue.order_updates[0].fill is None


async def test_resting_buy_fills_fully_when_the_ask_reaches_it(venue: Venue) -> None:
    placed = await venue.limit(BUY, "0.010", "59999.0")
    venue.apply(bbo("59998.0", "59999.1", T0 + 1))  # ask above our price: nothing
    assert venue.fills() == []
    venue.apply(bbo("59998.0", "59999.0", T0 + 2))  # ask at our price: all of it
    (fill,) = venue.fills()
    assert (fill.order_id, fill.side, fill.price, fill.size, fill.is_maker) == (
        placed.order_id,
        BUY,
        D("59999.0"),
        D("0.010"),
        True,
    )
    assert fill.fee == D("0.119998")  # 59999.0 x 0.010 x 0.02 %
    assert fill.timestamp == T0 + 2
    final = venue.order_updates[-1].order
    assert (final.status, final.filled_size, final.average_fill_price) == (
        OrderStatus.FILLED,
        D("0.010"),
        D("59999.0"),
    )
    assert await venue.client.get_active_orders("BTC") == []


async def test_resting_buy_fills_fully_when_a_trade_prints_below_it(venue: Venue) -> None:
    await venue.limit(BUY, "0.010", "59999.0")
    venue.apply(trade("59998.9", "0.001", timestamp=T0 + 1))  # smaller than our order: still all of it
    (fill,) = venue.fills()
    assert (fill.price, fill.size) == (D("59999.0"), D("0.010"))


async def test_trade_exactly_at_our_price_fills_partially(venue: Venue) -> None:
    placed = await venue.limit(BUY, "0.010", "59999.0")
    venue.apply(trade("59999.0", "0.004", timestamp=T0 + 1))
    assert [(f.price, f.size) for f in venue.fills()] == [(D("59999.0"), D("0.004"))]
    info = await venue.client.get_order_info("BTC", placed.order_id)
    assert (info.status, info.filled_size, info.remaining_size) == (
        OrderStatus.PARTIALLY_FILLED,
        D("0.004"),
        D("0.006"),
    )
    venue.apply(trade("59999.0", "0.5", timestamp=T0 + 2))
    assert [f.size for f in venue.fills()] == [D("0.004"), D("0.006")]
    info = await venue.client.get_order_info("BTC", placed.order_id)
    assert (info.status, info.filled_size) == (OrderStatus.FILLED, D("0.010"))
    position = await venue.client.get_position("BTC")
    assert (position.size, position.entry_price) == (D("0.010"), D("59999.0"))


async def test_orders_at_one_price_share_a_trade_in_time_priority(venue: Venue) -> None:
    first = await venue.limit(BUY, "0.003", "59999.0")
    second = await venue.limit(BUY, "0.003", "59999.0")
    venue.apply(trade("59999.0", "0.004", timestamp=T0 + 1))
    assert [(f.order_id, f.size) for f in venue.fills()] == [
        (first.order_id, D("0.003")),
        (second.order_id, D("0.001")),
    ]


async def test_resting_sell_fills_partially_at_price_then_fully_when_bid_reaches_it(venue: Venue) -> None:
    await venue.limit(SELL, "0.010", "60001.0")
    venue.apply(trade("60001.0", "0.003", BUY, T0 + 1))
    venue.apply(trade("60000.9", "1.0", BUY, T0 + 2))  # below a sell: nothing
    venue.apply(bbo("60001.0", "60001.1", T0 + 3))
    assert [(f.side, f.price, f.size) for f in venue.fills()] == [
        (SELL, D("60001.0"), D("0.003")),
        (SELL, D("60001.0"), D("0.007")),
    ]
    position = await venue.client.get_position("BTC")
    assert (position.size, position.entry_price) == (D("-0.010"), D("60001.0"))


async def test_best_orders_fill_first_and_far_orders_stay(venue: Venue) -> None:
    far = await venue.limit(BUY, "0.01", "59000.0")
    near = await venue.limit(BUY, "0.01", "59990.0")
    middle = await venue.limit(BUY, "0.01", "59500.0")
    venue.apply(bbo("59400.0", "59400.1", T0 + 1))
    assert [f.order_id for f in venue.fills()] == [near.order_id, middle.order_id]
    active = await venue.client.get_active_orders("BTC")
    assert [order.order_id for order in active] == [far.order_id]


async def test_crossing_limit_without_post_only_takes_at_the_touch(venue: Venue) -> None:
    result = await venue.limit(BUY, "0.1", "60010.0", post_only=False)
    assert (result.status, result.filled_size, result.average_fill_price) == (
        OrderStatus.FILLED,
        D("0.1"),
        D("60000.1"),
    )
    assert [u.order.status for u in venue.order_updates] == [OrderStatus.OPEN, OrderStatus.FILLED]
    (fill,) = venue.fills()
    assert (fill.price, fill.is_maker, fill.fee) == (D("60000.1"), False, D("3.000005"))


async def test_market_orders_fill_at_the_touch_as_taker(venue: Venue) -> None:
    result = await venue.market(BUY, "0.1")
    assert (result.status, result.filled_size, result.average_fill_price, result.side) == (
        OrderStatus.FILLED,
        D("0.1"),
        D("60000.1"),
        BUY,
    )
    sold = await venue.market(SELL, "0.05")
    assert sold.average_fill_price == D("60000.0")
    fills = venue.fills()
    assert [(f.price, f.size, f.is_maker) for f in fills] == [
        (D("60000.1"), D("0.1"), False),
        (D("60000.0"), D("0.05"), False),
    ]
    assert [u.order.order_type for u in venue.order_updates] == [OrderType.MARKET, OrderType.MARKET]


async def test_market_order_beyond_the_slippage_bound_is_refused(venue: Venue) -> None:
    venue.apply(bbo("59000.0", "61000.0", T0 + 1))  # the ask is 1.667 % above the mid
    with pytest.raises(SlippageExceeded):
        await venue.market(BUY, "0.01", slippage="1.5")
    result = await venue.market(BUY, "0.01", slippage="2")
    assert result.average_fill_price == D("61000.0")


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "price", "error", "text"),
    [
        ("0", "59000.0", InvalidOrder, "must be positive"),
        ("-0.01", "59000.0", InvalidOrder, "must be positive"),
        ("0.0015", "59000.0", InvalidOrder, "not a multiple of the size step 0.001"),
        ("0.01", "59000.05", InvalidOrder, "tick size 0.1"),
        ("0.01", "0", InvalidOrder, "tick size 0.1"),
    ],
)
async def test_malformed_orders_raise_invalid_order(
    venue: Venue, size: str, price: str, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text) as caught:
        await venue.limit(BUY, size, price)
    assert not isinstance(caught.value, OrderBelowMinimum)


async def test_orders_below_minimum_size_or_notional_are_refused() -> None:
    venue = await open_venue(min_size="0.01", min_notional="100")
    with pytest.raises(OrderBelowMinimum, match=re.escape("below the minimum size 0.01")):
        await venue.limit(BUY, "0.005", "59000.0")
    with pytest.raises(OrderBelowMinimum, match="below the minimum notional 100"):
        await venue.limit(BUY, "0.01", "9000.0")  # notional 90
    assert (await venue.limit(BUY, "0.01", "10000.0")).status is OrderStatus.OPEN  # notional exactly 100
    market_venue = await open_venue(min_notional="100")
    with pytest.raises(OrderBelowMinimum, match="minimum notional"):
        await market_venue.market(BUY, "0.001")  # 0.001 x 60000.1 = 60.0001
    assert venue.fills() == market_venue.fills() == []


async def test_duplicate_active_client_order_id_is_refused(venue: Venue) -> None:
    await venue.client.place_limit_order("BTC", BUY, D("0.01"), D("59000.0"), "12345")
    with pytest.raises(InvalidOrder, match="already in use"):
        await venue.client.place_limit_order("BTC", BUY, D("0.01"), D("59000.0"), "12345")


async def test_reduce_only_never_grows_the_position(venue: Venue) -> None:
    with pytest.raises(InvalidOrder, match="reduce-only"):
        await venue.limit(SELL, "0.01", "60010.0", reduce_only=True)  # flat
    with pytest.raises(InvalidOrder, match="reduce-only"):
        await venue.market(BUY, "0.01", reduce_only=True)
    await venue.market(BUY, "0.02")
    with pytest.raises(InvalidOrder, match=re.escape("at most 0.02")):
        await venue.limit(SELL, "0.03", "60010.0", reduce_only=True)
    take_profit = await venue.limit(SELL, "0.02", "60010.0", reduce_only=True)
    await venue.market(SELL, "0.015")  # position shrinks to 0.005 while the take-profit rests
    venue.apply(bbo("60010.0", "60010.1", T0 + 1))
    tp_updates = [u for u in venue.order_updates if u.order.order_id == take_profit.order_id]
    assert [(u.order.status, u.fill.size if u.fill else None) for u in tp_updates] == [
        (OrderStatus.OPEN, None),
        (OrderStatus.PARTIALLY_FILLED, D("0.005")),
        (OrderStatus.EXPIRED, None),
    ]
    assert (await venue.client.get_position("BTC")).size == 0


# ---------------------------------------------------------------------------------------------
# Cancel, look-ups, ownership
# ---------------------------------------------------------------------------------------------


async def test_cancel_emits_cancelled_and_second_cancel_is_not_found(venue: Venue) -> None:
    placed = await venue.limit(BUY, "0.01", "59990.0")
    result = await venue.client.cancel_order("BTC", placed.order_id)
    assert (result.success, result.status, result.order_id) == (True, OrderStatus.CANCELLED, placed.order_id)
    assert [u.order.status for u in venue.order_updates] == [OrderStatus.OPEN, OrderStatus.CANCELLED]
    with pytest.raises(OrderNotFound):
        await venue.client.cancel_order("BTC", placed.order_id)
    venue.apply(bbo("59980.0", "59980.1", T0 + 1))  # would have filled it
    assert venue.fills() == []
    info = await venue.client.get_order_info("BTC", placed.order_id)
    assert info.status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotFound):
        await venue.client.get_order_info("BTC", "999")
    with pytest.raises(OrderNotFound):
        await venue.client.cancel_order("BTC", "999")


async def test_cancelling_the_best_order_lets_the_next_one_match(venue: Venue) -> None:
    best = await venue.limit(BUY, "0.01", "59990.0")
    next_best = await venue.limit(BUY, "0.01", "59980.0")
    await venue.client.cancel_order("BTC", best.order_id)
    venue.apply(bbo("59979.0", "59980.0", T0 + 1))
    assert [f.order_id for f in venue.fills()] == [next_best.order_id]


async def test_active_orders_are_only_ours(venue: Venue) -> None:
    ours = await venue.limit(BUY, "0.01", "59990.0")
    prefix = venue.client.client_ids.prefix
    foreign_prefix = "999" if prefix != "999" else "998"
    await venue.client.place_limit_order("BTC", BUY, D("0.01"), D("59980.0"), foreign_prefix + "00000000001")
    active = await venue.client.get_active_orders("BTC")
    assert [order.order_id for order in active] == [ours.order_id]
    assert active[0].client_order_id is not None and active[0].client_order_id.startswith(prefix)


async def test_snapshots_do_not_change_after_they_are_handed_out(venue: Venue) -> None:
    placed = await venue.limit(BUY, "0.01", "59990.0")
    before = await venue.client.get_order_info("BTC", placed.order_id)
    venue.apply(bbo("59980.0", "59980.1", T0 + 1))
    assert before.status is OrderStatus.OPEN
    assert venue.order_updates[0].order.status is OrderStatus.OPEN


# ---------------------------------------------------------------------------------------------
# Money: fees, PnL, funding
# ---------------------------------------------------------------------------------------------


async def test_maker_and_taker_fees_to_the_cent(venue: Venue) -> None:
    await venue.market(BUY, "0.1")  # taker: 60000.1 x 0.1 x 0.05 % = 3.000005
    await venue.limit(BUY, "0.1", "59990.0")
    venue.apply(bbo("59989.0", "59990.0", T0 + 1))  # maker: 59990.0 x 0.1 x 0.02 % = 1.19980
    assert [f.fee for f in venue.fills()] == [D("3.000005"), D("1.19980")]
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.fees_paid == D("4.199805")
    assert snapshot.fees_paid.quantize(D("0.01")) == D("4.20")


async def test_realized_and_unrealized_pnl_buy_then_sell_higher(venue: Venue) -> None:
    await venue.limit(BUY, "0.1", "59990.0")
    venue.apply(bbo("59989.0", "59990.0", T0 + 1))  # buy fills at 59990.0
    venue.apply(bbo("60000.0", "60000.2", T0 + 2))  # mid 60000.1
    position = await venue.client.get_position("BTC")
    assert (position.size, position.entry_price) == (D("0.1"), D("59990.0"))
    assert position.unrealized_pnl == D("1.01")  # (60000.1 - 59990.0) x 0.1
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.balance == D("10000") - D("1.19980")
    assert snapshot.equity == snapshot.balance + D("1.01")
    assert [p.size for p in snapshot.positions] == [D("0.1")]

    await venue.limit(SELL, "0.1", "60010.0")
    venue.apply(bbo("60010.0", "60010.1", T0 + 3))  # sell fills at 60010.0
    position = await venue.client.get_position("BTC")
    assert (position.size, position.unrealized_pnl, position.realized_pnl) == (D(0), D(0), D("2.0"))
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.realized_pnl == D("2.0")  # (60010.0 - 59990.0) x 0.1
    assert snapshot.fees_paid == D("2.40000")  # 1.19980 + 1.20020
    assert snapshot.balance == snapshot.equity == D("9999.6")
    assert snapshot.positions == ()


async def test_averaging_in_and_flipping_through_zero() -> None:
    venue = await open_venue(maker_fee_pct="0", taker_fee_pct="0")
    await venue.market(BUY, "0.1")  # 0.1 at 60000.1
    venue.apply(bbo("60100.0", "60100.1", T0 + 1))
    await venue.market(BUY, "0.1")  # 0.1 at 60100.1
    position = await venue.client.get_position("BTC")
    assert (position.size, position.entry_price) == (D("0.2"), D("60050.1"))

    await venue.market(SELL, "0.5")  # at 60100.0: closes 0.2, opens 0.3 short
    position = await venue.client.get_position("BTC")
    assert position.realized_pnl == D("9.98")  # (60100.0 - 60050.1) x 0.2
    assert (position.size, position.entry_price) == (D("-0.3"), D("60100.0"))

    venue.apply(bbo("60050.0", "60050.2", T0 + 2))  # mid 60050.1
    position = await venue.client.get_position("BTC")
    assert position.unrealized_pnl == D("14.97")  # (60050.1 - 60100.0) x -0.3

    await venue.market(BUY, "0.1")  # at 60050.2: reduces the short, entry stays
    position = await venue.client.get_position("BTC")
    assert position.realized_pnl == D("9.98") + D("4.98")  # (60100.0 - 60050.2) x 0.1
    assert (position.size, position.entry_price) == (D("-0.2"), D("60100.0"))

    await venue.market(BUY, "0.2")
    snapshot = await venue.client.get_account_snapshot()
    position = await venue.client.get_position("BTC")
    assert (position.size, position.entry_price) == (D(0), D(0))
    assert snapshot.realized_pnl == D("24.92")  # 9.98 + 4.98 + 9.96
    assert snapshot.balance == snapshot.equity == D("10024.92")


async def test_funding_longs_pay_shorts_receive_at_each_boundary() -> None:
    venue = await open_venue(maker_fee_pct="0", taker_fee_pct="0")
    await venue.market(BUY, "0.1")  # long 0.1; mid 60000.05
    boundary = FUNDING_BOUNDARY + 8 * 3600
    venue.apply(bbo("60000.0", "60000.1", boundary - 1))
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.funding_paid == 0
    venue.apply(bbo("61000.0", "61000.1", boundary + 1))  # paid at the mid before this update
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.funding_paid == D("0.6000005")  # 0.1 x 60000.05 x 0.0001
    assert snapshot.balance == D("10000") - D("0.6000005")
    assert (await venue.client.get_funding_rate("BTC")).next_funding_time == boundary + 8 * 3600

    await venue.market(SELL, "0.3")  # short 0.2 at 61000.0; mid 61000.05
    venue.apply(bbo("61000.0", "61000.1", boundary + 16 * 3600 + 5))  # two boundaries passed
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.funding_paid == D("0.6000005") - D("2.440002")  # 2 x 0.2 x 61000.05 x 0.0001


async def test_negative_funding_rate_pays_longs() -> None:
    venue = await open_venue(funding_rate="-0.0002", taker_fee_pct="0")
    await venue.market(BUY, "1.0")
    venue.apply(bbo("60000.0", "60000.1", FUNDING_BOUNDARY + 8 * 3600))
    snapshot = await venue.client.get_account_snapshot()
    assert snapshot.funding_paid == D("-12.00001")  # received 1.0 x 60000.05 x 0.0002
    assert snapshot.balance == D("10012.00001")


# ---------------------------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------------------------


async def test_injected_failures_hit_the_next_calls_only(venue: Venue) -> None:
    venue.client.inject_failure("place_limit_order", RateLimitExceeded("slow down", retry_after=1.0), count=2)
    for _ in range(2):
        with pytest.raises(RateLimitExceeded):
            await venue.limit(BUY, "0.01", "59990.0")
    assert (await venue.limit(BUY, "0.01", "59990.0")).status is OrderStatus.OPEN
    venue.client.inject_failure("get_position", ExchangeUnavailable("down"))
    with pytest.raises(ExchangeUnavailable):
        await venue.client.get_position("BTC")
    assert (await venue.client.get_position("BTC")).size == 0
    with pytest.raises(ValueError):
        venue.client.inject_failure("apply_market_event", ExchangeUnavailable("x"))


# ---------------------------------------------------------------------------------------------
# Replaying the recorded feed
# ---------------------------------------------------------------------------------------------


def last_book_ticker(path: Path) -> tuple[Decimal, Decimal]:
    """Read independently of the reader: the last bookTicker line's bid and ask."""
    last: tuple[Decimal, Decimal] | None = None
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if "@bookTicker" in line[:80]:
                data = json.loads(line.split(" ", 1)[1])["data"]
                last = (Decimal(data["b"]), Decimal(data["a"]))
    assert last is not None
    return last


@pytest.mark.skipif(not RECORDED_FEED.is_file(), reason="the recorded feed is not available")
async def test_recorded_feed_replays_through_the_venue() -> None:
    events = iter(read_recorded_feed(RECORDED_FEED))
    first = next(events)
    clock = SimulatedClock(first.timestamp)
    client = PaperExchangeClient(make_config(min_notional="5"), clock)
    await client.connect()
    venue = Venue(client, clock)
    venue.apply(first)
    assert await client.fetch_bbo_prices("BTC") == (D("61800.20"), D("61800.30"))
    near = await venue.limit(BUY, "0.010", "61750.0")
    far_buy = await venue.limit(BUY, "0.010", "50000.0")
    far_sell = await venue.limit(SELL, "0.010", "70000.0")
    applied = 1
    for event in events:
        venue.apply(event)
        applied += 1
    assert applied == client.events_applied == 87_402
    assert await client.fetch_bbo_prices("BTC") == last_book_ticker(RECORDED_FEED)
    fills = venue.fills()
    assert {f.order_id for f in fills} == {near.order_id}
    assert sum(f.size for f in fills) == D("0.010")
    assert all(f.price == D("61750.0") and f.is_maker for f in fills)
    active = {order.order_id for order in await client.get_active_orders("BTC")}
    assert active == {far_buy.order_id, far_sell.order_id}


# ---------------------------------------------------------------------------------------------
# The pump
# ---------------------------------------------------------------------------------------------


def small_feed(path: Path) -> tuple[Path, list[MarketEvent]]:
    lines = []
    for step in range(40):
        ns = 1_723_161_255_000_000_000 + step * 50_000_000
        bid = Decimal("61800.0") + Decimal(step % 7) / 10
        ask = bid + Decimal("0.1")
        lines.append(
            f'{ns} {{"stream":"btcusdt@bookTicker","data":{{"b":"{bid}","B":"1.0","a":"{ask}","A":"2.0"}}}}'
        )
        if step % 3 == 0:
            lines.append(f'{ns + 1} {{"stream":"btcusdt@trade","data":{{"p":"{bid}","q":"0.01","m":true}}}}')
        if step % 5 == 0:
            lines.append(f'{ns + 2} {{"stream":"btcusdt@depth@0ms","data":{{"b":[],"a":[]}}}}')
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path, list(read_recorded_feed(path))


async def test_pump_replays_a_feed_as_fast_as_possible_with_a_live_clock(tmp_path: Path) -> None:
    path, expected = small_feed(tmp_path / "small.gz")
    config = make_config(drive_externally="false", feed_path=str(path), replay_speed="0")
    client = PaperExchangeClient(config, LiveClock())
    seen: list[MarketUpdate] = []
    client.subscribe_market_updates(seen.append)
    await client.connect()
    assert client.events_applied >= 1
    assert await client.fetch_bbo_prices("BTC") == (expected[0].best_bid, expected[0].best_ask)
    await asyncio.wait_for(client.feed_finished.wait(), timeout=30)
    assert client.events_applied == len(expected)
    assert client.feed_error is None
    last_quote = [event for event in expected if event.kind is MarketEventKind.BBO][-1]
    assert await client.fetch_bbo_prices("BTC") == (last_quote.best_bid, last_quote.best_ask)
    assert isinstance(client.feed_stats, FeedStats) and client.feed_stats.depth_lines == 8
    assert (seen[-1].best_bid, seen[-1].best_ask) == (last_quote.best_bid, last_quote.best_ask)
    await client.disconnect()
    await client.disconnect()


async def test_pump_survives_a_subscriber_that_raises(tmp_path: Path) -> None:
    path, expected = small_feed(tmp_path / "small.gz")
    config = make_config(drive_externally=False, feed_path=path, replay_speed=-1)
    client = PaperExchangeClient(config, LiveClock())
    await client.connect()

    def broken(update: MarketUpdate) -> None:
        raise RuntimeError("subscriber bug")

    client.subscribe_market_updates(broken)
    await asyncio.wait_for(client.feed_finished.wait(), timeout=30)
    assert client.events_applied == len(expected)
    await client.disconnect()


async def wait_until(condition: Callable[[], bool], turns: int = 200) -> None:
    """Let other tasks run (no wall-clock time involved) until ``condition`` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("speed", [1.0, 4.0])
async def test_pump_paces_synthetic_events_by_the_clock(speed: float) -> None:
    clock = SimulatedClock(T0)
    config = make_config(drive_externally=False, seed=5, step_seconds=0.2, replay_speed=speed)
    client = PaperExchangeClient(config, clock)
    await client.connect()
    expected = list(itertools.islice(SyntheticMarket(seed=5, step_seconds=0.2, start_time=T0), 200))
    first_quote = expected[0]
    assert await client.fetch_bbo_prices("BTC") == (first_quote.best_bid, first_quote.best_ask)

    def due(at_event_time: float) -> int:
        return sum(1 for event in expected if event.timestamp <= at_event_time + 1e-9)

    await wait_until(lambda: clock.next_deadline() is not None)
    assert client.events_applied == due(T0)
    for step in range(1, 6):
        clock.advance_to(T0 + step * 0.2 / speed)
        await wait_until(lambda: client.events_applied == due(T0 + step * 0.2))  # noqa: B023
        await wait_until(lambda: clock.next_deadline() is not None)
        assert client.events_applied == due(T0 + step * 0.2)
    await client.disconnect()
    applied = client.events_applied
    await client.connect()  # resumes the same market where it stopped
    assert client.events_applied == applied
    await client.disconnect()


async def test_connect_with_a_missing_feed_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = make_config(drive_externally=False, feed_path=str(tmp_path / "missing.gz"))
    client = PaperExchangeClient(config, LiveClock())
    with pytest.raises(ConfigurationError, match="feed_path"):
        await client.connect()


async def test_connect_to_a_feed_without_quotes_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "trades-only.txt"
    path.write_text('1000000000 {"stream":"btcusdt@trade","data":{"p":"100.0","q":"1","m":true}}\n')
    client = PaperExchangeClient(make_config(drive_externally=False, feed_path=str(path)), LiveClock())
    with pytest.raises(ConfigurationError, match="no best-bid/offer events"):
        await client.connect()


async def test_live_synthetic_market_is_quoted_as_soon_as_connect_returns() -> None:
    client = PaperExchangeClient(make_config(drive_externally=False), LiveClock())
    client.inject_failure("connect", ExchangeUnavailable("venue down"))
    with pytest.raises(ExchangeUnavailable):
        await client.connect()
    await client.connect()
    best_bid, best_ask = await client.fetch_bbo_prices("BTC")
    assert best_bid == D("60000.0") and best_ask == D("60000.1")  # seed 7 starts at the start price
    result = await client.place_limit_order(
        "BTC", BUY, D("0.001"), D("59000.0"), client.client_ids.next_id(0)
    )
    assert result.status is OrderStatus.OPEN
    await client.disconnect()
    assert client.feed_error is None


def test_a_lone_subscribers_quiet_band_skips_updates_and_notes_their_time() -> None:
    """QuietQuotes: updates strictly inside the band are not built or delivered, only timed;
    the quote still moves; a second subscriber turns skipping off."""
    clock = SimulatedClock(100.0)
    client = PaperExchangeClient(make_config(), clock)
    seen: list[MarketUpdate] = []
    quiet = QuietQuotes()
    client.subscribe_market_updates(seen.append, quiet=quiet)
    client.apply_bbo(D("60000.0"), D("60000.1"), D("1"), D("1"))
    assert len(seen) == 1 and quiet.skipped_at is None  # a closed band delivers everything
    quiet.open(D("59990"), D("60010"), D("59990"), D("60010"))
    clock.advance_to(101.0)
    client.apply_bbo(D("60000.1"), D("60000.2"), D("1"), D("1"))
    clock.advance_to(102.0)
    client.apply_trade(D("60000.2"), D("0.5"))
    assert len(seen) == 1 and quiet.skipped_at == 102.0
    assert asyncio.run(client.fetch_bbo_prices("BTC")) == (D("60000.1"), D("60000.2"))
    client.apply_bbo(D("60010"), D("60010.1"), D("1"), D("1"))  # reaches a bound: delivered
    assert len(seen) == 2 and seen[-1].best_bid == D("60010")
    quiet.close()
    client.apply_bbo(D("60000.1"), D("60000.2"), D("1"), D("1"))
    assert len(seen) == 3
    quiet.open(D("59990"), D("60010"), D("59990"), D("60010"))
    client.subscribe_market_updates(lambda update: None)
    client.apply_bbo(D("60000.2"), D("60000.3"), D("1"), D("1"))
    assert len(seen) == 4
