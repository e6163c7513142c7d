"""The connector contract every venue client must pass, run against each venue.

One suite, parametrised over venue harnesses: the paper venue (driven by hand-made market
events on a simulated clock), Lighter (the real client and the real SDK's signing, against
the loopback mock venue), Backpack (bpx-py's ED25519 signing, verified by its mock), Aster
(HMAC-SHA256, verified by its mock), edgeX (the SDK's HMAC headers and EIP-712 order
signatures, both verified by its mock), GRVT (grvt-pysdk's EIP-712 signing, verified by its
mock) and Paradex (paradex-py's Stark signatures, verified by its mock; runs in .venv-paradex,
skipped elsewhere). A new venue joins by adding a harness here.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from backtesting.market_feed import MarketEvent
from exchanges.base import (
    BaseExchangeClient,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    Fill,
    InvalidOrder,
    LimitOrderRequest,
    NetworkError,
    OrderBelowMinimum,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    PostOnlyRejected,
)
from helpers.clock import LiveClock, SimulatedClock
from helpers.trading_config import TradingConfig
from tests.paradex_support import require_paradex_sdk

BUY, SELL = OrderSide.BUY, OrderSide.SELL
UPDATE_TIMEOUT = 10.0


class VenueHarness(ABC):
    """A connected client plus the means to move its venue's market and break its venue."""

    client: BaseExchangeClient
    contract: ContractInfo
    ticker: str
    quantity: Decimal

    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self._arrived = asyncio.Event()

    def _record(self, update: OrderUpdate) -> None:
        self.updates.append(update)
        self._arrived.set()

    async def start(self) -> None:
        await self.client.connect()
        self.client.subscribe_order_updates(self._record)
        self.contract = await self.client.get_contract_info(self.ticker)

    async def wait_for_update(self, predicate: Callable[[OrderUpdate], bool]) -> OrderUpdate:
        """The first update (already seen or still to come) that satisfies ``predicate``."""
        seen = 0
        deadline = asyncio.get_running_loop().time() + UPDATE_TIMEOUT
        while True:
            for update in self.updates[seen:]:
                if predicate(update):
                    return update
            seen = len(self.updates)
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError("expected order update did not arrive")
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                continue

    def fills_of(self, client_order_id: str) -> list[Fill]:
        return [
            u.fill for u in self.updates if u.fill is not None and u.fill.client_order_id == client_order_id
        ]

    def new_client_id(self) -> str:
        return self.client.client_ids.next_id(self.client.clock.now())

    @abstractmethod
    async def trade_at(self, price: Decimal, size: Decimal | None = None) -> None:
        """Print market trades at ``price`` (for ``size``; unlimited when None)."""

    #: The client holds real sockets (a reconnect is observable); the paper venue has none.
    real_socket = True

    @abstractmethod
    async def break_connection(self) -> None:
        """Cut the client's live connection the way a network fault would."""

    async def outage(self, during: Callable[[], Awaitable[None]]) -> None:
        """Cut the connection and run ``during`` before the client can be back (where the venue
        can hold connections off; otherwise right after the cut)."""
        await self.break_connection()
        await during()

    @abstractmethod
    def fail_account_reads(self) -> None:
        """Make the venue fail account reads with a server error until the harness closes."""

    @abstractmethod
    def fail_order_reads(self) -> None:
        """Make the venue fail reads of orders with a server error until the harness closes."""

    @abstractmethod
    async def close(self) -> None: ...


class PaperHarness(VenueHarness):
    ticker = "BTC"
    quantity = Decimal("0.010")
    real_socket = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = SimulatedClock(1_700_000_000.0)
        config = TradingConfig(
            ticker="BTC",
            exchange="paper",
            strategy="grid",
            quantity=self.quantity,
            # trade_at() means "a print that reaches our order": the quote-touch fill rule, not
            # the queue model (tested in test_paper_queue.py), is what that describes.
            exchange_params={"drive_externally": True, "min_size": Decimal("0.005"), "fill_model": "touch"},
        )
        from exchanges.paper import PaperExchangeClient

        self.client = self.paper = PaperExchangeClient(config, self.clock)

    async def start(self) -> None:
        await super().start()
        self.paper.apply_market_event(
            MarketEvent.bbo(self.clock.now(), Decimal("59999.9"), Decimal("60000.0"), Decimal(1), Decimal(1))
        )

    async def trade_at(self, price: Decimal, size: Decimal | None = None) -> None:
        side = SELL
        self.paper.apply_market_event(
            MarketEvent.trade(self.clock.now(), price, size if size is not None else Decimal(1000), side)
        )

    async def break_connection(self) -> None:
        await self.client.disconnect()
        await self.client.connect()

    def fail_account_reads(self) -> None:
        for method in ("get_account_snapshot", "get_position"):
            self.paper.inject_failure(method, ExchangeUnavailable("paper venue: injected 503"), count=1000)

    def fail_order_reads(self) -> None:
        for method in ("find_order", "get_order_info", "get_active_orders"):
            self.paper.inject_failure(method, ExchangeUnavailable("paper venue: injected 503"), count=1000)

    async def close(self) -> None:
        await self.client.disconnect()


class LoopbackHarness(VenueHarness):
    """A venue client against one of the loopback mocks built on tests/mock_venues/base.py (they
    share the faults and the controls)."""

    ticker = "ETH"
    quantity = Decimal("0.0100")
    venue: Any

    def config(self, exchange: str) -> TradingConfig:
        return TradingConfig(
            ticker="ETH",
            exchange=exchange,
            strategy="grid",
            quantity=self.quantity,
            exchange_params={"order_ack_timeout": 3.0, "backoff_base": 0.05},
        )

    async def trade_at(self, price: Decimal, size: Decimal | None = None) -> None:
        await asyncio.to_thread(self.venue.trade_through, price, size)

    async def break_connection(self) -> None:
        await asyncio.to_thread(self.venue.drop_connections)

    async def outage(self, during: Callable[[], Awaitable[None]]) -> None:
        await asyncio.to_thread(self.venue.hold_connections, True)
        try:
            await during()
        finally:
            await asyncio.to_thread(self.venue.hold_connections, False)

    def fail_account_reads(self) -> None:
        self.venue.fail_next(n=1000, status=503)

    def fail_order_reads(self) -> None:
        self.venue.fail_next(n=1000, status=503)

    async def close(self) -> None:
        self.venue.clear_faults()
        try:
            await self.client.disconnect()
        finally:
            self.venue.stop()


class LighterHarness(LoopbackHarness):
    def __init__(self) -> None:
        super().__init__()
        from exchanges.lighter import LighterClient
        from tests.mock_venues.lighter_venue import MockLighterVenue

        self.venue = MockLighterVenue(start_price=Decimal("3000"), api_key_index=5).start()
        self.client = LighterClient(self.config("lighter"), LiveClock(), env=self.venue.env())


class BackpackHarness(LoopbackHarness):
    def __init__(self) -> None:
        super().__init__()
        from exchanges.backpack import BackpackClient
        from tests.mock_venues.backpack_venue import MockBackpackVenue

        self.venue = MockBackpackVenue(start_price=Decimal("3000")).start()
        self.client = BackpackClient(self.config("backpack"), LiveClock(), env=self.venue.env())


class AsterHarness(LoopbackHarness):
    def __init__(self) -> None:
        super().__init__()
        from exchanges.aster import AsterClient
        from tests.mock_venues.aster_venue import MockAsterVenue

        self.venue = MockAsterVenue(start_price=Decimal("3000")).start()
        self.client = AsterClient(self.config("aster"), LiveClock(), env=self.venue.env())


class EdgexHarness(LoopbackHarness):
    def __init__(self) -> None:
        super().__init__()
        from exchanges.edgex import EdgexClient
        from tests.mock_venues.edgex_venue import MockEdgexVenue

        # Captured edgeX contracts have minOrderSize == stepSize; apart here so the minimum is tested.
        self.venue = MockEdgexVenue(
            start_price=Decimal("3000"), step_size="0.001", min_quantity="0.005"
        ).start()
        self.client = EdgexClient(self.config("edgex"), LiveClock(), env=self.venue.env())


class ParadexHarness(LoopbackHarness):
    def __init__(self) -> None:
        super().__init__()
        require_paradex_sdk()
        from exchanges.paradex import ParadexClient
        from tests.mock_venues.paradex_venue import MockParadexVenue

        self.venue = MockParadexVenue(start_price=Decimal("3000")).start()
        self.client = ParadexClient(self.config("paradex"), LiveClock(), env=self.venue.env())


class GrvtHarness(LoopbackHarness):
    def __init__(self) -> None:
        super().__init__()
        from exchanges.grvt import GrvtClient
        from tests.mock_venues.grvt_venue import MockGrvtVenue

        self.venue = MockGrvtVenue(start_price=Decimal("3000")).start()
        self.client = GrvtClient(self.config("grvt"), LiveClock(), env=self.venue.env())


HARNESSES: dict[str, type[VenueHarness]] = {
    "aster": AsterHarness,
    "edgex": EdgexHarness,
    "grvt": GrvtHarness,
    "paper": PaperHarness,
    "lighter": LighterHarness,
    "backpack": BackpackHarness,
    "paradex": ParadexHarness,
}


@pytest.fixture(params=sorted(HARNESSES))
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[VenueHarness]:
    harness = HARNESSES[request.param]()
    try:
        await harness.start()
        yield harness
    finally:
        await harness.close()


async def rest_buy_below_market(venue: VenueHarness, ticks_below: int = 10) -> tuple[str, Any]:
    bid, _ask = await venue.client.fetch_bbo_prices(venue.contract.contract_id)
    price = bid - venue.contract.tick_size * ticks_below
    client_id = venue.new_client_id()
    result = await venue.client.place_limit_order(
        venue.contract.contract_id, BUY, venue.quantity, price, client_id
    )
    return client_id, result


def is_update_of(client_id: str, status: OrderStatus) -> Callable[[OrderUpdate], bool]:
    return lambda update: update.order.client_order_id == client_id and update.order.status is status


# -- metadata --------------------------------------------------------------------------------


async def test_contract_metadata_is_decimal_and_positive(venue: VenueHarness) -> None:
    info = venue.contract
    assert isinstance(info.tick_size, Decimal) and info.tick_size > 0
    assert isinstance(info.size_step, Decimal) and info.size_step > 0
    assert info.min_size >= 0 and info.min_notional >= 0
    bid, ask = await venue.client.fetch_bbo_prices(info.contract_id)
    assert isinstance(bid, Decimal) and 0 < bid < ask
    assert bid % info.tick_size == 0 and ask % info.tick_size == 0


# -- lifecycle -------------------------------------------------------------------------------


async def test_place_rest_and_cancel(venue: VenueHarness) -> None:
    client_id, result = await rest_buy_below_market(venue)
    assert result.success and result.client_order_id == client_id
    assert result.status in (OrderStatus.OPEN, OrderStatus.PENDING)
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))

    active = await venue.client.get_active_orders(venue.contract.contract_id)
    assert [order.client_order_id for order in active] == [client_id]
    info = await venue.client.get_order_info(venue.contract.contract_id, active[0].order_id)
    assert info.status is OrderStatus.OPEN and info.size == venue.quantity and info.filled_size == 0

    cancelled = await venue.client.cancel_order(venue.contract.contract_id, active[0].order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.CANCELLED))
    assert await venue.client.get_active_orders(venue.contract.contract_id) == []
    with pytest.raises(OrderNotFound):
        await venue.client.cancel_order(venue.contract.contract_id, active[0].order_id)
    final = await venue.client.get_order_info(venue.contract.contract_id, active[0].order_id)
    assert final.status is OrderStatus.CANCELLED


async def test_batches_place_and_cancel_with_one_outcome_per_order(venue: VenueHarness) -> None:
    """place_limit_orders / cancel_orders: every order is judged on its own, in the order given
    (an off-tick order is refused without touching the two valid ones)."""
    contract = venue.contract.contract_id
    bid, _ask = await venue.client.fetch_bbo_prices(contract)
    tick = venue.contract.tick_size
    ids = [venue.new_client_id() for _ in range(3)]
    prices = [bid - tick * 10, bid - tick * 10 + tick / 2, bid - tick * 12]
    requests = [
        LimitOrderRequest(contract, BUY, venue.quantity, p, c) for p, c in zip(prices, ids, strict=True)
    ]
    placed = await venue.client.place_limit_orders(requests)
    assert [o.key for o in placed] == ids
    assert placed[0].ok and placed[2].ok and isinstance(placed[1].error, InvalidOrder)
    for outcome in (placed[0], placed[2]):
        assert outcome.result is not None and outcome.result.client_order_id == outcome.key
        await venue.wait_for_update(is_update_of(outcome.key, OrderStatus.OPEN))
    active = {o.client_order_id: o.order_id for o in await venue.client.get_active_orders(contract)}
    assert set(active) == {ids[0], ids[2]}

    order_ids = [active[ids[0]], active[ids[2]]]
    cancelled = await venue.client.cancel_orders(contract, order_ids)
    assert [o.key for o in cancelled] == order_ids and all(o.ok for o in cancelled)
    for client_id in (ids[0], ids[2]):
        await venue.wait_for_update(is_update_of(client_id, OrderStatus.CANCELLED))
    assert await venue.client.get_active_orders(contract) == []
    again = await venue.client.cancel_orders(contract, order_ids[:1])
    assert isinstance(again[0].error, OrderNotFound)


async def test_fill_arrives_as_an_event_with_price_and_size(venue: VenueHarness) -> None:
    client_id, _ = await rest_buy_below_market(venue)
    open_update = await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))
    price = open_update.order.price
    await venue.trade_at(price - venue.contract.tick_size * 5)

    filled = await venue.wait_for_update(is_update_of(client_id, OrderStatus.FILLED))
    assert filled.order.filled_size == venue.quantity and filled.order.remaining_size == 0
    fills = venue.fills_of(client_id)
    assert sum(fill.size for fill in fills) == venue.quantity
    assert all(fill.price == price and fill.side is BUY and fill.is_maker for fill in fills)
    info = await venue.client.get_order_info(venue.contract.contract_id, filled.order.order_id)
    assert info.status is OrderStatus.FILLED
    position = await venue.client.get_position(venue.contract.contract_id)
    assert position.size == venue.quantity and position.entry_price == price


async def test_partial_fill_then_the_rest(venue: VenueHarness) -> None:
    client_id, _ = await rest_buy_below_market(venue)
    price = (await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))).order.price
    half = venue.quantity / 2

    await venue.trade_at(price, half)
    partial = await venue.wait_for_update(is_update_of(client_id, OrderStatus.PARTIALLY_FILLED))
    assert partial.order.filled_size == half and partial.fill is not None and partial.fill.size == half
    assert [o.client_order_id for o in await venue.client.get_active_orders(venue.contract.contract_id)] == [
        client_id
    ]

    await venue.trade_at(price - venue.contract.tick_size)
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.FILLED))
    assert sum(fill.size for fill in venue.fills_of(client_id)) == venue.quantity


# -- refusals ------------------------------------------------------------------------------


async def test_post_only_that_would_cross_is_rejected(venue: VenueHarness) -> None:
    _bid, ask = await venue.client.fetch_bbo_prices(venue.contract.contract_id)
    client_id = venue.new_client_id()
    with pytest.raises(PostOnlyRejected):
        await venue.client.place_limit_order(
            venue.contract.contract_id, BUY, venue.quantity, ask + venue.contract.tick_size, client_id
        )
    assert await venue.client.get_active_orders(venue.contract.contract_id) == []
    assert venue.fills_of(client_id) == []


async def test_off_tick_price_and_off_step_size_are_refused(venue: VenueHarness) -> None:
    bid, _ask = await venue.client.fetch_bbo_prices(venue.contract.contract_id)
    tick, step = venue.contract.tick_size, venue.contract.size_step
    with pytest.raises(InvalidOrder):
        await venue.client.place_limit_order(
            venue.contract.contract_id, BUY, venue.quantity, bid - tick * 10 + tick / 2, venue.new_client_id()
        )
    with pytest.raises(InvalidOrder):
        await venue.client.place_limit_order(
            venue.contract.contract_id, BUY, venue.quantity + step / 2, bid - tick * 10, venue.new_client_id()
        )
    assert await venue.client.get_active_orders(venue.contract.contract_id) == []


async def test_below_minimum_size_is_refused(venue: VenueHarness) -> None:
    bid, _ask = await venue.client.fetch_bbo_prices(venue.contract.contract_id)
    step, minimum = venue.contract.size_step, venue.contract.min_size
    # One step below the minimum; where the step is the minimum (GRVT), half of it.
    too_small = minimum - step if minimum > step else minimum / 2
    assert too_small > 0
    with pytest.raises(OrderBelowMinimum):
        await venue.client.place_limit_order(
            venue.contract.contract_id,
            BUY,
            too_small,
            bid - venue.contract.tick_size * 10,
            venue.new_client_id(),
        )


# -- faults --------------------------------------------------------------------------------


async def test_a_fill_during_an_outage_arrives_after_the_reconnect(venue: VenueHarness) -> None:
    reconnects: list[int] = []
    venue.client.subscribe_reconnects(lambda: reconnects.append(1))
    client_id, _ = await rest_buy_below_market(venue)
    price = (await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))).order.price

    async def trade_while_away() -> None:
        await venue.trade_at(price - venue.contract.tick_size)

    # On the loopback venues the stream is down while the order fills, so its fill message is
    # lost: the fill can only come from reading the order back after the reconnect.
    await venue.outage(trade_while_away)
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.FILLED))
    assert sum(fill.size for fill in venue.fills_of(client_id)) == venue.quantity
    if venue.real_socket:
        assert reconnects, "the client never reported that its stream came back"
    bid, ask = await venue.client.fetch_bbo_prices(venue.contract.contract_id)
    assert 0 < bid < ask


async def test_failed_account_reads_raise_instead_of_returning_empty_state(venue: VenueHarness) -> None:
    venue.fail_account_reads()
    with pytest.raises(ExchangeError):
        await venue.client.get_account_snapshot()
    with pytest.raises(ExchangeError):
        await venue.client.get_position(venue.contract.contract_id)


# -- reduce-only, market orders, the sell side ----------------------------------------------


async def test_reduce_only_order_that_would_open_a_position_is_refused(venue: VenueHarness) -> None:
    contract, tick = venue.contract.contract_id, venue.contract.tick_size
    _bid, ask = await venue.client.fetch_bbo_prices(contract)
    with pytest.raises(InvalidOrder):
        await venue.client.place_limit_order(
            contract, SELL, venue.quantity, ask + tick * 30, venue.new_client_id(), reduce_only=True
        )
    assert await venue.client.get_active_orders(contract) == []
    assert (await venue.client.get_position(contract)).size == 0


async def test_market_orders_fill_within_their_slippage_bound_and_reduce_only_closes(
    venue: VenueHarness,
) -> None:
    contract, slippage = venue.contract.contract_id, Decimal("1")
    _bid, ask = await venue.client.fetch_bbo_prices(contract)
    bought = venue.new_client_id()
    await venue.client.place_market_order(contract, BUY, venue.quantity, bought, slippage)
    await venue.wait_for_update(is_update_of(bought, OrderStatus.FILLED))
    fills = venue.fills_of(bought)
    assert sum(fill.size for fill in fills) == venue.quantity
    assert all(
        f.side is BUY and not f.is_maker and ask <= f.price <= ask * (1 + slippage / 100) for f in fills
    )
    assert (await venue.client.get_position(contract)).size == venue.quantity

    bid, _ask = await venue.client.fetch_bbo_prices(contract)
    sold = venue.new_client_id()
    await venue.client.place_market_order(contract, SELL, venue.quantity, sold, slippage, reduce_only=True)
    await venue.wait_for_update(is_update_of(sold, OrderStatus.FILLED))
    fills = venue.fills_of(sold)
    assert sum(fill.size for fill in fills) == venue.quantity
    assert all(
        f.side is SELL and not f.is_maker and bid * (1 - slippage / 100) <= f.price <= bid for f in fills
    )
    assert (await venue.client.get_position(contract)).size == 0


async def test_sell_side_rests_fills_and_opens_a_short(venue: VenueHarness) -> None:
    contract, tick = venue.contract.contract_id, venue.contract.tick_size
    _bid, ask = await venue.client.fetch_bbo_prices(contract)
    price = ask + tick * 10
    client_id = venue.new_client_id()
    result = await venue.client.place_limit_order(contract, SELL, venue.quantity, price, client_id)
    assert result.success and result.side is SELL
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))
    await venue.trade_at(price + tick * 5)
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.FILLED))
    fills = venue.fills_of(client_id)
    assert sum(fill.size for fill in fills) == venue.quantity
    assert all(f.side is SELL and f.price == price and f.is_maker for f in fills)
    position = await venue.client.get_position(contract)
    assert position.size == -venue.quantity and position.entry_price == price


async def test_post_only_sell_that_would_cross_is_rejected(venue: VenueHarness) -> None:
    bid, _ask = await venue.client.fetch_bbo_prices(venue.contract.contract_id)
    client_id = venue.new_client_id()
    with pytest.raises(PostOnlyRejected):
        await venue.client.place_limit_order(
            venue.contract.contract_id, SELL, venue.quantity, bid - venue.contract.tick_size, client_id
        )
    assert venue.fills_of(client_id) == []


# -- finding our orders by client id -------------------------------------------------------


async def test_find_order_finds_active_cancelled_and_filled_orders(venue: VenueHarness) -> None:
    contract, tick = venue.contract.contract_id, venue.contract.tick_size
    resting_id, _ = await rest_buy_below_market(venue, ticks_below=30)
    await venue.wait_for_update(is_update_of(resting_id, OrderStatus.OPEN))
    found = await venue.client.find_order(contract, resting_id)
    assert (found.client_order_id, found.status, found.side) == (resting_id, OrderStatus.OPEN, BUY)
    assert found.size == venue.quantity and found.filled_size == 0 and found.order_id

    await venue.client.cancel_order(contract, found.order_id)
    cancelled = await venue.client.find_order(contract, resting_id)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.order_id == found.order_id

    filled_id, _ = await rest_buy_below_market(venue)
    price = (await venue.wait_for_update(is_update_of(filled_id, OrderStatus.OPEN))).order.price
    await venue.trade_at(price - tick)
    await venue.wait_for_update(is_update_of(filled_id, OrderStatus.FILLED))
    filled = await venue.client.find_order(contract, filled_id)
    assert filled.status is OrderStatus.FILLED and filled.filled_size == venue.quantity
    assert filled.average_fill_price == price


async def test_find_order_reports_the_filled_part_of_a_cancelled_order(venue: VenueHarness) -> None:
    contract = venue.contract.contract_id
    client_id, _ = await rest_buy_below_market(venue)
    open_update = await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))
    half = venue.quantity / 2
    await venue.trade_at(open_update.order.price, half)
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.PARTIALLY_FILLED))
    await venue.client.cancel_order(contract, open_update.order.order_id)
    found = await venue.client.find_order(contract, client_id)
    assert found.status is OrderStatus.CANCELLED and found.filled_size == half


async def test_find_order_finds_a_reduce_only_sell(venue: VenueHarness) -> None:
    contract, tick = venue.contract.contract_id, venue.contract.tick_size
    bought, _ = await rest_buy_below_market(venue)
    price = (await venue.wait_for_update(is_update_of(bought, OrderStatus.OPEN))).order.price
    await venue.trade_at(price - tick)
    await venue.wait_for_update(is_update_of(bought, OrderStatus.FILLED))
    _bid, ask = await venue.client.fetch_bbo_prices(contract)
    client_id = venue.new_client_id()
    await venue.client.place_limit_order(
        contract, SELL, venue.quantity, ask + tick * 30, client_id, reduce_only=True
    )
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))
    found = await venue.client.find_order(contract, client_id)
    assert (found.side, found.status, found.size) == (SELL, OrderStatus.OPEN, venue.quantity)
    await venue.client.cancel_order(contract, found.order_id)
    assert (await venue.client.find_order(contract, client_id)).status is OrderStatus.CANCELLED


async def test_find_order_of_a_never_placed_id_raises_order_not_found(venue: VenueHarness) -> None:
    await rest_buy_below_market(venue)
    with pytest.raises(OrderNotFound):
        await venue.client.find_order(venue.contract.contract_id, venue.new_client_id())


async def test_find_order_with_failing_venue_reads_raises_a_network_error(venue: VenueHarness) -> None:
    client_id, _ = await rest_buy_below_market(venue)
    await venue.wait_for_update(is_update_of(client_id, OrderStatus.OPEN))
    venue.fail_order_reads()
    for wanted in (client_id, venue.new_client_id()):
        with pytest.raises(NetworkError):
            await venue.client.find_order(venue.contract.contract_id, wanted)
