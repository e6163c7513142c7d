"""The paper venue's ``queue`` fill model and its latencies, on hand-built tapes.

Each tape is a few BBO and trade events whose outcome is worked out in the comment above it
(see exchanges/paper_queue.py for the rules). Book: bid 100.0 / ask 100.1 unless said.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting.market_feed import MarketEvent, MarketEventKind, read_recorded_feed
from exchanges.base import OrderNotFound, OrderSide, OrderStatus, OrderUpdate
from exchanges.paper import PaperExchangeClient
from exchanges.paper_queue import PriceLevel
from helpers.clock import SimulatedClock
from helpers.trading_config import TradingConfig
from tests.shared_paths import RECORDED_FEED

BUY, SELL = OrderSide.BUY, OrderSide.SELL
T0 = 1_700_010_000.0


def D(text: str) -> Decimal:
    return Decimal(text)


class Tape:
    """A paper venue on a simulated clock; ``at`` moves time and applies events."""

    def __init__(self, **params: Any) -> None:
        config = TradingConfig(
            ticker="BTC",
            exchange="paper",
            strategy="grid",
            quantity=D("1"),
            exchange_params={
                "drive_externally": True,
                "fill_model": "queue",
                "min_notional": "0",
                "funding_rate": "0",
                **params,
            },
        )
        self.clock = SimulatedClock(T0)
        self.venue = PaperExchangeClient(config, self.clock)
        self.updates: list[OrderUpdate] = []
        self.venue.subscribe_order_updates(self.updates.append)
        self.sequence = 0

    def bbo(self, bid: str, bid_size: str, ask: str = "100.1", ask_size: str = "5", dt: float = 0.0) -> None:
        self.clock.advance_to(self.clock.now() + dt)
        self.venue.apply_bbo(D(bid), D(ask), D(bid_size), D(ask_size))

    def trade(self, price: str, size: str, aggressor: OrderSide = SELL, dt: float = 0.0) -> None:
        self.clock.advance_to(self.clock.now() + dt)
        self.venue.apply_trade(D(price), D(size), aggressor)

    async def limit(self, side: OrderSide, size: str, price: str, post_only: bool = True) -> str:
        self.sequence += 1
        result = await self.venue.place_limit_order(
            "BTC", side, D(size), D(price), f"t-{self.sequence}", post_only
        )
        return result.order_id

    def filled(self) -> list[Decimal]:
        return [update.fill.size for update in self.updates if update.fill is not None]


async def joined_at_bid(bid_size: str, order_size: str = "1", **params: Any) -> Tape:
    tape = Tape(**params)
    tape.bbo("100.0", bid_size)
    await tape.limit(BUY, order_size, "100.0")
    return tape


async def test_i_trades_use_up_the_queue_then_fill() -> None:
    # 5 displayed ahead: sells of 3 and 2 only clear the queue; the next 1 fills us.
    tape = await joined_at_bid("5")
    tape.trade("100.0", "3")
    tape.trade("100.0", "2")
    assert tape.filled() == []
    tape.trade("100.0", "1")
    assert tape.filled() == [D("1")]
    assert all(update.fill.is_maker for update in tape.updates if update.fill is not None)


async def test_ii_cancellations_come_off_the_queue_pro_rata() -> None:
    # Q=5; the level grows to 10 (behind us), then drops to 6 with no trades: 4 cancelled, half
    # of them (5 of 10) ahead of us, so Q = 5 - 4 * 5/10 = 3. A sell of 3 clears it, 1 fills.
    tape = await joined_at_bid("5")
    tape.bbo("100.0", "10")
    tape.bbo("100.0", "6")
    tape.trade("100.0", "3")
    assert tape.filled() == []
    tape.trade("100.0", "1")
    assert tape.filled() == [D("1")]


async def test_trades_are_not_counted_twice_when_the_quote_shows_them() -> None:
    # Q=5; a sell of 2 leaves 3 ahead; the next quote shows 3 (the same trade): no cancellation.
    # Counting it again would leave 1.8 ahead and let the sell of 3 fill 1.2.
    tape = await joined_at_bid("5", order_size="2")
    tape.trade("100.0", "2")
    tape.bbo("100.0", "3")
    tape.trade("100.0", "3")
    assert tape.filled() == []
    tape.trade("100.0", "0.5")
    assert tape.filled() == [D("0.5")]


async def test_iii_a_trade_through_the_price_fills_completely_whatever_the_queue() -> None:
    tape = await joined_at_bid("100", order_size="2")
    tape.trade("99.9", "0.001")
    assert tape.filled() == [D("2")]


async def test_iv_an_emptied_level_fills_by_traded_size() -> None:
    # The bid drops below us (our level empty of others): a sell of 1 at our price fills 1 of 2.
    tape = await joined_at_bid("5", order_size="2")
    tape.bbo("99.9", "4")
    assert tape.filled() == []
    tape.trade("100.0", "1")
    assert tape.filled() == [D("1")]


async def test_a_quote_at_our_price_alone_never_fills() -> None:
    # The touch rule would fill all of it here; the queue model waits for a print.
    tape = await joined_at_bid("5")
    tape.bbo("99.9", "4", ask="100.0", ask_size="3")
    assert tape.filled() == []
    tape.trade("100.0", "0.4", aggressor=BUY)  # crossed through us: any print at the price
    assert tape.filled() == [D("0.4")]


async def test_buyer_initiated_prints_do_not_move_a_buy_queue() -> None:
    tape = await joined_at_bid("1")
    tape.trade("100.0", "5", aggressor=BUY)
    assert tape.filled() == []


async def test_joining_behind_the_touch_waits_to_see_the_level() -> None:
    # Our buy at 99.9 under a 100.0 bid: the size at 99.9 is unseen, so prints there fill nothing
    # until the level shows at the touch (2 displayed, all of it counted ahead).
    tape = Tape()
    tape.bbo("100.0", "5")
    await tape.limit(BUY, "1", "99.9")
    tape.trade("99.9", "1")
    assert tape.filled() == []
    tape.bbo("99.9", "2")
    tape.trade("99.9", "2")
    assert tape.filled() == []
    tape.trade("99.9", "1")
    assert tape.filled() == [D("1")]


async def test_two_orders_share_the_volume_in_time_priority() -> None:
    tape = await joined_at_bid("1", order_size="2")
    await tape.limit(BUY, "2", "100.0")  # joins behind: Q = 1 (the display) too
    tape.trade("100.0", "3")  # 2 beyond the queue: all to the first order
    assert tape.filled() == [D("2")]


async def test_entry_latency_takes_the_queue_as_it_is_on_arrival() -> None:
    # Sent with 5 displayed; 8 are displayed when it arrives 20 ms later: 8 are ahead.
    tape = Tape(entry_latency_ms="20")
    tape.bbo("100.0", "5")
    await tape.limit(BUY, "1", "100.0")
    tape.bbo("100.0", "8", dt=0.010)
    tape.bbo("100.0", "8", dt=0.015)  # the order arrives before this event is applied
    tape.trade("100.0", "6")
    assert tape.filled() == []
    tape.trade("100.0", "3")
    assert tape.filled() == [D("1")]


async def test_v_post_only_crossed_by_arrival_is_rejected() -> None:
    tape = Tape(entry_latency_ms="20")
    tape.bbo("100.0", "5")
    order_id = await tape.limit(BUY, "1", "100.0")
    assert (await tape.venue.get_order_info("BTC", order_id)).status is OrderStatus.PENDING
    tape.bbo("99.9", "5", ask="100.0", dt=0.010)  # the book moves through our price meanwhile
    tape.bbo("99.9", "5", ask="100.0", dt=0.020)
    assert [update.order.status for update in tape.updates] == [OrderStatus.REJECTED]
    assert tape.filled() == []


async def test_market_data_latency_delays_the_arrival_too() -> None:
    # 10 ms entry + 15 ms market data: the order is not there at +20 ms, it is at +30 ms.
    tape = Tape(entry_latency_ms="10", market_data_latency_ms="15")
    tape.bbo("100.0", "5")
    order_id = await tape.limit(BUY, "1", "100.0")
    tape.bbo("100.0", "5", dt=0.020)
    tape.bbo("100.0", "5", dt=0.001)
    assert (await tape.venue.get_order_info("BTC", order_id)).status is OrderStatus.PENDING
    tape.bbo("100.0", "5", dt=0.009)
    assert (await tape.venue.get_order_info("BTC", order_id)).status is OrderStatus.OPEN


async def test_vi_a_fill_during_an_in_flight_cancel_stands() -> None:
    tape = await joined_at_bid("5", order_size="1", cancel_latency_ms="20")
    order_id = tape.updates[-1].order.order_id
    result = await tape.venue.cancel_order("BTC", order_id)
    assert result.status is OrderStatus.OPEN  # only sent
    tape.trade("99.9", "1", dt=0.010)  # fills before the cancel arrives
    tape.bbo("99.9", "5", dt=0.020)  # the cancel arrives: finds nothing
    statuses = [update.order.status for update in tape.updates]
    assert statuses == [OrderStatus.OPEN, OrderStatus.FILLED]
    assert tape.filled() == [D("1")]


async def test_a_cancel_that_arrives_in_time_cancels() -> None:
    tape = await joined_at_bid("5", order_size="1", cancel_latency_ms="20")
    order_id = tape.updates[-1].order.order_id
    await tape.venue.cancel_order("BTC", order_id)
    tape.bbo("100.0", "5", dt=0.030)
    tape.trade("99.9", "1")
    assert [update.order.status for update in tape.updates] == [OrderStatus.OPEN, OrderStatus.CANCELLED]
    assert tape.filled() == []


@pytest.mark.skipif(not RECORDED_FEED.is_file(), reason="recorded feed not available")
async def test_every_maker_fill_on_the_recording_follows_a_print_at_or_through_its_price() -> None:
    """Quotes both sides of the real BTCUSDT feed every 500 events (a tick away from the touch)
    and checks each maker fill against the event that was being applied when it happened."""
    tape = Tape(entry_latency_ms="20", cancel_latency_ms="20", size_step="0.001", tick_size="0.1")
    venue = tape.venue
    current: list[MarketEvent] = []
    checked: list[tuple[OrderSide, Decimal, MarketEvent]] = []

    def on_update(update: OrderUpdate) -> None:
        if update.fill is not None and update.fill.is_maker:
            checked.append((update.fill.side, update.fill.price, current[-1]))

    venue.subscribe_order_updates(on_update)
    tick = D("0.1")
    for index, event in enumerate(read_recorded_feed(RECORDED_FEED)):
        if index >= 40_000:
            break
        tape.clock.advance_to(event.timestamp)
        current.append(event)
        venue.apply_market_event(event)
        if index % 500 == 499 and venue._best_bid is not None:
            for info in await venue.get_active_orders("BTC"):
                await venue.cancel_order("BTC", info.order_id)
            await tape.limit(BUY, "0.002", str(venue._best_bid - tick))
            await tape.limit(SELL, "0.002", str(venue._best_ask + tick))
    assert len(checked) > 10
    for side, price, event in checked:
        assert event.kind is MarketEventKind.TRADE
        assert event.price is not None
        assert event.price <= price if side is BUY else event.price >= price


async def test_the_venue_forgets_long_finished_orders_so_memory_stays_flat(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import exchanges.paper as paper

    monkeypatch.setattr(paper, "FINISHED_ORDERS_KEPT", 10)
    tape = Tape()
    tape.bbo("100.0", "5")
    ids = []
    for _ in range(30):
        order_id = await tape.limit(BUY, "1", "99.0")
        await tape.venue.cancel_order("BTC", order_id)
        ids.append(order_id)
    assert len(tape.venue._orders) == 10 and len(tape.venue._client_ids) == 10
    assert (await tape.venue.get_order_info("BTC", ids[-1])).status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotFound, match="long finished"):
        await tape.venue.get_order_info("BTC", ids[0])


async def test_market_events_carry_their_aggressor_into_the_queue() -> None:
    # The live pump applies whole MarketEvents: a buyer-initiated print must not fill our buy.
    tape = await joined_at_bid("1")
    tape.venue.apply_market_event(MarketEvent.trade(T0, D("100.0"), D("5"), BUY))
    assert tape.filled() == []
    tape.venue.apply_market_event(MarketEvent.trade(T0, D("100.0"), D("5"), SELL))
    assert tape.filled() == [D("1")]


@pytest.mark.skipif(not RECORDED_FEED.is_file(), reason="recorded feed not available")
async def test_the_live_paper_venue_refuses_a_recording_of_another_market() -> None:
    from exchanges.base import ConfigurationError

    for ticker, refused in (("ETH", True), ("BTC", False)):
        config = TradingConfig(
            ticker=ticker,
            exchange="paper",
            strategy="grid",
            quantity=D("1"),
            exchange_params={"feed_path": str(RECORDED_FEED), "replay_speed": 0},
        )
        venue = PaperExchangeClient(config, SimulatedClock(T0))
        if refused:
            with pytest.raises(ConfigurationError, match=r"ticker ETH does not match .* BTCUSDT"):
                await venue.connect()
        else:
            await venue.connect()
            await venue.disconnect()


def test_a_trade_counts_once_against_the_quotes_after_it() -> None:
    """The volume traded since the last quote explains that quote's drop only: the quote after
    it reads a drop as cancellations again. Ahead 10 of 10; a 6 sell prints: ahead 4. The level
    shows 10 again (others joined behind: no cancel), then 5: 5 of 10 cancelled pro rata, ahead
    4 - 5 * 4 / 10 = 2. One quote at a time and as a run of quotes (a backtest's same-quote run)
    alike."""

    class Order:
        queue_ahead: Decimal | None = None
        price = D("100.0")
        remaining = D("1")

    for as_run in (False, True):
        level, order = PriceLevel(), Order()
        level.join(order, D("10"), at_touch=True)
        assert level.trade(D("6"), D("0.001")) == []
        assert order.queue_ahead == D("4")
        if as_run:
            level.observe_run([D("10"), D("5")])
        else:
            level.observe(D("10"))
            level.observe(D("5"))
        assert order.queue_ahead == D("2")
        assert level.seen == D("5") and level.traded == 0


#: A few size objects, drawn again and again: a recorded feed's quotes repeat the very Decimal
#: of its value table, which a run of quotes may skip by identity.
SIZE_POOL = [D(text) for text in ("0", "0.5", "2", "3.5", "10")]


@settings(max_examples=300, deadline=None)
@given(
    aheads=st.lists(st.one_of(st.none(), st.sampled_from(SIZE_POOL)), min_size=1, max_size=3),
    seen=st.one_of(st.none(), st.sampled_from(SIZE_POOL)),
    traded=st.sampled_from(SIZE_POOL),
    crossed=st.booleans(),
    sizes=st.lists(st.sampled_from(SIZE_POOL), max_size=10),
)
def test_a_run_of_quotes_leaves_the_level_as_its_quotes_one_by_one(
    aheads: list[Decimal | None], seen: Decimal | None, traded: Decimal, crossed: bool, sizes: list[Decimal]
) -> None:
    class Order:
        price = D("100.0")
        remaining = D("1")

        def __init__(self, ahead: Decimal | None) -> None:
            self.queue_ahead = ahead

    def level_state(level: PriceLevel) -> tuple[Any, ...]:
        return (level.seen, level.traded, level.crossed, [order.queue_ahead for order in level.orders])

    levels = []
    for _ in range(2):
        level = PriceLevel()
        level.orders = [Order(ahead) for ahead in aheads]
        level.seen, level.traded, level.crossed = seen, traded, crossed
        levels.append(level)
    one_by_one, as_run = levels
    for size in sizes:
        one_by_one.observe(size)
    as_run.observe_run(iter(sizes))
    assert level_state(as_run) == level_state(one_by_one)
