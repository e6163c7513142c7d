"""A quiet run handed to the venue at once leaves the venue exactly as applying its events one by
one does (book, last trade, the subscriber's skipped-update time, events counted), and the
samples due inside it, read from its columns, are the samples one by one would take."""

from __future__ import annotations

import asyncio
import bisect
from array import array
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtesting import binance_scan
from backtesting import engine as engine_module
from backtesting.engine import _QuietRuns
from backtesting.feed_cache import BBO, SOLD, load_feed
from backtesting.report import Sample, SampleLog
from exchanges.base import OrderSide, QuietQuotes
from exchanges.paper import PaperExchangeClient, QuietLimits
from helpers.clock import SimulatedClock
from helpers.trading_config import TradingConfig
from tests.shared_paths import RECORDED_FEED

EVENTS = 4000


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_feed(RECORDED_FEED, tmp_path_factory.mktemp("cache"))


def _venue(feed: Any) -> tuple[PaperExchangeClient, QuietQuotes, SimulatedClock]:
    """A venue whose lone subscriber discards every quote (so every event of the feed is quiet),
    its book set by the feed's first quote, holding a long position (its equity moves with the
    quote)."""
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
    asyncio.run(venue.place_market_order(venue.contract_id, OrderSide.BUY, D("0.004"), "long", D("1")))
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


def _apply(venue: PaperExchangeClient, columns: Any, values: list[D], index: int) -> None:
    _times, kinds, first, second, third, fourth = columns
    if kinds[index] == BBO:
        venue.apply_bbo(
            values[first[index]], values[second[index]], values[third[index]], values[fourth[index]]
        )
    else:
        side = OrderSide.SELL if kinds[index] == SOLD else OrderSide.BUY
        venue.apply_trade(values[first[index]], values[second[index]], side)


def _one_by_one(
    feed: Any, columns: Any, begin: int, end: int, due: float, interval: float
) -> tuple[tuple[Any, ...], list[Sample]]:
    """The venue's state after the events, and the samples due from ``begin`` on, taken as the
    drive loop takes them one by one: before the first event at or after the time due."""
    venue, quiet, clock = _venue(feed)
    times = columns[0]
    samples: list[Sample] = []
    for index in range(1, end):
        if index == begin:
            quiet.skipped_at = None  # what the run itself notes, not what came before it
        if index >= begin and times[index] >= due:
            state = venue.equity_sample()
            assert state is not None
            samples.append(Sample(times[index], *state))
            due += interval * (1 + (times[index] - due) // interval)
        clock.advance_to(times[index])
        _apply(venue, columns, feed.values, index)
    return _state(venue, quiet), samples


def _as_run(
    feed: Any, columns: Any, begin: int, end: int, due: float, interval: float, library: Any
) -> tuple[tuple[Any, ...], list[Sample]]:
    venue, quiet, clock = _venue(feed)
    for index in range(1, begin):
        clock.advance_to(columns[0][index])
        _apply(venue, columns, feed.values, index)
    quiet.skipped_at = None
    runs = _QuietRuns(feed.values, library)
    runs.load(columns)
    samples = SampleLog()
    runs.take_samples(venue, samples, begin, end, due, interval)
    runs.apply(venue, begin, end, (venue._best_bid, venue._best_ask))
    return _state(venue, quiet), list(samples)


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
@pytest.mark.parametrize(
    ("begin", "end", "samples_from", "interval"),
    [
        (10, 500, 0, 0.05),
        (10, 500, 250, 1.0),
        (100, 3999, 101, 0.001),
        (37, 41, 38, 0.0001),
        (1, EVENTS, 1, 0.2),
        (1, EVENTS, 2000, 1000.0),
    ],
)
def test_a_run_leaves_what_its_events_one_by_one_leave(
    feed: Any, begin: int, end: int, samples_from: int, interval: float, compiled: bool
) -> None:
    """The run is applied at once; the samples falling due inside it (from the time of event
    ``samples_from`` on, every ``interval`` seconds) are read from its columns."""
    columns = next(feed.chunks(0, EVENTS))
    due = columns[0][samples_from]
    expected_state, expected_samples = _one_by_one(feed, columns, begin, end, due, interval)
    if end - begin > 100:  # long runs note a skipped update: there is something to compare
        assert expected_state[5] is not None
    if compiled and LIBRARY is None:
        pytest.skip("no C compiler: only the Python loops run")
    state, samples = _as_run(feed, columns, begin, end, due, interval, LIBRARY if compiled else None)
    assert state == expected_state
    assert samples == expected_samples
    assert samples and expected_samples[0].position == D("0.004")
    if len(samples) >= 10:  # the quote moved between samples, and the equity with it
        assert len({sample.equity for sample in samples}) > 1


async def test_an_equity_sample_reads_what_the_awaited_calls_report() -> None:
    """The backtest's samples read the venue at once (equity_sample); they must equal what
    fetch_bbo_prices and get_account_snapshot report, flat and with a position, and defer to
    those calls while failures are injected (when no events are skipped as a run)."""
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
    assert venue.quiet_limits() is not None and venue.same_quote_limits() is not None
    venue.inject_failure("fetch_bbo_prices", ExchangeUnavailable("down"))
    assert venue.equity_sample() is None
    # No runs either: a sample inside one is read without those calls.
    assert venue.quiet_limits() is None and venue.same_quote_limits() is None


# -- the search for a run's end: compiled and Python, against the limits read as Decimals -------

LIBRARY = binance_scan.load()
compiled = pytest.mark.skipif(LIBRARY is None, reason="no C compiler: only the Python search runs")
FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
#: A sorted value table with equal values spelled apart (1.0 / 1.00 / 1): their indexes differ.
TABLE = [D("0.5"), D("1"), D("1.0"), D("1.00"), D("1.5"), D("2"), D("2.5"), D("2.50"), D("3"), D("4")]
#: Prices a limit may take: the table's, and some it never shows.
PRICES = sorted({*TABLE, D("0.1"), D("1.2"), D("2.7"), D("9")})


def reference_end(
    columns: Any, values: list[D], begin: int, count: int, limits: QuietLimits, deadline: float | None
) -> int:
    """What QuietLimits says, event by event, on the Decimals themselves."""
    times, kinds, first, second = columns[:4]
    before = limits.before if deadline is None else min(limits.before, deadline)
    for index in range(begin, count):
        if not (times[index] < before and times[index] <= limits.until):
            return index
        price, other = values[first[index]], values[second[index]]
        if kinds[index] == BBO:
            if not (limits.bid_low < price < limits.bid_high and limits.ask_low < other < limits.ask_high):
                return index
            if price in limits.bid_excluded or other in limits.ask_excluded:
                return index
        elif not limits.trade_low < price < limits.trade_high:
            return index
    return count


def searches(values: list[D]) -> list[_QuietRuns]:
    return [_QuietRuns(values, None)] + ([_QuietRuns(values, LIBRARY)] if LIBRARY is not None else [])


def make_columns(rows: list[tuple[float, int, int, int]]) -> Any:
    times = array("d", [row[0] for row in rows])
    kinds = array("b", [row[1] for row in rows])
    first = array("I", [row[2] for row in rows])
    second = array("I", [row[3] for row in rows])
    third = array("I", [row[2] if row[1] == BBO else 0 for row in rows])
    fourth = array("I", [row[3] if row[1] == BBO else 0 for row in rows])
    return times, kinds, first, second, third, fourth


def limits_of(
    bid: tuple[D, D],
    ask: tuple[D, D],
    trade: tuple[D, D],
    excluded: tuple[tuple[D, ...], tuple[D, ...]],
    before: float,
    until: float,
) -> QuietLimits:
    return QuietLimits(
        bid_low=bid[0],
        bid_high=bid[1],
        ask_low=ask[0],
        ask_high=ask[1],
        bid_excluded=excluded[0],
        ask_excluded=excluded[1],
        trade_low=trade[0],
        trade_high=trade[1],
        before=before,
        until=until,
        notes_skips=True,
    )


rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # time step
        st.sampled_from([BBO, BBO, 1, SOLD]),
        st.integers(0, len(TABLE) - 1),
        st.integers(0, len(TABLE) - 1),
    ),
    min_size=0,
    max_size=60,
)
band = st.tuples(st.sampled_from(PRICES), st.sampled_from(PRICES)).map(sorted).map(tuple)


@FUZZ
@given(
    steps=rows_strategy,
    bid=band,
    ask=band,
    trade=band,
    bid_excluded=st.lists(st.sampled_from(PRICES), max_size=3).map(tuple),
    ask_excluded=st.lists(st.sampled_from(PRICES), max_size=3).map(tuple),
    begin_fraction=st.floats(0, 1),
    before=st.integers(0, 200),
    until=st.integers(0, 200),
    deadline=st.none() | st.integers(0, 200),
)
def test_fuzz_a_run_ends_where_the_limits_say(
    steps: list[tuple[int, int, int, int]],
    bid: Any,
    ask: Any,
    trade: Any,
    bid_excluded: tuple[D, ...],
    ask_excluded: tuple[D, ...],
    begin_fraction: float,
    before: int,
    until: int,
    deadline: int | None,
) -> None:
    """Random columns over a table with equal values spelled apart, random limits (prices in the
    table and not): the compiled and the Python search both find the first event outside."""
    clock, rows = 0.0, []
    for step, kind, first, second in steps:
        clock += step
        rows.append((clock, kind, first, second))
    columns = make_columns(rows)
    limits = limits_of(bid, ask, trade, (bid_excluded, ask_excluded), float(before), float(until))
    begin = int(begin_fraction * len(rows))
    moment = None if deadline is None else float(deadline)
    expected = reference_end(columns, TABLE, begin, len(rows), limits, moment)
    for runs in searches(TABLE):
        runs.load(columns)
        assert runs.end(begin, len(rows), limits, moment) == expected


OPEN = limits_of((D(0), D(10)), (D(0), D(10)), (D(0), D(10)), ((), ()), 1e9, 1e9)


@pytest.mark.parametrize(
    ("rows", "limits", "begin", "expected"),
    [
        # Nothing outside: the run goes to the end (and from the last event alone).
        ([(1, BBO, 0, 9), (2, 1, 5, 0), (3, SOLD, 9, 0)], OPEN, 0, 3),
        ([(1, BBO, 0, 9), (2, 1, 5, 0), (3, SOLD, 9, 0)], OPEN, 2, 3),
        ([(1, BBO, 0, 9)], OPEN, 1, 1),
        # The first event is out; the last one is.
        (
            [(1, BBO, 0, 9), (2, BBO, 4, 9)],
            limits_of((D("0.5"), D(10)), (D(0), D(10)), (D(0), D(10)), ((), ()), 1e9, 1e9),
            0,
            0,
        ),
        (
            [(1, BBO, 4, 8), (2, BBO, 4, 8), (3, BBO, 4, 9)],
            limits_of((D(0), D(10)), (D(0), D(4)), (D(0), D(10)), ((), ()), 1e9, 1e9),
            0,
            2,
        ),
        # Bounds are exclusive, on both sides: a bid at the low bound (1.0, spelled three ways).
        (
            [(1, BBO, 4, 9), (2, BBO, 3, 9)],
            limits_of((D("1.00"), D(10)), (D(0), D(10)), (D(0), D(10)), ((), ()), 1e9, 1e9),
            0,
            1,
        ),
        (
            [(1, BBO, 4, 9), (2, BBO, 1, 9)],
            limits_of((D("1.0"), D(10)), (D(0), D(10)), (D(0), D(10)), ((), ()), 1e9, 1e9),
            0,
            1,
        ),
        (
            [(1, BBO, 0, 8), (2, BBO, 0, 9)],
            limits_of((D(0), D(10)), (D(0), D(4)), (D(0), D(10)), ((), ()), 1e9, 1e9),
            0,
            1,
        ),
        # A trade at the high bound; a bid equal to an excluded price spelled otherwise.
        (
            [(1, 1, 6, 0), (2, SOLD, 7, 0)],
            limits_of((D(0), D(10)), (D(0), D(10)), (D(0), D("2.5")), ((), ()), 1e9, 1e9),
            0,
            0,
        ),
        (
            [(1, BBO, 5, 9), (2, BBO, 2, 9)],
            limits_of((D(0), D(10)), (D(0), D(10)), (D(0), D(10)), ((D(1),), ()), 1e9, 1e9),
            0,
            1,
        ),
        (
            [(1, BBO, 0, 6), (2, BBO, 0, 7)],
            limits_of((D(0), D(10)), (D(0), D(10)), (D(0), D(10)), ((), (D("2.500"),)), 1e9, 1e9),
            0,
            0,
        ),
        # Time: at ``before`` is out, at ``until`` is in.
        (
            [(1, BBO, 0, 9), (2, BBO, 0, 9), (3, BBO, 0, 9)],
            limits_of((D(0), D(10)), (D(0), D(10)), (D(0), D(10)), ((), ()), 3.0, 1e9),
            0,
            2,
        ),
        (
            [(1, BBO, 0, 9), (2, BBO, 0, 9), (3, BBO, 0, 9)],
            limits_of((D(0), D(10)), (D(0), D(10)), (D(0), D(10)), ((), ()), 1e9, 2.0),
            0,
            2,
        ),
    ],
)
def test_hand_built_runs_end_where_they_should(
    rows: Any, limits: QuietLimits, begin: int, expected: int
) -> None:
    columns = make_columns([(float(time), kind, first, second) for time, kind, first, second in rows])
    assert reference_end(columns, TABLE, begin, len(rows), limits, None) == expected
    for runs in searches(TABLE):
        runs.load(columns)
        assert runs.end(begin, len(rows), limits, None) == expected


@compiled
def test_the_compiled_search_on_the_shared_feed_agrees_with_python(feed: Any) -> None:
    """Every start of the feed's first chunk, with a band around the quote there."""
    columns = next(feed.chunks(0, EVENTS))
    values = feed.values
    python, native = _QuietRuns(values, None), _QuietRuns(values, LIBRARY)
    python.load(columns)
    native.load(columns)
    times, kinds, first, second = columns[:4]
    ends = set()
    for begin in range(0, EVENTS, 7):
        bid = values[first[begin]]
        ask = values[second[begin]] if kinds[begin] == BBO else bid
        width = D("0.1") * (1 + begin % 40)
        limits = limits_of(
            (bid - width, bid + width),
            (ask - width, ask + width),
            (bid - 2 * width, ask + 2 * width),
            ((bid - width / 2,), (ask + width / 2,)),
            times[begin] + 30,
            times[begin] + 25,
        )
        end = python.end(begin, EVENTS, limits, None)
        assert native.end(begin, EVENTS, limits, None) == end
        ends.add(end - begin)
    assert len(ends) > 20  # runs of many lengths, not all empty or all whole


@FUZZ
@given(
    kinds=st.lists(st.sampled_from([BBO, 1, SOLD]), max_size=40),
    low=st.integers(0, 45),
    high=st.integers(0, 45),
)
def test_fuzz_the_last_quote_and_trade_of_a_range(kinds: list[int], low: int, high: int) -> None:
    rows = [(float(index), kind, 0, 0) for index, kind in enumerate(kinds)]
    runs = _QuietRuns(TABLE)
    runs.load(make_columns(rows))
    high = min(high, len(kinds))
    quotes = [index for index in range(low, high) if kinds[index] == BBO]
    trades = [index for index in range(low, high) if kinds[index] != BBO]
    assert runs._last_quote(low, high) == (quotes[-1] if quotes else low - 1)
    assert runs._last_trade(low, high) == (trades[-1] if trades else low - 1)


def test_the_remembered_table_places_stay_few_and_right() -> None:
    """A run's search remembers where prices fall in the value table, but a long run's bands
    are new worked-out prices all along: what it keeps stays bounded, and every answer is the
    table's bisection."""
    values = [D(price) / 10 for price in range(600_000, 600_400)]
    runs = _QuietRuns(values)
    for step in range(3 * engine_module._EDGES_KEPT):
        price = D(599_900 + step) / 10 + D("0.05") * (step % 3 == 0)  # in, between and beyond
        expected = (bisect.bisect_left(values, price), bisect.bisect_right(values, price))
        assert runs._edges_of(price) == expected
        assert len(runs._edges) <= engine_module._EDGES_KEPT
