"""A live check of the Lighter connector a trader runs against a real account (never in CI).

    python -m exchanges.lighter --check --network testnet --ticker ETH

It connects (API key check, markets, stream, authenticated account stream), reads the market
(contract, best bid/ask) and the account (equity, position), places one post-only buy of the
minimum size far below the touch (``--distance-pct``, default 5 %, so it cannot fill), waits
until the account stream reports it resting, cancels it, waits until the stream reports it
cancelled, and disconnects. Each step prints its result and latency; exit 0 when every step
passed, 1 otherwise (the order is cancelled on the way out if it was placed), 2 for bad input.

Settings are the bot's: LIGHTER_API_PRIVATE_KEY, LIGHTER_ACCOUNT_INDEX, LIGHTER_API_KEY_INDEX
from the environment or ``--env-file`` (default ``.env``; existing variables win); ``--network``
picks the venue's URLs and chain id unless LIGHTER_BASE_URL/LIGHTER_WS_URL/LIGHTER_CHAIN_ID
override them (that is how tests point it at the loopback venue).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from exchanges.base import ExchangeError, OrderSide, OrderStatus, OrderUpdate
from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig

STREAM_WAIT = 15.0


class Step:
    """Prints ``OK|FAIL  step  latency  detail`` lines; remembers whether any step failed."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.failed = False

    async def run(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = await action()
        except (ExchangeError, asyncio.TimeoutError, OSError) as exc:
            self.failed = True
            elapsed = (time.perf_counter() - started) * 1e3
            self.out(f"FAIL {name:<22} {elapsed:9.1f} ms  {type(exc).__name__}: {exc}")
            return None
        detail = result[1] if isinstance(result, tuple) else ""
        self.out(f"OK   {name:<22} {(time.perf_counter() - started) * 1e3:9.1f} ms  {detail}")
        return result[0] if isinstance(result, tuple) else result


async def run_check(
    network: str, ticker: str, distance_pct: Decimal, env: Mapping[str, str], out: Callable[[str], None]
) -> int:
    from exchanges.lighter import LighterClient

    config = TradingConfig(
        ticker=ticker,
        exchange="lighter",
        strategy="grid",
        quantity=Decimal("1"),  # unused: the check sizes its one order at the market's minimum
        bot_name=f"lighter_{ticker}_check",
        exchange_params={"network": network},
    )
    client = LighterClient(config, LiveClock(), env=env)
    step = Step(out)
    updates: list[tuple[float, OrderUpdate]] = []
    client.subscribe_order_updates(lambda u: updates.append((time.perf_counter(), u)))
    out(
        f"Lighter live check: {network} {ticker} (account {client.settings.account_index}, "
        f"API key {client.settings.api_key_index}, {client.settings.base_url})"
    )

    async def seen(client_id: str, statuses: tuple[OrderStatus, ...]) -> tuple[OrderUpdate, str]:
        deadline = time.monotonic() + STREAM_WAIT
        while time.monotonic() < deadline:
            for _, update in updates:
                if update.order.client_order_id == client_id and update.order.status in statuses:
                    return update, update.order.status.value
            await asyncio.sleep(0.01)
        raise asyncio.TimeoutError(f"the stream did not report {'/'.join(s.value for s in statuses)}")

    placed: tuple[str, str] | None = None  # (contract, client id) of an order left to cancel
    try:
        await step.run("connect", client.connect)
        if step.failed:
            return 1

        async def market() -> tuple[Any, str]:
            info = await client.get_contract_info(ticker)
            bid, ask = await client.fetch_bbo_prices(info.contract_id)
            return (info, bid), f"market {info.contract_id}: bid {bid} ask {ask}, tick {info.tick_size}"

        read = await step.run("market", market)
        if read is None:
            return 1
        info, bid = read

        async def account() -> tuple[None, str]:
            snapshot = await client.get_account_snapshot()
            position = await client.get_position(info.contract_id)
            return None, f"equity {snapshot.equity} USDC, {ticker} position {position.size}"

        await step.run("account", account)
        price = (bid * (1 - distance_pct / 100)).quantize(info.tick_size, rounding=ROUND_DOWN)
        size = max(info.min_size, (info.min_notional / price).quantize(info.size_step, rounding=ROUND_UP))
        client_id = client.client_ids.next_id(time.time())

        async def place() -> tuple[Any, str]:
            result = await client.place_limit_order(info.contract_id, OrderSide.BUY, size, price, client_id)
            return result, f"post-only buy {size} @ {price}: {result.status.value}, order {result.order_id}"

        result = await step.run("place post-only", place)
        if result is None:
            return 1
        placed = (info.contract_id, client_id)
        await step.run("seen resting on stream", lambda: seen(client_id, (OrderStatus.OPEN,)))

        async def cancel() -> tuple[Any, str]:
            cancelled = await client.cancel_order(info.contract_id, client_id)
            return cancelled, f"{cancelled.status.value}"

        if await step.run("cancel", cancel) is not None:
            placed = None
        await step.run("seen cancelled on stream", lambda: seen(client_id, (OrderStatus.CANCELLED,)))
    finally:
        if placed is not None:
            try:
                await client.cancel_order(*placed)
            except ExchangeError as exc:
                out(f"WARNING: could not cancel the check's order {placed[1]}: {exc}; cancel it in the app")
        await step.run("disconnect", client.disconnect)
        out("all steps passed" if not step.failed else "some steps FAILED")
    return 1 if step.failed else 0


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exchanges.lighter",
        description="Live check of the Lighter connector against a real account (places and cancels "
        "one post-only order far from the touch).",
    )
    parser.add_argument("--check", action="store_true", required=True, help="run the live check")
    parser.add_argument("--network", choices=["mainnet", "testnet"], default="testnet")
    parser.add_argument("--ticker", default="ETH")
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    parser.add_argument(
        "--distance-pct", type=Decimal, default=Decimal("5"), help="order price below the bid, %% (default 5)"
    )
    args = parser.parse_args(argv)
    if not Decimal("0.5") <= args.distance_pct < 90:
        parser.error("--distance-pct must be between 0.5 and 90")
    values = dict(os.environ if env is None else env)
    if env is None and args.env_file.is_file():
        for key, value in dotenv_values(args.env_file).items():
            if value is not None:
                values.setdefault(key, value)
    try:
        return asyncio.run(run_check(args.network, args.ticker.upper(), args.distance_pct, values, print))
    except ExchangeError as exc:  # settings: one line, never the key
        print(f"lighter check: {exc}")
        return 2
