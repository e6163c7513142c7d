"""The recorded-feed reader and the synthetic market: counts, parsing, robustness, determinism."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from backtesting.market_feed import (
    FeedStats,
    MarketEvent,
    MarketEventKind,
    SyntheticMarket,
    read_recorded_feed,
)
from exchanges.base import OrderSide
from tests.shared_paths import RECORDED_FEED

BOOK_LINE = (
    '{ns} {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":1,"s":"BTCUSDT",'
    '"b":"{bid}","B":"{bid_size}","a":"{ask}","A":"{ask_size}","T":1,"E":1}}}}'
)
TRADE_LINE = (
    '{ns} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":5,'
    '"p":"{price}","q":"{size}","X":"MARKET","m":{maker}}}}}'
)
DEPTH_LINE = (
    '{ns} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT",'
    '"U":1,"u":2,"pu":0,"b":[["100.0","1.0"]],"a":[]}}}}'
)
SNAPSHOT_LINE = '{ns} {{"lastUpdateId":1,"E":1,"T":1,"bids":[["100.0","1.0"]],"asks":[["100.1","2.0"]]}}'


def book_line(ns: int, bid: str, ask: str, bid_size: str = "1.000", ask_size: str = "2.000") -> str:
    return BOOK_LINE.format(ns=ns, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size)


def trade_line(ns: int, price: str, size: str, buyer_is_maker: bool) -> str:
    return TRADE_LINE.format(ns=ns, price=price, size=size, maker="true" if buyer_is_maker else "false")


def write_feed(path: Path, lines: list[str], compress: bool) -> Path:
    text = "".join(line + "\n" for line in lines)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# MarketEvent
# ---------------------------------------------------------------------------------------------


def test_fast_constructors_build_the_same_frozen_events() -> None:
    bbo = MarketEvent.bbo(1.5, Decimal("100.0"), Decimal("100.1"), Decimal("1"), Decimal("2"))
    assert bbo == MarketEvent(
        timestamp=1.5,
        kind=MarketEventKind.BBO,
        best_bid=Decimal("100.0"),
        best_ask=Decimal("100.1"),
        bid_size=Decimal("1"),
        ask_size=Decimal("2"),
    )
    trade = MarketEvent.trade(2.0, Decimal("100.1"), Decimal("0.5"), OrderSide.BUY)
    assert trade == MarketEvent(
        timestamp=2.0,
        kind=MarketEventKind.TRADE,
        price=Decimal("100.1"),
        size=Decimal("0.5"),
        aggressor_side=OrderSide.BUY,
    )
    assert trade.best_bid is None and bbo.price is None
    with pytest.raises(AttributeError):
        bbo.best_bid = Decimal(1)  # type: ignore[misc]
    assert not hasattr(bbo, "__dict__")


# ---------------------------------------------------------------------------------------------
# The real recording
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> tuple[list[MarketEvent], FeedStats]:
    if not RECORDED_FEED.is_file():
        pytest.skip(f"recorded feed {RECORDED_FEED} is not available")
    stats = FeedStats()
    return list(read_recorded_feed(RECORDED_FEED, stats)), stats


def test_recorded_feed_counts_match_the_readme(recorded: tuple[list[MarketEvent], FeedStats]) -> None:
    events, stats = recorded
    bbo_count = sum(1 for event in events if event.kind is MarketEventKind.BBO)
    trade_count = sum(1 for event in events if event.kind is MarketEventKind.TRADE)
    assert (bbo_count, trade_count) == (66_089, 21_313)
    assert stats.bbo_events == 66_089
    assert stats.trade_events == 21_313
    assert stats.events_yielded == len(events) == 87_402
    assert stats.depth_lines == 6_551
    assert stats.snapshot_lines == 1
    assert stats.malformed_lines == 0
    assert stats.lines_read == 66_089 + 21_313 + 6_551 + 1
    assert stats.skipped_lines == 6_552


def test_recorded_feed_values_and_aggressor_side(recorded: tuple[list[MarketEvent], FeedStats]) -> None:
    events, _ = recorded
    first = events[0]
    assert first.kind is MarketEventKind.BBO
    assert first.timestamp == pytest.approx(1723161255.088169167)
    assert (first.best_bid, first.best_ask) == (Decimal("61800.20"), Decimal("61800.30"))
    assert (first.bid_size, first.ask_size) == (Decimal("2.507"), Decimal("2.510"))
    first_trade = next(event for event in events if event.kind is MarketEventKind.TRADE)
    # "m": false -> the buyer took liquidity
    assert (first_trade.price, first_trade.size, first_trade.aggressor_side) == (
        Decimal("61800.30"),
        Decimal("0.006"),
        OrderSide.BUY,
    )
    sells = sum(1 for event in events if event.aggressor_side is OrderSide.SELL)
    assert sells == 11_697  # lines with "m":true
    timestamps = [event.timestamp for event in events]
    assert timestamps == sorted(timestamps)


# ---------------------------------------------------------------------------------------------
# Hand-made files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_reader_parses_each_kind_and_skips_depth_and_snapshot(tmp_path: Path, compress: bool) -> None:
    path = write_feed(
        tmp_path / ("feed.gz" if compress else "feed.txt"),
        [
            SNAPSHOT_LINE.format(ns=1_000_000_000),
            book_line(1_500_000_000, "100.0", "100.1"),
            trade_line(2_000_000_000, "100.1", "0.25", buyer_is_maker=False),
            DEPTH_LINE.format(ns=2_500_000_000),
            trade_line(3_000_000_000, "100.0", "0.5", buyer_is_maker=True),
        ],
        compress,
    )
    stats = FeedStats()
    events = list(read_recorded_feed(path, stats))
    assert events == [
        MarketEvent.bbo(1.5, Decimal("100.0"), Decimal("100.1"), Decimal("1.000"), Decimal("2.000")),
        MarketEvent.trade(2.0, Decimal("100.1"), Decimal("0.25"), OrderSide.BUY),
        MarketEvent.trade(3.0, Decimal("100.0"), Decimal("0.5"), OrderSide.SELL),
    ]
    assert (stats.lines_read, stats.events_yielded, stats.snapshot_lines, stats.depth_lines) == (5, 3, 1, 1)
    assert stats.malformed_lines == 0


def test_reader_falls_back_to_json_for_other_layouts(tmp_path: Path) -> None:
    reordered = {"stream": "btcusdt@bookTicker", "data": {"a": "100.1", "A": "3", "b": "100.0", "B": "4"}}
    spaced_trade = {"data": {"m": True, "q": "0.1", "p": "100.0"}, "stream": "btcusdt@trade"}
    path = write_feed(
        tmp_path / "feed.txt",
        [f"1000000000 {json.dumps(reordered)}", f"2000000000 {json.dumps(spaced_trade)}"],
        compress=False,
    )
    stats = FeedStats()
    events = list(read_recorded_feed(path, stats))
    assert events == [
        MarketEvent.bbo(1.0, Decimal("100.0"), Decimal("100.1"), Decimal("4"), Decimal("3")),
        MarketEvent.trade(2.0, Decimal("100.0"), Decimal("0.1"), OrderSide.SELL),
    ]
    assert (stats.bbo_events, stats.trade_events, stats.malformed_lines) == (1, 1, 0)


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [
        book_line(1_000_000_000, "100.0", "100.1"),  # 1 ok
        "garbage",  # 2 no timestamp
        'notanumber {"stream":"btcusdt@bookTicker","data":{}}',  # 3 bad timestamp
        '1100000000 {"stream":"btcusdt@bookTicker","data":{"b":',  # 4 truncated JSON
        '1200000000 {"stream":"btcusdt@trade","data":{"p":"100.0"}}',  # 5 missing fields
        book_line(1_300_000_000, "abc", "100.1"),  # 6 not a number
        book_line(1_400_000_000, "NaN", "100.1"),  # 7 NaN price
        book_line(1_500_000_000, "100.2", "100.1"),  # 8 crossed book
        trade_line(1_600_000_000, "100.0", "-1", buyer_is_maker=True),  # 9 negative size
        "",  # 10 blank: skipped, not malformed
        "1700000000 [1, 2, 3]",  # 11 JSON but not an object
        trade_line(1_800_000_000, "100.1", "0.2", buyer_is_maker=False),  # 12 ok
        '1900000000 {"stream":"btcusdt@bookTick',  # 13 cut off inside the stream name
    ]
    path = write_feed(tmp_path / "feed.gz", lines, compress=True)
    stats = FeedStats()
    with caplog.at_level(logging.WARNING, logger="backtesting.market_feed"):
        events = list(read_recorded_feed(path, stats))
    assert [event.kind for event in events] == [MarketEventKind.BBO, MarketEventKind.TRADE]
    assert stats.lines_read == 13
    assert stats.events_yielded == 2
    assert stats.malformed_lines == 10
    assert stats.malformed_line_numbers == [2, 3, 4, 5, 6]
    assert stats.other_lines == 1
    assert stats.malformed_by_kind == {
        "bad_timestamp": 2,
        "not_json": 3,
        "bad_fields": 1,
        "bad_number": 2,
        "bad_price": 1,
        "bad_size": 1,
    }
    assert "10 malformed line(s) skipped (bad_fields 1, bad_number 2, bad_price 1" in caplog.text
    assert "first at line(s) 2, 3, 4, 5, 6" in caplog.text


def test_truncated_gzip_ends_the_feed_without_crashing(tmp_path: Path) -> None:
    lines = [book_line(1_000_000_000 + step, "100.0", "100.1") for step in range(2000)]
    whole = write_feed(tmp_path / "whole.gz", lines, compress=True)
    cut = tmp_path / "cut.gz"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    stats = FeedStats()
    events = list(read_recorded_feed(cut, stats))
    assert stats.truncated
    assert len(events) == stats.bbo_events < 2000


# ---------------------------------------------------------------------------------------------
# Synthetic market
# ---------------------------------------------------------------------------------------------


def first_events(market: SyntheticMarket, count: int) -> list[MarketEvent]:
    return list(itertools.islice(market, count))


def test_synthetic_market_is_reproducible_per_seed() -> None:
    first = first_events(SyntheticMarket(seed=11, start_time=100.0), 3000)
    again = first_events(SyntheticMarket(seed=11, start_time=100.0), 3000)
    other = first_events(SyntheticMarket(seed=12, start_time=100.0), 3000)
    assert first == again
    assert first != other
    market = SyntheticMarket(seed=11, start_time=100.0)
    assert first_events(market, 50) == first_events(market, 50) == first[:50]


def test_synthetic_market_shape() -> None:
    tick, step = Decimal("0.1"), Decimal("0.001")
    market = SyntheticMarket(seed=3, start_price=Decimal("60000"), step_seconds=0.2, start_time=1000.0)
    events = first_events(market, 5000)
    quotes = [event for event in events if event.kind is MarketEventKind.BBO]
    trades = [event for event in events if event.kind is MarketEventKind.TRADE]
    assert quotes[0].timestamp == 1000.0
    assert quotes[10].timestamp == pytest.approx(1002.0)
    assert abs(quotes[0].best_bid - Decimal("60000")) <= tick
    for quote in quotes:
        assert quote.best_ask - quote.best_bid >= tick
        assert quote.best_bid % tick == 0 and quote.best_ask % tick == 0
        assert quote.bid_size > 0 and quote.bid_size % step == 0
    assert 0.3 < len(trades) / len(quotes) < 0.7
    previous_quote = None
    for event in events:
        if event.kind is MarketEventKind.BBO:
            previous_quote = event
            continue
        assert previous_quote is not None and event.timestamp == previous_quote.timestamp
        expected = (
            previous_quote.best_ask if event.aggressor_side is OrderSide.BUY else previous_quote.best_bid
        )
        assert event.price == expected
        assert event.size > 0 and event.size % step == 0
    assert {trade.aggressor_side for trade in trades} == {OrderSide.BUY, OrderSide.SELL}


def test_synthetic_defaults_move_enough_for_a_small_take_profit() -> None:
    """A 0.02 % take-profit at ~60000 is 12.0; a minute of default data should cover it."""
    one_minute = [
        event
        for event in first_events(SyntheticMarket(seed=7), 600)
        if event.kind is MarketEventKind.BBO and event.timestamp < 60.0
    ]
    assert len(one_minute) == 300
    prices = [event.best_bid for event in one_minute]
    assert max(prices) - min(prices) > Decimal("12.0")


def test_synthetic_market_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError):
        SyntheticMarket(spread_ticks=0)
    with pytest.raises(ValueError):
        SyntheticMarket(tick_size=Decimal(0))
    with pytest.raises(ValueError):
        SyntheticMarket(step_seconds=0)
