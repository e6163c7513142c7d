"""GRVT's wire format: settings and endpoints, EIP-712 order signing, and the parsing of every
REST body and stream message the client reads. Pure functions and small classes, no I/O, so
each rule is unit-tested against the captured messages in ``../shared/fixtures/grvt``.

Facts this module relies on (grvt-pysdk 0.2.1 and GRVT's api-spec docs):

* Orders are EIP-712 typed data (domain "GRVT Exchange", version "0", chain id by environment:
  325 prod, 326 testnet). The SDK's ``grvt_raw_signing.sign_order`` signs them: prices enter as
  ``limit_price * 1e9`` and sizes as ``size * 10**base_decimals`` of the instrument, both
  truncated to integers, so an amount that is not exact at that precision is refused here
  before signing (the venue would answer "Signature does not match payload").
* Every signature carries an expiration in unix nanoseconds, capped by the venue at 30 days
  (error 2008 beyond it, 2001 once past). The SDK's ccxt layer defaults to one day, after
  which the venue cancels the order with reject reason EXPIRED: resting take-profits vanished
  that way for earlier bots. Resting orders here are signed for ``order_expiry_days`` (28 by
  default), immediate-or-cancel orders for a few minutes.
* Client order ids are unsigned 64-bit integers; the venue asks API clients to use
  ``[2**63, 2**64)`` so they never meet the web UI's ids. :class:`GrvtClientOrderIdFactory`
  puts the bot's usual 14-digit ids there.
* Stream messages carry ``sequence_number`` (snapshots 0, deltas counting up by one per feed)
  and ``prev_sequence_number``; duplicates happen and are to be ignored, a jump means messages
  were lost. :class:`FeedSequence` tells the three apart.
* Funding rates are published in percent (``"0.01"`` is the usual 0.01 % per interval).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from exchanges.base import (
    AuthenticationError,
    ClientOrderIdFactory,
    ConfigurationError,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderBelowMinimum,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    RateLimitExceeded,
)
from exchanges.connector_kit import to_decimal
from exchanges.venue_orders import OrderReport, TradeReport
from helpers import safe_json, venue_validation
from helpers.venue_validation import InvalidVenueData

# eth-account imports py_ecc, which raises the recursion limit to 100,000 for its own pairing
# code (never used here); that disables the interpreter's guard for every C recursion, so the
# limit is put back once the SDK and eth-account are loaded.
with safe_json.recursion_limit_kept():
    from eth_account import Account
    from pysdk.grvt_raw_base import GrvtApiConfig
    from pysdk.grvt_raw_env import GrvtEnv, get_env_config
    from pysdk.grvt_raw_signing import CHAIN_IDS, sign_order
    from pysdk.grvt_raw_types import (
        Instrument,
        InstrumentSettlementPeriod,
        Kind,
        Order,
        OrderLeg,
        OrderMetadata,
        Signature,
        TimeInForce,
    )

#: Price scale of the signed order (the SDK's PRICE_MULTIPLIER).
PRICE_DECIMALS = 9
NANOS = 1_000_000_000
DAY_NS = 86_400 * NANOS
#: The venue refuses signatures expiring further out than this (error 2008).
MAX_EXPIRY_DAYS = 30
DEFAULT_EXPIRY_DAYS = 28
#: Expiry of immediate-or-cancel orders: long enough for any retry, short enough that a request
#: stuck in a network for minutes can no longer trade when it finally arrives.
IOC_EXPIRY_NS = 300 * NANOS
#: Client ids start here (the venue's advice for API clients, see the module docstring).
CLIENT_ID_BASE = 2**63
ENV_NAMES = {env.value: env for env in GrvtEnv}

# ---------------------------------------------------------------------------------------------
# Settings and endpoints
# ---------------------------------------------------------------------------------------------

#: Environment variable -> field of GrvtEndpoints it overrides.
ENDPOINT_VARIABLES = {
    "GRVT_EDGE_URL": "edge",
    "GRVT_TRADES_URL": "trades",
    "GRVT_MARKET_DATA_URL": "market_data",
    "GRVT_TRADES_WS_URL": "trades_ws",
    "GRVT_MARKET_DATA_WS_URL": "market_data_ws",
}


@dataclass(frozen=True)
class GrvtEndpoints:
    """Where each family of requests goes. The SDK derives these from the environment name
    inside its clients (no constructor takes them); here they are plain values, filled from the
    SDK's own table and overridable one by one (the loopback mock serves all five)."""

    edge: str
    trades: str
    market_data: str
    trades_ws: str
    market_data_ws: str

    @classmethod
    def for_env(cls, env: GrvtEnv, overrides: Mapping[str, str] | None = None) -> GrvtEndpoints:
        config = get_env_config(env)
        values = {
            "edge": config.edge.rpc_endpoint,
            "trades": config.trade_data.rpc_endpoint,
            "market_data": config.market_data.rpc_endpoint,
            # The JSON-RPC stream endpoints are the SDK's legacy ones plus "/full".
            "trades_ws": f"{config.trade_data.ws_endpoint}/full",
            "market_data_ws": f"{config.market_data.ws_endpoint}/full",
        }
        for variable, name in ENDPOINT_VARIABLES.items():
            value = (overrides or {}).get(variable, "").strip()
            if not value:
                continue
            schemes = ("ws://", "wss://") if name.endswith("_ws") else ("http://", "https://")
            if not value.startswith(schemes):
                raise ConfigurationError(f"{variable} must start with {' or '.join(schemes)}")
            values[name] = value.rstrip("/")
        return cls(**values)


@dataclass(frozen=True)
class GrvtSettings:
    """Keys and places; the secrets are excluded from repr so they never reach a log."""

    trading_account_id: str
    private_key: str = field(repr=False)
    api_key: str = field(repr=False)
    env: GrvtEnv
    endpoints: GrvtEndpoints
    expiry_days: Decimal

    @property
    def chain_id(self) -> int:
        return CHAIN_IDS[self.env]

    @classmethod
    def load(cls, env: Mapping[str, str], params: Mapping[str, Any]) -> GrvtSettings:
        """Read and validate; each problem is a one-line ConfigurationError naming the variable,
        never its value."""
        account = (env.get("GRVT_TRADING_ACCOUNT_ID") or "").strip()
        private_key = (env.get("GRVT_PRIVATE_KEY") or "").strip()
        api_key = (env.get("GRVT_API_KEY") or "").strip()
        for name, value in (
            ("GRVT_TRADING_ACCOUNT_ID", account),
            ("GRVT_PRIVATE_KEY", private_key),
            ("GRVT_API_KEY", api_key),
        ):
            if not value:
                raise ConfigurationError(f"{name} is not set (put it in your .env file)")
        if not account.isdigit() or int(account) >= 2**64:
            raise ConfigurationError("GRVT_TRADING_ACCOUNT_ID must be the numeric sub-account id")
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", private_key):
            raise ConfigurationError("GRVT_PRIVATE_KEY is not a 32-byte hex private key")
        env_name = (env.get("GRVT_ENV") or "prod").strip().lower()
        if env_name not in ENV_NAMES:
            raise ConfigurationError(f"GRVT_ENV must be one of {', '.join(sorted(ENV_NAMES))}")
        try:
            expiry_days = Decimal(str(params.get("order_expiry_days", DEFAULT_EXPIRY_DAYS)))
        except ArithmeticError:
            expiry_days = Decimal(-1)
        if not expiry_days.is_finite() or not Decimal(0) < expiry_days < MAX_EXPIRY_DAYS:
            raise ConfigurationError(
                f"order_expiry_days must be above 0 and below the venue's cap of {MAX_EXPIRY_DAYS}"
            )
        return cls(
            trading_account_id=account,
            private_key=private_key,
            api_key=api_key,
            env=ENV_NAMES[env_name],
            endpoints=GrvtEndpoints.for_env(ENV_NAMES[env_name], env),
            expiry_days=expiry_days,
        )


@dataclass
class GrvtClientOrderIdFactory(ClientOrderIdFactory):
    """The bot's 14-digit client ids moved into ``[2**63, 2**64)``, where GRVT wants API ids."""

    def next_id(self, timestamp: float) -> str:
        return str(CLIENT_ID_BASE + int(super().next_id(timestamp)))

    def is_ours(self, client_order_id: str | None) -> bool:
        text = str(client_order_id or "")
        if not text.isdigit() or len(text) > 20:
            return False
        body = int(text) - CLIENT_ID_BASE
        return 0 <= body < 10**14 and super().is_ours(f"{body:014d}")


# ---------------------------------------------------------------------------------------------
# Instruments and signing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrvtInstrument:
    """One perpetual, as the signer and the pre-checks need it."""

    name: str
    base: str
    instrument_hash: str
    base_decimals: int
    tick_size: Decimal
    min_size: Decimal
    min_notional: Decimal
    funding_interval_hours: Decimal

    @property
    def size_step(self) -> Decimal:
        """GRVT publishes no separate size increment: sizes are multiples of the minimum size,
        and never finer than the base decimals the signature can carry."""
        return max(self.min_size, Decimal(1).scaleb(-self.base_decimals))


def _small_int(value: Any, what: str, upper: int) -> int:
    number = to_decimal(value, what)
    if number != number.to_integral_value() or not 0 <= number <= upper:
        raise InvalidVenueData("number out of range", f"{what} must be an integer in 0..{upper}")
    return int(number)


def parse_instrument(raw: Mapping[str, Any]) -> GrvtInstrument:
    """An instrument object of ``full/v1/instrument(s)``; InvalidVenueData when it is unusable."""
    name = raw.get("instrument")
    instrument_hash = raw.get("instrument_hash")
    if not isinstance(name, str) or not name:
        raise InvalidVenueData("missing field", "instrument")
    if not isinstance(instrument_hash, str) or not re.fullmatch(r"0x[0-9a-fA-F]{1,64}", instrument_hash):
        raise InvalidVenueData("bad field", f"{name}: instrument_hash")
    interval = raw.get("funding_interval_hours")
    return GrvtInstrument(
        name=name,
        base=str(raw.get("base") or "").upper(),
        instrument_hash=instrument_hash,
        base_decimals=_small_int(raw.get("base_decimals"), "base_decimals", 18),
        tick_size=venue_validation.price(raw.get("tick_size"), "tick_size"),
        min_size=venue_validation.price(raw.get("min_size"), "min_size"),
        min_notional=venue_validation.size(raw.get("min_notional") or "0", "min_notional"),
        funding_interval_hours=Decimal(_small_int(interval, "funding_interval_hours", 24 * 7))
        if interval not in (None, "", 0, "0")
        else Decimal(8),
    )


def _scaled(value: Decimal, decimals: int, what: str) -> None:
    if value.scaleb(decimals) != value.scaleb(decimals).to_integral_value():
        raise InvalidOrder(f"grvt: {what} {value} has more than {decimals} decimals")


@dataclass(frozen=True)
class OrderIntent:
    """One order to sign: everything that goes into the signature, in our vocabulary."""

    instrument: GrvtInstrument
    side: OrderSide
    size: Decimal
    price: Decimal
    time_in_force: str  # "GTT" resting, "IOC" taking
    post_only: bool
    reduce_only: bool
    client_order_id: str
    nonce: int
    expiration_ns: int


class OrderSigner:
    """Signs orders with the SDK's EIP-712 routine. ``sign`` is CPU work (an ECDSA signature and
    Keccak hashing, about a millisecond): callers run it in a worker thread, off the loop."""

    def __init__(self, settings: GrvtSettings) -> None:
        try:
            self.account = Account.from_key(settings.private_key)
        except (ValueError, TypeError):
            raise ConfigurationError("GRVT_PRIVATE_KEY is not a valid secp256k1 private key") from None
        self.settings = settings
        self._config = GrvtApiConfig(
            env=settings.env,
            trading_account_id=settings.trading_account_id,
            private_key=settings.private_key,
            api_key=None,
            logger=None,
        )

    @property
    def address(self) -> str:
        return str(self.account.address)

    def sign(self, intent: OrderIntent) -> dict[str, Any]:
        """The ``create_order`` body of ``intent``, signed."""
        instrument = intent.instrument
        _scaled(intent.size, instrument.base_decimals, "size")
        _scaled(intent.price, PRICE_DECIMALS, "price")
        if not 0 <= intent.nonce < 2**32:
            raise InvalidOrder(f"grvt: nonce {intent.nonce} is not a 32-bit value")
        size, price = plain_number(intent.size), plain_number(intent.price)
        order = Order(
            sub_account_id=self.settings.trading_account_id,
            time_in_force=TimeInForce.IMMEDIATE_OR_CANCEL
            if intent.time_in_force == "IOC"
            else TimeInForce.GOOD_TILL_TIME,
            legs=[
                OrderLeg(
                    instrument=instrument.name,
                    size=size,
                    is_buying_asset=intent.side is OrderSide.BUY,
                    limit_price=price,
                )
            ],
            signature=Signature(
                signer="", r="", s="", v=0, expiration=str(intent.expiration_ns), nonce=intent.nonce
            ),
            metadata=OrderMetadata(client_order_id=intent.client_order_id),
            is_market=False,
            post_only=intent.post_only,
            reduce_only=intent.reduce_only,
        )
        signed = sign_order(order, self._config, self.account, {instrument.name: _sdk_instrument(instrument)})
        return {
            "order": {
                "sub_account_id": signed.sub_account_id,
                "is_market": False,
                "time_in_force": signed.time_in_force.value,
                "post_only": bool(signed.post_only),
                "reduce_only": bool(signed.reduce_only),
                "legs": [
                    {
                        "instrument": instrument.name,
                        "size": size,
                        "limit_price": price,
                        "is_buying_asset": intent.side is OrderSide.BUY,
                    }
                ],
                "signature": {
                    "signer": signed.signature.signer,
                    "r": signed.signature.r,
                    "s": signed.signature.s,
                    "v": signed.signature.v,
                    "expiration": signed.signature.expiration,
                    "nonce": signed.signature.nonce,
                    "chain_id": str(self.settings.chain_id),
                },
                "metadata": {"client_order_id": intent.client_order_id},
            }
        }


def _sdk_instrument(instrument: GrvtInstrument) -> Instrument:
    """The SDK's instrument type, with the two fields its signer reads filled from ours."""
    return Instrument(
        instrument=instrument.name,
        instrument_hash=instrument.instrument_hash,
        base=instrument.base,
        quote="USDT",
        kind=Kind.PERPETUAL,
        venues=[],
        settlement_period=InstrumentSettlementPeriod.PERPETUAL,
        base_decimals=instrument.base_decimals,
        quote_decimals=6,
        tick_size=str(instrument.tick_size),
        min_size=str(instrument.min_size),
        create_time="0",
        max_position_size="0",
    )


def plain_number(value: Decimal) -> str:
    """A Decimal as GRVT prints numbers: no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class SessionExpired(AuthenticationError):
    """Code 1000: the request carried no valid session (the venue dropped our cookie early).
    Nothing was executed, so the client logs in again and resends once."""


#: GRVT error codes (``code`` of an error body) -> our taxonomy (codes from the api-spec tables).
ERROR_TABLE: dict[int, type[ExchangeError]] = {
    1000: SessionExpired,
    1001: AuthenticationError,
    1002: ExchangeUnavailable,
    1004: OrderNotFound,
    1005: ExchangeUnavailable,
    1006: RateLimitExceeded,
    1008: AuthenticationError,
    1009: ExchangeUnavailable,
    1012: AuthenticationError,
    1400: AuthenticationError,
    2000: AuthenticationError,
    2001: InvalidOrder,  # signature expired: a stale signed request, sign again
    2002: AuthenticationError,
    2003: AuthenticationError,
    2004: AuthenticationError,
    2008: InvalidOrder,
    2012: InvalidOrder,
    2032: InvalidOrder,
    2062: OrderBelowMinimum,
    2064: InvalidOrder,
    2065: InvalidOrder,
    2066: OrderBelowMinimum,
    2067: OrderBelowMinimum,
    2080: InsufficientFunds,
    2090: RateLimitExceeded,
    2400: InvalidOrder,
    2401: InvalidOrder,
    2402: InvalidOrder,
    3021: OrderNotFound,
}


def map_error(code: int | None, message: str, http_status: int, what: str) -> ExchangeError:
    """The typed error of a GRVT error body (``{"code", "message", "status"}``)."""
    text = f"grvt {what}: {code if code is not None else 'HTTP ' + str(http_status)} {message}".rstrip()
    cls = ERROR_TABLE.get(code) if code is not None else None
    if http_status == 429 or cls is RateLimitExceeded:
        return RateLimitExceeded(text)
    if cls is None:
        if http_status >= 500:
            cls = ExchangeUnavailable
        elif http_status in (401, 403):
            cls = AuthenticationError
        elif http_status == 404:
            cls = OrderNotFound
        else:
            cls = ExchangeError
    return cls(text)


def error_fields(body: Any) -> tuple[int | None, str]:
    """(code, message) of an error body in the full or the lite schema; (None, "") otherwise."""
    if not isinstance(body, Mapping):
        return None, ""
    code = body.get("code", body.get("c"))
    message = body.get("message", body.get("m"))
    number = code if isinstance(code, int) and not isinstance(code, bool) else None
    return number, str(message or "")[:200]


# ---------------------------------------------------------------------------------------------
# Orders, fills, positions
# ---------------------------------------------------------------------------------------------

STATUS_TABLE: dict[str, OrderStatus] = {
    "PENDING": OrderStatus.PENDING,
    "OPEN": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "REJECTED": OrderStatus.REJECTED,
    "CANCELLED": OrderStatus.CANCELLED,
}
POST_ONLY_REASON = "FAIL_POST_ONLY"


def order_status(status: str, reject_reason: str, filled: Decimal) -> OrderStatus:
    """Our status for GRVT's (status, reject_reason); an order cancelled for its expiry is EXPIRED."""
    mapped = STATUS_TABLE.get(status, OrderStatus.UNKNOWN)
    if mapped in (OrderStatus.CANCELLED, OrderStatus.REJECTED) and reject_reason == "EXPIRED":
        return OrderStatus.EXPIRED
    if mapped is OrderStatus.OPEN and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return mapped


def timestamp_seconds(raw: Any, fallback: float) -> float:
    """A GRVT time (unix nanoseconds, as a string) in epoch seconds; ``fallback`` when missing or
    junk (the shared helper knows s, ms and µs, and GRVT alone counts in ns)."""
    try:
        nanos = int(str(raw))
    except ValueError:
        return fallback
    return nanos / NANOS if 0 < nanos < 2**63 else fallback


def _first(values: Any, what: str) -> Any:
    if not isinstance(values, list) or not values:
        raise InvalidVenueData("missing field", what)
    return values[0]


def _state_fields(state: Mapping[str, Any]) -> tuple[str, str, Decimal, Decimal | None]:
    """(status, reject reason, cumulative traded size, average fill price) of an order state."""
    status = str(state.get("status") or "")
    reason = str(state.get("reject_reason") or "")
    traded = venue_validation.size(_first(state.get("traded_size"), "traded_size"), "traded_size")
    average_raw = state.get("avg_fill_price")
    average = (
        venue_validation.size(_first(average_raw, "avg_fill_price"), "avg_fill_price")
        if average_raw
        else None
    )
    return status, reason, traded, average if average else None


def venue_status(status: str, reason: str) -> str:
    return f"{status}:{reason}" if reason and reason != "UNSPECIFIED" else status


def order_report(raw: Mapping[str, Any], now: float) -> OrderReport | None:
    """A full order object (REST answers and the ``v1.order`` feed); None without a client id."""
    metadata = raw.get("metadata")
    client_id = metadata.get("client_order_id") if isinstance(metadata, Mapping) else None
    if client_id in (None, ""):
        return None
    leg = _first(raw.get("legs"), "legs")
    if not isinstance(leg, Mapping):
        raise InvalidVenueData("wrong type", "order leg")
    state = raw.get("state")
    if not isinstance(state, Mapping):
        raise InvalidVenueData("missing field", "state")
    status, reason, traded, average = _state_fields(state)
    size = venue_validation.price(leg.get("size"), "size")
    limit = leg.get("limit_price")
    is_ioc = (
        raw.get("time_in_force") in ("IMMEDIATE_OR_CANCEL", "FILL_OR_KILL") or raw.get("is_market") is True
    )
    return OrderReport(
        client_order_id=str(client_id),
        order_id=_order_id(raw.get("order_id")),
        contract_id=str(leg.get("instrument") or ""),
        side=OrderSide.BUY if leg.get("is_buying_asset") is True else OrderSide.SELL,
        order_type=OrderType.MARKET if is_ioc else OrderType.LIMIT,
        size=size,
        price=venue_validation.size(limit, "limit_price") if limit not in (None, "") else Decimal(0),
        status=order_status(status, reason, traded),
        venue_status=venue_status(status, reason),
        filled_size=traded,
        average_fill_price=average,
        timestamp=timestamp_seconds(state.get("update_time"), now),
        post_only=raw.get("post_only") is True,
    )


def _order_id(raw: Any) -> str | None:
    """The venue's order id; "0x00" (what create_order answers before matching) is no id."""
    text = str(raw or "")
    if not text or (re.fullmatch(r"0x0*", text) is not None):
        return None
    return text


@dataclass(frozen=True)
class StateUpdate:
    """A ``v1.state`` feed: an order's new state, by id only (the order itself is not repeated)."""

    client_order_id: str
    order_id: str | None
    status: str
    reject_reason: str
    traded: Decimal
    average_fill_price: Decimal | None
    timestamp: float


def state_update(feed: Mapping[str, Any], now: float) -> StateUpdate | None:
    client_id = feed.get("client_order_id")
    state = feed.get("order_state")
    if client_id in (None, "") or not isinstance(state, Mapping):
        return None
    status, reason, traded, average = _state_fields(state)
    return StateUpdate(
        client_order_id=str(client_id),
        order_id=_order_id(feed.get("order_id")),
        status=status,
        reject_reason=reason,
        traded=traded,
        average_fill_price=average,
        timestamp=timestamp_seconds(state.get("update_time"), now),
    )


def trade_report(feed: Mapping[str, Any], now: float) -> TradeReport:
    """A ``v1.fill`` feed (or a fill_history item): one execution with its exact fee."""
    trade_id = feed.get("trade_id")
    if not isinstance(trade_id, str) or not trade_id:
        raise InvalidVenueData("missing field", "trade_id")
    client_id = feed.get("client_order_id")
    is_taker = feed.get("is_taker")
    return TradeReport(
        trade_id=trade_id,
        client_order_id=str(client_id) if client_id not in (None, "") else None,
        order_id=_order_id(feed.get("order_id")),
        size=venue_validation.price(feed.get("size"), "fill size"),
        price=venue_validation.price(feed.get("price"), "fill price"),
        fee=venue_validation.venue_decimal(feed.get("fee"), "fee")
        if feed.get("fee") not in (None, "")
        else None,
        is_maker=(not is_taker) if isinstance(is_taker, bool) else None,
        timestamp=timestamp_seconds(feed.get("event_time"), now),
    )


def position(raw: Mapping[str, Any]) -> Position:
    """A position object (``full/v1/positions`` and the ``v1.position`` feed); size is signed."""
    instrument = raw.get("instrument")
    if not isinstance(instrument, str) or not instrument:
        raise InvalidVenueData("missing field", "position instrument")
    liquidation = raw.get("est_liquidation_price")
    liquidation_price = (
        to_decimal(liquidation, "est_liquidation_price") if liquidation not in (None, "") else None
    )
    return Position(
        contract_id=instrument,
        size=venue_validation.venue_decimal(raw.get("size"), "position size"),
        entry_price=venue_validation.size(raw.get("entry_price") or "0", "entry_price"),
        unrealized_pnl=venue_validation.venue_decimal(raw.get("unrealized_pnl") or "0", "unrealized_pnl"),
        realized_pnl=venue_validation.venue_decimal(raw.get("realized_pnl") or "0", "realized_pnl"),
        liquidation_price=liquidation_price if liquidation_price and liquidation_price > 0 else None,
    )


def best_bid_ask(feed: Mapping[str, Any]) -> tuple[Decimal, Decimal] | None:
    """Best bid and ask of a (mini) ticker; None while either side is missing or empty."""
    bid, ask = feed.get("best_bid_price"), feed.get("best_ask_price")
    if bid in (None, "", "0", "0.0") or ask in (None, "", "0", "0.0"):
        return None
    return venue_validation.price(bid, "best_bid_price"), venue_validation.price(ask, "best_ask_price")


def book_levels(levels: Any, what: str) -> list[tuple[Decimal, Decimal]]:
    """One side of a book message as (price, size) pairs, every level checked first."""
    if not isinstance(levels, list):
        raise InvalidVenueData("wrong type", f"{what} is not a list")
    result = []
    for level in levels:
        if not isinstance(level, Mapping):
            raise InvalidVenueData("wrong type", f"a {what} level is not an object")
        result.append(
            (
                venue_validation.price(level.get("price"), f"{what} price"),
                venue_validation.size(level.get("size"), f"{what} size"),
            )
        )
    return result


def funding_fraction(raw: Any) -> Decimal:
    """A published funding rate (percent) as a fraction of notional per interval."""
    return venue_validation.venue_decimal(raw, "funding_rate") / 100


# ---------------------------------------------------------------------------------------------
# Stream sequence numbers
# ---------------------------------------------------------------------------------------------

SNAPSHOT, DELTA, DUPLICATE, GAP = "snapshot", "delta", "duplicate", "gap"


class FeedSequence:
    """Continuity of one feed (stream + selector): GRVT numbers a feed's messages 1, 2, 3...
    and every snapshot 0. ``classify`` names each message SNAPSHOT, DELTA (the next one),
    DUPLICATE (already seen: ignore it) or GAP (messages were lost: resync). ``expect`` sets the
    number the next delta must carry (a subscription's ``first_sequence_number``); without it
    (after a reset or a gap) the first delta is taken as the start.

    The api-spec documents the announced number as the first delta's; should the venue mean
    something else, every resubscription would "gap" at once and resubscribe forever. So after
    ``TRUSTED_FIRST_MISSES`` misses in a row at the announced number, announcements are ignored
    for this feed (continuity is still checked from the first delta on)."""

    TRUSTED_FIRST_MISSES = 3

    def __init__(self) -> None:
        self.last: int | None = None
        self.gaps = 0
        self.first_misses = 0
        self._expecting = False

    @property
    def trusts_announcements(self) -> bool:
        return self.first_misses < self.TRUSTED_FIRST_MISSES

    def reset(self) -> None:
        self.last = None
        self._expecting = False

    def expect(self, first: int) -> None:
        """The next delta must carry ``first`` (what a subscription's answer announces)."""
        if self.trusts_announcements:
            self.last = first - 1
            self._expecting = True
        else:
            self.reset()

    def classify(self, message: Mapping[str, Any]) -> str:
        sequence = _sequence(message.get("sequence_number"), "sequence_number")
        if sequence == 0:
            return SNAPSHOT
        last = self.last
        if last is not None and sequence <= last:
            return DUPLICATE
        previous = message.get("prev_sequence_number")
        if last is not None and sequence != last + 1:
            if previous in (None, "") or _sequence(previous, "prev_sequence_number") != last:
                self.gaps += 1
                self.first_misses = self.first_misses + 1 if self._expecting else 0
                self.reset()
                return GAP
        if self._expecting:
            self.first_misses = 0
        self._expecting = False
        self.last = sequence
        return DELTA


def _sequence(raw: Any, what: str) -> int:
    number = to_decimal(raw if raw not in (None, "") else None, what)
    if number != number.to_integral_value() or not 0 <= number < 2**63:
        raise InvalidVenueData("bad number", f"{what} is not a sequence number")
    return int(number)
