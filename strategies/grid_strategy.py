"""The grid strategy: rest one maker entry, and close every filled lot with a take-profit order.

A trader of this bot family knows the cycle: a post-only entry rests one tick inside the opposite
best price; its fills get a reduce-only take-profit a fixed percent away; a cool-down that grows
with the number of resting take-profits spaces the entries, so a trending market does not stack
the whole ``max_orders`` budget at one price. Optional rules: a minimum distance between
take-profits (grid step), a stop price, a pause price, market closes (boost), and randomised
timing and profit targets.

Orders and fills belong to the execution layer (``self.execution``); this file holds only the
grid's decisions. Partial fills of one entry are closed by one take-profit once the entry has
ended (filled, or cancelled because the market left it), so ``max_orders`` counts lots, not
fragments; a lot below the venue's minimum joins the next take-profit.
"""

from __future__ import annotations

import logging
import math
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from exchanges.base import (
    BaseExchangeClient,
    ConfigurationError,
    OrderBelowMinimum,
    OrderInfo,
    OrderSide,
    OrderStatus,
    OrderType,
    PostOnlyRejected,
    RateLimitExceeded,
)
from execution.records import ExecutionEvent, ExecutionEventKind, Lot, OrderRecord
from helpers.clock import Clock
from helpers.log_setup import log_after_reaction
from helpers.rounding import round_down, round_up
from helpers.trading_config import TradingConfig
from strategies.base_strategy import (
    BaseStrategy,
    DecisionBand,
    DerivedPrice,
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

if TYPE_CHECKING:
    from execution.engine import ExecutionEngine

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)

#: Seconds to hold off after a refused order (other than post-only) before trying again.
FAILURE_BACKOFF_SECONDS = 1.0
#: Take-profit targets remembered per lot group (dynamic profit draws once per group).
TARGETS_KEPT = 4096


@dataclass
class _Decision:
    """What the next step would do; built without side effects so should_execute can ask too.

    ``band`` holds every threshold the decision compared the market and the clock against:
    the same decision comes out while the quotes stay inside it and the clock before its end.
    """

    result: StrategyResult
    band: DecisionBand
    entry: OrderParams | None = None
    cancels: list[OrderRecord] = field(default_factory=list)


class _FixedPrice:
    """A given price where the decision code expects a :class:`DerivedPrice` (records nothing)."""

    __slots__ = ("value",)

    def __init__(self, value: Decimal) -> None:
        self.value = value

    def above(self, level: Decimal) -> bool:
        return self.value > level

    def below(self, level: Decimal) -> bool:
        return self.value < level


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
    """Maker entries, one take-profit per filled lot, cool-down scaled by the resting take-profits."""

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

    def __init__(
        self,
        config: TradingConfig,
        exchange_client: BaseExchangeClient,
        clock: Clock,
        execution: ExecutionEngine | None = None,
    ) -> None:
        super().__init__(config, exchange_client, clock, execution)
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
        self._cooldown_started: float | None = None
        self._cooldown_factor = 1.0
        self._entry_not_before = 0.0
        self._exits_not_before = 0.0
        self._refused_entry_price: Decimal | None = None
        #: Lot groups the venue refused to close as below its minimum: they wait for the next fill.
        self._dust_groups: set[str] = set()
        #: Take-profit percent drawn per lot group, so a re-placed take-profit keeps its target.
        self._group_pct: OrderedDict[str, Decimal] = OrderedDict()
        self._refusal: str | None = None
        self._stop_message: str | None = None
        self._pause_reason: str | None = None
        self._hold_key: str | None = None
        self._hold_text = ""
        self._take_profit_factor = self._factor(self.take_profit_pct)
        # should_execute's decision, reused by execute_strategy when nothing changed in between.
        self._prepared: tuple[MarketData, tuple[int, str | None], _Decision] | None = None
        #: The last decision, what it was made on and the state it was made in (see _current).
        self._last: tuple[MarketData, tuple[int, str | None], _Decision] | None = None

    def get_strategy_name(self) -> str:
        return "grid"

    @classmethod
    def identity_suffix(cls, params: dict[str, Any]) -> str:
        direction = params.get("direction") or OrderSide.BUY
        return direction.value if isinstance(direction, OrderSide) else parse_side(str(direction)).value

    # -- start-up ----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Resolve the market and check the order size against the venue's minimums."""
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
        if self.entry_size < contract.min_size or self.entry_size <= 0:
            self._refuse(
                f"quantity {self.entry_size} is below the minimum order size {contract.min_size} "
                f"of {contract.ticker}"
            )
        elif contract.min_notional > 0:
            best_bid, best_ask = await self.exchange_client.fetch_bbo_prices(self.contract_id)
            self._check_entry_notional(self.entry_price(best_bid, best_ask))
        logger.info(
            "grid %s %s: quantity %s, take-profit %s %%, max %d orders, wait %s s, grid step %s%s",
            self.direction.value,
            contract.ticker,
            self.entry_size,
            self.take_profit_pct,
            self.max_orders,
            self.wait_time,
            f"{self.grid_step_pct} %" if self.grid_step_pct >= 0 else "off",
            " (boost: market closes)" if self.boost else "",
        )

    async def on_ready(self) -> None:
        if self._take_profits():
            # A restart that found its take-profits waits like after a fill: no burst.
            self._start_cooldown("start-up with resting take-profits")

    def classify_foreign_order(self, info: OrderInfo) -> OrderRole | None:
        """Close-side orders are our take-profits from an earlier run; open-side ones entries."""
        return OrderRole.EXIT if info.side is self.close_side else OrderRole.ENTRY

    def adopted_entry_price(self, info: OrderInfo) -> Decimal:
        """The fill price this take-profit was worked out from, at the configured percent."""
        return info.price / self._take_profit_factor

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

    def _group_take_profit_pct(self, group: str) -> Decimal:
        """The configured percent, or (dynamic_profit) one draw per lot group within tp x [1-r, 1+r]."""
        if not self.dynamic_profit:
            return self.take_profit_pct
        pct = self._group_pct.get(group)
        if pct is None:
            draw = Decimal(repr(self._profit_rng.random()))
            factor = 1 - self.profit_range + 2 * self.profit_range * draw
            pct = (self.take_profit_pct * factor).quantize(Decimal("1e-8"))
            self._group_pct[group] = pct
            while len(self._group_pct) > TARGETS_KEPT:
                self._group_pct.popitem(last=False)
        return pct

    def exit_price(self, target: Decimal, refused: Decimal | None, market: DecisionBand) -> Decimal:
        """The take-profit target, unless the market is already beyond it.

        Then the order goes to the touch on its own side (best ask for a sell), never worse than
        the target, and after a post-only rejection at least one tick beyond the refused price
        so a stale book cannot make us repeat the same refused order.
        """
        tick = self.tick
        price = target
        if self.close_side is OrderSide.SELL:
            if refused is not None:
                price = max(price, refused + tick)
            if market.bid_at_least(price):
                best_bid, best_ask = market.pin()
                price = max(price, round_up(best_ask, tick), best_bid + tick)
        else:
            if refused is not None:
                price = min(price, refused - tick)
            if market.ask_at_most(price):
                best_bid, best_ask = market.pin()
                price = min(price, round_down(best_bid, tick), best_ask - tick)
        return price

    # -- what the execution layer holds, as the grid sees it ---------------------------------

    def _entries(self) -> list[OrderRecord]:
        return self.execution.active_orders(OrderRole.ENTRY)

    def _take_profits(self) -> list[OrderRecord]:
        """Live exits that rest (market closes are not counted): the grid's ``n``."""
        return [r for r in self.execution.active_orders(OrderRole.EXIT) if r.order_type is OrderType.LIMIT]

    def active_take_profit_count(self) -> int:
        return len(self._take_profits())

    def _lots_to_close(self) -> list[list[Lot]]:
        """Uncovered lots ready for an exit, one list per exit to send.

        A lot waits while the entry that filled it is still live (its later fills join it). A
        group below the venue minimum (or refused as such) is carried into the next group that
        meets it; carried lots whose total meets the minimum go out together.
        """
        lots = self.execution.uncovered_lots()
        if not lots:
            return []
        live_groups = {record.group for record in self._entries()}
        groups: dict[str, list[Lot]] = {}
        for lot in lots:
            if lot.group not in live_groups:
                groups.setdefault(lot.group, []).append(lot)
        exits: list[list[Lot]] = []
        carried: list[Lot] = []
        for group, members in groups.items():
            if group in self._dust_groups or not self._meets_minimum(members):
                carried += members
                continue
            exits.append(members + carried)
            carried = []
        if carried and not all(lot.group in self._dust_groups for lot in carried):
            if self._meets_minimum(carried):
                exits.append(carried)
        return exits

    def _meets_minimum(self, lots: list[Lot]) -> bool:
        contract = self.contract
        assert contract is not None
        size = sum((lot.size for lot in lots), ZERO)
        price = sum((lot.notional for lot in lots), ZERO) / size
        return size >= contract.min_size and size * price >= contract.min_notional

    def _uncovered_size(self) -> Decimal:
        return sum((lot.size for lot in self.execution.uncovered_lots()), ZERO)

    # -- counting and timing rules -----------------------------------------------------------

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
        end = self._cooldown_end()
        return 0.0 if end is None else max(0.0, end - now)

    def _cooldown_end(self) -> float | None:
        if self._cooldown_started is None:
            return None
        duration = self.cooldown_duration(self.active_take_profit_count()) * self._cooldown_factor
        return self._cooldown_started + duration

    def _start_cooldown(self, why: str) -> None:
        self._cooldown_started = self.clock.now()
        self._cooldown_factor = 1.0
        if self.random_timing:
            spread = float(self.timing_range)
            self._cooldown_factor = self._timing_rng.uniform(1 - spread, 1 + spread)
        if logger.isEnabledFor(logging.INFO):
            active = self.active_take_profit_count()
            log_after_reaction(
                logger.info,
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

    def stop_reason(self, market: DecisionBand) -> str | None:
        if self.stop_price is None:
            return None
        if self.direction is OrderSide.BUY and market.ask_at_least(self.stop_price):
            return f"stop price reached: best ask {market.pin()[1]} >= stop_price {self.stop_price}"
        if self.direction is OrderSide.SELL and market.bid_at_most(self.stop_price):
            return f"stop price reached: best bid {market.pin()[0]} <= stop_price {self.stop_price}"
        return None

    def pause_reason(self, market: DecisionBand) -> str | None:
        """Why entries are paused, or None. The text names the quote only when the pause
        starts (it is logged then); while it lasts, the decision depends on the threshold alone."""
        if self.pause_price is None:
            return None
        if self.direction is OrderSide.BUY and market.ask_at_least(self.pause_price):
            return f"best ask >= pause_price {self.pause_price}"
        if self.direction is OrderSide.SELL and market.bid_at_most(self.pause_price):
            return f"best bid <= pause_price {self.pause_price}"
        return None

    def _track_pause(self, market: DecisionBand) -> bool:
        reason = self.pause_reason(market)
        if reason != self._pause_reason:
            if reason:
                logger.info("paused (no new entries, take-profits still managed): %s", reason)
            else:
                logger.info("resumed: market back from the pause price %s", self.pause_price)
            self._pause_reason = reason
        return reason is not None

    def _take_profit_prices(self) -> list[Decimal]:
        return [record.price for record in self._take_profits() if record.price is not None]

    def grid_step_conflict(self, entry_price: Decimal) -> Decimal | None:
        """The resting take-profit price a new entry's take-profit would sit too close to, if any."""
        prospective = _FixedPrice(self.take_profit_price(entry_price, self.take_profit_pct))
        return self._grid_step_conflict(prospective)  # type: ignore[arg-type]

    def _grid_step_conflict(self, prospective: DerivedPrice) -> Decimal | None:
        """:meth:`grid_step_conflict` for a prospective take-profit compared through the band.

        The nearest resting take-profit (the first in order on a tie) is found by comparing
        with the midpoints between candidates, and "closer than grid_step %" as the open
        interval nearest x (1 +- grid_step / 100) around it: the same answers as measuring
        each distance, asked as thresholds the band can record.
        """
        if self.grid_step_pct < 0:
            return None
        prices = self._take_profit_prices()
        if not prices:
            return None
        nearest = prices[0]
        for price in prices[1:]:
            if price == nearest:
                continue
            middle = (price + nearest) / 2
            if prospective.above(middle) if price > nearest else prospective.below(middle):
                nearest = price
        reach = nearest * self.grid_step_pct / HUNDRED
        if prospective.above(nearest - reach) and prospective.below(nearest + reach):
            return nearest
        return None

    def requote_due(self, entry: OrderRecord, market: DecisionBand) -> bool:
        """A live entry the market has left by more than ``requote_ticks`` ticks (partly filled
        or not: its filled part gets its take-profit once the cancel has ended it)."""
        assert entry.price is not None
        limit = self.requote_ticks * self.tick
        if entry.side is OrderSide.BUY:
            return market.bid_above(entry.price + limit)
        return market.ask_below(entry.price - limit)

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
        decision = self._decide(market_data)
        # Kept for execute_strategy: the same market data in the same state, before the time
        # its band ends, gives the same decision, so it is not worked out twice. (Comparing
        # clock readings instead never matched on a live clock: a fill's reaction decided twice.)
        self._prepared = (market_data, self._state_key(), decision)
        return decision.result.action is not StrategyAction.NONE

    async def execute_strategy(self, market_data: MarketData) -> StrategyResult:
        prepared, self._prepared = self._prepared, None
        if (
            prepared is not None
            and prepared[0] is market_data
            and prepared[1] == self._state_key()
            and self.clock.now() < prepared[2].band.until
        ):
            decision = prepared[2]
        else:
            decision = self._decide(market_data)
        self._commit(decision, market_data)
        return decision.result

    def _state_key(self) -> tuple[int, str | None]:
        """What a decision depends on besides the market and the clock: the execution layer's
        state (its version moves with every order event the grid reacts to) and the orchestrator's
        block."""
        return self.execution.version, self.entries_blocked

    def _current(self) -> _Decision | None:
        """The last decision if it still stands (same state, its time not over), else it is made
        again on the last market data seen (deciding is free of side effects that matter)."""
        last = self._last
        if last is None:
            return None
        market, key, decision = last
        if key == self._state_key() and self.clock.now() < decision.band.until:
            return decision
        return self._decide(market)

    def seconds_until_next_decision(self) -> float | None:
        """Until the first time threshold the decision compared the clock against."""
        decision = self._current()
        if decision is None:
            return None
        until = decision.band.until
        return None if until == math.inf else until - self.clock.now()

    def market_wake_levels(self) -> WakeLevels | None:
        """The quotes that could change the decision: the band it recorded while it was made.

        A decision that acts (an order, a cancel, a stop) answers None: it is due at once.
        """
        if self.contract is None:
            return None
        decision = self._current()
        if decision is None or decision.result.action is not StrategyAction.NONE:
            return None
        return decision.band.levels()

    def _decide(self, market: MarketData) -> _Decision:
        """Priority: closing filled lots, refusal or stop, cancels, then a new entry.

        Every comparison with the market or the clock goes through ``band``, which is how the
        decision knows the quotes and the time in which it stays what it is.
        """
        now = self.clock.now()
        band = DecisionBand.of(market, now)
        decision = self._decide_in(band, now)
        self._last = (market, self._state_key(), decision)
        return decision

    def _decide_in(self, band: DecisionBand, now: float) -> _Decision:
        paused = self._track_pause(band)
        if not band.before(self._exits_not_before):
            exits = [self._exit_params(lots, band) for lots in self._lots_to_close()]
            if exits:
                return _Decision(
                    StrategyResult(
                        StrategyAction.PLACE_ORDERS,
                        orders=exits,
                        message=f"closing {len(exits)} filled lot(s)",
                    ),
                    band,
                )
        stop = self._refusal or self._stop_message or self.stop_reason(band)
        if stop:
            uncovered = self._uncovered_size()
            if uncovered > 0:
                stop += f" ({uncovered} filled size not yet covered by a take-profit)"
            error = ConfigurationError(self._refusal) if self._refusal else None
            return _Decision(StrategyResult(StrategyAction.STOP, message=stop, error=error), band)
        cancels = self._cancels_due(band)
        if cancels:
            return _Decision(
                StrategyResult(
                    StrategyAction.CANCEL_ORDERS,
                    cancel_client_ids=[entry.client_order_id for entry in cancels],
                    message="cancelling stale or requoted entries",
                ),
                band,
                cancels=cancels,
            )
        entry = self._entry_params(band, paused)
        if entry is None:
            return _Decision(StrategyResult(StrategyAction.NONE), band)
        contract = self.contract
        assert contract is not None and entry.price is not None
        if self.entry_size * entry.price < contract.min_notional:
            message = (
                f"refusing to trade: order value {self.entry_size * entry.price} is below the minimum "
                f"notional {contract.min_notional}"
            )
            return _Decision(
                StrategyResult(StrategyAction.STOP, message=message, error=ConfigurationError(message)), band
            )
        return _Decision(
            StrategyResult(StrategyAction.PLACE_ORDERS, orders=[entry], message="grid entry"),
            band,
            entry=entry,
        )

    def _cancels_due(self, band: DecisionBand) -> list[OrderRecord]:
        """Entries from an earlier run, entries the market has left, and entries while the
        orchestrator has blocked entries to reduce risk."""
        due = []
        for entry in self._entries():
            if entry.cancel_requested_at is not None or not entry.acknowledged:
                continue
            if entry.previous_run or self.requote_due(entry, band):
                due.append(entry)
            elif self.entries_blocked is not None and self.entries_blocked.startswith("risk"):
                due.append(entry)
        return due

    def _entry_params(self, band: DecisionBand, paused: bool) -> OrderParams | None:
        """A new entry if every rule allows one right now, else None (noting why)."""
        if self._entries() or paused or self.entries_blocked is not None:
            return None
        active = self.active_take_profit_count()
        if active >= self.max_orders:
            self._note_hold("max_orders", f"{active} take-profits resting, max_orders is {self.max_orders}")
            return None
        if band.before(self._entry_not_before):
            return None
        cooldown_end = self._cooldown_end()
        if cooldown_end is not None and band.before(cooldown_end):
            return None
        tick = self.tick
        if self.direction is OrderSide.BUY:
            prospective = band.derived(True, self._prospective_take_profit, tick)
        else:
            prospective = band.derived(False, self._prospective_take_profit, tick)
        conflict = self._grid_step_conflict(prospective)
        if conflict is not None:
            self._note_hold(
                f"grid_step:{conflict}",
                f"take-profit {prospective.value} of an entry near the touch would be within "
                f"grid_step {self.grid_step_pct} % of the resting take-profit at {conflict}",
            )
            return None
        best_bid, best_ask = band.pin()  # the entry is priced from the quote itself
        return OrderParams(
            side=self.direction,
            quantity=self.entry_size,
            price=self.entry_price(best_bid, best_ask),
            order_type=OrderType.LIMIT,
            post_only=True,
            reduce_only=False,
            role=OrderRole.ENTRY,
        )

    def _prospective_take_profit(self, quote: Decimal) -> Decimal:
        """The take-profit of an entry priced from this quote (the ask for a buy grid, the bid
        for a sell grid): non-decreasing in the quote, as DecisionBand.derived needs."""
        return self.take_profit_price(self.entry_price(quote, quote), self.take_profit_pct)

    def _exit_params(self, lots: list[Lot], market: DecisionBand) -> OrderParams:
        size = sum((lot.size for lot in lots), ZERO)
        covers = tuple(lot.lot_id for lot in lots)
        if self.boost:
            return OrderParams(
                side=self.close_side,
                quantity=size,
                order_type=OrderType.MARKET,
                post_only=False,
                reduce_only=True,
                role=OrderRole.EXIT,
                max_slippage_pct=self.config.max_slippage_pct,
                covers=covers,
            )
        entry_price = sum((lot.notional for lot in lots), ZERO) / size
        pct = self._group_take_profit_pct(lots[0].group)
        target = self.take_profit_price(entry_price, pct)
        refused = [lot.refused_price for lot in lots if lot.refused_price is not None]
        refused_price = None
        if refused:
            refused_price = max(refused) if self.close_side is OrderSide.SELL else min(refused)
        return OrderParams(
            side=self.close_side,
            quantity=size,
            price=self.exit_price(target, refused_price, market),
            order_type=OrderType.LIMIT,
            post_only=True,
            reduce_only=True,
            role=OrderRole.EXIT,
            covers=covers,
            metadata={"target": target, "entry_price": entry_price, "pct": pct},
        )

    def _log_exits(self, exits: list[OrderParams]) -> None:
        """The lines of the exits a decision sends (what they are, not how they were sent)."""
        for params in exits:
            if params.order_type is OrderType.MARKET:
                logger.info("closing %s %s at market (boost)", params.side.value, params.quantity)
                continue
            target = params.metadata["target"]
            logger.info(
                "take-profit %s %s for lots filled @ %s: %s%s %% -> %s%s",
                params.side.value,
                params.quantity,
                _fmt(params.metadata["entry_price"]),
                "+" if self.direction is OrderSide.BUY else "-",
                params.metadata["pct"],
                params.price,
                "" if params.price == target else f" (target {target}; the market is beyond it)",
            )

    def _commit(self, decision: _Decision, market: MarketData) -> None:
        """Log what the bot is about to send and note what it changes in the grid's state."""
        result = decision.result
        log = logger.isEnabledFor(logging.INFO)  # the messages' arguments cost more than a check
        if log and result.action is StrategyAction.PLACE_ORDERS:
            exits = [params for params in result.orders if params.role is OrderRole.EXIT]
            if exits:
                log_after_reaction(self._log_exits, exits)
        if log:
            for entry in decision.cancels:
                if entry.previous_run:
                    logger.info("cancelling entry %s from an earlier run", entry.describe())
                elif self.entries_blocked is not None and not self.requote_due(
                    entry, DecisionBand.of(market, self.clock.now())
                ):
                    logger.info("cancelling entry %s: %s", entry.describe(), self.entries_blocked)
                else:
                    logger.info(
                        "requote: entry %s left behind by the market (bid %s / ask %s, more than %d ticks)",
                        entry.describe(),
                        market.best_bid,
                        market.best_ask,
                        self.requote_ticks,
                    )
        if decision.entry is not None:
            self._note_hold(None)
            if log:
                logger.info(
                    "placing entry %s %s @ %s (bid %s / ask %s)",
                    decision.entry.side.value,
                    decision.entry.quantity,
                    decision.entry.price,
                    market.best_bid,
                    market.best_ask,
                )
        if result.action is StrategyAction.STOP and self._stop_message is None:
            self._stop_message = result.message
            logger.warning("stopping: %s", result.message)

    # -- what the execution layer tells us ---------------------------------------------------

    async def on_execution_event(self, event: ExecutionEvent) -> None:
        order = event.order
        kind = event.kind
        if kind is ExecutionEventKind.REFUSED:
            self._on_refused(order, event.error)
        elif kind is ExecutionEventKind.ACCEPTED and order.role is OrderRole.ENTRY:
            self._refused_entry_price = None
        elif kind is ExecutionEventKind.ENDED:
            self._on_ended(order)

    def _on_ended(self, order: OrderRecord) -> None:
        status = order.status
        if order.role is OrderRole.ENTRY:
            if status is OrderStatus.FILLED:
                self._start_cooldown(f"entry {order.venue_order_id or order.client_order_id} filled")
            elif order.filled_size > 0:
                self._start_cooldown(f"entry partly filled ({order.filled_size}) then {status.value}")
            return
        if order.role is not OrderRole.EXIT:
            return
        if status is OrderStatus.FILLED:
            self.completed_cycles += 1
            if logger.isEnabledFor(logging.INFO):
                logger.info("cycle %d complete", self.completed_cycles)
            if order.order_type is OrderType.LIMIT:
                self._reset_cooldown("a take-profit filled")
        elif status is OrderStatus.CANCELLED and not order.cancel_reason:
            logger.warning("%s was cancelled outside the bot: placing it again", order.describe())
        elif status is OrderStatus.EXPIRED:
            logger.warning("%s expired on the venue: placing it again", order.describe())

    def _on_refused(self, order: OrderRecord, error: Exception | None) -> None:
        now = self.clock.now()
        backoff = FAILURE_BACKOFF_SECONDS
        if isinstance(error, RateLimitExceeded) and error.retry_after:
            backoff = error.retry_after
        if order.role is OrderRole.ENTRY:
            if isinstance(error, PostOnlyRejected):
                if order.price == self._refused_entry_price:
                    # Refused twice at one price: our book is stale; give it time to catch up.
                    self._entry_not_before = now + FAILURE_BACKOFF_SECONDS
                self._refused_entry_price = order.price
            elif isinstance(error, OrderBelowMinimum):
                self._refuse(f"the venue refused the entry as below its minimum: {error}")
            else:
                self._entry_not_before = now + backoff
            return
        if order.role is not OrderRole.EXIT or isinstance(error, PostOnlyRejected):
            return  # a refused post-only take-profit is re-priced at once from its lots
        if isinstance(error, OrderBelowMinimum):
            self._dust_groups.add(order.group)
            logger.warning(
                "close of %s refused as below the venue minimum (%s): it joins the next fill",
                order.quantity,
                error,
            )
            return
        self._exits_not_before = now + backoff
        logger.error("close of %s failed: size still tracked, retrying in %.1f s", order.quantity, backoff)

    # -- reporting ---------------------------------------------------------------------------

    def state(self) -> str:
        now = self.clock.now()
        if self._stop_message or self._refusal:
            return "stopped"
        entries = self._entries()
        if any(not e.acknowledged for e in entries):
            return "placing entry"
        if any(e.previous_run for e in entries):
            return "cancelling entries from an earlier run"
        if entries:
            if any(e.cancel_requested_at is not None for e in entries):
                return "cancelling entry"
            return "entry resting"
        if self.entries_blocked:
            return f"no new entries ({self.entries_blocked})"
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
        take_profits = self._take_profits()
        summary = {
            "state": self.state(),
            "direction": self.direction.value,
            "active take-profits": f"{len(take_profits)} of max {self.max_orders}",
            "completed cycles (this run)": str(self.completed_cycles),
            "pause reason": self._pause_reason or "-",
        }
        uncovered = self._uncovered_size()
        if uncovered > 0:
            summary["filled, awaiting take-profit"] = str(uncovered)
        prices = sorted(r.price for r in take_profits if r.price is not None)
        if prices:
            summary["take-profit prices"] = f"{prices[0]} .. {prices[-1]}"
        entries = self._entries()
        if entries:
            summary["entry"] = "; ".join(entry.describe() for entry in entries)
        return summary


def _fmt(value: Decimal) -> str:
    """Short, stable text for averaged prices in logs."""
    return f"{value.quantize(Decimal('1e-8')).normalize():f}"
