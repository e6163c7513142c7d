"""record.py: a venue's public book and trades, recorded in a format the backtester reads.

The unit tests check the writer's lines against the feed reader and the gap rule; the end-to-end
test records the loopback Lighter venue running in its own process (trades, a dropped
connection, a book gap, a repeated trade message), stops the recorder with SIGINT, checks the
file line by line and backtests it with backtest.py, whose instrument must come from the
recording's header (a 0.001 tick, unlike the instruments file's 0.01 for ETH).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import sys
import time
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backtesting.engine import BacktestSpec, resolve_instrument
from backtesting.feed_cache import load_feed
from backtesting.market_feed import FeedStats, MarketEventKind, read_recorded_feed
from backtesting.recording import RecordingHeaderError, RecordingWriter, read_header
from exchanges.base import OrderSide
from helpers.instruments import Instrument
from tests.venue_process import HTTP_TIMEOUT, ROOT, STEP_TIMEOUT, control, venue_process

D = Decimal
INSTRUMENT = Instrument(
    symbol="ETH",
    kind="linear",
    base="ETH",
    quote="USDC",
    settlement="USDC",
    tick_size=D("0.001"),
    size_step=D("0.0001"),
    min_size=D("0.005"),
    min_notional=D("10"),
    contract_multiplier=D(1),
    maker_fee_pct=D("0.002"),
    taker_fee_pct=D("0.02"),
)


def _clock(start: int = 1_700_000_000_000_000_000) -> Any:
    ticks = iter(range(start, start + 10**12, 1_000_000))
    return lambda: next(ticks)


def write_sample(path: Path) -> None:
    writer = RecordingWriter(path, "ETH", now_ns=_clock())
    writer.header({"venue": "test", "ticker": "ETH", "instrument": INSTRUMENT.metadata()})
    writer.trade(1, D("3000.5"), D("1"), False, 1)  # before the first snapshot: dropped
    writer.snapshot(10, [(D("3000.001"), D("1.5"))], [(D("3000.302"), D("2"))])
    writer.top(D("3000.001"), D("1.5"), D("3000.302"), D("2"), 5)
    writer.top(D("3000.001"), D("1.5"), D("3000.302"), D("2"), 6)  # unchanged: not written
    writer.trade(2, D("3000.302"), D("0.5"), False, 7)  # a buyer took the ask
    writer.depth(10, 11, 10, [(D("3000.001"), D("0"))], [], 8)
    writer.top(D("2999.901"), D("1"), D("3000.302"), D("2"), 8)
    writer.gap("disconnected: test")
    writer.top(D("2999.000"), D("1"), D("3000.302"), D("2"), 9)  # inside the gap: not written
    writer.trade(3, D("2999.000"), D("1"), True, 9)  # inside the gap: not written
    writer.gap("again")  # a second break before the snapshot adds nothing
    writer.snapshot(20, [(D("2998.003"), D("1"))], [(D("2998.504"), D("1"))])
    writer.top(D("2998.003"), D("1"), D("2998.504"), D("1"), 10)
    writer.trade(4, D("2998.003"), D("0.25"), True, 11)  # a seller hit the bid
    writer.close()
    writer.close()


def test_writer_lines_read_back_as_events_with_the_gap_rule(tmp_path: Path) -> None:
    path = tmp_path / "rec.gz"
    write_sample(path)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    kinds = [json.loads(line.split(" ", 1)[1]).get("stream", "-").partition("@")[2] for line in lines]
    assert kinds == ["", "", "bookTicker", "trade", "depth", "bookTicker", "gap", "", "bookTicker", "trade"]
    assert all(int(line.split(" ")[0]) > 0 for line in lines)

    stats = FeedStats()
    events = list(read_recorded_feed(path, stats, allow_truncated=False))
    assert stats.format == "binance" and stats.symbols == ["ETH"]
    assert [e.kind for e in events] == [
        MarketEventKind.BBO,
        MarketEventKind.TRADE,
        MarketEventKind.BBO,
        MarketEventKind.BBO,
        MarketEventKind.TRADE,
    ]
    assert (events[0].best_bid, events[0].bid_size, events[0].best_ask, events[0].ask_size) == (
        D("3000.001"),
        D("1.5"),
        D("3000.302"),
        D("2"),
    )
    assert (events[1].price, events[1].size, events[1].aggressor_side) == (
        D("3000.302"),
        D("0.5"),
        OrderSide.BUY,
    )
    assert events[3].best_bid == D("2998.003")
    assert events[4].aggressor_side is OrderSide.SELL
    # header, 2 snapshots, 1 diff and 1 gap line are well-formed lines the reader skips
    assert stats.skipped_lines == 5 and stats.malformed_lines == 0


def test_header_gives_the_backtest_its_instrument_over_the_instruments_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.gz"
    write_sample(path)
    header = read_header(path)
    assert header is not None and header["format_version"] == 1 and header["ticker"] == "ETH"
    feed = load_feed(str(path), str(tmp_path / "cache"), True, False)
    spec, warnings = resolve_instrument(BacktestSpec(feed_path=str(path)), feed)
    # data/instruments.toml says 0.01 for ETH: the recording's venue metadata wins
    assert spec.ticker == "ETH" and warnings == []
    params = spec.exchange_params
    assert (params["tick_size"], params["size_step"], params["min_notional"]) == (
        D("0.001"),
        D("0.0001"),
        D("10"),
    )
    assert (params["maker_fee_pct"], params["settlement_currency"], params["inverse"]) == (
        D("0.002"),
        "USDC",
        False,
    )
    # a flag still wins over the recording
    spec, _ = resolve_instrument(
        BacktestSpec(feed_path=str(path), exchange_params={"tick_size": D("0.01")}), feed
    )
    assert spec.exchange_params["tick_size"] == D("0.01") and spec.exchange_params["size_step"] == D("0.0001")
    # a Binance tape has no header
    assert read_header(ROOT.parent / "shared" / "data" / "binance-usdm-btcusdt-20240808.gz") is None


def test_a_newer_or_broken_header_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rec.gz"
    with gzip.open(path, "wt") as out:
        out.write('1 {"recording":{"format_version":99}}\n')
    with pytest.raises(RecordingHeaderError, match="format version 99"):
        read_header(path)


def test_a_killed_recording_is_readable_up_to_the_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "rec.gz"
    writer = RecordingWriter(path, "ETH", now_ns=_clock())
    writer.snapshot(1, [(D("1"), D("1"))], [(D("2"), D("1"))])
    for size in range(1, 101):
        writer.top(D("1"), D(size), D("2"), D("1"), size)
    writer.flush()
    # no close(): as after kill -9, the gzip has no trailer
    stats = FeedStats()
    events = list(read_recorded_feed(path, stats, allow_truncated=True))
    assert len(events) == 100 and events[-1].bid_size == 100 and stats.truncated
    with pytest.raises(ValueError, match="ends early"):  # backtests refuse it unless told
        list(read_recorded_feed(path, FeedStats(), allow_truncated=False))
    writer.close()


# ---------------------------------------------------------------------------------------------
# End to end: the loopback Lighter venue in its own process
# ---------------------------------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    """What the recorder has flushed so far (a gzip still being written has no trailer yet)."""
    if not path.exists():
        return []
    text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(path.read_bytes())
    return text.decode().splitlines()[:-1] if not text.endswith(b"\n") else text.decode().splitlines()


def parsed(line: str) -> dict[str, Any]:
    return json.loads(line.split(" ", 1)[1])


def stream_of(line: str) -> str:
    return parsed(line).get("stream", "").partition("@")[2]


async def wait_for_lines(path: Path, process: Any, probe: Any, what: str) -> list[str]:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        lines = read_lines(path)
        if probe(lines):
            return lines
        if process.returncode is not None:
            pytest.fail(f"recorder exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in the recording within {STEP_TIMEOUT:.0f}s: {lines[-5:]}")
        await asyncio.sleep(0.02)


async def run_tool(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_record_lighter_venue_then_backtest_the_recording(tmp_path: Path) -> None:
    recording = tmp_path / "lighter-eth.gz"
    async with (
        venue_process(tmp_path, "--price-decimals", "3") as venue,
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTER_")}
        env.update(LIGHTER_BASE_URL=venue.info["base_url"], LIGHTER_WS_URL=venue.info["ws_url"])
        code, _out, err = await run_tool(
            "record.py",
            "--exchange",
            "lighter",
            "--ticker",
            "NOSUCH",
            "--out",
            str(tmp_path / "x.gz"),
            env=env,
        )
        assert code == 2 and err.count("\n") == 1 and "no perpetual market 'NOSUCH'" in err
        assert not (tmp_path / "x.gz").exists()
        # The market's metadata is read, but the stream never comes up: one line, exit 1, no file.
        no_stream = {**env, "LIGHTER_WS_URL": "ws://127.0.0.1:9/stream"}
        code, _out, err = await run_tool(
            "record.py", "--exchange", "lighter", "--ticker", "ETH", "--out", str(tmp_path / "x.gz"),
            "--connect-timeout", "0.5", env=no_stream,
        )  # fmt: skip
        assert code == 1 and "not connected after 0.5s" in err.strip().splitlines()[-1]
        assert not (tmp_path / "x.gz").exists()

        short = tmp_path / "short.gz"
        timed = asyncio.create_task(
            run_tool(
                "record.py",
                "--exchange",
                "lighter",
                "--ticker",
                "ETH",
                "--duration",
                "0.5",
                "--out",
                str(short),
                env=env,
            )
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "record.py", "--exchange", "lighter", "--ticker", "eth", "--out", str(recording),
            "--flush-seconds", "0.05", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            lines = await wait_for_lines(
                recording,
                process,
                lambda ls: any(stream_of(x) == "bookTicker" for x in ls[2:]),
                "first quote",
            )
            assert "recording" in parsed(lines[0]) and "lastUpdateId" in parsed(lines[1])

            # A buyer lifts the asks through 3001: public trades, a new book and a new top.
            await control(http, venue, action="trade_through", price="3001", size="0.5")
            await wait_for_lines(
                recording,
                process,
                lambda ls: any(stream_of(x) == "trade" and parsed(x)["data"]["p"] == "3001.000" for x in ls),
                "trade at 3001",
            )
            # The venue drops the connection: a gap line, then a fresh snapshot.
            await control(http, venue, action="drop_connections")
            await wait_for_lines(
                recording,
                process,
                lambda ls: sum("lastUpdateId" in x for x in ls) >= 2,
                "snapshot after reconnect",
            )
            # A book diff is lost: the next diff breaks continuity; gap line, resubscribe, snapshot.
            await control(http, venue, action="inject_book_gap")
            await control(http, venue, action="walk_step")
            await control(http, venue, action="walk_step")
            await wait_for_lines(
                recording,
                process,
                lambda ls: sum("lastUpdateId" in x for x in ls) >= 3,
                "snapshot after book gap",
            )
            # The next trade message arrives twice: the trade is written once.
            await control(http, venue, action="duplicate_next_message", channel_prefix="trade")
            await control(http, venue, action="trade_through", price="2995", size="0.5")
            await wait_for_lines(
                recording,
                process,
                lambda ls: any(stream_of(x) == "trade" and parsed(x)["data"]["p"] == "2995.000" for x in ls),
                "trade at 2995",
            )
            await control(http, venue, action="walk_step")  # one more top after the duplicate
            await wait_for_lines(
                recording,
                process,
                lambda ls: stream_of(ls[-1]) in ("bookTicker", "depth"),
                "quote after trade",
            )
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
        assert process.returncode == 0, err.decode()[-2000:]
        assert "2 gap(s)" in out.decode(), out.decode()

        code, out_short, err_short = await timed
        assert code == 0, err_short[-2000:]
        assert "recorded lighter ETH" in out_short and short.exists()

    # Ctrl-C closed the gzip: the whole file decompresses, trailer included.
    lines = gzip.decompress(recording.read_bytes()).decode().splitlines()
    header = parsed(lines[0])["recording"]
    assert (header["venue"], header["ticker"], header["market_id"]) == ("lighter", "ETH", "0")
    assert header["instrument"]["tick_size"] == "0.001" and header["instrument"]["size_step"] == "0.0001"

    gaps = [i for i, line in enumerate(lines) if stream_of(line) == "gap"]
    assert len(gaps) == 2
    assert parsed(lines[gaps[0]])["data"]["reason"].startswith("disconnected")
    assert parsed(lines[gaps[1]])["data"]["reason"].startswith("book gap")
    for index in gaps:  # the gap rule: only a snapshot may follow a gap line
        assert "lastUpdateId" in parsed(lines[index + 1])
    previous = None
    for line in lines[1:]:  # diffs continue each other except across a gap
        message = parsed(line)
        if "lastUpdateId" in message:
            previous = message["lastUpdateId"]
        elif stream_of(line) == "gap":
            previous = None
        elif stream_of(line) == "depth":
            assert previous is not None and message["data"]["pu"] == previous
            previous = message["data"]["u"]
    trade_ids = [parsed(x)["data"]["t"] for x in lines if stream_of(x) == "trade"]
    assert len(trade_ids) == len(set(trade_ids)) >= 3
    sides = {parsed(x)["data"]["p"]: parsed(x)["data"]["m"] for x in lines if stream_of(x) == "trade"}
    assert sides["3001.000"] is False and sides["2995.000"] is True  # a buyer lifted, a seller hit

    # The backtester reads it, with the venue's instrument and ticker.
    out_dir = tmp_path / "bt"
    code, out, err = await run_tool(
        "backtest.py", "--feed", str(recording), "--no-plot", "--no-cache", "--out", str(out_dir),
        "--quantity", "0.01", env=dict(os.environ),
    )  # fmt: skip
    assert code == 0, err[-2000:]
    result = json.loads((out_dir / "result.json").read_text())
    assert result["spec"]["ticker"] == "ETH"
    assert result["data"]["instrument_source"] == "recording header"
    params = result["spec"]["exchange_params"]
    assert (params["tick_size"], params["size_step"], params["min_size"]) == ("0.001", "0.0001", "0.0050")
    assert params["settlement_currency"] == "USDC"
    stats = result["data"]["feed_stats"]
    assert stats["format"] == "binance" and stats["malformed_lines"] == 0
    assert stats["events"] == sum(stream_of(x) in ("bookTicker", "trade") for x in lines)


# ---------------------------------------------------------------------------------------------
# Aster: the same loop, one more hook
# ---------------------------------------------------------------------------------------------


async def test_record_aster_venue_book_gap_and_trades(tmp_path: Path) -> None:
    from backtesting.recorder import AsterHook, record
    from tests.mock_venues.aster_venue import MockAsterVenue
    from tests.shared_paths import FIXTURES_DIR

    out = tmp_path / "aster.gz"
    venue = MockAsterVenue(start_price=Decimal("3000")).start()
    try:
        env = {k: v for k, v in venue.env().items() if k in ("ASTER_BASE_URL", "ASTER_WS_URL")}
        hook = AsterHook("ETH", env)
        stop = asyncio.Event()
        task = asyncio.create_task(record(hook, out, duration=None, stop=stop, flush_seconds=0.05))

        async def until(probe: Any, what: str) -> list[str]:
            deadline = time.monotonic() + STEP_TIMEOUT
            while not probe(lines := read_lines(out)):
                assert not task.done(), f"recorder ended before {what}"
                assert time.monotonic() < deadline, f"no {what}: {lines[-4:]}"
                await asyncio.sleep(0.02)
            return lines

        await until(lambda ls: any(stream_of(x) == "bookTicker" for x in ls[1:]), "first quote")
        # An aggTrade as the venue sends it (the mock has no public trade stream).
        trade = json.loads((FIXTURES_DIR / "aster" / "ws_agg_trade.json").read_text())
        trade["s"] = hook.symbol
        await hook.on_message({"stream": f"{hook.symbol.lower()}@aggTrade", "data": trade})
        await hook.on_message({"stream": f"{hook.symbol.lower()}@aggTrade", "data": trade})  # repeated
        tops = sum(stream_of(x) == "bookTicker" for x in read_lines(out))
        await asyncio.to_thread(venue.trade_through, venue.best_bid_ask()[1] + 5)
        await until(lambda ls: sum(stream_of(x) == "bookTicker" for x in ls) > tops, "quote after the trade")
        await asyncio.to_thread(venue.inject_book_gap, 1)
        await asyncio.to_thread(venue.trade_through, venue.best_bid_ask()[0] - 5)
        await asyncio.to_thread(venue.trade_through, venue.best_bid_ask()[1] + 5)
        await until(lambda ls: sum("lastUpdateId" in x for x in ls) >= 2, "snapshot after the gap")
        stop.set()
        counts = await asyncio.wait_for(task, STEP_TIMEOUT)
    finally:
        venue.stop()
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    header = parsed(lines[0])["recording"]
    assert (header["venue"], header["ticker"], header["market_id"]) == ("aster", "ETH", hook.symbol)
    assert Decimal(header["instrument"]["tick_size"]) > 0 and header["instrument"]["settlement"]
    assert (header["instrument"]["maker_fee_pct"], header["instrument"]["taker_fee_pct"]) == (
        "0.0100",
        "0.03500",
    )
    gaps = [i for i, line in enumerate(lines) if stream_of(line) == "gap"]
    assert counts.gaps == len(gaps) == 1 and parsed(lines[gaps[0]])["data"]["reason"].startswith("book gap")
    assert "lastUpdateId" in parsed(lines[gaps[0] + 1])
    trades = [parsed(x)["data"] for x in lines if stream_of(x) == "trade"]
    assert [(t["t"], t["p"], t["q"], t["m"]) for t in trades] == [(20505890, "114783.7", "0.020", False)]
    assert stream_of(lines[-1]) in ("bookTicker", "depth")
    events = list(read_recorded_feed(out, FeedStats(), allow_truncated=False))
    assert sum(e.kind is MarketEventKind.TRADE for e in events) == 1
