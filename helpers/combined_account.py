"""Several venues' accounts read as one, for the risk manager of a strategy on several venues.

A hedged pair loses on one leg what it makes on the other; judging each venue alone would close
a hedge for a loss that does not exist. The risk manager only reads account snapshots, so it
gets this in place of one venue client: balances, equity, realized PnL, fees and funding add up,
positions are listed together.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from exchanges.base import AccountSnapshot, BaseExchangeClient


class CombinedAccount:
    """The sum of the venues' account snapshots (a failed read of any one raises)."""

    def __init__(self, clients: Sequence[BaseExchangeClient]) -> None:
        self.clients = list(clients)

    async def get_account_snapshot(self) -> AccountSnapshot:
        snapshots = [await client.get_account_snapshot() for client in self.clients]
        zero = Decimal(0)
        return AccountSnapshot(
            balance=sum((s.balance for s in snapshots), zero),
            equity=sum((s.equity for s in snapshots), zero),
            positions=tuple(position for s in snapshots for position in s.positions),
            realized_pnl=sum((s.realized_pnl for s in snapshots), zero),
            fees_paid=sum((s.fees_paid for s in snapshots), zero),
            funding_paid=sum((s.funding_paid for s in snapshots), zero),
            timestamp=max(s.timestamp for s in snapshots),
        )
