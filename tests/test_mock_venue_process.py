"""The mock Lighter venue as its own process, as soak and kill tests use it.

Each test starts ``python -m tests.mock_venues.lighter_venue --port 0 --ready-file FILE`` and
waits for the ready file (bounded polling, the process checked for an early exit), talks to it
only over loopback HTTP and the real SDK, and stops it with SIGTERM, killing it if that fails.
"""

from __future__ import annotations

import asyncio
import stat
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dotenv import dotenv_values

from exchanges.lighter import LighterSettings
from tests.venue_process import (
    HTTP_TIMEOUT,
    ROOT,
    STEP_TIMEOUT,
    control,
    get_state,
    poll_state,
    venue_process,
)

lighter = pytest.importorskip("lighter")


def order_by_client_id(state: dict[str, Any], account: int, coi: int) -> dict[str, Any] | None:
    return next(
        (o for o in state["accounts"][str(account)]["orders"] if o["client_order_index"] == coi), None
    )


async def test_venue_process_env_state_control_and_sigterm(tmp_path: Path) -> None:
    env_out = tmp_path / "lighter.env"
    async with (
        venue_process(tmp_path, "--env-out", str(env_out)) as venue,
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
    ):
        assert venue.info["base_url"].startswith("http://127.0.0.1:")
        assert venue.info["port"] not in (0, 8787) and str(venue.info["port"]) in venue.info["ws_url"]

        # --env-out: private, and exactly what the bot's settings loader wants
        assert stat.S_IMODE(env_out.stat().st_mode) == 0o600
        settings = LighterSettings.load({k: v or "" for k, v in dotenv_values(env_out).items()}, {})
        assert (settings.base_url, settings.ws_url) == (venue.info["base_url"], venue.info["ws_url"])
        assert (settings.account_index, settings.api_key_index) == (
            venue.info["account_index"],
            venue.info["api_key_index"],
        )
        account = settings.account_index

        state = await get_state(http, venue)
        assert list(state["accounts"]) == [str(account)]
        assert state["accounts"][str(account)]["orders"] == []
        top = state["markets"]["0"]
        assert Decimal(top["best_bid"]) < Decimal("3000") < Decimal(top["best_ask"])

        # an order placed through the real SDK shows up in the venue's truth
        signer = lighter.SignerClient(
            settings.base_url,
            account,
            {settings.api_key_index: settings.private_key},
            chain_id=settings.chain_id,
        )
        try:
            _, resp, err = await signer.create_order(
                0, 4201, 100, 299000, False, signer.ORDER_TYPE_LIMIT, signer.ORDER_TIME_IN_FORCE_POST_ONLY
            )
            assert err is None and resp.code == 200
        finally:
            await signer.close()
        order = await poll_state(http, venue, lambda s: order_by_client_id(s, account, 4201), "order 4201")
        assert {k: order[k] for k in ("side", "price", "initial_size", "remaining_size", "status")} == {
            "side": "buy",
            "price": "2990.00",
            "initial_size": "0.0100",
            "remaining_size": "0.0100",
            "status": "open",
        }
        assert (order["time_in_force"], order["reduce_only"], order["market_id"]) == ("post-only", False, 0)

        # control: a partial trade through it, seen in order, position and trades
        result = await control(http, venue, action="trade_through", price="2985", size="0.0040")
        assert [t["bid_client_id"] for t in result["result"]] == [4201]
        state = await get_state(http, venue, account_index=account)
        mine = state["accounts"][str(account)]
        order = order_by_client_id(state, account, 4201)
        assert order is not None
        assert (order["filled_size"], order["remaining_size"], order["status"]) == (
            "0.0040",
            "0.0060",
            "open",
        )
        assert mine["positions"]["0"]["size"] == "0.0040"
        assert mine["positions"]["0"]["entry_price"] == "2990.00"
        (trade,) = mine["trades"]
        assert {k: trade[k] for k in ("side", "role", "price", "size", "fee", "client_order_index")} == {
            "side": "buy",
            "role": "maker",
            "price": "2990.00",
            "size": "0.0040",
            "fee": "0.000239",  # maker 0.002 % of 11.96
            "client_order_index": 4201,
        }
        assert Decimal(mine["collateral"]) == Decimal("10000") - Decimal("0.000239")

        await control(http, venue, action="seed_book", mid="3100")
        top = (await get_state(http, venue))["markets"]["0"]
        assert Decimal(top["best_bid"]) < Decimal("3100") < Decimal(top["best_ask"])
        assert (await control(http, venue, action="drop_connections"))["result"] == 0
        await control(http, venue, action="set_fault_rates", rates={"http_5xx": 0.5}, seed=3)
        assert (await get_state(http, venue))["faults"]["rates"]["http_5xx"] == 0.5
        await control(http, venue, action="clear_faults")
        assert set((await get_state(http, venue))["faults"]["rates"].values()) == {0.0}

        # bad requests get one-line errors, not tracebacks
        async with http.post(venue.info["control_url"], json={"action": "launch_rockets"}) as resp:
            assert resp.status == 400 and "unknown action 'launch_rockets'" in (await resp.json())["error"]
        async with http.post(
            venue.info["control_url"], json={"action": "trade_through", "price": "x"}
        ) as resp:
            assert resp.status == 400 and (await resp.json())["error"].startswith("trade_through: ")
        async with http.get(venue.info["state_url"], params={"account_index": "1"}) as resp:
            assert resp.status == 404

        assert await venue.stop() == 0
        assert not venue.ready_file.exists()


async def rest_fault_sequence(http: aiohttp.ClientSession, base_url: str, n: int) -> list[str]:
    """Status (and Retry-After) of ``n`` sequential REST reads."""
    seen = []
    for _ in range(n):
        async with http.get(f"{base_url}/api/v1/orderBooks") as resp:
            seen.append(f"{resp.status}{'+RA' if 'Retry-After' in resp.headers else ''}")
    return seen


async def test_fault_options_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    options = (
        "--fault-seed",
        "11",
        "--http-429-retry-after-rate",
        "0.15",
        "--http-429-rate",
        "0.1",
        "--http-5xx-rate",
        "0.1",
        "--slow-reply-rate",
        "0.1",
        "--slow-ms",
        "1",
    )
    async with (
        venue_process(tmp_path, *options, name="a") as first,
        venue_process(tmp_path, *options, name="b") as second,
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
    ):
        runs = [await rest_fault_sequence(http, v.info["base_url"], 60) for v in (first, second)]
        counts = [(await get_state(http, v))["faults"]["counts"] for v in (first, second)]
        assert runs[0] == runs[1]
        assert counts[0] == counts[1]
        for kind in ("http_429_retry_after", "http_429", "http_5xx", "slow_reply"):
            assert counts[0][kind] > 0, (kind, counts[0])
        assert counts[0]["http_429_retry_after"] == runs[0].count("429+RA")
        assert counts[0]["http_429"] == runs[0].count("429")
        assert counts[0]["http_5xx"] == sum(s.startswith("5") for s in runs[0])

        # another seed, another sequence; the first seed again, the first sequence again
        await control(http, first, action="set_fault_rates", seed=12)
        other = await rest_fault_sequence(http, first.info["base_url"], 60)
        await control(http, first, action="set_fault_rates", seed=11)
        again = await rest_fault_sequence(http, first.info["base_url"], 60)
        assert other != runs[0]
        assert again == runs[0]


async def test_bad_options_give_one_line_errors(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mock_venues.lighter_venue",
        "--ws-drop-rate",
        "1.5",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    assert process.returncode == 2
    assert "argument --ws-drop-rate: 1.5 is not a probability between 0 and 1" in stderr.decode()
    assert "Traceback" not in stderr.decode()
