"""Instrument specifications and inverse contracts, checked by hand.

The inverse numbers are the worked example of shared/notes/backtest-fill-models.md (e):
BTCUSD_PERP, long 1 contract (100 USD) at 61,668.6, out at 61,681.0, maker fee 0.02 %.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting.engine import BacktestSpec, resolve_instrument
from backtesting.feed_cache import build_cached_feed
from backtesting.report import FillRecord, metrics_rows, summarize
from exchanges.base import ConfigurationError, OrderSide
from exchanges.paper import PaperExchangeClient
from helpers.clock import SimulatedClock
from helpers.instruments import (
    InverseLedger,
    load_instruments,
    parse_instruments,
    price_granularity,
    resolve_paper_params,
    tick_warning,
)
from helpers.trading_config import TradingConfig
from tests.shared_paths import RECORDED_FEED

BUY, SELL = OrderSide.BUY, OrderSide.SELL
ENTRY, EXIT = Decimal("61668.6"), Decimal("61681.0")


def D(text: str) -> Decimal:
    return Decimal(text)


def close(value: Decimal, expected: str, places: int = 11) -> bool:
    return abs(value - D(expected)) < Decimal(1).scaleb(-places)


def test_the_instruments_file_holds_the_binance_specs() -> None:
    table = load_instruments()
    btc, eth, coin_m = table.find("btcusdt"), table.find("ETHUSDT"), table.find("BTCUSD_PERP")
    assert btc is not None and eth is not None and coin_m is not None
    assert (btc.tick_size, btc.size_step, btc.min_notional, btc.inverse) == (
        D("0.1"),
        D("0.001"),
        D("100"),
        False,
    )
    assert eth.tick_size == D("0.01")
    assert (coin_m.inverse, coin_m.contract_multiplier, coin_m.settlement, coin_m.size_step) == (
        True,
        D("100"),
        "BTC",
        D("1"),
    )


def test_bad_instrument_entries_are_named() -> None:
    with pytest.raises(ConfigurationError, match=r"\[instruments.X\]: missing"):
        parse_instruments('[instruments.X]\nkind = "linear"\n')
    with pytest.raises(ConfigurationError, match="kind must be linear or inverse"):
        parse_instruments('[instruments.X]\nkind = "quanto"\n')


def test_flags_win_over_the_file_and_synthetic_tickers_get_their_own_price() -> None:
    assert resolve_paper_params("ETHUSDT", {"tick_size": D("0.05")})["tick_size"] == D("0.05")
    assert resolve_paper_params("ETHUSDT", {})["tick_size"] == D("0.01")
    eth = resolve_paper_params("ETH", {})
    assert (eth["start_price"], eth["tick_size"]) == (D("3000"), D("0.01"))
    assert resolve_paper_params("BTCUSD_PERP", {})["start_price"] == D("60000")  # its base coin


def test_the_paper_venue_refuses_a_synthetic_market_it_has_no_price_for() -> None:
    config = TradingConfig(ticker="NOSUCHCOIN", exchange="paper", strategy="grid", quantity=D("1"))
    venue = PaperExchangeClient(config, SimulatedClock(0.0))
    with pytest.raises(ConfigurationError, match="no synthetic market for NOSUCHCOIN"):
        venue.market_source(0.0)
    given = TradingConfig(
        ticker="NOSUCHCOIN",
        exchange="paper",
        strategy="grid",
        quantity=D("1"),
        exchange_params={"start_price": "12.5"},
    )
    first = next(PaperExchangeClient(given, SimulatedClock(0.0)).market_source(0.0))
    assert abs(first.best_bid - D("12.5")) < 1  # type: ignore[operator]


def _finest_exponent(prices: list[Decimal]) -> Decimal | None:
    """price_granularity's definition, checked price by price."""
    exponents = [
        exponent
        for price in prices
        if price
        for exponent in [price.normalize().as_tuple().exponent]
        if isinstance(exponent, int)
    ]
    return Decimal(1).scaleb(min(exponents)) if exponents else None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.decimals(allow_nan=False),
            st.decimals(min_value=0, max_value=100000, places=3),
            st.sampled_from([D("1E+40"), D("1E-40"), D("61800.30"), D("0")]),
        ),
        max_size=30,
    )
)
def test_price_granularity_is_the_finest_normalized_exponent(prices: list[Decimal]) -> None:
    """The skip of prices that are multiples of the finest step so far changes nothing: huge
    quotients (1E+40 by 1E-40), infinities and zeros included."""
    assert price_granularity(prices) == _finest_exponent(prices)


def test_price_granularity_reads_through_padded_decimals() -> None:
    assert price_granularity([D("61800.30"), D("61800.20"), D("61801.00")]) == D("0.1")
    assert price_granularity([D("2681.86"), D("2681.90")]) == D("0.01")
    assert price_granularity([]) is None
    assert tick_warning(D("0.1"), D("0.01"), "ETHUSDT") is not None  # the ETHUSDT audit case
    assert tick_warning(D("0.1"), D("0.1"), "BTCUSDT") is None
    assert tick_warning(D("0.01"), D("1"), "X") is not None


@pytest.mark.skipif(not RECORDED_FEED.is_file(), reason="recorded feed not available")
def test_the_ticker_and_tick_come_from_the_recording() -> None:
    feed = build_cached_feed(RECORDED_FEED)
    assert feed.stats.symbols == ["BTCUSDT"]
    spec, warnings = resolve_instrument(BacktestSpec(feed_path=str(RECORDED_FEED)), feed)
    assert spec.ticker == "BTCUSDT" and warnings == []
    spec, _ = resolve_instrument(BacktestSpec(feed_path=str(RECORDED_FEED), ticker="BTC"), feed)
    assert spec.ticker == "BTCUSDT"
    with pytest.raises(ValueError, match="--ticker ETH does not match the data, which is BTCUSDT"):
        resolve_instrument(BacktestSpec(feed_path=str(RECORDED_FEED), ticker="ETH"), feed)
    _, warnings = resolve_instrument(
        BacktestSpec(feed_path=str(RECORDED_FEED), exchange_params={"tick_size": "0.5"}), feed
    )
    assert any("coarser than the data" in warning for warning in warnings)


def test_inverse_pnl_and_fees_of_the_worked_example() -> None:
    ledger = InverseLedger(D("100"))
    rate = D("0.0002")
    ledger.apply_fill(BUY, ENTRY, D("1"), D("1") * 100 / ENTRY * rate)
    ledger.apply_fill(SELL, EXIT, D("1"), D("1") * 100 / EXIT * rate)
    assert close(ledger.realized_pnl, "3.2599e-7")
    assert close(ledger.realized_pnl * EXIT, "0.020108", 6)  # USD at the exit price
    assert close(ledger.fees, "6.4856e-7")
    assert close(ledger.realized_pnl - ledger.fees, "-3.2257e-7")


def test_inverse_average_entry_is_harmonic() -> None:
    ledger = InverseLedger(D("100"))
    ledger.apply_fill(BUY, D("50000"), D("1"), D(0))
    ledger.apply_fill(BUY, D("100000"), D("1"), D(0))
    # 2 contracts over (1/50000 + 1/100000) = 66,666.67, not the arithmetic 75,000.
    assert close(ledger.entry_price, "66666.666666666666666666667", 6)
    assert close(ledger.unrealized_pnl(D("100000")), "0.001")  # 200 USD x (1/66,666.67 - 1/100,000)


async def test_the_paper_venue_books_inverse_contracts_in_coin() -> None:
    config = TradingConfig(
        ticker="BTCUSD_PERP",
        exchange="paper",
        strategy="grid",
        quantity=D("1"),
        exchange_params={"drive_externally": True, "fill_model": "touch", "funding_rate": "0"},
    )
    clock = SimulatedClock(1_700_010_000.0)
    venue = PaperExchangeClient(config, clock)
    venue.apply_bbo(D("61668.5"), D("61668.6"), D("5"), D("5"))
    assert venue.starting_balance() == D("10000") / D("61668.55")  # 10,000 USD of BTC
    await venue.place_market_order("BTCUSD_PERP", BUY, D("1"), "a-1", D("1"))
    venue.apply_bbo(D("61681.0"), D("61681.1"), D("5"), D("5"))
    await venue.place_market_order("BTCUSD_PERP", SELL, D("1"), "a-2", D("1"), reduce_only=True)
    account = await venue.get_account_snapshot()
    assert close(account.realized_pnl, "3.2599e-7")
    taker = D("0.0005")
    assert account.fees_paid == 100 / ENTRY * taker + 100 / EXIT * taker
    assert account.positions == ()


def test_the_report_shows_coin_with_usd_beside() -> None:
    fills = [
        FillRecord(0.0, "1", BUY, ENTRY, D("1"), 100 / ENTRY * D("0.0002"), True, "entry", False),
        FillRecord(1.0, "2", SELL, EXIT, D("1"), 100 / EXIT * D("0.0002"), True, "exit", True),
    ]
    result = summarize(
        spec={},
        data={},
        orders=[],
        fills=fills,
        samples=[],
        start_equity=D("0.1"),
        funding=D(0),
        final_bid=EXIT,
        final_ask=EXIT,
        inverse_multiplier=D("100"),
        currency="BTC",
    )
    assert close(result.metrics.net_pnl, "-3.2257e-7")
    rows = dict(metrics_rows(result))
    assert rows["net PnL (after fees)"] == "-0.00000032 BTC (-0.02 USD)"
