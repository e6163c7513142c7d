"""The loopback venues and the bot as child processes, for the end-to-end and kill tests.

A :class:`VenueProcess` runs ``python -m tests.mock_venues.<venue>_venue`` and is driven
through its control endpoint and read through its state endpoint; :func:`start_bot` runs
runbot.py against it; :class:`Wire` names each venue's wire fields for the checks.
"""

from __future__ import annotations

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

from tests.paradex_support import require_paradex_sdk

ROOT = Path(__file__).resolve().parent.parent
QUANTITY = Decimal("0.0100")
TAKE_PROFIT_PCT = Decimal("0.02")
TICK = Decimal("0.01")
STEP_TIMEOUT = 40.0  # a send cut short by the kill is given up after 5 look-ups over >= 12 s
POLL_INTERVAL = 0.02

T = TypeVar("T")


@dataclass(frozen=True)
class Wire:
    """How one venue's state endpoint names what the test checks."""

    exchange: str
    client_id: str  # order field holding our client id
    order_id: str
    quantity: str
    executed: str
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

    def placed_reduce_only(self, params: dict[str, Any]) -> bool:
        """Whether a placement request (signed params) asked for reduce-only."""
        return str(params.get("reduceOnly", "")).lower() == "true" or "REDUCE_ONLY" in (
            params.get("flags") or []
        )

    def cancelled_id(self, key: str, params: dict[str, Any]) -> str | None:
        """The venue order id a signed request cancels (None: not a cancel). Paradex names the
        order in the path (``DELETE /v1/orders/<id>``), the others in ``orderId``."""
        if key == self.cancel:
            ids = params.get("orderIdList")  # edgeX takes a list
            return str(ids[0]) if isinstance(ids, list) and ids else str(params["orderId"])
        if key.startswith(f"{self.cancel}/"):
            return key.rsplit("/", 1)[1]
        return None

    def immediate_or_cancel(self, order: dict[str, Any]) -> bool:
        return order.get("timeInForce") in ("IOC", "IMMEDIATE_OR_CANCEL") or order.get("instruction") == "IOC"

    def post_only(self, order: dict[str, Any]) -> bool:
        return (
            order.get("postOnly") is True
            or order.get("timeInForce") in ("GTX", "POST_ONLY")
            or order.get("instruction") == "POST_ONLY"
        )


WIRES = {
    "backpack": Wire(
        "backpack",
        "clientId",
        "id",
        "quantity",
        "executedQuantity",
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
    "grvt": Wire(
        "grvt",
        "clientOrderId",
        "orderId",
        "size",
        "tradedSize",
        "OPEN",
        "FILLED",
        "CANCELLED",
        "buy",
        "sell",
        "size",
        "GRVT_PRIVATE_KEY",
        "create_order",
        "cancel_order",
        "clientOrderId",
    ),
    "aster": Wire(
        "aster",
        "clientOrderId",
        "orderId",
        "origQty",
        "executedQty",
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
    "paradex": Wire(
        "paradex",
        "client_id",
        "id",
        "size",
        "filled_size",  # the mock's truth beside the wire's remaining_size
        "OPEN",
        "CLOSED",
        "CLOSED",
        "BUY",
        "SELL",
        "size",
        "PARADEX_L2_PRIVATE_KEY",
        "POST /v1/orders",
        "DELETE /v1/orders",
        "client_id",
    ),
    "edgex": Wire(
        "edgex",
        "clientOrderId",
        "id",
        "size",
        "cumFillSize",
        "OPEN",
        "FILLED",
        "CANCELED",
        "BUY",
        "SELL",
        "openSize",
        "EDGEX_API_SECRET",
        "/api/v2/private/order/createOrder",
        "/api/v2/private/order/cancelOrderById",
        "clientOrderId",
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


def venue_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VenueProcess]:
    """The ``venue`` fixture of the loopback process tests (parametrised over ``WIRES``)."""
    if request.param == "backpack":
        pytest.importorskip("bpx")
    if request.param == "edgex":
        pytest.importorskip("edgex_sdk")
    if request.param == "paradex":
        require_paradex_sdk()
    if request.param == "grvt":
        pytest.importorskip("pysdk")
    process = VenueProcess(tmp_path, WIRES[request.param])
    try:
        yield process
    finally:
        if process.process.poll() is None:
            assert process.stop(signal.SIGTERM) == 0, process.describe()
        process.close()
    assert not process.ready_file.exists()  # a clean stop removes it


def start_bot(
    tmp_path: Path, exchange: str, env_file: Path, *extra: str, log_dir: Path | None = None
) -> Child:
    """runbot.py as a trader starts it (output in ``tmp_path``, logs in ``log_dir``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
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
        str(log_dir or tmp_path / "logs"),
        *extra,
    ]
    venue_variables = ("BACKPACK_", "ASTER_", "EDGEX_", "GRVT_", "LIGHTER_", "PARADEX_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(venue_variables)}
    env["COLUMNS"] = "200"
    return Child("bot", command, tmp_path, env)
