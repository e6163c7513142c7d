"""Recording formats: detected and named, unknown ones refused in one line, cut-off files refused
unless allowed, Hyperliquid's l2Book/trades recordings read (plain, gzip or lz4)."""

from __future__ import annotations

import gzip
import json
import zlib
from decimal import Decimal
from pathlib import Path

import lz4.frame
import pytest
from isal import igzip, isal_zlib

import backtest
from backtesting.event_columns import ColumnBuilder
from backtesting.feed_cache import load_feed
from backtesting.market_feed import (
    BINANCE_FORMAT,
    HYPERLIQUID_FORMAT,
    FeedStats,
    MarketEventKind,
    TruncatedFeed,
    UnknownFeedFormat,
    read_recorded_columns,
    read_recorded_feed,
)
from exchanges.base import OrderSide


def book(ms: int, bid: str, ask: str, wrapped: bool = True) -> str:
    message = {
        "channel": "l2Book",
        "data": {
            "coin": "ETH",
            "time": ms,
            "levels": [
                [{"px": bid, "sz": "1.5", "n": 2}, {"px": "0.1", "sz": "9", "n": 1}],
                [{"px": ask, "sz": "0.25", "n": 1}],
            ],
        },
    }
    if wrapped:
        return json.dumps({"time": "2024-08-05T00:00:05.402514755", "ver_num": 1, "raw": message})
    return json.dumps(message)


def trades(ms: int) -> str:
    data = [
        {"coin": "ETH", "side": "B", "px": "2500.1", "sz": "0.3", "time": ms, "hash": "0x0", "tid": 1},
        {"coin": "ETH", "side": "A", "px": "2500.0", "sz": "0.2", "time": ms, "hash": "0x0", "tid": 2},
    ]
    return json.dumps({"channel": "trades", "data": data})


HYPERLIQUID_LINES = [book(1_722_816_005_022, "2500.0", "2500.1"), trades(1_722_816_005_100), ""]
HYPERLIQUID_LINES.append(book(1_722_816_005_200, "2500.1", "2500.2", wrapped=False))


def write(path: Path, lines: list[str], opener=open) -> Path:  # type: ignore[no-untyped-def]
    with opener(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("opener", [open, gzip.open, lz4.frame.open], ids=["text", "gzip", "lz4"])
def test_hyperliquid_l2book_and_trades_recordings_are_read(tmp_path: Path, opener) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path / "ETH.rec", HYPERLIQUID_LINES, opener)
    stats = FeedStats()
    events = list(read_recorded_feed(path, stats))
    assert stats.format == HYPERLIQUID_FORMAT and stats.symbols == ["ETH"]
    assert [event.kind for event in events] == [
        MarketEventKind.BBO,
        MarketEventKind.TRADE,
        MarketEventKind.TRADE,
        MarketEventKind.BBO,
    ]
    first, bought, sold, last = events
    assert (first.timestamp, first.best_bid, first.bid_size, first.best_ask, first.ask_size) == (
        1_722_816_005.022,
        Decimal("2500.0"),
        Decimal("1.5"),
        Decimal("2500.1"),
        Decimal("0.25"),
    )
    assert (bought.price, bought.size, bought.aggressor_side) == (
        Decimal("2500.1"),
        Decimal("0.3"),
        OrderSide.BUY,
    )
    assert sold.aggressor_side is OrderSide.SELL
    assert last.best_bid == Decimal("2500.1")


def test_binance_recordings_are_named_as_such(tmp_path: Path) -> None:
    line = '1000000000 {"stream":"ethusdt@bookTicker","data":{"b":"1.0","B":"1","a":"1.1","A":"1"}}'
    stats = FeedStats()
    assert len(list(read_recorded_feed(write(tmp_path / "f.txt", [line]), stats))) == 1
    assert (stats.format, stats.symbols) == (BINANCE_FORMAT, ["ETHUSDT"])


def test_an_unknown_format_is_one_line_exit_2_and_leaves_no_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "prices.csv", ["time,bid,ask", "1,100.0,100.1"])
    with pytest.raises(UnknownFeedFormat):
        list(read_recorded_feed(path))
    cache = tmp_path / "cache"
    code = backtest.main(["--feed", str(path), "--cache-dir", str(cache), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert (
        str(path) in err and "unknown market data format" in err and "hyperliquid" in err and "binance" in err
    )
    assert not cache.exists() or not any(cache.iterdir())


def test_a_cut_off_gzip_is_refused_unless_allowed(tmp_path: Path) -> None:
    payload = '{"stream":"btcusdt@bookTicker","data":{"b":"100.0","B":"1","a":"100.1","A":"1"}}'
    lines = [f"{1_000_000_000 + step} {payload}" for step in range(3000)]
    whole = write(tmp_path / "whole.gz", lines, gzip.open)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(TruncatedFeed, match="--allow-truncated"):
        list(read_recorded_feed(cut, allow_truncated=False))
    cache = tmp_path / "cache"
    with pytest.raises(TruncatedFeed, match="--allow-truncated"):
        load_feed(cut, cache)
    assert not cache.exists() or not any(cache.iterdir())
    partial = load_feed(cut, cache, allow_truncated=True)
    assert partial.stats.truncated and 0 < partial.count < 3000
    with pytest.raises(TruncatedFeed):  # its cache does not make it acceptable later
        load_feed(cut, cache)


def test_a_recording_killed_after_a_few_lines_still_reads_them(tmp_path: Path) -> None:
    # As record.py leaves it after a kill -9: a gzip stream sync-flushed, never finished. Fewer
    # lines than the format sniffer looks at, so the read error comes before detection ends.
    payload = '{"stream":"btcusdt@bookTicker","data":{"b":"100.0","B":"1","a":"100.1","A":"1"}}'
    text = "".join(f"{1_000_000_000 + step} {payload}\n" for step in range(5))
    compressor = zlib.compressobj(wbits=31)
    cut = tmp_path / "killed.gz"
    cut.write_bytes(compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH))
    stats = FeedStats()
    events = list(read_recorded_feed(cut, stats, allow_truncated=True))
    assert len(events) == 5 and stats.truncated and stats.format == BINANCE_FORMAT
    assert stats.symbols == ["BTCUSDT"]
    with pytest.raises(TruncatedFeed, match="after line 5"):
        list(read_recorded_feed(cut, allow_truncated=False))
    partial = load_feed(cut, tmp_path / "cache", allow_truncated=True)
    assert partial.count == 5


def test_an_unknown_short_cut_off_file_is_still_unknown_or_truncated(tmp_path: Path) -> None:
    compressor = zlib.compressobj(wbits=31)
    cut = tmp_path / "killed.gz"
    cut.write_bytes(
        compressor.compress(b"time,bid,ask\n1,100.0,100.1\n") + compressor.flush(zlib.Z_SYNC_FLUSH)
    )
    with pytest.raises(UnknownFeedFormat):
        list(read_recorded_feed(cut, allow_truncated=True))


@pytest.mark.parametrize("compiled", [True, False])
def test_a_gzip_damaged_inside_is_refused_as_truncated_not_a_decoder_crash(
    tmp_path: Path, compiled: bool
) -> None:
    # ISA-L's decoder raises its own IsalError ("Invalid deflate block found") on some damaged
    # deflate data; the reader hands over to the standard decoder, which names the damage.
    payload = '{"stream":"btcusdt@bookTicker","data":{"b":"100.0","B":"1","a":"100.1","A":"1"}}'
    lines = [f"{1_000_000_000 + step} {payload.replace('100.0', f'{100 + step}.0')}" for step in range(20000)]
    whole = write(tmp_path / "whole.gz", lines, gzip.open).read_bytes()
    path = tmp_path / "damaged.gz"
    path.write_bytes(damaged_where_isal_fails(whole))
    with pytest.raises(TruncatedFeed, match="--allow-truncated"):
        for _ in read_recorded_columns(path, FeedStats(), False, ColumnBuilder(), compiled=compiled):
            pass
    stats = FeedStats()
    builder = ColumnBuilder()
    for _ in read_recorded_columns(path, stats, True, builder, compiled=compiled):
        pass
    assert stats.truncated and 0 < len(builder) < 20000


def damaged_where_isal_fails(whole: bytes) -> bytes:
    """``whole`` with one byte in the middle of its deflate data flipped, at the first place
    where ISA-L's decoder then fails with its own IsalError (not zlib's error)."""
    for offset in range(len(whole) // 2, len(whole) - 16):
        damaged = bytearray(whole)
        damaged[offset] ^= 0xFF
        try:
            igzip.decompress(bytes(damaged))
        except isal_zlib.IsalError:
            return bytes(damaged)
        except Exception:  # another kind of failure: try the next byte
            continue
    raise AssertionError("no single flipped byte makes ISA-L fail with IsalError")
