"""What the execution layer knows about each order, fill and filled lot.

An :class:`OrderRecord` exists from the intent (written before the request leaves) to a final
state, keyed by our client id. A :class:`Lot` is filled entry size waiting to be closed: every
entry fill makes one, and each lot is covered by at most one exit order at a time
(``covered_by``), which is how "never two take-profits for one fill" is kept. When an exit ends
with size unfilled, that size comes back as a new lot, so nothing filled is ever dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from exchanges.base import OrderSide, OrderStatus, OrderType
from strategies.base_strategy import OrderRole

ZERO = Decimal(0)


@dataclass(eq=False)
class OrderRecord:
    """One of our orders, as far as we know it. Sizes are cumulative; ``quantity`` is original."""

    client_order_id: str
    role: OrderRole
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    contract_id: str
    reduce_only: bool = False
    post_only: bool = False
    status: OrderStatus = OrderStatus.PENDING
    venue_order_id: str | None = None
    filled_size: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fees: Decimal = ZERO
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Lot ids this exit covers (exits only).
    covers: tuple[str, ...] = ()
    #: Entries: the group its lots belong to (its own client id); exits: the group they close.
    group: str = ""
    error: str = ""
    #: Why we asked the venue to cancel it ("" while no cancel was requested).
    cancel_reason: str = ""
    cancel_requested_at: float | None = None
    #: Placed by an earlier run of this bot (found in the journal or on the venue at start-up).
    previous_run: bool = False
    #: Read back from the journal (this run or an earlier one), rather than made by this run:
    #: only such a record can meet a fill the journal already holds.
    from_journal: bool = False
    #: The venue has acknowledged it (an answer, a stream message or a look-up).
    acknowledged: bool = False
    #: Look-ups that did not find it (unknown outcomes), and when to look next.
    misses: int = 0
    next_lookup_at: float = 0.0
    #: Filled size booked this run with an estimated fee, and that estimate (the venue's trade
    #: records replace it with the exact fee when they come).
    estimated_size: Decimal = ZERO
    estimated_fees: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.quantity - self.filled_size)

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def average_fill_price(self) -> Decimal | None:
        if self.filled_size <= 0:
            return None
        return self.filled_quote / self.filled_size

    def describe(self) -> str:
        where = f" @ {self.price}" if self.price is not None else " at market"
        return (
            f"{self.role.value} {self.side.value} {self.quantity}{where} "
            f"(id {self.venue_order_id or self.client_order_id}, {self.status.value})"
        )


@dataclass(eq=False)
class Lot:
    """Filled entry size (at its entry price) that an exit order must close."""

    lot_id: str
    group: str
    side: OrderSide
    size: Decimal
    price: Decimal
    created_at: float
    covered_by: str | None = None
    #: The price of the last exit that covered it and was refused as post-only.
    refused_price: Decimal | None = None

    @property
    def notional(self) -> Decimal:
        return self.size * self.price


class ExecutionEventKind(enum.Enum):
    ACCEPTED = "accepted"  # the venue acknowledged the order
    REFUSED = "refused"  # the venue (or our pre-check) refused it: it never rested
    FILL = "fill"
    ENDED = "ended"  # reached a final state (filled, cancelled, expired, rejected later)
    CANCEL_FAILED = "cancel_failed"


@dataclass(frozen=True)
class ExecutionEvent:
    """What happened to one order, handed to the strategy in order of arrival."""

    kind: ExecutionEventKind
    order: OrderRecord
    fill: FillRecord | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class FillRecord:
    """One execution of one of our orders, as journaled (``inferred`` when read back from a
    cumulative size rather than seen as an event)."""

    fill_id: str
    client_order_id: str
    role: OrderRole
    side: OrderSide
    price: Decimal
    size: Decimal
    fee: Decimal
    timestamp: float
    is_maker: bool = True
    fee_estimated: bool = False
    inferred: bool = False
    realized_pnl: Decimal = ZERO
