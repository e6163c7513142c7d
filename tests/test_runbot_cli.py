"""runbot.py turns flags into a typed TradingConfig, and bad input into one line and exit code 2."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import runbot
from exchanges.base import OrderSide

BASE = ["--exchange", "paper", "--ticker", "btc", "--quantity", "0.002", "--env-file", "/nonexistent/.env"]


def parse_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        runbot.build_config(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    return err


def test_valid_flags_build_a_typed_config() -> None:
    config = runbot.build_config(
        [
            *BASE,
            "--take-profit",
            "0.02",
            "--direction",
            "sell",
            "--max-orders",
            "25",
            "--wait-time",
            "35",
            "--grid-step",
            "0.06",
            "--boost",
            "--duration",
            "60",
            "--paper-seed",
            "11",
            "--paper-start-price",
            "3000",
        ]
    )
    assert config.ticker == "BTC"
    assert config.quantity == Decimal("0.002")
    params = config.strategy_params
    assert params["take_profit"] == Decimal("0.02")
    assert params["direction"] is OrderSide.SELL
    assert params["max_orders"] == 25
    assert params["grid_step"] == Decimal("0.06")
    assert params["boost"] is True
    assert config.duration == 60.0
    assert config.exchange_params == {"seed": 11, "start_price": Decimal("3000")}


def test_strategy_params_are_typed_by_the_strategy() -> None:
    config = runbot.build_config([*BASE, "--strategy-params", "take_profit=0.05", "max-orders=7"])
    assert config.strategy_params["take_profit"] == Decimal("0.05")
    assert config.strategy_params["max_orders"] == 7


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--take-profit", "abc"], "--take-profit"),
        (["--take-profit", "-1"], "--take-profit"),
        (["--max-orders", "0"], "--max-orders"),
        (["--direction", "up"], "--direction"),
        (["--strategy-params", "max_orders=many"], "--strategy-params max_orders"),
        (["--strategy-params", "nonsense=1"], "--strategy-params"),
        (["--strategy-params", "take_profit"], "--strategy-params"),
        (["--duration", "-5"], "--duration"),
        (["--paper-start-price", "0"], "--paper-start-price"),
        (["--paper-feed", "/nonexistent/feed.gz"], "--paper-feed"),
        (["--max-loss-pct", "20", "--emergency-loss-pct", "15"], "--emergency-loss-pct"),
    ],
)
def test_bad_values_name_the_flag(capsys: pytest.CaptureFixture[str], extra: list[str], flag: str) -> None:
    err = parse_error(capsys, [*BASE, *extra])
    assert flag in err


def test_bad_quantity_and_ticker(capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(capsys, ["--exchange", "paper", "--ticker", "BTC", "--quantity", "-1"])
    assert "--quantity" in err
    err = parse_error(capsys, ["--exchange", "paper", "--ticker", "B$C", "--quantity", "1"])
    assert "--ticker" in err


def test_unknown_exchange_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(capsys, ["--exchange", "nowhere", "--ticker", "BTC", "--quantity", "1"])
    assert "--exchange" in err


def test_venue_with_keys_needs_an_env_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = parse_error(
        capsys,
        [
            "--exchange",
            "lighter",
            "--ticker",
            "BTC",
            "--quantity",
            "1",
            "--env-file",
            str(tmp_path / "none.env"),
        ],
    )
    assert "--env-file" in err and ".env.example" in err


def test_paper_options_do_not_apply_to_other_venues(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = tmp_path / "keys.env"
    env.write_text("LIGHTER_ACCOUNT_INDEX=1\n")
    err = parse_error(
        capsys,
        [
            "--exchange",
            "lighter",
            "--ticker",
            "BTC",
            "--quantity",
            "1",
            "--env-file",
            str(env),
            "--paper-seed",
            "3",
        ],
    )
    assert "--paper" in err


def test_help_states_units_and_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runbot.build_config(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "PERCENT" in out and "0.02 %" in out
    assert "python runbot.py --exchange paper" in out
    assert "--take-profit" in out and "--paper-feed" in out


@pytest.mark.parametrize(
    "given",
    [
        ["--take-profit", "0.05", "--strategy-params", "take_profit=0.02"],
        ["--strategy-params", "take_profit=0.02", "--take-profit", "0.05"],
        ["--strategy-params", "take_profit=0.02", "take_profit=0.05"],
    ],
)
def test_a_parameter_given_twice_is_refused(capsys: pytest.CaptureFixture[str], given: list[str]) -> None:
    err = parse_error(capsys, [*BASE, *given])
    assert "take_profit is also given as" in err and "give it once" in err


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        runbot.build_config(["--help"])
    # One option per line, whatever the terminal width: join argparse's wrapped help lines.
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_defaults_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert "OrderSide" not in text
    assert "(default buy)" in text
    assert "negative disables (default off)" in text
    assert "--max-slippage MAX_SLIPPAGE market-order bound, percent from the touch (default 0.5)" in text
    options = text.split("paper venue (simulated", 1)[1]  # past the usage line
    for flag, _key, _parse, _help_text in runbot.PAPER_FLAGS:
        shown = options.split(f"{flag} ", 1)[1].split(" --", 1)[0]
        assert "(default " in shown, f"{flag} shows no default: {shown}"


def test_first_help_example_has_a_short_wait_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        runbot.build_config(["--help"])
    examples = capsys.readouterr().out.split("examples:", 1)[1]
    first = examples.split("python runbot.py", 2)[1]
    assert "--wait-time 10" in first
