"""Delta-neutral funding-rate arbitrage across two venues.

The same size is held long on the venue whose funding rate is lower and short on the venue
whose rate is higher: the price moves cancel, and the difference of the two rates is collected
(longs pay the rate when it is positive, shorts receive it). Venues settle at different intervals
(Lighter hourly, many others every 8 h), so every rate is first normalised to a fraction of
notional **per hour** (:func:`hourly_rate`); parameters are given in percent per year (APR),
and logs show both.

A pair goes through four states, kept in the first venue's journal so a restart adopts it:

* ``idle``: every ``check_interval`` seconds the rates are read and ranked; a pair opens when
  the spread, net of both venues' fees and the measured crossing cost of entering and leaving
  (spread over ``expected_hold_hours``), reaches ``entry_apr``;
* ``entering``: both legs are sent at once as limit orders at the touch. A leg that has not
  filled within ``leg_timeout`` seconds (or was refused) is cancelled and completed at market
  within the slippage bound; if that fails too, the filled size is unwound;
* ``open``: exit rules are checked each interval, each logged with its reason: the spread
  flipped or decayed below ``exit_apr``; ``max_hold_hours`` passed; the legs differ by more than
  ``max_imbalance_pct``. (No connector reports a liquidation price yet, so a liquidation-distance
  rule cannot be evaluated; the risk manager's loss limits, on the first venue's account, close
  both legs through the orchestrator.);
* ``exiting``: both legs are closed at market (reduce-only), wider bounds on refusal.

Orders and fills belong to each venue's execution layer (``self.venues[i].execution``); the
strategy reads leg sizes from them and keeps only its pair's decisions and accounting.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from exchanges.base import ExchangeError, FundingRate, OrderSide, OrderType
from execution.records import ExecutionEvent, ExecutionEventKind
from helpers.rounding import round_down
from strategies.base_strategy import (
    BaseStrategy,
    MarketData,
    OrderParams,
    OrderRole,
    ParameterSpec,
    StrategyAction,
    StrategyResult,
    at_least,
    between,
    greater_than,
    parse_decimal,
    parse_float,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
HOURS_PER_YEAR = Decimal(24 * 365)
#: Journal key (first venue) holding the open pair, for restarts.
PAIR_META_KEY = "funding_pair"
#: Slippage bounds tried when closing a leg, as multiples of the configured one.
CLOSE_STEPS = (1, 2, 4)


# ---------------------------------------------------------------------------------------------
# Pure arithmetic (unit-tested on its own)
# ---------------------------------------------------------------------------------------------


def hourly_rate(rate: FundingRate) -> Decimal:
    """A venue's funding rate as a fraction of notional per hour (its interval normalised)."""
    if rate.interval_hours <= 0:
        raise ValueError(f"funding interval must be positive, got {rate.interval_hours}")
    return rate.rate / rate.interval_hours


def to_apr_pct(per_hour: Decimal) -> Decimal:
    """Fraction per hour as percent per year (simple, not compounded)."""
    return per_hour * HOURS_PER_YEAR * HUNDRED


def from_apr_pct(apr_pct: Decimal) -> Decimal:
    return apr_pct / HUNDRED / HOURS_PER_YEAR


@dataclass(frozen=True)
class Opportunity:
    """Long on ``long_venue`` (the lower rate), short on ``short_venue`` (the higher one)."""

    long_venue: int
    short_venue: int
    #: What the pair collects per hour, as a fraction of one leg's notional (short minus long).
    gross_per_hour: Decimal
    #: The same, less the entry and exit cost spread over the expected holding time.
    net_per_hour: Decimal
    cost_fraction: Decimal

    def describe(self) -> str:
        return (
            f"long venue {self.long_venue} / short venue {self.short_venue}: gross "
            f"{self.gross_per_hour * HUNDRED:.6f} %/h ({to_apr_pct(self.gross_per_hour):.2f} % APR), "
            f"net {to_apr_pct(self.net_per_hour):.2f} % APR after costs {self.cost_fraction * HUNDRED:.4f} %"
        )


def spread_per_hour(hourly: list[Decimal], long_venue: int, short_venue: int) -> Decimal:
    """Funding collected per hour by a pair: the short receives its rate, the long pays its."""
    return hourly[short_venue] - hourly[long_venue]


def round_trip_cost(half_spreads: list[Decimal], fees: list[Decimal]) -> Decimal:
    """Entering and leaving both legs by crossing the spread: twice (half spread + taker fee)
    on each venue, as a fraction of one leg's notional."""
    return 2 * sum((h + f for h, f in zip(half_spreads, fees, strict=True)), ZERO)


def rank(
    hourly: list[Decimal], half_spreads: list[Decimal], fees: list[Decimal], hold_hours: Decimal
) -> Opportunity:
    """The better orientation of the two venues: long where the rate is lower."""
    cost = round_trip_cost(half_spreads, fees)
    best: Opportunity | None = None
    for long_venue in range(len(hourly)):
        for short_venue in range(len(hourly)):
            if long_venue == short_venue:
                continue
            gross = spread_per_hour(hourly, long_venue, short_venue)
            option = Opportunity(long_venue, short_venue, gross, gross - cost / hold_hours, cost)
            if best is None or option.net_per_hour > best.net_per_hour:
                best = option
    assert best is not None, "ranking needs at least two venues"
    return best


def common_step(a: Decimal, b: Decimal) -> Decimal:
    """The smallest size that is a multiple of both venues' size steps."""
    exponent = max(-a.as_tuple().exponent, -b.as_tuple().exponent, 0)  # type: ignore[operator]
    scale = Decimal(10) ** exponent
    units = math.lcm(int(a * scale), int(b * scale))
    return (Decimal(units) / scale).normalize()


def leg_size(quantity: Decimal, max_notional: Decimal, price: Decimal, steps: list[Decimal]) -> Decimal:
    """Target size of each leg: the quantity, capped by the maximum notional, rounded down to a
    multiple of every venue's step (so both legs can be exactly equal)."""
    step = steps[0]
    for other in steps[1:]:
        step = common_step(step, other)
    size = min(quantity, max_notional / price) if price > 0 else quantity
    return round_down(size, step) if size >= step else ZERO


# ---------------------------------------------------------------------------------------------
# The pair
# ---------------------------------------------------------------------------------------------


class PairState(enum.Enum):
    IDLE = "idle"
    ENTERING = "entering"
    OPEN = "open"
    EXITING = "exiting"


@dataclass
class Pair:
    """One delta-neutral pair and its accounting baselines (serialised into the journal)."""

    long_venue: int
    short_venue: int
    size: str
    state: str
    opened_at: float
    entry_apr: str = "0"
    #: Escalation of each leg's entry: 0 limit at the touch, 1 market, 2 gave up.
    attempts: list[int] = field(default_factory=lambda: [0, 0])
    legs_sent_at: float = 0.0
    exit_reason: str = ""
    exit_attempts: int = 0
    #: Per venue at the start of the pair: funding received so far, fees and realized PnL.
    funding_base: list[str] = field(default_factory=lambda: ["0", "0"])
    fees_base: list[str] = field(default_factory=lambda: ["0", "0"])
    realized_base: list[str] = field(default_factory=lambda: ["0", "0"])

    def target(self) -> Decimal:
        return Decimal(self.size)

    def side_of(self, venue: int) -> OrderSide:
        return OrderSide.BUY if venue == self.long_venue else OrderSide.SELL

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Pair:
        return cls(**json.loads(text))


@dataclass
class LegAccount:
    """What one leg of one pair brought: funding received (negative: paid), fees, realized PnL."""

    funding: Decimal = ZERO
    fees: Decimal = ZERO
    realized: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.funding - self.fees + self.realized


class FundingArbitrageStrategy(BaseStrategy):
    """Long the lower funding rate, short the higher, same size on two venues."""

    REQUIRED_VENUES: ClassVar[int] = 2

    PARAMETERS: ClassVar[tuple[ParameterSpec, ...]] = (
        ParameterSpec(
            "entry_apr",
            parse_decimal,
            Decimal("10"),
            "open a pair when the funding spread net of costs reaches this, percent per year (APR)",
            check=greater_than(Decimal(0)),
        ),
        ParameterSpec(
            "exit_apr",
            parse_decimal,
            Decimal("1"),
            "close the pair when its gross funding spread falls below this (a flip is negative), "
            "percent per year",
        ),
        ParameterSpec(
            "expected_hold_hours",
            parse_decimal,
            Decimal("24"),
            "hours over which the entry and exit cost is spread when judging an entry",
            check=greater_than(Decimal(0)),
        ),
        ParameterSpec(
            "max_notional",
            parse_decimal,
            Decimal("1000"),
            "maximum exposure per leg in quote currency; --quantity (base units) is the target leg size",
            check=greater_than(Decimal(0)),
        ),
        ParameterSpec(
            "fee_pct",
            parse_decimal,
            Decimal("0.02"),
            "taker fee of the first venue, percent per fill",
            check=between(Decimal(0), Decimal(1)),
        ),
        ParameterSpec(
            "hedge_fee_pct",
            parse_decimal,
            Decimal("0.02"),
            "taker fee of the second venue, percent per fill",
            check=between(Decimal(0), Decimal(1)),
        ),
        ParameterSpec(
            "leg_timeout",
            parse_float,
            10.0,
            "seconds a leg may stay unfilled before it is completed at market (or the pair unwound)",
            check=greater_than(0.0),
        ),
        ParameterSpec(
            "max_hold_hours",
            parse_decimal,
            Decimal("72"),
            "close the pair after this many hours",
            check=greater_than(Decimal(0)),
        ),
        ParameterSpec(
            "max_imbalance_pct",
            parse_decimal,
            Decimal("5"),
            "close the pair when the legs differ by more than this, percent of the leg size",
            check=at_least(Decimal(0)),
        ),
        ParameterSpec(
            "min_liquidation_distance",
            parse_decimal,
            Decimal("5"),
            "close the pair when a leg's liquidation price (where its venue reports one) is nearer "
            "than this, PERCENT of the mid price",
            check=at_least(Decimal(0)),
        ),
        ParameterSpec(
            "check_interval",
            parse_float,
            60.0,
            "seconds between funding-rate reads (and exit checks) while nothing is in flight",
            check=greater_than(0.0),
        ),
    )

    def get_strategy_name(self) -> str:
        return "funding_arbitrage"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        params = self.params
        self.entry_per_hour = from_apr_pct(params["entry_apr"])
        self.exit_per_hour = from_apr_pct(params["exit_apr"])
        self.hold_hours: Decimal = params["expected_hold_hours"]
        self.max_notional: Decimal = params["max_notional"]
        self.fees = [params["fee_pct"] / HUNDRED, params["hedge_fee_pct"] / HUNDRED]
        self.leg_timeout: float = params["leg_timeout"]
        self.max_hold_seconds = float(params["max_hold_hours"]) * 3600.0
        self.max_imbalance_pct: Decimal = params["max_imbalance_pct"]
        self.check_interval: float = params["check_interval"]
        self.min_liquidation_distance: Decimal = params["min_liquidation_distance"]
        #: Each leg's liquidation price (None where the venue reports none) and mid, last read.
        self.last_liquidation: list[Decimal | None] = []
        self.last_mids: list[Decimal] = []
        self.pair: Pair | None = None
        self._next_check = 0.0
        self._seen_version: tuple[int, ...] = ()
        self.last_rates: list[FundingRate] = []
        self.last_opportunity: Opportunity | None = None
        self._logged_hourly: list[Decimal] = []
        #: Funding received so far per venue (account figure, read each check).
        self._funding_now = [ZERO, ZERO]
        #: Pairs closed in this run (and earlier ones, from the journal): per-leg accounts.
        self.closed_pairs: list[tuple[str, list[LegAccount]]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self) -> None:
        await super().initialize()
        if len(self.venues) != 2:
            raise ExchangeError(f"funding arbitrage needs two venues, got {len(self.venues)}")

    async def on_ready(self) -> None:
        """Adopt a pair from the journal and the venues' positions (after reconciliation)."""
        await self._read_funding()
        sizes = self._leg_sizes()
        saved = self.journal.get_meta(PAIR_META_KEY)
        if saved:
            try:
                pair: Pair | None = Pair.from_json(saved)
            except (ValueError, TypeError) as exc:
                logger.warning("journaled pair unreadable (%s); rebuilding it from the positions", exc)
                pair = None
        else:
            pair = None
        if all(size == 0 for size in sizes):
            if pair is not None:
                logger.info("the journaled pair has no position left on either venue: closed while away")
                self._set_pair(None)
            return
        if pair is None:
            long_venue = 0 if sizes[0] > 0 or sizes[1] < 0 else 1
            pair = Pair(
                long_venue=long_venue,
                short_venue=1 - long_venue,
                size=str(max(abs(s) for s in sizes)),
                state=PairState.OPEN.value,
                opened_at=self.clock.now(),
                funding_base=[str(f) for f in self._funding_now],
                fees_base=[str(v.execution.ledger.fees) for v in self.venues],
                realized_base=[str(v.execution.ledger.realized_pnl) for v in self.venues],
            )
        state = PairState(pair.state)
        if state is PairState.OPEN and not self._balanced(pair, sizes):
            state = PairState.ENTERING
        if state is PairState.ENTERING:
            pair.legs_sent_at = self.clock.now()  # the timeout runs from now; no leg is live
        pair.state = state.value
        self._set_pair(pair)
        logger.info(
            "adopted a %s pair from the journal and the venues: long %s on venue %d, short %s on venue %d",
            state.value,
            sizes[pair.long_venue],
            pair.long_venue,
            sizes[pair.short_venue],
            pair.short_venue,
        )

    # -- helpers -----------------------------------------------------------------------------

    @property
    def journal(self) -> Any:
        return self.venues[0].execution.journal

    def _leg_sizes(self) -> list[Decimal]:
        """Each venue's position (signed), as this bot's execution layers hold it."""
        return [venue.execution.position for venue in self.venues]

    def _step(self) -> Decimal:
        steps = [v.contract.size_step for v in self.venues if v.contract is not None]
        return max(steps) if steps else ZERO

    def _balanced(self, pair: Pair, sizes: list[Decimal]) -> bool:
        """Both legs at the target within one size step, on the right sides."""
        target, step = pair.target(), self._step()
        return abs(sizes[pair.long_venue] - target) <= step and abs(sizes[pair.short_venue] + target) <= step

    def _set_pair(self, pair: Pair | None) -> None:
        self.pair = pair
        self.journal.set_meta(PAIR_META_KEY, pair.to_json() if pair is not None else "")

    def _note(self, kind: str, detail: dict[str, Any]) -> None:
        self.journal.note(self.clock.now(), kind, json.dumps(detail, sort_keys=True, default=str))

    def _engines_version(self) -> tuple[int, ...]:
        return tuple(v.execution.version for v in self.venues)

    async def _read_funding(self) -> None:
        """Funding received so far per venue (the account's figure), noting changes per leg."""
        for index, venue in enumerate(self.venues):
            try:
                snapshot = await venue.client.get_account_snapshot()
            except ExchangeError as exc:
                logger.warning("venue %d: no account snapshot for funding (%s)", index, exc)
                continue
            received = -snapshot.funding_paid
            if received != self._funding_now[index] and self.pair is not None:
                self._note(
                    "funding",
                    {"venue": index, "received": received - self._funding_now[index], "total": received},
                )
            self._funding_now[index] = received

    async def _books(self) -> list[tuple[Decimal, Decimal]]:
        return [await v.client.fetch_bbo_prices(self.venue_contract_id(i)) for i, v in enumerate(self.venues)]

    def leg_accounts(self, pair: Pair) -> list[LegAccount]:
        """Each leg's funding, fees and realized PnL since the pair opened."""
        accounts = []
        for index, venue in enumerate(self.venues):
            ledger = venue.execution.ledger
            accounts.append(
                LegAccount(
                    funding=self._funding_now[index] - Decimal(pair.funding_base[index]),
                    fees=ledger.fees - Decimal(pair.fees_base[index]),
                    realized=ledger.realized_pnl - Decimal(pair.realized_base[index]),
                )
            )
        return accounts

    # -- the decision loop -------------------------------------------------------------------

    async def should_execute(self, market_data: MarketData) -> bool:
        """Due when the check interval has passed, or when an order changed while a pair is
        being entered or closed."""
        if self.clock.now() >= self._next_check:
            return True
        pair = self.pair
        if pair is None or pair.state == PairState.OPEN.value:
            return False
        return self._engines_version() != self._seen_version or self._leg_timed_out(pair)

    def seconds_until_next_decision(self) -> float | None:
        now = self.clock.now()
        due = self._next_check - now
        pair = self.pair
        if pair is not None and pair.state == PairState.ENTERING.value:
            due = min(due, pair.legs_sent_at + self.leg_timeout - now)
        return max(0.0, due)

    def _leg_timed_out(self, pair: Pair) -> bool:
        return (
            pair.state == PairState.ENTERING.value
            and self.clock.now() >= pair.legs_sent_at + self.leg_timeout
        )

    async def execute_strategy(self, market_data: MarketData) -> StrategyResult:
        now = self.clock.now()
        self._seen_version = self._engines_version()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            await self._read_funding()
            if self.pair is None or self.pair.state == PairState.OPEN.value:
                try:
                    await self._read_rates()
                except ExchangeError as exc:
                    logger.warning("funding rates unavailable: %s", exc)
                    return StrategyResult(StrategyAction.NONE)
        # A step that changes the state (entering -> open or exiting) hands over at once.
        for _ in range(3):
            pair = self.pair
            before = pair.state if pair is not None else None
            result = await self._decide(pair)
            after = self.pair.state if self.pair is not None else None
            if result.action is not StrategyAction.NONE or after == before or after is None:
                return result
        return result

    async def _decide(self, pair: Pair | None) -> StrategyResult:
        if pair is None:
            return await self._consider_entry()
        state = PairState(pair.state)
        if state is PairState.ENTERING:
            return await self._entering(pair)
        if state is PairState.OPEN:
            return self._check_exit(pair)
        return await self._exiting(pair)

    async def _read_rates(self) -> None:
        self.last_rates = [
            await venue.client.get_funding_rate(self.venue_contract_id(index))
            for index, venue in enumerate(self.venues)
        ]
        books = await self._books()
        half_spreads = [(ask - bid) / (ask + bid) for bid, ask in books]
        self.last_mids = [(bid + ask) / 2 for bid, ask in books]
        if self.pair is not None:
            self.last_liquidation = [
                (await venue.client.get_position(self.venue_contract_id(index))).liquidation_price
                for index, venue in enumerate(self.venues)
            ]
        hourly = [hourly_rate(rate) for rate in self.last_rates]
        self.last_opportunity = rank(hourly, half_spreads, self.fees, self.hold_hours)
        changed = hourly != self._logged_hourly
        self._logged_hourly = hourly
        logger.log(
            logging.INFO if changed else logging.DEBUG,
            "funding: venue 0 %.6f %%/h (%.2f %% APR, every %s h), "
            "venue 1 %.6f %%/h (%.2f %% APR, every %s h); best %s",
            hourly[0] * HUNDRED,
            to_apr_pct(hourly[0]),
            self.last_rates[0].interval_hours,
            hourly[1] * HUNDRED,
            to_apr_pct(hourly[1]),
            self.last_rates[1].interval_hours,
            self.last_opportunity.describe(),
        )

    # -- entry -------------------------------------------------------------------------------

    async def _consider_entry(self) -> StrategyResult:
        opportunity = self.last_opportunity
        if opportunity is None or self.entries_blocked is not None:
            return StrategyResult(StrategyAction.NONE)
        if opportunity.net_per_hour < self.entry_per_hour:
            return StrategyResult(StrategyAction.NONE, message="spread below the entry threshold")
        books = await self._books()
        mid = max((bid + ask) / 2 for bid, ask in books)
        steps = [v.contract.size_step for v in self.venues if v.contract is not None]
        size = leg_size(self.config.quantity, self.max_notional, mid, steps)
        minimums = [v.contract.min_size for v in self.venues if v.contract is not None]
        if size <= 0 or size < max(minimums):
            logger.warning("leg size %s is below a venue's minimum; no pair", size)
            self._next_check = self.clock.now() + self.check_interval
            return StrategyResult(StrategyAction.NONE)
        now = self.clock.now()
        pair = Pair(
            long_venue=opportunity.long_venue,
            short_venue=opportunity.short_venue,
            size=str(size),
            state=PairState.ENTERING.value,
            opened_at=now,
            entry_apr=f"{to_apr_pct(opportunity.net_per_hour):.4f}",
            legs_sent_at=now,
            funding_base=[str(f) for f in self._funding_now],
            fees_base=[str(v.execution.ledger.fees) for v in self.venues],
            realized_base=[str(v.execution.ledger.realized_pnl) for v in self.venues],
        )
        self._set_pair(pair)
        self._note("pair_entering", {"long": pair.long_venue, "short": pair.short_venue, "size": size})
        logger.info("opening a pair of %s: %s", size, opportunity.describe(), extra={"notify": "entry"})
        orders = []
        for venue in (pair.long_venue, pair.short_venue):
            side = pair.side_of(venue)
            bid, ask = books[venue]
            orders.append(
                OrderParams(
                    side=side,
                    quantity=size,
                    price=ask if side is OrderSide.BUY else bid,  # at the touch: fills at once
                    order_type=OrderType.LIMIT,
                    post_only=False,
                    role=OrderRole.ENTRY,
                    venue=venue,
                )
            )
        return StrategyResult(StrategyAction.PLACE_ORDERS, orders=orders, message="pair entry")

    async def _entering(self, pair: Pair) -> StrategyResult:
        """Both legs sent: wait, complete the lagging leg at market, or unwind."""
        sizes = self._leg_sizes()
        if self._balanced(pair, sizes):
            pair.state = PairState.OPEN.value
            self._set_pair(pair)
            self._note("pair_open", {"long": pair.long_venue, "short": pair.short_venue, "size": pair.size})
            logger.info(
                "pair open: long %s on venue %d, short on venue %d",
                pair.size,
                pair.long_venue,
                pair.short_venue,
            )
            return StrategyResult(StrategyAction.NONE)
        if self.entries_blocked is not None:
            return self._start_exit(pair, f"entry interrupted ({self.entries_blocked})")
        timed_out = self._leg_timed_out(pair)
        orders: list[OrderParams] = []
        cancels: list[str] = []
        for venue in (pair.long_venue, pair.short_venue):
            engine = self.venues[venue].execution
            live = engine.active_orders(OrderRole.ENTRY)
            missing = pair.target() - abs(sizes[venue])
            if missing <= 0:
                continue
            if live:
                if timed_out:
                    cancels.extend(r.client_order_id for r in live if r.cancel_requested_at is None)
                continue  # wait for the fill, or for the cancel to be confirmed
            if pair.attempts[venue] >= 1:
                filled = [abs(s) for s in sizes]
                return self._start_exit(
                    pair, f"hedge failed: venue {venue} leg not completed (legs {filled[0]} / {filled[1]})"
                )
            pair.attempts[venue] += 1
            logger.warning(
                "venue %d leg short by %s after %s: completing it at market",
                venue,
                missing,
                "the timeout" if timed_out else "a refusal (or an unfilled rest)",
            )
            orders.append(
                OrderParams(
                    side=pair.side_of(venue),
                    quantity=missing,
                    order_type=OrderType.MARKET,
                    post_only=False,
                    role=OrderRole.ENTRY,
                    venue=venue,
                )
            )
        if cancels:
            return StrategyResult(
                StrategyAction.CANCEL_ORDERS, cancel_client_ids=cancels, message="leg timeout"
            )
        if orders:
            self._set_pair(pair)
            return StrategyResult(StrategyAction.PLACE_ORDERS, orders=orders, message="completing the hedge")
        return StrategyResult(StrategyAction.NONE)

    # -- exit --------------------------------------------------------------------------------

    def _check_exit(self, pair: Pair) -> StrategyResult:
        """The exit rules, in order; the first that holds closes the pair."""
        sizes = self._leg_sizes()
        now = self.clock.now()
        if all(size == 0 for size in sizes):
            return self._finish(pair, "both legs closed (by the risk manager or by hand)")
        tolerance = pair.target() * self.max_imbalance_pct / HUNDRED
        imbalance = abs(sizes[0] + sizes[1])
        if imbalance > max(tolerance, self._step()):
            return self._start_exit(pair, f"leg imbalance {imbalance} beyond the tolerance {tolerance}")
        if now - pair.opened_at >= self.max_hold_seconds:
            return self._start_exit(
                pair, f"maximum holding time of {self.max_hold_seconds / 3600:g} h reached"
            )
        near = self._liquidation_too_near()
        if near:
            return self._start_exit(pair, near)
        if self.last_rates:
            hourly = [hourly_rate(rate) for rate in self.last_rates]
            spread = spread_per_hour(hourly, pair.long_venue, pair.short_venue)
            if spread < self.exit_per_hour:
                what = "flipped" if spread < 0 else "decayed"
                return self._start_exit(
                    pair,
                    f"funding spread {what} to {to_apr_pct(spread):.2f} % APR "
                    f"(exit below {to_apr_pct(self.exit_per_hour):.2f} %)",
                )
        return StrategyResult(StrategyAction.NONE)

    def _liquidation_too_near(self) -> str:
        """Why a leg is too close to its liquidation price ("" when none is, or none is known)."""
        for index, (liquidation, mid) in enumerate(zip(self.last_liquidation, self.last_mids, strict=False)):
            if liquidation is None or mid <= 0:
                continue
            distance = abs(mid - liquidation) / mid * HUNDRED
            if distance < self.min_liquidation_distance:
                return (
                    f"venue {index} leg is {distance:.2f} % from its liquidation price {liquidation} "
                    f"(limit {self.min_liquidation_distance} %)"
                )
        return ""

    def _start_exit(self, pair: Pair, reason: str) -> StrategyResult:
        pair.state = PairState.EXITING.value
        pair.exit_reason = reason
        pair.exit_attempts = 0
        self._set_pair(pair)
        self._note("pair_exiting", {"reason": reason})
        logger.warning("closing the pair: %s", reason, extra={"notify": "exit"})
        return StrategyResult(StrategyAction.NONE, message=reason)

    async def _exiting(self, pair: Pair) -> StrategyResult:
        """Close both legs at market (reduce-only); wider bounds after a refusal."""
        orders: list[OrderParams] = []
        cancels: list[str] = []
        busy = False
        for index, venue in enumerate(self.venues):
            engine = venue.execution
            for record in engine.active_orders(OrderRole.ENTRY):
                busy = True
                if record.cancel_requested_at is None:
                    cancels.append(record.client_order_id)
            if engine.active_orders(OrderRole.EXIT) or engine.in_flight():
                busy = True
                continue
            lots = engine.uncovered_lots()
            if not lots or engine.position == 0:
                continue
            size = sum((lot.size for lot in lots), ZERO)
            step = CLOSE_STEPS[min(pair.exit_attempts, len(CLOSE_STEPS) - 1)]
            orders.append(
                OrderParams(
                    side=lots[0].side.opposite,
                    quantity=min(size, abs(engine.position)),
                    order_type=OrderType.MARKET,
                    post_only=False,
                    reduce_only=True,
                    role=OrderRole.EXIT,
                    max_slippage_pct=self.config.max_slippage_pct * step,
                    covers=tuple(lot.lot_id for lot in lots),
                    venue=index,
                )
            )
        if cancels:
            return StrategyResult(
                StrategyAction.CANCEL_ORDERS, cancel_client_ids=cancels, message=pair.exit_reason
            )
        if orders:
            pair.exit_attempts += 1
            self._set_pair(pair)
            return StrategyResult(StrategyAction.PLACE_ORDERS, orders=orders, message=pair.exit_reason)
        if not busy and all(size == 0 for size in self._leg_sizes()):
            return self._finish(pair, pair.exit_reason)
        return StrategyResult(StrategyAction.NONE)

    def _finish(self, pair: Pair, reason: str) -> StrategyResult:
        accounts = self.leg_accounts(pair)
        detail = {
            "reason": reason,
            "long": pair.long_venue,
            "short": pair.short_venue,
            "size": pair.size,
            "held_seconds": round(self.clock.now() - pair.opened_at, 3),
            "legs": [
                {"funding": a.funding, "fees": a.fees, "realized": a.realized, "net": a.net} for a in accounts
            ],
            "net": sum((a.net for a in accounts), ZERO),
        }
        self._note("pair_closed", detail)
        logger.info(
            "pair closed (%s): funding %s, fees %s, realized %s, net %s",
            reason,
            sum((a.funding for a in accounts), ZERO),
            sum((a.fees for a in accounts), ZERO),
            sum((a.realized for a in accounts), ZERO),
            detail["net"],
        )
        self.closed_pairs.append((reason, accounts))
        self._set_pair(None)
        self._next_check = self.clock.now() + self.check_interval  # no instant re-entry
        return StrategyResult(StrategyAction.NONE, message=reason)

    # -- events and reporting ----------------------------------------------------------------

    async def on_execution_event(self, event: ExecutionEvent) -> None:
        if event.kind is ExecutionEventKind.REFUSED and self.pair is not None:
            logger.info("pair order refused: %s (%s)", event.order.describe(), event.error)

    def status_summary(self) -> dict[str, str]:
        status: dict[str, str] = {"state": self.pair.state if self.pair else PairState.IDLE.value}
        if self.last_rates:
            hourly = [hourly_rate(rate) for rate in self.last_rates]
            status["funding rates"] = ", ".join(
                f"venue {i} {to_apr_pct(h):.2f} % APR (every {r.interval_hours} h)"
                for i, (h, r) in enumerate(zip(hourly, self.last_rates, strict=True))
            )
        pairs = list(self.closed_pairs)
        if self.pair is not None:
            held = (self.clock.now() - self.pair.opened_at) / 3600
            pairs.append((f"{self.pair.state} for {held:.2f} h", self.leg_accounts(self.pair)))
        for number, (reason, accounts) in enumerate(pairs, 1):
            legs = "; ".join(
                f"venue {i}: funding {a.funding:.4f}, fees {a.fees:.4f}, realized {a.realized:.4f}"
                for i, a in enumerate(accounts)
            )
            status[f"pair {number}"] = f"{legs}; net {sum((a.net for a in accounts), ZERO):.4f} ({reason})"
        return status
