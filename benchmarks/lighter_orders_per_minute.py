#!/usr/bin/env python3
"""Orders a minute a standard Lighter account gets through, against the mock's modelled limits.

Not a test. The loopback venue models a standard account (``set_account_limits``: 60 REST
requests and 60 transactions in any rolling minute, from Lighter's "Rate Limits" docs); the
real LighterClient with its default budget places post-only bids far below the touch as fast as
it is allowed, while a reader does one account read every 10 s (as a bot's risk checks do).
Reported: orders accepted a minute, the venue's limit refusals (429s / rejected transactions)
and the REST requests spent, for transactions over the WebSocket and over HTTP.

Run:  python benchmarks/lighter_orders_per_minute.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exchanges.base import ExchangeError, OrderSide  # noqa: E402
from exchanges.lighter import LighterClient  # noqa: E402
from helpers.clock import LiveClock  # noqa: E402
from helpers.trading_config import TradingConfig  # noqa: E402
from tests.mock_venues.lighter_venue import MockLighterVenue  # noqa: E402


async def measure(venue: MockLighterVenue, ws_orders: bool, seconds: float) -> dict[str, float]:
    venue.set_account_limits(rest_per_minute=60, tx_per_minute=60)
    before = dict(venue.limit_refusals)
    rest_before = sum(venue.stats().rest_calls.values())
    config = TradingConfig(
        ticker="ETH",
        exchange="lighter",
        strategy="grid",
        quantity=Decimal("0.01"),
        exchange_params={"ws_orders": ws_orders},
    )
    client = LighterClient(config, LiveClock(), env=venue.env())
    await client.connect()
    placed = errors = 0
    try:
        bid, _ = await client.fetch_bbo_prices("0")
        price = (bid * Decimal("0.8")).quantize(Decimal("0.01"))

        async def reader() -> None:
            while True:
                await asyncio.sleep(10)
                try:
                    await client.get_account_snapshot()
                except ExchangeError:
                    pass

        reading = asyncio.create_task(reader())
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            n += 1
            try:
                await client.place_limit_order(
                    "0",
                    OrderSide.BUY,
                    Decimal("0.0100"),
                    price - Decimal(n) / 100,
                    client.client_ids.next_id(time.time()),
                )
                placed += 1
            except ExchangeError:
                errors += 1
        elapsed = time.monotonic() - started
        reading.cancel()
    finally:
        await client.disconnect()
    return {
        "orders_per_minute": placed * 60 / elapsed,
        "errors": errors,
        "venue_429": venue.limit_refusals["rest"] - before["rest"],
        "venue_tx_refused": venue.limit_refusals["tx"] - before["tx"],
        "rest_requests": sum(venue.stats().rest_calls.values()) - rest_before,
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for label, ws_orders in (("websocket", True), ("http", False)):
        venue = MockLighterVenue(start_price=Decimal("3000")).start()
        try:
            result = asyncio.run(measure(venue, ws_orders, args.seconds))
        finally:
            venue.stop()
        print(
            f"{label:9} {result['orders_per_minute']:6.1f} orders/min over {result['seconds']:.0f}s; "
            f"errors {result['errors']}, venue 429s {result['venue_429']}, "
            f"transactions refused {result['venue_tx_refused']}, REST requests {result['rest_requests']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
