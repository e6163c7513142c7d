"""Property-based tests of the execution layer: random interleavings against a scripted venue.

A hypothesis state machine places entries and exits, fills orders partly or fully, loses,
duplicates and delays the venue's messages, answers ambiguously (the order arrived, or never
did), cancels, expires orders, and restarts the process on the same journal file. After every
step, and after each settle (delayed messages delivered, look-ups resolved, reconciliation, one
round of exits for what filled), it checks:

* the journaled position equals the venue's position, and every venue fill is in the journal;
* no lot is covered by two exits, and no exit covers a lot that is gone;
* position = remaining size of live exits + uncovered lots (no drift);
* after a settle no filled size is left uncovered (every fill has its exit).
"""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exchanges.base import OrderSide, OrderStatus, OrderUpdate
from execution.engine import ExecutionEngine
from execution.journal import ExecutionJournal
from helpers.clock import SimulatedClock
from helpers.trading_config import TradingConfig
from strategies.base_strategy import OrderParams, OrderRole
from tests.mock_exchange import MockExchangeClient

D = Decimal
CONTRACT = "BTC-PERP"
STEP = D("0.001")
SIZES = st.sampled_from([D("0.001"), D("0.002"), D("0.003"), D("0.005")])


class ExecutionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "bot_journal.sqlite3"
        self.clock = SimulatedClock(1_000.0)
        config = TradingConfig(ticker="BTC", exchange="mock", strategy="grid", quantity=D("0.01"))
        self.venue = MockExchangeClient(config, self.clock, best_bid="59990.0", best_ask="60000.0")
        self.delayed: list[OrderUpdate] = []
        self.mode = "deliver"  # what happens to the venue's next messages
        self.engine = self._start_engine()

    def teardown(self) -> None:
        self.engine.journal.close()
        self.loop.close()
        self.folder.cleanup()

    # -- plumbing ----------------------------------------------------------------------------

    def _start_engine(self) -> ExecutionEngine:
        self.venue._order_handlers.clear()
        engine = ExecutionEngine(self.venue, self.clock, ExecutionJournal(self.path), size_step=STEP)
        # Messages pass through the "network": delivered, dropped, duplicated or delayed.
        self.venue._order_handlers.clear()
        self.venue.subscribe_order_updates(self._network)
        return engine

    def _network(self, update: OrderUpdate) -> None:
        if self.mode == "drop":
            return
        if self.mode == "delay":
            self.delayed.append(update)
            return
        self.engine.on_venue_update(update)
        if self.mode == "duplicate":
            self.engine.on_venue_update(update)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def _venue_orders(self, *, active: bool, side: OrderSide | None = None) -> list[str]:
        ours = self.venue.client_ids.is_ours
        return [
            order_id
            for order_id, info in self.venue.orders.items()
            if ours(info.client_order_id)
            and info.status.is_active == active
            and (side is None or info.side is side)
        ]

    # -- rules -------------------------------------------------------------------------------

    @rule(mode=st.sampled_from(["deliver", "deliver", "drop", "duplicate", "delay"]))
    def network(self, mode: str) -> None:
        self.mode = mode

    @rule(size=SIZES, answer=st.sampled_from(["ok", "ok", "ok", "lost_arrived", "lost_never", "timeout"]))
    def place_entry(self, size: Decimal, answer: str) -> None:
        if answer == "lost_arrived":
            self.venue.answer_unknown_next(reaches_venue=True, stream_update=self.mode == "deliver")
        elif answer == "lost_never":
            self.venue.answer_unknown_next(reaches_venue=False)
        elif answer == "timeout":
            from exchanges.base import RequestTimeout

            self.venue.reject_next("place_limit_order", RequestTimeout("no answer"))
        params = OrderParams(side=OrderSide.BUY, quantity=size, price=D("59900.0"), role=OrderRole.ENTRY)
        self.run(self.engine.submit(params, CONTRACT))

    @rule(data=st.data())
    def fill_on_the_venue(self, data: st.DataObject) -> None:
        self._fill_one(data)

    @rule(data=st.data())
    def fill_on_the_venue_again(self, data: st.DataObject) -> None:
        self._fill_one(data)

    def _fill_one(self, data: st.DataObject) -> None:
        candidates = self._venue_orders(active=True)
        if not candidates:
            return
        order_id = data.draw(st.sampled_from(sorted(candidates)))
        info = self.venue.orders[order_id]
        if info.side is OrderSide.SELL and self.venue.position <= 0:
            return  # a reduce-only exit cannot fill without a position
        remaining = info.remaining_size
        if info.side is OrderSide.SELL:
            remaining = min(remaining, self.venue.position)
        steps = int(remaining / STEP)
        if steps < 1:
            return
        size = STEP * data.draw(st.integers(min_value=1, max_value=steps))
        self.venue.fill(order_id, size=str(size))

    @rule(data=st.data())
    def venue_ends_an_order(self, data: st.DataObject) -> None:
        candidates = self._venue_orders(active=True)
        if candidates:
            order_id = data.draw(st.sampled_from(sorted(candidates)))
            self.venue.end_order(
                order_id, data.draw(st.sampled_from([OrderStatus.CANCELLED, OrderStatus.EXPIRED]))
            )

    @rule(data=st.data())
    def cancel_an_entry(self, data: st.DataObject) -> None:
        entries = [r.client_order_id for r in self.engine.active_orders(OrderRole.ENTRY)]
        if entries:
            client_id = data.draw(st.sampled_from(sorted(entries)))
            self.run(self.engine.cancel(client_id, "test"))

    @rule()
    def place_exits(self) -> None:
        """What a strategy does: one exit for the uncovered lots of entries that have ended."""
        live = {r.group for r in self.engine.active_orders(OrderRole.ENTRY)}
        lots = [lot for lot in self.engine.uncovered_lots() if lot.group not in live]
        if not lots:
            return
        size = sum((lot.size for lot in lots), D(0))
        params = OrderParams(
            side=OrderSide.SELL,
            quantity=size,
            price=D("60100.0"),
            reduce_only=True,
            role=OrderRole.EXIT,
            covers=tuple(lot.lot_id for lot in lots),
        )
        self.run(self.engine.submit(params, CONTRACT))

    @precondition(lambda self: bool(self.delayed))
    @rule(reverse=st.booleans())
    def deliver_delayed(self, reverse: bool) -> None:
        updates, self.delayed = self.delayed, []
        for update in reversed(updates) if reverse else updates:
            self.engine.on_venue_update(update)

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance_to(self.clock.now() + seconds)
        self.run(self.engine.resolve_pending())

    @rule()
    def restart(self) -> None:
        """kill -9 and start again: whatever was in memory is gone, the journal stays."""
        self.engine.journal.close()
        self.delayed.clear()
        self.engine = self._start_engine()
        self.run(self.engine.reconcile(CONTRACT, lambda info: None))

    @rule()
    def settle(self) -> None:
        """Messages flow again; the bot looks up everything it is unsure of and reconciles."""
        self.mode = "deliver"
        self.deliver_delayed(reverse=False)
        for _ in range(60):
            self.clock.advance_to(self.clock.now() + 2.0)
            self.run(self.engine.resolve_pending())
            if not self.engine.in_flight():
                break
        self.run(self.engine.reconcile(CONTRACT, lambda info: None))
        for record in list(self.engine.active_orders(OrderRole.ENTRY)):
            self.run(self.engine.cancel(record.client_order_id, "settle"))
        self.place_exits()
        assert not self.engine.in_flight(), [r.describe() for r in self.engine.in_flight()]
        lots = self.engine.uncovered_lots()
        assert lots == [], f"filled size left uncovered after reconciliation: {lots}"
        self._check_against_venue()

    # -- invariants --------------------------------------------------------------------------

    def _check_against_venue(self) -> None:
        journal_fills: dict[str, Decimal] = {}
        for fill in self.engine.journal.fills():
            journal_fills[fill.client_order_id] = journal_fills.get(fill.client_order_id, D(0)) + fill.size
        for info in self.venue.orders.values():
            assert journal_fills.get(info.client_order_id or "", D(0)) == info.filled_size, info
        assert self.engine.position == self.venue.position

    @invariant()
    def each_lot_has_at_most_one_exit(self) -> None:
        owners: dict[str, str] = {}
        for record in self.engine.active_orders(OrderRole.EXIT):
            for lot_id in record.covers:
                assert lot_id not in owners, (
                    f"lot {lot_id} covered by {owners[lot_id]} and {record.client_order_id}"
                )
                owners[lot_id] = record.client_order_id
                lot = self.engine.lots.get(lot_id)
                assert lot is not None and lot.covered_by == record.client_order_id

    @invariant()
    def position_equals_its_cover(self) -> None:
        position, covered = self.engine.coverage()
        assert position == covered, (position, covered)
        assert position >= 0

    @invariant()
    def journal_never_leads_the_venue(self) -> None:
        # Messages may be late or lost, so the journal can lag an order's fills, never lead them.
        venue_filled = {info.client_order_id: info.filled_size for info in self.venue.orders.values()}
        for record in self.engine.orders.values():
            assert record.filled_size <= venue_filled.get(record.client_order_id, D(0)), record.describe()


ExecutionMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExecutionInterleavings = ExecutionMachine.TestCase
