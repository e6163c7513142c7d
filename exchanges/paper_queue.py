"""Queue position of our resting orders at one price, for the paper venue's ``queue`` fill model.

Why this exists: filling a maker order whenever the quote touches its price (the ``touch``
model) credits fills that never happened. An audit of recorded Binance data found 30 % of such
fills had no trade at or through the price at that moment, and a 0.002 buy "filled" by a 1.0
print while 1.165 was displayed ahead of it. Here an order only fills once the size displayed
ahead of it when it reached the venue has traded away or been cancelled.

The rules (market-by-price data, top of book only; every quantity a Decimal):

* **Joining.** When the order reaches the venue (after its entry latency) ``ahead`` is the size
  displayed at its price on its own side: the touch size if it joins the best price, 0 if it
  improves on it. Joining *behind* the touch, the size there is not visible in a top-of-book
  feed: ``ahead`` stays unknown until the level first shows at the touch, and then everything
  displayed counts as ahead (pessimistic: some of it arrived after us).
* **Trades at our price** by an aggressor on the other side reduce ``ahead`` by their size.
  Volume beyond ``ahead`` fills our order (rounded down to the size step), shared in time
  priority among our orders at that price; ``ahead`` is then 0, so later trades fill by size.
* **A trade through our price** (a buy's price above the print) fills the order completely.
* **Displayed size changes** while the level stays at the touch: a decrease not explained by
  the trades since the last quote, ``d = seen - new - traded``, is taken as cancellations spread
  pro rata over the queue, so ``ahead`` loses ``d * ahead / seen`` (hftbacktest's probabilistic
  queue with ``P_ahead = ahead / seen``, that is its Power(1) model). ``ahead`` never exceeds
  the displayed size.
* **The level leaves the touch.** Towards us (a buy's price above the new best bid): everyone
  ahead has gone, ``ahead`` = 0; if the opposite quote reaches our price the book is crossed
  through us and the next trade at our price fills us whoever the aggressor. Away from us (a
  better bid appears): the level is out of sight and ``seen`` is forgotten; when it comes back
  ``ahead`` is capped by the size shown then.

Every maker fill of this model is therefore caused by a trade print at or through the order's
price; a quote alone never fills.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

_ZERO = Decimal(0)


class QueuedOrder(Protocol):
    """What the queue needs of a venue order (the paper venue's ``_PaperOrder``)."""

    queue_ahead: Decimal | None
    price: Decimal

    @property
    def remaining(self) -> Decimal: ...


class PriceLevel:
    """Our resting orders at one price on one side, and what was last seen of the level."""

    __slots__ = ("crossed", "orders", "seen", "traded")

    def __init__(self) -> None:
        #: Our orders here, in time priority.
        self.orders: list[QueuedOrder] = []
        #: Displayed size at the last quote while the level was at the touch (None: not in sight).
        self.seen: Decimal | None = None
        #: Trade volume at this price since that quote (so a quote drop is not counted twice).
        self.traded = _ZERO
        #: The opposite quote is at or through this price.
        self.crossed = False

    def join(self, order: QueuedOrder, displayed: Decimal | None, at_touch: bool) -> None:
        """``order`` reaches the venue: ``displayed`` is the touch size when ``at_touch``,
        ``None`` when the level is behind the touch, ignored when the order improves the touch."""
        if at_touch:
            order.queue_ahead = displayed if displayed is not None else _ZERO
            if self.seen is None:
                self.seen = displayed
                self.traded = _ZERO
        elif displayed is None:
            order.queue_ahead = None
        else:
            order.queue_ahead = _ZERO
        self.orders.append(order)

    def observe(self, displayed: Decimal) -> None:
        """A quote shows this level at the touch with ``displayed`` size."""
        self.observe_run((displayed,))

    def observe_run(self, sizes: Iterable[Decimal]) -> None:
        """Quotes that show this level at the touch, one after another with no trade at this
        price between them, with these displayed sizes: :meth:`observe` of each in turn, in one
        call (a backtest hands over runs of such quotes; their sizes are most of what it reads)."""
        orders = self.orders
        seen, traded = self.seen, self.traded
        observed = False
        for displayed in sizes:
            if displayed is seen and observed:
                # The size just observed again, nothing traded since: nothing cancelled, and
                # no order has more ahead than it (half the sizes of the shared feed's runs).
                continue
            observed = True
            if seen is not None and seen > _ZERO:
                cancelled = seen - displayed - traded
                if cancelled > _ZERO:
                    for order in orders:
                        ahead = order.queue_ahead
                        if ahead:
                            order.queue_ahead = ahead - cancelled * ahead / seen
            for order in orders:
                ahead = order.queue_ahead
                if ahead is None or ahead > displayed:
                    order.queue_ahead = displayed
            seen, traded = displayed, _ZERO
        if observed:
            self.crossed = False
        self.seen, self.traded = seen, traded

    def hide(self) -> None:
        """A better price took the touch: this level's size is no longer visible."""
        self.seen = None
        self.traded = _ZERO

    def emptied(self, crossed: bool) -> None:
        """The touch moved past this price towards us: nothing displayed is ahead any more."""
        for order in self.orders:
            order.queue_ahead = _ZERO
        self.seen = None
        self.traded = _ZERO
        self.crossed = crossed

    def trade(self, size: Decimal, size_step: Decimal) -> list[tuple[QueuedOrder, Decimal]]:
        """A trade of ``size`` at this price hits our side: the fills it gives, in time priority.

        Every order's ``ahead`` shrinks by the whole trade (each has its own place in the
        queue). The volume beyond the shortest queue is shared out in time priority, so our
        orders together never take more than the others in front of all of them left over.
        """
        self.traded += size
        known = [order.queue_ahead for order in self.orders if order.queue_ahead is not None]
        if not known:
            return []
        budget = size - min(known)
        fills: list[tuple[QueuedOrder, Decimal]] = []
        for order in self.orders:
            ahead = order.queue_ahead
            if ahead is None:
                continue  # not yet seen at the touch: where we stand is unknown
            left = ahead - size
            if left >= _ZERO:
                order.queue_ahead = left
                continue
            order.queue_ahead = _ZERO
            quantity = min(-left, budget, order.remaining)
            quantity = (quantity / size_step).to_integral_value(ROUND_DOWN) * size_step
            if quantity > _ZERO:
                fills.append((order, quantity))
                budget -= quantity
        return fills
