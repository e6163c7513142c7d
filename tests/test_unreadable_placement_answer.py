"""A placement answered with something unreadable: its outcome is unknown, never "refused".

The venue may have taken the order. Were the garbled answer read as a refusal, the execution
layer would place the order again (two entries, or two take-profits for one fill). The shared
placement path (``StreamingVenueClient._place``) makes any ``MalformedMessage`` there a
``NetworkError`` and leaves the order UNKNOWN, to be looked up. Checked on the venues whose
clients send through it with a plain signed REST call (GRVT and Paradex have their own tests).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from exchanges.base import NetworkError, OrderSide, OrderStatus
from helpers.clock import LiveClock
from tests.connector_fixtures import venue_config

#: A 200 answer each venue's parser refuses: Aster's order with a NaN fill, Backpack's non-object.
GARBLED = {"aster": {"clientOrderId": "?", "executedQty": "NaN"}, "backpack": "<html>bad gateway</html>"}


def _venue_and_client(exchange: str) -> tuple[Any, Any]:
    if exchange == "aster":
        from exchanges.aster import AsterClient
        from tests.mock_venues.aster_venue import MockAsterVenue

        venue = MockAsterVenue(start_price=Decimal("3000")).start()
        return venue, AsterClient(venue_config("aster")(), LiveClock(), env=venue.env())
    pytest.importorskip("bpx")
    from exchanges.backpack import BackpackClient
    from tests.mock_venues.backpack_venue import MockBackpackVenue

    venue = MockBackpackVenue(start_price=Decimal("3000")).start()
    return venue, BackpackClient(venue_config("backpack")(), LiveClock(), env=venue.env())


@pytest.mark.parametrize("exchange", sorted(GARBLED))
async def test_an_unreadable_answer_to_a_placement_leaves_the_order_unknown(
    exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue, client = _venue_and_client(exchange)
    try:
        await client.connect()
        contract = (await client.get_contract_info("ETH")).contract_id
        bid, _ = await client.fetch_bbo_prices(contract)

        async def garbled(*args: Any, **kwargs: Any) -> Any:
            return GARBLED[exchange]

        monkeypatch.setattr(client._rest, "signed", garbled)
        client_id = client.client_ids.next_id(client.clock.now())
        with pytest.raises(NetworkError, match="outcome is unknown"):
            await client.place_limit_order(contract, OrderSide.BUY, Decimal("0.01"), bid - 10, client_id)
        tracked = client._orders.get(client_id)
        assert tracked is not None and tracked.status is OrderStatus.UNKNOWN
    finally:
        await client.disconnect()
        venue.stop()
