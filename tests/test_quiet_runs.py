"""A quiet run handed to the venue at once, or in pieces cut where samples fall due, leaves the
venue exactly as applying its events one by one does (book, last trade, the subscriber's
skipped-update time, events counted)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from backtesting.engine import _QuietRuns
from backtesting.feed_cache import BBO, SOLD, feed_ranks, load_feed
from exchanges.base import OrderSide, QuietQuotes
from exchanges.paper import PaperExchangeClient
from helpers.clock import SimulatedClock
from helpers.trading_config import TradingConfig
from tests.shared_paths import RECORDED_FEED

EVENTS = 4000


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_feed(RECORDED_FEED, tmp_path_factory.mktemp("cache"))


def _venue(feed: Any) -> tuple[PaperExchangeClient, QuietQuotes, SimulatedClock]:
    """A venue whose lone subscriber discards every quote (so every event of the feed is quiet),
    its book set by the feed's first quote."""
    clock = SimulatedClock(0.0)
    config = TradingConfig(
        ticker="BTC", exchange="paper", strategy="grid", quantity=D("0.002"), exchange_params={}
    )
    venue = PaperExchangeClient(config, clock)
    quiet = QuietQuotes()
    quiet.open(D(0), D(10) ** 9, D(0), D(10) ** 9)
    venue.subscribe_market_updates(lambda update: None, quiet=quiet)
    first = next(feed.events(0, 1))
    clock.advance_to(first.timestamp)
    venue.apply_market_event(first)
    return venue, quiet, clock


def _state(venue: PaperExchangeClient, quiet: QuietQuotes) -> tuple[Any, ...]:
    return (
        venue._best_bid,
        venue._best_ask,
        venue._bid_size,
        venue._ask_size,
        venue._last_trade_price,
        quiet.skipped_at,
        venue.events_applied,
    )


def _one_by_one(feed: Any, columns: Any, begin: int, end: int) -> tuple[Any, ...]:
    venue, quiet, clock = _venue(feed)
    times, kinds, first, second, third, fourth = columns
    values = feed.values
    for index in range(1, end):
        if index == begin:
            quiet.skipped_at = None  # what the run itself notes, not what came before it
        clock.advance_to(times[index])
        if kinds[index] == BBO:
            venue.apply_bbo(
                values[first[index]], values[second[index]], values[third[index]], values[fourth[index]]
            )
        else:
            side = OrderSide.SELL if kinds[index] == SOLD else OrderSide.BUY
            venue.apply_trade(values[first[index]], values[second[index]], side)
    return _state(venue, quiet)


def _as_run(feed: Any, columns: Any, begin: int, end: int, cuts: list[int]) -> tuple[Any, ...]:
    venue, quiet, clock = _venue(feed)
    times, kinds, first, second, third, fourth = columns
    values = feed.values
    for index in range(1, begin):
        clock.advance_to(times[index])
        if kinds[index] == BBO:
            venue.apply_bbo(
                values[first[index]], values[second[index]], values[third[index]], values[fourth[index]]
            )
        else:
            venue.apply_trade(values[first[index]], values[second[index]], OrderSide.BUY)
    quiet.skipped_at = None
    runs = _QuietRuns(values, feed_ranks(feed))
    runs.load(columns)
    opening = (venue._best_bid, venue._best_ask)
    piece = begin
    for cut in cuts:
        runs.apply(venue, piece, cut, None)
        piece = cut
    runs.apply(venue, piece, end, begin, opening)
    return _state(venue, quiet)


@pytest.mark.parametrize(
    ("begin", "end", "cuts"),
    [
        (10, 500, []),
        (10, 500, [11, 250, 499]),
        (100, 3999, [101, 102, 103, 2000]),
        (37, 41, [38, 39, 40]),
        (1, EVENTS, list(range(50, EVENTS, 50))),
    ],
)
def test_a_run_in_pieces_leaves_what_its_events_one_by_one_leave(
    feed: Any, begin: int, end: int, cuts: list[int]
) -> None:
    columns = next(feed.chunks(0, EVENTS))
    expected = _one_by_one(feed, columns, begin, end)
    if end - begin > 100:  # long runs note a skipped update: there is something to compare
        assert expected[5] is not None
    assert _as_run(feed, columns, begin, end, cuts) == expected
    # And every piece boundary alone (the last piece may hold no trade and no changed quote).
    for cut in cuts:
        assert _as_run(feed, columns, begin, end, [cut]) == expected


async def test_an_equity_sample_reads_what_the_awaited_calls_report() -> None:
    """The backtest's samples read the venue at once (equity_sample); they must equal what
    fetch_bbo_prices and get_account_snapshot report, flat and with a position, and defer to
    those calls while failures are injected."""
    from exchanges.base import ExchangeUnavailable

    clock = SimulatedClock(100.0)
    config = TradingConfig(ticker="BTC", exchange="paper", strategy="grid", quantity=D("0.002"))
    venue = PaperExchangeClient(config, clock)
    venue.apply_bbo(D("60000.1"), D("60000.3"), D("1.5"), D("2"))

    async def awaited() -> tuple[Any, ...]:
        bid, ask = await venue.fetch_bbo_prices(venue.contract_id)
        account = await venue.get_account_snapshot()
        position = account.positions[0].size if account.positions else D(0)
        return bid, ask, position, account.equity, account.realized_pnl, account.fees_paid

    assert venue.equity_sample() == await awaited()
    await venue.place_market_order(venue.contract_id, OrderSide.BUY, D("0.004"), "a1", D("0.5"))
    clock.advance_to(101.0)
    venue.apply_bbo(D("60010.1"), D("60010.4"), D("1"), D("1"))
    sample = venue.equity_sample()
    assert sample == await awaited()
    assert sample is not None and sample[2] == D("0.004") and sample[5] > 0
    venue.inject_failure("fetch_bbo_prices", ExchangeUnavailable("down"))
    assert venue.equity_sample() is None
