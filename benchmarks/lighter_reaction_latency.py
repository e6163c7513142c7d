#!/usr/bin/env python3
"""Reaction latency of the Lighter connector: a fill leaving the venue -> its take-profit arriving.

Not a test. It runs the loopback Lighter venue (tests/mock_venues/lighter_venue.py) in a child
process, as a remote venue would be, and the real bot in this process's event loop: TradingBot +
grid strategy + LighterClient on the live clock, with the real lighter-sdk signer, wait-time 0,
boost off and max-orders 1 (so cycles never overlap). Each cycle:

1. wait until the bot's entry order rests on the venue and the bot is parked waiting for events;
2. trade through the entry; the venue stamps ``t0`` right before it writes the account_orders
   frame carrying the fill to the socket;
3. the venue stamps ``t1`` when the sendTx of the reduce-only take-profit reaches its handler;
4. wait until the take-profit rests, then trade through it too (the next entry follows).

Both stamps are ``time.perf_counter()`` (CLOCK_MONOTONIC, so they compare across the two
processes). ``--venue thread`` runs the venue in a thread of this process instead (the default
until 2026-12-01): it then shares the GIL with the bot, and its handler reads our sendTx only
once the bot's loop next blocks, which on a 2-core VM was 0.6-0.8 ms after the send (``send``
0.6 ms against 0.19 ms in a child process), a wait a remote venue does not add.

Reported: p50/p90/p99/max of ``t1 - t0`` over ``--cycles`` fills (after ``--warmup``
unreported ones), plus a breakdown from light instrumentation of the bot side
(``--no-breakdown`` measures without it; the take-profit's signature is timed in either mode,
in the signing thread, and ``total p50 / signing p50`` is printed, with ``outside sign``: each
fill's total less its own signature, steadier across the machine's phases than the ratio,
whose denominator moves with them):

* ``ws_in``: t0 -> the frame handed to our WebSocket dispatcher (wire, aiohttp's frame reader);
* ``parse``: JSON decoding, order tracker, event queued for the bot;
* ``decide``: the bot loop waking, risk check, strategy decision, up to ``place_limit_order``;
* ``pre_sign``: market lookup, checks, nonce, hop into the signing thread (the loop waits for
  the thread to take the job before it commits the journal beside the signature);
* ``sign``: the SDK's native signature (in the worker thread);
* ``post_sign``: hop back to the loop;
* ``send``: the signed transaction to the venue's handler: over the WebSocket
  (``jsonapi/sendtx``, the default) or, with ``--param ws_orders=false`` or no stream, the
  limiter, retry wrapper and aiohttp request of ``POST /api/v1/sendTx``.

Logging is configured exactly as runbot.py does (activity log file + console), with the console
stream sent to /dev/null so thousands of lines do not flood the terminal (its rendering cost is
still paid); ``--logging off`` measures without any handler. (Until 2026-12-01 the default run
had no handlers either: every figure before then was measured without logging.) The client's
REST budget is raised (``--rest-rpm``): at Lighter's standard 60 requests a minute the shared
limiter would pace sendTx to one a second.

The numbers are wall-clock on whatever else the machine is doing: on a shared 2-core box, run
variants interleaved and compare medians of several runs, not single runs.

Run:  python benchmarks/lighter_reaction_latency.py [--cycles 1000] [--json results/lighter_latency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exchanges.lighter import LighterClient  # noqa: E402
from helpers.clock import LiveClock  # noqa: E402
from helpers.log_setup import configure_logging, stop_logging  # noqa: E402
from helpers.trading_config import TradingConfig  # noqa: E402
from tests.mock_venues.lighter_venue import MarketSpec, MockLighterVenue, TimingMark  # noqa: E402
from trading_bot import TradingBot  # noqa: E402

SEGMENTS = ("ws_in", "parse", "decide", "pre_sign", "sign", "post_sign", "send")
STEP_TIMEOUT = 10.0


class MarkBoard:
    """Venue timing marks handed from the venue thread to the bot's loop.

    Fill stamps are only stored (no wake-up of the bot's loop inside the measured window);
    resting orders and received transactions wake the driver.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fill_sent: dict[int, float] = {}
        self.marks: list[TimingMark] = []
        self._changed = asyncio.Event()

    def hook(self, mark: TimingMark) -> None:  # venue thread
        if mark.kind == "fill_sent":
            self.fill_sent.setdefault(mark.client_order_index, mark.at)
            return
        self.loop.call_soon_threadsafe(self._add, mark)

    def _add(self, mark: TimingMark) -> None:
        if mark.kind == "tx_received" and not mark.reduce_only:
            return  # entries' sendTx: nothing waits for them, and kept they would pile up
        self.marks.append(mark)
        self._changed.set()

    async def wait(self, predicate: Callable[[TimingMark], bool], what: str) -> TimingMark:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            for index, mark in enumerate(self.marks):
                if predicate(mark):
                    del self.marks[index]
                    return mark
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {STEP_TIMEOUT}s")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class ThreadVenue:
    """The mock venue in a thread of this process (shares the GIL with the bot)."""

    def __init__(self, start_price: Decimal) -> None:
        self.venue = MockLighterVenue(start_price=start_price).start()

    def env(self) -> dict[str, str]:
        return self.venue.env()

    def attach(self, board: MarkBoard) -> None:
        self.venue.set_timing_hook(board.hook)

    def trade_through(self, price: Decimal) -> None:
        self.venue.submit(self.venue.trade_through, price)

    def stats(self) -> tuple[int, int]:
        stats = self.venue.stats()
        return len(stats.txs), len(stats.rejected)

    def close(self) -> None:
        self.venue.stop()


def _venue_process_main(conn: Any, start_price: str) -> None:
    """Child process: run the venue, forward timing marks, obey trade/stats/stop commands."""
    venue = MockLighterVenue(start_price=Decimal(start_price)).start()
    send_lock = threading.Lock()
    fills: list[TimingMark] = []

    def hook(mark: TimingMark) -> None:  # venue thread; nothing crosses the pipe mid-window
        if mark.kind == "fill_sent":
            fills.append(mark)
            return
        batch = [*fills, mark]
        fills.clear()
        with send_lock:
            conn.send(("marks", batch))

    venue.set_timing_hook(hook)
    with send_lock:
        conn.send(("env", venue.env()))
    try:
        while True:
            command, *args = conn.recv()
            if command == "trade_through":
                venue.submit(venue.trade_through, Decimal(args[0]))
            elif command == "stats":
                snapshot = venue.stats()
                with send_lock:
                    conn.send(("stats", (len(snapshot.txs), len(snapshot.rejected))))
            else:
                break
    finally:
        venue.stop()


class ProcessVenue:
    """The mock venue in a child process, as a real venue is on another machine: no shared GIL.

    Timing marks still compare, since ``time.perf_counter`` is CLOCK_MONOTONIC on Linux. Fill
    stamps travel with the next resting/received mark, so no pipe traffic lands in a window.
    """

    def __init__(self, start_price: Decimal) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_venue_process_main, args=(child, str(start_price)), name="mock-lighter-venue"
        )
        self.process.start()
        kind, self._env = self.conn.recv()
        assert kind == "env"
        self._board: MarkBoard | None = None
        self._stats: tuple[int, int] | None = None
        self._stats_ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="venue-marks", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "marks" and self._board is not None:
                for mark in payload:
                    self._board.hook(mark)
            elif kind == "stats":
                self._stats = payload
                self._stats_ready.set()

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def attach(self, board: MarkBoard) -> None:
        self._board = board

    def trade_through(self, price: Decimal) -> None:
        self.conn.send(("trade_through", str(price)))

    def stats(self) -> tuple[int, int]:
        self._stats_ready.clear()
        self.conn.send(("stats",))
        if not self._stats_ready.wait(STEP_TIMEOUT) or self._stats is None:
            raise TimeoutError("venue process did not answer")
        return self._stats

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        self.process.join(STEP_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()


class Probe:
    """First-occurrence timestamps of the bot-side steps of one cycle (armed per cycle)."""

    def __init__(self) -> None:
        self.armed = False
        self.last_frame = 0.0
        self.stamps: dict[str, float] = {}

    def arm(self) -> None:
        self.stamps = {}
        self.armed = True

    def stamp(self, key: str, at: float | None = None) -> None:
        if self.armed and key not in self.stamps:
            self.stamps[key] = time.perf_counter() if at is None else at


def instrument_signer(client: LighterClient, probe: Probe) -> None:
    """Time the native signature, in the signing thread (nothing on the loop's path)."""
    signer = client._signer
    sign_create_order = signer.sign_create_order

    def timed_sign(*args: Any, **kwargs: Any) -> Any:
        probe.stamp("sign_start")
        result = sign_create_order(*args, **kwargs)
        probe.stamp("sign_end")
        return result

    signer.sign_create_order = timed_sign


def instrument(client: LighterClient, probe: Probe) -> None:
    """Wrap a few bound methods of one client instance with timestamping (no behaviour change)."""
    ws = client._ws
    assert ws is not None
    dispatch = ws._dispatch

    async def timed_dispatch(raw: Any) -> None:
        probe.last_frame = time.perf_counter()
        await dispatch(raw)

    ws._dispatch = timed_dispatch  # type: ignore[method-assign]

    on_account_orders = client._on_account_orders

    def timed_account_orders(message: Any) -> bool:
        orders = message.get("orders") or {}
        groups = orders.values() if isinstance(orders, dict) else [orders]
        if any(Decimal(str(o.get("filled_base_amount", "0"))) > 0 for g in groups for o in g or []):
            probe.stamp("recv", probe.last_frame)
            changed = on_account_orders(message)
            probe.stamp("parsed")
            return changed
        return on_account_orders(message)

    client._on_account_orders = timed_account_orders  # type: ignore[method-assign]

    place = client.place_limit_order

    async def timed_place(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("reduce_only"):
            probe.stamp("place")
        return await place(*args, **kwargs)

    client.place_limit_order = timed_place  # type: ignore[method-assign]

    send_tx = client._send_tx  # over the WebSocket when it is up, else HTTP

    async def timed_send(*args: Any, **kwargs: Any) -> Any:
        probe.stamp("send")
        return await send_tx(*args, **kwargs)

    client._send_tx = timed_send  # type: ignore[method-assign]


def breakdown(t0: float, t1: float, stamps: dict[str, float]) -> dict[str, float] | None:
    order = ["recv", "parsed", "place", "sign_start", "sign_end", "send"]
    if any(key not in stamps for key in order):
        return None
    points = [t0, *(stamps[key] for key in order), t1]
    return {name: points[i + 1] - points[i] for i, name in enumerate(SEGMENTS)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50) * 1e3,
        "p90_ms": percentile(values, 90) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "max_ms": max(values) * 1e3,
        "mean_ms": statistics.fmean(values) * 1e3,
    }


async def run(args: argparse.Namespace, venue: ThreadVenue | ProcessVenue, log_dir: Path) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    board = MarkBoard(loop)
    venue.attach(board)
    config = TradingConfig(
        ticker="ETH",
        exchange="lighter",
        strategy="grid",
        quantity=Decimal(args.quantity),
        strategy_params={"take_profit": "0.02", "wait_time": "0", "max_orders": "1"},
        exchange_params={"rest_requests_per_minute": args.rest_rpm, **dict(args.param)},
        log_dir=log_dir,
    )
    clock = LiveClock()
    client = LighterClient(config, clock, env=venue.env())
    bot = TradingBot(config, clock=clock, exchange_client=client)
    spec = MarketSpec()  # the venue's default ETH market: price units -> Decimal
    probe = Probe()
    latencies: list[float] = []
    signs: list[float] = []
    outside: list[float] = []
    parts: list[dict[str, float]] = []
    errors: list[str] = []

    async def drive() -> None:
        total = args.warmup + args.cycles
        for cycle in range(total):
            entry = await board.wait(
                lambda m: m.kind == "order_resting" and not m.reduce_only, "resting entry"
            )
            if cycle == 0:  # connected: the bot has placed its first entry
                instrument_signer(client, probe)
                if not args.no_breakdown:
                    instrument(client, probe)
            await bot.wait_until_idle()
            probe.arm()
            venue.trade_through(spec.price_dec(entry.price))
            tx = await board.wait(lambda m: m.kind == "tx_received" and m.reduce_only, "take-profit sendTx")
            probe.armed = False
            t0 = board.fill_sent.pop(entry.client_order_index, None)
            if t0 is None:
                errors.append(f"cycle {cycle}: no fill stamp for entry {entry.client_order_index}")
            elif cycle >= args.warmup:
                latencies.append(tx.at - t0)
                if "sign_start" in probe.stamps and "sign_end" in probe.stamps:
                    signs.append(probe.stamps["sign_end"] - probe.stamps["sign_start"])
                    outside.append(latencies[-1] - signs[-1])
                split = breakdown(t0, tx.at, probe.stamps)
                if split is not None:
                    parts.append(split)
            tp = await board.wait(
                lambda m, cid=tx.client_order_index: (
                    m.kind == "order_resting" and m.client_order_index == cid
                ),
                "resting take-profit",
            )
            await bot.wait_until_idle()
            venue.trade_through(spec.price_dec(tp.price))
            if args.progress and (cycle + 1) % 200 == 0:
                sys.stderr.write(f"  {cycle + 1}/{total} cycles\n")
        bot.request_shutdown("benchmark done")

    driver = asyncio.create_task(drive())
    summary_task = asyncio.create_task(bot.run())
    done, _ = await asyncio.wait({driver, summary_task}, return_when=asyncio.FIRST_COMPLETED)
    if driver in done and driver.exception() is not None:
        bot.request_shutdown("benchmark failed")
        await summary_task
        raise driver.exception()  # type: ignore[misc]
    summary = await summary_task
    if not driver.done():
        driver.cancel()
        raise RuntimeError(f"bot stopped before the benchmark finished: {summary.stop_reason}")
    venue_txs, venue_rejected = venue.stats()
    return {
        "latencies": latencies,
        "signs": signs,
        "outside": outside,
        "parts": parts,
        "errors": errors,
        "stop_reason": summary.stop_reason,
        "fills": summary.fills,
        "venue_txs": venue_txs,
        "venue_rejected": venue_rejected,
        "sign_seconds": list(client.sign_seconds),
    }


def exchange_param(text: str) -> tuple[str, Any]:
    key, _, raw = text.partition("=")
    try:
        return key.strip(), json.loads(raw)
    except ValueError:
        return key.strip(), raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000, help="reported fills (default 1000)")
    parser.add_argument("--warmup", type=int, default=20, help="unreported fills first (default 20)")
    parser.add_argument("--quantity", default="0.01", help="order size in ETH (default 0.01)")
    parser.add_argument(
        "--rest-rpm",
        type=float,
        default=60000.0,
        help="client REST budget per minute (the default 60 would pace sendTx to 1/s)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        type=exchange_param,
        metavar="KEY=VALUE",
        help="extra LighterClient exchange_params (JSON values), e.g. ws_compression=false",
    )
    parser.add_argument(
        "--logging",
        choices=["full", "off"],
        default="full",
        help="full: as runbot.py; off: no log handlers",
    )
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="no loop-side instrumentation (the signature is still timed, in its thread)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "lighter_latency.json")
    parser.add_argument("--label", default="", help="free text stored in the JSON")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--venue",
        choices=["thread", "process"],
        default="process",
        help="run the mock venue in a child process (like a remote venue; the default) or in a "
        "thread of this process (it then shares the GIL with the bot)",
    )
    args = parser.parse_args(argv)

    venue_class = ProcessVenue if args.venue == "process" else ThreadVenue
    venue = venue_class(Decimal("3000"))
    saved_stdout = sys.stdout
    try:
        with tempfile.TemporaryDirectory(prefix="lighter-latency-") as tmp:
            log_dir = Path(tmp)
            if args.logging == "full":
                sys.stdout = io.TextIOWrapper(open(os.devnull, "wb"), write_through=True)
                configure_logging(log_dir, "lighter_ETH_grid", "INFO")
            else:
                logging.getLogger().handlers.clear()
                logging.getLogger().setLevel(logging.CRITICAL)
            try:
                result = asyncio.run(run(args, venue, log_dir))
            finally:
                stop_logging()
                if sys.stdout is not saved_stdout:
                    sys.stdout.close()
                    sys.stdout = saved_stdout
    finally:
        venue.close()

    latencies = result["latencies"]
    if not latencies:
        print("no cycles measured", file=sys.stderr)
        return 1
    overall = summarize(latencies)
    segments = (
        {name: summarize([p[name] for p in result["parts"]]) for name in SEGMENTS} if result["parts"] else {}
    )
    sign = summarize(result["sign_seconds"]) if result["sign_seconds"] else {}
    # The take-profit's own signature, timed in the signing thread in every mode: the ratio of
    # the issue's target, with --no-breakdown also free of the loop-side stamps' own cost.
    signing = summarize(result["signs"]) if result["signs"] else {}
    ratio = overall["p50_ms"] / signing["p50_ms"] if signing else None

    print(
        "Lighter reaction latency: fill frame leaves the venue -> take-profit sendTx arrives "
        f"(n={len(latencies)})"
    )
    print(f"{'':14}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'mean ms':>9}")
    rows = [("total", overall), *segments.items()]
    if signing and not segments:
        rows.append(("sign", signing))
    if sign:
        rows.append(("sign (all tx)", sign))
    if result["outside"]:
        # Each fill's total less its own signature: what the path costs besides signing, which
        # moves less with the machine's phase than the signature (and so the ratio) does.
        rows.append(("outside sign", summarize(result["outside"])))
    for name, s in rows:
        print(
            f"{name:14}{s['p50_ms']:9.3f}{s['p90_ms']:9.3f}{s['p99_ms']:9.3f}{s['max_ms']:9.3f}{s['mean_ms']:9.3f}"
        )
    if ratio is not None:
        print(f"total p50 / signing p50: {ratio:.2f}")
    if result["errors"]:
        print(f"warnings: {len(result['errors'])} (first: {result['errors'][0]})")
    tenth = max(1, len(latencies) // 10)
    print(
        f"p50 of the first / last tenth of cycles: {percentile(latencies[:tenth], 50) * 1e3:.3f} / "
        f"{percentile(latencies[-tenth:], 50) * 1e3:.3f} ms"
    )
    print(
        f"venue txs accepted {result['venue_txs']}, rejected {result['venue_rejected']}; "
        f"bot fills {result['fills']}; stop: {result['stop_reason']}"
    )

    report = {
        "benchmark": "lighter_reaction_latency",
        "label": args.label,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            "cycles": args.cycles,
            "warmup": args.warmup,
            "logging": args.logging,
            "venue": args.venue,
            "load_average_at_end": os.getloadavg(),
            "breakdown": not args.no_breakdown,
            "rest_rpm": args.rest_rpm,
            "exchange_params": dict(args.param),
        },
        "n": len(latencies),
        "total": overall,
        "segments": segments,
        "sign": signing,
        "ratio_p50": ratio,
        "sign_all_tx": sign,
        "outside_sign": summarize(result["outside"]) if result["outside"] else {},
        "venue_txs": result["venue_txs"],
        "venue_rejected": result["venue_rejected"],
        "warnings": result["errors"][:20],
        "latencies_ms": [round(v * 1e3, 4) for v in latencies],
        "segments_ms": {name: [round(p[name] * 1e3, 4) for p in result["parts"]] for name in SEGMENTS},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
