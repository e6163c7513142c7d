#!/usr/bin/env python3
"""A batch of N places / cancels against N single sends, on the loopback Lighter venue.

Not a test. The real LighterClient (real signing) against the mock, limits off. For N post-only
bids far below the touch it measures, per way of sending, the wall time from the first call to
the last answer (every order acknowledged as OPEN, or CANCELLED), and the budget used:
transaction tokens taken from the client's limiter (the venue counts a batch as one request),
transaction frames/requests the venue received, and REST requests. Ways: ``single`` (one call
after the other, as the bot's old shutdown loop did), ``gather`` (the single calls concurrently:
the contract's default batch) and ``batch`` (Lighter's sendtxbatch). Reported: median of the
rounds.

Run:  python benchmarks/lighter_batch.py [--orders 10] [--rounds 5] [--http] [--rest-delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exchanges.base import BaseExchangeClient, LimitOrderRequest, OrderSide  # noqa: E402
from exchanges.lighter import LighterClient  # noqa: E402
from helpers.clock import LiveClock  # noqa: E402
from helpers.trading_config import TradingConfig  # noqa: E402
from tests.mock_venues.lighter_venue import MockLighterVenue  # noqa: E402

QTY = Decimal("0.0100")


def tx_requests(venue: MockLighterVenue) -> int:
    stats = venue.stats()
    frames = sum(1 for m in stats.ws_messages_in if str(m.get("type", "")).startswith("jsonapi/"))
    http = sum(n for path, n in stats.rest_calls.items() if "sendTx" in path)
    return frames + http


def rest_requests(venue: MockLighterVenue) -> int:
    return sum(n for path, n in venue.stats().rest_calls.items() if "sendTx" not in path)


async def one_round(client: LighterClient, venue: MockLighterVenue, way: str, n: int) -> dict[str, Any]:
    bid, _ = await client.fetch_bbo_prices("0")
    requests = [
        LimitOrderRequest("0", OrderSide.BUY, QTY, bid - 5 - i, client.client_ids.next_id(time.time()))
        for i in range(n)
    ]
    row: dict[str, Any] = {}
    for action in ("place", "cancel"):
        tokens, txs, rest = (
            client._tx_limiter.acquired + client._limiter.acquired,
            tx_requests(venue),
            rest_requests(venue),
        )
        started = time.perf_counter()
        if action == "place":
            if way == "single":
                results = [await BaseExchangeClient._place_one(client, r) for r in requests]
                ids = [r.order_id for r in results]
            elif way == "gather":
                outcomes = await BaseExchangeClient.place_limit_orders(client, requests)
                ids = [o.result.order_id for o in outcomes if o.result]
            else:
                outcomes = await client.place_limit_orders(requests)
                ids = [o.result.order_id for o in outcomes if o.result]
            assert len(ids) == n and all(ids), "every order placed"
        else:
            if way == "single":
                for order_id in ids:
                    await client.cancel_order("0", str(order_id))
            elif way == "gather":
                outcomes = await BaseExchangeClient.cancel_orders(client, "0", [str(i) for i in ids])
                assert all(o.ok for o in outcomes)
            else:
                outcomes = await client.cancel_orders("0", [str(i) for i in ids])
                assert all(o.ok for o in outcomes)
        row[action] = (
            (time.perf_counter() - started) * 1000,
            client._tx_limiter.acquired + client._limiter.acquired - tokens,
            tx_requests(venue) - txs,
            rest_requests(venue) - rest,
        )
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--http", action="store_true", help="send transactions over HTTP, not the stream")
    parser.add_argument("--rest-delay-ms", type=float, default=0.0, help="answer every REST call this late")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    venue = MockLighterVenue(start_price=Decimal("3000"), api_key_index=5).start()
    venue.set_delay(args.rest_delay_ms)
    try:
        params = {"ws_orders": not args.http, "rest_requests_per_minute": 1e9, "ws_tx_per_minute": 1e9}
        config = TradingConfig(
            ticker="ETH", exchange="lighter", strategy="grid", quantity=QTY, exchange_params=params
        )
        client = LighterClient(config, LiveClock(), env=venue.env())
        await client.connect()
        try:
            print(
                f"N={args.orders}, {args.rounds} rounds, transactions over "
                + ("HTTP" if args.http else "the WebSocket")
            )
            print(
                f"{'way':8} {'action':7} {'ms (median)':>12} {'limiter tokens':>15} "
                f"{'tx requests':>12} {'other REST':>11}"
            )
            for way in ("single", "gather", "batch"):
                rows = [await one_round(client, venue, way, args.orders) for _ in range(args.rounds)]
                for action in ("place", "cancel"):
                    ms = statistics.median(r[action][0] for r in rows)
                    tokens, txs, rest = rows[-1][action][1:]
                    print(f"{way:8} {action:7} {ms:12.1f} {tokens:15} {txs:12} {rest:11}")
        finally:
            await client.disconnect()
    finally:
        venue.stop()


if __name__ == "__main__":
    asyncio.run(main())
