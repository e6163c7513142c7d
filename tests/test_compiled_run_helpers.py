"""The compiled helpers of a quiet or same-quote run (binance_scan.c) give what the Python loops
they replace give: the samples due inside a run (times rounded as Python's floats round), where
the run's quote last changed, and the sizes its quotes hand to the venue's queues."""

from __future__ import annotations

import itertools
from array import array
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backtesting import binance_scan
from backtesting.engine import _QuietRuns
from backtesting.feed_cache import BBO, SOLD
from backtesting.report import SampleLog
from exchanges.paper_queue import PriceLevel

LIBRARY = binance_scan.load()
pytestmark = pytest.mark.skipif(LIBRARY is None, reason="no C compiler: only the Python loops run")
FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
#: A sorted value table with equal values spelled apart (1 / 1.0 / 1.00): their indexes differ.
TABLE = [D("0.5"), D("1"), D("1.0"), D("1.00"), D("1.5"), D("2"), D("2.5"), D("2.50"), D("3"), D("4")]


@dataclass
class RecordingVenue:
    """What a run's helpers read of the venue and hand to it, recorded."""

    _best_bid: D
    _best_ask: D
    sampled: list[tuple[D, D]] = field(default_factory=list)
    handed: list[tuple[Any, ...]] = field(default_factory=list)

    def equity_sampler(self) -> Any:
        def sample_at(bid: D, ask: D) -> tuple[D, D]:
            self.sampled.append((bid, ask))
            return (bid, ask)

        return sample_at

    def apply_quiet_run(self, *arguments: Any) -> None:
        self.handed.append(arguments)

    def apply_same_quotes(self, count: int, bids: Any, asks: Any, quote: Any, trade: Any) -> None:
        self.handed.append((count, list(bids), list(asks), quote, trade))


def events() -> st.SearchStrategy[list[tuple[float, int, int, int, int, int]]]:
    """Rows (time step, kind, four value indexes): times that repeat and jump, quotes that
    repeat their prices or only their sizes, trades between them."""
    row = st.tuples(
        st.sampled_from([0.0, 0.0, 0.001, 0.1, 0.3, 1.7, 1e-9]),
        st.sampled_from([BBO, BBO, BBO, 1, SOLD]),
        *(st.integers(0, len(TABLE) - 1) for _ in range(4)),
    )
    return st.lists(row, min_size=1, max_size=60)


def columns_of(rows: list[tuple[float, int, int, int, int, int]], start: float) -> Any:
    times = array("d", itertools.accumulate((row[0] for row in rows), initial=start))[1:]
    kinds = array("b", [row[1] for row in rows])
    columns = [array("I", [row[2 + place] for row in rows]) for place in range(4)]
    for index, kind in enumerate(kinds):
        if kind != BBO:  # a trade's third and fourth name no value
            columns[2][index] = columns[3][index] = 0
    return (times, kinds, *columns)


def both(columns: Any) -> tuple[_QuietRuns, _QuietRuns]:
    python, compiled = _QuietRuns(TABLE, None), _QuietRuns(TABLE, LIBRARY)
    python.load(columns)
    compiled.load(columns)
    return python, compiled


@FUZZ
@given(
    rows=events(),
    start=st.floats(1.7e9, 1.8e9),
    due_offset=st.floats(-1.0, 5.0),
    interval=st.sampled_from([0.1, 0.05, 1 / 3, 0.001, 0.2, 7.0, 0.00101, 0.17275]),
    span=st.data(),
)
@example(rows=[(0.1, BBO, 1, 5, 0, 0)] * 20, start=1723075200.3, due_offset=0.0, interval=0.1, span=None)
def test_the_samples_of_a_run_are_the_python_loops(
    rows: Any, start: float, due_offset: float, interval: float, span: Any
) -> None:
    columns = columns_of(rows, start)
    count = len(rows)
    begin, end = (
        (0, count)
        if span is None
        else sorted(span.draw(st.lists(st.integers(0, count), min_size=2, max_size=2)))
    )
    due = columns[0][0] + due_offset
    results = []
    for runs in both(columns):
        venue = RecordingVenue(TABLE[1], TABLE[5])
        samples = SampleLog()
        next_due = runs.take_samples(venue, samples, begin, end, due, interval)  # type: ignore[arg-type]
        results.append((next_due, samples.times, samples.states, venue.sampled))
    python, compiled = results
    assert compiled[0] == python[0]  # the next due time, to the bit
    assert compiled[1] == python[1]
    assert compiled[2] == python[2]
    assert compiled[3] == python[3]  # the same states made, no more
    # A sample whose quote repeats the one before shares its state object, in both.
    assert [a is b for a, b in itertools.pairwise(compiled[2])] == [
        a is b for a, b in itertools.pairwise(python[2])
    ]


def test_more_samples_in_a_run_than_one_call_finds() -> None:
    """A long run at a short interval: the compiled search goes on where it stopped."""
    rows = [(0.001, BBO if index % 3 else SOLD, index % 4, 5 + index % 3, 1, 2) for index in range(3000)]
    columns = columns_of(rows, 1.7e9)
    results = []
    for runs in both(columns):
        venue = RecordingVenue(TABLE[1], TABLE[5])
        samples = SampleLog()
        next_due = runs.take_samples(venue, samples, 0, 3000, 1.7e9, 0.0015)  # type: ignore[arg-type]
        results.append((next_due, samples.times, samples.states))
    assert len(results[0][1]) > 1500  # several calls' worth
    assert results[1] == results[0]


@FUZZ
@given(rows=events(), span=st.data(), opening=st.sampled_from([(1, 5), (2, 5), (0, 9)]))
def test_where_a_run_last_changed_its_quote_is_the_python_loops(rows: Any, span: Any, opening: Any) -> None:
    """Equal values spelled apart (1 and 1.0) are the same quote: the compiled skip compares
    indexes and leaves such pairs to the values."""
    columns = columns_of(rows, 1.7e9)
    begin, end = sorted(span.draw(st.lists(st.integers(0, len(rows)), min_size=2, max_size=2)))
    handed = []
    for runs in both(columns):
        venue = RecordingVenue(TABLE[opening[0]], TABLE[opening[1]])
        runs.apply(venue, begin, end, (TABLE[opening[0]], TABLE[opening[1]]))  # type: ignore[arg-type]
        handed.append(venue.handed)
    assert handed[1] == handed[0]


@FUZZ
@given(rows=events(), span=st.data())
def test_a_same_quote_run_hands_the_sizes_less_their_repeats(rows: Any, span: Any) -> None:
    columns = columns_of(rows, 1.7e9)
    begin, end = sorted(span.draw(st.lists(st.integers(0, len(rows)), min_size=2, max_size=2)))
    handed = []
    for runs in both(columns):
        venue = RecordingVenue(TABLE[1], TABLE[5])
        runs.apply_same_quotes(venue, begin, end)  # type: ignore[arg-type]
        handed.append(venue.handed)
    if end <= begin:
        assert handed == [[], []]
        return
    (python,), (compiled,) = handed
    assert compiled[0] == python[0] and compiled[3:] == python[3:]
    for side in (1, 2):
        # The same objects in the same order, each run of one object back to back once.
        kept = [next(group) for _, group in itertools.groupby(python[side], key=id)]
        assert [id(size) for size in compiled[side]] == [id(size) for size in kept]


@dataclass
class Order:
    queue_ahead: D | None
    price: D = D("100")
    remaining: D = D("0.002")


@FUZZ
@given(
    aheads=st.lists(st.one_of(st.none(), st.integers(0, 3000).map(lambda n: D(n) / 1000)), max_size=4),
    seen=st.one_of(st.none(), st.integers(0, 3000).map(lambda n: D(n) / 1000)),
    traded=st.integers(0, 500).map(lambda n: D(n) / 1000),
    picks=st.lists(st.integers(0, 5), min_size=1, max_size=30),
)
def test_a_queue_sees_the_same_after_a_size_repeated_back_to_back(
    aheads: list[D | None], seen: D | None, traded: D, picks: list[int]
) -> None:
    """Why the repeats may be left out: the venue observes a same-quote run's first size alone
    and the rest in one call, and a size object seen again just after itself changes nothing."""
    pool = [D(n) / 1000 for n in (0, 250, 1000, 1165, 2000, 2500)]
    sizes = [pool[pick] for pick in picks]
    kept = [next(group) for _, group in itertools.groupby(sizes, key=id)]

    def observed(sequence: list[D]) -> tuple[Any, ...]:
        level = PriceLevel()
        level.orders = [Order(ahead) for ahead in aheads]  # type: ignore[list-item]
        level.seen, level.traded = seen, traded
        level.observe(sequence[0])
        level.observe_run(iter(sequence[1:]))
        return (level.seen, level.traded, level.crossed, [order.queue_ahead for order in level.orders])

    assert observed(kept) == observed(sizes)


@pytest.mark.parametrize(
    ("step", "interval"),
    # Quotients a plain floor(a / b) gets wrong (1.0 / 0.1 rounds up to 10.0, where 1.0 // 0.1
    # is 9.0) and ones only Python's snap to the nearest whole gets right (0.3 // 0.01 is 29.0,
    # the remainder's quotient 28.99...).
    [(1.0, 0.1), (2.0, 0.05), (0.3, 0.001), (0.3, 0.01), (0.33, 0.03), (0.45, 0.03)],
)
def test_sample_times_round_as_python_floor_division(step: float, interval: float) -> None:
    rows = [(step, BBO, 1, 5, 0, 0)] * 12
    columns = columns_of(rows, 0.0)
    results = []
    for runs in both(columns):
        samples = SampleLog()
        due = runs.take_samples(RecordingVenue(TABLE[1], TABLE[5]), samples, 0, 12, 0.0, interval)  # type: ignore[arg-type]
        results.append((due, samples.times))
    assert results[1] == results[0]
