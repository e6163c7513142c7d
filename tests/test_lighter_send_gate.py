"""Journal before action while the journal commits beside the signature (Lighter's send gate).

The execution layer queues an order's intent (and the fill it reacts to); the Lighter client
commits the queue on the loop while its worker thread signs, before the transaction leaves.
These tests pin the ordering that makes that safe: the intent row is committed before the
transaction is sent, and a commit that fails means the signed transaction never leaves, its
nonce is handed back, and the engine does not remember the order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exchanges.base import InvalidOrder, OrderSide
from execution.engine import ExecutionEngine
from execution.journal import ExecutionJournal, JournalWriteError
from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig
from strategies.base_strategy import OrderParams
from tests.connector_fixtures import started_venue
from tests.test_journal_deferral import FlakyConnection

pytest.importorskip("lighter")

import exchanges.lighter as lighter_module
from exchanges.lighter import LighterClient
from tests.mock_venues.lighter_venue import MockLighterVenue

venue = started_venue(MockLighterVenue)


@pytest.fixture
async def client(venue: MockLighterVenue) -> AsyncIterator[LighterClient]:
    config = TradingConfig(
        ticker="ETH",
        exchange="lighter",
        strategy="grid",
        quantity=Decimal("0.01"),
        exchange_params={"order_ack_timeout": 3.0},
    )
    c = LighterClient(config, LiveClock(), env=venue.env())
    await c.connect()
    try:
        yield c
    finally:
        await c.disconnect()


def entry() -> OrderParams:
    return OrderParams(side=OrderSide.BUY, quantity=Decimal("0.01"), price=Decimal("2900"))


async def test_the_intent_is_committed_before_the_transaction_is_sent(
    client: LighterClient, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite"
    engine = ExecutionEngine(client, LiveClock(), ExecutionJournal(path))
    seen: list[list[tuple[Any, ...]]] = []
    send_tx = client._send_tx

    async def checking_send(*args: Any, **kwargs: Any) -> Any:
        # Another connection sees only committed rows: what a crash right now would leave.
        with sqlite3.connect(path) as reader:
            seen.append(
                reader.execute("SELECT client_order_id, kind FROM events WHERE kind = 'intent'").fetchall()
            )
        return await send_tx(*args, **kwargs)

    client._send_tx = checking_send  # type: ignore[method-assign]
    record = await engine.submit(entry(), "0")
    assert record.acknowledged
    assert seen == [[(record.client_order_id, "intent")]]


async def test_a_failed_intent_commit_never_sends_the_signed_transaction(
    client: LighterClient, venue: MockLighterVenue, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite"
    journal = ExecutionJournal(path)
    engine = ExecutionEngine(client, LiveClock(), journal)
    flaky = FlakyConnection(journal._transaction._db)
    journal._transaction._db = flaky  # type: ignore[assignment]
    sent: list[int] = []
    send_tx = client._send_tx

    async def counting_send(*args: Any, **kwargs: Any) -> Any:
        sent.append(1)
        return await send_tx(*args, **kwargs)

    client._send_tx = counting_send  # type: ignore[method-assign]
    before = len(venue.stats().txs)
    flaky.failing = True
    with pytest.raises(JournalWriteError):
        await engine.submit(entry(), "0")
    assert sent == []
    assert len(venue.stats().txs) == before
    assert engine.active_orders() == []
    # The nonce the dropped transaction used is handed back: the next order is accepted.
    flaky.failing = False
    record = await engine.submit(entry(), "0")
    assert record.acknowledged
    assert len(venue.stats().txs) == before + 1
    assert sent == [1]


async def test_the_signing_thread_holds_the_signature_before_the_journal_commits(
    client: LighterClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit's Python would otherwise keep the GIL from the thread just woken to sign, and
    # the signature would start only after the commit (helpers.worker_thread, "hand-over").
    monkeypatch.setattr(lighter_module, "SIGNER_HANDOVER_SECONDS", 5.0)
    engine = ExecutionEngine(client, LiveClock(), ExecutionJournal(tmp_path / "journal.sqlite"))
    commit = client.send_gate
    signature_taken: list[bool] = []

    def gate() -> None:
        signature_taken.append(client._signing_thread._jobs.empty())
        commit()

    client.send_gate = gate
    record = await engine.submit(entry(), "0")
    assert record.acknowledged
    assert signature_taken == [True]
    assert client._signing_thread.late_handovers == 0


async def test_the_order_is_tracked_while_it_is_signed_and_before_it_leaves(
    client: LighterClient, venue: MockLighterVenue
) -> None:
    cid = client.client_ids.next_id(0.0)
    tracked_at_send: list[bool] = []
    send_tx = client._send_tx

    async def checking_send(*args: Any, **kwargs: Any) -> Any:
        tracked_at_send.append(client._orders.get(cid) is not None)
        return await send_tx(*args, **kwargs)

    client._send_tx = checking_send  # type: ignore[method-assign]
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.01"), Decimal("2900"), cid)
    assert result.order_id
    assert tracked_at_send == [True]


async def test_a_reused_client_id_is_refused_and_its_nonce_handed_back(
    client: LighterClient, venue: MockLighterVenue
) -> None:
    cid = client.client_ids.next_id(0.0)
    await client.place_limit_order("0", OrderSide.BUY, Decimal("0.01"), Decimal("2900"), cid)
    before = len(venue.stats().txs)
    with pytest.raises(InvalidOrder, match="already used"):
        await client.place_limit_order("0", OrderSide.BUY, Decimal("0.01"), Decimal("2890"), cid)
    assert len(venue.stats().txs) == before  # signed beside the check, never sent
    # The nonce that signature took is handed back: the next order is accepted.
    other = client.client_ids.next_id(0.0)
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.01"), Decimal("2880"), other)
    assert result.order_id
    assert len(venue.stats().txs) == before + 1


async def test_no_signature_is_made_on_the_main_thread(
    client: LighterClient, venue: MockLighterVenue
) -> None:
    # lighter-sdk's signer is a Go library: each call from C into Go asks glibc for the calling
    # thread's stack bounds, which on the process's main thread means reading /proc/self/maps
    # (three reads a signature under strace). Signed on the main thread a signature took 2-3 ms
    # of CPU, on another thread 0.6-0.9 ms; the bot's loop runs on the main thread.
    import threading

    signer = client._signer
    threads: list[bool] = []
    for name in ("sign_create_order", "sign_cancel_order"):
        method = getattr(signer, name)

        def recording(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            threads.append(threading.current_thread() is threading.main_thread())
            return _method(*args, **kwargs)

        setattr(signer, name, recording)
    cid = client.client_ids.next_id(0.0)
    result = await client.place_limit_order("0", OrderSide.BUY, Decimal("0.01"), Decimal("2900"), cid)
    await client.cancel_order("0", result.order_id)
    assert threads == [False, False]
