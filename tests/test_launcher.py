"""launcher.py: the bots file is checked strictly, commands are built exactly, and (when tmux is
installed) a paper bot really starts in its window and stops cleanly on the launcher's Ctrl-C."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import launcher
from launcher import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "bots.example.toml"


def bot(**overrides: object) -> dict[str, object]:
    return {"name": "btc", "exchange": "paper", "ticker": "BTC", "quantity": "0.002", **overrides}


def test_example_config_builds_the_documented_commands() -> None:
    config = load_config(EXAMPLE)
    assert [b.name for b in config.bots] == ["paper-btc", "lighter-btc", "lighter-eth"]
    lighter = config.bot("lighter-btc")
    assert launcher.bot_command(config, lighter) == [
        sys.executable,
        str(ROOT / "runbot.py"),
        *["--exchange", "lighter", "--ticker", "BTC", "--quantity", "0.00273", "--strategy", "grid"],
        *["--env-file", "accounts/main.env", "--log-dir", "logs"],
        *["--direction", "buy", "--max-orders", "25"],  # from [defaults.params]
        *["--take-profit", "0.02", "--wait-time", "35", "--grid-step", "0.06"],
    ]
    for spec in config.bots:  # every bot's flags pass runbot.py's own parser
        launcher.check_bot_flags(spec, spec.name)


def test_flags_true_false_and_extra_args() -> None:
    config = parse_config({"bot": [bot(params={"boost": True, "random_timing": False}, args=["--no-risk"])]})
    assert launcher.bot_arguments(config.bots[0])[-2:] == ["--boost", "--no-risk"]


def test_dry_run_prints_one_tmux_command_per_bot(capsys: pytest.CaptureFixture[str]) -> None:
    assert launcher.main(["start", str(EXAMPLE), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    first = shlex.split(lines[0])
    assert first[:7] == ["tmux", "new-session", "-d", "-s", "perp-dex-bots", "-n", "paper-btc"]
    assert first[-7:] == [";", "set-option", "-w", "-t", "=perp-dex-bots:paper-btc", "remain-on-exit", "on"]
    assert shlex.split(first[9]) == launcher.bot_command(load_config(EXAMPLE), load_config(EXAMPLE).bots[0])
    assert shlex.split(lines[1])[:3] == ["tmux", "new-window", "-d"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bot": [bot(tickr="BTC")]}, "bot 'btc': unknown key 'tickr'"),
        ({"bots": []}, "unknown key 'bots'"),
        ({"bot": [{"name": "btc", "exchange": "paper", "ticker": "BTC"}]}, "missing field 'quantity'"),
        ({"bot": [bot(), bot(ticker="ETH")]}, "duplicate bot name 'btc' (bots #1 and #2)"),
        ({"bot": [bot(), bot(name="btc2")]}, "same log_dir"),
        ({"bot": [bot(name="1st")]}, "start with a letter"),
        ({"bot": [bot(quantity=True)]}, "quantity: must be a number"),
        ({"bot": [bot(args="--no-risk")]}, "args must be a list of strings"),
        ({"defaults": {"name": "x"}, "bot": [bot()]}, "[defaults]: unknown key 'name'"),
        ({}, "no bots"),
    ],
)
def test_bad_config_is_one_clear_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "bots.toml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_strategy_value_is_caught_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bots.toml"
    path.write_text('[[bot]]\nname = "a"\nexchange = "paper"\nticker = "BTC"\nquantity = 0.002\n'
                    "[bot.params]\ntake_profit = -1\n")  # fmt: skip
    assert launcher.main(["start", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "launcher.py: error: bot 'a': argument --take-profit: must be > 0\n"


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[bot]\n")
    assert launcher.main(["status", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"launcher.py: error: {broken}: not valid TOML")
    assert launcher.main(["status", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    duplicate = tmp_path / "dup.toml"
    duplicate.write_text("".join(f'[[bot]]\nname = "a"\nexchange = "paper"\nticker = "{t}"\nquantity = 1\n'
                                 for t in ("BTC", "ETH")))  # fmt: skip
    assert launcher.main(["start", str(duplicate), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == f"launcher.py: error: {duplicate}: duplicate bot name 'a' (bots #1 and #2)\n"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_start_status_and_clean_stop_on_paper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = f"pdb-test-{tmp_path.name}"[:40].replace(".", "-")
    path = tmp_path / "bots.toml"
    path.write_text(
        f'session = "{session}"\n[[bot]]\nname = "paper-btc"\nexchange = "paper"\nticker = "BTC"\n'
        f'quantity = "0.002"\nlog_dir = "{tmp_path}"\nargs = ["--duration", "300"]\n'
        "[bot.params]\ntake_profit = 0.02\nwait_time = 1\n"
    )
    activity = tmp_path / "paper_BTC_grid_buy_activity.log"
    try:
        assert launcher.main(["status", str(path)]) == 0
        assert f"paper-btc: no journal yet ({tmp_path / 'paper_BTC_grid_buy_journal.sqlite3'})" in (
            capsys.readouterr().out
        )
        assert launcher.main(["start", str(path)]) == 0
        assert "paper-btc: started in tmux window" in capsys.readouterr().out
        # Ctrl-C is only a clean stop once the bot has installed its handlers and said so.
        for _ in range(300):
            if activity.exists() and "started as paper_BTC_grid_buy" in activity.read_text():
                break
            time.sleep(0.1)
        assert "started as paper_BTC_grid_buy" in activity.read_text()
        assert launcher.main(["status", str(path)]) == 0
        out = capsys.readouterr().out
        assert "paper-btc  running" in out
        assert "paper_BTC_grid_buy" in out  # its journal's row: the bot is reconciled and trading
        assert launcher.main(["stop", str(path), "--timeout", "60"]) == 0
        # The clean stop shows in the bot's own log; tmux usually also knows the exit code.
        assert capsys.readouterr().out in (
            "paper-btc: stopped (exited, code 0)\n",
            "paper-btc: stopped (exited, code unknown to tmux)\n",
        )
        assert "stopped: SIGINT received" in activity.read_text()
        assert "(exit code 0)" in activity.read_text()
        assert launcher.main(["status", str(path)]) == 0
        out = capsys.readouterr().out
        assert "paper-btc  exited" in out
        assert "stopped" in out and "SIGINT received" in out  # the journal's last event and reason
    finally:
        subprocess.run(["tmux", "kill-session", "-t", f"={session}"], capture_output=True, check=False)


def test_exec_runs_one_bot_in_this_process_as_the_systemd_unit_does(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(
        f'[[bot]]\nname = "paper-btc"\nexchange = "paper"\nticker = "BTC"\nquantity = "0.002"\n'
        f'log_dir = "{tmp_path}"\nargs = ["--duration", "1"]\n'
    )
    command = [sys.executable, str(ROOT / "launcher.py"), "exec", str(path)]
    done = subprocess.run([*command, "paper-btc"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "duration of 1 s reached" in done.stdout
    unknown = subprocess.run([*command, "nope"], capture_output=True, text=True, timeout=60, check=False)
    assert unknown.returncode == 2
    assert unknown.stderr == "launcher.py: error: no bot named 'nope' (have: paper-btc)\n"
