#!/usr/bin/env python3
"""Command-line entry point: parse and validate flags, build a TradingConfig, run the bot.

Only this file decides the process exit code: 0 clean stop, 1 runtime error, 2 bad input or
configuration, 3 stopped by the risk manager, 130 forced exit on a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from exchanges import base as exchanges_base
from exchanges.base import AuthenticationError, ConfigurationError, ExchangeError
from exchanges.factory import ExchangeFactory
from execution.journal import prefix_owner
from helpers.log_setup import (
    DEFAULT_FILE_LOG_LEVEL,
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_MB,
    configure_logging,
    silence_stream,
)
from helpers.notifier import Notifier
from helpers.trading_config import (
    RiskLimits,
    TradingConfig,
    VenueSpec,
    default_bot_name,
    default_client_id_prefix,
)
from strategies.base_strategy import ParameterError, ParameterSpec, parse_decimal
from strategies.factory import StrategyFactory, _strategies

if TYPE_CHECKING:
    from trading_bot import BotSummary

EXIT_RUNTIME_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_FORCED = 130
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

EXAMPLES = """\
units: --take-profit, --grid-step, --max-slippage and fees are PERCENT (0.02 means 0.02 %);
       --wait-time, --duration and --stall-seconds are seconds; prices are quote currency.

examples:
  python runbot.py --exchange paper --ticker BTC --quantity 0.002 --take-profit 0.02 --wait-time 10 \
      --duration 120
  python runbot.py --exchange lighter --ticker BTC --quantity 0.00273 --take-profit 0.02 \\
      --direction buy --max-orders 25 --wait-time 35 --grid-step 0.06 --env-file .env
  python runbot.py --exchange paper --ticker BTC --quantity 0.002 \\
      --paper-feed ../shared/data/binance-usdm-btcusdt-20240808.gz --paper-replay-speed 10
  python runbot.py --strategy funding_arbitrage --exchange paper --hedge-exchange paper \\
      --ticker BTC --quantity 0.01 --paper-funding-rate 0.0001 --paper-funding-interval 8 \\
      --hedge-params funding_rate=0.0001 funding_interval_hours=1 --check-interval 10
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports bad input as a single line and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


# -- value parsers for argparse (raise ArgumentTypeError with a short reason) --------------------


def _typed(
    parse: Callable[[str], Any], check: Callable[[Any], bool], requirement: str
) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except (ValueError, ParameterError):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {requirement}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {requirement}")
        return value

    convert.__name__ = requirement
    return convert


positive_decimal = _typed(parse_decimal, lambda v: v > 0, "must be a number > 0")
non_negative_decimal = _typed(parse_decimal, lambda v: v >= 0, "must be a number >= 0")
any_decimal = _typed(parse_decimal, lambda v: True, "must be a number")
positive_float = _typed(lambda t: float(parse_decimal(t)), lambda v: v > 0, "must be a number > 0")
any_float = _typed(lambda t: float(parse_decimal(t)), lambda v: True, "must be a number")
non_negative_float = _typed(lambda t: float(parse_decimal(t)), lambda v: v >= 0, "must be a number >= 0")
fill_model_name = _typed(
    lambda t: t.strip().lower(), lambda v: v in ("queue", "touch"), "must be queue or touch"
)
positive_int = _typed(int, lambda v: v > 0, "must be an integer > 0")
any_int = _typed(int, lambda v: True, "must be an integer")
fraction = _typed(parse_decimal, lambda v: 0 < v <= 1, "must be a number in (0, 1]")


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return path


def bot_name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > 64 or not all(ch.isalnum() or ch in "_.-" for ch in name):
        raise argparse.ArgumentTypeError("use 1-64 letters, digits, '_', '.' or '-'")
    return name


def ticker_symbol(text: str) -> str:
    value = text.strip().upper()
    if not value or not value.replace("-", "").replace("_", "").isalnum() or len(value) > 20:
        raise argparse.ArgumentTypeError(f"invalid ticker {text!r}: letters/digits like BTC or ETH")
    return value


# Paper venue flags: (flag, exchange_params key, parser, help)
PAPER_FLAGS: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    ("--paper-seed", "seed", any_int, "random seed of the simulated market"),
    ("--paper-start-price", "start_price", positive_decimal, "starting mid price"),
    ("--paper-volatility", "volatility_bps", non_negative_decimal, "price stdev per step, basis points"),
    ("--paper-spread", "spread_ticks", positive_int, "typical spread in ticks"),
    ("--paper-step", "step_seconds", positive_float, "seconds between simulated market events"),
    ("--paper-tick-size", "tick_size", positive_decimal, "price tick"),
    ("--paper-maker-fee", "maker_fee_pct", any_decimal, "maker fee, percent (0.02 = 0.02 %%)"),
    ("--paper-taker-fee", "taker_fee_pct", non_negative_decimal, "taker fee, percent"),
    ("--paper-balance", "start_balance", positive_decimal, "starting balance in quote currency"),
    ("--paper-funding-rate", "funding_rate", any_decimal, "funding rate per interval (0.0001 = 0.01 %%)"),
    (
        "--paper-funding-interval",
        "funding_interval_hours",
        positive_decimal,
        "hours between funding settlements",
    ),
    (
        "--paper-funding-offset",
        "funding_offset_hours",
        non_negative_decimal,
        "first settlement, hours after 00:00 UTC",
    ),
    (
        "--paper-funding-volatility",
        "funding_volatility",
        non_negative_decimal,
        "stdev of the funding rate's step per settlement, fraction (0 = fixed rate)",
    ),
    ("--paper-funding-seed", "funding_seed", any_int, "random seed of the funding-rate process"),
    (
        "--paper-funding-history",
        "funding_history_path",
        existing_file,
        "recorded funding rates, JSON rows [time_ms, rate] (format of shared/fixtures/funding)",
    ),
    (
        "--paper-feed",
        "feed_path",
        existing_file,
        "replay a recorded feed (format of shared/data) instead of the synthetic market",
    ),
    ("--paper-replay-speed", "replay_speed", any_float, "feed replay speed, 1 = real time, 0 = max"),
    (
        "--paper-fill-model",
        "fill_model",
        fill_model_name,
        "maker fills: queue (trades must work through the size ahead) or touch (a quote at the "
        "price fills all)",
    ),
    ("--paper-entry-latency-ms", "entry_latency_ms", non_negative_float, "order entry latency, ms"),
    ("--paper-cancel-latency-ms", "cancel_latency_ms", non_negative_float, "cancel latency, ms"),
    (
        "--paper-market-data-latency-ms",
        "market_data_latency_ms",
        non_negative_float,
        "market data latency, ms (added to order and cancel arrival)",
    ),
)


def _flag_name(parameter: str) -> str:
    return "--" + parameter.replace("_", "-")


def _strategy_dest(parameter: str) -> str:
    return f"strategy__{parameter}"


def build_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(
        prog="runbot.py",
        description="Perp-DEX trading bot: one process per ticker.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    general = parser.add_argument_group("general")
    general.add_argument("--exchange", required=True, choices=ExchangeFactory.available(), type=str.lower)
    general.add_argument("--strategy", default="grid", choices=StrategyFactory.available(), type=str.lower)
    general.add_argument(
        "--hedge-exchange",
        choices=ExchangeFactory.available(),
        type=str.lower,
        help="second venue, for strategies that trade on two (funding_arbitrage); it reads its keys "
        "from the same --env-file",
    )
    general.add_argument(
        "--hedge-params",
        nargs="+",
        metavar="KEY=VALUE",
        default=[],
        help="paper venue options of the second venue, e.g. funding_rate=0.0003 "
        "funding_interval_hours=1 (the --paper-* flags set the first venue)",
    )
    general.add_argument("--ticker", required=True, type=ticker_symbol, help="base asset, e.g. BTC")
    general.add_argument("--quantity", required=True, type=positive_decimal, help="order size in base units")
    general.add_argument("--env-file", default=".env", help="file with API keys (default .env)")
    general.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="console")
    general.add_argument(
        "--bot-name",
        type=bot_name,
        help="this bot's identity: prefixes its order ids and names its log, CSV and journal; "
        "default exchange_TICKER_strategy plus the strategy's own suffix (the grid's direction), "
        "e.g. lighter_ETH_grid_buy. Two bots on one account must have different names",
    )
    general.add_argument(
        "--log-dir", default="logs", type=Path, help="activity log, orders CSV and journal folder"
    )
    general.add_argument(
        "--file-log-level",
        default=DEFAULT_FILE_LOG_LEVEL,
        type=str.upper,
        choices=LOG_LEVELS,
        help="activity log level (default %(default)s; DEBUG writes about 3 MB an hour)",
    )
    general.add_argument(
        "--log-max-mb",
        type=positive_float,
        default=DEFAULT_LOG_MAX_MB,
        help="rotate the activity log at this size in MB (default %(default)s)",
    )
    general.add_argument(
        "--log-backups",
        type=positive_int,
        default=DEFAULT_LOG_BACKUPS,
        help="rotated activity logs kept (.1 ... .N; default %(default)s)",
    )
    general.add_argument("--duration", type=positive_float, help="stop cleanly after this many seconds")
    general.add_argument(
        "--max-slippage",
        type=positive_decimal,
        default=Decimal("0.5"),
        help="market-order bound, percent from the touch (default %(default)s)",
    )
    general.add_argument(
        "--cancel-take-profits-on-exit",
        action="store_true",
        help="on stop, cancel resting take-profit orders too (default: leave them resting)",
    )
    general.add_argument(
        "--strategy-params",
        nargs="+",
        metavar="KEY=VALUE",
        default=[],
        help="any parameter of the chosen strategy, typed by the strategy (e.g. take_profit=0.02)",
    )

    seen: set[str] = set()
    for name in StrategyFactory.available():
        specs = [spec for spec in StrategyFactory.strategy_class(name).PARAMETERS if spec.name not in seen]
        if not specs:
            continue
        group = parser.add_argument_group(f"{name} strategy")
        for spec in specs:
            seen.add(spec.name)
            _add_strategy_flag(group, spec)

    paper = parser.add_argument_group("paper venue (simulated; no keys needed)")
    paper_defaults = _paper_defaults()
    for flag, key, parse, help_text in PAPER_FLAGS:
        paper.add_argument(flag, type=parse, help=f"{help_text} (default {paper_defaults[key]})")

    risk = parser.add_argument_group("risk manager")
    defaults = RiskLimits()
    risk.add_argument("--no-risk", action="store_true", help="disable the risk manager")
    risk.add_argument(
        "--max-consecutive-failures",
        type=positive_int,
        default=defaults.max_consecutive_failures,
        help="stop after this many order failures in a row (default %(default)s)",
    )
    risk.add_argument(
        "--stall-seconds",
        type=positive_float,
        default=defaults.stall_seconds,
        help="pause when market data is older than this (default %(default)s)",
    )
    risk.add_argument(
        "--max-loss-pct",
        type=positive_decimal,
        default=defaults.loss_pct,
        help="account loss, percent, that closes the worst positions (default %(default)s)",
    )
    risk.add_argument(
        "--close-worst-fraction",
        type=fraction,
        default=defaults.close_worst_fraction,
        help="share of positions closed at --max-loss-pct (default %(default)s)",
    )
    risk.add_argument(
        "--emergency-loss-pct",
        type=positive_decimal,
        default=defaults.emergency_loss_pct,
        help="account loss, percent, that closes everything and stops (default %(default)s)",
    )
    return parser


def _add_strategy_flag(group: argparse._ArgumentGroup, spec: ParameterSpec) -> None:
    help_text = spec.help.replace("%", "%%")
    if spec.is_flag:
        group.add_argument(
            _flag_name(spec.name),
            dest=_strategy_dest(spec.name),
            action="store_const",
            const="true",
            help=help_text,
        )
        return
    if spec.default is not None and "default" not in help_text:
        help_text = f"{help_text} (default {_default_text(spec)})"
    group.add_argument(_flag_name(spec.name), dest=_strategy_dest(spec.name), metavar="VALUE", help=help_text)


def _default_text(spec: ParameterSpec) -> str:
    """A default as the user would type it: ``buy``, not ``OrderSide.BUY``; "off" for a disabled knob."""
    default = spec.default
    if isinstance(default, Enum):
        return str(default.value)
    if "negative disables" in spec.help and isinstance(default, int | float | Decimal) and default < 0:
        return "off"
    return str(default)


def _paper_defaults() -> dict[str, str]:
    """The paper venue's own defaults, so the help cannot drift from them."""
    from exchanges.paper import PaperOptions

    shown = {field.name: str(field.default) for field in dataclasses.fields(PaperOptions)}
    shown["feed_path"] = "none"
    shown["funding_history_path"] = "none"
    return shown


def _strategy_parameters(parser: OneLineErrorParser, args: argparse.Namespace) -> dict[str, Any]:
    """Collect and type the chosen strategy's parameters from named flags and --strategy-params."""
    strategy_class = StrategyFactory.strategy_class(args.strategy)
    specs = {spec.name: spec for spec in strategy_class.PARAMETERS}
    raw: dict[str, tuple[str, Any]] = {}
    for name in {spec.name for cls in _strategies.values() for spec in cls.PARAMETERS}:
        value = getattr(args, _strategy_dest(name), None)
        if value is None:
            continue
        if name not in specs:
            parser.error(f"argument {_flag_name(name)}: not a parameter of strategy {args.strategy!r}")
        raw[name] = (_flag_name(name), value)
    for item in args.strategy_params:
        key, separator, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not separator or not key:
            parser.error(f"argument --strategy-params: expected KEY=VALUE, got {item!r}")
        if key not in specs:
            known = ", ".join(sorted(specs)) or "none"
            parser.error(
                f"argument --strategy-params: {args.strategy} has no parameter {key!r} (known: {known})"
            )
        if key in raw:
            # Either order would silently let one value win; the user meant one of them.
            parser.error(f"argument --strategy-params: {key} is also given as {raw[key][0]}; give it once")
        raw[key] = ("--strategy-params " + key, value)

    typed: dict[str, Any] = {}
    for name, (origin, value) in raw.items():
        try:
            typed[name] = specs[name].convert(value)
        except ParameterError as exc:
            parser.error(f"argument {origin}: {exc}")
    missing = [name for name, spec in specs.items() if spec.required and name not in typed]
    if missing:
        parser.error(f"argument {_flag_name(missing[0])}: required by strategy {args.strategy!r}")
    return typed


def risk_limits_from_args(args: argparse.Namespace) -> RiskLimits:
    """The risk-manager flags as RiskLimits (shared with backtest.py)."""
    return RiskLimits(
        enabled=not args.no_risk,
        max_consecutive_failures=args.max_consecutive_failures,
        stall_seconds=args.stall_seconds,
        loss_pct=args.max_loss_pct,
        close_worst_fraction=args.close_worst_fraction,
        emergency_loss_pct=args.emergency_loss_pct,
    )


def load_env_file(parser: OneLineErrorParser, path: Path) -> bool:
    """Load KEY=VALUE lines into the environment (existing variables win); True if the file
    can be read by group or others (the caller warns once the rest of the input is valid).

    The file is read here rather than by python-dotenv so that an unreadable or binary file is
    one line and exit 2, not a traceback; no message quotes its content (it holds keys).
    """
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        parser.error(f"argument --env-file: cannot read {path} ({exc.strerror or type(exc).__name__})")
    try:
        text: str | None = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        parser.error(f"argument --env-file: {path} is not a text file (expected KEY=VALUE lines in UTF-8)")
    from dotenv import load_dotenv  # only runs with an env file read it (never a backtest)

    load_dotenv(stream=io.StringIO(text), override=False)
    return os.name == "posix" and bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def write_stderr(line: str) -> None:
    """One line to stderr; a closed or vanished stderr is not worth a traceback."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        silence_stream(stream)


def bot_identity(args: argparse.Namespace, strategy_params: dict[str, Any]) -> str:
    """The bot's name (its order-id prefix, log, CSV and journal names) from parsed flags."""
    strategy_class = StrategyFactory.strategy_class(args.strategy)
    hedge = getattr(args, "hedge_exchange", None)
    exchange = f"{args.exchange}-{hedge}" if hedge else args.exchange
    return args.bot_name or default_bot_name(
        exchange, args.ticker, args.strategy, strategy_class.identity_suffix(strategy_params)
    )


def extra_venues(parser: OneLineErrorParser, args: argparse.Namespace) -> list[VenueSpec]:
    """The venues after the first, checked against what the strategy says it needs."""
    required = StrategyFactory.strategy_class(args.strategy).REQUIRED_VENUES
    given = 1 + (args.hedge_exchange is not None)
    if required != given:
        if required > given:
            parser.error(
                f"argument --hedge-exchange: strategy {args.strategy!r} trades on {required} venues; "
                "name the second with --hedge-exchange"
            )
        parser.error(f"argument --hedge-exchange: strategy {args.strategy!r} trades on one venue")
    params: dict[str, Any] = {}
    for item in args.hedge_params:
        key, separator, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not separator or not key:
            parser.error(f"argument --hedge-params: expected KEY=VALUE, got {item!r}")
        params[key] = value
    if args.hedge_exchange is None:
        if params:
            parser.error("argument --hedge-params: needs --hedge-exchange")
        return []
    if params:
        if args.hedge_exchange != "paper":
            parser.error(
                f"argument --hedge-params: options apply to a paper venue, not {args.hedge_exchange}"
            )
        from exchanges.paper import PaperOptions

        try:
            PaperOptions.from_params(params)
        except ConfigurationError as exc:
            parser.error(f"argument --hedge-params: {exc}")
    return [VenueSpec(args.hedge_exchange, params)]


def build_config(argv: Sequence[str] | None = None) -> TradingConfig:
    """Parse and validate ``argv`` into a TradingConfig; bad input exits with code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    strategy_params = _strategy_parameters(parser, args)

    env_file = Path(args.env_file).expanduser()
    env_exposed = False
    if env_file.is_file():
        env_exposed = load_env_file(parser, env_file)
    else:
        for venue in (args.exchange, args.hedge_exchange):
            if venue not in (None, "paper"):
                parser.error(
                    f"argument --env-file: {env_file} not found; {venue} needs API keys "
                    "(copy .env.example to .env and fill it in)"
                )
    if args.emergency_loss_pct < args.max_loss_pct:
        parser.error("argument --emergency-loss-pct: must be >= --max-loss-pct")

    exchange_params = {
        key: getattr(args, flag[2:].replace("-", "_"))
        for flag, key, _parse, _help in PAPER_FLAGS
        if getattr(args, flag[2:].replace("-", "_")) is not None
    }
    if exchange_params and args.exchange != "paper":
        parser.error(f"argument --paper-*: paper venue options do not apply to --exchange {args.exchange}")

    if env_exposed:
        write_stderr(
            f"runbot.py: warning: {env_file} is readable by group or others and holds your keys; "
            f"run: chmod 600 {env_file}"
        )
    venues = extra_venues(parser, args)
    name = bot_identity(args, strategy_params)
    prefix = default_client_id_prefix(name)
    other = prefix_owner(args.log_dir, prefix, name)
    if other is not None:
        parser.error(
            f"argument --bot-name: {name!r} would share the order-id prefix {prefix} with the bot "
            f"{other!r} in {args.log_dir}; choose another --bot-name"
        )
    return TradingConfig(
        bot_name=name,
        client_id_prefix=prefix,
        ticker=args.ticker,
        exchange=args.exchange,
        strategy=args.strategy,
        quantity=args.quantity,
        strategy_params=strategy_params,
        exchange_params=exchange_params,
        env_file=env_file if env_file.is_file() else None,
        log_level=args.log_level,
        log_dir=args.log_dir,
        file_log_level=args.file_log_level,
        log_max_mb=args.log_max_mb,
        log_backups=args.log_backups,
        duration=args.duration,
        max_slippage_pct=args.max_slippage,
        cancel_take_profits_on_exit=args.cancel_take_profits_on_exit,
        risk=risk_limits_from_args(args),
        extra_venues=venues,
    )


@dataclass
class Interrupts:
    """What Ctrl-C (SIGINT, SIGTERM) means at each stage of one run.

    While the bot runs, the first press asks for a clean stop and a second one forces an exit
    (orders may be left open). Once the bot's run() has returned, its orders are settled and the
    summary is out: a press then only skips the last notifications, and the process exits
    quietly with the run's own exit code.
    """

    presses: int = 0
    #: The process exit code, set once the bot's run() has returned.
    finished_code: int | None = None
    skip_cleanup: asyncio.Event = field(default_factory=asyncio.Event)


def venue_error_type(stop_reason: str) -> type[ExchangeError] | None:
    """The typed venue error a stop reason names: TradingBot stops on an ExchangeError with the
    reason ``"<ErrorClass>: <message>"`` (classes of the exchanges.base taxonomy)."""
    name = stop_reason.partition(":")[0].strip()
    candidate = getattr(exchanges_base, name, None)
    if isinstance(candidate, type) and issubclass(candidate, ExchangeError):
        return candidate
    return None


def exit_code_for(summary: BotSummary) -> int:
    """The bot's exit code, except that a venue refusing our credentials is bad configuration
    (2, not a runtime error): restarting with the same keys cannot help, so a supervisor
    (systemd, the launcher) must not retry."""
    error = venue_error_type(summary.stop_reason)
    if (
        summary.exit_code == EXIT_RUNTIME_ERROR
        and error is not None
        and issubclass(error, AuthenticationError)
    ):
        return EXIT_BAD_INPUT
    return summary.exit_code


def nothing_to_report(summary: BotSummary) -> bool:
    """The run placed no order and left nothing open: its summary would be all zeros."""
    return (
        summary.orders_placed == 0
        and summary.orders_failed == 0
        and summary.position == 0
        and not summary.venue_position
        and summary.resting_exit_orders == 0
        and summary.live_entries == 0
        and summary.unknown_orders == 0
        and summary.uncovered_size == 0
    )


async def run_bot(config: TradingConfig, interrupts: Interrupts | None = None) -> int:
    """Run one bot with Ctrl-C handling; returns the process exit code."""
    from trading_bot import TradingBot

    log = logging.getLogger("runbot")
    bot = TradingBot(config)
    state = interrupts or Interrupts()
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if state.finished_code is not None:
            state.skip_cleanup.set()
            return
        state.presses += 1
        if state.presses == 1:
            bot.request_shutdown(f"{name} received; cleaning up (press Ctrl-C again to force exit)")
        else:
            write_stderr("forced exit: orders may be left open on the venue")
            os._exit(EXIT_FORCED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    notifier = await start_notifier(config.bot_name)
    try:
        log.info(
            "starting %s: %s %s on %s, quantity %s",
            config.bot_name,
            config.strategy,
            config.ticker,
            config.exchange,
            config.quantity,
            extra={"notify": "start"},
        )
        try:
            summary = await bot.run()
        except Exception as exc:
            code = EXIT_BAD_INPUT if isinstance(exc, ConfigurationError) else EXIT_RUNTIME_ERROR
            log.error("stopped by an error: %s (exit code %d)", exc, code, extra={"notify": "stop"})
            raise
        code = exit_code_for(summary)
        # A run that failed before it had anything gets one line (on stderr, below), not a
        # summary of zeros; the lines still reach the activity log at DEBUG.
        brief = code != 0 and nothing_to_report(summary)
        log.log(logging.DEBUG if brief else logging.INFO, "summary for %s:", config.bot_name)
        for line in summary.lines():
            log.log(logging.DEBUG if brief else logging.INFO, "  %s", line)
        log.log(
            logging.WARNING if code else logging.INFO,
            "stopped: %s (exit code %d)",
            summary.stop_reason,
            code,
            extra={"notify": "stop", "console": not brief},
        )
        state.finished_code = code
    finally:
        if notifier is not None:
            logging.getLogger().removeHandler(notifier.handler)
            await close_notifier(notifier, state.skip_cleanup)
    if code in (EXIT_RUNTIME_ERROR, EXIT_BAD_INPUT):
        write_stderr(f"runbot.py: error: {summary.stop_reason}")
    elif code:
        write_stderr(f"runbot.py: {summary.stop_reason}")
    return code


async def close_notifier(notifier: Notifier, skip: asyncio.Event) -> None:
    """Send what is queued (bounded by the notifier), unless ``skip`` is set meanwhile."""
    closing = asyncio.ensure_future(notifier.aclose())
    skipping = asyncio.ensure_future(skip.wait())
    try:
        await asyncio.wait({closing, skipping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        skipping.cancel()
        if not closing.done():
            closing.cancel()  # aclose releases its session even when cancelled
        await asyncio.wait({closing, skipping})


async def start_notifier(bot_name: str) -> Notifier | None:
    """Telegram/Lark notifications when their variables are set (from the --env-file or the shell).

    The notifier listens on the root logger: ERROR records and records logged with
    ``extra={"notify": kind}`` are sent; nothing in the trading code calls it.
    """
    log = logging.getLogger("runbot")
    try:
        notifier = Notifier.from_environment(os.environ, bot_name)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if notifier is None:
        log.debug("notifications: off (no TELEGRAM_BOT_TOKEN/TELEGRAM_CHAT_ID or LARK_TOKEN)")
        return None
    await notifier.start()
    logging.getLogger().addHandler(notifier.handler)
    log.info("notifications: %s", ", ".join(notifier.channel_names))
    return notifier


def _force_exit(signum: int, frame: object) -> None:
    """Ctrl-C outside the event loop (start-up, final flush): leave at once, quietly."""
    write_stderr("forced exit")
    os._exit(EXIT_FORCED)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = build_config(argv)
    except KeyboardInterrupt:
        return EXIT_FORCED
    interrupts = Interrupts()
    try:
        log_path = configure_logging(
            config.log_dir,
            config.bot_name,
            config.log_level,
            file_level=config.file_log_level,
            max_bytes=max(1, int(config.log_max_mb * 1024 * 1024)),
            backups=config.log_backups,
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        write_stderr(
            f"runbot.py: error: argument --log-dir: cannot write the activity log in "
            f"{config.log_dir} ({reason})"
        )
        return EXIT_BAD_INPUT
    logging.getLogger("runbot").info("activity log: %s", log_path)
    try:
        return asyncio.run(run_bot(config, interrupts=interrupts))
    except ConfigurationError as exc:
        write_stderr(f"runbot.py: error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        # Between the loop closing and here: quiet, and the run's own code if it had finished.
        return EXIT_FORCED if interrupts.finished_code is None else interrupts.finished_code
    except Exception as exc:
        logging.getLogger("runbot").debug("fatal error", exc_info=True)
        write_stderr(f"runbot.py: error: {type(exc).__name__}: {exc} (details in {log_path})")
        return EXIT_RUNTIME_ERROR
    finally:
        finished = interrupts.finished_code
        if finished is None:
            signal.signal(signal.SIGINT, _force_exit)
        else:  # the bot is done: a press during the final flush just leaves, with its code
            signal.signal(signal.SIGINT, lambda _signum, _frame: os._exit(finished))


if __name__ == "__main__":
    sys.exit(main())
