"""Behaviour of the risk manager at and around every threshold, with a scripted venue."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from exchanges.base import (
    AccountSnapshot,
    BaseExchangeClient,
    ExchangeError,
    InsufficientFunds,
    NetworkError,
    NotSupported,
    Position,
    RateLimitExceeded,
    RequestTimeout,
)
from helpers.clock import SimulatedClock
from helpers.risk_manager import RiskAction, RiskDecision, RiskManager
from helpers.trading_config import RiskLimits, TradingConfig

START = 1_000.0
BASELINE = Decimal("1000")


class ScriptedClient(BaseExchangeClient):
    """A venue whose only working call is get_account_snapshot, answering from a script.

    ``result`` is returned (or raised, if it is an exception) on every call until changed.
    """

    name = "scripted"

    def __init__(self, config: TradingConfig, clock: SimulatedClock) -> None:
        super().__init__(config, clock)
        self.result: AccountSnapshot | Exception = snap(BASELINE)
        self.snapshot_calls = 0

    async def get_account_snapshot(self) -> AccountSnapshot:
        self.snapshot_calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def connect(self):
        raise NotImplementedError

    async def disconnect(self):
        raise NotImplementedError

    async def get_contract_info(self, ticker):
        raise NotImplementedError

    async def fetch_bbo_prices(self, contract_id):
        raise NotImplementedError

    async def get_funding_rate(self, contract_id):
        raise NotImplementedError

    async def place_limit_order(self, *args, **kwargs):
        raise NotImplementedError

    async def place_market_order(self, *args, **kwargs):
        raise NotImplementedError

    async def cancel_order(self, contract_id, order_id):
        raise NotImplementedError

    async def get_order_info(self, contract_id, order_id):
        raise NotImplementedError

    async def get_active_orders(self, contract_id):
        raise NotImplementedError

    async def find_order(self, contract_id, client_order_id):
        raise NotImplementedError

    async def get_position(self, contract_id):
        raise NotImplementedError


def pos(name: str, pnl: str, size: str = "1") -> Position:
    return Position(
        contract_id=name, size=Decimal(size), entry_price=Decimal(100), unrealized_pnl=Decimal(pnl)
    )


def snap(equity: Decimal | str, positions: tuple[Position, ...] = ()) -> AccountSnapshot:
    return AccountSnapshot(balance=Decimal(equity), equity=Decimal(equity), positions=positions)


ONE_POSITION = (pos("BTC", "-50"),)


def make(limits: RiskLimits | None = None, **kwargs):
    clock = SimulatedClock(start=START)
    config = TradingConfig(
        ticker="BTC", exchange="paper", strategy="grid", quantity=Decimal("0.01"), risk=limits or RiskLimits()
    )
    client = ScriptedClient(config, clock)
    manager = RiskManager(client, config, clock, **kwargs)
    return manager, client, clock


@pytest.fixture
async def rig():
    manager, client, clock = make()
    await manager.initialize()
    return manager, client, clock


async def check_with(manager, client, clock, result, at: float) -> RiskDecision:
    """Let the venue answer ``result`` at clock time ``at`` (past the snapshot interval), and check."""
    client.result = result
    clock.advance_to(at)
    manager.record_market_data(at)  # keep the stall rule out of account tests
    return await manager.check_risk_conditions()


# -- order failures ----------------------------------------------------------------------------


async def test_fourteen_failures_do_not_stop_fifteen_do(rig):
    manager, _, _ = rig
    for _ in range(14):
        manager.record_order_failure(InsufficientFunds("margin"))
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE

    manager.record_order_failure(InsufficientFunds("not enough margin"))
    decision = await manager.check_risk_conditions()
    assert decision.action is RiskAction.STOP
    assert "15" in decision.reason
    assert "not enough margin" in decision.reason
    assert "InsufficientFunds" in decision.reason


async def test_success_resets_failure_count(rig):
    manager, _, _ = rig
    for _ in range(14):
        manager.record_order_failure(ExchangeError("boom"))
    manager.record_order_success()
    for _ in range(14):
        manager.record_order_failure(ExchangeError("boom"))
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE
    assert manager.status()["consecutive_failures"] == "14/15"

    manager.record_order_failure(ExchangeError("boom"))
    assert (await manager.check_risk_conditions()).action is RiskAction.STOP


# -- market-data stall -------------------------------------------------------------------------


async def test_stall_pauses_at_limit_and_resumes_on_fresh_data(rig):
    manager, _, clock = rig
    manager.record_market_data(START + 10)

    clock.advance_to(START + 10 + 599.9)
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE

    clock.advance_to(START + 10 + 600)
    decision = await manager.check_risk_conditions()
    assert decision.action is RiskAction.PAUSE
    assert "market data" in decision.reason

    manager.record_market_data(START + 610)
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE


async def test_stall_detected_when_feed_never_delivers(rig):
    manager, _, clock = rig
    clock.advance_to(START + 600)
    assert (await manager.check_risk_conditions()).action is RiskAction.PAUSE


async def test_old_market_timestamp_does_not_move_freshness_back(rig):
    manager, _, clock = rig
    manager.record_market_data(START + 100)
    manager.record_market_data(START + 50)  # late, out-of-order message
    clock.advance_to(START + 100 + 599)
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE


# -- account loss ------------------------------------------------------------------------------


async def test_loss_just_short_of_limit_is_none_and_at_limit_closes_worst(rig):
    manager, client, clock = rig
    decision = await check_with(manager, client, clock, snap("900.1", ONE_POSITION), START + 5)  # -9.99 %
    assert decision.action is RiskAction.NONE

    decision = await check_with(manager, client, clock, snap("900", ONE_POSITION), START + 10)  # -10 %
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS
    assert decision.positions_to_close == ONE_POSITION
    assert "-10.00" in decision.reason


async def test_emergency_just_short_closes_worst_and_at_limit_closes_all(rig):
    manager, client, clock = rig
    positions = (pos("A", "-1"), pos("B", "-30"), pos("C", "5"))
    decision = await check_with(manager, client, clock, snap("850.1", positions), START + 5)  # -14.99 %
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS

    decision = await check_with(manager, client, clock, snap("850", positions), START + 10)  # -15 %
    assert decision.action is RiskAction.CLOSE_ALL_AND_STOP
    assert [p.contract_id for p in decision.positions_to_close] == ["B", "A", "C"]
    assert "emergency" in decision.reason


async def test_worst_fifth_of_ten_positions_picked_most_negative_first(rig):
    manager, client, clock = rig
    pnls = ["-3", "4", "-40", "0", "-1", "-25", "7", "-2", "10", "-5"]
    positions = tuple(pos(f"P{i}", pnl) for i, pnl in enumerate(pnls))
    decision = await check_with(manager, client, clock, snap("880", positions), START + 5)
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS
    assert [p.contract_id for p in decision.positions_to_close] == ["P2", "P5"]


async def test_fraction_rounds_up_and_flat_positions_are_ignored(rig):
    manager, client, clock = rig
    # 6 open positions: ceil(0.2 * 6) = 2; the flat position must neither count nor be picked.
    positions = (
        pos("FLAT", "-999", size="0"),
        *(pos(f"P{i}", str(-i)) for i in range(6)),
    )
    decision = await check_with(manager, client, clock, snap("880", positions), START + 5)
    assert [p.contract_id for p in decision.positions_to_close] == ["P5", "P4"]


async def test_short_positions_count_as_open(rig):
    manager, client, clock = rig
    positions = (pos("LONG", "-1"), pos("SHORT", "-9", size="-2"))
    decision = await check_with(manager, client, clock, snap("880", positions), START + 5)
    assert [p.contract_id for p in decision.positions_to_close] == ["SHORT"]


async def test_loss_without_open_positions_has_nothing_to_close(rig):
    manager, client, clock = rig
    decision = await check_with(manager, client, clock, snap("880"), START + 5)
    assert decision.action is RiskAction.NONE
    # A position opened later in the same episode is still closed: nothing was issued before.
    decision = await check_with(manager, client, clock, snap("880", ONE_POSITION), START + 10)
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS


async def test_gain_never_triggers(rig):
    manager, client, clock = rig
    decision = await check_with(manager, client, clock, snap("5000", ONE_POSITION), START + 5)
    assert decision.action is RiskAction.NONE
    assert manager.status()["drawdown_pct"] == "400.00"


# -- re-issue rule -----------------------------------------------------------------------------


async def test_close_worst_not_reissued_until_further_loss_step(rig):
    manager, client, clock = rig
    positions = (pos("A", "-10"), pos("B", "-20"))
    first = await check_with(manager, client, clock, snap("895", positions), START + 5)  # -10.5 %
    assert first.action is RiskAction.CLOSE_WORST_POSITIONS

    # Same episode, loss a little deeper but less than the 2-point step: suppressed.
    for i, equity in enumerate(["895", "890", "876"]):  # -10.5, -11.0, -12.4
        decision = await check_with(manager, client, clock, snap(equity, positions), START + 10 + 5 * i)
        assert decision.action is RiskAction.REDUCE_ONLY, equity
        assert "no new entries" in decision.reason

    second = await check_with(manager, client, clock, snap("875", positions), START + 40)  # -12.5 %
    assert second.action is RiskAction.CLOSE_WORST_POSITIONS
    # The next step is measured from -12.5 %.
    decision = await check_with(manager, client, clock, snap("856", positions), START + 45)  # -14.4 %
    assert decision.action is RiskAction.REDUCE_ONLY
    decision = await check_with(manager, client, clock, snap("855", positions), START + 50)  # -14.5 %
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS


async def test_close_worst_reissued_after_recovery_above_threshold(rig):
    manager, client, clock = rig
    assert (await check_with(manager, client, clock, snap("900", ONE_POSITION), START + 5)).action is (
        RiskAction.CLOSE_WORST_POSITIONS
    )
    # Still exactly at the threshold: same episode, entries still held back.
    assert (await check_with(manager, client, clock, snap("900", ONE_POSITION), START + 10)).action is (
        RiskAction.REDUCE_ONLY
    )
    # Recovers just above -10 % ends the episode; breaching again acts again.
    assert (await check_with(manager, client, clock, snap("900.1", ONE_POSITION), START + 15)).action is (
        RiskAction.NONE
    )
    assert (await check_with(manager, client, clock, snap("900", ONE_POSITION), START + 20)).action is (
        RiskAction.CLOSE_WORST_POSITIONS
    )


async def test_cached_snapshot_does_not_reissue_close_worst(rig):
    manager, client, clock = rig
    first = await check_with(manager, client, clock, snap("890", ONE_POSITION), START + 5)
    assert first.action is RiskAction.CLOSE_WORST_POSITIONS
    for _ in range(5):  # the same episode: no second close, entries held back
        assert (await manager.check_risk_conditions()).action is RiskAction.REDUCE_ONLY
    assert client.snapshot_calls == 2  # initialize + one refresh


async def test_close_worst_overridden_by_stop_is_not_counted_as_issued(rig):
    manager, client, clock = rig
    for _ in range(15):
        manager.record_order_failure(ExchangeError("down"))
    decision = await check_with(manager, client, clock, snap("890", ONE_POSITION), START + 5)
    assert decision.action is RiskAction.STOP
    manager.record_order_success()
    decision = await check_with(manager, client, clock, snap("890", ONE_POSITION), START + 10)
    assert decision.action is RiskAction.CLOSE_WORST_POSITIONS


async def test_snapshot_failure_does_not_end_loss_episode(rig):
    manager, client, clock = rig
    assert (await check_with(manager, client, clock, snap("890", ONE_POSITION), START + 5)).action is (
        RiskAction.CLOSE_WORST_POSITIONS
    )
    await check_with(manager, client, clock, NetworkError("blip"), START + 10)
    decision = await check_with(manager, client, clock, snap("890", ONE_POSITION), START + 15)
    assert decision.action is RiskAction.REDUCE_ONLY  # still the same episode: no second close


# -- precedence --------------------------------------------------------------------------------


async def test_emergency_wins_over_stop_and_stop_over_close_worst_and_pause(rig):
    manager, client, clock = rig
    for _ in range(15):
        manager.record_order_failure(ExchangeError("down"))
    decision = await check_with(manager, client, clock, snap("800", ONE_POSITION), START + 5)
    assert decision.action is RiskAction.CLOSE_ALL_AND_STOP

    clock.advance_to(START + 5 + 600)  # stale feed as well, and a -11 % loss
    client.result = snap("890", ONE_POSITION)
    assert (await manager.check_risk_conditions()).action is RiskAction.STOP


async def test_close_worst_wins_over_stall_pause(rig):
    manager, client, clock = rig
    client.result = snap("890", ONE_POSITION)
    clock.advance_to(START + 600)
    assert (await manager.check_risk_conditions()).action is RiskAction.CLOSE_WORST_POSITIONS
    assert (await manager.check_risk_conditions()).action is RiskAction.PAUSE


# -- API failures are never state --------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [NetworkError("reset"), RequestTimeout("slow"), RateLimitExceeded("429", 1.0), ExchangeError("?")],
)
async def test_failed_snapshot_is_neither_loss_nor_flat(rig, error):
    manager, client, clock = rig
    # The last good snapshot is at -5 % with a position; the failure must not be read as
    # equity 0 (a -100 % emergency) nor as "no positions".
    await check_with(manager, client, clock, snap("950", ONE_POSITION), START + 5)
    decision = await check_with(manager, client, clock, error, START + 10)
    assert decision.action is RiskAction.NONE
    assert manager.snapshot_failures == 1
    assert manager.consecutive_snapshot_failures == 1
    assert manager.status()["last_equity"] == "950"
    assert manager.status()["drawdown_pct"] == "-5.00"


async def test_failed_snapshot_after_a_loss_does_not_act_on_stale_data(rig):
    manager, client, clock = rig
    assert (await check_with(manager, client, clock, snap("800", ONE_POSITION), START + 5)).action is (
        RiskAction.CLOSE_ALL_AND_STOP
    )
    decision = await check_with(manager, client, clock, NetworkError("down"), START + 10)
    assert decision.action is RiskAction.NONE


async def test_many_consecutive_snapshot_failures_pause_then_recover(rig):
    manager, client, clock = rig
    for i in range(9):
        decision = await check_with(manager, client, clock, RequestTimeout("slow"), START + 5 * (i + 1))
        assert decision.action is RiskAction.NONE
    decision = await check_with(manager, client, clock, RequestTimeout("slow"), START + 50)
    assert decision.action is RiskAction.PAUSE
    assert "10 times" in decision.reason
    assert "RequestTimeout" in decision.reason
    assert manager.snapshot_failures == 10

    decision = await check_with(manager, client, clock, snap("990"), START + 55)
    assert decision.action is RiskAction.NONE
    assert manager.consecutive_snapshot_failures == 0
    assert manager.snapshot_failures == 10  # the total is kept


async def test_snapshot_failure_limit_is_configurable():
    manager, client, clock = make(max_consecutive_snapshot_failures=2)
    await manager.initialize()
    assert (await check_with(manager, client, clock, NetworkError("x"), START + 5)).action is RiskAction.NONE
    assert (
        await check_with(manager, client, clock, NetworkError("x"), START + 10)
    ).action is RiskAction.PAUSE
    manager.max_consecutive_snapshot_failures = 5
    assert (await check_with(manager, client, clock, NetworkError("x"), START + 15)).action is RiskAction.NONE


async def test_snapshot_failure_logging_is_rate_limited(rig, caplog):
    manager, client, clock = rig
    caplog.set_level(logging.WARNING, logger="helpers.risk_manager")
    for i in range(10):  # 10 failures within 50 s: one warning
        await check_with(manager, client, clock, NetworkError("down"), START + 5 * (i + 1))
    await check_with(manager, client, clock, NetworkError("down"), START + 65)  # 60 s later: one more
    failures = [r for r in caplog.records if "Account snapshot failed" in r.getMessage()]
    assert len(failures) == 2
    assert "10 since last report" in failures[1].getMessage()


async def test_non_exchange_errors_are_bugs_and_propagate(rig):
    manager, client, clock = rig
    with pytest.raises(ZeroDivisionError):
        await check_with(manager, client, clock, ZeroDivisionError(), START + 5)


# -- initialize --------------------------------------------------------------------------------


async def test_not_supported_disables_loss_checks_only(caplog):
    manager, client, clock = make()
    client.result = NotSupported("no account endpoint")
    caplog.set_level(logging.WARNING, logger="helpers.risk_manager")
    await manager.initialize()
    assert sum("DISABLED" in r.getMessage() for r in caplog.records) == 1

    for i in range(20):
        decision = await check_with(manager, client, clock, NotSupported("no"), START + 5 * (i + 1))
        assert decision.action is RiskAction.NONE
    assert client.snapshot_calls == 1  # never asked again
    assert manager.snapshot_failures == 0
    assert manager.status()["loss_checks"].startswith("off")

    for _ in range(15):
        manager.record_order_failure(ExchangeError("x"))
    assert (await manager.check_risk_conditions()).action is RiskAction.STOP


async def test_initialize_propagates_other_errors_without_baseline():
    manager, client, _ = make()
    client.result = AuthenticationErrorLike("bad key")
    with pytest.raises(AuthenticationErrorLike):
        await manager.initialize()
    assert manager.baseline_equity is None
    with pytest.raises(RuntimeError):
        await manager.check_risk_conditions()


class AuthenticationErrorLike(ExchangeError):
    """Any ExchangeError other than NotSupported."""


async def test_zero_starting_equity_disables_loss_checks():
    manager, client, clock = make()
    client.result = snap("0", ONE_POSITION)
    await manager.initialize()
    assert manager.baseline_equity is None
    decision = await check_with(manager, client, clock, snap("-5", ONE_POSITION), START + 5)
    assert decision.action is RiskAction.NONE


# -- snapshot caching --------------------------------------------------------------------------


async def test_snapshot_refreshed_at_most_every_interval(rig):
    manager, client, clock = rig
    assert client.snapshot_calls == 1
    client.result = snap("800", ONE_POSITION)  # would be an emergency if read

    clock.advance_to(START + 4.99)
    manager.record_market_data(clock.now())
    for _ in range(3):
        assert (await manager.check_risk_conditions()).action is RiskAction.NONE
    assert client.snapshot_calls == 1

    clock.advance_to(START + 5.0)
    assert (await manager.check_risk_conditions()).action is RiskAction.CLOSE_ALL_AND_STOP
    assert client.snapshot_calls == 2
    assert (await manager.check_risk_conditions()).action is RiskAction.CLOSE_ALL_AND_STOP
    assert client.snapshot_calls == 2


async def test_failed_attempts_are_paced_too(rig):
    manager, client, clock = rig
    await check_with(manager, client, clock, NetworkError("down"), START + 5)
    for _ in range(5):
        await manager.check_risk_conditions()
    assert client.snapshot_calls == 2
    assert manager.snapshot_failures == 1


async def test_custom_snapshot_interval():
    manager, client, clock = make(snapshot_interval=30.0)
    await manager.initialize()
    await check_with(manager, client, clock, snap("800"), START + 29)
    assert client.snapshot_calls == 1
    await check_with(manager, client, clock, snap("800"), START + 30)
    assert client.snapshot_calls == 2


async def test_a_snapshot_is_due_exactly_when_a_check_would_read_the_account():
    """The bot goes round again after a fill's pass only when that pass skipped a due read:
    snapshot_due must say what check_risk_conditions then does."""
    manager, client, clock = make(snapshot_interval=30.0)
    await manager.initialize()
    for at in (START + 10, START + 29.999, START + 30, START + 45, START + 60, START + 90):
        clock.advance_to(at)
        manager.record_market_data(at)
        due, calls = manager.snapshot_due(), client.snapshot_calls
        await manager.check_risk_conditions(allow_refresh=False)
        assert client.snapshot_calls == calls  # a fill's pass never reads
        assert manager.snapshot_due() is due
        await manager.check_risk_conditions()
        assert client.snapshot_calls == calls + due, at
        assert not manager.snapshot_due()
    assert client.snapshot_calls == 4  # at 30, 60 and 90, after the one at start-up
    disabled, _, _ = make(RiskLimits(enabled=False))
    await disabled.initialize()
    assert not disabled.snapshot_due()


# -- disabled ----------------------------------------------------------------------------------


async def test_disabled_limits_always_none():
    manager, client, clock = make(RiskLimits(enabled=False))
    client.result = snap("1")
    await manager.initialize()
    for _ in range(50):
        manager.record_order_failure(ExchangeError("x"))
    clock.advance_to(START + 10_000)
    client.result = snap("1", ONE_POSITION)
    assert (await manager.check_risk_conditions()).action is RiskAction.NONE
    assert client.snapshot_calls == 0
    assert manager.status() == {"risk": "disabled"}


# -- configuration and status ------------------------------------------------------------------


async def test_custom_limits_are_honoured():
    limits = RiskLimits(
        max_consecutive_failures=3,
        loss_pct=Decimal(5),
        close_worst_fraction=Decimal("0.5"),
        emergency_loss_pct=Decimal(8),
    )
    manager, client, clock = make(limits)
    await manager.initialize()
    positions = tuple(pos(f"P{i}", str(-i)) for i in range(3))
    decision = await check_with(manager, client, clock, snap("950", positions), START + 5)
    assert [p.contract_id for p in decision.positions_to_close] == ["P2", "P1"]
    decision = await check_with(manager, client, clock, snap("920", positions), START + 10)
    assert decision.action is RiskAction.CLOSE_ALL_AND_STOP


@pytest.mark.parametrize(
    "limits",
    [
        RiskLimits(close_worst_fraction=Decimal(0)),
        RiskLimits(close_worst_fraction=Decimal("1.5")),
        RiskLimits(loss_pct=Decimal(-10)),
        RiskLimits(max_consecutive_failures=0),
    ],
)
def test_nonsense_limits_are_rejected(limits):
    with pytest.raises(ValueError):
        make(limits)


async def test_status_reports_baseline_equity_drawdown_and_failures(rig):
    manager, client, clock = rig
    manager.record_order_failure(ExchangeError("x"))
    await check_with(manager, client, clock, snap("987.654", ONE_POSITION), START + 5)
    status = manager.status()
    assert status["baseline_equity"] == "1000"
    assert status["last_equity"] == "987.654"
    assert status["drawdown_pct"] == "-1.23"
    assert status["consecutive_failures"] == "1/15"
    assert all(isinstance(v, str) for v in status.values())
