"""The execution layer's batches: every intent in one journal commit before the batch leaves,
each order's outcome judged as a single send's, and a crash right after the commit reconciled
on restart without placing anything twice."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from exchanges.base import OrderNotFound, OrderStatus, PostOnlyRejected, RequestTimeout
from execution.engine import ExecutionEngine
from execution.journal import ExecutionJournal
from execution.records import ExecutionEventKind
from tests.test_execution_engine import CONTRACT, D, entry, make


class Crash(BaseException):
    """The process dying mid-call (not an exception the bot would handle)."""


def count_commits(journal: ExecutionJournal) -> list[int]:
    """Count the journal's outermost transactions (nested ones join them: one commit each)."""
    commits = [0]
    depth = [0]
    original = journal.atomic

    @contextmanager
    def counted() -> Any:
        depth[0] += 1
        try:
            with original():
                yield
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            commits[0] += 1

    journal.atomic = counted  # type: ignore[method-assign]
    return commits


async def test_every_intent_is_journaled_in_one_commit_before_the_batch_leaves() -> None:
    engine, venue, _ = make()
    commits = count_commits(engine.journal)
    seen: list[list[OrderStatus | None]] = []
    original = venue.place_limit_orders

    async def spy(requests: Any) -> Any:
        seen.append([getattr(engine.journal.order(r.client_order_id), "status", None) for r in requests])
        seen.append([commits[0]])
        return await original(requests)

    venue.place_limit_orders = spy  # type: ignore[method-assign]
    records = await engine.submit_batch([entry("59980.0"), entry("59970.0"), entry("59960.0")], CONTRACT)
    assert seen == [[OrderStatus.PENDING] * 3, [1]]
    assert [r.status for r in records] == [OrderStatus.OPEN] * 3
    assert len(venue.calls_to("place_limit_order")) == 3


async def test_each_order_of_a_batch_gets_the_single_paths_outcome() -> None:
    engine, venue, _ = make()
    venue.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    records = await engine.submit_batch([entry("59980.0"), entry("59970.0")], CONTRACT)
    assert [r.status for r in records] == [OrderStatus.REJECTED, OrderStatus.OPEN]
    assert sorted(e.kind.value for e in engine.drain_events()) == sorted(
        [ExecutionEventKind.REFUSED.value, ExecutionEventKind.ACCEPTED.value]
    )

    venue.reject_next("place_limit_order", RequestTimeout("no answer"))
    (unknown,) = await engine.submit_batch([entry("59950.0")], CONTRACT)
    assert unknown.status is OrderStatus.UNKNOWN and unknown in engine.in_flight()


async def test_a_cancel_batch_journals_the_requests_once_and_handles_each_answer() -> None:
    engine, venue, clock = make()
    records = await engine.submit_batch([entry("59980.0"), entry("59970.0"), entry("59960.0")], CONTRACT)
    venue.fill(records[1].venue_order_id)  # filled before the cancel reaches it
    engine.drain_events()
    commits = count_commits(engine.journal)
    at_send: list[int] = []
    original = venue.cancel_orders

    async def spy(contract_id: str, order_ids: Any) -> Any:
        at_send.append(commits[0])
        return await original(contract_id, order_ids)

    venue.cancel_orders = spy  # type: ignore[method-assign]
    venue.reject_next("cancel_order", OrderNotFound("gone"))
    await engine.cancel_batch([r.client_order_id for r in records], "shutdown")
    assert at_send == [1]  # both cancel requests in one commit, before the batch left
    requested = [e for e in engine.journal.events() if e[1] == "cancel_requested"]
    assert len(requested) == 2  # the filled one is final: nothing to cancel
    assert records[0].status is OrderStatus.OPEN  # its cancel was refused as not found: look it up
    assert records[0] in engine.in_flight() and records[2].status is OrderStatus.CANCELLED
    clock.advance_to(clock.now() + 1.0)
    await engine.resolve_pending()
    # Still resting: the look-up sent its cancel again, and that one went through.
    assert records[0].status is OrderStatus.CANCELLED
    assert len(venue.calls_to("cancel_order")) == 3


async def test_a_crash_after_the_batch_intent_commit_is_reconciled_without_placing_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot_journal.sqlite3"
    engine, venue, clock = make(path)
    original = venue.place_limit_orders

    async def reach_the_venue_then_die(requests: Any) -> Any:
        venue._order_handlers.clear()  # the process dies as the batch leaves: nothing is heard back
        await original(requests)
        raise Crash

    venue.place_limit_orders = reach_the_venue_then_die  # type: ignore[method-assign]
    params = [entry("59980.0"), entry("59970.0"), entry("59960.0")]
    try:
        await engine.submit_batch(params, CONTRACT)
    except Crash:
        pass
    engine.journal.close()
    placed = venue.placed
    venue.fill(placed[0].order_id)  # filled while the bot was down

    restarted = ExecutionEngine(venue, clock, ExecutionJournal(path), size_step=D("0.001"))
    ids = {p.client_order_id for p in params}
    assert {r.client_order_id for r in restarted.active_orders()} == ids
    report = await restarted.reconcile(CONTRACT, lambda info: None)
    clock.advance_to(clock.now() + 1.0)
    await restarted.resolve_pending()
    assert report.fills_found == D("0.010")
    assert restarted.position == venue.position == Decimal("0.010")
    states = {cid: restarted.orders[cid].status for cid in ids}
    assert sorted(s.value for s in states.values()) == ["filled", "open", "open"]
    assert all(restarted.orders[cid].venue_order_id for cid in ids)
    assert len(venue.calls_to("place_limit_order")) == 3  # nothing sent again
