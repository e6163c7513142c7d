"""The README's Ray recipe for sweeps, run as written on a local one-CPU Ray instance.

Ray is not a project requirement (it is large and not needed to trade or backtest), so this
test is skipped unless ray is installed; it was run with ray 2.60.0 on Python 3.11.7 in a
separate virtualenv (see the README's Sweeps paragraph).
"""

from __future__ import annotations

from concurrent.futures import Executor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backtesting.engine import BacktestSpec, prepare_data
from backtesting.sweep import default_executor, run_sweep, sweep_specs

ray = pytest.importorskip("ray")


class RayExecutor(Executor):
    """The README's adapter, unchanged."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return ray.remote(fn).remote(*args, **kwargs).future()


def test_the_readme_ray_recipe_runs_a_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token file written to the home folder
    base = BacktestSpec(
        synthetic_events=3000, cache_dir=str(tmp_path / "cache"), strategy_params={"wait_time": 5.0}
    )
    prepare_data(base)
    specs = sweep_specs(base, {"take_profit": [Decimal("0.02"), Decimal("0.05")]})
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        rows = run_sweep(specs, RayExecutor())
    finally:
        ray.shutdown()
    local = run_sweep(specs, default_executor("thread", 1))
    assert all(not row.error for row in rows) and len(rows) == 2
    assert {r.label: r.metrics for r in rows} == {r.label: r.metrics for r in local}
