"""The cold read of a recording goes from a line's text straight to column indexes: no event
objects, and a Decimal only for a number text not seen before. These tests hold that lean path
to three references: the event path (MarketEvents interned by value, as the synthetic market's
go in), the reader's own general and JSON paths (every line forced through them), and the
reader as it was before the lean path (digests of what it cached, taken at commit e39f68f)."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from array import array
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtesting import market_feed
from backtesting.event_columns import ColumnBuilder
from backtesting.feed_cache import (
    BBO,
    CHUNK_EVENTS,
    CachedFeed,
    build_cached_feed,
    columns_from_events,
    load_feed,
    recorded_identity,
    write_cached_feed,
)
from backtesting.market_feed import (
    FeedStats,
    TruncatedFeed,
    UnknownFeedFormat,
    _scan_binance,
    read_recorded_feed,
)
from tests.shared_paths import RECORDED_FEED

FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
_NEVER = re.compile(r"(?!)")


def book(ns: int | str, bid: str, ask: str, bid_size: str = "1.0", ask_size: str = "2.0") -> str:
    """A bookTicker line exactly as Binance writes it (the lean path's whole-line match)."""
    return (
        f'{ns} {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":7,"s":"BTCUSDT",'
        f'"b":"{bid}","B":"{bid_size}","a":"{ask}","A":"{ask_size}","T":1,"E":1}}}}'
    )


def trade(ns: int | str, price: str, size: str, buyer_is_maker: bool = False, kind: str = "MARKET") -> str:
    """A trade line exactly as Binance writes it."""
    return (
        f'{ns} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":5,'
        f'"p":"{price}","q":"{size}","X":"{kind}","m":{"true" if buyer_is_maker else "false"}}}}}'
    )


def loose_book(ns: int, bid: str, ask: str, bid_size: str = "1.0", ask_size: str = "2.0") -> str:
    """The same fields in another layout (no ``e``/``u``): the general path's regular expression."""
    return (
        f'{ns} {{"stream":"btcusdt@bookTicker","data":{{"s":"BTCUSDT",'
        f'"b":"{bid}","B":"{bid_size}","a":"{ask}","A":"{ask_size}"}}}}'
    )


def json_book(ns: int, bid: object, ask: object, bid_size: object = "1.0", ask_size: object = "2.0") -> str:
    """Fields in another order: only the JSON path reads it (its numbers become Decimals first)."""
    data = {"A": ask_size, "a": ask, "B": bid_size, "b": bid}
    return f"{ns} " + json.dumps({"stream": "btcusdt@bookTicker", "data": data})


def hostile_lines() -> list[str]:
    """Every way a line can be read or refused, with numbers spelled several ways (``100.0`` and
    ``100.00`` are one value with two spellings; ``+100.0``, ``1.000E+2`` and Arabic-Indic digits
    spell an earlier value's text again), known numbers in lines that must still be refused, and
    new numbers in refused lines (which must not enter the value table)."""
    ns = 1_723_161_254_000_000_000
    return [
        '1723161254000000000 {"lastUpdateId":5,"E":1,"T":1,"bids":[["100.0","1"]],"asks":[["100.1","1"]]}',
        book(ns, "100.0", "100.1"),
        book(ns + 1, "100.00", "100.1", "0", "2.0"),
        trade(ns + 2, "100.1", "0.5"),
        trade(ns + 3, "100.10", "0.50", buyer_is_maker=True),
        book(ns + 4, "+100.0", "1.001E+2", " 1.0", "2.0"),
        book(ns + 5, "\u0661\u0660\u0660.0", "100.1"),  # Arabic-Indic digits: Decimal reads 100.0
        book(ns + 6, "100.1", "100.0"),  # crossed, every number known
        book(ns + 7, "0", "100.1"),  # a zero price, "0" known as a size
        trade(ns + 8, "100.1", "0"),  # a trade of size 0, "0" known
        trade(ns + 9, "0", "0.5"),  # price 0, known
        book(ns + 10, "100.0", "100.1", "-1", "2.0"),
        book(ns + 11, "555.5", "100.1"),  # crossed, 555.5 new: it must not enter the table here
        book(ns + 12, "100.0", "555.5", "777.7", "2.0"),  # ... but here, after 555.5's first use
        trade(ns + 13, "888.8", "-0.5"),  # a new price in a refused trade
        book(ns + 14, "NaN", "100.1"),
        book(ns + 15, "100.0", "sNaN"),
        book(ns + 16, "100.0", "Infinity"),
        book(ns + 17, "1e999999", "2e999999"),
        book(ns + 18, "1E-41", "1"),
        book(ns + 19, "1" * 41, "2" * 41),  # too long for the regular expressions: JSON path
        book(ns + 20, "10\\u0030.0", "100.1"),  # an escape read raw by the regular expressions
        book("9" * 400, "100.0", "100.1"),
        book(ns - 10**9, "100.0", "100.1"),  # a second earlier: clamped
        book(ns + 21, "-0", "100.1"),
        book(ns + 22, "100.0", "100.1", "-0", "0.0"),
        trade(ns + 23, "888.8", "0.25", kind="LIM\nIT"),  # newline between size and "m"
        trade(ns + 24, "100.1", "0.25", kind="LIMIT"),
        loose_book(ns + 25, "100.0", "100.2"),
        loose_book(ns + 26, "100.3", "100.2"),
        json_book(ns + 27, "100.000", "100.2"),
        json_book(ns + 28, "99.9", "99.95", "0.001", "3"),
        json_book(ns + 29, 99, "100.2"),
        json_book(ns + 30, True, "100.2"),
        json_book(ns + 31, "100.0", "-100.2"),
        json_book(ns - 2 * 10**9, "100.0", "100.2"),  # earlier: clamped on the JSON path
        f'{ns + 32} {{"stream":"btcusdt@bookTicker","data":{{"n":{{"b":"1","B":"1","a":"2","A":"1"}}}}}}',
        f'{ns + 33} {{"stream":"btcusdt@trade","data":{{"p":"1","q":"1","m":"yes"}}}}',
        f'{ns + 34} {{"stream":"btcusdt@trade","data":"oops"}}',
        f'{ns + 35} {{"stream":"btcusdt@depth@0ms","data":{{"b":[["1","2"]],"a":[]}}}}',
        f'{ns + 36} {{"stream":"btcusdt@markPrice","data":{{"p":"1"}}}}',
        f'{ns + 37} {{"stream":"btc@usdt@bookTicker","data":{{"b":"1","B":"1","a":"2","A":"1"}}}}',
        f"{ns + 38} " + "[" * 1000 + "]" * 1000,
        f"{ns + 39} not json at all",
        "\x00\xff garbage \ufffd",
        "",
        "-1000000000 {}",
        trade(ns + 40, "100.1", "0.5"),
        book(ns + 41, "99.9", "99.95", "0.001", "3"),  # numbers the JSON path met first
        loose_book(ns + 42, "100.000", "100.2", "3.0", "0.0010"),
    ]


def write_gzip(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def content_digest(feed: CachedFeed) -> str:
    """What a cache holds apart from its source's identity: columns, value table, counts.

    The table in the order the events first use its values (a quote's bid, ask, bid size, ask
    size; a trade's price, size), as caches before format 6 held it (format 6 stores it sorted
    by size): the digests taken before stay comparable."""
    renamed: dict[int, int] = {}
    columns: list[array] = [array(typecode) for typecode in ("d", "b", "I", "I", "I", "I")]
    for chunk in feed.chunks():
        times, kinds, first, second, third, fourth = chunk
        columns[0].extend(times)
        columns[1].extend(kinds)
        for row, kind in enumerate(kinds):
            used = (first[row], second[row]) + ((third[row], fourth[row]) if kind == BBO else ())
            for part, index in enumerate(used):
                columns[2 + part].append(renamed.setdefault(index, len(renamed)))
            if kind != BBO:
                columns[4].append(0)
                columns[5].append(0)
    assert len(renamed) == len(feed.values)  # every value is some event's
    order = sorted(renamed, key=renamed.__getitem__)
    digest = hashlib.sha256()
    for start in range(0, len(columns[0]), CHUNK_EVENTS):
        for column in columns:
            digest.update(column[start : start + CHUNK_EVENTS].tobytes())
    digest.update("\n".join(str(feed.values[index]) for index in order).encode())
    digest.update(json.dumps(asdict(feed.stats), sort_keys=True).encode())
    return digest.hexdigest()


def via_events(source: Path, allow_truncated: bool = False) -> CachedFeed:
    """The event path: the reader's MarketEvents, interned by value as the synthetic market's are."""
    stats = FeedStats()
    return columns_from_events(
        read_recorded_feed(source, stats, allow_truncated), stats, recorded_identity(source)
    )


def scanned(lines: list[str], monkeypatch: pytest.MonkeyPatch, paths: str) -> tuple[object, ...]:
    """Columns, value texts and counts of ``lines`` read by the Binance scanner, with only some
    of its paths: ``all``, ``general`` (the whole-line match off) or ``json`` (the regular
    expressions off: every line parsed as JSON, its numbers Decimals before they are interned)."""
    with monkeypatch.context() as patch:
        if paths in ("general", "json"):
            patch.setattr(market_feed, "_BINANCE_LINE", _NEVER)
        if paths == "json":
            patch.setattr(market_feed, "_BOOK_TICKER_FIELDS", _NEVER)
            patch.setattr(market_feed, "_TRADE_FIELDS", _NEVER)
        stats = FeedStats()
        builder = ColumnBuilder()
        for _ in _scan_binance([lines], stats, builder):
            pass
    texts = [str(value) for value in builder.values]
    assert builder.table_text == "\n".join(texts).encode()  # the table as the cache stores it
    return (
        [column.tolist() for column in builder.columns],
        texts,
        asdict(stats),
    )


@pytest.fixture(scope="module")
def hostile_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gzip(tmp_path_factory.mktemp("feeds") / "hostile.gz", hostile_lines())


def test_the_cold_cache_file_is_the_event_paths_byte_for_byte(tmp_path: Path, hostile_feed: Path) -> None:
    plain = tmp_path / "hostile.txt"
    plain.write_text("\n".join(hostile_lines()) + "\n", encoding="utf-8")
    for source in (RECORDED_FEED, hostile_feed, plain):
        cold = load_feed(source, tmp_path / "cache")
        events = via_events(source)
        assert cold.path is not None
        reference = tmp_path / "reference.pdbfeed"
        write_cached_feed(events, reference)
        assert cold.path.read_bytes() == reference.read_bytes(), source
        assert cold.stats == events.stats
    assert events.stats.malformed_lines > 20 and events.stats.clamped_timestamps == 2


#: ``content_digest`` of the caches the reader wrote at e39f68f, before the lean path.
BEFORE_LEAN_PATH = {
    "recorded": "b9ee549491f51d7cd25751be081a70dae285193afe6a0391146474874f00c2c5",
    "hostile": "950549c355af6ad18ea70ee31ed93215e2e618451f03659be4f9c9de66ba6828",
}


def test_the_cache_holds_what_the_reader_cached_before_the_lean_path(
    tmp_path: Path, hostile_feed: Path
) -> None:
    assert content_digest(load_feed(RECORDED_FEED, tmp_path)) == BEFORE_LEAN_PATH["recorded"]
    assert content_digest(load_feed(hostile_feed, tmp_path)) == BEFORE_LEAN_PATH["hostile"]


def test_the_hostile_lines_are_read_alike_by_every_path_that_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole-line match against the general path, line by line (the JSON path parses some of
    these lines differently, e.g. an escape or a nested object, by design)."""
    lines = hostile_lines()
    assert scanned(lines, monkeypatch, "all") == scanned(lines, monkeypatch, "general")
    for line in lines:
        assert scanned([line], monkeypatch, "all") == scanned([line], monkeypatch, "general"), line


_familiar = st.sampled_from(["0", "-0", "0.0", "-1", "100.0", "100.00", "1E+2", "100.1", "99.9", "0.5"])
_number_texts = st.one_of(
    _familiar,
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["NaN", "1e999999", "1E-50", "sNaN", " 1", "1_0", "+5", "100"]),
    st.text(alphabet="0123456789.-+eE", min_size=1, max_size=45),
)
_timestamps = st.one_of(
    st.integers(min_value=0, max_value=10**19 - 1),
    st.text(alphabet="0123456789-_+", min_size=1, max_size=21),
)


@st.composite
def _well_formed_feeds(draw: st.DrawFn) -> list[str]:
    """Up to 40 lines, most with a valid time a little after the last and numbers from a palette
    of a few familiar spellings, so most lines reuse numbers the lean path has seen (its checks
    then run on the table's values); the rest anything."""
    palette = st.sampled_from(draw(st.lists(_familiar, min_size=1, max_size=5)))
    clock = 1_000_000_000

    def number() -> str:
        return draw(palette if draw(st.integers(0, 9)) else _number_texts)

    def time() -> int | str:
        nonlocal clock
        if draw(st.integers(0, 9)):
            clock += draw(st.integers(-3, 10))
            return clock
        return draw(_timestamps)

    lines = []
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.booleans()):
            lines.append(book(time(), number(), number(), number(), number()))
        else:
            lines.append(trade(time(), number(), number(), draw(st.booleans())))
    return lines


@FUZZ
@given(_well_formed_feeds())
def test_fuzz_every_path_reads_well_formed_lines_alike(lines: list[str]) -> None:
    """Lines in Binance's layout whose JSON is valid: the lean path (text to index, a Decimal
    only for a new text, checks on known values), the general path and the JSON path (every
    number a Decimal, checked and interned by value) give the same columns, table and counts."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        lean = scanned(lines, monkeypatch, "all")
        assert lean == scanned(lines, monkeypatch, "general")
        assert lean == scanned(lines, monkeypatch, "json")


def refusals(path: Path, error: type[Exception]) -> list[str]:
    """The message each path (the lean cache build, the event reader) refuses ``path`` with."""
    messages = []
    for read in (lambda: build_cached_feed(path), lambda: via_events(path)):
        with pytest.raises(error) as refused:
            read()
        messages.append(str(refused.value))
    return messages


def test_a_cut_off_gzip_reads_alike_on_both_paths(tmp_path: Path) -> None:
    whole = write_gzip(
        tmp_path / "whole.gz",
        [book(1_000_000_000 + step, "100.0", f"100.{step % 9 + 1}") for step in range(4000)],
    )
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    lean, events = build_cached_feed(cut, allow_truncated=True), via_events(cut, allow_truncated=True)
    assert lean.stats.truncated and 0 < lean.count < 4000
    assert content_digest(lean) == content_digest(events)
    lean_refusal, event_refusal = refusals(cut, TruncatedFeed)
    assert lean_refusal == event_refusal


def test_an_unknown_format_is_refused_alike_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("time,bid,ask\n1,100.0,100.1\n")
    lean_refusal, event_refusal = refusals(path, UnknownFeedFormat)
    assert lean_refusal == event_refusal


def test_the_event_reader_starting_a_new_value_table_changes_no_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The paper venue's replay drops its value table when it grows (bounded memory); the events
    are the same objects' values either way."""
    reference = [repr(event) for event in read_recorded_feed(RECORDED_FEED)]
    monkeypatch.setattr(market_feed, "_DECIMAL_CACHE_LIMIT", 50)
    assert [repr(event) for event in read_recorded_feed(RECORDED_FEED)] == reference
