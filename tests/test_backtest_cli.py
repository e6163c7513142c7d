"""backtest.py: bad input is one line and exit code 2; runs and sweeps write their results."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D
from pathlib import Path

import pytest

import backtest
from backtesting.engine import BacktestSpec
from backtesting.sweep import SweepRow, parse_sweep, rank, run_sweep, save_sweep, sweep_specs
from strategies.base_strategy import ParameterError
from tests.shared_paths import RECORDED_FEED

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give the market data"),
        (["--feed", "/no/such/file.gz"], "file not found"),
        (["--synthetic-events", "0"], "--synthetic-events"),
        (["--synthetic-events", "100", "--take-profit", "-1"], "--take-profit"),
        (["--synthetic-events", "100", "--sweep", "take_profit=0.1,abc"], "--sweep"),
        (["--synthetic-events", "100", "--sweep", "no_such=1"], "no parameter 'no_such'"),
        (["--synthetic-events", "100", "--paper-replay-speed", "2"], "not used in a backtest"),
        (["--synthetic-events", "100", "--max-events", "5"], "--max-events"),
        (["--synthetic-events", "100", "--exchange", "lighter"], "paper venue only"),
        (["--synthetic-events", "100", "--paper-maker-fee", "5"], "maker_fee_pct"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        backtest.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("backtest.py: error:") and message in err


def test_strategy_flags_of_runbot_work_unchanged() -> None:
    _, spec, grid = backtest.parse(
        [
            "--synthetic-events",
            "10",
            "--take-profit",
            "0.05",
            "--direction",
            "sell",
            "--boost",
            "--strategy-params",
            "max_orders=3",
            "--paper-seed",
            "4",
            "--sweep",
            "wait_time=5,30",
        ]
    )
    assert spec.strategy_params["take_profit"] == D("0.05")
    assert spec.strategy_params["direction"].value == "sell"
    assert spec.strategy_params["boost"] is True and spec.strategy_params["max_orders"] == 3
    assert spec.exchange_params == {"seed": 4}
    assert grid == {"wait_time": [5.0, 30.0]}


def test_a_run_writes_table_json_csv_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "run"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "backtest.py"),
            "--feed",
            str(RECORDED_FEED),
            "--max-events",
            "20000",
            "--take-profit",
            "0.02",
            "--wait-time",
            "20",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "net PnL (after fees)" in completed.stdout and "completed take-profit cycles" in completed.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["metrics"]["events"] == 20000
    # The command line streams orders and fills to their CSV files as the run goes.
    assert result["fills"] == "fills.csv" and result["orders"] == "orders.csv"
    assert len((out / "fills.csv").read_text().splitlines()) == result["metrics"]["fills"] + 1
    assert (out / "samples.csv").is_file() and (out / "orders.csv").is_file()
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_on_a_thread_executor_ranks_by_net_pnl(tmp_path: Path) -> None:
    base = BacktestSpec(synthetic_events=3000, cache_dir=str(tmp_path), strategy_params={"wait_time": 5.0})
    grid = parse_sweep(["take_profit=0.01,0.05", "grid_step=-1,0.05"], "grid")
    specs = sweep_specs(base, grid)
    assert [spec.label for spec in specs][:2] == [
        "take_profit=0.01 grid_step=-1",
        "take_profit=0.01 grid_step=0.05",
    ]
    seen: list[int] = []
    with ThreadPoolExecutor(max_workers=2) as executor:
        rows = run_sweep(specs, executor, lambda row, done, total: seen.append(done))
    assert seen == [1, 2, 3, 4]
    assert [row.rank for row in rows] == [1, 2, 3, 4]
    assert not any(row.error for row in rows)
    pnl = [row.net_pnl for row in rows]
    assert pnl == sorted(pnl, reverse=True)
    paths = save_sweep(rows, tmp_path / "sweep")
    assert paths["csv"].read_text().splitlines()[0].startswith("rank,label,take_profit,grid_step,")
    assert len(json.loads(paths["json"].read_text())) == 4


def test_ranking_breaks_ties_by_drawdown_and_puts_failures_last() -> None:
    rows = rank(
        [
            SweepRow("a", {}, {"net_pnl": "5", "max_drawdown": "3"}),
            SweepRow("b", {}, error="boom"),
            SweepRow("c", {}, {"net_pnl": "5", "max_drawdown": "1"}),
            SweepRow("d", {}, {"net_pnl": "7", "max_drawdown": "9"}),
        ]
    )
    assert [row.label for row in rows] == ["d", "c", "a", "b"]


def test_sweep_values_are_checked_by_the_strategy() -> None:
    with pytest.raises(ParameterError, match="take_profit=0"):
        parse_sweep(["take_profit=0"], "grid")
    with pytest.raises(ParameterError, match="given twice"):
        parse_sweep(["wait_time=1", "wait_time=2"], "grid")


def test_help_lists_only_flags_a_backtest_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        backtest.main(["--help"])
    text = capsys.readouterr().out
    for refused in ("--paper-feed", "--paper-replay-speed", "--env-file", "--log-dir", "--exchange"):
        assert refused not in text
    for flag, instead in (("--log-dir", "--out"), ("--env-file", "needs no keys")):
        with pytest.raises(SystemExit):
            backtest.main(["--synthetic-events", "100", flag, "x"])
        assert instead in capsys.readouterr().err


def test_cache_dir_default_agrees_between_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    from backtesting.feed_cache import default_cache_dir

    with pytest.raises(SystemExit):
        backtest.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "~/.cache/perp-dex-bot/feeds" in text and "~/.cache/perp-dex-bot/feeds" in readme
    assert "$XDG_CACHE_HOME/perp-dex-bot/feeds" in text and "$XDG_CACHE_HOME/perp-dex-bot/feeds" in readme
    assert default_cache_dir().parts[-2:] == ("perp-dex-bot", "feeds")


def test_sweep_table_is_readable_at_80_columns() -> None:
    from rich.console import Console

    from backtesting.sweep import SweepRow, rank, render_sweep_table

    metrics = {
        "net_pnl": "-1234.5678",
        "max_drawdown": "2345.678",
        "completed_cycles": 12345,
        "fills": 123456,
        "fees": "456.789",
        "final_position": "0.052",
    }
    rows = rank(
        SweepRow(f"cell {n}", {"take_profit": "0.02", "wait_time": "120.0", "grid_step": "0.05"}, metrics)
        for n in range(12)
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(render_sweep_table(rows, 20, "grid"))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for heading in ("take", "profit %", "wait", "time s", "grid", "step %", "net", "PnL", "max", "DD"):
        assert heading in text
    lines = [line.split() for line in text.splitlines()]
    ranked = [line for line in lines if line and line[0].isdigit()]
    assert [line[0] for line in ranked] == [str(n) for n in range(1, 13)]
    params, numbers = ranked[0][1:4], ranked[0][4:]
    assert params == ["0.02", "120.0", "0.05"]
    assert numbers == ["-1234.57", "2345.68", "12345", "123456", "456.79", "0.052"]


def test_every_run_gets_its_own_folder_and_out_is_never_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = BacktestSpec(synthetic_events=10)
    first = backtest.results_folder(None, False, spec, False)
    second = backtest.results_folder(None, False, spec, False)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith("grid_synthetic-10-seed7_")

    out = tmp_path / "mine"
    assert backtest.results_folder(out, False, spec, False) == out  # absent or empty: fine
    out.mkdir()
    (out / "chart.png").write_bytes(b"old")
    (out / "notes.txt").write_text("kept")
    with pytest.raises(ValueError, match="already holds files; add --overwrite"):
        backtest.results_folder(out, False, spec, False)
    backtest.results_folder(out, True, spec, False)
    assert not (out / "chart.png").exists()  # an old chart cannot sit beside a new result
    assert (out / "notes.txt").read_text() == "kept"


def test_an_occupied_out_folder_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "result.json").write_text("{}")
    code = backtest.main(["--synthetic-events", "10", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--overwrite" in err


def test_a_streamed_run_writes_what_an_in_memory_run_holds(tmp_path: Path) -> None:
    from backtesting.engine import run_backtest
    from backtesting.report import load_records

    spec = BacktestSpec(
        synthetic_events=20_000,
        cache_dir=str(tmp_path / "cache"),
        strategy_params={"take_profit": D("0.02"), "wait_time": 30.0},
    )
    held = run_backtest(spec)
    streamed = run_backtest(spec, tmp_path / "out")
    assert streamed.fills == [] and streamed.orders == []
    assert held.metrics.completed_cycles > 10
    assert streamed.metrics == held.metrics
    records = load_records(tmp_path / "out")
    assert [(f.order_id, f.role, f.completes_take_profit, f.price) for f in records["fills"]] == [
        (f.order_id, f.role, f.completes_take_profit, f.price) for f in held.fills
    ]
    assert len(records["orders"]) == len(held.orders)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ticker", "BTCUSD_PERP"], "size step 1 (contracts)"),  # 0.002 of an inverse contract
        (["--ticker", "NOSUCHCOIN"], "no synthetic market for NOSUCHCOIN"),
    ],
)
def test_an_impossible_instrument_is_one_line_exit_2_and_no_folder(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert backtest.main(["--synthetic-events", "100", "--cache-dir", str(tmp_path / "c"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


#: Modules a single backtest has no use for: the sweep's process pool, the recorded-feed gzip
#: decoder, the env-file reader, the live connectors' HTTP client, array and chart libraries
#: (the chart is drawn by a process of its own). Each one that creeps back into the run's
#: imports costs every backtest its memory.
NOT_IN_A_BACKTEST = (
    "backtesting.sweep",
    "concurrent.futures.process",
    "multiprocessing",
    "isal",
    "dotenv",
    "aiohttp",
    "numpy",
    "pandas",
    "matplotlib",
    "hypothesis",
)


def test_a_synthetic_backtest_imports_none_of_the_heavy_modules(tmp_path: Path) -> None:
    """A whole run (cache written, run, result files saved) in a fresh interpreter."""
    script = (
        "import sys\n"
        "import backtest\n"
        f"argv = ['--synthetic-events', '3000', '--paper-seed', '7', '--take-profit', '0.02',"
        f" '--wait-time', '30', '--no-plot', '--cache-dir', {str(tmp_path / 'cache')!r},"
        f" '--out', {str(tmp_path / 'out')!r}]\n"
        "code = backtest.main(argv)\n"
        f"heavy = {NOT_IN_A_BACKTEST!r}\n"
        "print(code, sorted(name for name in heavy if name in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert completed.stdout.strip().splitlines()[-1] == "0 []"
    assert (tmp_path / "out" / "result.json").is_file()
