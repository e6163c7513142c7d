"""runbot.py --exchange backpack|aster as a trader runs it, against each loopback venue.

Both run as their own processes: the venue (``python -m tests.mock_venues.<venue>_venue``)
writes a ready file and a .env with its URLs and a throwaway key (ED25519 for Backpack, an HMAC
secret for Aster); the bot reads the .env and signs every request; the venue verifies each
signature. The test plays the market through the venue's control endpoint and reads its truth
from the state endpoint: it waits for the bot's entry, trades through it, checks the take-profit
(reduce-only post-only sell at fill x (1 + 0.02 %) rounded up to the tick), fills that too, runs
a second cycle whose take-profit stays resting, and stops the bot with Ctrl-C while its third
entry rests. Each venue's wire names are read through a small :class:`Wire` table.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUANTITY = Decimal("0.0100")
TAKE_PROFIT_PCT = Decimal("0.02")
TICK = Decimal("0.01")
STEP_TIMEOUT = 20.0
POLL_INTERVAL = 0.02

T = TypeVar("T")


@dataclass(frozen=True)
class Wire:
    """How one venue's state endpoint names what the test checks."""

    exchange: str
    client_id: str  # order field holding our client id
    order_id: str
    quantity: str
    resting: str  # status of a resting order
    filled: str
    cancelled: str
    buy: str
    sell: str
    position: str  # field of state["position"]
    secret_variable: str
    place: str  # signed-request key of a placement, and of a cancel
    cancel: str
    placed_client_id: str  # params field of a placement holding our client id

    def post_only(self, order: dict[str, Any]) -> bool:
        return order.get("postOnly") is True or order.get("timeInForce") == "GTX"


WIRES = {
    "backpack": Wire(
        "backpack",
        "clientId",
        "id",
        "quantity",
        "New",
        "Filled",
        "Cancelled",
        "Bid",
        "Ask",
        "netQuantity",
        "BACKPACK_SECRET_KEY",
        "orderExecute",
        "orderCancel",
        "clientId",
    ),
    "aster": Wire(
        "aster",
        "clientOrderId",
        "orderId",
        "origQty",
        "NEW",
        "FILLED",
        "CANCELED",
        "BUY",
        "SELL",
        "positionAmt",
        "ASTER_SECRET_KEY",
        "POST /fapi/v1/order",
        "DELETE /fapi/v1/order",
        "newClientOrderId",
    ),
}


def take_profit_target(fill_price: Decimal) -> Decimal:
    raw = fill_price * (1 + TAKE_PROFIT_PCT / 100)
    return (raw / TICK).to_integral_value(rounding=ROUND_CEILING) * TICK


class Child:
    """A child process with its output in files (for failure messages)."""

    def __init__(self, name: str, command: list[str], tmp_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.stdout_path = tmp_path / f"{name}.stdout"
        self.stderr_path = tmp_path / f"{name}.stderr"
        self._stdout = self.stdout_path.open("w")
        self._stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            command, stdout=self._stdout, stderr=self._stderr, text=True, env=env, cwd=tmp_path
        )

    def output(self) -> tuple[str, str]:
        self._stdout.flush()
        self._stderr.flush()
        return self.stdout_path.read_text(), self.stderr_path.read_text()

    def describe(self) -> str:
        stdout, stderr = self.output()
        return f"\n--- {self.name} stdout ---\n{stdout[-4000:]}\n--- {self.name} stderr ---\n{stderr[-4000:]}"

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not stop within {STEP_TIMEOUT:.0f}s{self.describe()}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._stdout.close()
        self._stderr.close()


def wait_for(
    probe: Callable[[], T | None], what: str, watched: list[Child], timeout: float = STEP_TIMEOUT
) -> T:
    """Poll ``probe`` until it returns something, a watched process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        for child in watched:
            if child.process.poll() is not None:
                pytest.fail(
                    f"{child.name} exited ({child.process.returncode}) waiting for {what}{child.describe()}"
                )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f}s" + "".join(c.describe() for c in watched))
        time.sleep(POLL_INTERVAL)


class VenueProcess(Child):
    def __init__(self, tmp_path: Path, wire: Wire) -> None:
        self.wire = wire
        self.ready_file = tmp_path / "venue.ready"
        self.env_file = tmp_path / f"{wire.exchange}.env"
        command = [
            sys.executable,
            "-m",
            f"tests.mock_venues.{wire.exchange}_venue",
            "--port",
            "0",
            "--ready-file",
            str(self.ready_file),
            "--env-out",
            str(self.env_file),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        super().__init__("venue", command, tmp_path, env)
        self.info: dict[str, Any] = wait_for(self._ready, "venue ready file", [self])

    def _ready(self) -> dict[str, Any] | None:
        return json.loads(self.ready_file.read_text()) if self.ready_file.is_file() else None

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.info["state_url"], timeout=10) as response:
            return json.loads(response.read())

    def control(self, action: str, **args: Any) -> Any:
        body = json.dumps({"action": action, **args}).encode()
        request = urllib.request.Request(
            self.info["control_url"], data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["result"]

    def resting(self, *, reduce_only: bool, exclude: set[Any]) -> dict[str, Any] | None:
        """The bot's resting order of the given kind that the test has not handled yet."""
        for order in self.state()["orders"]:
            if (
                order["status"] == self.wire.resting
                and bool(order["reduceOnly"]) is reduce_only
                and order[self.wire.client_id] not in exclude
            ):
                return order
        return None

    def order(self, client_id: Any) -> dict[str, Any]:
        (order,) = [o for o in self.state()["orders"] if o[self.wire.client_id] == client_id]
        return order


@pytest.fixture(params=sorted(WIRES))
def venue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VenueProcess]:
    if request.param == "backpack":
        pytest.importorskip("bpx")
    process = VenueProcess(tmp_path, WIRES[request.param])
    try:
        yield process
    finally:
        if process.process.poll() is None:
            assert process.stop(signal.SIGTERM) == 0, process.describe()
        process.close()
    assert not process.ready_file.exists()  # a clean stop removes it


def start_bot(tmp_path: Path, exchange: str, env_file: Path, *extra: str) -> Child:
    command = [
        sys.executable,
        str(ROOT / "runbot.py"),
        "--exchange",
        exchange,
        "--ticker",
        "ETH",
        "--quantity",
        str(QUANTITY),
        "--take-profit",
        str(TAKE_PROFIT_PCT),
        "--wait-time",
        "0",
        "--requote-ticks",
        "100000",  # the test moves the market in jumps; a requote would race its trades
        "--duration",
        "60",  # safety net only: the test stops the bot with SIGINT long before
        "--env-file",
        str(env_file),
        "--log-dir",
        str(tmp_path / "logs"),
        *extra,
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BACKPACK_", "ASTER_"))}
    env["COLUMNS"] = "200"
    return Child("bot", command, tmp_path, env)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def rows_for(rows: list[dict[str, str]], event: str, role: str, client_id: Any) -> list[dict[str, str]]:
    return [
        r
        for r in rows
        if r["event"] == event and r["role"] == role and r["client_order_id"] == str(client_id)
    ]


def test_grid_places_fills_and_takes_profit_end_to_end(venue: VenueProcess, tmp_path: Path) -> None:
    wire = venue.wire
    secret = next(
        line.split("=", 1)[1]
        for line in venue.env_file.read_text().splitlines()
        if line.startswith(wire.secret_variable)
    )
    bot = start_bot(tmp_path, wire.exchange, venue.env_file)
    log_dir = tmp_path / "logs"
    orders_csv = log_dir / f"{wire.exchange}_ETH_grid_buy_orders.csv"
    watched = [bot, venue]
    cid = wire.client_id
    try:
        handled: set[Any] = set()
        cycles: list[dict[str, Any]] = []
        for cycle in (1, 2):
            entry = wait_for(
                lambda: venue.resting(reduce_only=False, exclude=handled), f"resting entry {cycle}", watched
            )
            handled.add(entry[cid])
            assert entry["side"] == wire.buy and wire.post_only(entry)
            assert Decimal(entry[wire.quantity]) == QUANTITY
            entry_price = Decimal(entry["price"])
            fills = venue.control("trade_through", price=str(entry_price))
            assert [(f["client_id"], Decimal(f["price"]), f["is_maker"]) for f in fills] == [
                (entry[cid], entry_price, True)
            ]

            take_profit = wait_for(
                lambda: venue.resting(reduce_only=True, exclude=handled), f"take-profit {cycle}", watched
            )
            handled.add(take_profit[cid])
            assert take_profit["side"] == wire.sell and wire.post_only(take_profit)
            assert Decimal(take_profit[wire.quantity]) == QUANTITY
            assert Decimal(take_profit["price"]) == take_profit_target(entry_price)
            cycles.append({"entry": entry, "take_profit": take_profit})

            if cycle == 1:  # the first take-profit fills; the second is left resting
                fills = venue.control("trade_through", price=take_profit["price"])
                assert [f["client_id"] for f in fills] == [take_profit[cid]]
                wait_for(
                    lambda tp=take_profit[cid]: (
                        any(
                            r["event"] == "fill" and r["client_order_id"] == str(tp)
                            for r in read_rows(orders_csv)
                        )
                        or None
                    ),
                    "take-profit fill in the orders CSV",
                    watched,
                )

        last_entry = wait_for(
            lambda: venue.resting(reduce_only=False, exclude=handled), "third entry resting", watched
        )
        exit_code = bot.stop()
        stdout, stderr = bot.output()
        state = venue.state()
    finally:
        bot.close()

    assert exit_code == 0, bot.describe()
    assert "Traceback" not in stdout + stderr
    assert "SIGINT received" in stdout

    # The venue's truth: cycle 1 closed, cycle 2 long with its take-profit resting, the third
    # entry cancelled by the shutdown.
    first, second = cycles
    assert venue.order(first["entry"][cid])["status"] == wire.filled
    assert venue.order(first["take_profit"][cid])["status"] == wire.filled
    assert venue.order(second["entry"][cid])["status"] == wire.filled
    assert venue.order(second["take_profit"][cid])["status"] == wire.resting
    assert venue.order(last_entry[cid])["status"] == wire.cancelled
    assert Decimal(state["position"][wire.position]) == QUANTITY

    # Every request was signed and verified; five orders and one cancel went out.
    assert state["signature_failures"] == 0
    requests = [(r.get("instruction") or r.get("path"), r["params"]) for r in state["signed_requests"]]
    places = [params for key, params in requests if key == wire.place]
    cancels = [params for key, params in requests if key == wire.cancel]
    assert len(places) == 5 and len(cancels) == 1
    take_profit_ids = {str(c["take_profit"][cid]) for c in cycles}
    for params in places:
        is_take_profit = str(params[wire.placed_client_id]) in take_profit_ids
        assert str(params.get("reduceOnly", "")).lower() in (
            ("true",) if is_take_profit else ("", "none", "false")
        )
    assert str(cancels[0]["orderId"]) == str(last_entry[wire.order_id])

    # The orders CSV: entry fills at the entry price, take-profits placed at exactly the target,
    # the exit fill, and the shutdown cancel of the resting entry.
    rows = read_rows(orders_csv)
    for c in cycles:
        entry_id, tp_id = c["entry"][cid], c["take_profit"][cid]
        (entry_fill,) = rows_for(rows, "fill", "entry", entry_id)
        fill_price = Decimal(entry_fill["fill_price"])
        assert fill_price == Decimal(c["entry"]["price"]) and Decimal(entry_fill["fill_size"]) == QUANTITY
        (tp_placed,) = rows_for(rows, "placed", "exit", tp_id)
        assert tp_placed["side"] == "sell" and Decimal(tp_placed["price"]) == take_profit_target(fill_price)
    (exit_fill,) = rows_for(rows, "fill", "exit", first["take_profit"][cid])
    assert Decimal(exit_fill["fill_price"]) == Decimal(first["take_profit"]["price"])
    assert not rows_for(rows, "fill", "exit", second["take_profit"][cid])
    shutdown_cancels = [r for r in rows if r["event"] == "cancelled" and r["detail"] == "shutdown"]
    assert [r["order_id"] for r in shutdown_cancels] == [str(last_entry[wire.order_id])]

    # The secret never leaves the .env file.
    activity_log = (log_dir / f"{wire.exchange}_ETH_grid_buy_activity.log").read_text()
    assert "FILL entry buy" in activity_log
    for text in (stdout, stderr, activity_log, orders_csv.read_text()):
        assert secret not in text


def test_boost_closes_each_filled_entry_at_market(venue: VenueProcess, tmp_path: Path) -> None:
    """--boost: every filled entry is closed by a reduce-only market order (IOC at the slippage
    bound on these venues), so the position goes back to flat after each fill."""
    wire = venue.wire
    bot = start_bot(tmp_path, wire.exchange, venue.env_file, "--boost")
    watched = [bot, venue]
    cid = wire.client_id
    try:
        handled: set[Any] = set()
        for cycle in (1, 2):
            entry = wait_for(
                lambda: venue.resting(reduce_only=False, exclude=handled), f"resting entry {cycle}", watched
            )
            handled.add(entry[cid])
            venue.control("trade_through", price=entry["price"])

            def closed(entry: dict[str, Any] = entry) -> dict[str, Any] | None:
                state = venue.state()
                exits = [o for o in state["orders"] if o["reduceOnly"] and o[cid] not in handled]
                if Decimal(state["position"][wire.position]) != 0 or not exits:
                    return None
                return exits[0]

            exit_order = wait_for(closed, f"market close {cycle}", watched)
            handled.add(exit_order[cid])
            assert exit_order["side"] == wire.sell and exit_order["timeInForce"] == "IOC"
            assert exit_order["status"] == wire.filled and Decimal(exit_order[wire.quantity]) == QUANTITY
            assert Decimal(exit_order["price"]) < Decimal(entry["price"])  # the bound lies below the bid
        exit_code = bot.stop()
        stdout, stderr = bot.output()
    finally:
        bot.close()
    assert exit_code == 0, bot.describe()
    assert "Traceback" not in stdout + stderr
    rows = read_rows(tmp_path / "logs" / f"{wire.exchange}_ETH_grid_buy_orders.csv")
    exit_fills = [r for r in rows if r["event"] == "fill" and r["role"] == "exit"]
    assert len(exit_fills) == 2 and all(r["side"] == "sell" and r["type"] == "market" for r in exit_fills)
