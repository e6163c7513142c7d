"""The mock Lighter venue as its own process: start it, read its state, drive it (for tests).

``python -m tests.mock_venues.lighter_venue --port 0 --ready-file FILE`` is started with
bounded polling for the ready file (the process checked for an early exit), talked to only over
loopback HTTP, and stopped with SIGTERM, killed if that fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STEP_TIMEOUT = 10.0
POLL_INTERVAL = 0.02
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=STEP_TIMEOUT)


class VenueProcess:
    def __init__(self, process: asyncio.subprocess.Process, ready_file: Path, output: Path) -> None:
        self.process = process
        self.ready_file = ready_file
        self.output = output
        self.info: dict[str, Any] = {}

    def describe(self) -> str:
        return f"\n--- venue output ---\n{self.output.read_text()[-3000:]}"

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready_file.exists():
            if self.process.returncode is not None:
                pytest.fail(f"venue exited ({self.process.returncode}) before it was ready{self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"venue not ready within {START_TIMEOUT:.0f}s{self.describe()}")
            await asyncio.sleep(POLL_INTERVAL)
        self.info = json.loads(self.ready_file.read_text())

    async def stop(self) -> int:
        """SIGTERM, then the exit code (bounded)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            pytest.fail(f"venue did not stop within {STEP_TIMEOUT:.0f}s of SIGTERM{self.describe()}")


@asynccontextmanager
async def venue_process(tmp_path: Path, *args: str, name: str = "venue") -> AsyncIterator[VenueProcess]:
    ready = tmp_path / f"{name}.ready.json"
    output = tmp_path / f"{name}.out"
    with output.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.mock_venues.lighter_venue",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            *args,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("LIGHTER_")},
        )
    venue = VenueProcess(process, ready, output)
    try:
        await venue.wait_ready()
        yield venue
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), STEP_TIMEOUT)


async def get_state(http: aiohttp.ClientSession, venue: VenueProcess, **query: Any) -> dict[str, Any]:
    async with http.get(venue.info["state_url"], params=query) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def control(http: aiohttp.ClientSession, venue: VenueProcess, **body: Any) -> dict[str, Any]:
    async with http.post(venue.info["control_url"], json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def poll_state(
    http: aiohttp.ClientSession, venue: VenueProcess, probe: Callable[[dict[str, Any]], Any], what: str
) -> Any:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        found = probe(await get_state(http, venue))
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in /_mock/state within {STEP_TIMEOUT:.0f}s")
        await asyncio.sleep(POLL_INTERVAL)
