"""Venue-side order truth shared by every connector: raw venue reports in, exact fills out.

Venues describe an order in one of two ways, often both: an *order report* carrying the
cumulative filled size (with the cumulative filled quote, or the average fill price, and
sometimes the cumulative fee), and a *trade report* for each execution (trade id, size, price,
and usually the exact fee and maker flag). A connector maps its wire format into
:class:`OrderReport` / :class:`TradeReport` and hands them to one :class:`VenueOrders`, which
returns the :class:`~exchanges.base.OrderUpdate` to emit (or None when nothing changed). The
rules live here once instead of in every venue file:

* A fill is the increase of the filled size over what was already announced. A duplicated
  report adds nothing; an order report with a smaller cumulative size than one already seen is
  older and is ignored.
* Trade reports are de-duplicated by trade id. Both sources feed one announced total: the
  announced size is ``max(largest cumulative filled size reported, sum of distinct trades)``,
  and each report emits only the increase of that maximum. So a trade already covered by an
  earlier cumulative report emits nothing, and a cumulative report already covered by trades
  emits nothing; the first source to report a quantity announces it. A fill from a trade report
  carries that trade's price and exact fee (prorated when an earlier cumulative report already
  announced part of it); a fill from an order report carries the price implied by the
  cumulative quote and a fee that is exact when the venue reports a cumulative fee and
  otherwise estimated from the maker/taker rates, marked ``Fill.fee_estimated``.
* Final states are sticky (a late "open" never revives a cancelled order), but a late fill is
  still applied: a fill can race a cancel. Such a fill turns the order FILLED only once the
  whole size has filled; otherwise it stays CANCELLED.
* An order first seen without having been registered by this process (the process restarted)
  is a baseline: its past fills are not announced as fills, but its ``OrderInfo.filled_size``
  carries the cumulative filled size so that the execution layer, which journals what it booked,
  can book what it missed. Trades of orders we do not track are dropped for the same reason, and
  so are a baseline order's trades stamped no later than its baseline report (the baseline
  already counts them); its later trades are fills as usual.
* A report filling more than the order's size is refused: logged and dropped, counted in
  :attr:`VenueOrders.refused`.
* Memory is bounded: the oldest finished orders are forgotten beyond ``keep_final``.

Waiting: each tracked order has an :class:`asyncio.Event` set on every change, and
:meth:`VenueOrders.wait` waits (bounded, on the bot's clock) until a condition on the order holds;
venue clients use it to wait for an order's acknowledgement or its final state.

A venue file, in short::

    self._orders = VenueOrders(self._fee_rates, is_ours=self.client_ids.is_ours, name="backpack")
    order = self._orders.register(cid, contract, side, OrderType.LIMIT, size, price, post_only=True)
    ...  # send; on a timeout: self._orders.send_failed(order, ambiguous=True)
    await self._orders.wait(order, lambda o: o.status is not OrderStatus.PENDING, 5.0, self.clock)

    def _on_order_message(self, raw):            # the wire format -> OrderReport, nothing more
        update = self._orders.apply(OrderReport(client_order_id=..., filled_size=..., ...))
        if update is not None:
            self._emit_order_update(update)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from exchanges.base import (
    ExchangeError,
    FeeCorrection,
    Fill,
    OrderInfo,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from helpers.clock import Clock

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)

#: (maker rate, taker rate) of a contract, as fractions (0.0002 = 0.02 %).
FeeRates = Callable[[str], tuple[Decimal, Decimal]]


class OrderSearchTruncated(ExchangeError):
    """A venue's order history was searched only as deep as its page bound allows.

    Not finding an order there is not "the venue does not know it": callers must not take it for
    OrderNotFound (and, say, place the order again).
    """


@dataclass(slots=True)
class OrderReport:
    """One venue report of one order, already in our vocabulary (a value: nothing changes it;
    not frozen only because a frozen ``__init__`` costs about 3 µs more per stream message).

    ``filled_size`` (and ``filled_quote`` / ``filled_fee`` when given) are cumulative since the
    order was placed. Give ``filled_quote`` or ``average_fill_price`` (whichever the venue
    reports); with neither, fills are priced at the limit price.
    """

    client_order_id: str
    order_id: str | None
    contract_id: str
    side: OrderSide
    order_type: OrderType
    size: Decimal
    price: Decimal
    status: OrderStatus
    venue_status: str = ""
    filled_size: Decimal = _ZERO
    filled_quote: Decimal | None = None
    average_fill_price: Decimal | None = None
    filled_fee: Decimal | None = None
    timestamp: float = 0.0
    post_only: bool = False

    @property
    def cumulative_quote(self) -> Decimal | None:
        if self.filled_quote is not None:
            return self.filled_quote
        if self.average_fill_price is not None:
            return self.average_fill_price * self.filled_size
        return None

    def info(self) -> OrderInfo:
        """The snapshot this report describes, for orders nobody tracks (other bots' lookups)."""
        quote = self.cumulative_quote
        average = quote / self.filled_size if self.filled_size > 0 and quote else None
        return OrderInfo(
            order_id=self.order_id or "",
            client_order_id=self.client_order_id,
            contract_id=self.contract_id,
            side=self.side,
            order_type=self.order_type,
            size=self.size,
            price=self.price,
            status=self.status,
            filled_size=self.filled_size,
            average_fill_price=average,
            timestamp=self.timestamp,
        )


@dataclass(slots=True)
class TradeReport:
    """One execution of one of our orders, from a venue whose stream reports trades.

    Identify the order by ``client_order_id`` or ``order_id`` (either may be None, not both).
    ``fee`` is the exact fee (None: estimate it); ``is_maker`` None means unknown.
    """

    trade_id: str
    client_order_id: str | None
    order_id: str | None
    size: Decimal
    price: Decimal
    fee: Decimal | None = None
    is_maker: bool | None = None
    timestamp: float = 0.0


@dataclass(eq=False)
class VenueOrder:
    """What is known about one order. ``filled``/``filled_quote``/``fees`` are what was announced."""

    client_order_id: str
    contract_id: str
    side: OrderSide
    order_type: OrderType
    size: Decimal
    price: Decimal
    post_only: bool = False
    status: OrderStatus = OrderStatus.PENDING
    venue_status: str = ""
    order_id: str | None = None
    filled: Decimal = _ZERO
    filled_quote: Decimal = _ZERO
    fees: Decimal = _ZERO
    #: Largest cumulative filled size an order report gave (older reports are smaller).
    reported_filled: Decimal = _ZERO
    #: Sum of the sizes of the distinct trades reported, and their ids.
    trade_filled: Decimal = _ZERO
    trade_ids: set[str] = field(default_factory=set, repr=False)
    #: Announced size whose fee is still an estimate, and that estimate (trade records that
    #: come later replace it with the exact fee).
    estimated_size: Decimal = _ZERO
    estimated_fees: Decimal = _ZERO
    #: Placed by this process (False: first seen in a report, a baseline).
    registered: bool = True
    #: For a baseline: the venue time of the report it was taken from.
    baseline_at: float | None = None
    seen_resting: bool = False
    timestamp: float = 0.0
    event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def info(self) -> OrderInfo:
        average = self.filled_quote / self.filled if self.filled > 0 and self.filled_quote > 0 else None
        return OrderInfo(
            order_id=self.order_id or "",
            client_order_id=self.client_order_id,
            contract_id=self.contract_id,
            side=self.side,
            order_type=self.order_type,
            size=self.size,
            price=self.price,
            status=self.status,
            filled_size=self.filled,
            average_fill_price=average,
            timestamp=self.timestamp,
        )


class VenueOrders:
    """The orders of one venue client: registration, report folding, lookups and waiting."""

    #: Finished orders kept for lookups. Pruning scans only after the book grew by a quarter of
    #: this since the last scan, so tracking stays O(1) per order however long the bot runs.
    KEEP_FINAL = 2000

    def __init__(
        self,
        fee_rates: FeeRates,
        *,
        is_ours: Callable[[str], bool] | None = None,
        fee_quantum: Decimal | None = None,
        keep_final: int = KEEP_FINAL,
        name: str = "venue",
    ) -> None:
        self.fee_rates = fee_rates
        self.is_ours = is_ours
        self.fee_quantum = fee_quantum
        self.keep_final = keep_final
        self.name = name
        self.by_client_id: dict[str, VenueOrder] = {}
        self.by_order_id: dict[str, VenueOrder] = {}
        #: Reports refused for filling more than the order's size.
        self.refused = 0
        self._prune_at = keep_final

    def __len__(self) -> int:
        return len(self.by_client_id)

    # -- registration and lookups ------------------------------------------------------------

    def register(
        self,
        client_order_id: str,
        contract_id: str,
        side: OrderSide,
        order_type: OrderType,
        size: Decimal,
        price: Decimal,
        *,
        post_only: bool = False,
        timestamp: float = 0.0,
    ) -> VenueOrder:
        """Track an order this process is about to send (before the request leaves).

        Raises ValueError if the client id is already tracked: a venue would take a reused id
        for the same order, so the caller must refuse it (as InvalidOrder) before sending.
        """
        if client_order_id in self.by_client_id:
            raise ValueError(f"client order id {client_order_id} is already tracked")
        if len(self.by_client_id) > self._prune_at:
            self.prune()
        order = VenueOrder(
            client_order_id=client_order_id,
            contract_id=contract_id,
            side=side,
            order_type=order_type,
            size=size,
            price=price,
            post_only=post_only,
            timestamp=timestamp,
        )
        self.by_client_id[client_order_id] = order
        return order

    def get(self, order_id: str) -> VenueOrder | None:
        """The order with this client id or venue order id."""
        return self.by_client_id.get(order_id) or self.by_order_id.get(order_id)

    def active(self) -> list[VenueOrder]:
        """Orders still pending, open or partly filled (UNKNOWN ones are the caller's to resolve)."""
        return [o for o in self.by_client_id.values() if o.status.is_active]

    def send_failed(self, order: VenueOrder, *, ambiguous: bool) -> None:
        """The placement request failed: UNKNOWN when it may have reached the venue, else REJECTED.

        Only a still-pending order changes: a report may already have told the truth.
        """
        if order.status is not OrderStatus.PENDING:
            return
        order.status = OrderStatus.UNKNOWN if ambiguous else OrderStatus.REJECTED
        order.event.set()

    def prune(self, keep_final: int | None = None) -> None:
        """Forget the oldest finished orders so a bot running for weeks does not grow forever."""
        keep = self.keep_final if keep_final is None else keep_final
        finished = [o for o in self.by_client_id.values() if o.status.is_final]
        if len(finished) > keep:
            finished.sort(key=lambda o: o.timestamp)
            for order in finished[: len(finished) - keep]:
                del self.by_client_id[order.client_order_id]
                if order.order_id and self.by_order_id.get(order.order_id) is order:
                    del self.by_order_id[order.order_id]
        self._prune_at = max(keep, len(self.by_client_id)) + max(1, keep // 4)

    # -- waiting -----------------------------------------------------------------------------

    @staticmethod
    async def wait(
        order: VenueOrder, done: Callable[[VenueOrder], bool], timeout: float, clock: Clock
    ) -> bool:
        """Wait until ``done(order)`` holds, at most ``timeout`` clock-seconds; True if it does."""
        deadline = clock.now() + timeout
        while not done(order):
            remaining = deadline - clock.now()
            if remaining <= 0:
                return False
            order.event.clear()
            await clock.wait_for_event(order.event, remaining)
        return True

    # -- order reports -----------------------------------------------------------------------

    def apply(self, report: OrderReport) -> OrderUpdate | None:
        """Fold one order report in; the update to emit, or None if nothing changed."""
        client_id = report.client_order_id
        if self.is_ours is not None and not self.is_ours(client_id):
            return None
        if report.filled_size > report.size:
            return self._refuse(client_id, f"reports {report.filled_size} filled of {report.size}")
        order = self.by_client_id.get(client_id)
        if order is None:
            return self._baseline(report)
        if report.filled_size > order.size:
            return self._refuse(client_id, f"reports {report.filled_size} filled of {order.size}")
        if report.filled_size < order.reported_filled:
            return None  # older than a report already seen
        order.reported_filled = report.filled_size
        learned = self._learn_order_id(order, report.order_id)
        fill = None
        if report.filled_size > order.filled:
            fill = self._fill_from_report(order, report)
        changed = self._set_status(order, report.status, report.venue_status, fill is not None)
        if order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
            order.seen_resting = True
        if fill is None and not changed and not learned:
            return None
        order.timestamp = report.timestamp
        order.event.set()
        return OrderUpdate(order=order.info(), fill=fill)

    def _baseline(self, report: OrderReport) -> OrderUpdate:
        quote = report.cumulative_quote
        order = VenueOrder(
            client_order_id=report.client_order_id,
            contract_id=report.contract_id,
            side=report.side,
            order_type=report.order_type,
            size=report.size,
            price=report.price,
            post_only=report.post_only,
            status=report.status,
            venue_status=report.venue_status,
            order_id=report.order_id,
            filled=report.filled_size,
            filled_quote=quote if quote is not None else report.price * report.filled_size,
            fees=report.filled_fee or _ZERO,
            reported_filled=report.filled_size,
            trade_filled=report.filled_size,
            registered=False,
            baseline_at=report.timestamp,
            seen_resting=report.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
            timestamp=report.timestamp,
        )
        self.by_client_id[order.client_order_id] = order
        if order.order_id:
            self.by_order_id[order.order_id] = order
        order.event.set()
        return OrderUpdate(order=order.info())

    def _fill_from_report(self, order: VenueOrder, report: OrderReport) -> Fill:
        delta = report.filled_size - order.filled
        quote = report.cumulative_quote
        delta_quote = quote - order.filled_quote if quote is not None else _ZERO
        price = delta_quote / delta if delta_quote > 0 else order.price
        is_maker = self._maker_guess(order)
        fee: Decimal | None = None
        if report.filled_fee is not None and report.filled_fee >= order.fees:
            fee = report.filled_fee - order.fees
        return self._announce(
            order,
            size=delta,
            price=price,
            fee=fee,
            is_maker=is_maker,
            timestamp=report.timestamp,
            trade_id=f"{order.order_id or order.client_order_id}:{report.filled_size}",
        )

    # -- trade reports -----------------------------------------------------------------------

    def apply_trade(self, trade: TradeReport) -> OrderUpdate | None:
        """Fold one trade report in; the update to emit, or None (duplicate, covered, not ours)."""
        order = None
        if trade.client_order_id is not None:
            order = self.by_client_id.get(trade.client_order_id)
        if order is None and trade.order_id is not None:
            order = self.by_order_id.get(trade.order_id)
        if order is None:
            logger.debug("%s: trade %s of an untracked order ignored", self.name, trade.trade_id)
            return None
        if trade.trade_id in order.trade_ids:
            return None
        if order.baseline_at is not None and trade.timestamp <= order.baseline_at:
            order.trade_ids.add(trade.trade_id)  # counted in the baseline
            return None
        if trade.size <= 0:
            return self._refuse(order.client_order_id, f"trade {trade.trade_id} has size {trade.size}")
        trade_total = order.trade_filled + trade.size
        if trade_total > order.size:
            why = f"trade {trade.trade_id} brings the trades to {trade_total} of {order.size}"
            return self._refuse(order.client_order_id, why)
        order.trade_ids.add(trade.trade_id)
        order.trade_filled = trade_total
        learned = self._learn_order_id(order, trade.order_id)
        fill = None
        new_size = max(trade_total - order.filled, _ZERO)
        correction = self._correct_fee(order, trade, trade.size - new_size)
        if new_size > 0:
            size = new_size
            fee = trade.fee
            if fee is not None and size != trade.size:
                fee = self._quantize(fee * size / trade.size)
            fill = self._announce(
                order,
                size=size,
                price=trade.price,
                fee=fee,
                is_maker=self._maker_guess(order) if trade.is_maker is None else trade.is_maker,
                timestamp=trade.timestamp,
                trade_id=trade.trade_id,
            )
        status = OrderStatus.FILLED if order.filled >= order.size else OrderStatus.PARTIALLY_FILLED
        changed = fill is not None and self._set_status(order, status, order.venue_status, True)
        if fill is None and correction is None and not learned:
            return None
        if fill is not None or changed:
            order.timestamp = trade.timestamp
        order.event.set()
        return OrderUpdate(order=order.info(), fill=fill, fee_correction=correction)

    def _correct_fee(self, order: VenueOrder, trade: TradeReport, covered: Decimal) -> FeeCorrection | None:
        """The trade's exact fee for the part of it an order report already announced with an
        estimated fee (the estimate replaced pro rata); None when there is nothing to correct."""
        size = min(covered, order.estimated_size)
        if size <= 0 or trade.fee is None:
            return None
        replaces = self._quantize(order.estimated_fees * size / order.estimated_size)
        exact = trade.fee if size == trade.size else self._quantize(trade.fee * size / trade.size)
        order.estimated_size -= size
        order.estimated_fees -= replaces
        order.fees += exact - replaces
        return FeeCorrection(trade.trade_id, size, exact, replaces)

    # -- shared rules ------------------------------------------------------------------------

    def _announce(
        self,
        order: VenueOrder,
        *,
        size: Decimal,
        price: Decimal,
        fee: Decimal | None,
        is_maker: bool,
        timestamp: float,
        trade_id: str,
    ) -> Fill:
        estimated = fee is None
        if fee is None:
            maker_rate, taker_rate = self.fee_rates(order.contract_id)
            fee = self._quantize(price * size * (maker_rate if is_maker else taker_rate))
            order.estimated_size += size
            order.estimated_fees += fee
        order.filled += size
        order.filled_quote += price * size
        order.fees += fee
        return Fill.quick(
            order.order_id or "",
            order.client_order_id,
            order.contract_id,
            order.side,
            price,
            size,
            fee,
            is_maker,
            timestamp,
            trade_id,
            estimated,
        )

    @staticmethod
    def _maker_guess(order: VenueOrder) -> bool:
        """Without the venue's word: a limit order that was post-only or seen resting made it."""
        return order.order_type is OrderType.LIMIT and (order.post_only or order.seen_resting)

    def _quantize(self, fee: Decimal) -> Decimal:
        return fee.quantize(self.fee_quantum) if self.fee_quantum is not None else fee

    def _learn_order_id(self, order: VenueOrder, order_id: str | None) -> bool:
        if not order_id or order.order_id == order_id:
            return False
        order.order_id = order_id
        self.by_order_id[order_id] = order
        return True

    @staticmethod
    def _set_status(order: VenueOrder, status: OrderStatus, venue_status: str, filled_now: bool) -> bool:
        """Move to ``status`` unless that would go backwards; True if the status changed.

        Final states are sticky, except that a fill completing the order makes it FILLED (the
        fill won its race with the cancel). UNKNOWN never overrides, PENDING only stays PENDING.
        """
        if status is OrderStatus.OPEN and order.filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        elif status is OrderStatus.REJECTED and order.filled > 0:
            status = OrderStatus.CANCELLED  # it traded, so it was accepted
        if status is order.status or status is OrderStatus.UNKNOWN:
            return False
        if order.status.is_final and not (filled_now and status is OrderStatus.FILLED):
            return False
        if status is OrderStatus.PENDING and order.status is not OrderStatus.UNKNOWN:
            return False
        if status is OrderStatus.OPEN and order.status is OrderStatus.PARTIALLY_FILLED:
            return False
        order.status = status
        order.venue_status = venue_status
        return True

    def _refuse(self, client_order_id: str, why: str) -> None:
        self.refused += 1
        logger.warning("%s: malformed report of order %s dropped: %s", self.name, client_order_id, why)
        return None
