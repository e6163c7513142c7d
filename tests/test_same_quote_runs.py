"""Runs of quotes at the book's very prices, and of the trades among them that reach no order of
ours, applied at once (a backtest's drive loop finds them while the bot sleeps): the venue is
left exactly as applying them one by one leaves it, our queues included, and a whole backtest
decides and fills exactly as without such runs."""

from __future__ import annotations

from array import array
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backtesting.engine import BacktestSpec, _QuietRuns, run_backtest
from backtesting.feed_cache import BBO, SOLD, load_feed
from exchanges.base import MarketUpdate, OrderSide, QuietQuotes
from exchanges.paper import PaperExchangeClient, SameQuoteLimits
from tests.shared_paths import RECORDED_FEED
from tests.test_paper_queue import Tape

BUY, SELL = OrderSide.BUY, OrderSide.SELL
BID, ASK = Decimal("100.0"), Decimal("100.1")
#: Orders a script may rest: (side, price) at the touch, behind it, and on the other side.
RESTING = [(BUY, "100.0"), (BUY, "99.9"), (BUY, "100.0"), (SELL, "100.1"), (SELL, "100.2")]


def sizes() -> st.SearchStrategy[Decimal]:
    return st.integers(0, 4000).map(lambda units: Decimal(units) / 1000)


#: Trade prices a run may hold: through, at and between our levels and the touch.
TRADE_PRICES = [Decimal(text) for text in ("99.8", "99.9", "100.0", "100.05", "100.1", "100.2", "100.3")]


def venue_state(venue: PaperExchangeClient, quiet: QuietQuotes) -> tuple[Any, ...]:
    """Everything a run can change: the book, the last trade, events counted, our levels and
    queues, fills, and when the subscriber's band last noted a skipped update."""
    levels = tuple(
        (side, price, level.seen, level.traded, level.crossed, tuple(o.queue_ahead for o in level.orders))
        for side, book in (("buy", venue._buy_levels), ("sell", venue._sell_levels))
        for price, level in sorted(book.items())
    )
    return (
        venue._best_bid,
        venue._best_ask,
        venue._bid_size,
        venue._ask_size,
        venue._last_trade_price,
        venue.events_applied,
        levels,
        quiet.skipped_at,
    )


async def scripted(
    orders: list[int], before: list[tuple[str, Decimal]], bid_size: Decimal, band: bool
) -> tuple[Tape, QuietQuotes, list[MarketUpdate]]:
    """A venue with our ``orders`` (indexes into RESTING) resting, then ``before``'s events: a
    sell print at the bid, or a quote with the bid a tick lower (our bids at 100.0 are then
    better than the touch: each quote empties their level) or back at 100.0. Its lone
    subscriber's band holds the book's quotes when ``band`` (a trade inside our levels is then
    skipped, its time noted), else none (every trade is an update the subscriber wants)."""
    tape = Tape()
    quiet = QuietQuotes()
    if band:
        quiet.open(Decimal(99), Decimal(101), Decimal(99), Decimal(101))
    updates: list[MarketUpdate] = []
    tape.venue.subscribe_market_updates(updates.append, quiet=quiet)
    tape.venue.apply_bbo(BID, ASK, bid_size, Decimal(5))
    for index in orders:
        side, price = RESTING[index]
        await tape.limit(side, "0.5", price)
    for kind, size in before:
        if kind == "trade":
            tape.venue.apply_trade(BID, size, SELL)
        elif kind == "lower":
            tape.venue.apply_bbo(Decimal("99.9"), ASK, size, Decimal(5))
        else:
            tape.venue.apply_bbo(BID, ASK, size, Decimal(5))
    return tape, quiet, updates


def quote_or_trade() -> st.SearchStrategy[tuple[Any, ...]]:
    """A quote's sizes, or a trade: its price, size and aggressor."""
    return st.one_of(
        st.tuples(st.just("quote"), sizes(), sizes()),
        st.tuples(st.just("trade"), st.sampled_from(TRADE_PRICES), sizes(), st.sampled_from([BUY, SELL])),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Our bid better than the touch, partly filled by a print at its price: the run's first quote
# must empty its level again (what the print traded there is forgotten).
@example(
    orders=[0],
    before=[("lower", Decimal("1")), ("trade", Decimal("0.2"))],
    run=[("quote", Decimal("1"), Decimal("5")), ("quote", Decimal("2"), Decimal("5"))],
    cuts=[],
    bid_size=Decimal("1"),
    band=True,
)
# A print between our bid at the touch and our offer: the last trade price and the band's note.
@example(
    orders=[0, 4],
    before=[],
    run=[("quote", Decimal("1"), Decimal("5")), ("trade", Decimal("100.1"), Decimal("0.3"), BUY)],
    cuts=[],
    bid_size=Decimal("2"),
    band=True,
)
@given(
    orders=st.lists(st.integers(0, len(RESTING) - 1), max_size=4),
    before=st.lists(st.tuples(st.sampled_from(["trade", "lower", "back"]), sizes()), max_size=4),
    run=st.lists(quote_or_trade(), min_size=1, max_size=12),
    cuts=st.lists(st.integers(1, 11), max_size=3),
    bid_size=sizes(),
    band=st.booleans(),
)
async def test_a_run_of_same_quotes_leaves_what_its_events_one_by_one_leave(
    orders: list[int],
    before: list[tuple[str, Decimal]],
    run: list[tuple[Any, ...]],
    cuts: list[int],
    bid_size: Decimal,
    band: bool,
) -> None:
    one_by_one, one_quiet, one_updates = await scripted(orders, before, bid_size, band)
    at_once, at_quiet, at_updates = await scripted(orders, before, bid_size, band)
    assert venue_state(one_by_one.venue, one_quiet) == venue_state(at_once.venue, at_quiet)
    fills_before = one_by_one.filled()
    updates_before = len(one_updates)
    limits = at_once.venue.same_quote_limits()
    assert limits is not None
    # The run holds the trades the limits let in (those at or through our levels stop a run).
    trade_low, trade_high = limits.trade_low, limits.trade_high
    events = [event for event in run if event[0] == "quote" or trade_low < event[1] < trade_high]
    if not events:
        return
    venue = one_by_one.venue
    bid, ask = venue._best_bid, venue._best_ask
    assert bid is not None and ask is not None and (limits.bid, limits.ask) == (bid, ask)
    start = one_by_one.clock.now()
    for moment, event in enumerate(events, start=1):
        one_by_one.clock.advance_to(start + moment)
        if event[0] == "quote":
            venue.apply_bbo(bid, ask, event[1], event[2])
        else:
            venue.apply_trade(event[1], event[2], event[3])
    pieces = sorted({cut for cut in cuts if cut < len(events)})
    for low, high in zip([0, *pieces], [*pieces, len(events)], strict=True):
        part = list(enumerate(events, start=1))[low:high]
        quotes = [event for _, event in part if event[0] == "quote"]
        trades = [(event[1], start + moment) for moment, event in part if event[0] == "trade"]
        at_once.venue.apply_same_quotes(
            len(part),
            iter([event[1] for event in quotes]),
            iter([event[2] for event in quotes]),
            (bid, ask, quotes[-1][1], quotes[-1][2]) if quotes else None,
            trades[-1] if trades else None,
        )
    assert venue_state(at_once.venue, at_quiet) == venue_state(one_by_one.venue, one_quiet)
    assert at_once.filled() == one_by_one.filled() == fills_before  # nothing in a run fills
    assert len(one_updates) == len(at_updates) == updates_before  # nor is an update to deliver


def test_trades_join_a_run_only_between_our_orders_and_inside_the_subscribers_band() -> None:
    tape = Tape()
    quiet = QuietQuotes()
    tape.venue.subscribe_market_updates(lambda update: None, quiet=quiet)
    tape.venue.apply_bbo(BID, ASK, Decimal(1), Decimal(1))
    closed = tape.venue.same_quote_limits()
    assert closed is not None and closed.trade_low > closed.trade_high  # band closed: no trades
    quiet.open(Decimal(99), Decimal(101), Decimal(99), Decimal(101))
    open_band = tape.venue.same_quote_limits()
    assert open_band is not None
    assert (open_band.trade_low, open_band.trade_high) == (Decimal("-Infinity"), Decimal("Infinity"))


async def test_our_best_orders_bound_a_runs_trades() -> None:
    tape = Tape()
    tape.venue.apply_bbo(BID, ASK, Decimal(1), Decimal(1))
    await tape.limit(BUY, "0.5", "99.9")
    await tape.limit(BUY, "0.5", "100.0")
    await tape.limit(SELL, "0.5", "100.2")
    limits = tape.venue.same_quote_limits()  # no subscriber: no band to keep inside
    assert limits is not None
    assert (limits.bid, limits.ask, limits.trade_low, limits.trade_high) == (BID, ASK, BID, Decimal("100.2"))


def test_the_touch_model_has_no_same_quote_runs() -> None:
    touch = Tape(fill_model="touch")
    touch.venue.apply_bbo(BID, ASK, Decimal(1), Decimal(1))
    assert touch.venue.same_quote_limits() is None
    queue = Tape()
    assert queue.venue.same_quote_limits() is None  # no book yet
    queue.venue.apply_bbo(BID, ASK, Decimal(1), Decimal(1))
    assert queue.venue.same_quote_limits() is not None


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_feed(RECORDED_FEED, tmp_path_factory.mktemp("cache"))


def naive_end(
    columns: Any,
    values: list[Decimal],
    begin: int,
    stop: int,
    book: tuple[int, int],
    trades: tuple[Decimal, Decimal],
) -> int:
    """The first event from ``begin`` that is neither a quote with the ``book``'s very value
    indexes nor a trade priced strictly inside ``trades``, read as Decimals."""
    _times, kinds, first, second, _third, _fourth = columns
    for index in range(begin, stop):
        if kinds[index] == BBO:
            if (first[index], second[index]) != book:
                return index
        elif not trades[0] < values[first[index]] < trades[1]:
            return index
    return stop


@pytest.mark.parametrize("compiled", [True, False])
def test_same_quote_runs_end_where_the_prices_first_change(feed: Any, compiled: bool) -> None:
    from backtesting import binance_scan

    library = binance_scan.load() if compiled else None
    if compiled and library is None:
        pytest.skip("no C compiler")
    columns = next(feed.chunks(0, 20_000))
    times, kinds, first, second = columns[0], columns[1], columns[2], columns[3]
    values = feed.values
    runs = _QuietRuns(values, library)
    runs.load(columns)
    infinite = float("inf")
    lengths, with_trades, from_trades = [], 0, 0
    book = (first[0], second[0])
    assert kinds[0] == BBO
    for begin in range(0, 20_000):
        if kinds[begin] == BBO:
            book = (first[begin], second[begin])
        if begin % 7:
            continue
        bid, ask = values[book[0]], values[book[1]]
        tick = Decimal("0.1")
        for trades in [
            (Decimal("Infinity"), Decimal("-Infinity")),  # none
            (bid, ask + tick),  # our bid at the touch, an offer a tick behind the ask
            (bid - 3 * tick, ask + 3 * tick),
        ]:
            open_ended = SameQuoteLimits(bid, ask, infinite, infinite, *trades)
            end = runs.same_quote_end(begin, 20_000, open_ended, None)
            assert end == naive_end(columns, values, begin, 20_000, book, trades)
            if end == begin:
                continue
            lengths.append(end - begin)
            with_trades += kinds[begin:end].count(BBO) < end - begin
            from_trades += kinds[begin] != BBO
            # Time limits cut it: not at or after ``before`` or the deadline, not after ``until``.
            moment = times[begin + (end - begin) // 2]
            limits = SameQuoteLimits(bid, ask, moment, infinite, *trades)
            cut = runs.same_quote_end(begin, 20_000, limits, None)
            assert cut == min(end, next(i for i in range(begin, 20_001) if i == 20_000 or times[i] >= moment))
            limits = SameQuoteLimits(bid, ask, infinite, moment, *trades)
            cut = runs.same_quote_end(begin, 20_000, limits, None)
            assert cut == min(end, next(i for i in range(begin, 20_001) if i == 20_000 or times[i] > moment))
            cut = runs.same_quote_end(begin, 20_000, open_ended, moment)
            assert cut == min(end, next(i for i in range(begin, 20_001) if i == 20_000 or times[i] >= moment))
    assert max(lengths) > 20 and min(lengths) == 1  # long runs and lone quotes both seen
    assert with_trades > 100 and from_trades > 20  # runs holding trades, and starting at one
    assert SOLD in set(kinds)  # trades end runs too: there are some in this stretch


ACTIVE = {"take_profit": Decimal("0.02"), "wait_time": 30.0}


@pytest.mark.parametrize(
    ("spec", "events_in_runs", "runs_with_trades"),
    [
        ({"feed_path": str(RECORDED_FEED), "strategy_params": ACTIVE}, 6000, 100),
        # The synthetic market's quotes seldom repeat a quote's prices: few runs, same answers.
        ({"synthetic_events": 40_000, "strategy_params": {**ACTIVE, "wait_time": 5.0}}, 0, 0),
    ],
)
def test_a_backtest_with_same_quote_runs_is_the_backtest_without_them(
    spec: dict[str, Any],
    events_in_runs: int,
    runs_with_trades: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    applied: list[int] = []
    traded: list[Any] = []
    original = PaperExchangeClient.apply_same_quotes

    def counted(self: PaperExchangeClient, count: int, *args: Any) -> None:
        applied.append(count)
        traded.append(args[-1])
        original(self, count, *args)

    monkeypatch.setattr(PaperExchangeClient, "apply_same_quotes", counted)
    with_runs = run_backtest(BacktestSpec(cache_dir=cache_dir, **spec))
    assert sum(applied) >= events_in_runs  # runs were found and applied
    assert sum(last_trade is not None for last_trade in traded) >= runs_with_trades  # trades in them
    monkeypatch.setattr(PaperExchangeClient, "same_quote_limits", lambda self: None)
    without = run_backtest(BacktestSpec(cache_dir=cache_dir, **spec))
    assert with_runs.metrics == without.metrics
    assert with_runs.decisions() == without.decisions()
    assert [vars(fill) for fill in with_runs.fills] == [vars(fill) for fill in without.fills]
    assert with_runs.samples == without.samples


def test_a_run_from_a_trade_needs_the_books_prices_in_one_place_of_the_table() -> None:
    """A run that starts at a trade compares quotes with the book's value indexes: a price the
    sorted table holds twice (``1`` and ``1.0``) has no one index, so no such run is found."""
    values = [Decimal("1"), Decimal("1.0"), Decimal("2"), Decimal("3")]
    columns = (
        array("d", [1.0, 2.0, 3.0]),
        array("b", [SOLD, BBO, SOLD]),
        array("I", [2, 0, 2]),
        array("I", [1, 3, 1]),
        array("I", [0, 1, 0]),
        array("I", [0, 1, 0]),
    )
    runs = _QuietRuns(values)
    runs.load(columns)
    infinite = float("inf")
    ambiguous = SameQuoteLimits(Decimal(1), Decimal(3), infinite, infinite, Decimal(0), Decimal(10))
    assert runs.same_quote_end(0, 3, ambiguous, None) == 0
    assert runs.same_quote_end(1, 3, ambiguous, None) == 3  # from the quote itself: its indexes
    one_place = SameQuoteLimits(Decimal(2), Decimal(3), infinite, infinite, Decimal(0), Decimal(10))
    assert runs.same_quote_end(0, 3, one_place, None) == 1  # the quote's bid is another index
