#!/usr/bin/env python3
"""Backtest entry point: the live bot, strategy and risk manager on the paper venue, in data time.

Every flag of ``runbot.py`` that shapes a strategy, the paper venue or the risk manager works
here unchanged; the market comes from ``--feed`` (a recording in the ``shared/data`` format) or
``--synthetic-events`` (the seeded synthetic market). ``--sweep`` runs a grid of parameter
values across all cores and ranks it. Exit codes: 0 done, 1 runtime error, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import runbot
from backtesting.engine import BACKTEST_LATENCIES_MS, BacktestSpec
from exchanges.base import ConfigurationError
from exchanges.paper import PaperOptions
from strategies.base_strategy import ParameterError

EXIT_BAD_INPUT = 2
#: A Ctrl-C (the shell convention: 128 + SIGINT).
EXIT_INTERRUPTED = 130

EXAMPLES = """\
examples:
  python backtest.py --feed ../shared/data/binance-usdm-btcusdt-20240808.gz --take-profit 0.02 --wait-time 30
  python backtest.py --synthetic-events 1000000 --paper-seed 3 --take-profit 0.02 --wait-time 30
  python backtest.py --feed ../shared/data/binance-usdm-btcusdt-20240808.gz \\
      --sweep take_profit=0.01,0.02,0.05 wait_time=5,30,120 grid_step=-1,0.05
  python backtest.py --feed FILE --prepare-cache      (write the compact cache, then exit)

units as in runbot.py: --take-profit and --grid-step are PERCENT, times are (simulated) seconds.
results go to a new folder per run, results/<strategy>_<data>_<UTC time> (or --out DIR, which
must be empty unless --overwrite): result.json, fills.csv, orders.csv, samples.csv and
chart.png; a sweep writes sweep.json and sweep.csv.
"""

# Flags of runbot.py that mean nothing in a backtest, and what to use instead. They are hidden
# from --help (a listed flag must work) and refused with this hint if given anyway.
_NOT_HERE = {
    "paper_feed": "use --feed",
    "paper_replay_speed": "a backtest runs as fast as the CPU allows",
    "env_file": "the paper venue needs no keys",
    "log_dir": "results go to --out",
    "hedge_exchange": "a backtest drives one paper venue; two-venue strategies run with runbot.py",
    "hedge_params": "a backtest drives one paper venue",
}


def positive_int(text: str) -> int:
    return runbot.positive_int(text)


def build_parser() -> runbot.OneLineErrorParser:
    """runbot's parser (strategy, paper venue and risk flags) plus the backtest's own flags."""
    parser = runbot.build_parser()
    parser.prog = "backtest.py"
    parser.description = (
        "Backtest a strategy on the paper venue with the live bot's code, in the data's time. "
        "It always runs on the paper venue; --ticker defaults to the data's symbol (BTC for "
        "synthetic data) and --quantity to 0.002 (contracts for inverse instruments)."
    )
    parser.epilog = EXAMPLES
    defaults = {"exchange": "paper", "ticker": None, "quantity": "0.002"}
    latency_flags = {f"paper_{key}": value for key, value in BACKTEST_LATENCIES_MS.items()}
    for action in parser._actions:  # argparse keeps no public way to relax or hide a flag
        if action.dest in latency_flags and action.help:
            default = f"(default {latency_flags[action.dest]:g} here)"
            action.help = action.help.replace("(default 0.0)", default)
        if action.dest in defaults:
            action.required = False
            action.default = defaults[action.dest]
        if action.dest in _NOT_HERE or action.dest == "exchange":
            action.help = argparse.SUPPRESS
            action.default = None if action.dest != "exchange" else "paper"
    data = parser.add_argument_group("backtest data (one of --feed or --synthetic-events)")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--feed", type=runbot.existing_file, help="recorded feed, format of shared/data")
    source.add_argument(
        "--synthetic-events", type=positive_int, metavar="N", help="N events of the seeded synthetic market"
    )
    data.add_argument("--max-events", type=positive_int, metavar="N", help="replay only the first N events")
    data.add_argument(
        "--cache-dir",
        type=Path,
        help="compact feed cache folder (default $XDG_CACHE_HOME/perp-dex-bot/feeds, "
        "that is ~/.cache/perp-dex-bot/feeds when XDG_CACHE_HOME is unset)",
    )
    data.add_argument("--no-cache", action="store_true", help="decode the data every run, write no cache")
    data.add_argument(
        "--allow-truncated",
        action="store_true",
        help="replay the readable part of a cut-off .gz/.lz4 recording (refused by default, exit 2)",
    )
    data.add_argument("--prepare-cache", action="store_true", help="write the compact cache and exit")
    out = parser.add_argument_group("backtest output")
    out.add_argument(
        "--out",
        type=Path,
        help="results folder (default: a new results/<strategy>_<data>_<UTC time> for every run); "
        "an existing non-empty folder is refused unless --overwrite",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="with --out: empty that folder of earlier results first, so runs never mix",
    )
    out.add_argument("--no-plot", action="store_true", help="skip chart.png")
    out.add_argument("--sample-seconds", type=runbot.positive_float, help="equity sampling interval")
    out.add_argument(
        "--no-wake-filter",
        action="store_true",
        help="wake the bot on every market update (slower; decisions are the same)",
    )
    sweep = parser.add_argument_group("parameter sweep")
    sweep.add_argument(
        "--sweep",
        nargs="+",
        metavar="NAME=V1,V2",
        default=[],
        help="strategy parameters to sweep; every combination is one backtest",
    )
    sweep.add_argument(
        "--executor",
        choices=["process", "thread", "dask"],
        default="process",
        help="sweep executor (dask: a Dask cluster, --scheduler or a local one)",
    )
    sweep.add_argument("--workers", type=positive_int, help="sweep workers (default: all CPU cores)")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: tcp://host:8786")
    sweep.add_argument("--top", type=positive_int, default=20, help="rows of the ranked table to print")
    return parser


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, BacktestSpec, dict[str, list[Any]]]:
    """Flags to a BacktestSpec (and a sweep grid); bad input exits with code 2 and one line."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.exchange != "paper":
        parser.error("argument --exchange: backtests run on the paper venue only")
    for name, instead in _NOT_HERE.items():
        if getattr(args, name, None) is not None:
            parser.error(f"argument --{name.replace('_', '-')}: not used in a backtest; {instead}")
    if args.feed is None and args.synthetic_events is None:
        parser.error("give the market data: --feed FILE or --synthetic-events N")
    if args.scheduler is not None and args.executor != "dask":
        parser.error("argument --scheduler: needs --executor dask")
    if args.max_events is not None and args.feed is None:
        parser.error("argument --max-events: applies to --feed (use --synthetic-events N)")
    if args.emergency_loss_pct < args.max_loss_pct:
        parser.error("argument --emergency-loss-pct: must be >= --max-loss-pct")
    strategy_params = runbot._strategy_parameters(parser, args)
    exchange_params = {
        key: getattr(args, flag[2:].replace("-", "_"))
        for flag, key, _parse, _help in runbot.PAPER_FLAGS
        if getattr(args, flag[2:].replace("-", "_")) is not None
    }
    try:
        grid = {}
        if args.sweep:
            # Only a sweep needs its module (and the process pool it brings in).
            from backtesting.sweep import parse_sweep

            grid = parse_sweep(args.sweep, args.strategy)
        spec = BacktestSpec(
            strategy=args.strategy,
            ticker=args.ticker,
            quantity=args.quantity,
            strategy_params=strategy_params,
            exchange_params=exchange_params,
            feed_path=str(args.feed) if args.feed is not None else None,
            synthetic_events=args.synthetic_events,
            max_events=args.max_events,
            sample_seconds=args.sample_seconds,
            cache_dir=str(args.cache_dir) if args.cache_dir is not None else None,
            use_cache=not args.no_cache,
            risk=runbot.risk_limits_from_args(args),
            max_slippage_pct=args.max_slippage,
            cancel_take_profits_on_exit=args.cancel_take_profits_on_exit,
            duration=args.duration,
            filter_market_wakes=not args.no_wake_filter,
            allow_truncated=args.allow_truncated,
        )
        PaperOptions.from_params(exchange_params)
    except ParameterError as exc:
        parser.error(f"argument --sweep: {exc}")
    except Exception as exc:  # a ConfigurationError or ValueError naming the bad value
        parser.error(str(exc))
    return args, spec, grid


#: What a run or sweep writes: all of it goes before an --overwrite run writes its own.
RESULT_FILES = (
    "result.json",
    "fills.csv",
    "orders.csv",
    "samples.csv",
    "chart.png",
    "sweep.json",
    "sweep.csv",
)


def results_folder(out: Path | None, overwrite: bool, spec: BacktestSpec, sweeping: bool) -> Path:
    """Where this run writes: never into a folder holding another run's files by accident.

    Without ``--out`` every run gets a new folder named by its data and start time (a number is
    added should two runs start in the same second). With ``--out``, an existing folder that is
    not empty is refused (ValueError, exit 2) unless ``overwrite``; then the result files of
    earlier runs are deleted first, so an old chart.png never sits beside a new result.json.
    """
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = default_out_dir(spec, sweeping)
        folder = base.with_name(f"{base.name}_{stamp}")
        number = 1
        while folder.exists():
            number += 1
            folder = base.with_name(f"{base.name}_{stamp}-{number}")
        folder.mkdir(parents=True)
        return folder
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"--out {out} already holds files; add --overwrite to replace them")
        for name in RESULT_FILES:
            (out / name).unlink(missing_ok=True)
    return out


def default_out_dir(spec: BacktestSpec, sweeping: bool) -> Path:
    if spec.feed_path is not None:
        data = re.sub(r"\.(gz|txt|jsonl?)$", "", Path(spec.feed_path).name)
    else:
        data = f"synthetic-{spec.synthetic_events}-seed{spec.exchange_params.get('seed', 7)}"
    return Path("results") / f"{spec.strategy}_{data}{'_sweep' if sweeping else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    args, spec, grid = parse(sys.argv[1:] if argv is None else argv)
    from rich.console import Console

    console = Console()
    explicit_level = any(
        item == "--log-level" or item.startswith("--log-level=") for item in (argv or sys.argv)
    )
    logging.basicConfig(
        level=args.log_level if explicit_level else "WARNING",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out_dir: Path | None = None
    try:
        if args.prepare_cache:
            return prepare_cache(spec, console)
        out_dir = results_folder(args.out, args.overwrite, spec, bool(grid))
        if grid:
            return run_sweep_cli(spec, grid, args, out_dir, console)
        return run_single(spec, args, out_dir, console)
    except (ValueError, OSError, ConfigurationError) as exc:
        _drop_if_empty(out_dir, args.out)
        sys.stderr.write(f"backtest.py: error: {exc}\n")
        return EXIT_BAD_INPUT
    except Exception as exc:
        _drop_if_empty(out_dir, args.out)
        logging.getLogger("backtest").debug("fatal error", exc_info=True)
        sys.stderr.write(f"backtest.py: error: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        _drop_if_empty(out_dir, args.out)
        sys.stderr.write("backtest.py: interrupted\n")
        return EXIT_INTERRUPTED


def _drop_if_empty(out_dir: Path | None, given: Path | None) -> None:
    """A run that failed before writing anything leaves no empty folder of its own behind."""
    if out_dir is not None and given is None and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


def prepare_cache(spec: BacktestSpec, console: Any) -> int:
    from backtesting.engine import prepare_data

    feed = prepare_data(spec)
    console.print(
        f"{feed.count:,} events cached in {feed.path} "
        f"({feed.stats.malformed_lines} malformed line(s) skipped)"
    )
    return 0


def run_single(spec: BacktestSpec, args: argparse.Namespace, out_dir: Path, console: Any) -> int:
    from backtesting.engine import run_backtest
    from backtesting.report import plot_result, render_table, save_result

    with console.status("backtesting..."):
        result = run_backtest(spec, out_dir)
    title = f"{spec.strategy} {result.spec['ticker']} on {default_out_dir(spec, False).name.split('_', 1)[1]}"
    for warning in result.data.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(render_table(result, title))
    paths = save_result(result, out_dir)
    if not args.no_plot:
        try:
            paths["chart"] = plot_result(result, out_dir / "chart.png", title)
        except ImportError:
            console.print("no chart: matplotlib is missing (pip install -r requirements-backtest.txt)")
    console.print("saved: " + ", ".join(str(path) for path in paths.values()))
    return 0


def run_sweep_cli(
    spec: BacktestSpec, grid: dict[str, list[Any]], args: argparse.Namespace, out_dir: Path, console: Any
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from backtesting.engine import prepare_data
    from backtesting.sweep import (
        default_executor,
        render_sweep_table,
        run_sweep,
        save_sweep,
        sweep_specs,
    )

    if spec.use_cache:
        prepare_data(spec)  # once here, not in every worker at the same time
    specs = sweep_specs(spec, grid)
    executor = default_executor(args.executor, args.workers, args.scheduler)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{len(specs)} backtests", total=len(specs))
            rows = run_sweep(specs, executor, lambda row, done, total: progress.update(task, completed=done))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    console.print(render_sweep_table(rows, args.top, spec.strategy))
    paths = save_sweep(rows, out_dir)
    console.print("saved: " + ", ".join(str(path) for path in paths.values()))
    return 0 if all(not row.error for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
