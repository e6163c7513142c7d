"""The risk manager on inverse contracts (BTCUSD_PERP: contracts of M = 100 USD, money in BTC).

Worked numbers (limits: loss 10 %, emergency 15 %; wake levels sit at half the loss limit):

* Wake levels, scripted account. Baseline 0.2 BTC, so half the limit is 0.2 * 10 % / 2 = 0.01
  BTC. Balance 0.199 BTC (realized PnL - fees = -0.001 BTC), so headroom = 0.01 - 0.001 = 0.009
  BTC. A position of N contracts entered at E = 50,000 loses N * M * (1/E - 1/P) BTC at P.
  - Long 10 (N * M = 1,000 USD): 1/P = 1/50,000 + 0.009 / 1,000 = 0.000029,
    P = 34,482.758620... (a linear reading, E - headroom / N, says 49,999.9991).
  - Short 10: 1/P = 0.00002 - 0.000009 = 0.000011, P = 90,909.0909...
  - Short 1: it can lose at most 1 * 100 / 50,000 = 0.002 BTC < 0.009: no level.
* The paper venue, inverse. First quote 49,999.9 / 50,000.1 (mid 50,000): the account starts
  with 10,000 USD of BTC = 0.2 BTC. A market buy of 400 contracts fills at 50,000.1 with the
  0.05 % taker fee 400 * 100 / 50,000.1 * 0.0005 = 0.00039999920 BTC.
  - Headroom = 0.01 - 0.00039999920 = 0.00960000080 BTC; 1/P = 1/50,000.1 + 0.0096.../40,000,
    P = 49,407.2122182... At that mid equity is 0.19 BTC, exactly -5 % (half the limit).
  - At mid 48,500: unrealized = 40,000 * (1/50,000.1 - 1/48,500) = -0.0247438680 BTC, equity
    = 0.2 - 0.0004 - 0.0247439 = 0.1748561 BTC, drawdown -12.57 %: close the worst position
    (not the emergency; a linear reading, 400 * (48,500 - 50,000.1) = -600,040, would be
    -300,000,000 %).
"""

from __future__ import annotations

from decimal import Decimal

from exchanges.base import AccountSnapshot, OrderSide, Position
from exchanges.paper import PaperExchangeClient
from helpers.clock import SimulatedClock
from helpers.risk_manager import RiskAction, RiskManager, inverse_multiplier_of
from helpers.trading_config import RiskLimits, TradingConfig
from strategies.base_strategy import WakeLevels
from tests.test_risk_manager import ScriptedClient

D = Decimal
M = D("100")
E = D("50000")


def _config(ticker: str = "BTCUSD_PERP", **exchange: object) -> TradingConfig:
    return TradingConfig(
        ticker=ticker,
        exchange="paper",
        strategy="grid",
        quantity=D("1"),
        risk=RiskLimits(),
        exchange_params={"drive_externally": True, "funding_rate": "0", **exchange},
    )


async def _scripted(size: str) -> tuple[RiskManager, ScriptedClient]:
    """Baseline 0.2 BTC flat, then an account holding ``size`` contracts at 50,000."""
    clock = SimulatedClock(1_000.0)
    client = ScriptedClient(_config(), clock)
    client.result = AccountSnapshot(balance=D("0.2"), equity=D("0.2"))
    manager = RiskManager(client, _config(), clock, snapshot_interval=0, inverse_multiplier=M)
    await manager.initialize()
    position = Position("BTCUSD_PERP", D(size), E, unrealized_pnl=D(0))
    client.result = AccountSnapshot(balance=D("0.199"), equity=D("0.199"), positions=(position,))
    await manager.check_risk_conditions()
    return manager, client


def _close(value: Decimal | None, expected: str) -> bool:
    return value is not None and abs(value - D(expected)) < D("1e-9")


async def test_long_wake_level_is_where_the_coin_loss_uses_the_headroom() -> None:
    manager, _ = await _scripted("10")
    levels = manager.market_wake_levels(D("10"), E, D("-999"))  # the linear ledger's PnL is ignored
    assert levels is not None and levels.ask_high == WakeLevels().ask_high
    assert _close(levels.bid_low, "34482.758620689655")
    # At that price the position has lost exactly the headroom, in BTC.
    assert _close(D(10) * M * (1 / E - 1 / levels.bid_low), "-0.009")


async def test_short_wake_level_and_a_short_that_cannot_lose_the_headroom() -> None:
    manager, _ = await _scripted("-10")
    levels = manager.market_wake_levels(D("-10"), E, D(0))
    assert levels is not None and levels.bid_low == WakeLevels().bid_low
    assert _close(levels.ask_high, "90909.090909090909")
    small, _ = await _scripted("-1")
    assert small.market_wake_levels(D("-1"), E, D(0)) == WakeLevels()


async def test_fills_the_snapshot_has_not_seen_wake_on_every_update() -> None:
    manager, _ = await _scripted("10")
    assert manager.market_wake_levels(D("11"), E, D(0)) is None  # the venue still says 10
    manager, _ = await _scripted("10")
    assert manager.market_wake_levels(D("10"), E, D(0)) is not None
    # Same size, new entry: a round trip since the read (its PnL and fees are not in it).
    assert manager.market_wake_levels(D("10"), D("50100"), D(0)) is None


async def test_a_linear_manager_keeps_its_price_difference_levels() -> None:
    manager, _ = await _scripted("10")
    manager.inverse_multiplier = None
    levels = manager.market_wake_levels(D("10"), E, D("-0.001"))
    assert levels == WakeLevels(bid_low=D("49999.9991"))  # E - headroom / N, unchanged


def test_the_multiplier_comes_from_an_inverse_paper_venue_only() -> None:
    clock = SimulatedClock(0.0)
    assert inverse_multiplier_of(PaperExchangeClient(_config(), clock)) == M
    assert inverse_multiplier_of(PaperExchangeClient(_config("BTCUSDT"), clock)) is None
    assert inverse_multiplier_of(object()) is None


async def test_the_paper_venue_account_is_judged_in_coin() -> None:
    clock = SimulatedClock(1_700_010_000.0)
    config = _config(fill_model="touch")
    venue = PaperExchangeClient(config, clock)
    venue.apply_bbo(D("49999.9"), D("50000.1"), D("5"), D("5"))
    manager = RiskManager(
        venue, config, clock, snapshot_interval=0, inverse_multiplier=inverse_multiplier_of(venue)
    )
    await manager.initialize()
    assert manager.baseline_equity == D("0.2")
    await venue.place_market_order("BTCUSD_PERP", OrderSide.BUY, D("400"), "a-1", D("1"))
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE

    levels = manager.market_wake_levels(D("400"), D("50000.1"), D(0))
    assert levels is not None and _close(levels.bid_low, "49407.212218201279")
    # Quote the market with its mid at that level: the account is then 5 % down, as predicted.
    level = levels.bid_low
    venue.apply_bbo(level - D("0.05"), level + D("0.05"), D("5"), D("5"))
    await manager.check_risk_conditions()
    assert _close(D(manager.status()["drawdown_pct"]), "-5.00")
    assert _close((await venue.get_account_snapshot()).equity, "0.19")

    venue.apply_bbo(D("48499.9"), D("48500.1"), D("5"), D("5"))
    decision = await manager.check_risk_conditions()
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS
    assert "-12.57 %" in decision.reason
    (worst,) = decision.positions_to_close
    assert worst.size == 400 and _close(worst.unrealized_pnl, "-0.024743868038")
