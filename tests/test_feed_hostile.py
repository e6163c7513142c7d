"""The recorded-feed reader against hostile lines: it never aborts, counts what it skips by kind,
keeps time monotonic, and its counts survive the compact cache and reach the backtest report."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtesting.feed_cache import load_feed
from backtesting.market_feed import (
    MALFORMED_KINDS,
    FeedStats,
    MarketEvent,
    MarketEventKind,
    _parse_lines,
    read_recorded_feed,
)

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])


def book(ns: int | str, bid: str, ask: str, bid_size: str = "1.0", ask_size: str = "2.0") -> str:
    return (
        f'{ns} {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":1,"s":"BTCUSDT",'
        f'"b":"{bid}","B":"{bid_size}","a":"{ask}","A":"{ask_size}","T":1,"E":1}}}}'
    )


def trade(ns: int | str, price: str, size: str, buyer_is_maker: bool = True) -> str:
    return (
        f'{ns} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":5,'
        f'"p":"{price}","q":"{size}","X":"MARKET","m":{"true" if buyer_is_maker else "false"}}}}}'
    )


def reordered_book(ns: int, bid: object, ask: object) -> str:
    """Fields in another order: misses the fast path, so the JSON path is exercised."""
    data = {"a": ask, "A": "1", "b": bid, "B": "1"}
    return f'{ns} {{"stream":"btcusdt@bookTicker","data":{json.dumps(data)}}}'


HOSTILE_LINES = [
    (book("9" * 400, "100.0", "100.1"), "bad_timestamp"),  # once an OverflowError
    ("1000000000 " + "[" * 1000 + "]" * 1000, "too_deep"),  # once a RecursionError
    ('1000000000 {"stream":"btcusdt@bookTicker","data":' + "[" * 1000 + "]" * 1000 + "}", "too_deep"),
    ("\x00\xff garbage \ufffd", "bad_timestamp"),
    ("1000000000 \x00\x01\x02 not json", "not_json"),
    ("-1000000000 {}", "bad_timestamp"),
    ("1_000_000_000 {}", "bad_timestamp"),
    (book(1_000_000_000, "NaN", "100.1"), "bad_number"),
    (book(1_000_000_000, "100.0", "Infinity"), "bad_number"),
    (book(1_000_000_000, "-100.0", "100.1"), "bad_price"),
    (book(1_000_000_000, "0", "100.1"), "bad_price"),
    (book(1_000_000_000, "100.0", "100.1", bid_size="-1"), "bad_size"),
    (book(1_000_000_000, "100.2", "100.1"), "bad_price"),
    (book(1_000_000_000, "1e999999", "2e999999"), "bad_number"),
    (book(1_000_000_000, "1" * 300, "2" * 300), "bad_number"),
    (trade(1_000_000_000, "sNaN", "1"), "bad_number"),
    (trade(1_000_000_000, "100.0", "0"), "bad_size"),
    (trade(1_000_000_000, "100.0", "-0.5"), "bad_size"),
    (trade(1_000_000_000, "-100.0", "0.5"), "bad_price"),
    (reordered_book(1_000_000_000, "NaN", "100.1"), "bad_number"),
    (reordered_book(1_000_000_000, True, "100.1"), "bad_fields"),
    (reordered_book(1_000_000_000, [1], "100.1"), "bad_fields"),
    (reordered_book(1_000_000_000, "100.0", "-5"), "bad_price"),
    ('1000000000 {"stream":"btcusdt@bookTicker","data":{"b":NaN,"a":1,"B":1,"A":1}}', "not_json"),
    ('1000000000 {"stream":"btcusdt@trade","data":"oops"}', "bad_fields"),
    ('1000000000 {"stream":"btcusdt@trade","data":{"p":"1","q":"1","m":"yes"}}', "bad_fields"),
]


@pytest.mark.parametrize(("line", "kind"), HOSTILE_LINES, ids=[kind for _, kind in HOSTILE_LINES])
def test_each_hostile_line_is_skipped_and_counted_by_kind(line: str, kind: str) -> None:
    stats = FeedStats()
    lines = [book(1_000_000_000, "100.0", "100.1"), line, trade(2_000_000_000, "100.0", "0.5")]
    events = list(_parse_lines(lines, stats))
    assert [event.kind for event in events] == [MarketEventKind.BBO, MarketEventKind.TRADE]
    assert stats.malformed_by_kind == {kind: 1}
    assert stats.malformed_line_numbers == [2]


def test_a_whole_hostile_file_replays_to_the_end(tmp_path: Path) -> None:
    lines = []
    for index, (line, _) in enumerate(HOSTILE_LINES):
        lines += [book(1_000_000_000 + index, "100.0", "100.1"), line]
    path = tmp_path / "hostile.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    stats = FeedStats()
    events = list(read_recorded_feed(path, stats))
    assert len(events) == len(HOSTILE_LINES)
    assert stats.malformed_lines == len(HOSTILE_LINES)
    expected: dict[str, int] = {}
    for _, kind in HOSTILE_LINES:
        expected[kind] = expected.get(kind, 0) + 1
    assert stats.malformed_by_kind == expected


def test_time_never_runs_backwards_and_clamps_are_counted() -> None:
    lines = [
        book(3_000_000_000, "100.0", "100.1"),
        trade(1_000_000_000, "100.0", "0.1"),  # earlier than the last event: clamped to 3 s
        book(9_000_000_000_000_000_000, "NaN", "1"),  # skipped: its wild time must not count
        book(2_000_000_000, "100.0", "100.2"),  # clamped to 3 s
        reordered_book(2_500_000_000, "100.0", "100.3"),  # JSON path, clamped to 3 s
        book(5_000_000_000, "100.0", "100.1"),
    ]
    stats = FeedStats()
    events = list(_parse_lines(lines, stats))
    assert [event.timestamp for event in events] == [3.0, 3.0, 3.0, 3.0, 5.0]
    assert [event.best_ask for event in events if event.kind is MarketEventKind.BBO] == [
        Decimal("100.1"),
        Decimal("100.2"),
        Decimal("100.3"),
        Decimal("100.1"),
    ]
    assert stats.clamped_timestamps == 3
    assert stats.malformed_by_kind == {"bad_number": 1}


def hostile_feed(tmp_path: Path) -> Path:
    lines = [
        book(1_000_000_000, "100.0", "100.1"),
        book("9" * 400, "100.0", "100.1"),
        trade(2_000_000_000, "100.1", "0.5", buyer_is_maker=False),
        book(1_500_000_000, "100.0", "100.2"),
        "1000000000 " + "[" * 1000 + "]" * 1000,
        book(3_000_000_000, "NaN", "100.1"),
    ]
    lines += [book(3_000_000_000 + step * 100_000_000, "100.0", "100.1") for step in range(50)]
    path = tmp_path / "hostile-feed.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def test_counts_survive_the_compact_cache_cold_and_warm(tmp_path: Path) -> None:
    source = hostile_feed(tmp_path)
    direct_stats = FeedStats()
    direct = list(read_recorded_feed(source, direct_stats))
    cold = load_feed(source, tmp_path / "cache")
    warm = load_feed(source, tmp_path / "cache")
    assert cold.path is not None and cold.path.is_file()
    for feed in (cold, warm):
        assert list(feed) == direct
        assert feed.stats == direct_stats
    assert warm.stats.malformed_by_kind == {"bad_timestamp": 1, "too_deep": 1, "bad_number": 1}
    assert warm.stats.clamped_timestamps == 1


def test_counts_reach_result_json_and_the_console_table(tmp_path: Path) -> None:
    source = hostile_feed(tmp_path)
    for run in ("cold", "warm"):
        out = tmp_path / run
        completed = subprocess.run(
            [
                sys.executable,
                str(ROOT / "backtest.py"),
                "--feed",
                str(source),
                "--take-profit",
                "0.02",
                "--no-plot",
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )
        assert completed.returncode == 0, completed.stderr
        feed_stats = json.loads((out / "result.json").read_text())["data"]["feed_stats"]
        assert feed_stats["malformed_lines"] == 3
        assert feed_stats["malformed_by_kind"] == {"bad_number": 1, "bad_timestamp": 1, "too_deep": 1}
        assert feed_stats["clamped_timestamps"] == 1
        assert "feed lines skipped as malformed" in completed.stdout
        assert "bad_number 1, bad_timestamp 1, too_deep 1" in completed.stdout


# ---------------------------------------------------------------------------------------------
# Property-based fuzzing of the line parser
# ---------------------------------------------------------------------------------------------

_number_texts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["NaN", "-0", "0", "0.0", "1e999999", "-1", "1E-50", "sNaN", "", " 1", "1_0", "0x10"]),
    st.text(alphabet="0123456789.-+eE", min_size=1, max_size=60),
)
_timestamps = st.one_of(
    st.integers(min_value=0, max_value=10**19 - 1).map(str),
    st.integers().map(str),
    st.text(alphabet="0123456789-_+ ", min_size=1, max_size=30),
    st.just("9" * 400),
)


@st.composite
def _feed_lines(draw: st.DrawFn) -> str:
    ns = draw(_timestamps)
    layout = draw(st.sampled_from(["book", "trade", "reordered", "depth", "deep", "text"]))
    if layout == "book":
        return book(ns, draw(_number_texts), draw(_number_texts), draw(_number_texts), draw(_number_texts))
    if layout == "trade":
        return trade(ns, draw(_number_texts), draw(_number_texts), draw(st.booleans()))
    if layout == "reordered":
        value = st.one_of(_number_texts, st.integers(), st.booleans(), st.none(), st.lists(st.integers()))
        return f"{ns} " + json.dumps(
            {
                "stream": "x@bookTicker",
                "data": {"a": draw(value), "A": draw(value), "b": draw(value), "B": draw(value)},
            }
        )
    if layout == "depth":
        return f'{ns} {{"stream":"btcusdt@depth@0ms","data":{{}}}}'
    if layout == "deep":
        depth = draw(st.integers(min_value=1, max_value=3000))
        return f"{ns} " + "[" * depth + "]" * draw(st.integers(0, depth))
    return draw(st.text(max_size=200))


def _valid(event: MarketEvent) -> bool:
    numbers = (
        [event.best_bid, event.best_ask, event.bid_size, event.ask_size]
        if event.kind is MarketEventKind.BBO
        else [event.price, event.size]
    )
    if not all(isinstance(n, Decimal) and n.is_finite() for n in numbers) or not math.isfinite(
        event.timestamp
    ):
        return False
    if event.kind is MarketEventKind.BBO:
        assert event.best_bid is not None and event.best_ask is not None
        assert event.bid_size is not None and event.ask_size is not None
        return 0 < event.best_bid <= event.best_ask and event.bid_size >= 0 and event.ask_size >= 0
    assert event.price is not None and event.size is not None
    return event.price > 0 and event.size > 0


@FUZZ
@given(st.lists(_feed_lines(), max_size=30))
def test_fuzz_the_line_parser_never_crashes_and_emits_only_valid_numbers(lines: list[str]) -> None:
    stats = FeedStats()
    events = list(_parse_lines(lines, stats))
    assert all(_valid(event) for event in events)
    times = [event.timestamp for event in events]
    assert times == sorted(times)
    accounted = (
        stats.events_yielded
        + stats.depth_lines
        + stats.snapshot_lines
        + stats.other_lines
        + stats.malformed_lines
    )
    assert accounted == stats.lines_read == len(lines)
    assert set(stats.malformed_by_kind) <= set(MALFORMED_KINDS)
    assert sum(stats.malformed_by_kind.values()) == stats.malformed_lines
