"""Average-cost position and PnL accounting from fills.

The bot keeps its own tally of what its fills did (for the console and the final summary)
without asking the venue after every fill; the paper venue uses the same arithmetic as its
source of truth, so both agree to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exchanges.base import OrderSide

ZERO = Decimal(0)


@dataclass
class PositionLedger:
    """Net position (signed), average entry, realized PnL, fees and traded volume."""

    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    volume: Decimal = ZERO
    fill_count: int = 0

    def apply_fill(self, side: OrderSide, price: Decimal, size: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Book one fill; returns the PnL it realized (before fees)."""
        signed = size * side.sign
        realized = ZERO
        self.fill_count += 1
        self.volume += price * size
        self.fees += fee
        if self.size == 0 or (self.size > 0) == (signed > 0):
            new_size = self.size + signed
            self.entry_price = (self.entry_price * abs(self.size) + price * size) / abs(new_size)
            self.size = new_size
            return realized
        closing = min(abs(signed), abs(self.size))
        direction = 1 if self.size > 0 else -1
        realized = (price - self.entry_price) * closing * direction
        self.realized_pnl += realized
        remainder = abs(signed) - closing
        self.size += signed
        if self.size == 0:
            self.entry_price = ZERO
        elif remainder > 0:
            self.entry_price = price
        return realized

    def unrealized_pnl(self, mark_price: Decimal) -> Decimal:
        if self.size == 0:
            return ZERO
        return (mark_price - self.entry_price) * self.size
