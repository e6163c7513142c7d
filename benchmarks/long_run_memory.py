#!/usr/bin/env python3
"""Does a bot's memory stay flat over a long run? RSS sampled through hours of trading.

Not a test: it takes as long as the run. Two modes:

* ``lighter`` — the real ``runbot.py`` process (grid, Lighter connector, real signing, journal,
  CSV, activity log, risk manager) against the mock Lighter venue in its own process, for
  ``--duration`` seconds of wall time. A driver trades through one to three of the bot's resting
  orders every ``--fill-every`` seconds (random), so it fills, places take-profits and re-enters
  all along. The bot's RSS is read with psutil every ``--sample`` seconds.
* ``paper`` — the same TradingBot, grid and paper venue, accelerated: a synthetic market of
  ``--hours`` simulated hours (one event every ``--step`` seconds) on the simulated clock, with
  the journal, orders CSV and activity log written to disk as a live bot writes them. RSS of this
  process is read every ``--sample`` simulated seconds.

Judged on the second half of the run (after start-up, imports and caches have settled): the
least-squares slope of RSS in MB per hour and the growth from its first to its last sample. A
leak shows as a slope that does not shrink as the run gets longer.

Run:  python benchmarks/long_run_memory.py lighter --duration 3600
      python benchmarks/long_run_memory.py paper --hours 24
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def files_mb(folder: Path, pattern: str) -> float:
    """Size of the files matching ``pattern`` in ``folder``, in MB (after the run)."""
    return round(sum(path.stat().st_size for path in folder.glob(pattern)) / MB, 2)


def second_half_trend(samples: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Slope (MB/h, least squares) and growth (MB) of RSS over the second half of the samples."""
    half = list(samples[len(samples) // 2 :])
    if len(half) < 2:
        return {"slope_mb_per_hour": 0.0, "growth_mb": 0.0}
    mean_t = sum(t for t, _ in half) / len(half)
    mean_r = sum(r for _, r in half) / len(half)
    var = sum((t - mean_t) ** 2 for t, _ in half)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in half)
    slope = cov / var if var else 0.0
    return {"slope_mb_per_hour": slope * 3600.0, "growth_mb": half[-1][1] - half[0][1]}


def report(mode: str, samples: list[tuple[float, float]], extra: dict[str, Any], out: Path | None) -> None:
    rss = [r for _, r in samples]
    result = {
        "mode": mode,
        "samples": len(samples),
        "span_hours": (samples[-1][0] - samples[0][0]) / 3600.0 if samples else 0.0,
        "rss_first_mb": rss[0] if rss else 0.0,
        "rss_min_mb": min(rss, default=0.0),
        "rss_max_mb": max(rss, default=0.0),
        "rss_last_mb": rss[-1] if rss else 0.0,
        **second_half_trend(samples),
        **extra,
        "series": [[round(t, 1), round(r, 2)] for t, r in samples],
    }
    print(
        f"{mode}: {result['span_hours']:.2f} h, RSS first {result['rss_first_mb']:.1f} MB, "
        f"min {result['rss_min_mb']:.1f}, max {result['rss_max_mb']:.1f}, last {result['rss_last_mb']:.1f}; "
        f"second half: slope {result['slope_mb_per_hour']:+.2f} MB/h, growth {result['growth_mb']:+.2f} MB"
    )
    print("  " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        print(f"JSON: {out}")


# -- lighter: the real bot process against the mock venue process --------------------------------


async def run_lighter(args: argparse.Namespace) -> None:
    import aiohttp

    from tests.bot_process import Bot, ours, read_journal
    from tests.venue_process import HTTP_TIMEOUT, control, get_state, venue_process

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="long-run-") as folder:
        tmp = Path(folder)
        env_file = tmp / "bot.env"
        async with venue_process(tmp, "--env-out", str(env_file), "--seed", str(args.seed)) as venue:
            bot = Bot(tmp, env_file, "--duration", str(args.duration + 60))
            bot.start()
            assert bot.process is not None
            process = psutil.Process(bot.process.pid)
            samples: list[tuple[float, float]] = []
            fills_made = 0
            started = time.monotonic()
            next_sample = started + args.sample  # after start-up
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                while time.monotonic() - started < args.duration:
                    if not bot.alive():
                        raise SystemExit(f"the bot exited early:\n{bot.output()}")
                    now = time.monotonic()
                    if now >= next_sample:
                        samples.append((now - started, process.memory_info().rss / MB))
                        next_sample += args.sample
                    account = (await get_state(http, venue))["accounts"][str(venue.info["account_index"])]
                    mine = [o for o in account["orders"] if ours(o) and o["status"] == "open"]
                    for order in rng.sample(mine, k=min(len(mine), rng.randint(1, 3))):
                        await control(http, venue, action="trade_through", price=order["price"])
                        fills_made += 1
                    await asyncio.sleep(rng.uniform(0.2, 2 * args.fill_every))
                samples.append((time.monotonic() - started, process.memory_info().rss / MB))
            bot.process.send_signal(signal.SIGINT)
            try:
                code = bot.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                bot.kill()
                code = -9
            journal = read_journal(bot.journal) or {}
            report(
                "lighter",
                samples,
                {
                    "fills_made": fills_made,
                    "journaled_fills": journal.get("fills"),
                    "journaled_orders": len(journal.get("orders", {})),
                    "journal_mb": files_mb(bot.log_dir, "*journal.sqlite3*"),
                    "activity_log_mb": files_mb(bot.log_dir, "*activity.log*"),
                    "exit_code": code,
                },
                args.json,
            )


# -- paper: the live bot's files, on the simulated clock -----------------------------------------


async def run_paper(args: argparse.Namespace) -> None:
    from backtesting.engine import BacktestEngine, BacktestSpec
    from helpers.log_setup import configure_logging, stop_logging

    process = psutil.Process()
    events = int(args.hours * 3600 / args.step)
    with tempfile.TemporaryDirectory(prefix="long-run-paper-") as folder:
        files = Path(folder)
        spec = BacktestSpec(
            synthetic_events=events,
            strategy_params={"take_profit": Decimal("0.02"), "wait_time": 30.0},
            exchange_params={"seed": args.seed, "step_seconds": args.step},
            sample_seconds=args.sample,
            files_dir=str(files),
        )
        configure_logging(files, spec.trading_config().bot_name, "WARNING")
        wall_samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:  # a thread: the run itself never yields to a timer
            started = time.monotonic()
            while not done.wait(args.wall_sample):
                wall_samples.append((time.monotonic() - started, process.memory_info().rss / MB))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wall = time.perf_counter()
        # Orders and fills stream to files, as the live bot's CSV does, rather than into lists.
        result = await BacktestEngine(spec, out_dir=files / "result").run()
        wall_seconds = time.perf_counter() - wall
        done.set()
        sampler.join()
        stop_logging()
        # The synthetic market moves at a fixed step, so simulated time maps linearly to wall
        # time: express the series in simulated seconds.
        scale = args.hours * 3600.0 / wall_seconds
        samples = [(t * scale, rss) for t, rss in wall_samples]
        report(
            "paper",
            samples,
            {
                "simulated_hours": args.hours,
                "events": result.metrics.events,
                "orders_placed": result.metrics.orders_placed,
                "fills": result.metrics.fills,
                "cycles": result.metrics.completed_cycles,
                "wall_seconds": round(wall_seconds, 1),
                "journal_mb": files_mb(files, "*journal.sqlite3*"),
                "activity_log_mb": files_mb(files, "*activity.log*"),
            },
            args.json,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    lighter = modes.add_parser("lighter", help="the real bot process against the mock Lighter venue")
    lighter.add_argument("--duration", type=float, default=3600.0, help="wall seconds (default 3600)")
    lighter.add_argument("--fill-every", type=float, default=2.0, help="mean seconds between fills")
    lighter.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    paper = modes.add_parser("paper", help="accelerated: the live bot's code on the simulated clock")
    paper.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    paper.add_argument("--step", type=float, default=0.5, help="simulated seconds between events")
    paper.add_argument("--sample", type=float, default=600.0, help="simulated seconds between equity samples")
    paper.add_argument("--wall-sample", type=float, default=0.5, help="wall seconds between RSS samples")
    for sub in (lighter, paper):
        sub.add_argument("--seed", type=int, default=5)
        sub.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)
    asyncio.run(run_lighter(args) if args.mode == "lighter" else run_paper(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
