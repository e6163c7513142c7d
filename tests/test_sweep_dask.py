"""Sweeps on a real distributed engine: a Dask LocalCluster with a worker process of its own.

The cells travel to the worker pickled (``BacktestSpec`` and ``run_cell``) through the same
``run_sweep`` path ``backtest.py --sweep`` uses, and must come back with exactly the metrics a
local thread pool gives.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import backtest
from backtesting.engine import BacktestSpec, prepare_data
from backtesting.sweep import DaskExecutor, default_executor, run_sweep, sweep_specs

pytest.importorskip("distributed")

EVENTS = "3000"


def _specs(tmp_path: Path) -> list[BacktestSpec]:
    base = BacktestSpec(
        synthetic_events=int(EVENTS),
        cache_dir=str(tmp_path / "cache"),
        strategy_params={"wait_time": 5.0},
    )
    prepare_data(base)
    return sweep_specs(base, {"take_profit": [Decimal("0.02"), Decimal("0.05")]})


def _by_label(rows: Any) -> dict[str, Any]:
    return {row.label: (row.metrics, row.error) for row in rows}


def test_a_sweep_runs_on_a_dask_local_cluster_with_the_local_results(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    local = run_sweep(specs, default_executor("thread", 2))
    executor = DaskExecutor(workers=1)
    try:
        assert executor.cluster is not None and len(executor.client.scheduler_info()["workers"]) == 1
        rows = run_sweep(specs, executor)
        executed = executor.client.run(lambda dask_worker: dask_worker.state.executed_count)
    finally:
        executor.shutdown()
    assert sum(executed.values()) == len(specs)  # every cell ran on the cluster's worker
    assert all(not row.error for row in rows) and rows[0].metrics["events"] == int(EVENTS)
    assert _by_label(rows) == _by_label(local)
    assert executor.client.status == "closed"


def test_backtest_sweep_command_line_on_dask(tmp_path: Path) -> None:
    common = ["--synthetic-events", EVENTS, "--cache-dir", str(tmp_path / "cache"), "--wait-time", "5"]
    common += ["--sweep", "take_profit=0.02,0.05"]
    assert (
        backtest.main([*common, "--executor", "dask", "--workers", "1", "--out", str(tmp_path / "dask")]) == 0
    )
    assert backtest.main([*common, "--executor", "thread", "--out", str(tmp_path / "thread")]) == 0

    def saved(name: str) -> dict[str, Any]:
        rows = json.loads((tmp_path / name / "sweep.json").read_text())
        return {row["label"]: (row["rank"], row["metrics"], row["error"]) for row in rows}

    assert saved("dask") == saved("thread") and len(saved("dask")) == 2


def test_a_scheduler_address_needs_the_dask_executor(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        backtest.main(["--synthetic-events", "10", "--sweep", "take_profit=0.02", "--scheduler", "tcp://x:1"])
    assert exit_info.value.code == 2
    assert "needs --executor dask" in capsys.readouterr().err
