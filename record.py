#!/usr/bin/env python3
"""Record a venue's public book and trades for backtests: ``record.py --exchange lighter --ticker ETH``.

The recording is gzip text in the Binance combined-stream format the backtester reads, with the
venue's instrument metadata in its first line and a gap line wherever the stream broke (the
format and its gap rule: ``backtesting/recording.py``). ``backtest.py --feed FILE`` replays it
with the tick, sizes, limits and fees the venue published. Exit codes: 0 done (the duration
passed, or Ctrl-C/SIGTERM: the file is closed and valid), 1 the venue failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

EXIT_BAD_INPUT = 2
EXAMPLES = """\
examples:
  python record.py --exchange lighter --ticker ETH --duration 3600
  python record.py --exchange lighter --ticker BTC --out recordings/lighter-btc.gz
  python backtest.py --feed recordings/lighter-btc.gz --take-profit 0.02 --wait-time 30

endpoints come from the venue's usual variables (for Lighter LIGHTER_NETWORK, LIGHTER_BASE_URL,
LIGHTER_WS_URL; --env-file loads them); no API keys are needed, only public streams are read.
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad input is one line and exit code 2, as in runbot.py and backtest.py."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


def build_parser() -> OneLineErrorParser:
    from backtesting.recorder import HOOKS

    parser = OneLineErrorParser(
        prog="record.py",
        description="Record a venue's public order book and trades into a file backtest.py reads.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exchange", required=True, choices=sorted(HOOKS), help="venue to record")
    parser.add_argument("--ticker", required=True, help="the venue's ticker, e.g. ETH")
    parser.add_argument(
        "--duration", type=_positive, help="seconds to record (default: until Ctrl-C or SIGTERM)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output file (default recordings/<exchange>-<ticker>-<UTC time>.gz); an existing "
        "file is refused unless --overwrite",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--flush-seconds",
        type=_positive,
        default=2.0,
        help="sync the gzip stream to disk this often (what a hard kill can lose; default 2)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive,
        default=30.0,
        help="give up when the stream is not up this many seconds after the start (default 30)",
    )
    parser.add_argument("--env-file", type=Path, help="a .env file with the venue's endpoint variables")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def output_path(args: argparse.Namespace) -> Path:
    if args.out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = Path("recordings") / f"{args.exchange}-{args.ticker.lower()}-{stamp}.gz"
    else:
        out = args.out
    if out.exists() and (out.is_dir() or not args.overwrite):
        what = "a folder" if out.is_dir() else "already there; add --overwrite to replace it"
        raise ValueError(f"--out {out} is {what}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


async def _main(args: argparse.Namespace, out: Path) -> int:
    from backtesting.recorder import make_hook, record

    hook = make_hook(args.exchange, args.ticker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    counts = await record(
        hook,
        out,
        duration=args.duration,
        stop=stop,
        flush_seconds=args.flush_seconds,
        connect_timeout=args.connect_timeout,
    )
    print(
        f"recorded {args.exchange} {args.ticker.upper()} to {out}: {counts.lines:,} lines "
        f"({counts.snapshots} snapshot(s), {counts.depth_updates:,} book diffs, {counts.book_tickers:,} "
        f"quotes, {counts.trades:,} trades, {counts.gaps} gap(s))"
    )
    for reason in counts.gap_reasons:
        print(f"  gap: {reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from exchanges.base import ConfigurationError, ExchangeError

    try:
        if args.env_file is not None:
            if not args.env_file.is_file():
                raise ValueError(f"--env-file {args.env_file}: file not found")
            from dotenv import load_dotenv

            load_dotenv(args.env_file, override=False)
        out = output_path(args)
        return asyncio.run(_main(args, out))
    except (ValueError, ConfigurationError) as exc:
        sys.stderr.write(f"record.py: error: {exc}\n")
        return EXIT_BAD_INPUT
    except (ExchangeError, ConnectionError, OSError) as exc:
        sys.stderr.write(f"record.py: error: {type(exc).__name__}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
