"""The one owner of this bot's orders and fills.

Everything that sends, cancels or hears about an order goes through :class:`ExecutionEngine`:

* **Intent first.** An order is journaled (status PENDING) before its request leaves, so a process
  killed mid-request restarts knowing it may have an order on the venue.
* **Three outcomes.** A send is accepted, provably refused (a typed :class:`InvalidOrder`-style
  error, or a 429, which the venue did not process), or *unknown* (timeout, 5xx, disconnect). An
  unknown order is looked up by client id among the venue's active and finished orders, and is
  never sent again because one look-up missed: only ``LOOKUP_MISSES`` definitive "not found"
  answers over at least ``LOOKUP_MIN_AGE`` seconds declare it never arrived. Transport errors
  during a look-up count as nothing.
* **Fills from cumulative sizes.** A venue update carries the order's cumulative filled size; the
  fill is the increase over what the journal holds, booked under a deterministic id, so duplicates,
  reordering, stream replays and look-ups can never count a fill twice. Late fills after a cancel
  are applied. A cumulative size beyond the order's size is refused as malformed.
* **Lots.** Each entry fill becomes a lot; an exit covers lots (at most one exit per lot). An exit
  that ends with size unfilled returns that size as a new lot, so filled size is never dropped.
* **Coverage.** ``position == remaining size of live exits + uncovered lots`` must hold for this
  bot. :meth:`check_coverage` measures it from the journal alone (no venue read can trigger a
  repair) and repairs a mismatch beyond one size step: missing cover becomes a repair lot (which
  the strategy closes like any other); excess cover cancels the newest exits.

Venue updates are applied synchronously inside the venue client's callback, before the client's
own call returns, so the engine's view is current whenever the orchestrator or a strategy looks.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from exchanges.base import (
    BaseExchangeClient,
    BatchOutcome,
    ExchangeError,
    FeeCorrection,
    Fill,
    LimitOrderRequest,
    NetworkError,
    OrderInfo,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PostOnlyRejected,
    RateLimitExceeded,
)
from execution.journal import ExecutionJournal, JournalWriteError
from execution.records import ExecutionEvent, ExecutionEventKind, FillRecord, Lot, OrderRecord
from helpers.clock import Clock
from helpers.log_setup import log_after_reaction
from helpers.position_ledger import PositionLedger
from strategies.base_strategy import OrderParams, OrderRole

logger = logging.getLogger("execution")

ZERO = Decimal(0)

#: First look-up of an order with an unknown outcome, this long after the ambiguous answer.
LOOKUP_DELAY = 0.5
#: Further look-ups back off up to this interval.
LOOKUP_MAX_INTERVAL = 10.0
#: Definitive "not found" answers, over at least LOOKUP_MIN_AGE seconds since the intent (longer
#: than a request may stay in flight: our REST timeout is 10 s), before an order whose outcome was
#: unknown is taken as never having reached the venue.
LOOKUP_MISSES = 5
LOOKUP_MIN_AGE = 12.0
#: An acknowledged cancel not confirmed by the venue within this time is looked up.
CANCEL_CONFIRM_SECONDS = 3.0
#: Final orders kept in memory for late updates (older ones are read back from the journal).
KEEP_FINAL_IN_MEMORY = 500

EventListener = Callable[[], None]


class ExecutionEngine:
    """Sends, tracks, journals and reconciles every order of one bot."""

    def __init__(
        self,
        client: BaseExchangeClient,
        clock: Clock,
        journal: ExecutionJournal,
        *,
        size_step: Decimal = ZERO,
    ) -> None:
        self.client = client
        self.clock = clock
        self.journal = journal
        #: Tolerance for coverage checks (one venue size step).
        self.size_step = size_step
        self.ledger: PositionLedger = journal.load_ledger()
        self.orders: dict[str, OrderRecord] = {}
        #: The orders not yet final (what every view scans: a few, however long the bot runs).
        self._live: dict[str, OrderRecord] = {}
        #: Live orders whose state must be read back from the venue (at their next_lookup_at).
        self._lookups: dict[str, OrderRecord] = {}
        self._by_venue_id: dict[str, str] = {}
        self._final_order: deque[str] = deque()
        self.lots: dict[str, Lot] = {}
        #: Events for the strategy, in order of arrival; the orchestrator drains them.
        self.events: deque[ExecutionEvent] = deque()
        #: Size a risk close took out of the position that exits still cover (signed like the
        #: position it was taken from: the cover that has to go).
        self._absorb = ZERO
        self._listeners: list[EventListener] = []
        self.refused_count = 0
        self.accepted_count = 0
        #: Bumped on every change a strategy could decide differently on.
        self.version = 0
        #: Why the last coverage check found a mismatch ("" when it held).
        self.coverage_problem = ""
        for record in journal.open_orders():
            self._remember(record)
            if not record.acknowledged or record.cancel_reason:
                self._schedule(record, clock.now())  # sent (or cancelled) just before a restart
        for lot in journal.open_lots():
            self.lots[lot.lot_id] = lot
        client.subscribe_order_updates(self.on_venue_update)
        client.send_gate = journal.flush

    # -- wiring ------------------------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> None:
        """Called (synchronously) whenever an event is queued, so the orchestrator wakes."""
        self._listeners.append(listener)

    def _emit(self, event: ExecutionEvent) -> None:
        self.version += 1
        self.events.append(event)
        for listener in self._listeners:
            listener()

    def _remember(self, record: OrderRecord) -> None:
        self.orders[record.client_order_id] = record
        if not record.is_final:
            self._live[record.client_order_id] = record
        if record.venue_order_id:
            self._by_venue_id[record.venue_order_id] = record.client_order_id

    def _retire(self, record: OrderRecord) -> None:
        """Keep a bounded number of final orders in memory; the journal has them all."""
        self._live.pop(record.client_order_id, None)
        self._lookups.pop(record.client_order_id, None)
        self._final_order.append(record.client_order_id)
        while len(self._final_order) > KEEP_FINAL_IN_MEMORY:
            old = self.orders.get(self._final_order.popleft())
            if old is not None and old.is_final:
                del self.orders[old.client_order_id]
                if old.venue_order_id:
                    self._by_venue_id.pop(old.venue_order_id, None)

    # -- views for strategies and the orchestrator -------------------------------------------

    def active_orders(self, role: OrderRole | None = None) -> list[OrderRecord]:
        """Orders that are or may be on the venue (in flight and unknown ones included)."""
        if role is None:
            return list(self._live.values())
        return [record for record in self._live.values() if record.role is role]

    def uncovered_lots(self) -> list[Lot]:
        return [lot for lot in self.lots.values() if lot.covered_by is None]

    def role_of(self, client_order_id: str) -> OrderRole | None:
        """The role of one of our orders (None: not ours). Its record in memory if it is there
        (an order being filled is live), else the journal's, which keeps every order."""
        record = self.orders.get(client_order_id) if client_order_id else None
        if record is None and client_order_id:
            record = self.journal.order(client_order_id)
        return record.role if record is not None else None

    def lots_of(self, record: OrderRecord) -> list[Lot]:
        return [self.lots[lot_id] for lot_id in record.covers if lot_id in self.lots]

    @property
    def position(self) -> Decimal:
        return self.ledger.size

    def in_flight(self) -> list[OrderRecord]:
        """Orders whose state we are still waiting to learn (sent, unknown, cancel pending)."""
        return [
            record
            for record in self._live.values()
            if not record.acknowledged or record.cancel_requested_at is not None
        ]

    # -- sending -----------------------------------------------------------------------------

    async def submit(self, params: OrderParams, contract_id: str) -> OrderRecord:
        """Journal the intent, send it, and record the outcome. Never raises ExchangeError:
        a refusal is a REFUSED event, an ambiguous answer leaves the order UNKNOWN."""
        if params.order_type is OrderType.LIMIT and params.price is None:
            raise ValueError("a limit order needs a price")
        now = self.clock.now()
        client_order_id = self.client.client_ids.next_id(now)
        params.client_order_id = client_order_id
        covered = [self.lots[lot_id] for lot_id in params.covers]
        for lot in covered:
            if lot.covered_by is not None:
                raise ValueError(f"lot {lot.lot_id} is already covered by {lot.covered_by}")
        record = self._new_record(params, contract_id, covered, now)
        gated = self.client.gates_sends
        with self.journal.deferred() if gated else contextlib.nullcontext(), self.journal.atomic():
            for lot in covered:
                lot.covered_by = client_order_id
                self.journal.save_lot(lot)
            self.journal.save_order(record, "intent", now)
        if gated:
            # The client flushes the journal (with any fill this reacts to) while it signs,
            # before the request leaves; if the loop gets there first, so much the better.
            self.journal.flush_soon()
        else:
            self._flush_intent(record, covered)
        self._remember(record)
        self.version += 1
        try:
            if params.order_type is OrderType.MARKET:
                assert params.max_slippage_pct is not None, "a market order needs a slippage bound"
                result = await self.client.place_market_order(
                    contract_id,
                    params.side,
                    params.quantity,
                    client_order_id,
                    params.max_slippage_pct,
                    reduce_only=params.reduce_only,
                )
            else:
                assert params.price is not None
                result = await self.client.place_limit_order(
                    contract_id,
                    params.side,
                    params.quantity,
                    params.price,
                    client_order_id,
                    post_only=params.post_only,
                    reduce_only=params.reduce_only,
                )
        except JournalWriteError:
            self._drop_unsent(record, covered)  # the client refused to send it unjournaled
            raise
        except RateLimitExceeded as exc:
            self._refused(record, exc)  # a 429 is the venue declining to process the request
        except NetworkError as exc:
            self._unknown(record, exc)
        except ExchangeError as exc:
            self._refused(record, exc)
        else:
            self._accepted(record, result)
        return record

    @staticmethod
    def _new_record(params: OrderParams, contract_id: str, covered: list[Lot], now: float) -> OrderRecord:
        """The record of an order about to be sent (``params.client_order_id`` already set)."""
        client_order_id = params.client_order_id
        assert client_order_id is not None
        return OrderRecord(
            client_order_id=client_order_id,
            role=params.role,
            side=params.side,
            order_type=params.order_type,
            quantity=params.quantity,
            price=params.price,
            contract_id=contract_id,
            reduce_only=params.reduce_only,
            post_only=params.post_only,
            created_at=now,
            updated_at=now,
            covers=tuple(params.covers),
            group=covered[0].group if covered else client_order_id,
        )

    def _flush_intent(self, record: OrderRecord, covered: list[Lot]) -> None:
        try:
            self.journal.flush()
        except JournalWriteError:
            self._drop_unsent(record, covered)
            raise

    def _drop_unsent(self, record: OrderRecord, covered: list[Lot]) -> None:
        """An order whose intent could not be journaled was never sent: it does not exist.
        (Its queued intent may still be written later; a restart finds it not on the venue.)"""
        for lot in covered:
            lot.covered_by = None
        self.orders.pop(record.client_order_id, None)
        self._live.pop(record.client_order_id, None)
        record.status = OrderStatus.REJECTED
        record.error = "not sent: the journal could not write its intent"

    def _accepted(self, record: OrderRecord, result: OrderResult) -> None:
        if result.order_id and record.venue_order_id != result.order_id:
            record.venue_order_id = result.order_id
            self._by_venue_id[result.order_id] = record.client_order_id
        if not record.acknowledged and (result.status is OrderStatus.UNKNOWN or not result.order_id):
            self._unknown(record, None)
            return
        # The answer may carry execution the stream has not (or will never have) delivered.
        self._apply_info(record, self._info_from_result(record, result), None)
        if not record.acknowledged and not record.is_final:
            # The venue took it but has not processed it yet (PENDING): confirm it by look-up.
            self._schedule(record, self.clock.now() + LOOKUP_DELAY)

    @staticmethod
    def _info_from_result(record: OrderRecord, result: OrderResult) -> OrderInfo:
        """A placement or cancel answer as a venue report of the order (cumulative sizes)."""
        return OrderInfo(
            order_id=record.venue_order_id or "",
            client_order_id=record.client_order_id,
            contract_id=record.contract_id,
            side=record.side,
            order_type=record.order_type,
            size=record.quantity,
            price=record.price or result.price or ZERO,
            status=result.status,
            filled_size=max(result.filled_size, record.filled_size),
            average_fill_price=result.average_fill_price,
        )

    def _acknowledge(self, record: OrderRecord) -> None:
        """The venue has the order: count it, say so once, and tell the strategy."""
        if record.acknowledged:
            return
        record.acknowledged = True
        now = self.clock.now()
        self.accepted_count += 1
        if record.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            record.status = OrderStatus.OPEN
        record.updated_at = now
        self._schedule(record, 0.0)
        record.misses = 0
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "placed %s %s %s %s @ %s (id %s)",
                record.role.value,
                record.side.value,
                record.order_type.value,
                record.quantity,
                record.price if record.price is not None else "market",
                record.venue_order_id or record.client_order_id,
            )
        self.journal.save_order(record, "placed", now)
        self._emit(ExecutionEvent(ExecutionEventKind.ACCEPTED, record))

    def _refused(self, record: OrderRecord, error: ExchangeError) -> None:
        self.refused_count += 1
        if record.is_final:
            # The stream already ended it (a venue that reports refusals asynchronously): the
            # strategy still needs the typed reason.
            self._emit(ExecutionEvent(ExecutionEventKind.REFUSED, record, error=error))
            return
        now = self.clock.now()
        record.status = OrderStatus.REJECTED
        record.error = f"{type(error).__name__}: {error}"
        record.updated_at = now
        routine = isinstance(error, PostOnlyRejected)
        logger.log(
            logging.INFO if routine else logging.WARNING,
            "order refused: %s %s %s @ %s: %s",
            record.role.value,
            record.side.value,
            record.quantity,
            record.price if record.price is not None else "market",
            error,
        )
        with self.journal.atomic():
            self._release_cover(record, refused_price=record.price if routine else None)
            self.journal.save_order(record, "refused", now)
        self._retire(record)
        self._emit(ExecutionEvent(ExecutionEventKind.REFUSED, record, error=error))

    def _unknown(self, record: OrderRecord, error: ExchangeError | None) -> None:
        now = self.clock.now()
        record.status = OrderStatus.UNKNOWN
        record.error = (
            f"{type(error).__name__}: {error}" if error is not None else "no order id in the answer"
        )
        record.updated_at = now
        self._schedule(record, now + LOOKUP_DELAY)
        self.version += 1
        logger.warning("outcome of %s is unknown (%s): will look it up", record.describe(), record.error)
        self.journal.save_order(record, "unknown", now)

    # -- cancelling --------------------------------------------------------------------------

    async def cancel(self, client_order_id: str, reason: str) -> None:
        """Ask the venue to cancel one of our orders; its final state arrives as an update."""
        record = self.orders.get(client_order_id)
        if record is None or record.is_final:
            return
        now = self.clock.now()
        first = record.cancel_requested_at is None
        record.cancel_reason = reason
        record.cancel_requested_at = now
        if first:
            self.journal.save_order(record, "cancel_requested", now, reason)
        if not record.venue_order_id:
            # Sent but not acknowledged: find it first; the look-up sends the cancel.
            self._schedule(record, now)
            return
        try:
            result = await self.client.cancel_order(record.contract_id, record.venue_order_id)
        except ExchangeError as exc:
            self._cancel_answered(record, None, exc, now)
            return
        self._cancel_answered(record, result, None, now)

    def _cancel_answered(
        self, record: OrderRecord, result: OrderResult | None, error: ExchangeError | None, now: float
    ) -> None:
        """A cancel's answer (single or from a batch): the final state, or what to look up when."""
        if isinstance(error, OrderNotFound):
            # Gone already (filled, cancelled, expired): read its final state back.
            self._schedule(record, now)
            return
        if isinstance(error, NetworkError):
            logger.warning("cancel of %s: no answer (%s); will look it up", record.describe(), error)
            self._schedule(record, now + LOOKUP_DELAY)
            return
        if error is not None:
            logger.warning("cancel of %s refused: %s", record.describe(), error)
            record.cancel_requested_at = None
            self._emit(ExecutionEvent(ExecutionEventKind.CANCEL_FAILED, record, error=error))
            return
        assert result is not None
        if result.status.is_final and not record.is_final:
            # The answer's cumulative fill counts too: a fill whose message was lost is booked
            # here rather than lost with an order that is final from now on.
            self._apply_info(record, self._info_from_result(record, result), None)
        elif not record.is_final:
            self._schedule(record, now + CANCEL_CONFIRM_SECONDS)

    # -- batches -----------------------------------------------------------------------------

    async def submit_batch(self, batch: Sequence[OrderParams], contract_id: str) -> list[OrderRecord]:
        """Place several limit orders in one venue batch (see BaseExchangeClient.place_limit_orders).

        Every intent (and every lot it covers) is journaled in ONE commit before the batch
        leaves, so a crash after it restarts knowing all of them may be on the venue (each is
        looked up, as after a single send). Each order's outcome is then handled exactly as
        :meth:`submit` handles its own. Never raises ExchangeError."""
        if any(p.order_type is not OrderType.LIMIT or p.price is None for p in batch):
            raise ValueError("a batch holds limit orders with a price only")
        now = self.clock.now()
        records: list[OrderRecord] = []
        claimed: set[str] = set()
        for params in batch:
            params.client_order_id = self.client.client_ids.next_id(now)
            for lot_id in params.covers:
                if self.lots[lot_id].covered_by is not None or lot_id in claimed:
                    raise ValueError(f"lot {lot_id} is already covered")
                claimed.add(lot_id)
        with self.journal.atomic():
            for params in batch:
                covered = [self.lots[lot_id] for lot_id in params.covers]
                record = self._new_record(params, contract_id, covered, now)
                for lot in covered:
                    lot.covered_by = record.client_order_id
                    self.journal.save_lot(lot)
                self.journal.save_order(record, "intent", now)
                records.append(record)
        for record in records:
            self._remember(record)
        self.version += 1
        requests = [
            LimitOrderRequest(
                contract_id,
                r.side,
                r.quantity,
                r.price or ZERO,
                r.client_order_id,
                post_only=r.post_only,
                reduce_only=r.reduce_only,
            )
            for r in records
        ]
        try:
            outcomes = await self.client.place_limit_orders(requests)
        except ExchangeError as exc:  # the batch as a whole could not be judged: unknown, each
            outcomes = [BatchOutcome(r.client_order_id, error=NetworkError(str(exc))) for r in records]
        for record, outcome in zip(records, outcomes, strict=True):
            self._placement_answered(record, outcome)
        return records

    def _placement_answered(self, record: OrderRecord, outcome: BatchOutcome) -> None:
        """One order's outcome from a batch, judged as :meth:`submit` judges a single answer."""
        error = outcome.error
        if error is None:
            assert outcome.result is not None
            self._accepted(record, outcome.result)
        elif isinstance(error, RateLimitExceeded):
            self._refused(record, error)  # a 429 is the venue declining to process the request
        elif isinstance(error, NetworkError):
            self._unknown(record, error)
        else:
            self._refused(record, error)

    async def cancel_batch(self, client_order_ids: Sequence[str], reason: str) -> None:
        """Cancel several of our orders with one venue batch per contract; every cancel request
        is journaled in one commit first, and each answer is handled as :meth:`cancel` does."""
        now = self.clock.now()
        records = [
            r
            for r in (self.orders.get(cid) for cid in dict.fromkeys(client_order_ids))
            if r is not None and not r.is_final
        ]
        with self.journal.atomic():
            for record in records:
                first = record.cancel_requested_at is None
                record.cancel_reason = reason
                record.cancel_requested_at = now
                if first:
                    self.journal.save_order(record, "cancel_requested", now, reason)
        by_contract: dict[str, list[OrderRecord]] = {}
        for record in records:
            if not record.venue_order_id:
                self._schedule(record, now)  # sent but not acknowledged: the look-up cancels it
            else:
                by_contract.setdefault(record.contract_id, []).append(record)
        for contract_id, group in by_contract.items():
            order_ids = [r.venue_order_id or "" for r in group]
            try:
                outcomes = await self.client.cancel_orders(contract_id, order_ids)
            except ExchangeError as exc:
                outcomes = [BatchOutcome(o, error=NetworkError(str(exc))) for o in order_ids]
            for record, outcome in zip(group, outcomes, strict=True):
                self._cancel_answered(record, outcome.result, outcome.error, now)

    # -- venue updates -----------------------------------------------------------------------

    def on_venue_update(self, update: OrderUpdate) -> None:
        """The venue client's order stream (and its answers) land here, synchronously."""
        info = update.order
        record = self._find_record(info.client_order_id, info.order_id)
        if record is None:
            logger.debug("update for an order that is not ours: %s", info.order_id)
            return
        # One report can acknowledge, fill and end the order: one commit, not three. It is
        # queued (see ExecutionJournal.deferred): the reaction it starts commits it together
        # with its own intent, else the loop's next step does.
        if update.fee_correction is not None:
            with self.journal.atomic():  # reads the journal: not on the reaction path anyway
                self._apply_info(record, info, update.fill)
                self._correct_fee(record, update.fee_correction)
            return
        with self.journal.deferred(), self.journal.atomic():
            self._apply_info(record, info, update.fill)
        self.journal.flush_soon()

    def _correct_fee(self, record: OrderRecord, correction: FeeCorrection) -> None:
        """The exact fee of size booked earlier with an estimate (the fill did not wait for it)."""
        size = min(correction.size, record.estimated_size)
        if size <= 0:
            return  # nothing of it was booked with an estimate here (a look-up booked it, say)
        if size == record.estimated_size:
            replaces = record.estimated_fees
        else:
            replaces = record.estimated_fees * size / record.estimated_size
        exact = correction.fee if size == correction.size else correction.fee * size / correction.size
        record.estimated_size -= size
        record.estimated_fees -= replaces
        delta = exact - replaces
        record.fees += delta
        self.ledger.fees += delta
        self.journal.correct_fee(record, size, delta, self.ledger, self.clock.now())
        logger.debug("fee of %s %s: %s exact, %s estimated", record.client_order_id, size, exact, replaces)

    def _find_record(self, client_order_id: str | None, venue_order_id: str | None) -> OrderRecord | None:
        if client_order_id:
            record = self.orders.get(client_order_id)
            if record is not None:
                return record
        if venue_order_id and venue_order_id in self._by_venue_id:
            return self.orders.get(self._by_venue_id[venue_order_id])
        if client_order_id and self.client.client_ids.is_ours(client_order_id):
            record = self.journal.order(client_order_id)  # a late update of an old order
            if record is not None:
                record.previous_run = False
                self._remember(record)
                if record.is_final:
                    self._retire(record)
            return record
        return None

    def _apply_info(self, record: OrderRecord, info: OrderInfo, fill: Fill | None) -> None:
        """Fold one venue report of the order (cumulative sizes) into the record."""
        if info.order_id and record.venue_order_id != info.order_id:
            record.venue_order_id = info.order_id
            self._by_venue_id[info.order_id] = record.client_order_id
        cumulative = info.filled_size
        if cumulative > record.quantity:
            logger.error(
                "dropped a report of %s: cumulative fill %s exceeds the order size %s",
                record.client_order_id,
                cumulative,
                record.quantity,
            )
            return
        delta = cumulative - record.filled_size
        status = info.status
        if delta > 0 or status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            self._acknowledge(record)
        if delta > 0:
            self._book_fill(record, info, fill, delta)
        if status in (OrderStatus.PENDING, OrderStatus.UNKNOWN) or record.is_final:
            return  # final states are sticky; a late fill was booked above
        if record.filled_size >= record.quantity:
            status = OrderStatus.FILLED
        elif status is OrderStatus.OPEN and record.filled_size > 0:
            status = OrderStatus.PARTIALLY_FILLED
        if status is not record.status:
            self._set_status(record, status)

    def _book_fill(self, record: OrderRecord, info: OrderInfo, fill: Fill | None, delta: Decimal) -> None:
        now = self.clock.now()
        cumulative = record.filled_size + delta
        if fill is not None and fill.size > 0:
            # The venue's own execution: exact price and fee (pro rata if it covers more or less
            # than what is new to us, which happens when an earlier message was lost).
            is_maker = fill.is_maker
            fee_estimated = bool(getattr(fill, "fee_estimated", False))
            if fill.size == delta or info.average_fill_price is None:
                price = fill.price
            else:
                price = (info.average_fill_price * cumulative - record.filled_quote) / delta
            fee = fill.fee if fill.size == delta else fill.fee * delta / fill.size
        else:
            # Known only from a cumulative size (an answer or a look-up): no fee reported.
            is_maker = record.order_type is OrderType.LIMIT
            fee_estimated = True
            fee = ZERO
            if info.average_fill_price is not None:
                price = (info.average_fill_price * cumulative - record.filled_quote) / delta
            else:
                price = record.price if record.price is not None else info.price
        fill_id = f"{record.client_order_id}#{cumulative.normalize()}"
        if record.from_journal and self.journal.has_fill(fill_id):
            record.filled_size = cumulative
            return
        realized = self.ledger.apply_fill(record.side, price, delta, fee)
        record.filled_size = cumulative
        record.filled_quote += price * delta
        record.fees += fee
        if fee_estimated and fill is not None:
            record.estimated_size += delta
            record.estimated_fees += fee
        record.updated_at = now
        booked = FillRecord(
            fill_id=fill_id,
            client_order_id=record.client_order_id,
            role=record.role,
            side=record.side,
            price=price,
            size=delta,
            fee=fee,
            timestamp=fill.timestamp if fill is not None and fill.timestamp else now,
            is_maker=is_maker,
            fee_estimated=fee_estimated,
            inferred=fill is None,
            realized_pnl=realized,
        )
        if record.status is OrderStatus.OPEN:
            record.status = OrderStatus.PARTIALLY_FILLED
        with self.journal.atomic():
            if record.role is OrderRole.ENTRY:
                lot = Lot(
                    lot_id=fill_id,
                    group=record.group,
                    side=record.side,
                    size=delta,
                    price=price,
                    created_at=now,
                )
                self.lots[lot.lot_id] = lot
                self.journal.save_lot(lot)
            elif record.role is OrderRole.RISK_CLOSE:
                self._absorb_risk_close(record.side, delta)
            self.journal.save_fill(booked, record, self.ledger)
        # The event first: the reaction it starts (a live bot's) puts the FILL line off.
        self._emit(ExecutionEvent(ExecutionEventKind.FILL, record, fill=booked))
        if logger.isEnabledFor(logging.INFO):
            ledger = self.ledger
            log_after_reaction(
                _log_fill,
                record,
                record.venue_order_id or record.client_order_id,
                booked,
                [(lot.size, lot.price) for lot in self.lots_of(record)],
                ledger.size,
                ledger.realized_pnl,
                ledger.fees,
            )

    def _set_status(self, record: OrderRecord, status: OrderStatus, *, by_venue: bool = True) -> None:
        now = self.clock.now()
        record.status = status
        record.updated_at = now
        record.misses = 0
        if not status.is_final:
            self.journal.save_order(record, status.value, now)
            return
        record.cancel_requested_at = None
        with self.journal.atomic():
            if record.role is OrderRole.EXIT:
                self._end_exit(record, refused_by_venue=by_venue and status is OrderStatus.REJECTED)
            self.journal.save_order(record, status.value, now)
        level = logging.DEBUG if status is OrderStatus.FILLED else logging.INFO
        if logger.isEnabledFor(level):  # describe() is not free: a backtest ends hundreds
            logger.log(
                level,
                "%s ended %s (%s filled)%s",
                record.describe(),
                status.value,
                record.filled_size,
                f": {record.cancel_reason}"
                if record.cancel_reason and status is OrderStatus.CANCELLED
                else "",
            )
        self._retire(record)
        self._emit(ExecutionEvent(ExecutionEventKind.ENDED, record))

    # -- lots --------------------------------------------------------------------------------

    def _end_exit(self, record: OrderRecord, *, refused_by_venue: bool) -> None:
        """An exit reached a final state: its unfilled size comes back as a lot (or is absorbed
        by a risk close that already took it out of the position)."""
        if record.filled_size == 0 and not self._absorb:
            refused = record.price if refused_by_venue and record.post_only else None
            self._release_cover(record, refused_price=refused)
            return
        lots = self.lots_of(record)
        for lot in lots:
            self.lots.pop(lot.lot_id, None)
            self.journal.save_lot(lot, closed=True)
        remaining = record.remaining
        sign = record.side.opposite.sign  # the side of the position this exit closes
        take = min(remaining, max(ZERO, self._absorb * sign))
        if take > 0:
            self._absorb -= take * sign
        rest = remaining - take
        if rest <= 0:
            return
        notional = sum((lot.notional for lot in lots), ZERO)
        size = sum((lot.size for lot in lots), ZERO)
        price = notional / size if size > 0 else (self.ledger.entry_price or record.price or ZERO)
        lot = Lot(
            lot_id=f"{record.client_order_id}/rest",
            group=record.group,
            side=record.side.opposite,
            size=rest,
            price=price,
            created_at=self.clock.now(),
        )
        self.lots[lot.lot_id] = lot
        self.journal.save_lot(lot)
        logger.info(
            "%s of %s is uncovered again after it ended %s", rest, record.describe(), record.status.value
        )

    def _release_cover(self, record: OrderRecord, refused_price: Decimal | None) -> None:
        for lot in self.lots_of(record):
            if lot.covered_by == record.client_order_id:
                lot.covered_by = None
                lot.refused_price = refused_price
                self.journal.save_lot(lot)

    def _absorb_risk_close(self, side: OrderSide, size: Decimal) -> None:
        """A risk close filled ``size``: take it out of the uncovered lots first (oldest first),
        and leave the rest to be taken from the exits it makes redundant."""
        position_side = side.opposite
        left = size
        for lot in self.uncovered_lots():
            if left <= 0:
                break
            if lot.side is not position_side:
                continue
            del self.lots[lot.lot_id]
            self.journal.save_lot(lot, closed=True)
            if lot.size > left:
                rest = Lot(
                    lot_id=f"{lot.lot_id}/rest",
                    group=lot.group,
                    side=lot.side,
                    size=lot.size - left,
                    price=lot.price,
                    created_at=self.clock.now(),
                )
                self.lots[rest.lot_id] = rest
                self.journal.save_lot(rest)
                left = ZERO
            else:
                left -= lot.size
        if left > 0:
            self._absorb += left * position_side.sign

    @property
    def cover_to_cancel(self) -> Decimal:
        """Exit size made redundant by risk closes, not yet cancelled."""
        return abs(self._absorb)

    def exits_to_cancel(self) -> list[OrderRecord]:
        """The exits whose cancel frees :attr:`cover_to_cancel`, farthest from the market first."""
        need = self.cover_to_cancel
        if need <= 0:
            return []
        exits = [r for r in self.active_orders(OrderRole.EXIT) if r.cancel_requested_at is None]
        exits.sort(key=lambda r: r.price or ZERO, reverse=exits[0].side is OrderSide.SELL if exits else False)
        chosen: list[OrderRecord] = []
        pending = sum(
            (r.remaining for r in self.active_orders(OrderRole.EXIT) if r.cancel_requested_at), ZERO
        )
        for record in exits:
            if pending >= need:
                break
            chosen.append(record)
            pending += record.remaining
        return chosen

    # -- look-ups of orders whose state we do not know ---------------------------------------

    def _schedule(self, record: OrderRecord, at: float) -> None:
        """Look the order up at ``at`` (0: no look-up needed)."""
        record.next_lookup_at = at
        if at > 0 and not record.is_final:
            self._lookups[record.client_order_id] = record
        else:
            self._lookups.pop(record.client_order_id, None)

    @property
    def lookups_waiting(self) -> bool:
        """Orders wait for a look-up (due or not: :meth:`resolve_pending` knows which)."""
        return bool(self._lookups)

    def seconds_until_lookup(self) -> float | None:
        if not self._lookups:
            return None
        due = min(record.next_lookup_at for record in self._lookups.values())
        return max(0.0, due - self.clock.now())

    async def resolve_pending(self) -> None:
        """Look up every order whose look-up is due (unknown outcomes, unconfirmed cancels)."""
        now = self.clock.now()
        for record in list(self._lookups.values()):
            if record.is_final:
                self._lookups.pop(record.client_order_id, None)
                continue
            if record.next_lookup_at > now:
                continue
            if record.status is OrderStatus.PENDING and now - record.created_at < LOOKUP_DELAY:
                self._schedule(record, record.created_at + LOOKUP_DELAY)  # never due at once again
                continue
            await self.look_up(record)

    async def look_up(self, record: OrderRecord) -> None:
        now = self.clock.now()
        try:
            info = await self.client.find_order(record.contract_id, record.client_order_id)
        except OrderNotFound:
            self._missed(record, now)
            return
        except ExchangeError as exc:
            self._schedule(record, now + self._backoff(record))
            logger.warning("could not look up %s: %s", record.describe(), exc)
            return
        if not record.acknowledged:
            logger.info("found on the venue: %s", record.describe())
        record.misses = 0
        self._schedule(record, 0.0)
        self._apply_info(record, info, None)
        if not record.acknowledged:
            self._schedule(record, now + self._backoff(record))  # the venue has not processed it yet
        if not record.is_final and record.cancel_requested_at is not None:
            # Still live although we asked it gone (or never could ask): ask (again).
            self._schedule(record, now + CANCEL_CONFIRM_SECONDS)
            await self.cancel(record.client_order_id, record.cancel_reason)

    def _missed(self, record: OrderRecord, now: float) -> None:
        record.misses += 1
        old_enough = now - record.created_at >= LOOKUP_MIN_AGE
        if record.misses >= LOOKUP_MISSES and old_enough:
            logger.warning(
                "%s was not found on the venue in %d look-ups over %.0f s: it never arrived",
                record.describe(),
                record.misses,
                now - record.created_at,
            )
            record.error = f"not found on the venue after {record.misses} look-ups"
            self._set_status(record, OrderStatus.REJECTED, by_venue=False)
            return
        self._schedule(record, now + self._backoff(record))
        logger.info("%s not found yet (look-up %d)", record.describe(), record.misses)

    @staticmethod
    def _backoff(record: OrderRecord) -> float:
        return min(LOOKUP_MAX_INTERVAL, LOOKUP_DELAY * 2 ** min(record.misses, 6))

    # -- coverage ----------------------------------------------------------------------------

    def coverage(self) -> tuple[Decimal, Decimal]:
        """(this bot's position, the size its live exits and uncovered lots account for), signed."""
        covered = ZERO
        for record in self.active_orders(OrderRole.EXIT):
            covered += record.remaining * record.side.opposite.sign
        for lot in self.uncovered_lots():
            covered += lot.size * lot.side.sign
        return self.ledger.size, covered - self._absorb

    def check_coverage(self, *, repair: bool = True) -> Decimal:
        """Compare the position with what covers it; repair a mismatch beyond one size step.

        Rule: missing cover becomes a repair lot at the ledger's entry price (the strategy closes
        it like any other lot); excess cover is marked as cover to cancel, so the newest exits
        are cancelled and their unfilled size is not returned as lots. Returns the mismatch
        (position minus cover, signed); nothing is repaired while orders are in flight.
        """
        position, covered = self.coverage()
        mismatch = position - covered
        if abs(mismatch) <= self.size_step:
            self.coverage_problem = ""
            return mismatch
        self.coverage_problem = (
            f"position {position} but live exits and waiting lots account for {covered} "
            f"(difference {mismatch})"
        )
        if not repair or self.in_flight():
            return mismatch
        now = self.clock.now()
        logger.warning(
            "coverage mismatch: %s; repairing", self.coverage_problem, extra={"notify": "mismatch"}
        )
        self.journal.note(now, "coverage_mismatch", self.coverage_problem)
        if (mismatch > 0) == (position > 0) and position != 0 and abs(mismatch) <= abs(position):
            lot = Lot(
                lot_id=f"repair/{self.client.client_ids.next_id(now)}",
                group=f"repair/{now:.3f}",
                side=OrderSide.BUY if mismatch > 0 else OrderSide.SELL,
                size=abs(mismatch),
                price=self.ledger.entry_price,
                created_at=now,
            )
            self.lots[lot.lot_id] = lot
            self.journal.save_lot(lot)
        else:
            self._absorb -= mismatch
        self.version += 1
        self.coverage_problem = ""
        return mismatch

    # -- restart and reconnect ---------------------------------------------------------------

    async def reconcile(
        self,
        contract_id: str,
        classify: Callable[[OrderInfo], OrderRole | None],
        entry_price_of: Callable[[OrderInfo], Decimal] | None = None,
    ) -> ReconcileReport:
        """Bring the journal in line with the venue (start-up and after every reconnect).

        Each order the journal holds as possibly live is looked up by client id: fills made
        while we were away are booked (they become lots, so they get their exits), final states
        are applied, and orders not found stay unresolved for later look-ups. Orders on the
        venue with our prefix that the journal does not know (a lost journal, or a bot from
        before the journal) are adopted: ``classify`` says which role each plays; an adopted
        exit brings an inferred entry lot so that the position accounting holds.
        """
        report = ReconcileReport()
        for record in list(self.active_orders()):
            if record.contract_id != contract_id:
                continue
            before = record.filled_size
            await self.look_up(record)
            report.checked += 1
            report.fills_found += record.filled_size - before
        live = await self.client.get_active_orders(contract_id)
        for info in live:
            cid = info.client_order_id
            if not cid or not self.client.client_ids.is_ours(cid):
                continue
            if cid in self.orders or self.journal.order(cid) is not None:
                record = self._find_record(cid, info.order_id)
                if record is not None:
                    self._apply_info(record, info, None)
                continue
            role = classify(info)
            if role is None:
                continue
            self._adopt(info, role, contract_id, entry_price_of(info) if entry_price_of else info.price)
            report.adopted += 1
        report.mismatch = self.check_coverage()
        self.journal.note(self.clock.now(), "reconciled", report.describe())
        logger.info("reconciled with the venue: %s", report.describe())
        return report

    def _adopt(self, info: OrderInfo, role: OrderRole, contract_id: str, entry_price: Decimal) -> None:
        now = self.clock.now()
        assert info.client_order_id is not None
        record = OrderRecord(
            client_order_id=info.client_order_id,
            role=role,
            side=info.side,
            order_type=info.order_type,
            quantity=info.size,
            price=info.price,
            contract_id=contract_id,
            reduce_only=role is OrderRole.EXIT,
            post_only=info.order_type is OrderType.LIMIT,
            status=info.status,
            venue_order_id=info.order_id,
            filled_size=info.filled_size,
            filled_quote=(info.average_fill_price or info.price) * info.filled_size,
            created_at=now,
            updated_at=now,
            group=info.client_order_id,
            previous_run=True,
            acknowledged=True,
        )
        with self.journal.atomic():
            if role is OrderRole.EXIT and record.remaining > 0:
                lot = Lot(
                    lot_id=f"adopted/{record.client_order_id}",
                    group=record.group,
                    side=record.side.opposite,
                    size=record.remaining,
                    price=entry_price,
                    created_at=now,
                    covered_by=record.client_order_id,
                )
                record.covers = (lot.lot_id,)
                self.lots[lot.lot_id] = lot
                self.journal.save_lot(lot)
                inferred = FillRecord(
                    fill_id=lot.lot_id,
                    client_order_id=record.client_order_id,
                    role=OrderRole.ENTRY,
                    side=lot.side,
                    price=lot.price,
                    size=lot.size,
                    fee=ZERO,
                    timestamp=now,
                    fee_estimated=True,
                    inferred=True,
                )
                self.ledger.apply_fill(lot.side, lot.price, lot.size, ZERO)
                self.journal.save_fill(inferred, record, self.ledger)
            self.journal.save_order(record, "adopted", now, "on the venue, not in the journal")
        self._remember(record)
        logger.info("adopted %s from the venue", record.describe())

    # -- lots the strategy is told about -----------------------------------------------------

    def drain_events(self) -> Iterable[ExecutionEvent]:
        while self.events:
            yield self.events.popleft()


class ReconcileReport:
    """What one reconciliation found."""

    def __init__(self) -> None:
        self.checked = 0
        self.fills_found = ZERO
        self.adopted = 0
        self.mismatch = ZERO

    def describe(self) -> str:
        return (
            f"{self.checked} journaled orders checked, {self.fills_found} filled while away, "
            f"{self.adopted} adopted, coverage mismatch {self.mismatch}"
        )


def _log_fill(
    record: OrderRecord,
    order_id: str,
    fill: FillRecord,
    lots: list[tuple[Decimal, Decimal]],
    position: Decimal,
    realized_pnl: Decimal,
    fees: Decimal,
) -> None:
    """The FILL line, from the values taken when the fill was booked (``lots``: size and price
    of each lot the order closes)."""
    logger.info(
        "FILL %s %s %s @ %s (id %s, fee %s%s)%s | position %s, realized PnL %s, fees %s",
        record.role.value,
        record.side.value,
        fill.size,
        fill.price,
        order_id,
        fill.fee,
        " estimated" if fill.fee_estimated else "",
        _profit_text(record.side, lots, fill.price, fill.size, fill.realized_pnl),
        position,
        f"{realized_pnl:.4f}",
        f"{fees:.4f}",
    )


def _profit_text(
    side: OrderSide, lots: list[tuple[Decimal, Decimal]], price: Decimal, size: Decimal, realized: Decimal
) -> str:
    """An exit's profit on the lots it closes, beside the ledger's average-cost figure.

    The two differ when older lots were bought dearer: a take-profit can earn its lot's
    margin while average-cost accounting books it below the average entry."""
    held = sum((lot_size for lot_size, _ in lots), ZERO)
    if not lots or held <= 0:
        return f", realized {realized:+.4f}" if realized else ""
    entry = sum((lot_size * lot_price for lot_size, lot_price in lots), ZERO) / held
    profit = (price - entry) * size * side.opposite.sign
    return f", profit on its lots {profit:+.4f} (average-cost realized {realized:+.4f})"
