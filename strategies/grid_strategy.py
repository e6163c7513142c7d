"""The grid strategy: rest one maker entry, and close every fill with a take-profit order.

A trader of this bot family knows the cycle: a post-only entry rests one tick inside the opposite
best price; each fill (partial or full) gets a reduce-only take-profit a fixed percent away; a
cool-down that grows with the number of resting take-profits spaces the entries, so a trending
market does not stack the whole ``max_orders`` budget at one price. Optional rules: a minimum
distance between take-profits (grid step), a stop price, a pause price, market closes (boost),
and randomised timing and profit targets.

Everything here is a decision over state the strategy keeps from order events; the bot does the
sending. Only fill events (or order states read back from the venue) create take-profits, and an
ambiguous answer from the venue is reconciled, never read as "no order".
"""

from __future__ import annotations

import enum
import itertools
import logging
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from exchanges.base import (
    BaseExchangeClient,
    ExchangeError,
    Fill,
    NetworkError,
    OrderBelowMinimum,
    OrderInfo,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PostOnlyRejected,
    RateLimitExceeded,
)
from helpers.clock import Clock
from helpers.rounding import round_down, round_up
from helpers.trading_config import TradingConfig
from strategies.base_strategy import (
    BaseStrategy,
    MarketData,
    OrderParams,
    OrderRole,
    ParameterSpec,
    StrategyAction,
    StrategyResult,
    WakeLevels,
    at_least,
    between,
    greater_than,
    parse_bool,
    parse_decimal,
    parse_float,
    parse_int,
    parse_side,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
_INFINITY = Decimal("Infinity")
_MINUS_INFINITY = Decimal("-Infinity")

#: Seconds to hold off after a refused order (other than post-only) before trying again.
FAILURE_BACKOFF_SECONDS = 1.0
#: Seconds between attempts to find an order whose placement outcome was ambiguous.
RECONCILE_INTERVAL_SECONDS = 1.0
#: Listings without the order before an ambiguous placement is taken as "never arrived".
RECONCILE_ATTEMPTS = 3
#: Ended entries remembered so late fill events still find their order.
ENDED_ENTRIES_KEPT = 256
#: Key in OrderParams.metadata linking an order the bot sends back to our record of it.
REF_KEY = "grid_ref"


class EntryState(enum.Enum):
    SENDING = "sending"  # handed to the bot, answer not yet in
    RESTING = "resting"  # the venue acknowledged it
    UNKNOWN = "unknown"  # the answer was ambiguous: find out before doing anything else


class CloseState(enum.Enum):
    WAITING = "waiting"  # filled size waiting to be sent (possibly after a back-off)
    SENDING = "sending"
    UNKNOWN = "unknown"
    ACTIVE = "active"  # acknowledged by the venue (resting take-profit or market close)


@dataclass
class _Lot:
    """Filled size not yet handed to a close order, with its notional for the average price."""

    size: Decimal = ZERO
    notional: Decimal = ZERO

    def add(self, size: Decimal, price: Decimal) -> None:
        self.size += size
        self.notional += size * price

    def take(self) -> _Lot:
        taken = _Lot(self.size, self.notional)
        self.size = ZERO
        self.notional = ZERO
        return taken

    @property
    def price(self) -> Decimal:
        return self.notional / self.size


@dataclass(eq=False)
class _Entry:
    ref: int
    side: OrderSide
    price: Decimal
    size: Decimal
    state: EntryState
    order_id: str | None = None
    client_order_id: str | None = None
    filled: Decimal = ZERO
    stale: bool = False  # left over from an earlier run: cancelled, never re-used
    ended: bool = False
    cancel_requested: bool = False
    cancel_not_before: float = 0.0
    verify: bool = False  # read the order back from the venue at the next decision
    not_before: float = 0.0
    reconcile_attempts: int = 0

    def describe(self) -> str:
        return f"{self.side.value} {self.size} @ {self.price} (id {self.order_id or self.client_order_id})"


@dataclass(eq=False)
class _Close:
    ref: int
    side: OrderSide
    size: Decimal
    entry_price: Decimal
    target_price: Decimal
    take_profit_pct: Decimal
    market: bool
    state: CloseState = CloseState.WAITING
    price: Decimal | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    filled: Decimal = ZERO
    last_rejected_price: Decimal | None = None
    not_before: float = 0.0
    reconcile_attempts: int = 0

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.size - self.filled)

    def describe(self) -> str:
        kind = "market close" if self.market else "take-profit"
        where = "" if self.market else f" @ {self.price or self.target_price}"
        return (
            f"{kind} {self.side.value} {self.remaining}{where} (id {self.order_id or self.client_order_id})"
        )


@dataclass
class _Decision:
    """What the next step would do; built without side effects so should_execute can ask too."""

    result: StrategyResult
    closes: list[tuple[_Close, OrderParams]] = field(default_factory=list)
    entry: OrderParams | None = None
    cancels: list[_Entry] = field(default_factory=list)


def _as_decimal(value: Any) -> Decimal | None:
    """Parameters given programmatically may be floats or ints; prices must be exact Decimals."""
    if value is None or isinstance(value, Decimal):
        return value
    return parse_decimal(str(value))


def _none_or_decimal(text: str) -> Decimal | None:
    if str(text).strip().lower() in ("", "none", "off"):
        return None
    return parse_decimal(text)


class GridStrategy(BaseStrategy):
    """Maker entries, one take-profit per fill, cool-down scaled by the resting take-profits."""

    PARAMETERS: ClassVar[tuple[ParameterSpec, ...]] = (
        ParameterSpec(
            "take_profit",
            parse_decimal,
            Decimal("0.02"),
            "take-profit distance in PERCENT of the fill price (0.02 means 0.02 percent, not 2 percent)",
            check=greater_than(0),
        ),
        ParameterSpec(
            "direction",
            parse_side,
            OrderSide.BUY,
            "side of the entry orders: buy (long grid, sells to take profit) or sell (short grid)",
        ),
        ParameterSpec(
            "max_orders",
            parse_int,
            40,
            "maximum number of resting take-profit orders; no new entry at this count",
            check=at_least(1),
        ),
        ParameterSpec(
            "wait_time",
            parse_float,
            450.0,
            "base cool-down in SECONDS after an entry fills; x2, x1, x1/2 or x1/4 depending on how "
            "full the take-profit budget is (>= 2/3, >= 1/3, >= 1/6, less)",
            check=at_least(0),
        ),
        ParameterSpec(
            "grid_step",
            parse_decimal,
            Decimal("-100"),
            "minimum distance in PERCENT between a new take-profit and the nearest resting one "
            "(0.06 means 0.06 percent); negative disables",
        ),
        ParameterSpec(
            "stop_price",
            _none_or_decimal,
            None,
            "stop the bot when the market reaches this price (buy: best ask >= it; sell: best bid <= it)",
            check=greater_than(0),
        ),
        ParameterSpec(
            "pause_price",
            _none_or_decimal,
            None,
            "no new entries while the market is beyond this price (buy: best ask >= it; sell: best "
            "bid <= it); take-profits are still managed",
            check=greater_than(0),
        ),
        ParameterSpec(
            "boost",
            parse_bool,
            False,
            "close each fill at once with a reduce-only MARKET order instead of a resting take-profit",
            is_flag=True,
        ),
        ParameterSpec(
            "random_timing",
            parse_bool,
            False,
            "multiply each cool-down by a random factor (see timing_range)",
            is_flag=True,
        ),
        ParameterSpec(
            "timing_range",
            parse_decimal,
            Decimal("0.5"),
            "FRACTION 0-1: with random_timing the cool-down is multiplied by uniform [1-r, 1+r]",
            check=between(0, 1),
        ),
        ParameterSpec(
            "dynamic_profit",
            parse_bool,
            False,
            "draw each take-profit percent at random (see profit_range)",
            is_flag=True,
        ),
        ParameterSpec(
            "profit_range",
            parse_decimal,
            Decimal("0.5"),
            "FRACTION 0-1: with dynamic_profit the take-profit is uniform within take_profit x [1-r, 1+r]",
            check=between(0, 1),
        ),
        ParameterSpec(
            "requote_ticks",
            parse_int,
            10,
            "cancel and re-place an unfilled entry once the market is more than this many TICKS away from it",
            check=at_least(1),
        ),
        ParameterSpec(
            "seed",
            parse_int,
            0,
            "random seed for random_timing and dynamic_profit, so runs are reproducible",
        ),
    )

    def __init__(self, config: TradingConfig, exchange_client: BaseExchangeClient, clock: Clock) -> None:
        super().__init__(config, exchange_client, clock)
        params = self.params
        direction = params["direction"]
        self.direction: OrderSide = direction if isinstance(direction, OrderSide) else parse_side(direction)
        self.close_side = self.direction.opposite
        self.take_profit_pct: Decimal = _as_decimal(params["take_profit"])
        self.max_orders = int(params["max_orders"])
        self.wait_time = float(params["wait_time"])
        self.grid_step_pct: Decimal = _as_decimal(params["grid_step"])
        self.stop_price = _as_decimal(params["stop_price"])
        self.pause_price = _as_decimal(params["pause_price"])
        self.boost = bool(params["boost"])
        self.random_timing = bool(params["random_timing"])
        self.timing_range = _as_decimal(params["timing_range"])
        self.dynamic_profit = bool(params["dynamic_profit"])
        self.profit_range = _as_decimal(params["profit_range"])
        self.requote_ticks = int(params["requote_ticks"])
        seed = int(params["seed"])
        # Separate streams, so switching one feature on does not change the other's draws.
        self._timing_rng = random.Random(f"grid-timing-{seed}")
        self._profit_rng = random.Random(f"grid-profit-{seed}")

        self.entry_size = ZERO
        self.completed_cycles = 0
        self.realized_profit = ZERO

        self._refs = itertools.count(1)
        self._entry: _Entry | None = None
        self._stale: list[_Entry] = []
        self._ended: OrderedDict[int, _Entry] = OrderedDict()
        self._closes: list[_Close] = []
        self._by_order_id: dict[str, _Entry | _Close] = {}
        self._by_client_id: dict[str, _Entry | _Close] = {}
        self._sending: dict[int, _Entry | _Close] = {}
        self._lot = _Lot()
        self._dust = _Lot()  # refused as below the venue minimum: joins the next fill
        self._cooldown_started: float | None = None
        self._cooldown_factor = 1.0
        self._entry_not_before = 0.0
        self._refused_entry_price: Decimal | None = None
        self._refusal: str | None = None
        self._stop_message: str | None = None
        self._pause_reason: str | None = None
        self._hold_key: str | None = None
        self._hold_text = ""
        # Views of the state kept as it changes, so a decision does not rescan every record:
        # the number of non-market closes (the grid's ``n``); whether any close may be WAITING
        # to be sent, and whether any record may need a look-up (UNKNOWN state or ``verify``).
        # The flags are only ever cleared by a scan that finds no such record.
        self._limit_closes = 0
        self._closes_may_wait = False
        self._may_reconcile = False
        self._take_profit_factor = self._factor(self.take_profit_pct)
        # should_execute's decision, reused by execute_strategy when nothing changed in between.
        self._changes = 0
        self._prepared: tuple[MarketData, float, int, _Decision] | None = None

    def get_strategy_name(self) -> str:
        return "grid"

    # -- start-up ----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Resolve the market, check the order size, adopt our live orders (cool-down if any).

        Errors listing our orders propagate: assuming "no orders" after a failure would place
        duplicates of every take-profit a restart should have found.
        """
        self._changes += 1
        await super().initialize()
        contract = self.contract
        assert contract is not None
        self.entry_size = round_down(self.config.quantity, contract.size_step)
        if self.entry_size != self.config.quantity:
            logger.info(
                "quantity %s rounded down to the size step %s: %s",
                self.config.quantity,
                contract.size_step,
                self.entry_size,
            )
        orders = await self.exchange_client.get_active_orders(self.contract_id)
        self._adopt_existing_orders(orders)
        if self.entry_size < contract.min_size or self.entry_size <= 0:
            self._refuse(
                f"quantity {self.entry_size} is below the minimum order size {contract.min_size} "
                f"of {contract.ticker}"
            )
        elif contract.min_notional > 0:
            best_bid, best_ask = await self.exchange_client.fetch_bbo_prices(self.contract_id)
            self._check_entry_notional(self.entry_price(best_bid, best_ask))
        if self._closes:
            # A restart that found its take-profits waits like after a fill: no burst.
            self._start_cooldown("start-up with resting take-profits")
        logger.info(
            "grid %s %s: quantity %s, take-profit %s %%, max %d orders, wait %s s, grid step %s %%%s",
            self.direction.value,
            contract.ticker,
            self.entry_size,
            self.take_profit_pct,
            self.max_orders,
            self.wait_time,
            self.grid_step_pct,
            " (boost: market closes)" if self.boost else "",
        )

    def _adopt_existing_orders(self, orders: list[OrderInfo]) -> None:
        """Close-side orders are our take-profits from an earlier run; open-side ones are stale."""
        for info in orders:
            if not info.status.is_active:
                continue
            if info.side is self.close_side:
                close = _Close(
                    ref=next(self._refs),
                    side=info.side,
                    size=info.size,
                    entry_price=self._implied_entry_price(info.price),
                    target_price=info.price,
                    take_profit_pct=self.take_profit_pct,
                    market=info.order_type is OrderType.MARKET,
                    state=CloseState.ACTIVE,
                    price=info.price,
                    order_id=info.order_id,
                    client_order_id=info.client_order_id,
                    filled=info.filled_size,
                )
                self._add_close(close)
                self._index(close)
                logger.info("adopted resting %s", close.describe())
            else:
                entry = _Entry(
                    ref=next(self._refs),
                    side=info.side,
                    price=info.price,
                    size=info.size,
                    state=EntryState.RESTING,
                    order_id=info.order_id,
                    client_order_id=info.client_order_id,
                    filled=info.filled_size,
                    stale=True,
                )
                self._stale.append(entry)
                self._index(entry)
                logger.info("found stale entry %s from an earlier run: cancelling it", entry.describe())
                if entry.filled > 0:
                    logger.warning(
                        "stale entry %s had filled %s before the restart; only its resting "
                        "take-profits (adopted above) cover that",
                        entry.order_id,
                        entry.filled,
                    )

    def _refuse(self, reason: str) -> None:
        self._refusal = f"refusing to trade: {reason}"
        logger.error(self._refusal)

    def _check_entry_notional(self, price: Decimal) -> bool:
        contract = self.contract
        assert contract is not None
        notional = self.entry_size * price
        if notional < contract.min_notional:
            self._refuse(
                f"order value {notional} (quantity {self.entry_size} x {price}) is below the minimum "
                f"notional {contract.min_notional} of {contract.ticker}"
            )
            return False
        return True

    # -- prices ------------------------------------------------------------------------------

    @property
    def tick(self) -> Decimal:
        assert self.contract is not None
        return self.contract.tick_size

    def entry_price(self, best_bid: Decimal, best_ask: Decimal) -> Decimal:
        """One tick inside the opposite best price: rests as maker at (or near) the front."""
        if self.direction is OrderSide.BUY:
            return round_down(best_ask - self.tick, self.tick)
        return round_up(best_bid + self.tick, self.tick)

    def take_profit_price(self, fill_price: Decimal, take_profit_pct: Decimal) -> Decimal:
        """Fill price moved by the take-profit percent, rounded AWAY from the fill."""
        # The configured percent's factor is worked out once (the same Decimal every time).
        factor = self._take_profit_factor if take_profit_pct is self.take_profit_pct else None
        if factor is None:
            factor = self._factor(take_profit_pct)
        if self.direction is OrderSide.BUY:
            return round_up(fill_price * factor, self.tick)
        return round_down(fill_price * factor, self.tick)

    def _factor(self, take_profit_pct: Decimal) -> Decimal:
        """What a fill price is multiplied by for its take-profit: 1 ± pct / 100."""
        if self.direction is OrderSide.BUY:
            return 1 + take_profit_pct / HUNDRED
        return 1 - take_profit_pct / HUNDRED

    def _implied_entry_price(self, take_profit_price: Decimal) -> Decimal:
        """Best guess of an adopted take-profit's entry, for the profit estimate only."""
        if self.direction is OrderSide.BUY:
            return take_profit_price / (1 + self.take_profit_pct / HUNDRED)
        return take_profit_price / (1 - self.take_profit_pct / HUNDRED)

    def _draw_take_profit_pct(self) -> Decimal:
        """The configured percent, or (dynamic_profit) uniform within tp x [1-r, 1+r]."""
        if not self.dynamic_profit:
            return self.take_profit_pct
        draw = Decimal(repr(self._profit_rng.random()))
        factor = 1 - self.profit_range + 2 * self.profit_range * draw
        return (self.take_profit_pct * factor).quantize(Decimal("1e-8"))

    def close_order_price(self, close: _Close, market: MarketData) -> Decimal:
        """The take-profit target, unless the market is already beyond it.

        Then the order goes to the touch on its own side (best ask for a sell), never worse than
        the target, and after a post-only rejection at least one tick beyond the refused price
        so a stale book cannot make us repeat the same refused order.
        """
        tick = self.tick
        price = close.target_price
        if close.side is OrderSide.SELL:
            if close.last_rejected_price is not None:
                price = max(price, close.last_rejected_price + tick)
            if market.best_bid >= price:
                price = max(price, round_up(market.best_ask, tick), market.best_bid + tick)
        else:
            if close.last_rejected_price is not None:
                price = min(price, close.last_rejected_price - tick)
            if market.best_ask <= price:
                price = min(price, round_down(market.best_bid, tick), market.best_ask - tick)
        return price

    # -- counting and timing rules -----------------------------------------------------------

    def active_take_profit_count(self) -> int:
        """Resting take-profits plus those on their way (they will rest): the grid's ``n``."""
        return self._limit_closes

    def cooldown_duration(self, active: int) -> float:
        """Base cool-down for ``active`` take-profits: fuller budget, longer wait."""
        limit = self.max_orders
        if 3 * active >= 2 * limit:
            return 2 * self.wait_time
        if 3 * active >= limit:
            return self.wait_time
        if 6 * active >= limit:
            return self.wait_time / 2
        return self.wait_time / 4

    def cooldown_remaining(self, now: float) -> float:
        if self._cooldown_started is None:
            return 0.0
        duration = self.cooldown_duration(self._limit_closes) * self._cooldown_factor
        return max(0.0, self._cooldown_started + duration - now)

    def _start_cooldown(self, why: str) -> None:
        self._cooldown_started = self.clock.now()
        self._cooldown_factor = 1.0
        if self.random_timing:
            spread = float(self.timing_range)
            self._cooldown_factor = self._timing_rng.uniform(1 - spread, 1 + spread)
        if logger.isEnabledFor(logging.INFO):
            active = self._limit_closes
            logger.info(
                "cool-down %.1f s after %s (%d of %d take-profits resting)",
                self.cooldown_duration(active) * self._cooldown_factor,
                why,
                active,
                self.max_orders,
            )

    def _reset_cooldown(self, why: str) -> None:
        if self._cooldown_started is not None:
            logger.info("cool-down cleared: %s", why)
        self._cooldown_started = None

    # -- market rules ------------------------------------------------------------------------

    def stop_reason(self, market: MarketData) -> str | None:
        if self.stop_price is None:
            return None
        if self.direction is OrderSide.BUY and market.best_ask >= self.stop_price:
            return f"stop price reached: best ask {market.best_ask} >= stop_price {self.stop_price}"
        if self.direction is OrderSide.SELL and market.best_bid <= self.stop_price:
            return f"stop price reached: best bid {market.best_bid} <= stop_price {self.stop_price}"
        return None

    def pause_reason(self, market: MarketData) -> str | None:
        if self.pause_price is None:
            return None
        if self.direction is OrderSide.BUY and market.best_ask >= self.pause_price:
            return f"best ask {market.best_ask} >= pause_price {self.pause_price}"
        if self.direction is OrderSide.SELL and market.best_bid <= self.pause_price:
            return f"best bid {market.best_bid} <= pause_price {self.pause_price}"
        return None

    def _track_pause(self, market: MarketData) -> bool:
        reason = self.pause_reason(market)
        if reason != self._pause_reason:
            if reason:
                logger.info("paused (no new entries, take-profits still managed): %s", reason)
            else:
                logger.info("resumed: market back from the pause price %s", self.pause_price)
            self._pause_reason = reason
        return reason is not None

    def grid_step_conflict(self, entry_price: Decimal) -> Decimal | None:
        """The resting take-profit price a new entry's take-profit would sit too close to, if any."""
        if self.grid_step_pct < 0:
            return None
        prices = [close.price or close.target_price for close in self._closes if not close.market]
        if not prices:
            return None
        prospective = self.take_profit_price(entry_price, self.take_profit_pct)
        nearest = min(prices, key=lambda price: abs(price - prospective))
        gap_pct = abs(prospective - nearest) / nearest * HUNDRED
        return nearest if gap_pct < self.grid_step_pct else None

    def requote_due(self, entry: _Entry, market: MarketData) -> bool:
        """An unfilled entry the market has left by more than ``requote_ticks`` ticks."""
        limit = self.requote_ticks * self.tick
        if entry.side is OrderSide.BUY:
            return market.best_bid - entry.price > limit
        return entry.price - market.best_ask > limit

    def _note_hold(self, key: str | None, text: str = "") -> None:
        """Log why entries are held, once per change of reason rather than every tick."""
        if key == self._hold_key:
            return
        self._hold_key = key
        self._hold_text = text
        if text:
            logger.info("no new entry: %s", text)

    # -- decisions ---------------------------------------------------------------------------

    async def should_execute(self, market_data: MarketData) -> bool:
        now = self.clock.now()
        if self._reconcile_targets(now):
            self._prepared = None
            return True
        decision = self._decide(market_data)
        # Kept for execute_strategy: the same market data at the same time with no order event
        # or decision in between gives the same decision, so it is not worked out twice.
        self._prepared = (market_data, now, self._changes, decision)
        return decision.result.action is not StrategyAction.NONE

    async def execute_strategy(self, market_data: MarketData) -> StrategyResult:
        now = self.clock.now()
        prepared, self._prepared = self._prepared, None
        targets = self._reconcile_targets(now)
        if targets:
            await self._reconcile(targets, now)
            prepared = None
        if (
            prepared is not None
            and prepared[0] is market_data
            and prepared[1] == now
            and prepared[2] == self._changes
        ):
            decision = prepared[3]
        else:
            decision = self._decide(market_data)
        self._commit(decision, market_data)
        return decision.result

    def seconds_until_next_decision(self) -> float | None:
        now = self.clock.now()
        waits: list[float] = []
        cooldown = self.cooldown_remaining(now)
        if cooldown > 0 and self._entry is None and self._limit_closes < self.max_orders:
            waits.append(cooldown)
        deadlines = [self._entry_not_before]
        if self._closes_may_wait or self._may_reconcile:
            deadlines += [
                c.not_before for c in self._closes if c.state in (CloseState.WAITING, CloseState.UNKNOWN)
            ]
        if self._entry is not None or self._stale:
            for entry in self._live_entries():
                deadlines.append(entry.cancel_not_before)
                if entry.state is EntryState.UNKNOWN or entry.verify:
                    deadlines.append(entry.not_before)
        waits += [deadline - now for deadline in deadlines if deadline > now]
        return min(waits) if waits else None

    def market_wake_levels(self) -> WakeLevels | None:
        """The quotes that could change :meth:`_decide`'s answer before the next timer or event.

        Mirrors ``_decide`` rule by rule: the stop price, the pause price, the requote distance
        of the resting entry and, while a grid-step conflict holds entries back, the band of
        quotes in which the same take-profit stays in the way. Anything due at once (a close to
        send, a lookup, an entry ready to go) answers None: wake on every update.
        """
        if self.contract is None or self._refusal or self._stop_message:
            return None
        now = self.clock.now()
        if self._reconcile_targets(now):
            return None
        if self._closes_due(now):
            return None
        if any(e.order_id and not e.cancel_requested and e.cancel_not_before <= now for e in self._stale):
            return None
        # The bounds are narrowed as WakeLevels.narrowed would (max of lows, min of highs), in
        # locals, and built into one WakeLevels at the end.
        bid_low, bid_high, ask_low, ask_high = _MINUS_INFINITY, _INFINITY, _MINUS_INFINITY, _INFINITY
        buy = self.direction is OrderSide.BUY
        stop = self.stop_price
        if stop is not None:
            if buy:
                ask_high = stop
            else:
                bid_low = stop
        pause = self.pause_price
        if pause is not None:
            # Paused while beyond the pause price: watch for the way back, else for getting there.
            paused = self._pause_reason is not None
            if buy:
                if paused:
                    ask_low = max(ask_low, pause)
                else:
                    ask_high = min(ask_high, pause)
            elif paused:
                bid_high = min(bid_high, pause)
            else:
                bid_low = max(bid_low, pause)
        entry = self._entry
        if entry is not None:
            if entry.state is EntryState.RESTING and entry.order_id and entry.filled == 0:
                limit = self.requote_ticks * self.tick
                if entry.side is OrderSide.BUY:
                    bid_high = min(bid_high, entry.price + limit)
                else:
                    ask_low = max(ask_low, entry.price - limit)
            return WakeLevels(bid_low, bid_high, ask_low, ask_high)
        if (
            self._stale
            or self._pause_reason is not None
            or now < self._entry_not_before
            or self.cooldown_remaining(now) > 0
            or self._limit_closes >= self.max_orders
        ):
            return WakeLevels(bid_low, bid_high, ask_low, ask_high)
        band = self._grid_step_band()
        return None if band is None else WakeLevels(bid_low, bid_high, ask_low, ask_high).narrowed(band)

    def _grid_step_band(self) -> WakeLevels | None:
        """Quotes for which a new entry keeps conflicting with the same resting take-profit.

        Entries are held back only by this conflict here (every other rule has passed), so the
        band is where the hold cannot end. Worked from the take-profit price interval in which
        that take-profit is both the nearest one and closer than ``grid_step`` %, shrunk by a
        tick on each side and checked exactly at both ends, so rounding can only make it
        narrower. None when no conflict holds (the entry is ready) or the band is unsure.
        """
        hold = self._hold_key or ""
        if not hold.startswith("grid_step:"):
            return None
        tick = self.tick
        buy = self.direction is OrderSide.BUY
        nearest = Decimal(hold.partition(":")[2])
        prices = sorted({close.price or close.target_price for close in self._closes if not close.market})
        if nearest not in prices:
            return None
        index = prices.index(nearest)
        step = self.grid_step_pct / HUNDRED
        tp_low = nearest - nearest * step
        tp_high = nearest + nearest * step
        if index > 0:
            tp_low = max(tp_low, (prices[index - 1] + nearest) / 2)
        if index + 1 < len(prices):
            tp_high = min(tp_high, (nearest + prices[index + 1]) / 2)
        factor = 1 + self.take_profit_pct / HUNDRED if buy else 1 - self.take_profit_pct / HUNDRED
        entry_low = round_up(tp_low / factor, tick) + 2 * tick
        entry_high = round_down(tp_high / factor, tick) - 2 * tick
        if entry_low > entry_high:
            return None
        if self.grid_step_conflict(entry_low) != nearest or self.grid_step_conflict(entry_high) != nearest:
            return None
        if buy:  # entry = round_down(ask - tick): in [low, high] while ask in [low + tick, high + 2 tick)
            return WakeLevels(ask_low=entry_low + tick, ask_high=entry_high + 2 * tick)
        # entry = round_up(bid + tick): in [low, high] while bid in (low - 2 tick, high - tick]
        return WakeLevels(bid_low=entry_low - 2 * tick, bid_high=entry_high - tick)

    def _decide(self, market: MarketData) -> _Decision:
        """Priority: closing filled size, refusal or stop, cancels, then a new entry."""
        now = self.clock.now()
        paused = self._track_pause(market)
        closes = [(close, self._close_params(close, market)) for close in self._closes_due(now)]
        if closes:
            return _Decision(
                StrategyResult(
                    StrategyAction.PLACE_ORDERS,
                    orders=[params for _, params in closes],
                    message=f"closing {len(closes)} filled lot(s)",
                ),
                closes=closes,
            )
        stop = self._refusal or self._stop_message or self.stop_reason(market)
        if stop:
            uncovered = self._uncovered_size()
            if uncovered > 0:
                stop += f" ({uncovered} filled size not yet covered by a take-profit)"
            return _Decision(StrategyResult(StrategyAction.STOP, message=stop))
        cancels = self._cancels_due(market, now)
        if cancels:
            return _Decision(
                StrategyResult(
                    StrategyAction.CANCEL_ORDERS,
                    cancel_order_ids=[entry.order_id for entry in cancels if entry.order_id],
                    message="cancelling stale or requoted entries",
                ),
                cancels=cancels,
            )
        entry = self._entry_params(market, now, paused)
        if entry is None:
            return _Decision(StrategyResult(StrategyAction.NONE))
        if not self._meets_entry_notional(entry.price):
            contract = self.contract
            assert contract is not None
            message = (
                f"refusing to trade: order value {self.entry_size * entry.price} is below the minimum "
                f"notional {contract.min_notional}"
            )
            return _Decision(StrategyResult(StrategyAction.STOP, message=message))
        return _Decision(
            StrategyResult(StrategyAction.PLACE_ORDERS, orders=[entry], message="grid entry"),
            entry=entry,
        )

    def _meets_entry_notional(self, price: Decimal | None) -> bool:
        assert self.contract is not None and price is not None
        return self.entry_size * price >= self.contract.min_notional

    def _cancels_due(self, market: MarketData, now: float) -> list[_Entry]:
        due = [
            entry
            for entry in self._stale
            if entry.order_id and not entry.cancel_requested and entry.cancel_not_before <= now
        ]
        entry = self._entry
        if (
            entry is not None
            and entry.state is EntryState.RESTING
            and entry.order_id
            and entry.filled == 0
            and not entry.cancel_requested
            and not entry.verify
            and entry.cancel_not_before <= now
            and self.requote_due(entry, market)
        ):
            due.append(entry)
        return due

    def _entry_params(self, market: MarketData, now: float, paused: bool) -> OrderParams | None:
        """A new entry if every rule allows one right now, else None (noting why)."""
        if self._entry is not None or self._stale:
            return None
        if paused:
            return None
        if now < self._entry_not_before or self.cooldown_remaining(now) > 0:
            return None
        active = self._limit_closes
        if active >= self.max_orders:
            self._note_hold("max_orders", f"{active} take-profits resting, max_orders is {self.max_orders}")
            return None
        price = self.entry_price(market.best_bid, market.best_ask)
        conflict = self.grid_step_conflict(price)
        if conflict is not None:
            prospective = self.take_profit_price(price, self.take_profit_pct)
            self._note_hold(
                f"grid_step:{conflict}",
                f"take-profit {prospective} of an entry at {price} would be within grid_step "
                f"{self.grid_step_pct} % of the resting take-profit at {conflict}",
            )
            return None
        return OrderParams(
            side=self.direction,
            quantity=self.entry_size,
            price=price,
            order_type=OrderType.LIMIT,
            post_only=True,
            reduce_only=False,
            role=OrderRole.ENTRY,
            metadata={REF_KEY: next(self._refs)},
        )

    def _close_params(self, close: _Close, market: MarketData) -> OrderParams:
        if close.market:
            return OrderParams(
                side=close.side,
                quantity=close.remaining,
                order_type=OrderType.MARKET,
                post_only=False,
                reduce_only=True,
                role=OrderRole.EXIT,
                max_slippage_pct=self.config.max_slippage_pct,
                metadata={REF_KEY: close.ref},
            )
        return OrderParams(
            side=close.side,
            quantity=close.remaining,
            price=self.close_order_price(close, market),
            order_type=OrderType.LIMIT,
            post_only=True,
            reduce_only=True,
            role=OrderRole.EXIT,
            metadata={REF_KEY: close.ref},
        )

    def _commit(self, decision: _Decision, market: MarketData) -> None:
        """Record what the bot is about to send, so its answers find their records."""
        self._changes += 1
        result = decision.result
        log = logger.isEnabledFor(logging.INFO)  # the messages' arguments cost more than a check
        for close, params in decision.closes:
            close.state = CloseState.SENDING
            close.price = params.price
            self._sending[close.ref] = close
            if not log:
                continue
            if close.market:
                logger.info(
                    "closing %s %s at market (filled @ %s)",
                    close.side.value,
                    params.quantity,
                    _fmt(close.entry_price),
                )
            elif params.price != close.target_price:
                logger.info(
                    "take-profit %s %s re-priced from target %s to %s (bid %s / ask %s)",
                    close.side.value,
                    params.quantity,
                    close.target_price,
                    params.price,
                    market.best_bid,
                    market.best_ask,
                )
            else:
                logger.info("placing take-profit %s %s @ %s", close.side.value, params.quantity, params.price)
        for entry in decision.cancels:
            entry.cancel_requested = True
            if not log:
                continue
            if entry.stale:
                logger.info("cancelling stale entry %s", entry.describe())
            else:
                logger.info(
                    "requote: entry %s left behind by the market (bid %s / ask %s, more than %d ticks)",
                    entry.describe(),
                    market.best_bid,
                    market.best_ask,
                    self.requote_ticks,
                )
        if decision.entry is not None:
            params = decision.entry
            assert params.price is not None
            entry = _Entry(
                ref=params.metadata[REF_KEY],
                side=params.side,
                price=params.price,
                size=params.quantity,
                state=EntryState.SENDING,
            )
            self._entry = entry
            self._sending[entry.ref] = entry
            self._note_hold(None)
            if log:
                logger.info(
                    "placing entry %s %s @ %s (bid %s / ask %s)",
                    entry.side.value,
                    entry.size,
                    entry.price,
                    market.best_bid,
                    market.best_ask,
                )
        if result.action is StrategyAction.STOP and self._stop_message is None:
            self._stop_message = result.message
            logger.warning("stopping: %s", result.message)

    # -- answers to what we sent -------------------------------------------------------------

    async def on_order_placed(self, order: OrderParams, result: OrderResult) -> None:
        self._changes += 1
        record = self._sending.pop(order.metadata.get(REF_KEY, -1), None)
        if record is None:
            return
        record.client_order_id = order.client_order_id
        if result.order_id:
            record.order_id = result.order_id
        self._index(record)
        ambiguous = result.status is OrderStatus.UNKNOWN or not result.order_id
        refused = result.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)
        if isinstance(record, _Entry):
            if ambiguous:
                self._mark_unknown(record, result.error_message)
            elif refused and result.filled_size == 0:
                logger.warning("entry %s came back %s: ready again", record.describe(), result.status.value)
                self._end_entry(record, result.status)
            else:
                record.state = EntryState.RESTING
                self._refused_entry_price = None
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("entry accepted: %s", record.describe())
            return
        if ambiguous:
            self._mark_unknown(record, result.error_message)
        elif refused and result.filled_size == 0:
            logger.warning("%s came back %s: will re-place it", record.describe(), result.status.value)
            self._requeue(record, rejected_price=record.price)
        else:
            record.state = CloseState.ACTIVE
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s accepted", record.describe())

    async def on_order_failed(self, order: OrderParams, error: ExchangeError) -> None:
        self._changes += 1
        record = self._sending.pop(order.metadata.get(REF_KEY, -1), None)
        if record is None:
            return
        now = self.clock.now()
        if isinstance(error, NetworkError) and not isinstance(error, RateLimitExceeded):
            # The request may have reached the venue: look for it by our client id.
            record.client_order_id = order.client_order_id
            self._index(record)
            self._mark_unknown(record, f"{type(error).__name__}: {error}")
            return
        backoff = FAILURE_BACKOFF_SECONDS
        if isinstance(error, RateLimitExceeded) and error.retry_after:
            backoff = error.retry_after
        if isinstance(record, _Entry):
            self._entry = None
            if isinstance(error, PostOnlyRejected):
                if record.price == self._refused_entry_price:
                    # Refused twice at one price: our book is stale; give it time to catch up.
                    self._entry_not_before = now + FAILURE_BACKOFF_SECONDS
                self._refused_entry_price = record.price
                logger.info("entry %s @ %s refused as post-only: re-pricing", record.size, record.price)
            elif isinstance(error, OrderBelowMinimum):
                self._refuse(f"the venue refused the entry as below its minimum: {error}")
            else:
                self._entry_not_before = now + backoff
                logger.warning(
                    "entry %s @ %s failed (%s: %s)", record.size, record.price, type(error).__name__, error
                )
            return
        if isinstance(error, PostOnlyRejected):
            record.last_rejected_price = order.price
            record.state = CloseState.WAITING
            self._closes_may_wait = True
            logger.info(
                "take-profit %s @ %s refused as post-only: re-pricing toward the touch",
                record.remaining,
                order.price,
            )
        elif isinstance(error, OrderBelowMinimum):
            self._drop_close(record)
            self._dust.add(record.remaining, record.entry_price)
            logger.warning(
                "close of %s refused as below the venue minimum (%s): it joins the next fill",
                record.remaining,
                error,
            )
        else:
            record.state = CloseState.WAITING
            self._closes_may_wait = True
            record.not_before = now + backoff
            logger.error(
                "close of %s failed (%s: %s): size still tracked, retrying in %.1f s",
                record.remaining,
                type(error).__name__,
                error,
                backoff,
            )

    async def on_cancel_result(
        self, order_id: str, result: OrderResult | None, error: ExchangeError | None
    ) -> None:
        self._changes += 1
        entry = self._by_order_id.get(order_id)
        if not isinstance(entry, _Entry) or entry.ended:
            return
        entry.cancel_requested = False
        now = self.clock.now()
        if error is None and result is not None and result.success and result.status.is_final:
            self._end_entry(entry, result.status)
            return
        if error is None and result is not None and result.success:
            # Accepted but not yet confirmed: read it back rather than guess.
            entry.cancel_requested = True
            self._verify(entry, now + RECONCILE_INTERVAL_SECONDS)
            return
        if isinstance(error, OrderNotFound):
            # Gone already: filled or cancelled. Queued events come first; then read it back.
            self._verify(entry, now)
            return
        entry.cancel_not_before = now + FAILURE_BACKOFF_SECONDS
        if isinstance(error, NetworkError):
            self._verify(entry, now)
        logger.warning("cancel of entry %s did not complete: %s", entry.describe(), error or result)

    # -- order events ------------------------------------------------------------------------

    async def on_order_update(self, update: OrderUpdate) -> None:
        self._changes += 1
        info = update.order
        record = self._lookup(info.order_id, info.client_order_id)
        if record is None:
            logger.debug("update for an order that is not ours to manage: %s", info.order_id)
            return
        if info.order_id and record.order_id != info.order_id:
            record.order_id = info.order_id
            self._index(record)
        if isinstance(record, _Entry):
            self._apply_entry_update(record, info, update.fill)
        else:
            self._apply_close_update(record, info, update.fill)

    @staticmethod
    def _new_fill(seen: Decimal, info: OrderInfo, fill: Fill | None) -> tuple[Decimal, Decimal] | None:
        """Size and price filled since we last looked; cumulative sizes make duplicates harmless."""
        size = info.filled_size - seen
        if size <= 0:
            return None
        if fill is not None:
            return size, fill.price
        return size, info.average_fill_price or info.price

    def _apply_entry_update(self, entry: _Entry, info: OrderInfo, fill: Fill | None) -> None:
        was_verifying = entry.verify
        entry.verify = False
        new = self._new_fill(entry.filled, info, fill)
        if new is not None:
            size, price = new
            entry.filled += size
            logger.info(
                "entry %s filled %s @ %s (%s of %s)",
                entry.order_id,
                size,
                price,
                entry.filled,
                entry.size,
            )
            self.on_entry_fill(size, price)
        if entry.ended:
            self._release_lot(force=True)
        elif info.status.is_final:
            self._end_entry(entry, info.status)
        else:
            if entry.state is EntryState.UNKNOWN:
                logger.info("entry found on the venue: %s", entry.describe())
            entry.state = EntryState.RESTING
            if was_verifying:
                entry.cancel_requested = False  # still resting: the cancel did not take
            if new is not None:
                self._release_lot(force=False)

    def on_entry_fill(self, size: Decimal, price: Decimal) -> None:
        """Every filled piece joins the lot to be closed (with any refused dust)."""
        self._changes += 1
        if self._dust.size > 0:
            dust = self._dust.take()
            self._lot.add(dust.size, dust.price)
        self._lot.add(size, price)

    def _release_lot(self, force: bool) -> None:
        """Turn the filled lot into a close order once it meets the venue minimum, or when forced."""
        lot = self._lot
        if lot.size <= 0:
            return
        if not force and not self._meets_minimum(
            lot.size, self.take_profit_price(lot.price, self.take_profit_pct)
        ):
            logger.info("filled %s is below the venue minimum: accumulating before the take-profit", lot.size)
            return
        taken = lot.take()
        self._new_close(taken.size, taken.price)

    def _meets_minimum(self, size: Decimal, price: Decimal) -> bool:
        contract = self.contract
        assert contract is not None
        return size >= contract.min_size and size * price >= contract.min_notional

    def _new_close(self, size: Decimal, entry_price: Decimal) -> _Close:
        pct = self._draw_take_profit_pct()
        target = self.take_profit_price(entry_price, pct)
        close = _Close(
            ref=next(self._refs),
            side=self.close_side,
            size=size,
            entry_price=entry_price,
            target_price=target,
            take_profit_pct=pct,
            market=self.boost,
        )
        self._add_close(close)
        self._closes_may_wait = True  # a new close starts WAITING
        if not logger.isEnabledFor(logging.INFO):
            pass
        elif self.boost:
            logger.info("boost: %s filled @ %s will be closed at market", size, _fmt(entry_price))
        else:
            logger.info(
                "take-profit for %s filled @ %s: %s%s %% -> %s",
                size,
                _fmt(entry_price),
                "+" if self.direction is OrderSide.BUY else "-",
                pct,
                target,
            )
        return close

    def _end_entry(self, entry: _Entry, status: OrderStatus) -> None:
        if entry.ended:
            return
        entry.ended = True
        entry.cancel_requested = False
        entry.verify = False
        if entry is self._entry:
            self._entry = None
        if entry in self._stale:
            self._stale.remove(entry)
        self._ended[entry.ref] = entry
        while len(self._ended) > ENDED_ENTRIES_KEPT:
            _, old = self._ended.popitem(last=False)
            self._forget(old)
        if logger.isEnabledFor(logging.INFO):
            logger.info("entry %s ended (%s), %s filled", entry.describe(), status.value, entry.filled)
        self._release_lot(force=True)
        if status is OrderStatus.FILLED:
            self._start_cooldown(f"entry {entry.order_id} filled")

    def _apply_close_update(self, close: _Close, info: OrderInfo, fill: Fill | None) -> None:
        if close.state in (CloseState.UNKNOWN, CloseState.SENDING):
            if logger.isEnabledFor(logging.INFO):
                logger.info("found on the venue: %s", close.describe())
            close.state = CloseState.ACTIVE
        if not close.market:
            close.price = info.price
        new = self._new_fill(close.filled, info, fill)
        if new is not None:
            size, price = new
            close.filled += size
            profit = (price - close.entry_price) * size * self.direction.sign
            self.realized_profit += profit
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "%s filled %s @ %s (profit estimate %s)",
                    "market close" if close.market else "take-profit",
                    size,
                    price,
                    _fmt(profit),
                )
        status = info.status
        if status is OrderStatus.FILLED:
            self._remove_close(close)
            self.completed_cycles += 1
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "cycle %d complete; realized estimate %s",
                    self.completed_cycles,
                    _fmt(self.realized_profit),
                )
            if not close.market:
                self._reset_cooldown("a take-profit filled")
        elif status is OrderStatus.CANCELLED and not close.market:
            self._remove_close(close)
            if close.remaining > 0:
                logger.warning(
                    "take-profit %s was cancelled outside the strategy: %s stays uncovered",
                    close.order_id,
                    close.remaining,
                )
        elif status.is_final:
            if close.remaining > 0:
                logger.warning("%s ended %s: re-placing the rest", close.describe(), status.value)
                rejected = close.price if status is OrderStatus.REJECTED and not close.market else None
                self._requeue(close, rejected_price=rejected)
            else:
                self._remove_close(close)
        elif close.state is CloseState.UNKNOWN:
            close.state = CloseState.ACTIVE

    def _requeue(self, close: _Close, rejected_price: Decimal | None) -> None:
        """Put a close's unfilled rest back in line: filled size is never dropped."""
        self._forget(close)
        close.size = close.remaining
        close.filled = ZERO
        close.order_id = None
        close.client_order_id = None
        close.state = CloseState.WAITING
        self._closes_may_wait = True
        close.last_rejected_price = rejected_price
        close.reconcile_attempts = 0

    def _remove_close(self, close: _Close) -> None:
        if close in self._closes:
            self._drop_close(close)
        self._forget(close)

    def _add_close(self, close: _Close) -> None:
        self._closes.append(close)
        if not close.market:
            self._limit_closes += 1

    def _drop_close(self, close: _Close) -> None:
        self._closes.remove(close)
        if not close.market:
            self._limit_closes -= 1

    def _closes_due(self, now: float) -> list[_Close]:
        """Closes WAITING to be sent whose back-off (if any) has passed, in order."""
        if not self._closes_may_wait:
            return []
        due = []
        waiting = False
        for close in self._closes:
            if close.state is CloseState.WAITING:
                waiting = True
                if close.not_before <= now:
                    due.append(close)
        self._closes_may_wait = waiting
        return due

    # -- ambiguity and reconciliation --------------------------------------------------------

    def _mark_unknown(self, record: _Entry | _Close, why: str | None) -> None:
        self._may_reconcile = True
        record.reconcile_attempts = 0
        record.not_before = self.clock.now()
        if isinstance(record, _Entry):
            record.state = EntryState.UNKNOWN
        else:
            record.state = CloseState.UNKNOWN
        logger.warning(
            "outcome of %s is unknown (%s): will look it up", record.describe(), why or "no answer"
        )

    def _verify(self, entry: _Entry, when: float) -> None:
        self._may_reconcile = True
        entry.verify = True
        entry.not_before = when

    def _live_entries(self) -> list[_Entry]:
        return ([self._entry] if self._entry is not None else []) + list(self._stale)

    def _reconcile_targets(self, now: float) -> list[_Entry | _Close]:
        """Records to look up now: live entries that are UNKNOWN or to verify, then UNKNOWN
        closes, whose retry time has come."""
        if not self._may_reconcile:
            return []
        targets: list[_Entry | _Close] = []
        unsure = False
        for entry in self._live_entries():
            if entry.state is EntryState.UNKNOWN or entry.verify:
                unsure = True
                if entry.not_before <= now:
                    targets.append(entry)
        for close in self._closes:
            if close.state is CloseState.UNKNOWN:
                unsure = True
                if close.not_before <= now:
                    targets.append(close)
        self._may_reconcile = unsure
        return targets

    async def _reconcile(self, targets: list[_Entry | _Close], now: float) -> None:
        """Ask the venue about orders whose fate we do not know, before deciding anything."""
        listing: list[OrderInfo] | None = None
        for record in targets:
            try:
                if record.order_id:
                    info = await self.exchange_client.get_order_info(self.contract_id, record.order_id)
                else:
                    if listing is None:
                        listing = await self.exchange_client.get_active_orders(self.contract_id)
                    info = next((o for o in listing if o.client_order_id == record.client_order_id), None)
            except OrderNotFound:
                self._not_found(record, definitive=True)
                continue
            except ExchangeError as exc:
                record.not_before = now + RECONCILE_INTERVAL_SECONDS
                logger.warning("could not look up %s: %s", record.describe(), exc)
                continue
            if info is None:
                self._not_found(record, definitive=False)
            else:
                await self.on_order_update(OrderUpdate(order=info))

    def _not_found(self, record: _Entry | _Close, definitive: bool) -> None:
        record.reconcile_attempts += 1
        if not definitive and record.reconcile_attempts < RECONCILE_ATTEMPTS:
            record.not_before = self.clock.now() + RECONCILE_INTERVAL_SECONDS
            logger.info(
                "%s not listed yet (look-up %d of %d)",
                record.describe(),
                record.reconcile_attempts,
                RECONCILE_ATTEMPTS,
            )
            return
        if isinstance(record, _Entry):
            logger.warning("entry %s is not on the venue: treating it as ended", record.describe())
            self._end_entry(record, OrderStatus.CANCELLED)
        else:
            logger.warning("%s is not on the venue: placing it again", record.describe())
            self._requeue(record, rejected_price=record.last_rejected_price)

    # -- bookkeeping -------------------------------------------------------------------------

    def _index(self, record: _Entry | _Close) -> None:
        if record.order_id:
            self._by_order_id[record.order_id] = record
        if record.client_order_id:
            self._by_client_id[record.client_order_id] = record

    def _forget(self, record: _Entry | _Close) -> None:
        if record.order_id and self._by_order_id.get(record.order_id) is record:
            del self._by_order_id[record.order_id]
        if record.client_order_id and self._by_client_id.get(record.client_order_id) is record:
            del self._by_client_id[record.client_order_id]

    def _lookup(self, order_id: str | None, client_order_id: str | None) -> _Entry | _Close | None:
        if order_id and order_id in self._by_order_id:
            return self._by_order_id[order_id]
        if client_order_id and client_order_id in self._by_client_id:
            return self._by_client_id[client_order_id]
        return None

    def _uncovered_size(self) -> Decimal:
        waiting = sum((c.remaining for c in self._closes if c.state is not CloseState.ACTIVE), ZERO)
        return self._lot.size + self._dust.size + waiting

    # -- reporting ---------------------------------------------------------------------------

    def state(self) -> str:
        now = self.clock.now()
        if self._stop_message or self._refusal:
            return "stopped"
        if any(e.state is EntryState.UNKNOWN or e.verify for e in self._live_entries()):
            return "reconciling"
        if self._stale:
            return "cancelling stale entries"
        if self._entry is not None:
            if self._entry.cancel_requested:
                return "requoting entry"
            return "placing entry" if self._entry.state is EntryState.SENDING else "entry resting"
        if self._pause_reason:
            return "paused"
        if self.active_take_profit_count() >= self.max_orders:
            return "max orders reached"
        remaining = self.cooldown_remaining(now)
        if remaining > 0:
            return f"cooling down ({remaining:.1f} s left)"
        if self._hold_key:
            return f"holding: {self._hold_text}"
        return "ready"

    def status_summary(self) -> dict[str, str]:
        active = [c for c in self._closes if not c.market and c.state is CloseState.ACTIVE]
        summary = {
            "state": self.state(),
            "direction": self.direction.value,
            "active take-profits": f"{len(active)} of max {self.max_orders}",
            "completed cycles": str(self.completed_cycles),
            "realized grid profit (estimate)": _fmt(self.realized_profit),
            "pause reason": self._pause_reason or "-",
        }
        uncovered = self._uncovered_size()
        if uncovered > 0:
            summary["filled, awaiting take-profit"] = str(uncovered)
        if active:
            prices = sorted(c.price or c.target_price for c in active)
            summary["take-profit prices"] = f"{prices[0]} .. {prices[-1]}"
        if self._entry is not None:
            summary["entry"] = self._entry.describe()
        return summary


def _fmt(value: Decimal) -> str:
    """Short, stable text for averaged prices and profit estimates in logs."""
    return f"{value.quantize(Decimal('1e-8')).normalize():f}"
