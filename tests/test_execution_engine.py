"""The execution layer on its own: intent before send, three outcomes, fills from cumulative
sizes, lots and their cover, the journal across a restart, coverage repair and risk closes.

Driven through the hand-scripted mock venue on a simulated clock; the journal is a real SQLite
file where a restart matters.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from exchanges.base import (
    ExchangeUnavailable,
    FeeCorrection,
    InsufficientFunds,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PostOnlyRejected,
    RateLimitExceeded,
    RequestTimeout,
)
from execution.engine import LOOKUP_MIN_AGE, LOOKUP_MISSES, ExecutionEngine
from execution.journal import ExecutionJournal, journal_path, prefix_owner
from execution.records import ExecutionEventKind
from helpers.clock import SimulatedClock
from helpers.risk_manager import RiskManager
from helpers.trading_config import TradingConfig, default_client_id_prefix
from strategies.base_strategy import OrderParams, OrderRole
from tests.mock_exchange import MockExchangeClient

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
CONTRACT = "BTC-PERP"


def make(journal_file: Path | None = None, clock: SimulatedClock | None = None):
    clock = clock or SimulatedClock(1_000.0)
    config = TradingConfig(ticker="BTC", exchange="mock", strategy="grid", quantity=D("0.01"))
    venue = MockExchangeClient(config, clock, best_bid="59990.0", best_ask="60000.0")
    engine = ExecutionEngine(venue, clock, ExecutionJournal(journal_file), size_step=D("0.001"))
    return engine, venue, clock


def entry(price: str = "59980.0", size: str = "0.01") -> OrderParams:
    return OrderParams(side=BUY, quantity=D(size), price=D(price), role=OrderRole.ENTRY)


def exit_for(engine: ExecutionEngine, price: str = "60100.0") -> OrderParams:
    lots = engine.uncovered_lots()
    return OrderParams(
        side=SELL,
        quantity=sum((lot.size for lot in lots), D(0)),
        price=D(price),
        reduce_only=True,
        role=OrderRole.EXIT,
        covers=tuple(lot.lot_id for lot in lots),
    )


def kinds(engine: ExecutionEngine) -> list[ExecutionEventKind]:
    return [event.kind for event in engine.drain_events()]


async def test_the_intent_is_journaled_before_the_request_leaves():
    engine, venue, _ = make()
    seen: list[OrderStatus | None] = []
    original = venue.place_limit_order

    async def spy(*args, **kwargs):
        client_id = args[4]
        record = engine.journal.order(client_id)
        seen.append(record.status if record else None)
        return await original(*args, **kwargs)

    venue.place_limit_order = spy  # type: ignore[method-assign]
    record = await engine.submit(entry(), CONTRACT)
    assert seen == [OrderStatus.PENDING]
    assert engine.journal.order(record.client_order_id).status is OrderStatus.OPEN
    assert [kind for _, kind, cid, _ in engine.journal.events() if cid == record.client_order_id][:2] == [
        "intent",
        "placed",
    ]


@pytest.mark.parametrize(
    "error, status",
    [
        (PostOnlyRejected("would cross"), OrderStatus.REJECTED),
        (InsufficientFunds("no margin"), OrderStatus.REJECTED),
        (RateLimitExceeded("slow down", retry_after=2.0), OrderStatus.REJECTED),
        (RequestTimeout("no answer"), OrderStatus.UNKNOWN),
        (ExchangeUnavailable("502"), OrderStatus.UNKNOWN),
    ],
)
async def test_refusals_are_final_and_ambiguous_answers_stay_unknown(error, status):
    engine, venue, _ = make()
    venue.reject_next("place_limit_order", error)
    record = await engine.submit(entry(), CONTRACT)
    assert record.status is status
    events = list(engine.drain_events())
    if status is OrderStatus.REJECTED:
        assert [e.kind for e in events] == [ExecutionEventKind.REFUSED] and events[0].error is error
    else:
        assert events == [] and record in engine.in_flight()


async def test_an_unknown_order_found_by_client_id_is_adopted_not_sent_again():
    engine, venue, clock = make()
    venue.answer_unknown_next(reaches_venue=True)
    record = await engine.submit(entry(), CONTRACT)
    assert record.status is OrderStatus.UNKNOWN
    clock.advance_to(clock.now() + 1.0)
    await engine.resolve_pending()
    assert record.status is OrderStatus.OPEN and record.venue_order_id == venue.placed[0].order_id
    assert len(venue.calls_to("place_limit_order")) == 1
    assert kinds(engine) == [ExecutionEventKind.ACCEPTED]


async def test_an_order_that_never_arrived_is_given_up_only_after_misses_and_age():
    engine, venue, clock = make()
    venue.answer_unknown_next(reaches_venue=False)
    record = await engine.submit(entry(), CONTRACT)
    for _ in range(200):
        clock.advance_to(clock.now() + 1.0)
        await engine.resolve_pending()
        if record.is_final:
            break
    assert record.status is OrderStatus.REJECTED
    assert clock.now() - record.created_at >= LOOKUP_MIN_AGE
    misses = len(venue.calls_to("find_order"))
    assert misses >= LOOKUP_MISSES and record.error == f"not found on the venue after {misses} look-ups"


async def test_a_failed_look_up_is_not_a_miss():
    engine, venue, clock = make()
    venue.answer_unknown_next(reaches_venue=False)
    record = await engine.submit(entry(), CONTRACT)
    for _ in range(40):
        venue.reject_next("find_order", ExchangeUnavailable("503"))
        clock.advance_to(clock.now() + 5.0)
        await engine.resolve_pending()
    assert record.status is OrderStatus.UNKNOWN and record.misses == 0


async def test_duplicated_and_reordered_cumulative_reports_book_each_fill_once():
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    order_id = record.venue_order_id
    first = venue.fill(order_id, size="0.004", fee="0.01")
    second = venue.fill(order_id, size="0.006", price="59970.0", fee="0.02")
    for update in (first, second, first, second):  # duplicates and an older report replayed
        engine.on_venue_update(update)
    assert record.status is OrderStatus.FILLED
    fills = engine.journal.fills()
    assert [(f.size, f.price, f.fee) for f in fills] == [
        (D("0.004"), D("59980.0"), D("0.01")),
        (D("0.006"), D("59970.0"), D("0.02")),
    ]
    assert engine.position == D("0.010") and engine.ledger.fees == D("0.03")
    assert sum((lot.size for lot in engine.uncovered_lots()), D(0)) == D("0.010")


async def test_an_exact_fee_that_comes_after_the_fill_replaces_the_estimate_everywhere(tmp_path: Path):
    clock = SimulatedClock(1_000.0)
    config = TradingConfig(ticker="BTC", exchange="mock", strategy="grid", quantity=D("0.01"))
    venue = MockExchangeClient(config, clock, best_bid="59990.0", best_ask="60000.0")
    csv_file = tmp_path / "orders.csv"
    journal = ExecutionJournal(tmp_path / "journal.sqlite3", csv_file)
    engine = ExecutionEngine(venue, clock, journal, size_step=D("0.001"))
    record = await engine.submit(entry(), CONTRACT)
    venue._order_handlers.clear()  # this test hands the engine each update itself
    update = venue.fill(record.venue_order_id, fee="0.0120")
    assert update.fill is not None
    estimated = replace(update, fill=replace(update.fill, fee_estimated=True))
    engine.on_venue_update(estimated)
    assert engine.journal.fills()[0].fee_estimated and engine.ledger.fees == D("0.0120")
    exact = FeeCorrection(trade_id="t1", size=D("0.01"), fee=D("0.0150"), replaces=D("0.0120"))
    engine.on_venue_update(replace(update, fill=None, fee_correction=exact))
    (fill,) = engine.journal.fills()
    assert (fill.fee, fill.fee_estimated) == (D("0.0150"), False)
    assert record.fees == engine.ledger.fees == journal.load_ledger().fees == D("0.0150")
    assert engine.position == D("0.01")  # only the fee changed
    # A second report of the same trade corrects nothing more.
    engine.on_venue_update(replace(update, fill=None, fee_correction=exact))
    assert engine.ledger.fees == D("0.0150")
    journal.close()
    rows = csv_file.read_text().splitlines()
    assert rows[-1].split(",")[1] == "fee_corrected" and "+0.0030" in rows[-1]


async def test_a_report_filling_more_than_the_order_is_dropped():
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    info = venue.orders[record.venue_order_id]
    bogus = OrderUpdate(order=type(info)(**{**info.__dict__, "filled_size": D("1000")}))
    engine.on_venue_update(bogus)
    assert engine.position == 0 and record.filled_size == 0 and engine.journal.fills() == []


async def test_a_fill_after_the_cancel_is_still_booked_and_becomes_a_lot():
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    await engine.cancel(record.client_order_id, "requote")
    assert record.status is OrderStatus.CANCELLED
    late = venue.orders[record.venue_order_id]
    late_report = OrderUpdate(
        order=type(late)(**{**late.__dict__, "filled_size": D("0.003"), "average_fill_price": D("59980.0")})
    )
    engine.on_venue_update(late_report)
    assert record.status is OrderStatus.CANCELLED and record.filled_size == D("0.003")
    assert [lot.size for lot in engine.uncovered_lots()] == [D("0.003")]


async def test_an_exit_covers_its_lots_once_and_returns_what_it_did_not_fill():
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    venue.fill(record.venue_order_id)
    exit_params = exit_for(engine)
    take_profit = await engine.submit(exit_params, CONTRACT)
    assert engine.uncovered_lots() == []
    with pytest.raises(ValueError, match="already covered"):
        await engine.submit(exit_params, CONTRACT)
    venue.fill(take_profit.venue_order_id, size="0.004")
    venue.end_order(take_profit.venue_order_id, OrderStatus.EXPIRED)
    (rest,) = engine.uncovered_lots()
    assert rest.size == D("0.006") and rest.price == D("59980.0") and rest.group == take_profit.group
    position, covered = engine.coverage()
    assert position == covered == D("0.006")


async def test_a_post_only_refused_exit_releases_its_lots_with_the_refused_price():
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    venue.fill(record.venue_order_id)
    venue.reject_next("place_limit_order", PostOnlyRejected("would cross"))
    await engine.submit(exit_for(engine, "60100.0"), CONTRACT)
    (lot,) = engine.uncovered_lots()
    assert lot.covered_by is None and lot.refused_price == D("60100.0")


async def test_a_restart_books_fills_made_while_away_and_keeps_every_order(tmp_path: Path):
    path = tmp_path / "bot_journal.sqlite3"
    engine, venue, clock = make(path)
    record = await engine.submit(entry(), CONTRACT)
    venue.fill(record.venue_order_id)
    take_profit = await engine.submit(exit_for(engine), CONTRACT)
    second = await engine.submit(entry("59970.0"), CONTRACT)
    engine.journal.close()
    venue._order_handlers.clear()  # the process died: nobody hears the venue any more
    venue.fill(take_profit.venue_order_id, size="0.004", price="60100.0")
    venue.fill(second.venue_order_id)

    restarted = ExecutionEngine(venue, clock, ExecutionJournal(path), size_step=D("0.001"))
    assert {r.client_order_id for r in restarted.active_orders()} == {
        take_profit.client_order_id,
        second.client_order_id,
    }
    report = await restarted.reconcile(CONTRACT, lambda info: None)
    assert report.fills_found == D("0.014")
    assert restarted.position == venue.position == D("0.016")
    inferred = [f for f in restarted.journal.fills() if f.inferred]
    assert sorted(f.size for f in inferred) == [D("0.004"), D("0.010")]
    assert [lot.size for lot in restarted.uncovered_lots()] == [D("0.010")]  # the second entry's fill
    position, covered = restarted.coverage()
    assert position == covered


async def test_orders_on_the_venue_missing_from_the_journal_are_adopted_with_their_lots():
    engine, venue, _ = make()
    venue.seed_order(SELL, "0.01", "60100.0")  # a take-profit from before the journal
    stale = venue.seed_order(BUY, "0.01", "59900.0")
    report = await engine.reconcile(
        CONTRACT, lambda info: OrderRole.EXIT if info.side is SELL else OrderRole.ENTRY, lambda i: D("60000")
    )
    assert report.adopted == 2
    (take_profit,) = engine.active_orders(OrderRole.EXIT)
    (lot,) = engine.lots_of(take_profit)
    assert lot.size == D("0.01") and lot.price == D("60000") and lot.covered_by == take_profit.client_order_id
    (adopted_entry,) = engine.active_orders(OrderRole.ENTRY)
    assert adopted_entry.venue_order_id == stale.order_id and adopted_entry.previous_run
    assert engine.position == D("0.01") and report.mismatch == 0


async def test_missing_cover_becomes_a_repair_lot_and_excess_cover_is_cancelled():
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    venue.fill(record.venue_order_id)
    take_profit = await engine.submit(exit_for(engine), CONTRACT)
    # Book a fill the lots do not know about: the position grows without cover.
    engine.ledger.apply_fill(BUY, D("59980"), D("0.005"), D(0))
    assert engine.check_coverage() == D("0.005")
    (repair,) = engine.uncovered_lots()
    assert repair.size == D("0.005") and repair.lot_id.startswith("repair/")
    # And the other way: a position smaller than its cover.
    engine.ledger.apply_fill(SELL, D("60000"), D("0.005"), D(0))
    repair_exit = await engine.submit(exit_for(engine), CONTRACT)
    assert engine.check_coverage() == D("-0.005")
    assert engine.exits_to_cancel() == [repair_exit] or engine.exits_to_cancel() == [take_profit]
    assert engine.cover_to_cancel == D("0.005")


async def test_a_risk_close_takes_uncovered_lots_first_then_the_exits_it_made_redundant():
    engine, venue, _ = make()
    first = await engine.submit(entry(), CONTRACT)
    venue.fill(first.venue_order_id)
    take_profit = await engine.submit(exit_for(engine, "60100.0"), CONTRACT)
    second = await engine.submit(entry("59970.0"), CONTRACT)
    venue.fill(second.venue_order_id)
    assert engine.position == D("0.02")
    close = OrderParams(
        side=SELL,
        quantity=D("0.02"),
        order_type=OrderType.MARKET,
        post_only=False,
        reduce_only=True,
        role=OrderRole.RISK_CLOSE,
        max_slippage_pct=D("1"),
    )
    await engine.submit(close, CONTRACT)
    assert engine.position == 0
    assert engine.uncovered_lots() == []  # the second lot was closed by the risk close itself
    assert engine.exits_to_cancel() == [take_profit] and engine.cover_to_cancel == D("0.01")
    await engine.cancel(take_profit.client_order_id, "risk close")
    assert take_profit.status is OrderStatus.CANCELLED
    assert engine.uncovered_lots() == [] and engine.cover_to_cancel == 0
    assert engine.coverage() == (D(0), D(0))


def test_two_bot_names_with_one_prefix_are_detected(tmp_path: Path):
    names = [f"bot{i}" for i in range(2000)]
    by_prefix: dict[str, str] = {}
    clash = None
    for name in names:
        prefix = default_client_id_prefix(name)
        if prefix in by_prefix:
            clash = (by_prefix[prefix], name, prefix)
            break
        by_prefix[prefix] = name
    assert clash is not None
    first, second, prefix = clash
    journal = ExecutionJournal(journal_path(tmp_path, first))
    journal.set_meta("bot_name", first)
    journal.set_meta("client_id_prefix", prefix)
    journal.close()
    assert prefix_owner(tmp_path, prefix, second) == first
    assert prefix_owner(tmp_path, prefix, first) is None
    assert prefix_owner(tmp_path, default_client_id_prefix("other-name-x"), second) in (None, first)


async def test_the_risk_baseline_survives_a_restart(tmp_path: Path):
    path = tmp_path / "bot_journal.sqlite3"
    clock = SimulatedClock(1_000.0)
    config = TradingConfig(ticker="BTC", exchange="mock", strategy="grid", quantity=D("0.01"))
    venue = MockExchangeClient(config, clock)
    journal = ExecutionJournal(path)
    manager = RiskManager(venue, config, clock, store=journal)
    await manager.initialize()
    assert manager.baseline_equity == D("10000")
    journal.close()
    venue.balance = D("9000")  # lost 10 % while the bot was down
    journal = ExecutionJournal(path)
    restarted = RiskManager(venue, config, clock, store=journal)
    await restarted.initialize()
    assert restarted.baseline_equity == D("10000")
    assert restarted.high_water_equity == D("10000")
    decision = await restarted.check_risk_conditions()
    assert decision.action.value == "none"  # no positions to close, but the loss is measured
    assert restarted.status()["drawdown_pct"] == "-10.00"


async def test_an_unknown_exit_that_filled_meanwhile_is_found_among_finished_orders():
    engine, venue, clock = make()
    record = await engine.submit(entry(), CONTRACT)
    venue.fill(record.venue_order_id)
    venue.answer_unknown_next(reaches_venue=True, stream_update=False)  # answer and stream both lost
    take_profit = await engine.submit(exit_for(engine), CONTRACT)
    assert take_profit.status is OrderStatus.UNKNOWN
    (on_venue,) = [o for o in venue.orders.values() if o.client_order_id == take_profit.client_order_id]
    venue._order_handlers.clear()  # its fill is lost too
    venue.fill(on_venue.order_id)
    clock.advance_to(clock.now() + 1.0)
    await engine.resolve_pending()
    assert take_profit.status is OrderStatus.FILLED and engine.position == 0
    assert engine.uncovered_lots() == [] and engine.active_orders() == []
    assert len(venue.placed) == 2  # no second take-profit


async def test_a_fill_whose_message_was_lost_is_booked_from_the_cancel_answer():
    """Found by the property test: the cancel's answer ended the order with its fill unbooked."""
    engine, venue, _ = make()
    record = await engine.submit(entry(), CONTRACT)
    venue._order_handlers.clear()  # the fill message and the cancel's message are both lost
    venue.fill(record.venue_order_id, size="0.004")
    await engine.cancel(record.client_order_id, "requote")
    assert record.status is OrderStatus.CANCELLED and record.filled_size == D("0.004")
    assert engine.position == D("0.004") and [lot.size for lot in engine.uncovered_lots()] == [D("0.004")]


async def test_a_placement_answered_pending_is_confirmed_by_look_up_without_spinning():
    """A venue that answers 'pending' (it took the order, not processed yet): the engine looks it
    up after a delay instead of being due for a look-up at once, over and over."""
    engine, venue, clock = make()
    original = venue.place_limit_order

    async def pending(*args, **kwargs):
        result = await original(*args, **kwargs)
        return replace(result, status=OrderStatus.PENDING)

    venue.place_limit_order = pending  # type: ignore[method-assign]
    venue._order_handlers.clear()  # its stream message is lost: only a look-up can confirm it
    record = await engine.submit(entry(), CONTRACT)
    assert record.status is OrderStatus.PENDING and not record.acknowledged
    assert engine.seconds_until_lookup() is not None and engine.seconds_until_lookup() > 0
    clock.advance_to(clock.now() + 1.0)
    await engine.resolve_pending()
    assert record.acknowledged and record.status is OrderStatus.OPEN


async def test_an_orders_role_comes_from_memory_or_else_the_journal(monkeypatch: pytest.MonkeyPatch):
    """A backtest books each fill's role as it happens: from the record in memory, and for an
    order retired from memory (final, beyond the ones kept) from the journal, which keeps all."""
    monkeypatch.setattr("execution.engine.KEEP_FINAL_IN_MEMORY", 2)
    engine, _, _ = make()
    first = await engine.submit(entry(), CONTRACT)
    await engine.cancel(first.client_order_id, "test")
    for price in ("59970.0", "59960.0", "59950.0"):
        record = await engine.submit(entry(price), CONTRACT)
        await engine.cancel(record.client_order_id, "test")
    assert first.is_final and first.client_order_id not in engine.orders  # retired
    reads = 0
    order = engine.journal.order

    def counted(client_order_id: str):
        nonlocal reads
        reads += 1
        return order(client_order_id)

    monkeypatch.setattr(engine.journal, "order", counted)
    assert engine.role_of(first.client_order_id) is OrderRole.ENTRY
    assert reads == 1
    assert engine.role_of(record.client_order_id) is OrderRole.ENTRY
    assert reads == 1  # still in memory: no read
    assert engine.role_of("someone-else") is None and engine.role_of("") is None
