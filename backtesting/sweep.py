"""Parameter sweeps: one backtest per combination, on any ``concurrent.futures`` executor.

Each cell of the grid is a :class:`~backtesting.engine.BacktestSpec` (plain values, so it
pickles) run by :func:`run_cell` in whatever executor is given: a process pool over all cores
by default, a thread pool, or a distributed engine's executor — Dask's
``distributed.Client(...).get_executor()``, or a small adapter over Ray (see the README). The
executor only has to offer ``submit(fn, spec)`` returning a future with ``add_done_callback``
and ``result``; nothing in the strategies changes. Cells send back only their metrics, not
their fills and samples, so a large sweep does not drown the driver.

Ranking: net PnL after fees, best first; ties go to the smaller max drawdown.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import queue
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from backtesting.engine import BacktestSpec, run_backtest
from strategies.base_strategy import ParameterError
from strategies.factory import StrategyFactory


@dataclass
class SweepRow:
    """One cell's parameters and result metrics (``error`` when the run failed)."""

    label: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    error: str = ""
    rank: int = 0

    @property
    def net_pnl(self) -> Decimal:
        return Decimal(str(self.metrics.get("net_pnl", "-Infinity")))

    @property
    def max_drawdown(self) -> Decimal:
        return Decimal(str(self.metrics.get("max_drawdown", "Infinity")))


def parse_sweep(items: Sequence[str], strategy: str) -> dict[str, list[Any]]:
    """``["take_profit=0.01,0.02", "wait_time=5,30"]`` into typed value lists, checked by the
    strategy's own parameter specs. Raises ParameterError with a one-line reason."""
    specs = {spec.name: spec for spec in StrategyFactory.strategy_class(strategy).PARAMETERS}
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, separator, text = item.partition("=")
        name = key.strip().replace("-", "_")
        if not separator or not name or not text.strip():
            raise ParameterError(f"expected NAME=V1,V2,..., got {item!r}")
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise ParameterError(f"{strategy} has no parameter {name!r} (known: {known})")
        if name in grid:
            raise ParameterError(f"{name} given twice")
        values = []
        for raw in text.split(","):
            try:
                values.append(specs[name].convert(raw.strip()))
            except ParameterError as exc:
                raise ParameterError(f"{name}={raw.strip()}: {exc}") from None
        grid[name] = values
    return grid


def sweep_specs(base: BacktestSpec, grid: dict[str, list[Any]]) -> list[BacktestSpec]:
    """Every combination of ``grid`` applied to ``base`` (in a stable order), labelled."""
    names = list(grid)
    cells = []
    for combination in itertools.product(*(grid[name] for name in names)):
        params = dict(zip(names, combination, strict=True))
        label = " ".join(f"{name}={_text(value)}" for name, value in params.items())
        cells.append(BacktestSpec(**{**_fields(base), "label": label}).with_strategy_params(**params))
    return cells


def _fields(spec: BacktestSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def _text(value: Any) -> str:
    return str(value.value) if hasattr(value, "value") and not isinstance(value, Decimal) else str(value)


def run_cell(spec: BacktestSpec) -> SweepRow:
    """Run one cell (in a worker); returns its metrics only. Module-level, so it pickles."""
    # The swept values, in the grid's order, as the label spells them (see sweep_specs).
    params = dict(part.split("=", 1) for part in spec.label.split()) if spec.label else {}
    started = time.perf_counter()
    try:
        result = run_backtest(spec)
    except Exception as exc:
        return SweepRow(spec.label, params, error=f"{type(exc).__name__}: {exc}")
    metrics = {key: _plain(value) for key, value in asdict(result.metrics).items()}
    return SweepRow(spec.label, params, metrics, time.perf_counter() - started)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def default_executor(
    kind: str = "process", workers: int | None = None, scheduler: str | None = None
) -> Executor:
    """An executor for a sweep: ``process`` (all cores; the default), ``thread``, or ``dask``.

    ``dask`` submits each cell to a Dask cluster through ``distributed.Client.get_executor()``:
    the scheduler at ``scheduler`` (``tcp://host:8786``), or without one a LocalCluster of
    ``workers`` worker processes started here. ``shutdown()`` closes the client (and a cluster
    it started). Needs ``pip install dask[distributed]`` (pinned in requirements-dev.txt).
    """
    if scheduler is not None and kind != "dask":
        raise ValueError("a scheduler address needs the dask executor")
    count = workers or os.cpu_count() or 1
    if kind == "process":
        return ProcessPoolExecutor(max_workers=count)
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=count)
    if kind == "dask":
        return DaskExecutor(scheduler, workers=count)
    raise ValueError(f"unknown executor {kind!r} (process, thread or dask)")


class DaskExecutor(Executor):
    """``distributed.Client(...).get_executor()`` that also owns its client (and local cluster).

    Why a wrapper: the client's executor stops submitting on ``shutdown`` but leaves the client
    and any LocalCluster running; a sweep's executor must release what it started.
    """

    def __init__(self, scheduler: str | None = None, workers: int = 1, **cluster_options: Any) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError(
                "the dask executor needs dask[distributed]: pip install -r requirements-dev.txt"
            ) from None
        self.cluster: Any = None
        if scheduler is None:
            options = {
                "n_workers": workers,
                "threads_per_worker": 1,
                "dashboard_address": None,
                **cluster_options,
            }
            self.cluster = LocalCluster(**options)
            scheduler = self.cluster.scheduler_address
        self.client = Client(scheduler)
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_sweep(
    specs: Sequence[BacktestSpec],
    executor: Executor | None = None,
    on_done: Callable[[SweepRow, int, int], None] | None = None,
) -> list[SweepRow]:
    """Run every spec on ``executor`` (default: a process pool over all cores), ranked.

    ``on_done(row, finished, total)`` is called in this thread as each cell finishes (the CLI
    drives its progress bar with it). An executor passed in is left running for its owner.
    """
    own = executor is None
    pool = executor if executor is not None else default_executor()
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    try:
        for spec in specs:
            future = pool.submit(run_cell, spec)
            future.add_done_callback(finished.put)
        rows = []
        for count in range(1, len(specs) + 1):
            row = _row_of(finished.get())
            rows.append(row)
            if on_done is not None:
                on_done(row, count, len(specs))
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return rank(rows)


def _row_of(future: Any) -> SweepRow:
    try:
        return future.result()
    except Exception as exc:
        return SweepRow("?", {}, error=f"{type(exc).__name__}: {exc}")


def rank(rows: Iterable[SweepRow]) -> list[SweepRow]:
    """Best net PnL first, ties by smaller drawdown, failed cells last; numbers ranks from 1."""
    ordered = sorted(rows, key=lambda row: (bool(row.error), -row.net_pnl, row.max_drawdown, row.label))
    for position, row in enumerate(ordered, start=1):
        row.rank = position
    return ordered


SWEEP_COLUMNS = (
    ("net_pnl", "net PnL"),
    ("max_drawdown", "max DD"),
    ("completed_cycles", "cycles"),
    ("fills", "fills"),
    ("fees", "fees"),
    ("final_position", "end pos"),
)


def _header(name: str, strategy: str | None) -> str:
    """A parameter's column heading, one word a line, with its unit from the strategy's help.

    ``take_profit`` becomes "take / profit %": six characters wide instead of eleven, so a
    three-parameter sweep fits 80 columns without cutting a heading or a number.
    """
    unit = ""
    if strategy is not None:
        specs = {spec.name: spec for spec in StrategyFactory.strategy_class(strategy).PARAMETERS}
        text = specs[name].help if name in specs else ""
        unit = " %" if "PERCENT" in text else " s" if "SECONDS" in text else ""
    return name.replace("_", "\n") + unit


def render_sweep_table(rows: Sequence[SweepRow], top: int | None = 20, strategy: str | None = None) -> Any:
    """A rich Table of the ranked cells (the best ``top`` of them), readable at 80 columns.

    No vertical rules, headings stacked a word a line, and cells that fold rather than end in
    "…": a number is never shown cut. Money columns are in the quote currency.
    """
    from rich import box
    from rich.table import Table

    shown = rows if top is None else rows[:top]
    title = f"sweep: {len(rows)} runs, best net PnL first (ties: smaller drawdown)"
    caption = "net PnL, max DD, fees: quote currency; end pos: base units"
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 1))
    table.add_column("#", justify="right", no_wrap=True, min_width=len(str(len(rows))))
    names = list(rows[0].params) if rows else []
    for name in names:
        table.add_column(_header(name, strategy), justify="right", overflow="fold")
    for _, heading in SWEEP_COLUMNS:
        table.add_column(heading.replace(" ", "\n"), justify="right", overflow="fold")
    for row in shown:
        cells = [str(row.rank), *(row.params.get(name, "") for name in names)]
        if row.error:
            cells += [row.error] + [""] * (len(SWEEP_COLUMNS) - 1)
        else:
            cells += [_short(row.metrics.get(key)) for key, _ in SWEEP_COLUMNS]
        table.add_row(*cells)
    return table


def _short(value: Any) -> str:
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value
        if not number.is_finite():
            return value
        return (
            str(number.normalize())
            if abs(number) < 1 and number == number.quantize(Decimal("0.001"))
            else (f"{number.quantize(Decimal('0.01'))}")
        )
    return str(value)


def save_sweep(rows: Sequence[SweepRow], out_dir: str | Path) -> dict[str, Path]:
    """Write sweep.json and sweep.csv (one row per cell, ranked); returns the paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "sweep.json", "csv": folder / "sweep.csv"}
    paths["json"].write_text(json.dumps([asdict(row) for row in rows], indent=1) + "\n")
    names = list(rows[0].params) if rows else []
    metric_names = list(rows[0].metrics) if rows and rows[0].metrics else [key for key, _ in SWEEP_COLUMNS]
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "label", *names, *metric_names, "wall_seconds", "error"])
        for row in rows:
            writer.writerow(
                [
                    row.rank,
                    row.label,
                    *(row.params.get(name, "") for name in names),
                    *(row.metrics.get(name, "") for name in metric_names),
                    f"{row.wall_seconds:.3f}",
                    row.error,
                ]
            )
    return paths
