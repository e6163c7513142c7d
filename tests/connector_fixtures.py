"""What every connector's unit tests against its loopback venue share: reading the captured
messages, a config with short timeouts, the ``venue`` and ``client`` fixtures, and a bounded
wait for a condition.

A new venue's test module writes::

    fixture = captured(FIXTURES_DIR / "edgex")
    config = venue_config("edgex")
    venue, client = venue_and_client(MockEdgexVenue, EdgexClient, config)

and then takes ``venue`` and ``client`` as test arguments.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig

#: Short enough that a test that waits for the venue fails in seconds, not minutes.
TEST_PARAMS: dict[str, Any] = {"order_ack_timeout": 2.0, "backoff_base": 0.05, "bbo_timeout": 5.0}


def captured(directory: Path) -> Callable[[str], Any]:
    """A reader of the captured messages in ``directory`` (parsed JSON)."""

    def fixture(name: str) -> Any:
        return json.loads((directory / name).read_text())

    return fixture


def venue_config(exchange: str) -> Callable[..., TradingConfig]:
    """A grid config on ETH for ``exchange`` with the test timeouts; keyword arguments are
    further ``exchange_params``."""

    def config(**params: Any) -> TradingConfig:
        return TradingConfig(
            ticker="ETH",
            exchange=exchange,
            strategy="grid",
            quantity=Decimal("0.01"),
            exchange_params={**TEST_PARAMS, **params},
        )

    return config


def started_venue(venue_cls: Callable[..., Any]) -> Any:
    """The ``venue`` fixture: a loopback venue started at 3000 (in its own thread, so the fixture
    needs no event loop), stopped after the test."""

    @pytest.fixture
    def venue() -> Iterator[Any]:
        mock = venue_cls(start_price=Decimal("3000")).start()
        try:
            yield mock
        finally:
            mock.stop()

    return venue


def venue_and_client(
    venue_cls: Callable[..., Any], client_cls: Callable[..., Any], config: Callable[..., TradingConfig]
) -> tuple[Any, Any]:
    """The ``venue`` fixture (:func:`started_venue`) and the ``client`` fixture (connected to it
    with the venue's .env, disconnected after)."""
    venue = started_venue(venue_cls)

    @pytest.fixture
    async def client(venue: Any) -> AsyncIterator[Any]:
        bot = client_cls(config(), LiveClock(), env=venue.env())
        await bot.connect()
        try:
            yield bot
        finally:
            await bot.disconnect()

    return venue, client


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
