"""What a backtest came to: the numbers, the table, the files and the picture.

:func:`summarize` turns the raw record of a run (orders, fills, equity samples) into a
:class:`BacktestResult`. PnL is average-cost, from the fills, with the same
:class:`~helpers.position_ledger.PositionLedger` the live bot's journal uses: realized PnL before
fees, fees separately, unrealized PnL of what is left at the final mid, and
``net = realized + unrealized - fees + funding``. Drawdown is peak-to-trough on the sampled
equity curve. A completed take-profit cycle is an exit fill that completed a resting take-profit
order.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

from exchanges.base import OrderSide
from helpers.instruments import InverseLedger
from helpers.position_ledger import PositionLedger

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass
class OrderRecord:
    """An order decision as the venue saw it: placed or cancelled, at simulated ``time``."""

    time: float
    action: str
    order_id: str
    side: OrderSide
    order_type: str
    price: Decimal
    size: Decimal


@dataclass
class FillRecord:
    """One fill; ``role`` is entry or exit (as the bot tracked the order)."""

    time: float
    order_id: str
    side: OrderSide
    price: Decimal
    size: Decimal
    fee: Decimal
    maker: bool
    role: str
    completes_take_profit: bool


@dataclass(slots=True)
class Sample:
    """Equity and inventory at one simulated time (the fixed-interval curve): a run takes about
    2,000 (slots: made and held at less cost)."""

    time: float
    best_bid: Decimal
    best_ask: Decimal
    position: Decimal
    equity: Decimal
    realized_pnl: Decimal
    fees: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.best_bid + self.best_ask) / 2


#: What a sample reads besides its time: best bid, best ask, position, equity, realized PnL, fees.
SampleState = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]
#: :class:`Sample`'s fields after its time, in the order of a :data:`SampleState`.
_STATE_FIELDS = tuple(item.name for item in fields(Sample))[1:]
_EQUITY = _STATE_FIELDS.index("equity")


class SampleLog(Sequence[Sample]):
    """The equity curve as a run takes it: each sample's time and the state it read, one state
    tuple shared by the samples taken while only time moved. A :class:`Sample` is made when one
    is read: a run takes about 2,000 samples, and making each as it was taken cost about 3 % of
    a backtest whose results are mostly read as metrics (a sweep's, a benchmark's)."""

    __slots__ = ("states", "times")

    def __init__(self, samples: Iterable[Sample] = ()) -> None:
        self.times: list[float] = []
        self.states: list[SampleState] = []
        for sample in samples:
            self.add(sample.time, tuple(getattr(sample, name) for name in _STATE_FIELDS))  # type: ignore[arg-type]

    def add(self, time: float, state: SampleState) -> None:
        self.times.append(time)
        self.states.append(state)

    def equities(self) -> Iterator[Decimal]:
        return (state[_EQUITY] for state in self.states)

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [
                Sample(time, *state)
                for time, state in zip(self.times[index], self.states[index], strict=True)
            ]
        return Sample(self.times[index], *self.states[index])

    def __iter__(self) -> Iterator[Sample]:
        return (Sample(time, *state) for time, state in zip(self.times, self.states, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SampleLog):
            return self.times == other.times and self.states == other.states
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SampleLog({len(self)} samples)"


@dataclass
class BacktestMetrics:
    events: int
    simulated_seconds: float
    orders_placed: int
    orders_cancelled: int
    fills: int
    entry_fills: int
    exit_fills: int
    completed_cycles: int
    volume: Decimal
    fees: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    funding: Decimal
    net_pnl: Decimal
    start_equity: Decimal
    end_equity: Decimal
    max_drawdown: Decimal
    max_drawdown_pct: Decimal
    final_position: Decimal
    max_abs_position: Decimal
    stop_reason: str
    exit_code: int
    #: What money is counted in: the quote currency, or the settlement coin of inverse contracts.
    currency: str = "USD"
    #: USD per unit of ``currency`` at the final mid (1 when money is already in USD terms).
    usd_rate: Decimal = Decimal(1)


@dataclass
class BacktestResult:
    """A run's parameters, data description, metrics and records (everything saved)."""

    spec: dict[str, Any]
    data: dict[str, Any]
    metrics: BacktestMetrics
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)
    samples: SampleLog = field(default_factory=SampleLog)
    strategy_status: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    #: The orders and fills went to orders.csv and fills.csv in this folder as the run went,
    #: and are not held here (see :class:`RecordWriter`).
    streamed_to: Path | None = None

    @property
    def events_per_second(self) -> float:
        return self.metrics.events / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def decisions(self) -> list[tuple[Any, ...]]:
        """Orders placed and cancelled (time, action, side, type, price, size): what to compare."""
        return [
            (order.time, order.action, order.side.value, order.order_type, order.price, order.size)
            for order in self.orders
        ]

    def deterministic_view(self) -> dict[str, Any]:
        """Everything except wall-clock measurements: equal for equal data, parameters, seed."""
        view = self.to_dict()
        view.pop("wall_seconds")
        view.pop("events_per_second")
        return view

    def to_dict(self) -> dict[str, Any]:
        return _plain(
            {
                "spec": self.spec,
                "data": self.data,
                "metrics": asdict(self.metrics),
                "strategy_status": self.strategy_status,
                "wall_seconds": self.wall_seconds,
                "events_per_second": self.events_per_second,
                "orders": "orders.csv" if self.streamed_to else [asdict(order) for order in self.orders],
                "fills": "fills.csv" if self.streamed_to else [asdict(fill) for fill in self.fills],
                "samples": [asdict(sample) for sample in self.samples],
            }
        )


def _plain(value: Any) -> Any:
    """JSON-friendly: Decimals as exact strings, sides as their names."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, OrderSide):
        return value.value
    return value


class Tally:
    """Running totals of a run's orders and fills: all the metrics need, in constant memory."""

    def __init__(self, inverse_multiplier: Decimal | None = None) -> None:
        self.ledger: PositionLedger | InverseLedger = (
            InverseLedger(inverse_multiplier) if inverse_multiplier is not None else PositionLedger()
        )
        self.placed = self.cancelled = self.fills = self.entry_fills = self.exit_fills = self.cycles = 0
        self.max_abs_position = _ZERO

    def add_order(self, order: OrderRecord) -> None:
        if order.action == "placed":
            self.placed += 1
        elif order.action == "cancelled":
            self.cancelled += 1

    def add_fill(self, fill: FillRecord) -> None:
        self.ledger.apply_fill(fill.side, fill.price, fill.size, fill.fee)
        self.max_abs_position = max(self.max_abs_position, abs(self.ledger.size))
        self.fills += 1
        if fill.role == "entry":
            self.entry_fills += 1
        elif fill.role == "exit":
            self.exit_fills += 1
        if fill.completes_take_profit:
            self.cycles += 1


class RecordWriter:
    """Writes orders.csv and fills.csv row by row as a run goes, so a long run holds none of
    them in memory; the columns are those :func:`save_result` writes."""

    def __init__(self, folder: Path, tally: Tally) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.tally = tally
        self._files = [
            open(folder / "orders.csv", "w", newline=""),
            open(folder / "fills.csv", "w", newline=""),
        ]
        self._orders, self._fills = (csv.writer(handle) for handle in self._files)
        self._order_names = [item.name for item in fields(OrderRecord)]
        self._fill_names = [item.name for item in fields(FillRecord)]
        self._orders.writerow(["utc", *self._order_names])
        self._fills.writerow(["utc", *self._fill_names])

    def order(self, record: OrderRecord) -> None:
        self.tally.add_order(record)
        self._orders.writerow(
            [_utc(record.time), *(_plain(getattr(record, name)) for name in self._order_names)]
        )

    def fill(self, record: FillRecord) -> None:
        self.tally.add_fill(record)
        self._fills.writerow(
            [_utc(record.time), *(_plain(getattr(record, name)) for name in self._fill_names)]
        )

    def close(self) -> None:
        for handle in self._files:
            handle.close()


def summarize(
    *,
    spec: dict[str, Any],
    data: dict[str, Any],
    orders: Sequence[OrderRecord],
    fills: Sequence[FillRecord],
    samples: Sequence[Sample],
    start_equity: Decimal,
    funding: Decimal,
    final_bid: Decimal,
    final_ask: Decimal,
    stop_reason: str = "",
    exit_code: int = 0,
    strategy_status: dict[str, str] | None = None,
    wall_seconds: float = 0.0,
    inverse_multiplier: Decimal | None = None,
    currency: str = "USD",
    tally: Tally | None = None,
    streamed_to: Path | None = None,
) -> BacktestResult:
    """Compute the metrics from a run's records (pure: easy to check by hand).

    With ``inverse_multiplier`` the fills are inverse contracts of that many USD: sizes are
    contracts and every amount of money is in ``currency`` (the settlement coin), with its USD
    value at the final mid kept as ``usd_rate``.
    """
    if tally is None:
        tally = Tally(inverse_multiplier)
        for order in orders:
            tally.add_order(order)
        for fill in fills:
            tally.add_fill(fill)
    ledger = tally.ledger
    mid = (final_bid + final_ask) / 2
    unrealized = ledger.unrealized_pnl(mid)
    net = ledger.realized_pnl + unrealized - ledger.fees + funding
    log = samples if isinstance(samples, SampleLog) else SampleLog(samples)
    drawdown, drawdown_pct = max_drawdown(log.equities())
    first_time = data.get("first_time")
    last_time = data.get("last_time")
    metrics = BacktestMetrics(
        events=int(data.get("events_applied", 0)),
        simulated_seconds=(last_time - first_time)
        if first_time is not None and last_time is not None
        else 0.0,
        orders_placed=tally.placed,
        orders_cancelled=tally.cancelled,
        fills=tally.fills,
        entry_fills=tally.entry_fills,
        exit_fills=tally.exit_fills,
        completed_cycles=tally.cycles,
        volume=ledger.volume,
        fees=ledger.fees,
        realized_pnl=ledger.realized_pnl,
        unrealized_pnl=unrealized,
        funding=funding,
        net_pnl=net,
        start_equity=start_equity,
        end_equity=start_equity + net,
        max_drawdown=drawdown,
        max_drawdown_pct=drawdown_pct,
        final_position=ledger.size,
        max_abs_position=tally.max_abs_position,
        stop_reason=stop_reason,
        exit_code=exit_code,
        currency=currency,
        usd_rate=mid if inverse_multiplier is not None else Decimal(1),
    )
    return BacktestResult(
        spec=spec,
        data=data,
        metrics=metrics,
        orders=list(orders),
        fills=list(fills),
        samples=log,
        strategy_status=dict(strategy_status or {}),
        wall_seconds=wall_seconds,
        streamed_to=streamed_to,
    )


def max_drawdown(equity: Iterable[Decimal]) -> tuple[Decimal, Decimal]:
    """Largest peak-to-trough fall of ``equity``: (absolute, percent of that peak), each its own max."""
    worst = worst_pct = _ZERO
    peak: Decimal | None = None
    deepest = _ZERO  # the largest fall from the present peak
    previous = None
    for value in equity:
        if value is previous:
            continue  # samples share the state they were taken in: the same value changes nothing
        previous = value
        if peak is None or value > peak:
            peak = value
            deepest = _ZERO
            continue
        fall = peak - value
        if fall <= deepest:
            continue  # under one peak the percent grows with the fall: only a deeper one counts
        deepest = fall
        if fall > worst:
            worst = fall
        if peak > 0:
            worst_pct = max(worst_pct, fall / peak * _HUNDRED)
    return worst, worst_pct


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def _money(value: Decimal, places: str = "0.0001") -> str:
    return f"{value.quantize(Decimal(places)):,f}"


def _amount(m: BacktestMetrics, value: Decimal, places: str = "0.0001") -> str:
    """Money in the run's currency; coin amounts get 8 places and their USD value beside."""
    if m.usd_rate == 1:
        return _money(value, places)
    return f"{_money(value, '0.00000001')} {m.currency} ({_money(value * m.usd_rate, '0.01')} USD)"


def metrics_rows(result: BacktestResult) -> list[tuple[str, str]]:
    """The summary as (name, value) rows, in the order a trader reads them."""
    m = result.metrics
    rows = [
        ("net PnL (after fees)", _amount(m, m.net_pnl)),
        ("realized PnL", _amount(m, m.realized_pnl)),
        ("unrealized PnL", _amount(m, m.unrealized_pnl)),
        ("fees", _amount(m, m.fees)),
        ("funding", _amount(m, m.funding)),
        ("max drawdown", f"{_amount(m, m.max_drawdown)} ({m.max_drawdown_pct.quantize(Decimal('0.001'))} %)"),
        ("completed take-profit cycles", str(m.completed_cycles)),
        ("fills (entry / exit)", f"{m.fills} ({m.entry_fills} / {m.exit_fills})"),
        ("traded volume", _amount(m, m.volume, "0.01")),
        ("orders placed / cancelled", f"{m.orders_placed} / {m.orders_cancelled}"),
        ("final position (max |position|)", f"{m.final_position} ({m.max_abs_position})"),
        (
            "equity start -> end",
            f"{_amount(m, m.start_equity, '0.01')} -> {_amount(m, m.end_equity, '0.01')}",
        ),
        ("market events", f"{m.events:,}"),
        *_feed_rows(result.data.get("feed_stats")),
        ("simulated time", f"{m.simulated_seconds:,.1f} s"),
        ("wall time", f"{result.wall_seconds:.2f} s ({result.events_per_second:,.0f} events/s)"),
        ("stopped", m.stop_reason),
    ]
    rows += [(f"strategy: {key}", value) for key, value in result.strategy_status.items()]
    return rows


def _feed_rows(feed_stats: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What the recorded-feed reader skipped or clamped (none for synthetic data)."""
    if not feed_stats:
        return []
    kinds = feed_stats.get("malformed_by_kind") or {}
    detail = ", ".join(f"{kind} {count:,}" for kind, count in kinds.items())
    skipped = f"{feed_stats.get('malformed_lines', 0):,}" + (f" ({detail})" if detail else "")
    return [
        ("feed lines read", f"{feed_stats.get('lines_read', 0):,}"),
        ("feed lines skipped as malformed", skipped),
        ("feed timestamps clamped (ran backwards)", f"{feed_stats.get('clamped_timestamps', 0):,}"),
    ]


def render_table(result: BacktestResult, title: str = "backtest") -> Any:
    """A rich Table of :func:`metrics_rows`."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in metrics_rows(result):
        table.add_row(name, value)
    return table


def save_result(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write result.json (everything), fills.csv, orders.csv and samples.csv; returns the paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "result.json",
        "fills": folder / "fills.csv",
        "orders": folder / "orders.csv",
        "samples": folder / "samples.csv",
    }
    with open(paths["json"], "w") as handle:
        json.dump(result.to_dict(), handle, indent=1)
        handle.write("\n")
    if result.streamed_to is None:
        _write_csv(paths["fills"], FillRecord, result.fills)
        _write_csv(paths["orders"], OrderRecord, result.orders)
    elif Path(result.streamed_to).resolve() != folder.resolve():
        for name in ("fills", "orders"):
            shutil.copyfile(Path(result.streamed_to) / paths[name].name, paths[name])
    _write_csv(paths["samples"], Sample, result.samples)
    return paths


def _write_csv(path: Path, kind: type, rows: Sequence[Any]) -> None:
    names = [item.name for item in fields(kind)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["utc", *names])
        for row in rows:
            values = [_plain(getattr(row, name)) for name in names]
            writer.writerow([_utc(row.time), *values])


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="milliseconds")


def resting_take_profits(result: BacktestResult) -> list[OrderRecord]:
    """Take-profit orders still resting when the run ended, with their unfilled size.

    A take-profit is a limit order on the side opposite to the entries; it rests if it was placed
    and neither cancelled nor completely filled. Without an entry fill there is none.
    """
    entry_sides = {fill.side for fill in result.fills if fill.role == "entry"}
    if len(entry_sides) != 1:
        return []
    (entry_side,) = entry_sides
    filled: dict[str, Decimal] = {}
    for fill in result.fills:
        filled[fill.order_id] = filled.get(fill.order_id, _ZERO) + fill.size
    cancelled = {order.order_id for order in result.orders if order.action == "cancelled"}
    resting = []
    for order in result.orders:
        if order.action != "placed" or order.side is entry_side or order.order_type != "limit":
            continue
        left = order.size - filled.get(order.order_id, _ZERO)
        if order.order_id not in cancelled and left > 0:
            resting.append(replace(order, size=left))
    return resting


def load_records(folder: Path) -> dict[str, Any]:
    """Read orders.csv and fills.csv back (for the chart of a run that streamed them)."""
    records: dict[str, Any] = {}
    for name, kind in (("orders", OrderRecord), ("fills", FillRecord)):
        rows = []
        with open(folder / f"{name}.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                values: dict[str, Any] = {}
                for item in fields(kind):
                    text = row[item.name]
                    if item.name == "time":
                        values[item.name] = float(text)
                    elif item.name == "side":
                        values[item.name] = OrderSide(text)
                    elif item.name in ("maker", "completes_take_profit"):
                        values[item.name] = text == "True"
                    elif item.name in ("price", "size", "fee"):
                        values[item.name] = Decimal(text)
                    else:
                        values[item.name] = text
                rows.append(kind(**values))
        records[name] = rows
    return records


@dataclass
class ChartInput:
    """What the chart draws, as floats: built from a result in memory or streamed from its files.

    Why a separate shape: the chart of a long run is drawn from result.json and the CSVs by a
    process of its own (see :func:`plot_result`), which should not rebuild every order and fill
    as Decimal records just to place markers.
    """

    heading: str
    ticker: str
    metrics: BacktestMetrics
    times: list[float] = field(default_factory=list)
    mids: list[float] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)
    #: label -> (times, prices) of the fill markers; labels as in :data:`_FILL_GROUPS`.
    fills: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    #: (time placed, price) of each take-profit still resting at the end.
    resting: list[tuple[float, float]] = field(default_factory=list)


_FILL_GROUPS = (("entry", "^", "#1f77b4"), ("take-profit", "v", "#2ca02c"), ("other exit", "x", "#d62728"))


def _fill_group(role: str, completes_take_profit: bool) -> str:
    if role == "entry":
        return "entry"
    return "take-profit" if completes_take_profit else "other exit"


def _heading(spec: dict[str, Any], title: str | None) -> str:
    return title or f"{spec.get('strategy', '')} {spec.get('ticker', '')} backtest"


def chart_input(result: BacktestResult, title: str | None = None) -> ChartInput:
    """The chart of a result whose records are in memory."""
    chart = ChartInput(_heading(result.spec, title), result.spec.get("ticker") or "base", result.metrics)
    for sample in result.samples:
        chart.times.append(sample.time)
        chart.mids.append(float(sample.mid))
        chart.equity.append(float(sample.equity))
        chart.positions.append(float(sample.position))
    for fill in result.fills:
        times, prices = chart.fills.setdefault(_fill_group(fill.role, fill.completes_take_profit), ([], []))
        times.append(fill.time)
        prices.append(float(fill.price))
    chart.resting = [(order.time, float(order.price)) for order in resting_take_profits(result)]
    return chart


def chart_input_from_folder(folder: str | Path, title: str | None = None) -> ChartInput:
    """The chart of a saved run, streamed from result.json, fills.csv and orders.csv.

    Memory: the samples (about 2000), two floats per fill, and the take-profits placed (to tell
    which still rest at the end, as :func:`resting_take_profits` does).
    """
    base = Path(folder)
    saved = json.loads((base / "result.json").read_text())
    values = saved["metrics"]
    metrics = BacktestMetrics(
        **{
            item.name: Decimal(values[item.name]) if item.type == "Decimal" else values[item.name]
            for item in fields(BacktestMetrics)
            if item.name in values
        }
    )
    spec = saved.get("spec", {})
    chart = ChartInput(_heading(spec, title), spec.get("ticker") or "base", metrics)
    for sample in saved.get("samples", []):
        chart.times.append(float(sample["time"]))
        chart.mids.append(float((Decimal(sample["best_bid"]) + Decimal(sample["best_ask"])) / 2))
        chart.equity.append(float(sample["equity"]))
        chart.positions.append(float(sample["position"]))
    entry_sides: set[str] = set()
    filled: dict[str, Decimal] = {}
    with open(base / "fills.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            group = _fill_group(row["role"], row["completes_take_profit"] == "True")
            times, prices = chart.fills.setdefault(group, ([], []))
            times.append(float(row["time"]))
            prices.append(float(row["price"]))
            if row["role"] == "entry":
                entry_sides.add(row["side"])
            filled[row["order_id"]] = filled.get(row["order_id"], _ZERO) + Decimal(row["size"])
    if len(entry_sides) != 1:
        return chart
    (entry_side,) = entry_sides
    placed: dict[str, tuple[float, float, Decimal]] = {}
    with open(base / "orders.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["action"] == "cancelled":
                placed.pop(row["order_id"], None)
            elif row["side"] != entry_side and row["order_type"] == "limit":
                placed[row["order_id"]] = (float(row["time"]), float(row["price"]), Decimal(row["size"]))
    chart.resting = [
        (placed_at, price)
        for order_id, (placed_at, price, size) in placed.items()
        if size - filled.get(order_id, _ZERO) > 0
    ]
    return chart


def plot_result(result: BacktestResult, path: str | Path, title: str | None = None) -> Path:
    """Draw price with entries and take-profits, the equity curve and the inventory to a PNG.

    A run that streamed its records (the command line) and whose result.json is saved is drawn
    by a child process (``python -m backtesting.report``) from the files: matplotlib alone
    takes about 56 MB, which would otherwise sit on top of the backtest's own memory, and a
    chart's cost then does not grow with the records the run kept. ImportError when matplotlib
    is missing; RuntimeError (its last line) when the chart process fails.
    """
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("matplotlib is not installed")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(result.streamed_to) if result.streamed_to is not None else None
    if folder is not None and (folder / "result.json").is_file():
        import subprocess
        import sys

        command = [sys.executable, "-m", "backtesting.report", str(folder), str(target)]
        if title is not None:
            command += ["--title", title]
        done = subprocess.run(
            command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"the chart process failed: {lines[-1] if lines else done.returncode}")
        return target
    return draw_chart(chart_input(result, title), target)


def draw_chart(chart: ChartInput, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = _figure(chart)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target


def build_figure(result: BacktestResult, title: str | None = None) -> Any:
    """The chart as a matplotlib Figure (``plot_result`` saves it; tests read its axes)."""
    return _figure(chart_input(result, title))


def _figure(chart: ChartInput) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def when(stamps: Sequence[float]) -> list[datetime]:
        return [datetime.fromtimestamp(stamp, tz=timezone.utc) for stamp in stamps]

    times = when(chart.times)
    figure, (price_ax, equity_ax, inventory_ax) = plt.subplots(
        3, 1, figsize=(13, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.2]}
    )
    m = chart.metrics
    figure.suptitle(
        f"{chart.heading}   net PnL {_money(m.net_pnl, '0.01')}   "
        f"max drawdown {_money(m.max_drawdown, '0.01')} "
        f"({m.max_drawdown_pct.quantize(Decimal('0.01'))} %)   cycles {m.completed_cycles}   fills {m.fills}",
        fontsize=12,
    )

    price_ax.plot(times, chart.mids, color="#555555", lw=0.8, label="mid")
    for label, marker, colour in _FILL_GROUPS:
        fill_times, fill_prices = chart.fills.get(label, ([], []))
        if fill_times:
            price_ax.scatter(
                when(fill_times),
                fill_prices,
                marker=marker,
                s=36,
                color=colour,
                label=f"{label} ({len(fill_times)})",
                zorder=3,
                edgecolors="white" if marker != "x" else None,
                linewidths=0.5,
            )
    if chart.resting and times:
        # From the time each was placed to the end of the run: how long it has been waiting.
        price_ax.hlines(
            [price for _, price in chart.resting],
            when([placed for placed, _ in chart.resting]),
            times[-1],
            colors="#2ca02c",
            linestyles="dashed",
            linewidths=0.9,
            label=f"resting take-profit at the end ({len(chart.resting)})",
            zorder=2,
        )
    price_ax.set_ylabel("price (quote currency)")
    price_ax.legend(loc="best", fontsize=9, framealpha=0.8)
    price_ax.grid(alpha=0.3)

    equity = chart.equity
    equity_ax.plot(times, equity, color="#1f77b4", lw=1.2)
    if equity:
        running_peak = []
        peak = equity[0]
        for value in equity:
            peak = max(peak, value)
            running_peak.append(peak)
        equity_ax.fill_between(times, equity, running_peak, color="#d62728", alpha=0.25, label="drawdown")
        equity_ax.axhline(float(m.start_equity), color="#999999", lw=0.8, ls="--", label="start")
        equity_ax.legend(loc="best", fontsize=9, framealpha=0.8)
    equity_ax.set_ylabel("equity (quote currency)")
    equity_ax.grid(alpha=0.3)

    inventory_ax.step(times, chart.positions, where="post", color="#9467bd")
    inventory_ax.axhline(0, color="#999999", lw=0.8)
    for axis in (price_ax, equity_ax, inventory_ax):
        axis.ticklabel_format(axis="y", useOffset=False, style="plain")
    inventory_ax.set_ylabel(f"position ({chart.ticker})")
    inventory_ax.grid(alpha=0.3)
    inventory_ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M:%S", tz=timezone.utc))
    inventory_ax.set_xlabel("time (UTC)")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m backtesting.report FOLDER CHART.png [--title T]``: draw a saved run's chart."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m backtesting.report", description=main.__doc__)
    parser.add_argument("folder", type=Path, help="a results folder (result.json, fills.csv, orders.csv)")
    parser.add_argument("chart", type=Path, help="the PNG to write")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    try:
        draw_chart(chart_input_from_folder(args.folder, args.title), args.chart)
    except (OSError, ValueError, KeyError, ArithmeticError) as exc:
        sys.stderr.write(f"chart: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
