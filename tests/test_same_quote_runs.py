"""Runs of quotes at the book's very prices, applied at once (a backtest's drive loop finds them
while the bot sleeps): the venue is left exactly as applying them one by one leaves it, our
queues included, and a whole backtest decides and fills exactly as without such runs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backtesting.engine import BacktestSpec, _QuietRuns, run_backtest
from backtesting.feed_cache import BBO, SOLD, load_feed
from exchanges.base import OrderSide
from exchanges.paper import PaperExchangeClient, SameQuoteLimits
from tests.shared_paths import RECORDED_FEED
from tests.test_paper_queue import Tape

BUY, SELL = OrderSide.BUY, OrderSide.SELL
BID, ASK = Decimal("100.0"), Decimal("100.1")
#: Orders a script may rest: (side, price) at the touch, behind it, and on the other side.
RESTING = [(BUY, "100.0"), (BUY, "99.9"), (BUY, "100.0"), (SELL, "100.1"), (SELL, "100.2")]


def sizes() -> st.SearchStrategy[Decimal]:
    return st.integers(0, 4000).map(lambda units: Decimal(units) / 1000)


def venue_state(venue: PaperExchangeClient) -> tuple[Any, ...]:
    """Everything a quote can change: the book, events counted, our levels and queues, fills."""
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
        venue.events_applied,
        levels,
    )


async def scripted(orders: list[int], before: list[tuple[str, Decimal]], bid_size: Decimal) -> Tape:
    """A venue with our ``orders`` (indexes into RESTING) resting, then ``before``'s events: a
    sell print at the bid, or a quote with the bid a tick lower (our bids at 100.0 are then
    better than the touch: each quote empties their level) or back at 100.0."""
    tape = Tape()
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
    return tape


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Our bid better than the touch, partly filled by a print at its price: the run's first quote
# must empty its level again (what the print traded there is forgotten).
@example(
    orders=[0],
    before=[("lower", Decimal("1")), ("trade", Decimal("0.2"))],
    run=[(Decimal("1"), Decimal("5")), (Decimal("2"), Decimal("5"))],
    cuts=[],
    bid_size=Decimal("1"),
)
@given(
    orders=st.lists(st.integers(0, len(RESTING) - 1), max_size=4),
    before=st.lists(st.tuples(st.sampled_from(["trade", "lower", "back"]), sizes()), max_size=4),
    run=st.lists(st.tuples(sizes(), sizes()), min_size=1, max_size=12),
    cuts=st.lists(st.integers(1, 11), max_size=3),
    bid_size=sizes(),
)
async def test_a_run_of_same_quotes_leaves_what_its_quotes_one_by_one_leave(
    orders: list[int],
    before: list[tuple[str, Decimal]],
    run: list[tuple[Decimal, Decimal]],
    cuts: list[int],
    bid_size: Decimal,
) -> None:
    one_by_one = await scripted(orders, before, bid_size)
    at_once = await scripted(orders, before, bid_size)
    assert venue_state(one_by_one.venue) == venue_state(at_once.venue)
    fills_before = one_by_one.filled()
    venue = one_by_one.venue
    bid, ask = venue._best_bid, venue._best_ask
    assert bid is not None and ask is not None
    for bid_units, ask_units in run:
        venue.apply_bbo(bid, ask, bid_units, ask_units)
    assert at_once.venue.same_quote_limits() is not None
    pieces = sorted({cut for cut in cuts if cut < len(run)})
    for low, high in zip([0, *pieces], [*pieces, len(run)], strict=True):
        part = run[low:high]
        at_once.venue.apply_same_quotes(
            len(part),
            iter([size for size, _ in part]),
            iter([size for _, size in part]),
            (bid, ask, part[-1][0], part[-1][1]),
        )
    assert venue_state(at_once.venue) == venue_state(one_by_one.venue)
    assert at_once.filled() == one_by_one.filled() == fills_before  # a quote alone never fills


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


def naive_end(columns: Any, begin: int, stop: int) -> int:
    """The first event after ``begin`` that is not a quote with begin's very value indexes."""
    _times, kinds, first, second, _third, _fourth = columns
    for index in range(begin + 1, stop):
        if kinds[index] != BBO or first[index] != first[begin] or second[index] != second[begin]:
            return index
    return stop


@pytest.mark.parametrize("compiled", [True, False])
def test_same_quote_runs_end_where_the_prices_first_change(feed: Any, compiled: bool) -> None:
    from backtesting import binance_scan

    library = binance_scan.load() if compiled else None
    if compiled and library is None:
        pytest.skip("no C compiler")
    columns = next(feed.chunks(0, 20_000))
    times, kinds = columns[0], columns[1]
    runs = _QuietRuns(feed.values, library)
    runs.load(columns)
    open_ended = SameQuoteLimits(before=float("inf"), until=float("inf"))
    lengths = []
    for begin in range(0, 20_000, 7):
        if kinds[begin] != BBO:
            continue
        end = runs.same_quote_end(begin, 20_000, open_ended, None)
        assert end == naive_end(columns, begin, 20_000)
        lengths.append(end - begin)
        # Time limits cut it: not at or after ``before`` or the deadline, not after ``until``.
        moment = times[begin + (end - begin) // 2]
        cut = runs.same_quote_end(begin, 20_000, SameQuoteLimits(before=moment, until=float("inf")), None)
        assert cut == min(end, next(i for i in range(begin, 20_001) if i == 20_000 or times[i] >= moment))
        cut = runs.same_quote_end(begin, 20_000, SameQuoteLimits(before=float("inf"), until=moment), None)
        assert cut == min(end, next(i for i in range(begin, 20_001) if i == 20_000 or times[i] > moment))
        cut = runs.same_quote_end(begin, 20_000, open_ended, moment)
        assert cut == min(end, next(i for i in range(begin, 20_001) if i == 20_000 or times[i] >= moment))
    assert max(lengths) > 20 and min(lengths) == 1  # long runs and lone quotes both seen
    assert SOLD in set(kinds)  # trades end runs too: there are some in this stretch


ACTIVE = {"take_profit": Decimal("0.02"), "wait_time": 30.0}


@pytest.mark.parametrize(
    ("spec", "quotes_in_runs"),
    [
        ({"feed_path": str(RECORDED_FEED), "strategy_params": ACTIVE}, 4000),
        # The synthetic market's quotes seldom repeat a quote's prices: few runs, same answers.
        ({"synthetic_events": 40_000, "strategy_params": {**ACTIVE, "wait_time": 5.0}}, 0),
    ],
)
def test_a_backtest_with_same_quote_runs_is_the_backtest_without_them(
    spec: dict[str, Any],
    quotes_in_runs: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    applied: list[int] = []
    original = PaperExchangeClient.apply_same_quotes

    def counted(self: PaperExchangeClient, count: int, *args: Any) -> None:
        applied.append(count)
        original(self, count, *args)

    monkeypatch.setattr(PaperExchangeClient, "apply_same_quotes", counted)
    with_runs = run_backtest(BacktestSpec(cache_dir=cache_dir, **spec))
    assert sum(applied) >= quotes_in_runs  # runs were found and applied
    monkeypatch.setattr(PaperExchangeClient, "same_quote_limits", lambda self: None)
    without = run_backtest(BacktestSpec(cache_dir=cache_dir, **spec))
    assert with_runs.metrics == without.metrics
    assert with_runs.decisions() == without.decisions()
    assert [vars(fill) for fill in with_runs.fills] == [vars(fill) for fill in without.fills]
    assert with_runs.samples == without.samples
