"""The compact feed cache: identical events back, streamed in chunks, rebuilt when stale."""

from __future__ import annotations

import collections
import gzip
import itertools
import math
import os
import random
import re
from array import array
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting import binance_scan, feed_cache
from backtesting.event_columns import BBO, ColumnBuilder
from backtesting.feed_cache import cache_path_for, load_feed, load_synthetic, read_cached_feed
from backtesting.market_feed import (
    FeedStats,
    MarketEvent,
    SyntheticMarket,
    read_recorded_columns,
    read_recorded_feed,
)
from exchanges.base import OrderSide
from tests.shared_paths import RECORDED_FEED

BOOK = (
    '{ns} {{"stream":"btcusdt@bookTicker","data":{{"u":1,"s":"BTCUSDT",'
    '"b":"{bid}","B":"1.000","a":"{ask}","A":"2.50","T":1,"E":1}}}}'
)
TRADE = (
    '{ns} {{"stream":"btcusdt@trade","data":{{"t":5,"p":"{price}","q":"0.010","X":"MARKET","m":{maker}}}}}'
)


def write_feed(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def small_feed(tmp_path: Path) -> Path:
    lines = [
        BOOK.format(ns=1_723_161_254_000_000_001, bid="100.0", ask="100.1"),
        TRADE.format(ns=1_723_161_254_000_000_001, price="100.10", maker="false"),
        "this line is not an event",
        BOOK.format(ns=1_723_161_254_123_456_789, bid="100.00", ask="100.2"),
        TRADE.format(ns=1_723_161_255_999_999_999, price="100.0", maker="true"),
    ]
    return write_feed(tmp_path / "small.gz", lines)


def same_events(left: list[MarketEvent], right: list[MarketEvent]) -> bool:
    """Equal, and with the same digits (Decimal('1.0') == Decimal('1.00'), but not in a report)."""
    return left == right and all(repr(a) == repr(b) for a, b in zip(left, right, strict=True))


def test_round_trip_gives_identical_events_and_stats(tmp_path: Path) -> None:
    source = small_feed(tmp_path)
    stats = FeedStats()
    direct = list(read_recorded_feed(source, stats))
    first = load_feed(source, tmp_path / "cache")
    assert first.path is not None and first.path == cache_path_for(source, tmp_path / "cache")
    second = load_feed(source, tmp_path / "cache")
    for feed in (first, second):
        assert same_events(list(feed), direct)
        assert feed.stats == stats
        assert feed.stats.malformed_lines == 1
    assert [event.aggressor_side for event in direct if event.price is not None] == [
        OrderSide.BUY,
        OrderSide.SELL,
    ]
    assert second.time_at(3) == direct[3].timestamp


def test_recorded_feed_round_trip_in_small_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_cache, "CHUNK_EVENTS", 997)
    direct = list(itertools.islice(read_recorded_feed(RECORDED_FEED), 5000))
    cached = load_feed(RECORDED_FEED, tmp_path)
    assert len(cached) == 87_402
    assert same_events(list(cached.events(0, 5000)), direct)
    assert same_events(list(cached.events(1234, 3456)), direct[1234:3456])
    assert same_events(list(read_cached_feed(cached.path, in_memory=True).events(0, 5000)), direct)


def test_a_changed_or_corrupt_source_is_rebuilt(tmp_path: Path) -> None:
    source = small_feed(tmp_path)
    cache_dir = tmp_path / "cache"
    before = load_feed(source, cache_dir)
    assert before.path is not None
    before.path.write_bytes(before.path.read_bytes()[:-3])  # truncated
    with pytest.raises(ValueError):
        read_cached_feed(before.path)
    assert len(load_feed(source, cache_dir)) == 4  # rebuilt
    write_feed(source, [BOOK.format(ns=2_000_000_000_000_000_000, bid="1.0", ask="1.1")])
    after = load_feed(source, cache_dir)
    assert len(after) == 1 and after.path != before.path


def test_a_cache_files_table_and_facts_are_made_once_in_a_process(tmp_path: Path) -> None:
    """A sweep's runs on one feed share its value table and what was derived from the data."""
    source = small_feed(tmp_path)
    first = load_feed(source, tmp_path / "cache")  # written, then read
    assert first.path is not None
    second = load_feed(source, tmp_path / "cache")
    third = read_cached_feed(first.path)
    assert second.values is first.values and third.values is first.values
    calls: list[int] = []

    def count_events(feed: feed_cache.CachedFeed) -> int:
        calls.append(len(feed))
        return len(feed)

    assert second.derived("events", count_events) == 4
    assert third.derived("events", count_events) == 4
    assert calls == [4]


def test_another_or_a_rewritten_cache_file_is_read_afresh(tmp_path: Path) -> None:
    def source(folder: str, bid: str) -> Path:
        (tmp_path / folder).mkdir()
        line = BOOK.format(ns=2_000_000_000_000_000_000, bid=bid, ask="5.5")
        return write_feed(tmp_path / folder / "feed.gz", [line, line])

    feed = load_feed(source("a", "5.0"), tmp_path / "cache")
    other = load_feed(source("b", "4.0"), tmp_path / "cache")
    assert feed.path is not None and other.path is not None
    assert other.values != feed.values
    again = read_cached_feed(feed.path)
    assert again.values == feed.values and again.values is not feed.values
    assert again.derived("first bid", lambda data: next(iter(data)).best_bid) == Decimal("5.0")
    # A cache as long as the one read last, renamed into place over it (as the writer does).
    assert other.path.stat().st_size == feed.path.stat().st_size
    replacement = feed.path.with_name("replacement")
    replacement.write_bytes(other.path.read_bytes())
    os.replace(replacement, feed.path)
    replaced = read_cached_feed(feed.path)
    assert replaced.values == other.values
    assert replaced.derived("first bid", lambda data: next(iter(data)).best_bid) == Decimal("4.0")


def test_synthetic_cache_replays_the_market(tmp_path: Path) -> None:
    market = SyntheticMarket(seed=11, start_time=1_000.0)
    params = {"seed": 11, "start_time": 1_000.0}
    direct = list(itertools.islice(iter(market), 3000))
    cached = load_synthetic(params, iter(market), 3000, tmp_path)
    again = load_synthetic(params, iter(()), 3000, tmp_path)  # read back, nothing generated
    assert same_events(list(cached), direct)
    assert same_events(list(again), direct)
    assert len(load_synthetic({**params, "seed": 12}, iter(SyntheticMarket(seed=12)), 10, tmp_path)) == 10


def reference_synthetic(seed: int, count: int, **kwargs: object) -> list[MarketEvent]:
    """The synthetic market written the plain way (random.gauss, random.randint)."""
    market = SyntheticMarket(seed=seed, **kwargs)  # type: ignore[arg-type]
    rng = random.Random(seed)
    tick, step = market.tick_size, market.size_step
    log_sigma = float(market.volatility_bps) / 10_000
    mean_spread = float(market.spread_ticks)
    spread_level, mid_ticks = mean_spread, float(market.start_price / tick)
    events: list[MarketEvent] = []
    index = 0
    while len(events) < count:
        timestamp = market.start_time + index * market.step_seconds
        index += 1
        if index > 1:
            mid_ticks *= math.exp(rng.gauss(0.0, log_sigma))
            spread_level += 0.3 * (mean_spread - spread_level) + rng.gauss(0.0, 0.5)
        spread = max(1, round(spread_level))
        bid_ticks = max(1, round(mid_ticks - spread / 2))
        bid, ask = Decimal(bid_ticks) * tick, Decimal(bid_ticks + spread) * tick
        bid_size = Decimal(rng.randint(1, market.max_quote_steps)) * step
        ask_size = Decimal(rng.randint(1, market.max_quote_steps)) * step
        events.append(MarketEvent.bbo(timestamp, bid, ask, bid_size, ask_size))
        if rng.random() < market.trade_probability:
            size = Decimal(rng.randint(1, market.max_trade_steps)) * step
            if rng.random() < 0.5:
                events.append(MarketEvent.trade(timestamp, ask, size, OrderSide.BUY))
            else:
                events.append(MarketEvent.trade(timestamp, bid, size, OrderSide.SELL))
    return events[:count]


@pytest.mark.parametrize(
    "seed, kwargs",
    [(7, {}), (3, {"volatility_bps": Decimal(3), "spread_ticks": 4, "max_quote_steps": 1000})],
)
def test_fast_synthetic_draws_match_the_plain_random_module(seed: int, kwargs: dict[str, object]) -> None:
    """The generator inlines gauss and randint for speed; the stream must stay the same."""
    fast = list(itertools.islice(iter(SyntheticMarket(seed=seed, **kwargs)), 20_000))  # type: ignore[arg-type]
    assert same_events(fast, reference_synthetic(seed, 20_000, **kwargs))


def columns_of(feed: feed_cache.CachedFeed) -> tuple[list[list[object]], list[str]]:
    """Every column of ``feed`` whole, and its value table as texts (digits included)."""
    merged: list[list[object]] = [[] for _ in range(6)]
    for chunk in feed.chunks():
        for target, part in zip(merged, chunk, strict=True):
            target.extend(part)
    return merged, [str(value) for value in feed.values]


@pytest.mark.parametrize(("block", "held_blocks"), [(997, 0), (4096, 0), (997, 1000)])
def test_the_cache_is_written_a_block_at_a_time_with_the_columns_built_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, held_blocks: int
) -> None:
    """The first run streams the source into the file (memory stays flat at any length) or,
    when the source fits in ``_HELD_BLOCKS`` blocks, holds it and writes it at the end: either
    way no block written holds more than CHUNK_EVENTS events, and the file holds exactly the
    columns and value table that reading the source into memory gives, for the shared feed and
    for a hostile one, with the same counts. A held source is handed back in memory, the same
    rows as the file."""
    monkeypatch.setattr(feed_cache, "CHUNK_EVENTS", block)
    monkeypatch.setattr(feed_cache, "_HELD_BLOCKS", held_blocks)
    written: list[int] = []
    original = feed_cache._CacheWriter.write_block

    def spy(self: feed_cache._CacheWriter, columns: feed_cache.Columns) -> None:
        written.append(len(columns[0]))
        original(self, columns)

    monkeypatch.setattr(feed_cache._CacheWriter, "write_block", spy)
    hostile = write_feed(
        tmp_path / "hostile.gz",
        [
            BOOK.format(ns=3_000_000_000, bid="100.0", ask="100.1"),
            BOOK.format(ns="9" * 40, bid="100.0", ask="100.1"),
            TRADE.format(ns=1_000_000_000, price="100.10", maker="true"),
            BOOK.format(ns=4_000_000_000, bid="NaN", ask="100.1"),
            "",
            '4000000000 {"stream":"btcusdt@depth@0ms","data":{"b":[["1","2"]],"a":[]}}',
        ]
        + [
            BOOK.format(ns=5_000_000_000 + step, bid=f"{100 + step % 7}.0", ask="200.00")
            for step in range(3000)
        ],
    )
    for source in (RECORDED_FEED, hostile):
        written.clear()
        in_memory = feed_cache.build_cached_feed(source)
        cached = load_feed(source, tmp_path / "cache")
        assert cached.path is not None and (cached.columns is None) == (held_blocks == 0)
        assert written and max(written) <= block and sum(written) == cached.count == in_memory.count
        assert all(size == block for size in written[:-1])
        assert columns_of(cached) == columns_of(in_memory)
        assert columns_of(read_cached_feed(cached.path)) == columns_of(in_memory)
        assert cached.stats == in_memory.stats
        assert list(cached.events(block - 3, block + 5)) == list(in_memory.events(block - 3, block + 5))
        last = min(block + 1, cached.count - 1)
        assert cached.time_at(last) == in_memory.time_at(last)
    assert cached.stats.clamped_timestamps == 1 and cached.stats.malformed_lines == 2


def test_a_synthetic_cache_is_streamed_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_cache, "CHUNK_EVENTS", 500)
    params = {"seed": 5}
    # 1500: a whole number of blocks, the end found by an empty last read.
    for count in (1500, 1234):
        cached = load_synthetic(params, iter(SyntheticMarket(seed=5)), count, tmp_path)
        direct = list(itertools.islice(iter(SyntheticMarket(seed=5)), count))
        assert cached.path is not None and same_events(list(cached), direct)
        assert same_events(list(cached.events(499, 1001)), direct[499:1001])


def is_sorted(values: list[Decimal]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("scanner", ["compiled", "python"])
def test_every_feed_holds_its_values_sorted_with_its_events_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: str
) -> None:
    """The value table of every feed this module makes is sorted by size (a backtest compares
    indexes as prices): written and streamed from a cache (blocks renamed after they were
    written), read back, built in memory, synthetic. Equal values spelled apart (``100.0``,
    ``100.00``, ``100``) stay apart, and every event keeps its digits. ``python``: without the
    compiled library (the renaming's Python loop, the Python reader)."""
    if scanner == "python":
        monkeypatch.setenv("PERP_DEX_BOT_FEED_SCANNER", "python")
    monkeypatch.setattr(feed_cache, "CHUNK_EVENTS", 7)  # many blocks to rename
    prices = ["100.0", "100.00", "100", "99.5", "101.25", "100.5", "98", "100.50"]
    lines = []
    for step in range(60):
        bid = prices[step * 5 % len(prices)]
        ask = f"{Decimal(bid) + Decimal('0.5') + step % 3}"
        lines.append(BOOK.format(ns=1_000_000_000 + step, bid=bid, ask=ask))
        if step % 4 == 0:
            lines.append(
                TRADE.format(ns=1_000_000_000 + step, price=prices[step % len(prices)], maker="true")
            )
    source = write_feed(tmp_path / "ties.gz", lines)
    direct = list(read_recorded_feed(source))
    market = SyntheticMarket(seed=5, start_time=1_000.0)
    synthetic = list(itertools.islice(iter(market), 500))
    params = {"seed": 5, "start_time": 1_000.0}
    feeds = {
        "streamed": (load_feed(source, tmp_path / "cache"), direct),
        "read back": (load_feed(source, tmp_path / "cache"), direct),
        "in memory": (load_feed(source, use_cache=False), direct),
        "whole file": (read_cached_feed(cache_path_for(source, tmp_path / "cache"), in_memory=True), direct),
        "synthetic": (load_synthetic(params, iter(market), 500, tmp_path / "cache"), synthetic),
        "synthetic read back": (load_synthetic(params, iter(()), 500, tmp_path / "cache"), synthetic),
        "synthetic in memory": (load_synthetic(params, iter(market), 500, use_cache=False), synthetic),
    }
    for name, (feed, expected) in feeds.items():
        assert is_sorted(feed.values), name
        assert same_events(list(feed), expected), name
    texts = [str(value) for value in feeds["read back"][0].values]
    assert {"100.0", "100.00", "100"} <= set(texts) and len(texts) == len(set(texts))
    # The synthetic market's table was not sorted as it came: something was renamed.
    assert not is_sorted(
        list(dict.fromkeys(v for e in synthetic for v in (e.best_bid, e.price) if v is not None))
    )


@settings(deadline=None, max_examples=200)
@given(
    kinds=st.lists(st.sampled_from([0, 1, 2]), max_size=50),
    table=st.integers(1, 30),
    data=st.data(),
)
def test_fuzz_the_compiled_renaming_is_the_python_one(
    kinds: list[int], table: int, data: st.DataObject
) -> None:
    if binance_scan.load() is None:
        pytest.skip("no C compiler")
    mapping = array("I", data.draw(st.permutations(range(table))))
    index = st.integers(0, table - 1)
    columns = [array("d", [0.0] * len(kinds)), array("b", kinds)]
    for _ in range(4):
        columns.append(array("I", [data.draw(index) for _ in kinds]))
    for row, kind in enumerate(kinds):
        if kind != BBO:
            columns[4][row] = columns[5][row] = 0
    compiled = [array(column.typecode, column) for column in columns]
    python = [array(column.typecode, column) for column in columns]
    feed_cache.remap_columns(tuple(compiled), mapping)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERP_DEX_BOT_FEED_SCANNER", "python")
        feed_cache.remap_columns(tuple(python), mapping)  # type: ignore[arg-type]
    assert compiled == python
    for row, kind in enumerate(kinds):
        for part in (2, 3) if kind != BBO else (2, 3, 4, 5):
            assert compiled[part][row] == mapping[columns[part][row]]
        if kind != BBO:
            assert compiled[4][row] == compiled[5][row] == 0


@pytest.mark.parametrize("scanner", ["compiled", "python"])
def test_the_sampled_prices_are_the_events_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: str
) -> None:
    """sample_prices: the bids, asks and trade prices of the first events (sizes left out), each
    once and in the table's order (by size), marked in C or collected in Python; a damaged index
    is refused either way."""
    if scanner == "python":
        monkeypatch.setenv("PERP_DEX_BOT_FEED_SCANNER", "python")
    feed = load_feed(RECORDED_FEED, tmp_path)
    for count in (1, 5000, feed_cache.CHUNK_EVENTS + 10):
        expected = {
            price
            for event in feed.events(0, count)
            for price in (event.best_bid, event.best_ask, event.price)
            if price is not None
        }
        assert feed_cache.sample_prices(feed, count) == sorted(expected)  # the feed's values differ
    memory = feed_cache.build_cached_feed(small_feed(tmp_path))
    assert memory.columns is not None
    memory.columns[2][1] = len(memory.values)
    with pytest.raises(IndexError):
        feed_cache.sample_prices(memory)


#: Values that are easy to order wrongly: equal values spelled apart, and values apart only
#: beyond a float's 17 digits.
_CLOSE_VALUES = st.sampled_from(
    [
        Decimal("1"),
        Decimal("1.0"),
        Decimal("1.00"),
        Decimal("1.00000000000000000001"),
        Decimal("0.99999999999999999999"),
        Decimal("61652.80"),
        Decimal("61652.8"),
        Decimal("61652.800000000000000001"),
        Decimal("1E+400"),
        Decimal("2E+400"),
        # At the compiled sort's limits: 18 decimals, 18 and 20 whole digits (2**64 + 1).
        Decimal("0.100000000000000000"),
        Decimal("0.2"),
        Decimal("999999999999999999"),
        Decimal("18446744073709551617"),
        Decimal("2"),
    ]
)


#: Plain decimals as the compiled sort reads them, up to its 18 digits either side of the point
#: and just past them (those are left to Python), leading and trailing zeros included.
_PLAIN_VALUES = st.builds(
    lambda whole, decimals: Decimal(f"{whole}.{decimals}" if decimals else whole),
    st.from_regex(r"0{0,2}[0-9]{1,20}", fullmatch=True),
    st.from_regex(r"[0-9]{0,20}", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(_CLOSE_VALUES, _PLAIN_VALUES, st.decimals(allow_nan=False, allow_infinity=False)),
        max_size=40,
    )
)
def test_the_sorted_table_is_a_stable_sort_by_value(values: list[Decimal]) -> None:
    """The table, and the renaming of indexes, of a stable sort by value: equal values spelled
    apart keep their order; the compiled sort's and Python's alike, and the compiled sort's table
    text is the sorted values' texts. A table handed over as its text alone (the Decimals not
    made yet) gives the same sort, its Decimals made from the texts in the sorted order."""
    expected = sorted(range(len(values)), key=values.__getitem__)
    text = "\n".join(map(str, values)).encode()
    for scanner, made in itertools.product(("compiled", "python"), (True, False)):
        with pytest.MonkeyPatch.context() as patch:
            if scanner == "python":
                patch.setenv("PERP_DEX_BOT_FEED_SCANNER", "python")
            table = feed_cache.sorted_table(list(values) if made else None, None if made else text)
        assert [str(value) for value in table.values] == [str(values[old]) for old in expected]
        assert all(isinstance(value, Decimal) for value in table.values)
        if table.text is not None:
            assert table.text == "\n".join(map(str, table.values)).encode()
        if expected == list(range(len(values))):
            assert table.mapping is None
        else:
            assert table.mapping is not None
            assert [table.mapping[old] for old in expected] == list(range(len(values)))


_LIMIT_VALUES = st.sampled_from(
    [
        Decimal("0.1000000000000000000"),
        Decimal("0.2"),
        Decimal("18446744073709551617"),
        Decimal("2"),
        Decimal("1E+2"),
        Decimal("2.5E-7"),
        # Just inside and just outside 64 bits with two decimals (2**64 - 1 is the first).
        Decimal("184467440737095516.15"),
        Decimal("184467440737095516.16"),
        # 2**56: only the radix sort's last byte puts it after 2.
        Decimal("72057594037927936"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PLAIN_VALUES, _LIMIT_VALUES), max_size=40))
def test_the_compiled_sort_reads_plain_decimals_or_leaves_them_to_python(values: list[Decimal]) -> None:
    """Tables of plain decimals (and a few exponents): those it reads, and whose values fit 64
    bits in units of the table's finest decimal, are sorted in C (a text is made), the rest in
    Python, and both give Python's stable sort."""
    expected = sorted(range(len(values)), key=values.__getitem__)
    table = feed_cache.sorted_table(list(values))
    assert [str(value) for value in table.values] == [str(values[old]) for old in expected]
    if table.mapping is not None:
        assert [table.mapping[old] for old in expected] == list(range(len(values)))
    texts = [str(value) for value in values]
    readable = all(re.fullmatch(r"0*[0-9]{0,18}(\.[0-9]{0,18})?", text) for text in texts)
    finest = max((len(text.partition(".")[2]) for text in texts), default=0)
    fits = readable and all(value.scaleb(finest) < 2**64 for value in values)
    assert (table.text is not None) == (bool(values) and fits)


def test_the_compiled_sort_takes_a_recordings_table() -> None:
    """The shared recording's table, in the order its lines first show each value, is sorted in
    C (its text made on the way) with Python's result."""
    builder = ColumnBuilder()
    collections.deque(read_recorded_columns(RECORDED_FEED, FeedStats(), False, builder), maxlen=0)
    # The scanner's texts: almost no Decimal made while reading (a few lines go to the Python
    # reader, which makes its new values as it reads them).
    assert builder.unmade_count > 0.99 * builder.table_size
    unmade = feed_cache.sorted_table(None, builder.table_text)
    values = builder.values
    assert builder.unmade_count == 0
    compiled = feed_cache.sorted_table(list(values))
    assert compiled.text is not None and compiled.mapping is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERP_DEX_BOT_FEED_SCANNER", "python")
        python = feed_cache.sorted_table(list(values))
    assert python.text is None
    assert list(map(str, compiled.values)) == list(map(str, python.values))
    assert compiled.mapping == python.mapping
    assert compiled.text == "\n".join(map(str, python.values)).encode()
    assert list(map(str, unmade.values)) == list(map(str, compiled.values))
    assert unmade.mapping == compiled.mapping and unmade.text == compiled.text


#: Texts that are their Decimal's str, equal values among them spelled apart (1.5 and 1.50).
_TABLE_TEXTS = ["1.5", "1.50", "2", "0.1", "10.25", "7", "7.0", "0.001", "99999.9", "3.14"]

_BUILDER_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.lists(st.sampled_from(_TABLE_TEXTS), max_size=4)),
        st.tuples(st.just("bbo"), st.lists(st.sampled_from(_TABLE_TEXTS), min_size=4, max_size=4)),
        st.tuples(st.just("read"), st.just([])),
        st.tuples(st.just("sort"), st.just([])),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(_BUILDER_STEPS)
def test_a_builders_table_is_one_entry_per_text_whenever_its_decimals_are_made(
    steps: list[tuple[str, list[str]]],
) -> None:
    """The scanner's batches of new texts enter the table with their Decimals not made yet; the
    Decimal path, a read of the table and a sort may come between them in any order. At every
    step the table is one entry per distinct text in first-use order (never a placeholder in
    sight), the indexes handed out name those texts, and sorting the table unmade gives what
    sorting it made gives."""
    builder = ColumnBuilder()
    model: list[str] = []
    for step, texts in steps:
        if step == "batch":
            new = list(dict.fromkeys(text for text in texts if text not in model))
            indexes = builder.intern_texts(new, True, True)
            assert indexes == list(range(len(model), len(model) + len(new)))
            model.extend(new)
        elif step == "bbo":
            builder.bbo(0.0, *map(Decimal, texts))
            for text in texts:
                if text not in model:
                    model.append(text)
            row = [builder.columns[column][-1] for column in range(2, 6)]
            assert row == [model.index(text) for text in texts]
        elif step == "read":
            assert [str(value) for value in builder.values] == model
            assert builder.unmade_count == 0
        else:
            unmade = builder.unmade_count
            order = sorted(range(len(model)), key=lambda index: Decimal(model[index]))
            for table in (
                feed_cache.sorted_table(None, builder.table_text),
                feed_cache._sorted_builder_table(builder),
            ):
                assert [str(value) for value in table.values] == [model[index] for index in order]
            if 2 * unmade >= len(model):
                assert builder.unmade_count == unmade  # the sort made none of the builder's Decimals
        assert builder.table_size == len(model)
        assert builder.table_text == "\n".join(model).encode()
    assert [str(value) for value in builder.values] == model
