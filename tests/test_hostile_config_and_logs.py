"""Configuration and logging under hostile conditions: bad .env files, unusable --log-dir,
settings that must not be echoed, log rotation and level, a console whose reader went away."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import runbot
from exchanges.base import ConfigurationError
from helpers import log_setup

ROOT = Path(__file__).resolve().parent.parent
KEY = "ab" * 40


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """load_dotenv writes os.environ; put it back so tests do not leak keys into each other."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def argv(env_file: Path, *extra: str) -> list[str]:
    return [
        "--exchange",
        "paper",
        "--ticker",
        "BTC",
        "--quantity",
        "0.002",
        "--env-file",
        str(env_file),
        *extra,
    ]


def one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        runbot.build_config(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_binary_env_file_is_one_line_naming_the_flag_not_the_content(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = tmp_path / "keys.env"
    env.write_bytes(b"LIGHTER_API_PRIVATE_KEY=" + KEY.encode() + b"\x00\xff\xfe\x89PNG")
    env.chmod(0o600)
    err = one_line_exit_2(capsys, argv(env))
    assert "--env-file" in err and "not a text file" in err and KEY not in err


def test_unreadable_env_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "keys.env"
    env.write_text("A=1\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    # Root (CI) reads any file whatever its mode, so the refusal is simulated.
    monkeypatch.setattr(Path, "read_bytes", refuse)
    err = one_line_exit_2(capsys, argv(env))
    assert "--env-file" in err and "Permission denied" in err


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False), (0o400, False)])
def test_env_file_readable_by_others_gets_a_one_line_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: int, warned: bool
) -> None:
    env = tmp_path / "keys.env"
    env.write_text(f"HOSTILE_TEST_SECRET_KEY={KEY}\n")
    env.chmod(mode)
    runbot.build_config(argv(env))
    err = capsys.readouterr().err
    assert ("chmod 600" in err) is warned
    assert err.count("\n") == (1 if warned else 0)
    assert KEY not in err
    assert os.environ["HOSTILE_TEST_SECRET_KEY"] == KEY


@pytest.mark.parametrize("variable", ["LIGHTER_CHAIN_ID", "LIGHTER_ACCOUNT_INDEX", "LIGHTER_API_KEY_INDEX"])
def test_lighter_integer_settings_never_echo_the_value(variable: str) -> None:
    from exchanges.lighter import LighterSettings

    env = {
        "LIGHTER_API_PRIVATE_KEY": KEY,
        "LIGHTER_ACCOUNT_INDEX": "7",
        "LIGHTER_API_KEY_INDEX": "4",
        variable: "0x" + KEY,
    }
    with pytest.raises(ConfigurationError) as caught:
        LighterSettings.load(env, {})
    message = str(caught.value)
    assert variable in message and "integer" in message
    assert KEY[:6] not in message and "0xab" not in message


def test_lighter_network_error_does_not_echo_the_value() -> None:
    from exchanges.lighter import LighterSettings

    env = {"LIGHTER_API_PRIVATE_KEY": KEY, "LIGHTER_ACCOUNT_INDEX": "7", "LIGHTER_API_KEY_INDEX": "4"}
    with pytest.raises(ConfigurationError) as caught:
        LighterSettings.load({**env, "LIGHTER_NETWORK": "sk-" + KEY}, {})
    assert "LIGHTER_NETWORK" in str(caught.value) and KEY[:6] not in str(caught.value)


@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_unusable_log_dir_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log_dir = blocker if kind == "a file" else blocker / "logs"
    code = runbot.main(argv(tmp_path / "absent.env", "--log-dir", str(log_dir), "--duration", "1"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "--log-dir" in err, err


def test_log_flags_reach_the_config(tmp_path: Path) -> None:
    config = runbot.build_config(
        argv(
            tmp_path / "absent.env", "--file-log-level", "debug", "--log-max-mb", "0.5", "--log-backups", "2"
        )
    )
    assert (config.file_log_level, config.log_max_mb, config.log_backups) == ("DEBUG", 0.5, 2)
    defaults = runbot.build_config(argv(tmp_path / "absent.env"))
    assert (defaults.file_log_level, defaults.log_max_mb, defaults.log_backups) == ("INFO", 20.0, 5)


@pytest.mark.parametrize(
    ("flag", "value"), [("--log-backups", "0"), ("--log-max-mb", "-1"), ("--file-log-level", "x")]
)
def test_bad_log_flags_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str, value: str
) -> None:
    assert flag in one_line_exit_2(capsys, argv(tmp_path / "absent.env", flag, value))


def test_activity_log_rotates_by_size_and_keeps_n_backups(tmp_path: Path) -> None:
    path = log_setup.configure_logging(tmp_path, "paper_BTC_grid", "ERROR", max_bytes=4000, backups=2)
    log = logging.getLogger("rotation-test")
    try:
        for index in range(400):
            log.info("record %04d %s", index, "x" * 60)
    finally:
        log_setup.stop_logging()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [path.name, f"{path.name}.1", f"{path.name}.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4000
    assert "record 0399" in path.read_text()


def test_activity_log_level_defaults_to_info(tmp_path: Path) -> None:
    path = log_setup.configure_logging(tmp_path, "paper_BTC_grid", "ERROR")
    log = logging.getLogger("level-test")
    try:
        log.debug("debug detail")
        log.info("info line")
    finally:
        log_setup.stop_logging()
    text = path.read_text()
    assert "info line" in text and "debug detail" not in text
    path = log_setup.configure_logging(tmp_path, "paper_BTC_grid", "ERROR", file_level="DEBUG")
    try:
        log.debug("debug detail")
    finally:
        log_setup.stop_logging()
    assert "debug detail" in path.read_text()


def test_console_piped_into_head_keeps_trading_quietly(tmp_path: Path) -> None:
    """`runbot.py ... | head -3`: the reader goes away after three lines; the bot runs to its
    --duration with the file log, exits 0, and stderr has no BrokenPipeError traceback."""
    log_dir = tmp_path / "logs"
    command = [
        sys.executable,
        str(ROOT / "runbot.py"),
        *argv(tmp_path / "absent.env", "--log-dir", str(log_dir), "--duration", "4", "--take-profit", "0.02"),
        "--wait-time",
        "0",
        "--paper-step",
        "0.01",
        "--log-level",
        "DEBUG",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LIGHTER_")}
    bot = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert bot.stdout is not None and bot.stderr is not None
    head = [bot.stdout.readline() for _ in range(3)]
    bot.stdout.close()
    stderr = bot.stderr.read().decode()
    code = bot.wait(timeout=60)
    assert all(head), head
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Logging error" not in stderr, stderr
    activity = (log_dir / "paper_BTC_grid_buy_activity.log").read_text()
    assert "console output closed" in activity
    assert "summary for paper_BTC_grid" in activity.split("console output closed", 1)[1]
