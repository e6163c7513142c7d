#!/usr/bin/env python3
"""Start, stop and list a set of bots described in one TOML file, one tmux window per bot.

    python launcher.py start deploy/bots.toml [--dry-run]
    python launcher.py stop deploy/bots.toml [--timeout 90]
    python launcher.py status deploy/bots.toml
    python launcher.py exec deploy/bots.toml NAME      (used by the systemd unit)

Why tmux: a trader attaches (``tmux attach -t <session>``) and reads each bot's console as if
started by hand, and ``stop`` presses Ctrl-C in each window exactly once, which is the clean stop
path of runbot.py (entries cancelled, summary printed). Windows stay open after their bot exits
(``remain-on-exit``) so the last lines and the exit code can still be read.

Every bot's flags are checked with runbot.py's own parser before anything starts, so a typo in
the file is one line and exit code 2 here, not a dead window later.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
EXIT_BAD_INPUT = 2
DEFAULT_SESSION = "perp-dex-bots"
# Letters first and no '.' or ':': tmux reads "1" as a window index and "a.b" as a pane.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,49}$")

TOP_KEYS = {"session", "python", "workdir", "defaults", "bot"}
BOT_KEYS = {"name", "exchange", "ticker", "quantity", "strategy", "env_file", "log_dir", "params", "args"}
DEFAULT_KEYS = BOT_KEYS - {"name"}
REQUIRED = ("name", "exchange", "ticker", "quantity")


class ConfigError(Exception):
    """A problem in the bots file, worded as one line that names the file, bot and key."""


@dataclass(frozen=True)
class BotSpec:
    """One bot of the file: everything needed to build its runbot.py command."""

    name: str
    exchange: str
    ticker: str
    quantity: str
    strategy: str = "grid"
    env_file: str | None = None
    log_dir: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchConfig:
    session: str
    python: str
    workdir: Path
    bots: tuple[BotSpec, ...]

    def bot(self, name: str) -> BotSpec:
        for bot in self.bots:
            if bot.name == name:
                return bot
        raise ConfigError(f"no bot named {name!r} (have: {', '.join(b.name for b in self.bots)})")


# -- config ----------------------------------------------------------------------------------------


def load_config(path: str | Path) -> LaunchConfig:
    """Read and check the bots file; raises ConfigError (one line) for anything wrong in it."""
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, str(source))


def parse_config(data: dict[str, Any], origin: str = "config") -> LaunchConfig:
    _no_unknown(data, TOP_KEYS, origin)
    session = _text(data.get("session", DEFAULT_SESSION), f"{origin}: session")
    if not _NAME.match(session):
        raise ConfigError(
            f"{origin}: session {session!r}: start with a letter; then letters, digits, '-' or '_'"
        )
    python = _text(data.get("python", sys.executable), f"{origin}: python")
    workdir = Path(_text(data.get("workdir", str(ROOT)), f"{origin}: workdir")).expanduser()
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{origin}: [defaults] must be a table")
    _no_unknown(defaults, DEFAULT_KEYS, f"{origin}: [defaults]")
    bots_data = data.get("bot")
    if not isinstance(bots_data, list) or not bots_data:
        raise ConfigError(f"{origin}: no bots: add at least one [[bot]] table")
    bots: list[BotSpec] = []
    seen: dict[str, int] = {}
    outputs: dict[tuple[str, str, str, str], str] = {}
    for number, raw in enumerate(bots_data, start=1):
        where = f"{origin}: bot #{number}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a [[bot]] table")
        if isinstance(raw.get("name"), str):
            where = f"{origin}: bot {raw['name']!r}"
        _no_unknown(raw, BOT_KEYS, where)
        bot = _bot(
            {**defaults, **raw, "params": {**defaults.get("params", {}), **raw.get("params", {})}}, where
        )
        if bot.name in seen:
            raise ConfigError(
                f"{origin}: duplicate bot name {bot.name!r} (bots #{seen[bot.name]} and #{number})"
            )
        seen[bot.name] = number
        # runbot.py names its files <exchange>_<ticker>_<strategy>: two such bots in one folder
        # would write into the same activity log and orders CSV.
        key = (bot.exchange.lower(), bot.ticker.upper(), bot.strategy.lower(), bot.log_dir or "logs")
        if key in outputs:
            raise ConfigError(
                f"{origin}: bots {outputs[key]!r} and {bot.name!r} trade the same exchange, ticker and "
                "strategy into the same log_dir; give one of them its own log_dir"
            )
        outputs[key] = bot.name
        bots.append(bot)
    return LaunchConfig(session, python, workdir, tuple(bots))


def _bot(raw: dict[str, Any], where: str) -> BotSpec:
    for key in REQUIRED:
        if key not in raw:
            raise ConfigError(f"{where}: missing field {key!r}")
    name = _text(raw["name"], f"{where}: name")
    if not _NAME.match(name):
        raise ConfigError(
            f"{where}: name {name!r}: start with a letter; then letters, digits, '-' or '_' (max 50)"
        )
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a table (take_profit = 0.02, ...)")
    for key, value in params.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"{where}: params.{key}: must be a number, string or true/false")
    extra = raw.get("args", [])
    if not isinstance(extra, list) or not all(isinstance(item, str) for item in extra):
        raise ConfigError(f'{where}: args must be a list of strings, e.g. ["--max-slippage", "0.3"]')
    optional = {key: raw.get(key) for key in ("env_file", "log_dir")}
    return BotSpec(
        name=name,
        exchange=_text(raw["exchange"], f"{where}: exchange"),
        ticker=_text(raw["ticker"], f"{where}: ticker"),
        quantity=_number_text(raw["quantity"], f"{where}: quantity"),
        strategy=_text(raw.get("strategy", "grid"), f"{where}: strategy"),
        env_file=None if optional["env_file"] is None else _text(optional["env_file"], f"{where}: env_file"),
        log_dir=None if optional["log_dir"] is None else _text(optional["log_dir"], f"{where}: log_dir"),
        params=dict(params),
        args=tuple(extra),
    )


def _no_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string")
    return value.strip()


def _number_text(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: must be a number")
    return _value_text(value)


def _value_text(value: Any) -> str:
    # repr of a TOML float is its shortest round-trip form: 0.02 stays "0.02".
    return repr(value) if isinstance(value, float) else str(value)


# -- commands --------------------------------------------------------------------------------------


def bot_arguments(bot: BotSpec) -> list[str]:
    """runbot.py's arguments for ``bot`` (named strategy flags; true flags bare, false ones left out)."""
    argv = ["--exchange", bot.exchange, "--ticker", bot.ticker, "--quantity", bot.quantity]
    argv += ["--strategy", bot.strategy]
    if bot.env_file is not None:
        argv += ["--env-file", bot.env_file]
    if bot.log_dir is not None:
        argv += ["--log-dir", bot.log_dir]
    for key, value in bot.params.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, _value_text(value)]
    return argv + list(bot.args)


def bot_command(config: LaunchConfig, bot: BotSpec) -> list[str]:
    return [config.python, str(ROOT / "runbot.py"), *bot_arguments(bot)]


def check_bot_flags(bot: BotSpec, where: str) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Run runbot.py's parser over the bot's flags (no env file read, nothing started); the
    parsed flags and the strategy's typed parameters."""
    import runbot

    parser = runbot.build_parser()
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            args = parser.parse_args(bot_arguments(bot))
            return args, runbot._strategy_parameters(parser, args)
    except SystemExit:
        reason = captured.getvalue().strip().splitlines()
        detail = reason[-1] if reason else "invalid flags"
        detail = detail.removeprefix("runbot.py: error: ").removesuffix(" (see --help)")
        raise ConfigError(f"{where}: {detail}") from None


def journal_file(config: LaunchConfig, bot: BotSpec) -> Path:
    """Where ``bot`` keeps its journal: its --log-dir (relative to workdir) and runbot's name."""
    import runbot
    from execution.journal import journal_path

    args, strategy_params = check_bot_flags(bot, f"bot {bot.name!r}")
    log_dir = Path(args.log_dir).expanduser()
    if not log_dir.is_absolute():
        log_dir = config.workdir / log_dir
    return journal_path(log_dir, runbot.bot_identity(args, strategy_params))


def tmux_start_commands(config: LaunchConfig, bot: BotSpec, new_session: bool) -> list[list[str]]:
    """The tmux invocation that starts ``bot`` in its own window and keeps the window at exit.

    ``;`` chains the two commands in one tmux call, so remain-on-exit is set before the server
    could notice an early exit.
    """
    target = f"{config.session}:{bot.name}"
    command = shlex.join(bot_command(config, bot))
    if new_session:
        create = ["new-session", "-d", "-s", config.session, "-n", bot.name, "-c", str(config.workdir)]
    else:
        create = ["new-window", "-d", "-t", f"{config.session}:", "-n", bot.name, "-c", str(config.workdir)]
    return [["tmux", *create, command, ";", "set-option", "-w", "-t", f"={target}", "remain-on-exit", "on"]]


# -- tmux ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    name: str
    pid: int
    dead: bool
    exit_status: int | None


def _tmux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False)


def session_exists(session: str) -> bool:
    return _tmux("has-session", "-t", f"={session}").returncode == 0


def list_windows(session: str) -> dict[str, Window]:
    if not session_exists(session):
        return {}
    listing = _tmux(
        "list-windows",
        "-t",
        f"={session}",
        "-F",
        "#{window_name}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}",
    )
    windows = {}
    for line in listing.stdout.splitlines():
        name, pid, dead, status = [*line.split("\t"), "", "", ""][:4]
        windows[name] = Window(name, int(pid or 0), dead == "1", int(status) if status.isdigit() else None)
    return windows


def start(config: LaunchConfig, dry_run: bool, out: Any) -> int:
    for bot in config.bots:
        check_bot_flags(bot, f"bot {bot.name!r}")
        if not dry_run and bot.env_file is not None:
            env_path = Path(bot.env_file).expanduser()
            if not (env_path if env_path.is_absolute() else config.workdir / env_path).is_file():
                raise ConfigError(
                    f"bot {bot.name!r}: env_file {bot.env_file} not found (relative to {config.workdir})"
                )
    if dry_run:
        new_session = True
        for bot in config.bots:
            for command in tmux_start_commands(config, bot, new_session):
                print(shlex.join(command), file=out)
            new_session = False
        return 0
    if not _have_tmux():
        raise ConfigError("tmux is not installed (apt-get install tmux), or use the systemd unit")
    windows = list_windows(config.session)
    new_session = not session_exists(config.session)
    for bot in config.bots:
        window = windows.get(bot.name)
        if window is not None and not window.dead:
            print(f"{bot.name}: already running (pid {window.pid}), left alone", file=out)
            continue
        if window is not None:
            result = _tmux(
                "respawn-window", "-t", f"={config.session}:{bot.name}", "-c", str(config.workdir),
                shlex.join(bot_command(config, bot)),
            )  # fmt: skip
        else:
            (command,) = tmux_start_commands(config, bot, new_session)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"{bot.name}: tmux failed: {result.stderr.strip()}", file=out)
            return 1
        new_session = False
        print(f"{bot.name}: started in tmux window {config.session}:{bot.name}", file=out)
    print(f"attach with: tmux attach -t {config.session}", file=out)
    return 0


def stop(config: LaunchConfig, timeout: float, dry_run: bool, out: Any) -> int:
    """Ctrl-C once in every running bot's window, then wait (bounded) for each to exit."""
    windows = list_windows(config.session) if not dry_run else {}
    names = [bot.name for bot in config.bots]
    if dry_run:
        for name in names:
            print(shlex.join(["tmux", "send-keys", "-t", f"={config.session}:{name}", "C-c"]), file=out)
        return 0
    running = [name for name in names if name in windows and not windows[name].dead]
    for name in names:
        if name not in windows:
            print(f"{name}: not running (no window)", file=out)
        elif windows[name].dead:
            print(f"{name}: already exited ({_exit_text(windows[name])})", file=out)
    for name in running:
        # One Ctrl-C only: a second one is runbot.py's forced exit, which may leave orders open.
        _tmux("send-keys", "-t", f"={config.session}:{name}", "C-c")
    deadline = time.monotonic() + timeout
    waiting = set(running)
    dead_since: dict[str, float] = {}
    while waiting and time.monotonic() < deadline:
        time.sleep(0.5)  # a plain CLI, no event loop here
        current = list_windows(config.session)
        now = time.monotonic()
        for name in sorted(waiting):
            window = current.get(name)
            if window is not None and not window.dead:
                continue
            dead_since.setdefault(name, now)
            # tmux may mark a pane dead a moment before it knows the exit status (and, when
            # its server cannot reap the child, never): wait a little for it, then report.
            if window is None or window.exit_status is not None or now - dead_since[name] >= 3:
                waiting.discard(name)
                print(f"{name}: stopped ({_exit_text(window)})", file=out)
    for name in sorted(waiting):
        print(
            f"{name}: STILL RUNNING after {timeout:g} s (attach: tmux attach -t {config.session})", file=out
        )
    return 1 if waiting else 0


def status(config: LaunchConfig, out: Any) -> int:
    windows = list_windows(config.session)
    rows = [("bot", "state", "pid", "command")]
    for bot in config.bots:
        window = windows.pop(bot.name, None)
        if window is None:
            state, pid = "not started", "-"
        elif window.dead:
            state, pid = _exit_text(window), "-"
        else:
            state, pid = "running", str(window.pid)
        rows.append((bot.name, state, pid, f"{bot.exchange} {bot.ticker} {bot.strategy}"))
    for window in windows.values():
        state = _exit_text(window) if window.dead else "running"
        rows.append((window.name, state, str(window.pid) if not window.dead else "-", "(not in this file)"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]), file=out)
    if not windows and not session_exists(config.session):
        print(f"(no tmux session {config.session!r})", file=out)
    journals = [journal_file(config, bot) for bot in config.bots]
    present = [path for path in journals if path.is_file()]
    if present:
        import status as journal_status

        print(file=out)
        journal_status.print_status(present, out)
    for bot, path in zip(config.bots, journals, strict=True):
        if not path.is_file():
            print(f"{bot.name}: no journal yet ({path})", file=out)
    return 0


def exec_bot(config: LaunchConfig, name: str) -> NoReturn:
    """Replace this process with the bot's runbot.py (systemd: signals reach the bot directly)."""
    bot = config.bot(name)
    check_bot_flags(bot, f"bot {name!r}")
    os.chdir(config.workdir)
    command = bot_command(config, bot)
    os.execv(command[0], command)


def _exit_text(window: Window | None) -> str:
    if window is None:
        return "window closed"
    if window.exit_status is None:
        return "exited, code unknown to tmux"
    return f"exited, code {window.exit_status}"


def _have_tmux() -> bool:
    try:
        return subprocess.run(["tmux", "-V"], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


# -- CLI -------------------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="launcher.py",
        description="Start, stop and list the bots of a TOML file, one tmux window per bot.",
        epilog="example config: deploy/bots.example.toml; systemd: deploy/perp-dex-bot@.service",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{start,stop,status,exec}")
    start_parser = commands.add_parser("start", help="start every bot in its own tmux window")
    start_parser.add_argument("config", type=Path)
    start_parser.add_argument("--dry-run", action="store_true", help="print the tmux commands, start nothing")
    stop_parser = commands.add_parser("stop", help="Ctrl-C every bot once and wait for it to exit")
    stop_parser.add_argument("config", type=Path)
    stop_parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for the bots to exit (default 90)"
    )
    stop_parser.add_argument("--dry-run", action="store_true", help="print the tmux commands, send nothing")
    status_parser = commands.add_parser(
        "status", help="each bot's window (alive or exit code), then its journal: position, take-profits, PnL"
    )
    status_parser.add_argument("config", type=Path)
    exec_parser = commands.add_parser("exec", help="run one bot in this process (for the systemd unit)")
    exec_parser.add_argument("config", type=Path)
    exec_parser.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "start":
            return start(config, args.dry_run, sys.stdout)
        if args.command == "stop":
            return stop(config, args.timeout, args.dry_run, sys.stdout)
        if args.command == "status":
            return status(config, sys.stdout)
        exec_bot(config, args.name)
    except ConfigError as exc:
        sys.stderr.write(f"launcher.py: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
