"""Account protection that works the same for every venue and every strategy.

The bot asks :meth:`RiskManager.check_risk_conditions` once per loop iteration and acts on the
:class:`RiskDecision` it gets back. The manager only *decides*; closing positions, pausing or
stopping is the bot's job, so the rules here can be unit-tested without any venue.

Rules, in order of precedence (the most protective answer wins):

1. ``CLOSE_ALL_AND_STOP`` - equity has fallen ``emergency_loss_pct`` % (or more) below the
   baseline taken at :meth:`RiskManager.initialize`. Carries every open position, worst first.
   Issued on every check while the condition holds: the bot is expected to stop.
2. ``STOP`` - ``max_consecutive_failures`` order failures in a row (a success resets the count).
3. ``CLOSE_WORST_POSITIONS`` - equity is ``loss_pct`` % (or more) below the baseline. Carries the
   worst ``ceil(close_worst_fraction * n)`` open positions (at least one) by unrealized PnL, most
   negative first. *Re-issue rule*: once issued at drawdown ``d``, it is not issued again in the
   same drawdown episode until the drawdown reaches ``d - reissue_step_pct`` (a further loss
   step, in percentage points) or the episode ends because a fresh snapshot shows equity back
   above the ``-loss_pct`` threshold. Without this the bot would close another fifth of its book
   every loop iteration while the closes are still in flight.
   While an episode goes on without a re-issue the answer is ``REDUCE_ONLY``: no new entries
   (exits still managed) until the drawdown is back above ``-loss_pct``.
4. ``PAUSE`` - the account could not be read ``max_consecutive_snapshot_failures`` times in a row,
   or no market data arrived for ``stall_seconds``. Lifts by itself once the cause is gone.

A failed account read is never read as a loss or as flat positions (an earlier bot closed real
positions because a retry helper turned an error into ``0``): it contributes nothing to the
decision until a fresh snapshot succeeds, and only a long streak of failures pauses trading.
Time comes from the injected clock only, and money is Decimal throughout.

Units: every money figure is the account's settlement currency, as the venue's snapshot gives
it (the quote currency for linear contracts; the coin for inverse contracts such as
BTCUSD_PERP, whose equity and unrealized PnL the paper venue books in BTC). Drawdown is a ratio
of two such equities and the close-worst ranking compares unrealized PnLs of one account, so
neither depends on the contract type. The one price-level computation, the market wake levels,
does: an inverse position of ``N`` contracts of ``M`` USD entered at ``E`` is worth
``N * M * (1/E - 1/P)`` coin at ``P``, not ``N * (P - E)``; the manager is told the multiplier
(:func:`inverse_multiplier_of`) and solves for ``P`` in coin.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

from exchanges.base import (
    AccountSnapshot,
    ExchangeError,
    NotSupported,
    Position,
)
from helpers.clock import Clock
from helpers.trading_config import TradingConfig
from strategies.base_strategy import WakeLevels

logger = logging.getLogger(__name__)

_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_CENT = Decimal("0.01")


class RiskAction(enum.Enum):
    """What the bot should do after a risk check, from harmless to terminal."""

    NONE = "none"
    PAUSE = "pause"
    REDUCE_ONLY = "reduce_only"
    CLOSE_WORST_POSITIONS = "close_worst_positions"
    CLOSE_ALL_AND_STOP = "close_all_and_stop"
    STOP = "stop"


@dataclass(frozen=True)
class RiskDecision:
    """One check's verdict; ``positions_to_close`` is ordered worst unrealized PnL first."""

    action: RiskAction
    reason: str = ""
    positions_to_close: tuple[Position, ...] = ()


_NO_RISK = RiskDecision(RiskAction.NONE)
#: No bound at all (immutable, so one object serves every caller).
_UNBOUNDED = WakeLevels()


class AccountReader(Protocol):
    """What the manager reads: a venue client, or several venues' accounts combined."""

    async def get_account_snapshot(self) -> AccountSnapshot: ...


class BaselineStore(Protocol):
    """Where the baseline survives a restart (the bot's journal)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


_BASELINE_KEY = "risk.baseline_equity"
_HIGH_WATER_KEY = "risk.high_water_equity"


def inverse_multiplier_of(client: object) -> Decimal | None:
    """USD per contract if ``client`` trades an inverse contract, else None (linear).

    Only the paper venue simulates inverse contracts; it says so in its options.
    """
    options = getattr(client, "options", None)
    if options is None or not getattr(options, "inverse", False):
        return None
    return _as_decimal(options.contract_multiplier)


def _as_decimal(value: object) -> Decimal:
    """Config values may arrive as int/float/str from a CLI; compare them as exact Decimals."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


class RiskManager:
    """Watches order failures, market-data freshness and account drawdown for one bot."""

    def __init__(
        self,
        exchange_client: AccountReader,
        config: TradingConfig,
        clock: Clock,
        *,
        snapshot_interval: float = 5.0,
        max_consecutive_snapshot_failures: int = 10,
        reissue_step_pct: Decimal | float | str = Decimal("2"),
        failure_log_interval: float = 60.0,
        store: BaselineStore | None = None,
        inverse_multiplier: Decimal | None = None,
    ) -> None:
        limits = config.risk
        #: USD per contract of an inverse instrument (money in the coin); None for linear ones.
        self.inverse_multiplier = inverse_multiplier
        #: The snapshot the inverse wake levels last used, with the bot's position and entry
        #: when it was first used (a change means fills the snapshot does not know of yet).
        self._inverse_basis: tuple[AccountSnapshot, Decimal, Decimal] | None = None
        #: Keeps the baseline and high-water mark across restarts, so they do not re-arm.
        self._store = store
        self.high_water_equity: Decimal | None = None
        self._client = exchange_client
        self._clock = clock
        self.enabled: bool = bool(limits.enabled)
        self.max_consecutive_failures: int = int(limits.max_consecutive_failures)
        self.stall_seconds: float = float(limits.stall_seconds)
        self.loss_pct: Decimal = _as_decimal(limits.loss_pct)
        self.emergency_loss_pct: Decimal = _as_decimal(limits.emergency_loss_pct)
        self.close_worst_fraction: Decimal = _as_decimal(limits.close_worst_fraction)
        #: Seconds between account reads; checks in between reuse the last good snapshot.
        self.snapshot_interval: float = float(snapshot_interval)
        #: Consecutive failed account reads after which trading pauses.
        self.max_consecutive_snapshot_failures: int = int(max_consecutive_snapshot_failures)
        #: Further drawdown (percentage points) needed to re-issue CLOSE_WORST in one episode.
        self.reissue_step_pct: Decimal = _as_decimal(reissue_step_pct)
        #: Minimum clock seconds between repeated "account read failed" log lines.
        self.failure_log_interval: float = float(failure_log_interval)
        self._validate()

        # Order outcomes.
        self.consecutive_failures: int = 0
        self._last_order_error: Exception | None = None

        # Market-data freshness; the reference starts when the manager starts.
        self._last_market_data_at: float = clock.now()
        self._market_data_seen = False
        self._stalled = False

        # Account state.
        self._initialized = False
        self._loss_checks_enabled = True
        self._loss_checks_off_reason = ""
        self.baseline_equity: Decimal | None = None
        self._last_snapshot: AccountSnapshot | None = None
        self._last_snapshot_at: float | None = None
        self._last_attempt_at: float | None = None
        #: Every failed account read since start (for the console and post-mortems).
        self.snapshot_failures: int = 0
        self.consecutive_snapshot_failures: int = 0
        self._last_snapshot_error: ExchangeError | None = None
        self._last_failure_log_at: float | None = None
        self._failures_since_log = 0

        # Whether the account held positions this bot's own fills do not explain.
        self._started_with_positions = False

        # Drawdown episode (re-issue rule) bookkeeping.
        self._close_worst_issued_at: Decimal | None = None
        self._warned_loss_without_positions = False

        # The last drawdown worked out, for the snapshot and baseline it was worked out from
        # (checks between account reads reuse the snapshot, so the same figure).
        self._drawdown_key: tuple[AccountSnapshot, Decimal] | None = None
        self._drawdown: Decimal | None = None

    def _validate(self) -> None:
        """Reject limits that would silently disable protection or divide by nothing."""
        if self.max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")
        if self.stall_seconds <= 0:
            raise ValueError("stall_seconds must be positive")
        if self.loss_pct <= 0 or self.emergency_loss_pct <= 0:
            raise ValueError("loss_pct and emergency_loss_pct must be positive percentages")
        if not Decimal(0) < self.close_worst_fraction <= Decimal(1):
            raise ValueError("close_worst_fraction must be in (0, 1]")
        if self.snapshot_interval < 0:
            raise ValueError("snapshot_interval must not be negative")
        if self.max_consecutive_snapshot_failures < 1:
            raise ValueError("max_consecutive_snapshot_failures must be at least 1")
        if self.reissue_step_pct <= 0:
            raise ValueError("reissue_step_pct must be positive")
        if self.inverse_multiplier is not None and self.inverse_multiplier <= 0:
            raise ValueError("inverse_multiplier must be positive")

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Take the starting equity as the baseline every later drawdown is measured against.

        NotSupported turns the account-loss checks off (the other checks still run); any other
        ExchangeError propagates, because a guessed baseline would make every later loss figure
        meaningless.
        """
        if not self._market_data_seen:
            self._last_market_data_at = self._clock.now()
        if not self.enabled:
            self._initialized = True
            logger.info("Risk limits disabled by configuration; no risk checks will run")
            return
        try:
            snapshot = await self._client.get_account_snapshot()
        except NotSupported as exc:
            self._disable_loss_checks(f"venue provides no account snapshot ({exc})")
            self._initialized = True
            return
        now = self._clock.now()
        self._last_attempt_at = now
        stored = self._stored(_BASELINE_KEY)
        if stored is None and snapshot.equity <= 0:
            self._disable_loss_checks(f"starting equity is {snapshot.equity}, no loss percentage exists")
            self._initialized = True
            return
        if stored is not None:
            self.baseline_equity = stored
            self.high_water_equity = self._stored(_HIGH_WATER_KEY)
        else:
            self.baseline_equity = snapshot.equity
            if self._store is not None:
                self._store.set_meta(_BASELINE_KEY, str(snapshot.equity))
        self._note_high_water(snapshot.equity)
        self._started_with_positions = any(p.size != 0 for p in snapshot.positions)
        self._last_snapshot = snapshot
        self._last_snapshot_at = now
        self._initialized = True
        logger.info(
            "Risk baseline equity %s%s; close worst at -%s %%, close all and stop at -%s %%",
            self.baseline_equity,
            " (kept from this bot's journal: a restart does not re-arm the limits)" if stored else "",
            self.loss_pct,
            self.emergency_loss_pct,
        )

    def _disable_loss_checks(self, reason: str) -> None:
        self._loss_checks_enabled = False
        self._loss_checks_off_reason = reason
        logger.warning("Account-loss risk checks DISABLED: %s. Failure and stall checks stay active.", reason)

    # -- inputs from the bot -------------------------------------------------------------------

    def record_order_success(self) -> None:
        """A placed order proves the venue accepts us again, so the failure streak ends."""
        self.consecutive_failures = 0
        self._last_order_error = None

    def record_order_failure(self, error: Exception) -> None:
        """Count a failed order; a long unbroken streak means something structural is wrong."""
        self.consecutive_failures += 1
        self._last_order_error = error
        logger.debug("Order failure %d in a row: %r", self.consecutive_failures, error)

    def record_market_data(self, timestamp: float) -> None:
        """Note fresh market data; ``timestamp`` is in the clock's time. Never moves backwards."""
        if not self._market_data_seen or timestamp > self._last_market_data_at:
            self._last_market_data_at = timestamp
        self._market_data_seen = True

    # -- the check -----------------------------------------------------------------------------

    async def check_risk_conditions(self, allow_refresh: bool = True) -> RiskDecision:
        """Evaluate every rule and return the most protective decision (see module docstring).

        ``allow_refresh=False`` judges on the last snapshot without reading the account: the bot
        passes it when a fill is waiting, so a REST round trip never sits between a fill and its
        take-profit; the due read happens on the next iteration.
        """
        if not self.enabled:
            return _NO_RISK
        if not self._initialized:
            raise RuntimeError("RiskManager.initialize() must be awaited before checking risk")

        if self._loss_checks_enabled and allow_refresh:
            await self._refresh_snapshot()
        account, marks_close_worst = self._account_decision()

        if account is not None and account.action is RiskAction.CLOSE_ALL_AND_STOP:
            return account

        if self.consecutive_failures >= self.max_consecutive_failures:
            error = self._last_order_error
            last = f"{type(error).__name__}: {error}" if error is not None else "unknown"
            return RiskDecision(
                RiskAction.STOP,
                f"{self.consecutive_failures} consecutive order failures "
                f"(limit {self.max_consecutive_failures}); last error: {last}",
            )

        if account is not None and account.action is RiskAction.CLOSE_WORST_POSITIONS:
            if marks_close_worst is not None:
                self._close_worst_issued_at = marks_close_worst
            return account

        pause_reasons: list[str] = []
        if account is not None and account.action is RiskAction.PAUSE:
            pause_reasons.append(account.reason)
        stall_reason = self._stall_reason()
        if stall_reason:
            pause_reasons.append(stall_reason)
        if pause_reasons:
            return RiskDecision(RiskAction.PAUSE, "; ".join(pause_reasons))
        if account is not None and account.action is RiskAction.REDUCE_ONLY:
            return account
        return _NO_RISK

    def snapshot_due(self) -> bool:
        """Would a check that may refresh read the account now? (The bot goes round again at
        once after a pass that could not read it only when it would.)"""
        if not self.enabled or not self._loss_checks_enabled:
            return False
        last = self._last_attempt_at
        return last is None or self._clock.now() - last >= self.snapshot_interval

    async def _refresh_snapshot(self) -> None:
        """Read the account at most every ``snapshot_interval`` seconds, failed attempts included.

        Pacing failed attempts too keeps a struggling venue from being hammered by the loop.
        """
        if not self.snapshot_due():
            return
        now = self._last_attempt_at = self._clock.now()
        try:
            snapshot = await self._client.get_account_snapshot()
        except ExchangeError as exc:
            self._on_snapshot_failure(exc, now)
            return
        if self.consecutive_snapshot_failures:
            logger.info(
                "Account snapshot readable again after %d failed attempt(s)",
                self.consecutive_snapshot_failures,
            )
        self.consecutive_snapshot_failures = 0
        self._last_snapshot_error = None
        self._failures_since_log = 0
        self._last_failure_log_at = None
        self._last_snapshot = snapshot
        self._last_snapshot_at = now
        self._note_high_water(snapshot.equity)

    def _stored(self, key: str) -> Decimal | None:
        if self._store is None:
            return None
        text = self._store.get_meta(key)
        try:
            value = Decimal(text) if text is not None else None
        except InvalidOperation:
            logger.warning("ignoring an unreadable %s in the journal", key)
            return None
        return value if value is not None and value.is_finite() and value > 0 else None

    def _note_high_water(self, equity: Decimal) -> None:
        """The highest equity seen, kept in the journal (written only when it rises)."""
        if not isinstance(equity, Decimal) or not equity.is_finite():
            return
        if self.high_water_equity is None or equity > self.high_water_equity:
            self.high_water_equity = equity
            if self._store is not None:
                self._store.set_meta(_HIGH_WATER_KEY, str(equity))

    def _on_snapshot_failure(self, exc: ExchangeError, now: float) -> None:
        """Count the failure; log the first one and then at most once per log interval."""
        self.snapshot_failures += 1
        self.consecutive_snapshot_failures += 1
        self._last_snapshot_error = exc
        self._failures_since_log += 1
        due = (
            self._last_failure_log_at is None or now - self._last_failure_log_at >= self.failure_log_interval
        )
        if due:
            logger.warning(
                "Account snapshot failed (%d in a row, %d since last report): %s: %s; "
                "the account-loss check is skipped, not read as a loss",
                self.consecutive_snapshot_failures,
                self._failures_since_log,
                type(exc).__name__,
                exc,
            )
            self._last_failure_log_at = now
            self._failures_since_log = 0

    def _account_decision(self) -> tuple[RiskDecision | None, Decimal | None]:
        """The account part of the verdict, plus the drawdown to record if CLOSE_WORST is used.

        Recording is left to the caller so a CLOSE_WORST overridden by STOP does not count as
        issued.
        """
        if not self._loss_checks_enabled:
            return None, None
        if self.consecutive_snapshot_failures:
            if self.consecutive_snapshot_failures >= self.max_consecutive_snapshot_failures:
                error = self._last_snapshot_error
                return (
                    RiskDecision(
                        RiskAction.PAUSE,
                        f"account snapshot failed {self.consecutive_snapshot_failures} times in a row "
                        f"(last error: {type(error).__name__}: {error}); no new orders until the "
                        "account can be read",
                    ),
                    None,
                )
            return None, None

        snapshot = self._last_snapshot
        drawdown = self._drawdown_pct(snapshot)
        if snapshot is None or drawdown is None:
            return None, None

        if drawdown <= -self.emergency_loss_pct:
            return (
                RiskDecision(
                    RiskAction.CLOSE_ALL_AND_STOP,
                    f"equity {snapshot.equity} is {drawdown.quantize(_CENT)} % from baseline "
                    f"{self.baseline_equity} (emergency limit -{self.emergency_loss_pct} %)",
                    self._open_positions(snapshot),
                ),
                None,
            )

        if drawdown > -self.loss_pct:
            if self._close_worst_issued_at is not None:
                logger.info(
                    "Drawdown %s %% back above -%s %%: loss episode over",
                    drawdown.quantize(_CENT),
                    self.loss_pct,
                )
            self._close_worst_issued_at = None
            self._warned_loss_without_positions = False
            return None, None

        open_positions = self._open_positions(snapshot)
        if not open_positions:
            if not self._warned_loss_without_positions:
                logger.warning(
                    "Drawdown %s %% breaches -%s %% but no position is open; nothing to close",
                    drawdown.quantize(_CENT),
                    self.loss_pct,
                )
                self._warned_loss_without_positions = True
            return None, None

        issued_at = self._close_worst_issued_at
        if issued_at is not None and drawdown > issued_at - self.reissue_step_pct:
            # Already acted on this episode (closes may still be in flight): no new exposure
            # until the drawdown recovers above the limit.
            return (
                RiskDecision(
                    RiskAction.REDUCE_ONLY,
                    f"drawdown {drawdown.quantize(_CENT)} % still beyond -{self.loss_pct} % after closing "
                    "the worst positions; no new entries until it recovers",
                ),
                None,
            )

        count = max(1, math.ceil(self.close_worst_fraction * len(open_positions)))
        worst = open_positions[:count]
        return (
            RiskDecision(
                RiskAction.CLOSE_WORST_POSITIONS,
                f"equity {snapshot.equity} is {drawdown.quantize(_CENT)} % from baseline "
                f"{self.baseline_equity} (limit -{self.loss_pct} %); closing {count} of "
                f"{len(open_positions)} positions with the worst unrealized PnL",
                worst,
            ),
            drawdown,
        )

    @staticmethod
    def _open_positions(snapshot: AccountSnapshot) -> tuple[Position, ...]:
        """Open positions, worst unrealized PnL first."""
        return tuple(sorted((p for p in snapshot.positions if p.size != 0), key=lambda p: p.unrealized_pnl))

    def _drawdown_pct(self, snapshot: AccountSnapshot | None) -> Decimal | None:
        """Signed percent change of equity against the baseline (negative is a loss)."""
        if snapshot is None or self.baseline_equity is None:
            return None
        key = self._drawdown_key
        if key is not None and key[0] is snapshot and key[1] is self.baseline_equity:
            return self._drawdown
        drawdown = self._compute_drawdown_pct(snapshot)
        if drawdown is not None:
            self._drawdown_key = (snapshot, self.baseline_equity)
            self._drawdown = drawdown
        return drawdown

    def _compute_drawdown_pct(self, snapshot: AccountSnapshot) -> Decimal | None:
        assert self.baseline_equity is not None
        try:
            return (snapshot.equity - self.baseline_equity) / self.baseline_equity * _HUNDRED
        except (InvalidOperation, TypeError):
            logger.warning("Unusable equity %r in account snapshot; skipping loss check", snapshot.equity)
            return None

    def _stall_reason(self) -> str:
        """Non-empty while the feed is stale; logs the transitions into and out of a stall."""
        age = self._clock.now() - self._last_market_data_at
        if age >= self.stall_seconds:
            if not self._stalled:
                logger.warning("No market data for %.0f s; pausing new orders", age)
                self._stalled = True
            return (
                f"no market data for {age:.0f} s (limit {self.stall_seconds:.0f} s); "
                "no new orders while the feed is stale"
            )
        if self._stalled:
            logger.info("Market data fresh again; resuming")
            self._stalled = False
        return ""

    # -- waking ------------------------------------------------------------------------------

    def market_wake_levels(
        self, position: Decimal, entry_price: Decimal, realized_after_fees: Decimal
    ) -> WakeLevels | None:
        """Quotes beyond which the account could be within half the loss limit.

        Equity is estimated from the bot's own fills (``position`` at ``entry_price``, PnL
        realized net of fees) against the baseline. Far from the limits no market update can
        change a decision here; once a quote comes within half of ``loss_pct`` every update
        wakes the bot, so the checks run as often as without filtering. None (wake on every
        update) whenever the estimate cannot be trusted: positions held before start, an
        account that could not be read, or a drawdown already past half the limit.
        """
        if not self.enabled or not self._loss_checks_enabled:
            return _UNBOUNDED
        baseline = self.baseline_equity
        if baseline is None or self._started_with_positions or self.consecutive_snapshot_failures:
            return None
        if self._close_worst_issued_at is not None:
            return None
        drawdown = self._drawdown_pct(self._last_snapshot)
        if drawdown is None or drawdown <= -self.loss_pct / 2:
            return None
        if self.inverse_multiplier is not None:
            return self._inverse_wake_levels(position, entry_price, baseline)
        # Headroom: how much more the position may lose before equity is half-way to the limit.
        headroom = baseline * self.loss_pct / (2 * _HUNDRED) + realized_after_fees
        if headroom <= 0:
            return None
        if position == 0:
            return _UNBOUNDED
        level = entry_price - headroom / position
        # Long: losing as the mid falls, and the bid is below the mid; short: the ask is above it.
        return WakeLevels(bid_low=level) if position > 0 else WakeLevels(ask_high=level)

    def _inverse_wake_levels(
        self, position: Decimal, entry_price: Decimal, baseline: Decimal
    ) -> WakeLevels | None:
        """:meth:`market_wake_levels` for inverse contracts, from the last account snapshot.

        The bot's own ledger is linear (its realized PnL is not coin), so the coin figures come
        from the venue: headroom = half the limit + (balance - baseline), the balance holding
        realized PnL, fees and funding in coin; entry is the venue's (harmonic) entry. Solving
        ``N * M * (1/E - 1/P) = -headroom`` gives ``1/P = 1/E + headroom / (N * M)``. A short
        loses at most ``|N| * M / E`` however high the price goes, so if that is within the
        headroom no level exists. None (wake on every update) while the bot's position or entry
        differs from what it was when this snapshot was first used: fills the snapshot has not
        seen yet (until the next account read).
        """
        snapshot = self._last_snapshot
        if snapshot is None:
            return None
        basis = self._inverse_basis
        if basis is None or basis[0] is not snapshot:
            basis = self._inverse_basis = (snapshot, position, entry_price)
        if basis[1] != position or basis[2] != entry_price:
            return None
        held = [p for p in snapshot.positions if p.size != 0]
        if len(held) > 1 or (held[0].size if held else _ZERO) != position:
            return None
        headroom = baseline * self.loss_pct / (2 * _HUNDRED) + (snapshot.balance - baseline)
        if headroom <= 0:
            return None
        if position == 0:
            return _UNBOUNDED
        assert self.inverse_multiplier is not None
        reciprocal = 1 / held[0].entry_price + headroom / (position * self.inverse_multiplier)
        if reciprocal <= 0:
            return _UNBOUNDED
        level = 1 / reciprocal
        return WakeLevels(bid_low=level) if position > 0 else WakeLevels(ask_high=level)

    def seconds_until_stall(self) -> float:
        """Clock seconds until the stall check would fire with no further market data."""
        return max(0.0, self._last_market_data_at + self.stall_seconds - self._clock.now())

    # -- console -------------------------------------------------------------------------------

    def status(self) -> dict[str, str]:
        """A one-glance summary for the console: strings only, so it prints as it is."""
        if not self.enabled:
            return {"risk": "disabled"}
        snapshot = self._last_snapshot
        drawdown = self._drawdown_pct(snapshot)
        if self._loss_checks_enabled:
            loss_checks = "on"
        else:
            loss_checks = f"off ({self._loss_checks_off_reason})"
        return {
            "risk": "enabled",
            "baseline_equity": str(self.baseline_equity) if self.baseline_equity is not None else "n/a",
            "last_equity": str(snapshot.equity) if snapshot is not None else "n/a",
            "drawdown_pct": str(drawdown.quantize(_CENT)) if drawdown is not None else "n/a",
            "consecutive_failures": f"{self.consecutive_failures}/{self.max_consecutive_failures}",
            "snapshot_failures": (
                f"{self.snapshot_failures} total, {self.consecutive_snapshot_failures} in a row"
            ),
            "market_data_age_s": f"{max(0.0, self._clock.now() - self._last_market_data_at):.1f}",
            "loss_checks": loss_checks,
        }
