"""Lighter (zkLighter) perpetuals client.

How it talks to the venue, and why:

* REST is a thin aiohttp client of our own (orderBooks/orderBookDetails, account,
  accountActiveOrders/accountInactiveOrders, funding-rates, sendTx), so every answer goes through
  one error mapping, one rate limiter and one retry policy, and numbers parse straight to Decimal
  and are checked (helpers.venue_validation: finite, prices > 0, sizes >= 0); a malformed body
  is InvalidVenueData naming the endpoint. The SDK's own REST calls (nextNonce, apikeys) take
  tokens from the same limiter.
* Transactions go over the WebSocket (``jsonapi/sendtx``) while it is up, HTTP sendTx
  otherwise; how replies are matched to requests is described at :meth:`LighterClient._send_tx`.
* Transactions are signed by lighter-sdk's ``SignerClient`` (a bundled native library; measured
  ~3.3-4.8 ms per signature when called on the event-loop thread, ~0.5-1.0 ms in a worker
  thread: every native call made from the process's main thread re-reads /proc/self/maps (Go's
  cgo finding the main thread's stack), so signing and auth tokens run off the loop's thread;
  transactions in one dedicated signing thread started at connect, so a signature never queues
  behind the SDK's blocking API-key check or other default-executor work) with nonces from the
  SDK's own nonce manager.
  An "invalid nonce" answer (21104) hard-refreshes the nonce from the venue and retries once;
  every reconnect and every ambiguous send (timeout, 5xx) also forces a refresh before the next
  transaction, so restarts and lost answers do not leave us with nonce errors.
* One :class:`ReconnectingWebSocket` carries ``order_book/{market}`` (a local book rebuilt from
  snapshot + deltas with ``begin_nonce``/offset continuity checks) and
  ``account_orders/{market}/{account}`` (our orders, mapped by :func:`order_report` into the
  shared :class:`~exchanges.venue_orders.VenueOrders`, which derives fills from increases of the
  cumulative ``filled_base_amount``, so duplicated or reordered messages never double-count) and
  ``account_all_trades/{account}`` (each execution with its exact fee, :func:`trade_reports`).
  connect() waits until the account stream's subscription is answered; every subscription
  answer is tracked (see "subscription answers" below). A malformed message is counted
  (``malformed``), logged once per kind a minute, dropped, and the book or our orders resynced.
* Placing is not filling: ``sendTx`` only says the transaction was accepted. Placement waits
  (bounded by ``order_ack_timeout``) for the order's first state on the account stream; if none
  arrives it returns ``OrderResult(status=PENDING)`` with our client id and the order index is
  learned later. A post-only order that would cross raises :class:`PostOnlyRejected`.
* Order ids: Lighter's ``order_index``. ``cancel_order`` and ``get_order_info`` also accept our
  14-digit client order id (our ids are below 2**48; Lighter's order indices are at or above it).
  ``find_order`` looks our client id up among the active orders, then the finished ones page by
  page (``cursor``/``next_cursor``, at most ``inactive_orders_max_pages`` pages of 100); a search
  cut short by that bound raises OrderSearchTruncated, never OrderNotFound.
* Resting orders carry the SDK's default expiry, 28 days (the venue accepts up to about 30) —
  there is no good-till-cancel on Lighter. An expiry arrives as an EXPIRED update, never silently.
* Auth tokens (REST reads and the account stream) live ``auth_token_ttl`` seconds (venue cap 8 h)
  and are renewed when half their life is gone; the authenticated streams are subscribed again
  with the new token (no unsubscribe: no gap; "already subscribed" confirms), and orders are
  reconciled from REST after every reconnect. The venue's ``shutdown`` notice (``close_in_ms``)
  makes the stream reconnect at once.

Settings come from the environment (the bot loads the .env first): LIGHTER_API_PRIVATE_KEY,
LIGHTER_ACCOUNT_INDEX, LIGHTER_API_KEY_INDEX, LIGHTER_NETWORK (mainnet|testnet),
LIGHTER_BASE_URL / LIGHTER_WS_URL / LIGHTER_CHAIN_ID overrides. ``config.exchange_params`` may
override every setting except the private key, and tunes timeouts (see ``_PARAM_DEFAULTS``).
Against the loopback mock (tests/mock_venues/lighter_venue.py): ``MockLighterVenue.env()`` returns
exactly these variables (LIGHTER_BASE_URL=http://127.0.0.1:PORT, LIGHTER_WS_URL=
ws://127.0.0.1:PORT/stream, LIGHTER_CHAIN_ID=304, account, key index, private key); pass them as
the environment or as ``LighterClient(config, clock, env=venue.env())``. The mock serves the
API-key lookup, so ``check_api_key`` can stay on; a mock without it needs ``check_api_key=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import os
import re
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp

from exchanges.base import (
    AccountSnapshot,
    AuthenticationError,
    BaseExchangeClient,
    BatchOutcome,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    FundingRate,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    LimitOrderRequest,
    MalformedMessage,
    MarketUpdate,
    NetworkError,
    NotProcessed,
    OrderBelowMinimum,
    OrderInfo,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    PostOnlyRejected,
    RateLimitExceeded,
    RequestTimeout,
    SlippageExceeded,
)
from exchanges.connector_kit import (
    HttpSession,
    error_for_status,
    json_or_none,
    optional_price,
    order_result,
    slippage_bound,
    to_decimal,
    with_retry_after,
)
from exchanges.connector_kit import opt_int as _opt_int
from exchanges.connector_kit import timestamp_seconds as _timestamp_seconds
from exchanges.venue_orders import OrderReport, OrderSearchTruncated, TradeReport, VenueOrder, VenueOrders
from helpers import safe_json, venue_validation
from helpers.clock import Clock, Signal
from helpers.rate_limiter import Priority, RateLimiter, RetryPolicy
from helpers.reconnecting_websocket import SEND_ERRORS, ReconnectingWebSocket
from helpers.trading_config import TradingConfig
from helpers.venue_validation import InvalidVenueData, MalformedCounter, rest_body
from helpers.worker_thread import WorkerThread

# lighter-sdk imports py_ecc, which raises the recursion limit to 100,000 for its own pairing
# code (never used here); that disables the interpreter's guard for every C recursion, so the
# limit is put back once the SDK is loaded.
with safe_json.recursion_limit_kept():
    import lighter
    from lighter.nonce_manager import OptimisticNonceManager

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

NETWORKS: dict[str, tuple[str, str, int]] = {
    "mainnet": ("https://mainnet.zklighter.elliot.ai", "wss://mainnet.zklighter.elliot.ai/stream", 304),
    "testnet": ("https://testnet.zklighter.elliot.ai", "wss://testnet.zklighter.elliot.ai/stream", 300),
}

#: Tunables read from ``config.exchange_params`` (with these defaults).
_PARAM_DEFAULTS: dict[str, Any] = {
    "check_api_key": True,  # ask the venue whether our key is registered (native HTTP call)
    "order_ack_timeout": 5.0,  # wait this long for an order's first state after sendTx
    "bbo_timeout": 10.0,  # wait this long for the first book snapshot
    "ws_connect_timeout": 15.0,  # connect() fails if the stream is not up by then
    "rest_timeout": 10.0,
    "rest_requests_per_minute": 60.0,  # Lighter's standard-account REST budget
    "rest_max_attempts": 4,
    "auth_token_ttl": 7200.0,  # seconds; venue maximum is 8 h
    "ws_ping_interval": 20.0,  # protocol-level pings
    "ws_app_ping_interval": 0.0,  # >0: also send {"type":"ping"} this often (0 = off)
    "ws_compression": False,  # offer permessage-deflate (costs CPU on every frame, both sides)
    "backoff_base": 0.5,
    "backoff_cap": 30.0,
    "inactive_orders_max_pages": 10,  # order look-ups read at most this many pages of finished orders
    "inactive_orders_page_size": 100,  # finished orders a page (the venue allows 1-100)
    # Subscribe to account_all_trades: each trade's exact fee replaces the estimate a fill was
    # announced with (a fill never waits for its trade record, so neither does its take-profit).
    "trade_fees": True,
    "ws_orders": True,  # send transactions over the WebSocket when it is up (HTTP as the fallback)
    # Transactions a minute over the WebSocket (None: rest_requests_per_minute). Lighter's docs
    # cap a standard account's transactions at 60 a minute by default, whichever the path.
    "ws_tx_per_minute": None,
}

AUTH_TOKEN_MAX_TTL = 8 * 3600 - 60
#: API key indexes Lighter keeps for its own interfaces. The API docs' "Get Started" page
#: (apidocs.lighter.xyz, read 2026-11) says keys 2-254 are ours and 0-1 belong to the web and
#: mobile apps; one version of its "API keys" page reserves {0,1,2,3}, older ones 0-2. So 0-1
#: get a warning and 2-3 a note.
RESERVED_API_KEY_INDEXES = (0, 1)
DISPUTED_API_KEY_INDEXES = (2, 3)
MAX_CLIENT_ORDER_INDEX = 2**48 - 1
MAX_PRICE_UNITS = 2**32 - 1  # the signer takes the price as uint32
INVALID_NONCE_CODE = 21104
WS_NOT_SUBSCRIBED = 30002
WS_ALREADY_SUBSCRIBED = 30003
SUB_PENDING = "pending"
SUB_OK = "ok"
RECONCILE_MAX_PAGES = 3  # a reconnect's read-back looks no deeper into the finished orders
AUTH_RECOVERY_INTERVAL = 30.0  # at most one token-rejected recovery per this many seconds
FEE_QUANTUM = Decimal("0.000001")  # USDC's precision on Lighter
MAX_INACTIVE_PAGE_SIZE = 100  # accountInactiveOrders' largest page (the SDK checks 1 <= limit <= 100)
#: Transactions per sendTxBatch. Lighter's own pages do not state a cap; third-party clients
#: use 15 (NautilusTrader's LIGHTER_MAX_BATCH_TX) and 50 (a Rust SDK's example): we take the
#: smaller (unsourced at Lighter) and split longer batches.
MAX_BATCH_TXS = 15
#: Longest the loop waits for the signing thread to take a signature before it commits the
#: journal beside it (the thread's wake-up is some 50-100 µs; see helpers.worker_thread).
SIGNER_HANDOVER_SECONDS = 0.0005
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{80}$")


@dataclass(frozen=True)
class LighterSettings:
    """Connection settings; the private key is excluded from repr so it never reaches a log."""

    private_key: str = field(repr=False)
    account_index: int
    api_key_index: int
    network: str
    base_url: str
    ws_url: str
    chain_id: int

    @classmethod
    def load(cls, env: Mapping[str, str], params: Mapping[str, Any]) -> LighterSettings:
        """Read and validate; every problem is a one-line ConfigurationError naming the variable."""
        raw_key = (env.get("LIGHTER_API_PRIVATE_KEY") or "").strip()
        if not raw_key:
            raise ConfigurationError("LIGHTER_API_PRIVATE_KEY is not set (put it in your .env file)")
        key = raw_key[2:] if raw_key.lower().startswith("0x") else raw_key
        if not _HEX_KEY.match(key):
            raise ConfigurationError(
                "LIGHTER_API_PRIVATE_KEY is not a valid Lighter API private key (expected 40 bytes of hex)"
            )
        account_index = _int_setting("LIGHTER_ACCOUNT_INDEX", params.get("account_index"), env, required=True)
        api_key_index = _int_setting("LIGHTER_API_KEY_INDEX", params.get("api_key_index"), env, required=True)
        if account_index is None or account_index < 0:
            raise ConfigurationError("LIGHTER_ACCOUNT_INDEX must be a non-negative integer")
        if api_key_index is None or not 0 <= api_key_index <= 254:
            raise ConfigurationError("LIGHTER_API_KEY_INDEX must be an integer between 0 and 254")
        if api_key_index in RESERVED_API_KEY_INDEXES:
            logger.warning(
                "LIGHTER_API_KEY_INDEX=%d is reserved for Lighter's web and mobile apps (API docs: "
                "keys 2-254 are for API use); a key shared with an app clashes on nonces",
                api_key_index,
            )
        elif api_key_index in DISPUTED_API_KEY_INDEXES:
            logger.info(
                "LIGHTER_API_KEY_INDEX=%d: some versions of Lighter's API docs reserve 2-3 for "
                "its apps; if nonce errors appear, register a key at 4 or above",
                api_key_index,
            )
        network = str(params.get("network") or env.get("LIGHTER_NETWORK") or "mainnet").strip().lower()
        if network not in NETWORKS:
            raise ConfigurationError(f"LIGHTER_NETWORK must be one of {', '.join(NETWORKS)}")
        default_url, default_ws, default_chain = NETWORKS[network]
        base_url = str(params.get("base_url") or env.get("LIGHTER_BASE_URL") or default_url).rstrip("/")
        ws_url = str(params.get("ws_url") or env.get("LIGHTER_WS_URL") or default_ws)
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("LIGHTER_BASE_URL must start with http:// or https://")
        if not ws_url.startswith(("ws://", "wss://")):
            raise ConfigurationError("LIGHTER_WS_URL must start with ws:// or wss://")
        chain_id = _int_setting("LIGHTER_CHAIN_ID", params.get("chain_id"), env, required=False)
        return cls(
            private_key=key,
            account_index=account_index,
            api_key_index=api_key_index,
            network=network,
            base_url=base_url,
            ws_url=ws_url,
            chain_id=chain_id if chain_id is not None else default_chain,
        )


def _int_setting(name: str, override: Any, env: Mapping[str, str], *, required: bool) -> int | None:
    value = override if override is not None else env.get(name)
    if value is None or str(value).strip() == "":
        if required:
            raise ConfigurationError(f"{name} is not set (put it in your .env file)")
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        # Never echo the value: a key pasted into the wrong variable would reach the console.
        raise ConfigurationError(f"{name} must be an integer (digits only)") from None


# ---------------------------------------------------------------------------------------------
# Units, statuses and errors: pure functions, one table each
# ---------------------------------------------------------------------------------------------


def to_units(value: Decimal, decimals: int, what: str = "value") -> int:
    """Decimal → Lighter integer units (value * 10**decimals), exactly, or InvalidOrder."""
    scaled = Decimal(value).scaleb(decimals)
    integral = scaled.to_integral_value()
    if scaled != integral:
        raise InvalidOrder(f"{what} {value} is not a multiple of {Decimal(1).scaleb(-decimals)}")
    return int(integral)


def from_units(units: int, decimals: int) -> Decimal:
    """Lighter integer units → Decimal, exactly."""
    return Decimal(int(units)).scaleb(-decimals)


#: Lighter order status → (our status, the error a rejection surfaces as).
STATUS_TABLE: dict[str, tuple[OrderStatus, type[ExchangeError] | None]] = {
    "in-progress": (OrderStatus.PENDING, None),
    "pending": (OrderStatus.PENDING, None),
    "open": (OrderStatus.OPEN, None),
    "filled": (OrderStatus.FILLED, None),
    "canceled": (OrderStatus.CANCELLED, None),
    "canceled-post-only": (OrderStatus.REJECTED, PostOnlyRejected),
    "canceled-reduce-only": (OrderStatus.REJECTED, InvalidOrder),
    "canceled-position-not-allowed": (OrderStatus.REJECTED, InvalidOrder),
    "canceled-margin-not-allowed": (OrderStatus.REJECTED, InsufficientFunds),
    "canceled-invalid-balance": (OrderStatus.REJECTED, InsufficientFunds),
    "canceled-too-much-slippage": (OrderStatus.CANCELLED, SlippageExceeded),
    "canceled-not-enough-liquidity": (OrderStatus.CANCELLED, SlippageExceeded),
    "canceled-self-trade": (OrderStatus.CANCELLED, None),
    "canceled-expired": (OrderStatus.EXPIRED, None),
    "canceled-oco": (OrderStatus.CANCELLED, None),
    "canceled-child": (OrderStatus.CANCELLED, None),
    "canceled-liquidation": (OrderStatus.CANCELLED, None),
}


def map_order_status(status: str | None, filled: Decimal = Decimal(0)) -> OrderStatus:
    """One place that turns a Lighter status into ours.

    ``open`` with a fill is PARTIALLY_FILLED; a rejection-type cancel of an order that already
    traded is CANCELLED (it was accepted); unknown ``canceled-*`` variants are CANCELLED and
    anything else unknown is UNKNOWN, to be reconciled, never guessed as open or filled.
    """
    entry = STATUS_TABLE.get(status or "")
    if entry is None:
        return OrderStatus.CANCELLED if (status or "").startswith("canceled") else OrderStatus.UNKNOWN
    mapped = entry[0]
    if mapped is OrderStatus.OPEN and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    if mapped is OrderStatus.REJECTED and filled > 0:
        return OrderStatus.CANCELLED
    return mapped


def rejection_error(status: str | None) -> type[ExchangeError] | None:
    entry = STATUS_TABLE.get(status or "")
    return entry[1] if entry else None


#: Lighter error codes → our taxonomy (codes from ccxt's table and the venue's answers).
ERROR_CODE_TABLE: dict[int, type[ExchangeError]] = {
    INVALID_NONCE_CODE: InvalidNonce,
    21029: InsufficientFunds,  # insufficient margin
    21507: InsufficientFunds,  # below maintenance margin
    21508: InsufficientFunds,  # below initial margin
    21739: InsufficientFunds,  # not enough margin to create the order
    21506: RateLimitExceeded,  # too many pending txs
    21600: OrderNotFound,  # not an active limit order
    21700: OrderNotFound,  # invalid order index
    21709: OrderNotFound,  # order is inactive
    21715: OrderNotFound,  # not an active order
    21603: OrderBelowMinimum,  # invalid min amounts
    21706: OrderBelowMinimum,  # invalid order base or quote amount
    23000: RateLimitExceeded,
    23001: RateLimitExceeded,
    23002: RateLimitExceeded,
    23003: RateLimitExceeded,
}

_AUTH_WORDS = ("signature", "api key", "apikey", "auth", "unauthorized", "pubkey")


def map_error(code: int | None, message: str = "", http_status: int | None = None) -> ExchangeError:
    """Build the typed error for a Lighter error code (or HTTP status when there is no code)."""
    text = (
        f"lighter error {code}: {message}" if code is not None else f"lighter HTTP {http_status}: {message}"
    )
    if http_status == 429:
        return RateLimitExceeded(text)
    if code is not None and code in ERROR_CODE_TABLE:
        cls = ERROR_CODE_TABLE[code]
    elif code is not None and 23000 <= code < 24000:
        cls = RateLimitExceeded
    elif code is not None and 21600 <= code < 22000:
        cls = InvalidOrder
    else:
        cls = error_for_status(http_status) if http_status is not None else ExchangeError
        if cls is ExchangeError and any(word in message.lower() for word in _AUTH_WORDS):
            cls = AuthenticationError
    return cls(text)


# ---------------------------------------------------------------------------------------------
# Local order book
# ---------------------------------------------------------------------------------------------


_FAST_NUMBER_CHARS = 40
_MAX_NUMBER = venue_validation.MAX_MAGNITUDE


class BookGap(Exception):
    """A delta does not continue the book we hold; a fresh snapshot is needed."""


class LocalBook:
    """One market's book from ``order_book`` snapshots and deltas.

    Continuity: when messages carry ``begin_nonce``/``nonce`` a delta must begin where the last
    one ended; otherwise ``offset`` must increase. An exact repeat of the last message is ignored;
    anything else out of line raises :class:`BookGap` once, and the book stays invalid (deltas
    ignored) until the next snapshot. Size 0 removes a level. Best bid/ask are the true top
    levels, never filtered by size or notional.

    Validation (issue 8): every level of a message is parsed and checked (price > 0, size >= 0,
    finite) before any of it is applied, so a message with one bad level changes nothing; a bad
    snapshot leaves the book invalid, never half-applied and marked valid. A crossed book (best
    bid >= best ask) is flagged in ``crossed`` and ``top()`` gives None for it.
    """

    def __init__(self, market_id: str) -> None:
        self.market_id = market_id
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.valid = False
        self.crossed = False
        self.nonce: int | None = None
        self.begin_nonce: int | None = None
        self.offset: int | None = None
        self.ready = asyncio.Event()
        self.gaps = 0

    def invalidate(self) -> None:
        self.valid = False
        self.ready.clear()

    def top(self) -> tuple[Decimal, Decimal] | None:
        if not self.valid or not self.bids or not self.asks:
            return None
        bid, ask = max(self.bids), min(self.asks)
        self.crossed = bid >= ask
        return None if self.crossed else (bid, ask)

    def apply_snapshot(self, book: Mapping[str, Any], offset: Any = None) -> None:
        """Replace the book; InvalidVenueData (book left invalid) if any level is bad."""
        self.invalidate()
        bids = self._parse_levels(book.get("bids") or [])
        asks = self._parse_levels(book.get("asks") or [])
        self.bids = {price: size for price, size in bids if size != 0}
        self.asks = {price: size for price, size in asks if size != 0}
        self.nonce = _opt_int(book.get("nonce"))
        self.begin_nonce = _opt_int(book.get("begin_nonce"))
        self.offset = _opt_int(book.get("offset", offset))
        self.valid = True
        self._update_ready()

    def apply_delta(self, book: Mapping[str, Any], offset: Any = None) -> bool:
        """Apply a delta; False if ignored (duplicate, or no snapshot yet), BookGap on a break,
        InvalidVenueData (nothing applied) if any level is bad."""
        if not self.valid:
            return False
        nonce = _opt_int(book.get("nonce"))
        begin = _opt_int(book.get("begin_nonce"))
        new_offset = _opt_int(book.get("offset", offset))
        if nonce is not None and begin is not None and self.nonce is not None:
            if nonce == self.nonce and begin == self.begin_nonce:
                return False
            if begin != self.nonce:
                self.gaps += 1
                self.invalidate()
                raise BookGap(f"market {self.market_id}: begin_nonce {begin} != last nonce {self.nonce}")
        elif new_offset is not None and self.offset is not None:
            if new_offset == self.offset:
                return False
            if new_offset < self.offset:
                self.gaps += 1
                self.invalidate()
                raise BookGap(f"market {self.market_id}: offset went back {self.offset} -> {new_offset}")
        bids = self._parse_levels(book.get("bids") or [])
        asks = self._parse_levels(book.get("asks") or [])
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size
        self.nonce = nonce if nonce is not None else self.nonce
        self.begin_nonce = begin if begin is not None else self.begin_nonce
        self.offset = new_offset if new_offset is not None else self.offset
        self._update_ready()
        return True

    @staticmethod
    def _parse_levels(levels: Any) -> list[tuple[Decimal, Decimal]]:
        """Every level of one side as checked (price, size) pairs, or InvalidVenueData.

        Runs for every level of every delta, on the loop, often right after a fill and before
        the bot reacts: the venue's usual short non-empty strings take a fast path; anything
        else goes through helpers.venue_validation, which says precisely what is wrong.
        """
        if not isinstance(levels, list):
            raise InvalidVenueData("wrong type", "book levels are not a list")
        parsed: list[tuple[Decimal, Decimal]] = []
        for level in levels:
            if not isinstance(level, dict):
                raise InvalidVenueData("wrong type", "a book level is not an object")
            raw_price = level.get("price")
            raw_size = level.get("size")
            if (
                type(raw_price) is str
                and type(raw_size) is str
                and 0 < len(raw_price) <= _FAST_NUMBER_CHARS
                and 0 < len(raw_size) <= _FAST_NUMBER_CHARS
            ):
                try:
                    price, size = Decimal(raw_price), Decimal(raw_size)
                except InvalidOperation:
                    pass
                else:
                    if (
                        price.is_finite()
                        and size.is_finite()
                        and 0 < price <= _MAX_NUMBER
                        and 0 <= size <= _MAX_NUMBER
                    ):
                        parsed.append((price, size))
                        continue
            parsed.append(
                (
                    venue_validation.price(raw_price, "level price"),
                    venue_validation.size(raw_size, "level size"),
                )
            )
        return parsed

    def _update_ready(self) -> None:
        if self.top() is not None:
            self.ready.set()
        else:
            self.ready.clear()


def _request_channel(channel: Any) -> str:
    """A channel as Lighter names it in replies ("account_orders:0:5") in request form ("/")."""
    return str(channel or "").replace(":", "/")


# ---------------------------------------------------------------------------------------------
# Order reports: Lighter's order object mapped into the shared venue-order vocabulary
# ---------------------------------------------------------------------------------------------


def order_report(raw: Mapping[str, Any], now: float) -> OrderReport | None:
    """One Lighter order object (account_orders stream or REST) as an OrderReport.

    None when it carries no client id (not placed through a client id, so not ours). Fill
    arithmetic, de-duplication and sticky states are :class:`VenueOrders`' business.
    """
    cid_raw = raw.get("client_order_index", raw.get("client_order_id"))
    if cid_raw is None:
        return None
    try:
        client_id = str(int(cid_raw))
    except (TypeError, ValueError, OverflowError):
        raise MalformedMessage(f"bad client_order_index {str(cid_raw)[:30]!r}") from None
    filled = venue_validation.size(raw.get("filled_base_amount", "0"), "filled_base_amount")
    size = venue_validation.venue_decimal(
        raw.get("initial_base_amount"), "initial_base_amount", positive=True
    )
    # A cumulative fill may pass the size by rounding of at most one step of the size's own
    # precision; more is a malformed report (VenueOrders then refuses anything above the size).
    venue_validation.filled_within(filled, size, Decimal(1).scaleb(size.as_tuple().exponent), client_id)
    venue_status = raw.get("status") or ""
    if not isinstance(venue_status, str) or len(venue_status) > 64:
        raise InvalidVenueData("wrong type", "order status is not a short string")
    return OrderReport(
        client_order_id=client_id,
        order_id=str(raw.get("order_index") or raw.get("order_id") or "") or None,
        contract_id=str(raw.get("market_index", raw.get("market_id", ""))),
        side=OrderSide.SELL if raw.get("is_ask") else OrderSide.BUY,
        order_type=OrderType.MARKET if raw.get("type") == "market" else OrderType.LIMIT,
        size=size,
        price=venue_validation.price(raw.get("price"), "price"),
        status=map_order_status(venue_status, filled),
        venue_status=venue_status,
        filled_size=filled,
        filled_quote=venue_validation.size(raw.get("filled_quote_amount", "0"), "filled_quote_amount"),
        timestamp=_timestamp_seconds(raw.get("updated_at") or raw.get("timestamp"), now),
        post_only=raw.get("time_in_force") == "post-only",
    )


#: Trade records give each side's fee as a rate in millionths of the notional (``taker_fee``
#: 196 on 314.32 USDC is 0.0616 USDC, 1.96 bps); a side without its fee key paid none (the
#: venue omits zero fees: standard accounts).
FEE_RATE_UNITS = Decimal(1_000_000)


def trade_reports(raw: Mapping[str, Any], account_index: int, now: float) -> list[TradeReport]:
    """Our side(s) of one Lighter trade record (account_all_trades) as TradeReports, exact fee.

    Our side is the one whose ``{ask,bid}_account_id`` is our account; a self-trade gives two.
    """
    trade_id = raw.get("trade_id_str") or raw.get("trade_id")
    if trade_id is None or isinstance(trade_id, (dict, list, bool)):
        raise InvalidVenueData("missing field", "trade_id")
    size = venue_validation.venue_decimal(raw.get("size"), "trade size", positive=True)
    price = venue_validation.price(raw.get("price"), "trade price")
    notional = raw.get("usd_amount")
    usd = venue_validation.size(notional, "usd_amount") if notional is not None else size * price
    is_maker_ask = bool(raw.get("is_maker_ask"))
    reports = []
    for side, is_ask in (("ask", True), ("bid", False)):
        if _opt_int(raw.get(f"{side}_account_id")) != account_index:
            continue
        maker = is_maker_ask == is_ask
        rate = raw.get("maker_fee" if maker else "taker_fee", 0)
        fee_units = venue_validation.venue_decimal(rate, "fee")  # a rebate may be negative
        client_id = _opt_int(raw.get(f"{side}_client_id_str", raw.get(f"{side}_client_id")))
        order_id = _opt_int(raw.get(f"{side}_id_str", raw.get(f"{side}_id")))
        reports.append(
            TradeReport(
                trade_id=str(trade_id),
                client_order_id=str(client_id) if client_id else None,
                order_id=str(order_id) if order_id else None,
                size=size,
                price=price,
                fee=(usd * fee_units / FEE_RATE_UNITS).quantize(FEE_QUANTUM),
                is_maker=maker,
                timestamp=_timestamp_seconds(raw.get("timestamp"), now),
            )
        )
    return reports


def _client_id_of(raw: Mapping[str, Any]) -> str | None:
    """The client order index of a Lighter order object as text, or None."""
    value = raw.get("client_order_index", raw.get("client_order_id"))
    try:
        return str(int(value)) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _list_of(body: Any, key: str) -> list[dict[str, Any]]:
    """``body[key]`` as a list of objects (missing or null: empty), else InvalidVenueData.

    A listing must never be misread: "orders" as a string would otherwise look like an empty
    list, and an order search would take "not there" for an answer.
    """
    if not isinstance(body, dict):
        raise InvalidVenueData("wrong type", "the body is not an object")
    items = body.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidVenueData("wrong type", f"{key} is not a list of objects")
    return items


def _orders_of(body: Any) -> list[dict[str, Any]]:
    return _list_of(body, "orders")


def _decimals(value: Any, what: str) -> int:
    """A market's price/size decimals: an int in 0..18 (the signer's integer units)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 18:
        raise InvalidVenueData("number out of range", f"{what} decimals")
    return value


# ---------------------------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    return safe_json.loads(text)


_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


class LighterRest(HttpSession):
    """Minimal REST client on the shared HTTP session: limiter + retry policy, every failure typed."""

    def __init__(self, base_url: str, *, timeout: float, retry: RetryPolicy) -> None:
        super().__init__("lighter", timeout)
        self.base_url = base_url
        self.retry = retry

    async def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, auth: str | None = None
    ) -> Any:
        headers = {"authorization": auth} if auth else None
        return await self.retry.call(lambda: self._request("GET", path, params=params, headers=headers))

    async def send_tx(self, tx_type: int, tx_info: str, priority: Priority = Priority.NORMAL) -> Any:
        """POST /api/v1/sendTx; retried only on 429, since a lost answer leaves the outcome unknown."""
        # Encoded once here: aiohttp's form machinery costs ~0.1 ms per request on the hot path.
        body = urlencode({"tx_type": str(tx_type), "tx_info": tx_info}).encode()
        return await self.retry.call(
            lambda: self._request("POST", "/api/v1/sendTx", data=body, headers=_FORM_HEADERS),
            idempotent=False,
            priority=priority,
        )

    async def send_tx_batch(
        self, tx_types: list[int], tx_infos: list[str], priority: Priority = Priority.NORMAL
    ) -> Any:
        """POST /api/v1/sendTxBatch (form fields ``tx_types``/``tx_infos``: JSON arrays as text,
        as lighter-sdk's ``TransactionApi.send_tx_batch`` sends them); one request of the
        budget, retried only on 429 like sendTx."""
        body = urlencode({"tx_types": json.dumps(tx_types), "tx_infos": json.dumps(tx_infos)}).encode()
        return await self.retry.call(
            lambda: self._request("POST", "/api/v1/sendTxBatch", data=body, headers=_FORM_HEADERS),
            idempotent=False,
            priority=priority,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        what = f"{method} {path}"
        status, text, retry_after = await self.request(
            method, url, params=params, data=data, headers=headers, what=what
        )
        return self._parse(method, path, status, text, retry_after)

    @staticmethod
    def _parse(method: str, path: str, status: int, text: str, retry_after: str | None) -> Any:
        body = json_or_none(text)
        code = None
        message = ""
        if isinstance(body, dict):
            code = _opt_int(body.get("code"))
            message = str(body.get("message") or "")
        if status == 429 or (code is not None and 23000 <= code < 24000):
            error = RateLimitExceeded(f"lighter {path}: too many requests ({message or status})")
            raise with_retry_after(error, retry_after)
        if status >= 500:
            raise ExchangeUnavailable(f"lighter {method} {path}: HTTP {status} {message or text[:120]}")
        if code is not None and code not in (0, 200):
            raise map_error(code, message, status)
        if status >= 400:
            raise map_error(None, message or text[:120], status)
        if body is None:
            raise MalformedMessage(f"lighter {method} {path}: answer is not JSON")
        return body


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LighterMarket:
    market_id: str
    symbol: str
    size_decimals: int
    price_decimals: int
    min_base_amount: Decimal
    min_quote_amount: Decimal
    maker_fee_rate: Decimal = Decimal(0)
    taker_fee_rate: Decimal = Decimal(0)

    @property
    def tick_size(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_decimals)

    @property
    def size_step(self) -> Decimal:
        return Decimal(1).scaleb(-self.size_decimals)

    def contract_info(self) -> ContractInfo:
        return ContractInfo(
            ticker=self.symbol,
            contract_id=self.market_id,
            tick_size=self.tick_size,
            size_step=self.size_step,
            min_size=self.min_base_amount,
            min_notional=self.min_quote_amount,
        )


def _minute_budget(clock: Clock, per_minute: float, name: str) -> RateLimiter:
    """A token bucket that never exceeds ``per_minute`` in any rolling minute (Lighter counts a
    rolling minute): a burst of a twelfth, refilled at the rest. A bucket refilled at the full
    rate lets burst + rate through in the first minute (70 of a standard account's 60)."""
    burst = max(1.0, per_minute / 12)
    return RateLimiter(clock, max(per_minute - burst, 1.0), 60.0, burst=burst, name=name)


class LighterClient(BaseExchangeClient):
    """Lighter perpetuals through lighter-sdk's signer, our own REST and one reconnecting stream."""

    name = "lighter"
    gates_sends = True

    def __init__(self, config: TradingConfig, clock: Clock, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(config, clock)
        #: Signatures being computed, and a signal for when none is (see _on_ws_message).
        self._signing = 0
        self._signing_done = Signal()
        params = dict(config.exchange_params or {})
        self.settings = LighterSettings.load(os.environ if env is None else env, params)
        self.params = {key: params.get(key, default) for key, default in _PARAM_DEFAULTS.items()}
        self._ttl = float(min(float(self.params["auth_token_ttl"]), AUTH_TOKEN_MAX_TTL))
        self._limiter = _minute_budget(clock, float(self.params["rest_requests_per_minute"]), "lighter-rest")
        tx_rpm = float(self.params["ws_tx_per_minute"] or self.params["rest_requests_per_minute"])
        self._tx_limiter = _minute_budget(clock, tx_rpm, "lighter-ws-tx")
        self._retry = RetryPolicy(
            clock,
            max_attempts=int(self.params["rest_max_attempts"]),
            limiter=self._limiter,
            name="lighter-rest",
        )
        self._rest = LighterRest(
            self.settings.base_url, timeout=float(self.params["rest_timeout"]), retry=self._retry
        )
        self._signer: Any = None
        #: One long-lived thread signs every transaction (see the module docstring for why not the
        #: loop's thread); the default executor stays free for the SDK's blocking HTTP call.
        self._signing_thread = WorkerThread("lighter-signer")
        self._ws: ReconnectingWebSocket | None = None
        self._markets: dict[str, LighterMarket] = {}
        self._symbols: dict[str, str] = {}
        self._books: dict[str, LocalBook] = {}
        self._last_top: dict[str, tuple[Decimal, Decimal]] = {}
        self._stream_markets: set[str] = set()
        self._orders = VenueOrders(
            self._fee_rates, is_ours=self.client_ids.is_ours, fee_quantum=FEE_QUANTUM, name="lighter"
        )
        self._token: str | None = None
        self._token_expiry = 0.0
        self._token_lock = asyncio.Lock()
        self._nonce_dirty = True
        self._background: set[asyncio.Task[Any]] = set()
        self._token_task: asyncio.Task[None] | None = None
        self._connected_once = False
        self._last_auth_recovery = float("-inf")
        #: Subscription channel (request form) -> "pending", "ok" or the venue's refusal.
        self._subscriptions: dict[str, str] = {}
        self._subscription_changed = asyncio.Event()
        self.malformed = MalformedCounter("lighter", self.clock.now)
        self.shutdown_notices = 0
        #: sendtx requests sent over the stream and awaiting their reply: id -> (tx hash, future);
        #: a batch waits under its first transaction's hash.
        self._pending_txs: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self.ws_batches = 0
        self.http_batches = 0
        self._tx_ids = itertools.count(1)
        self.ws_txs = 0
        self.sign_seconds: deque[float] = deque(maxlen=10_000)  # recent signing times, for stats

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        await self._rest.open()
        try:
            self._signer = self._make_signer()
            self._signing_thread.start()
            if self.params["check_api_key"]:
                await self._check_api_key()
            await self._load_markets()
            market = await self._resolve_ticker(self.config.ticker)
            await self._auth_token()
            self._ws = ReconnectingWebSocket(
                self.settings.ws_url,
                self._on_ws_message,
                self.clock,
                on_connect=self._on_ws_connect,
                on_disconnect=self._on_ws_disconnect,
                ping_interval=float(self.params["ws_ping_interval"]),
                heartbeat_interval=float(self.params["ws_app_ping_interval"]) or None,
                heartbeat_message={"type": "ping"},
                backoff_base=float(self.params["backoff_base"]),
                backoff_cap=float(self.params["backoff_cap"]),
                compression="deflate" if self.params["ws_compression"] else None,
                loads=_loads,
                name="lighter-ws",
            )
            await self._ensure_streams(market.market_id)
            self._ws.start()
            started = self.clock.now()
            timeout = float(self.params["ws_connect_timeout"])
            if not await self._ws.wait_connected(timeout):
                raise ExchangeUnavailable(
                    f"lighter stream {self.settings.ws_url} not connected after "
                    f"{self.params['ws_connect_timeout']}s ({self._ws.last_error or 'no answer'})"
                )
            left = max(1.0, timeout - (self.clock.now() - started))
            await self._wait_account_stream(market.market_id, left)
            self._token_task = asyncio.create_task(self._renew_tokens(), name="lighter-auth-renewal")
        except BaseException:
            await self.disconnect()
            raise

    async def _check_api_key(self) -> None:
        """Ask the venue whether our key is registered (the SDK does this HTTP call natively)."""
        timeout = float(self.params["rest_timeout"])
        await self._limiter.acquire()  # the SDK's native GET /api/v1/apikeys spends our budget too
        try:
            error = await asyncio.wait_for(asyncio.to_thread(self._signer.check_client), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"lighter: API key check got no answer within {timeout}s") from None
        if not error:
            return
        text = self._scrub(str(error))
        if "failed to get api keys" in text.lower():
            raise ExchangeUnavailable(f"lighter: could not verify the API key: {text}")
        raise AuthenticationError(f"Lighter rejected the API key: {text}")

    def _make_signer(self) -> Any:
        """Build the SDK signer (must run inside the loop) with an explicit chain id."""
        try:
            return lighter.SignerClient(
                url=self.settings.base_url,
                account_index=self.settings.account_index,
                api_private_keys={self.settings.api_key_index: self.settings.private_key},
                chain_id=self.settings.chain_id,
            )
        except Exception as exc:
            raise ConfigurationError(
                f"could not create the Lighter signer: {self._scrub(str(exc))}"
            ) from None

    async def disconnect(self) -> None:
        if self._token_task is not None:
            self._token_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._token_task
            self._token_task = None
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._ws is not None:
            await self._ws.close()
        if self._signer is not None:
            try:
                await self._signer.close()
            except Exception as exc:
                logger.warning("lighter: closing the SDK client failed: %s", self._scrub(str(exc)))
            self._signer = None
        # Nothing waits on it any more; a signature still running finishes in its thread.
        self._signing_thread.stop()
        await self._rest.close()

    def _scrub(self, text: str) -> str:
        """Remove the private key and the auth token from any text that might be logged or raised."""
        for secret in (self.settings.private_key, self._token):
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        body = await self._rest.get("/api/v1/orderBooks")
        symbols = {}
        with rest_body("lighter /api/v1/orderBooks"):
            for item in _list_of(body, "order_books"):
                if item.get("market_type", "perp") != "perp":
                    continue
                symbols[str(item["symbol"]).upper()] = str(int(item["market_id"]))
        self._symbols.update(symbols)

    async def _resolve_ticker(self, ticker: str) -> LighterMarket:
        market_id = self._symbols.get(ticker.upper())
        if market_id is None:
            if not self._symbols:
                await self._load_markets()
                market_id = self._symbols.get(ticker.upper())
            if market_id is None:
                raise ConfigurationError(f"Lighter has no perpetual market for ticker {ticker!r}")
        return await self._market(market_id)

    async def _market(self, market_id: str) -> LighterMarket:
        market = self._markets.get(market_id)
        if market is not None:
            return market
        body = await self._rest.get("/api/v1/orderBookDetails", {"market_id": market_id})
        with rest_body("lighter /api/v1/orderBookDetails"):
            details = [
                d for d in _list_of(body, "order_book_details") if str(d.get("market_id")) == market_id
            ]
            if not details:
                raise ConfigurationError(f"Lighter has no market with id {market_id}")
            d = details[0]
            size_decimals = _decimals(d.get("size_decimals", d.get("supported_size_decimals")), "size")
            price_decimals = _decimals(d.get("price_decimals", d.get("supported_price_decimals")), "price")
            market = LighterMarket(
                market_id=market_id,
                symbol=str(d.get("symbol", "")).upper(),
                size_decimals=size_decimals,
                price_decimals=price_decimals,
                min_base_amount=venue_validation.size(d.get("min_base_amount", "0"), "min_base_amount"),
                min_quote_amount=venue_validation.size(d.get("min_quote_amount", "0"), "min_quote_amount"),
                maker_fee_rate=to_decimal(d.get("maker_fee", "0"), "maker_fee") / 100,
                taker_fee_rate=to_decimal(d.get("taker_fee", "0"), "taker_fee") / 100,
            )
        self._markets[market_id] = market
        self._symbols.setdefault(market.symbol, market_id)
        return market

    def _fee_rates(self, market_id: str) -> tuple[Decimal, Decimal]:
        market = self._markets.get(market_id)
        if market is None:
            return Decimal(0), Decimal(0)
        return market.maker_fee_rate, market.taker_fee_rate

    async def get_contract_info(self, ticker: str) -> ContractInfo:
        market = await self._resolve_ticker(ticker)
        if self._ws is not None:
            await self._ensure_streams(market.market_id)
        return market.contract_info()

    async def fetch_bbo_prices(self, contract_id: str) -> tuple[Decimal, Decimal]:
        """Top of the local book; waits (bounded) for a snapshot, never returns zeros."""
        await self._market(contract_id)
        await self._ensure_streams(contract_id)
        book = self._books[contract_id]
        timeout = float(self.params["bbo_timeout"])
        if not await self.clock.wait_for_event(book.ready, timeout):
            await self._request_snapshot(contract_id)
            raise ExchangeUnavailable(
                f"lighter: no two-sided order book for market {contract_id} within {timeout}s"
            )
        top = book.top()
        if top is None:
            raise ExchangeUnavailable(f"lighter: order book for market {contract_id} is not usable")
        return top

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        """Current rate from /funding-rates (an 8-hour-equivalent figure; Lighter settles hourly)."""
        body = await self._rest.get("/api/v1/funding-rates")
        with rest_body("lighter /api/v1/funding-rates"):
            for item in _list_of(body, "funding_rates"):
                if (
                    str(item.get("market_id")) == contract_id
                    and str(item.get("exchange", "lighter")) == "lighter"
                ):
                    return FundingRate(contract_id=contract_id, rate=to_decimal(item.get("rate"), "rate"))
        raise ExchangeError(f"lighter: no funding rate for market {contract_id}")

    # -- auth tokens -------------------------------------------------------------------------

    async def _auth_token(self) -> str:
        """A valid token, renewed once half its life is gone (so it never expires mid-request)."""
        now = self.clock.now()
        if self._token is not None and now < self._token_expiry - self._ttl / 2:
            return self._token
        async with self._token_lock:
            now = self.clock.now()
            if self._token is not None and now < self._token_expiry - self._ttl / 2:
                return self._token
            if self._signer is None:
                raise NetworkError("lighter: not connected")
            issued = int(now)
            token, error = await asyncio.to_thread(
                self._signer.create_auth_token_with_expiry,
                int(self._ttl),
                timestamp=issued,
                api_key_index=self.settings.api_key_index,
            )
            if error or not token:
                raise AuthenticationError(f"could not create a Lighter auth token: {self._scrub(str(error))}")
            self._token = token
            self._token_expiry = issued + self._ttl
            return token

    async def _renew_tokens(self) -> None:
        """Renew ahead of expiry and move the account stream onto the new token."""
        while True:
            wake = self._token_expiry - self._ttl / 2 - self.clock.now()
            await self.clock.sleep(max(1.0, wake))
            try:
                await self._refresh_account_streams()
            except Exception as exc:
                logger.warning(
                    "lighter: auth token renewal failed (%s: %s); retrying in 30s",
                    type(exc).__name__,
                    self._scrub(str(exc)),
                )
                await self.clock.sleep(30.0)

    async def _refresh_account_streams(self) -> None:
        """Move the authenticated streams onto a fresh token by subscribing again.

        No unsubscribe first (that would open a gap in which fills go unseen): the subscribe is
        re-sent with the new token, as nautilus_trader's adapter does, and the venue's answer
        is either a fresh snapshot or "already subscribed" (30003), both of which confirm the
        stream is in place. A refusal is handled by :meth:`_on_subscription_refused`.
        """
        await self._auth_token()
        if self._ws is None or not self._ws.connected.is_set():
            return
        for channel in self._auth_channels():
            await self._ws.subscribe(channel, self._auth_payload(channel))

    # -- streams -----------------------------------------------------------------------------

    def _account_channel(self, market_id: str) -> str:
        return f"account_orders/{market_id}/{self.settings.account_index}"

    def _trades_channel(self) -> str:
        return f"account_all_trades/{self.settings.account_index}"

    def _auth_channels(self) -> list[str]:
        channels = [self._account_channel(m) for m in sorted(self._stream_markets)]
        if self.params["trade_fees"]:
            channels.append(self._trades_channel())
        return channels

    def _auth_payload(self, channel: str) -> Callable[[], dict[str, Any]]:
        """The subscribe message, built at send time (current token) and noted as awaiting an answer."""

        def payload() -> dict[str, Any]:
            self._subscription_sent(channel)
            return {"type": "subscribe", "channel": channel, "auth": self._token or ""}

        return payload

    def _book_payload(self, channel: str) -> Callable[[], dict[str, Any]]:
        def payload() -> dict[str, Any]:
            self._subscription_sent(channel)
            return {"type": "subscribe", "channel": channel}

        return payload

    async def _ensure_streams(self, market_id: str) -> None:
        if self._ws is None:
            raise NetworkError("lighter: not connected (call connect first)")
        if market_id in self._stream_markets:
            return
        self._stream_markets.add(market_id)
        self._books.setdefault(market_id, LocalBook(market_id))
        book_channel = f"order_book/{market_id}"
        await self._ws.subscribe(book_channel, self._book_payload(book_channel))
        channel = self._account_channel(market_id)
        await self._ws.subscribe(channel, self._auth_payload(channel))
        trades = self._trades_channel()
        if self.params["trade_fees"] and trades not in self._ws.subscriptions:
            await self._ws.subscribe(trades, self._auth_payload(trades))

    # -- subscription answers ----------------------------------------------------------------
    #
    # Lighter answers a subscribe with "subscribed/<channel>" (channel with ':' for '/'), with
    # 30003 "Already Subscribed to : <channel>", or with an error frame that does not always name
    # the channel (an auth refusal says "invalid auth: ..."). Each sent subscribe is noted as
    # pending; an error naming a pending channel is that channel's refusal, and an unnamed one is
    # attributed to the oldest pending authenticated channel (only those can be refused for
    # their token). The state of every channel is in ``_subscriptions`` ("pending", "ok" or the
    # refusal text); ``_subscription_changed`` wakes whoever waits on it.

    def _subscription_sent(self, channel: str) -> None:
        self._subscriptions[channel] = SUB_PENDING
        self._subscription_changed.set()

    def _subscription_confirmed(self, channel: str) -> None:
        if self._subscriptions.get(channel) != SUB_OK:
            self._subscriptions[channel] = SUB_OK
            self._subscription_changed.set()

    def _account_stream_refused(self, market_id: str) -> str | None:
        state = self._subscriptions.get(self._account_channel(market_id))
        return state if state not in (None, SUB_OK, SUB_PENDING) else None

    def _refused_channel(self, text: str) -> str | None:
        pending = [c for c, state in self._subscriptions.items() if state == SUB_PENDING]
        for channel in pending:
            if channel in text or channel.replace("/", ":") in text:
                return channel
        auth = [c for c in pending if c.startswith(("account_orders/", "account_all_trades/"))]
        return auth[0] if auth else None

    def _on_subscription_refused(self, channel: str, code: int | None, text: str) -> None:
        self._subscriptions[channel] = f"refused ({code}): {text}" if code is not None else f"refused: {text}"
        self._subscription_changed.set()
        logger.warning("lighter-ws: the venue refused the %s subscription (%s: %s)", channel, code, text)
        if not channel.startswith("account_orders/") or not self._connected_once:
            # connect() raises for the account stream; without trade records fees are estimated
            # (retried at the next renewal or reconnect); a refused book is retried by its gaps.
            return
        if self.clock.now() - self._last_auth_recovery >= AUTH_RECOVERY_INTERVAL:
            self._last_auth_recovery = self.clock.now()
            self._token_expiry = 0.0
            logger.warning("lighter-ws: renewing the auth token and subscribing the account streams again")
            self._spawn(self._refresh_account_streams())

    async def _wait_account_stream(self, market_id: str, timeout: float) -> None:
        """Connect's last step: the account stream answered, or a typed error (no silent 5 s
        waits on every order later)."""
        channel = self._account_channel(market_id)
        deadline = self.clock.now() + timeout
        while True:
            state = self._subscriptions.get(channel)
            if state == SUB_OK:
                return
            if state not in (None, SUB_PENDING):
                raise AuthenticationError(f"Lighter refused the account_orders subscription: {state}")
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                raise ExchangeUnavailable(
                    f"lighter: no answer to the {channel} subscription within {timeout}s"
                )
            self._subscription_changed.clear()
            await self.clock.wait_for_event(self._subscription_changed, remaining)

    # -- stream events -----------------------------------------------------------------------

    async def _on_ws_connect(self) -> None:
        """Before resubscribing: fresh token, books reset, nonce resync, then reconcile orders."""
        await self._auth_token()
        self._subscriptions.clear()
        for book in self._books.values():
            book.invalidate()
        self._nonce_dirty = True
        if self._connected_once:
            self._spawn(self._reconcile_orders())
            self._emit_reconnected()
        self._connected_once = True

    def _on_ws_disconnect(self, reason: str) -> None:
        self._fail_pending_txs("the stream closed")
        self._subscriptions.clear()
        self._subscription_changed.set()
        for book in self._books.values():
            book.invalidate()

    async def _on_ws_message(self, message: Any) -> None:
        """Route one frame; a malformed one is counted, logged once per kind a minute, dropped,
        and where our state may now be wrong (book, orders) a resync is started."""
        if not isinstance(message, dict):
            self.malformed.record("not an object", f"{type(message).__name__} frame")
            return
        kind = message.get("type")
        kind = kind if isinstance(kind, str) else ""
        try:
            if kind in ("jsonapi/sendtx", "jsonapi/sendtxbatch"):
                if not self._on_tx_reply(message):
                    logger.warning("lighter-ws: a sendtx reply no request waits for")
            elif "error" in message or kind == "error":
                self._on_ws_error(message)
            elif kind in ("subscribed/order_book", "update/order_book"):
                await self._on_book(message, snapshot=kind.startswith("subscribed"))
            elif kind in ("subscribed/account_orders", "update/account_orders"):
                if kind.startswith("subscribed"):
                    self._subscription_confirmed(_request_channel(message.get("channel")))
                if self._on_account_orders(message):
                    # Let the bot react before the frames buffered behind this one (the fill's
                    # trade record, the book it moved) are parsed: they wait, not the reaction.
                    # A signature it started finishes first too: parsing beside it would hold
                    # the GIL the signing thread needs to hand its result back.
                    await asyncio.sleep(0)
                    if self._signing:
                        await self._signing_done.wait()
            elif kind in ("subscribed/account_all_trades", "update/account_all_trades"):
                if kind.startswith("subscribed"):
                    self._subscription_confirmed(self._trades_channel())
                self._on_trades(message)
            elif kind == "ping":
                if self._ws is not None:
                    await self._ws.send({"type": "pong"})
            elif kind == "shutdown":
                self._on_shutdown(message)
            elif kind in ("connected", "pong", "unsubscribed"):
                return
            else:
                logger.debug("lighter-ws: ignoring %s", kind[:40])
        except (MalformedMessage, AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            what = exc.kind if isinstance(exc, InvalidVenueData) else type(exc).__name__
            detail = exc.detail if isinstance(exc, InvalidVenueData) else str(exc)
            self.malformed.record(f"{kind[:40] or 'untyped'}: {what}", detail)
            await self._resync_after_malformed(kind, message)

    async def _resync_after_malformed(self, kind: str, message: Mapping[str, Any]) -> None:
        if kind.endswith("order_book"):
            market_id = str(message.get("channel", "")).split(":")[-1]
            book = self._books.get(market_id)
            if book is not None:
                book.invalidate()
                await self._request_snapshot(market_id)
        elif kind.endswith(("account_orders", "account_all_trades")):
            # A report of ours was lost: read our orders back (rate-limited like any REST read).
            self._spawn(self._reconcile_orders())

    def _on_ws_error(self, message: Mapping[str, Any]) -> None:
        nested = message.get("error")
        error = nested if isinstance(nested, dict) else message
        code = _opt_int(error.get("code"))
        text = self._scrub(str(error.get("message") or ""))[:300]
        if code is not None and (21000 <= code < 22000 or 23000 <= code < 24000) and self._on_tx_reply(error):
            return  # a transaction's rejection, sent as an error frame
        if code == WS_ALREADY_SUBSCRIBED:
            # The subscription is in place (a renewal re-sent it): the channel is confirmed.
            channel = self._refused_channel(text)
            if channel is not None:
                self._subscription_confirmed(channel)
            logger.debug("lighter-ws: %s (%s)", text, code)
            return
        if code == WS_NOT_SUBSCRIBED:
            logger.debug("lighter-ws: %s (%s)", text, code)
            return
        channel = self._refused_channel(text)
        if channel is not None:
            self._on_subscription_refused(channel, code, text)
            return
        logger.warning("lighter-ws: venue error %s: %s", code, text)

    def _on_shutdown(self, message: Mapping[str, Any]) -> None:
        """The venue will close this connection in ``close_in_ms``: move to a new one now, while
        the old one still delivers, instead of losing it mid-message (lighter-sdk's WsClient
        reads the same ``{"type": "shutdown", "close_in_ms": N}`` frame)."""
        close_in = _opt_int(message.get("close_in_ms"))
        self.shutdown_notices += 1
        logger.info("lighter-ws: the venue closes this connection in %s ms; reconnecting now", close_in)
        if self._ws is not None:
            self._spawn(self._ws.reconnect(f"venue shutdown notice ({close_in} ms)", immediate=True))

    async def _on_book(self, message: Mapping[str, Any], *, snapshot: bool) -> None:
        market_id = str(message.get("channel", "")).split(":")[-1]
        book = self._books.get(market_id)
        data = message.get("order_book")
        if book is None:
            return
        if not isinstance(data, dict):
            raise InvalidVenueData("wrong type", "order_book is not an object")
        if snapshot:
            self._subscription_confirmed(f"order_book/{market_id}")
        try:
            if snapshot:
                book.apply_snapshot(data, message.get("offset"))
            elif not book.apply_delta(data, message.get("offset")):
                return
        except BookGap as gap:
            logger.warning("lighter-ws: %s; resubscribing for a fresh snapshot", gap)
            await self._request_snapshot(market_id)
            return
        top = book.top()
        if top is None:
            if book.crossed:
                book.invalidate()
                raise InvalidVenueData("crossed book", f"market {market_id}: best bid >= best ask")
            return
        if self._last_top.get(market_id) == top:
            return
        self._last_top[market_id] = top
        stamp = _timestamp_seconds(message.get("timestamp"), self.clock.now())
        self._emit_market_update(
            MarketUpdate(contract_id=market_id, best_bid=top[0], best_ask=top[1], timestamp=stamp)
        )

    async def _request_snapshot(self, market_id: str) -> None:
        """Unsubscribe and subscribe the book again: the venue answers with a full snapshot."""
        if self._ws is None or not self._ws.connected.is_set():
            return
        channel = f"order_book/{market_id}"
        try:
            await self._ws.resubscribe(channel, {"type": "unsubscribe", "channel": channel})
        except SEND_ERRORS as exc:
            logger.warning("lighter-ws: could not resubscribe %s (%s); the reconnect will", channel, exc)

    def _on_account_orders(self, message: Mapping[str, Any]) -> bool:
        """Apply the frame's order reports; True when one of them changed an order."""
        orders = message.get("orders") or {}
        groups = orders.values() if isinstance(orders, dict) else [orders]
        changed = False
        for group in groups:
            if not isinstance(group, list):
                raise InvalidVenueData("wrong type", "account_orders group is not a list")
            for raw in group:
                if not isinstance(raw, dict):
                    raise InvalidVenueData("wrong type", "an order is not an object")
                if self._apply_order(raw) is not None:
                    changed = True
        return changed

    def _on_trades(self, message: Mapping[str, Any]) -> None:
        """Our executions with their exact fees (account_all_trades), folded into VenueOrders."""
        trades = message.get("trades") or {}
        groups = trades.values() if isinstance(trades, dict) else [trades]
        now = self.clock.now()
        reports = []
        for group in groups:
            if not isinstance(group, list):
                raise InvalidVenueData("wrong type", "account_all_trades group is not a list")
            for raw in group:
                if not isinstance(raw, dict):
                    raise InvalidVenueData("wrong type", "a trade is not an object")
                reports.extend(trade_reports(raw, self.settings.account_index, now))
        for trade in reports:
            tracked = self._orders.get(trade.client_order_id or "") or self._orders.get(trade.order_id or "")
            if tracked is None or not tracked.registered:
                # Not placed by this process (a restart's baseline): its fills come from the
                # cumulative order reports. Its trades cannot be told apart from those the
                # baseline already counts: the venue stamps a trade a millisecond after the
                # order's updated_at, so VenueOrders' timestamp rule would count them twice.
                continue
            update = self._orders.apply_trade(trade)
            if update is None:
                continue
            if update.fill is None:
                # Nothing new filled (an exact fee, the venue's order id): booked once the
                # reaction this frame's neighbours started has moved on, not in its way.
                asyncio.get_running_loop().call_soon(self._emit_order_update, update)
            else:
                self._emit_order_update(update)

    def _apply_order(self, raw: Mapping[str, Any]) -> OrderUpdate | None:
        report = order_report(raw, self.clock.now())
        if report is None:
            return None
        return self._apply_report(report)

    def _apply_report(self, report: OrderReport) -> OrderUpdate | None:
        update = self._orders.apply(report)
        if update is None:
            return None
        order = update.order
        if order.status is OrderStatus.REJECTED:
            tracked = self._orders.get(order.client_order_id or "")
            reason = tracked.venue_status if tracked else "?"
            routine = reason == "canceled-post-only"  # a maker strategy meets these all the time
            logger.log(
                logging.INFO if routine else logging.WARNING,
                "lighter: order %s rejected by the venue (%s)",
                order.client_order_id,
                reason,
            )
        elif order.status is OrderStatus.EXPIRED:
            logger.warning("lighter: order %s expired on the venue", order.client_order_id)
        self._emit_order_update(update)
        return update

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            logger.warning("lighter: background task failed: %s", task.exception())

    async def _reconcile_orders(self) -> None:
        """After a reconnect or token renewal: read our orders back so no fill is missed.

        Orders that ended while the stream was away are among the newest finished ones, so the
        read-back stops after a few pages (REST budget); an order still missing is logged, and
        the execution layer resolves it with find_order.
        """
        active = self._orders.active()
        for market_id in sorted({o.contract_id for o in active}):
            wanted = {o.client_order_id for o in active if o.contract_id == market_id}

            def visit(raw: Mapping[str, Any], wanted: set[str] = wanted) -> bool:
                client_id = _client_id_of(raw)
                if client_id in wanted:
                    self._apply_order(raw)
                    wanted.discard(client_id)
                return not wanted

            try:
                await self._scan_orders(market_id, visit, max_pages=RECONCILE_MAX_PAGES)
            except OrderSearchTruncated as exc:
                logger.warning("lighter: reconciling orders: %s", exc)

    # -- REST reads of our orders -----------------------------------------------------------

    async def _fetch_active(self, market_id: str) -> list[Mapping[str, Any]]:
        body = await self._rest.get(
            "/api/v1/accountActiveOrders",
            {"account_index": self.settings.account_index, "market_id": market_id},
            auth=await self._auth_token(),
        )
        with rest_body("lighter /api/v1/accountActiveOrders"):
            return _orders_of(body)

    async def _scan_orders(
        self,
        market_id: str,
        visit: Callable[[Mapping[str, Any]], bool],
        *,
        max_pages: int | None = None,
    ) -> bool:
        """Show ``visit`` the account's active orders, then its finished ones page by page.

        Stops as soon as ``visit`` returns True (and returns True). Returns False when the venue
        listed every order without ``visit`` stopping: a definitive miss. accountInactiveOrders
        is paged with ``cursor``/``next_cursor`` (lighter-sdk's OrderApi and Orders model), at
        most 100 orders a page; after ``max_pages`` pages (default
        ``inactive_orders_max_pages``) the search raises OrderSearchTruncated instead of
        pretending the order does not exist. Transport failures propagate as NetworkError.
        """
        with rest_body("lighter /api/v1/accountActiveOrders"):
            for raw in await self._fetch_active(market_id):
                if visit(raw):
                    return True
        pages = int(self.params["inactive_orders_max_pages"]) if max_pages is None else max_pages
        page_size = min(MAX_INACTIVE_PAGE_SIZE, max(1, int(self.params["inactive_orders_page_size"])))
        cursor: str | None = None
        cursors: set[str] = set()
        for _ in range(pages):
            query: dict[str, Any] = {
                "account_index": self.settings.account_index,
                "market_id": market_id,
                "limit": page_size,
            }
            if cursor is not None:
                query["cursor"] = cursor
            body = await self._rest.get("/api/v1/accountInactiveOrders", query, auth=await self._auth_token())
            with rest_body("lighter /api/v1/accountInactiveOrders"):
                orders = _orders_of(body)
                for raw in orders:
                    if visit(raw):
                        return True
                next_cursor = body.get("next_cursor")
                if next_cursor is not None and not isinstance(next_cursor, (str, int)):
                    raise InvalidVenueData("wrong type", "next_cursor")
            if not orders or not next_cursor:
                return False
            cursor = str(next_cursor)
            if cursor in cursors:
                raise MalformedMessage(f"lighter: accountInactiveOrders repeated the cursor {cursor[:40]!r}")
            cursors.add(cursor)
        raise OrderSearchTruncated(
            f"lighter: not among the active and the newest {pages * page_size} finished "
            f"orders of market {market_id} (search bounded at {pages} pages)"
        )

    async def _lookup(
        self,
        contract_id: str,
        order_index: str | None,
        client_id: str | None,
        *,
        max_pages: int | None = None,
    ) -> OrderInfo | None:
        """Find an order on the venue by index or client id and fold it in; None: definitively absent."""
        found: list[Mapping[str, Any]] = []

        def visit(raw: Mapping[str, Any]) -> bool:
            if (order_index and str(raw.get("order_index")) == order_index) or (
                client_id and _client_id_of(raw) == client_id
            ):
                found.append(raw)
                return True
            return False

        try:
            await self._scan_orders(contract_id, visit, max_pages=max_pages)
        except OrderNotFound as exc:  # a read answered with an order error code: not a listing
            raise ExchangeError(f"lighter: order lookup failed: {exc}") from None
        if not found:
            return None
        raw = found[0]
        report = order_report(raw, self.clock.now())
        if report is None:
            raise MalformedMessage(f"lighter: order {raw.get('order_index')} has no client_order_index")
        self._apply_order(raw)
        tracked = self._orders.get(report.client_order_id)
        return tracked.info() if tracked is not None else report.info()

    def _resolve_order_id(self, order_id: str) -> tuple[str | None, str | None]:
        """(order_index, client_order_id) for an id that may be either."""
        tracked = self._orders.get(order_id)
        if tracked is not None:
            return tracked.order_id, tracked.client_order_id
        if len(order_id) == 14 and order_id.isdigit() and self.client_ids.is_ours(order_id):
            return None, order_id
        return order_id, None

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        """Our order with this client id, active or finished, as the venue lists it now."""
        if not client_order_id.isdigit():  # Lighter's client order index is an integer
            raise OrderNotFound(f"lighter: {client_order_id!r} cannot be a Lighter client order index")
        info = await self._lookup(contract_id, None, str(int(client_order_id)))
        if info is None:
            raise OrderNotFound(f"lighter: no order with client id {client_order_id} on market {contract_id}")
        return info

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        """Read an order back from the venue by order index or by our client id; OrderNotFound if unknown."""
        order_index, client_id = self._resolve_order_id(order_id)
        if order_index is None and client_id is not None:
            return await self.find_order(contract_id, client_id)
        info = await self._lookup(contract_id, order_index, client_id)
        if info is None:
            raise OrderNotFound(f"lighter: order {order_id} not found on market {contract_id}")
        return info

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        """Our resting orders (client id carries our prefix), read from the venue."""
        result: list[OrderInfo] = []
        for raw in await self._fetch_active(contract_id):
            client_id = _client_id_of(raw)
            if client_id is None or not self.client_ids.is_ours(client_id):
                continue
            self._apply_order(raw)
            tracked = self._orders.get(client_id)
            report = order_report(raw, self.clock.now())
            info = tracked.info() if tracked is not None else report.info() if report is not None else None
            if info is not None and info.status.is_active:
                result.append(info)
        return result

    # -- account -----------------------------------------------------------------------------

    async def _account(self) -> Mapping[str, Any]:
        body = await self._rest.get("/api/v1/account", {"by": "index", "value": self.settings.account_index})
        with rest_body("lighter /api/v1/account"):
            accounts = _list_of(body, "accounts")
            if not accounts:
                raise ExchangeError(f"lighter: account {self.settings.account_index} not found")
            _list_of(accounts[0], "positions")  # checked here, so readers can iterate it
            return accounts[0]

    @staticmethod
    def _position(raw: Mapping[str, Any]) -> Position:
        sign = -1 if _opt_int(raw.get("sign")) == -1 else 1
        return Position(
            contract_id=str(raw.get("market_id")),
            size=to_decimal(raw.get("position", "0"), "position") * sign,
            entry_price=to_decimal(raw.get("avg_entry_price", "0"), "avg_entry_price"),
            unrealized_pnl=to_decimal(raw.get("unrealized_pnl", "0"), "unrealized_pnl"),
            realized_pnl=to_decimal(raw.get("realized_pnl", "0"), "realized_pnl"),
            liquidation_price=optional_price(raw.get("liquidation_price"), "liquidation_price"),
        )

    async def get_position(self, contract_id: str) -> Position:
        account = await self._account()
        with rest_body("lighter /api/v1/account"):
            for raw in account.get("positions") or []:
                if str(raw.get("market_id")) == contract_id:
                    return self._position(raw)
        return Position(contract_id=contract_id, size=Decimal(0), entry_price=Decimal(0))

    async def get_account_snapshot(self) -> AccountSnapshot:
        account = await self._account()
        with rest_body("lighter /api/v1/account"):
            return self._snapshot(account)

    def _snapshot(self, account: Mapping[str, Any]) -> AccountSnapshot:
        positions = tuple(
            p for p in (self._position(raw) for raw in account.get("positions") or []) if p.size != 0
        )
        funding = sum(
            (
                to_decimal(raw.get("total_funding_paid_out", "0"), "funding")
                for raw in account.get("positions") or []
            ),
            Decimal(0),
        )
        return AccountSnapshot(
            balance=to_decimal(account.get("collateral"), "collateral"),
            equity=to_decimal(account.get("total_asset_value"), "total_asset_value"),
            positions=positions,
            realized_pnl=sum((p.realized_pnl for p in positions), Decimal(0)),
            funding_paid=funding,
            timestamp=self.clock.now(),
        )

    # -- transactions ------------------------------------------------------------------------

    async def _sdk_rest(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """An SDK call that makes a REST request of its own (nextNonce): it takes a token from
        our limiter like every request of ours, and a 429 pauses everyone."""
        await self._limiter.acquire()
        try:
            result = await self._sdk(call(), what)
        except RateLimitExceeded as exc:
            self._limiter.penalize(exc.retry_after)
            raise
        self._limiter.record_success()
        return result

    async def _sdk(self, awaitable: Awaitable[T], what: str) -> T:
        """Run an SDK coroutine (nonce fetch) with our timeout and typed errors."""
        timeout = float(self.params["rest_timeout"])
        try:
            if sys.version_info >= (3, 11):
                # No Task per call (wait_for makes one): the nonce is fetched on every order.
                async with asyncio.timeout(timeout):
                    return await awaitable
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"lighter: {what} timed out") from None
        except lighter.ApiException as exc:
            status = getattr(exc, "status", None)
            raise map_error(None, self._scrub(str(getattr(exc, "body", "") or exc))[:200], status) from None
        except aiohttp.ClientError as exc:
            raise NetworkError(f"lighter: {what}: {type(exc).__name__}: {exc}") from None

    async def _next_nonce(self, manager: Any, key: int) -> int:
        """The next nonce of API key ``key`` (the caller holds the manager's lock).

        The SDK fetches a key's nonce on its first use: that goes through the REST limiter. After
        it, the SDK's optimistic manager only counts up, with no I/O, so it is called directly:
        the timeout machinery around an await cost the reaction to a fill about 10 µs for
        nothing. Any other manager is awaited under the timeout."""
        known = getattr(manager, "nonce", None)
        if isinstance(known, dict) and key not in known:
            _, nonce = await self._sdk_rest(lambda: manager.async_next_nonce(key), "nonce fetch")
        elif isinstance(manager, OptimisticNonceManager):
            _, nonce = manager.next_nonce(key)
        else:
            _, nonce = await self._sdk(manager.async_next_nonce(key), "nonce fetch")
        return int(nonce)

    async def _send_signed(
        self,
        sign: Callable[[int, int], tuple[Any, Any, Any, Any]],
        what: str,
        priority: Priority = Priority.NORMAL,
        beside: Callable[[], object] | None = None,
    ) -> Any:
        """Sign with an SDK-managed nonce and send; on invalid nonce resync and retry once.

        ``priority`` orders the send at the rate limiter: exits and cancels (HIGH) go before new
        entries (LOW), so a fill still gets its take-profit at once while entries are paced.
        ``beside`` runs on the loop while the first signature is made (see
        :meth:`_sign_beside_gate`)."""
        manager = self._signer.nonce_manager
        key = self.settings.api_key_index
        for attempt in (1, 2):
            async with manager.lock(key):
                if self._nonce_dirty:
                    await self._sdk_rest(lambda: manager.async_hard_refresh_nonce(key), "nonce resync")
                    self._nonce_dirty = False
                nonce = await self._next_nonce(manager, key)
                tx_type, tx_info, tx_hash, error = await self._sign_beside_gate(
                    functools.partial(sign, nonce, key), nonces=1, beside=beside if attempt == 1 else None
                )
                if error:
                    manager.acknowledge_failure(key)
                    raise InvalidOrder(f"lighter: could not sign {what}: {self._scrub(str(error))}")
                try:
                    return await self._send_tx(int(tx_type), tx_info, str(tx_hash or ""), priority)
                except InvalidNonce:
                    self._nonce_dirty = True
                    if attempt == 2:
                        raise
                    logger.warning(
                        "lighter: invalid nonce on %s; resyncing the nonce and retrying once", what
                    )
                except (RequestTimeout, ExchangeUnavailable, NetworkError):
                    self._nonce_dirty = True
                    raise
                except ExchangeError:
                    manager.acknowledge_failure(key)
                    raise
        raise InvalidNonce(f"lighter: {what}: nonce still invalid after resync")

    # -- sending transactions: over the WebSocket when it is up, HTTP otherwise ---------------
    #
    # A signed transaction carries its nonce, so the venue executes one copy at most: sending
    # it over the stream ("jsonapi/sendtx", no REST budget spent, no HTTP round trip) and, if
    # that frame could not be written, over HTTP is safe. Replies are matched to requests by,
    # in order: the ``id`` we put in the request's ``data`` when the reply echoes it (top level
    # or inside ``data``); the transaction hash the signer computed, when the reply carries
    # ``tx_hash``; else the oldest request still waiting (the venue answers one connection's
    # requests in order). An error frame with a transaction code (21xxx, 23xxx) while requests
    # wait is the oldest one's rejection. No reply within ``rest_timeout``, or the connection
    # lost while waiting, is an unknown outcome (RequestTimeout / NetworkError), as over HTTP.

    async def _send_tx(
        self, tx_type: int, tx_info: str, tx_hash: str, priority: Priority = Priority.NORMAL
    ) -> Any:
        ws = self._ws
        if self.params["ws_orders"] and ws is not None and ws.connected.is_set():
            request_id = str(next(self._tx_ids))
            # tx_info is the signer's JSON text of an object: embedded as is (no re-encoding).
            info = tx_info if tx_info.startswith("{") else json.dumps(tx_info)
            frame = (
                f'{{"type":"jsonapi/sendtx","data":'
                f'{{"id":"{request_id}","tx_type":{tx_type},"tx_info":{info}}}}}'
            )
            await self._tx_limiter.acquire(priority=priority)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending_txs[request_id] = (tx_hash, future)
            try:
                await ws.send(frame)
            except SEND_ERRORS as exc:
                self._pending_txs.pop(request_id, None)
                logger.warning("lighter: sendtx over the stream failed (%s); sending over HTTP", exc)
                try:
                    return await self._rest.send_tx(tx_type, tx_info, priority)
                except InvalidNonce:
                    # The frame may have left after all and used the nonce: not provably refused.
                    raise RequestTimeout("lighter: outcome unknown (the stream send failed)") from None
            self.ws_txs += 1
            timeout = float(self.params["rest_timeout"])
            try:
                if sys.version_info >= (3, 11):
                    async with asyncio.timeout(timeout):
                        return await future
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"lighter: no answer to sendtx {request_id} within {timeout}s") from None
            except RateLimitExceeded as exc:
                self._tx_limiter.penalize(exc.retry_after)
                raise
            finally:
                self._pending_txs.pop(request_id, None)
        return await self._rest.send_tx(tx_type, tx_info, priority)

    def _on_tx_reply(self, message: Mapping[str, Any]) -> bool:
        """Resolve the request a sendtx reply answers (see above); False if none waits."""
        if not self._pending_txs:
            return False
        data = message.get("data")
        body = data if isinstance(data, Mapping) else message
        request_id = body.get("id", message.get("id"))
        tx_hash = body.get("tx_hash", message.get("tx_hash"))
        if isinstance(tx_hash, list) and tx_hash:
            tx_hash = tx_hash[0]  # a batch's reply lists its hashes; it waits under the first
        key = str(request_id) if request_id is not None and str(request_id) in self._pending_txs else None
        if key is None and isinstance(tx_hash, str) and tx_hash:
            key = next((k for k, (h, _) in self._pending_txs.items() if h == tx_hash), None)
        if key is None:
            key = next(iter(self._pending_txs))
        _, future = self._pending_txs.pop(key)
        if future.done():
            return True
        code = _opt_int(body.get("code", message.get("code")))
        if code in (None, 0, 200):
            future.set_result(dict(body))
        else:
            text = self._scrub(str(body.get("message", message.get("message")) or ""))[:200]
            future.set_exception(map_error(code, text))
        return True

    def _fail_pending_txs(self, reason: str) -> None:
        for _, future in self._pending_txs.values():
            if not future.done():
                future.set_exception(NetworkError(f"lighter: {reason} while a sendtx awaited its answer"))
        self._pending_txs.clear()

    def _check_client_id(self, client_order_id: str) -> int:
        try:
            value = int(client_order_id)
        except (TypeError, ValueError):
            raise InvalidOrder(f"client order id {client_order_id!r} is not an integer") from None
        if not 0 < value <= MAX_CLIENT_ORDER_INDEX:
            raise InvalidOrder(f"client order id {client_order_id} is outside 1..2**48-1")
        return value

    def _check_amounts(self, market: LighterMarket, quantity: Decimal, price: Decimal) -> tuple[int, int]:
        base = to_units(quantity, market.size_decimals, "quantity")
        units = to_units(price, market.price_decimals, "price")
        if base <= 0:
            raise InvalidOrder(f"quantity must be positive, got {quantity}")
        if not 0 < units <= MAX_PRICE_UNITS:
            raise InvalidOrder(f"price {price} is out of range for market {market.market_id}")
        if quantity < market.min_base_amount:
            raise OrderBelowMinimum(f"quantity {quantity} below the minimum {market.min_base_amount}")
        if quantity * price < market.min_quote_amount:
            raise OrderBelowMinimum(
                f"notional {quantity * price} below the minimum {market.min_quote_amount}"
            )
        return base, units

    def _track(
        self,
        client_order_id: str,
        contract_id: str,
        side: OrderSide,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal,
        *,
        post_only: bool = False,
    ) -> VenueOrder:
        """Register the order before its transaction leaves, so no report of it can be missed."""
        self._check_client_id(client_order_id)
        if self._orders.get(client_order_id) is not None:
            raise InvalidOrder(f"client order id {client_order_id} was already used")
        return self._orders.register(
            client_order_id,
            contract_id,
            side,
            order_type,
            quantity,
            price,
            post_only=post_only,
            timestamp=self.clock.now(),
        )

    async def _place(
        self,
        client_order_id: str,
        track: Callable[[], VenueOrder],
        sign: Callable[[int, int], tuple[Any, Any, Any, Any]],
        reduce_only: bool,
    ) -> VenueOrder:
        """Sign and send one order; ``track`` registers it with the tracker while it is signed
        (before it can leave, so no report of it is missed) and gives its VenueOrder."""
        tracked: list[VenueOrder] = []
        try:
            # Reduce-only orders close a position (take-profits, risk closes): they go first.
            priority = Priority.HIGH if reduce_only else Priority.LOW
            await self._send_signed(
                sign, f"order {client_order_id}", priority, beside=lambda: tracked.append(track())
            )
        except (RequestTimeout, ExchangeUnavailable, NetworkError):
            for order in tracked:
                self._orders.send_failed(order, ambiguous=True)
            raise
        except ExchangeError:
            for order in tracked:
                self._orders.send_failed(order, ambiguous=False)
            raise
        return tracked[0]

    async def _await_order(self, order: VenueOrder, *, until_final: bool) -> VenueOrder:
        """Wait for the stream to report the order (or its end), bounded; REST read-back at timeout.

        The read-back looks at the active orders and the newest page of finished ones only: the
        order was just sent, and a deeper search would spend the REST budget on every lost ack.
        """
        timeout = float(self.params["order_ack_timeout"])
        if timeout <= 0:
            return order
        if self._account_stream_refused(order.contract_id):
            # The stream cannot tell us (its subscription was refused; recovery is under way):
            # no 5 s wait and no REST read per order; the execution layer looks it up later.
            return order

        def done(o: VenueOrder) -> bool:
            return o.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN) and (
                not until_final or o.status.is_final
            )

        if await self._orders.wait(order, done, timeout, self.clock):
            return order
        try:
            found = await self._lookup(order.contract_id, order.order_id, order.client_order_id, max_pages=1)
            if found is None:
                logger.warning("lighter: order %s not yet visible on the venue", order.client_order_id)
        except (OrderSearchTruncated, NetworkError) as exc:
            logger.warning("lighter: order %s not yet visible on the venue (%s)", order.client_order_id, exc)
        return order

    @staticmethod
    def _result(order: VenueOrder) -> OrderResult:
        """The shared result, naming Lighter's cancel reason (``canceled-post-only``...)."""
        reason = order.venue_status if order.venue_status.startswith("canceled-") else None
        return order_result(order, reason)

    def _raise_rejection(self, order: VenueOrder) -> None:
        if order.status is not OrderStatus.REJECTED:
            return
        error = rejection_error(order.venue_status) or InvalidOrder
        raise error(f"lighter: order {order.client_order_id} rejected ({order.venue_status})")

    async def place_limit_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        price: Decimal,
        client_order_id: str,
        post_only: bool = True,
        reduce_only: bool = False,
    ) -> OrderResult:
        """Rest a limit order (post-only by default) with the SDK's 28-day expiry."""
        market = await self._market(contract_id)
        base, units = self._check_amounts(market, quantity, price)
        sign = self._limit_signer(
            market, self._check_client_id(client_order_id), side, base, units, post_only, reduce_only
        )
        order = await self._place(
            client_order_id,
            lambda: self._track(
                client_order_id, contract_id, side, OrderType.LIMIT, quantity, price, post_only=post_only
            ),
            sign,
            reduce_only,
        )
        await self._await_order(order, until_final=False)
        self._raise_rejection(order)
        return self._result(order)

    async def place_market_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        client_order_id: str,
        max_slippage_pct: Decimal,
        reduce_only: bool = False,
    ) -> OrderResult:
        """Immediate-or-cancel with a worst price ``max_slippage_pct`` percent beyond the touch."""
        market = await self._market(contract_id)
        bid, ask = await self.fetch_bbo_prices(contract_id)
        bound = slippage_bound(side, bid, ask, max_slippage_pct, market.tick_size)
        base = to_units(quantity, market.size_decimals, "quantity")
        units = to_units(bound, market.price_decimals, "price")
        if base <= 0 or not 0 < units <= MAX_PRICE_UNITS:
            raise InvalidOrder(f"invalid market order {quantity} @ bound {bound}")
        if quantity < market.min_base_amount:
            raise OrderBelowMinimum(f"quantity {quantity} below the minimum {market.min_base_amount}")
        sdk = lighter.SignerClient
        order = self._track(client_order_id, contract_id, side, OrderType.MARKET, quantity, bound)
        logger.info(
            "lighter: market %s %s with price bound %s (touch %s)",
            side.value,
            quantity,
            bound,
            ask if side is OrderSide.BUY else bid,
        )
        sign = self._order_signer(
            market,
            int(client_order_id),
            side,
            base,
            units,
            sdk.ORDER_TYPE_MARKET,
            sdk.ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
            reduce_only,
            sdk.DEFAULT_IOC_EXPIRY,
        )
        await self._place(client_order_id, lambda: order, sign, reduce_only)
        await self._await_order(order, until_final=True)
        self._raise_rejection(order)
        if order.status.is_final and order.status is not OrderStatus.FILLED and order.filled == 0:
            # Only the mock's slippage/liquidity statuses come from no source, so any ending of
            # an IOC with nothing filled ("canceled", "canceled-expired", a variant we have not
            # seen) is read as "no liquidity within the bound", never as success with 0 filled.
            ended = order.venue_status or order.status.value
            raise SlippageExceeded(f"lighter: market order {client_order_id} not filled ({ended})")
        return self._result(order)

    async def cancel_order(self, contract_id: str, order_id: str) -> OrderResult:
        """Cancel by Lighter order index or by our client id (the index is looked up if needed)."""
        market = await self._market(contract_id)
        index, client_id = await self._cancel_target(contract_id, order_id)
        sign = self._cancel_signer(int(market.market_id), index)
        await self._send_signed(sign, f"cancel {order_id}", Priority.HIGH)
        return await self._cancel_result(index, client_id)

    # -- batches -----------------------------------------------------------------------------
    #
    # A batch is signed with consecutive nonces (under the nonce manager's lock, in the signing
    # thread) and sent as one ``jsonapi/sendtxbatch`` frame while the stream is up, else as one
    # POST /api/v1/sendTxBatch (``tx_types``/``tx_infos`` are JSON arrays as text, as the SDK
    # sends them). Its reply is matched like a single transaction's (the ``id`` we put in
    # ``data``, else its first transaction's hash, else the oldest request waiting).
    # Lighter's rate-limit page weighs sendTxBatch like sendTx (6) and says the WebSocket
    # channels share the REST limits, so a batch takes ONE token from the limiter of its path.
    # Outcomes per transaction: accepted; refused (the venue answered the batch with an error:
    # the nonce is read back from the venue, which both resyncs the nonce manager and tells how
    # many of the batch's consecutive nonces it used, i.e. which transactions went through,
    # which one the error belongs to, and which it never processed: NotProcessed); or unknown
    # for all (no answer, lost stream, 5xx: RequestTimeout/NetworkError, the nonce marked for
    # resync and the orders looked up exactly as after a single send). An invalid nonce on the
    # first transaction resends the unprocessed rest once with fresh nonces.

    async def _send_batch(
        self, types: list[int], infos: list[str], first_hash: str, priority: Priority
    ) -> Any:
        """One batch over the stream when it is up, HTTP otherwise (as :meth:`_send_tx`)."""
        ws = self._ws
        if self.params["ws_orders"] and ws is not None and ws.connected.is_set():
            request_id = str(next(self._tx_ids))
            frame = json.dumps(
                {
                    "type": "jsonapi/sendtxbatch",
                    "data": {"id": request_id, "tx_types": json.dumps(types), "tx_infos": json.dumps(infos)},
                },
                separators=(",", ":"),
            )
            await self._tx_limiter.acquire(priority=priority)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending_txs[request_id] = (first_hash, future)
            try:
                await ws.send(frame)
            except SEND_ERRORS as exc:
                self._pending_txs.pop(request_id, None)
                logger.warning("lighter: sendtxbatch over the stream failed (%s); sending over HTTP", exc)
                self.http_batches += 1
                try:
                    return await self._rest.send_tx_batch(types, infos, priority)
                except InvalidNonce:
                    raise RequestTimeout("lighter: batch outcome unknown (the stream send failed)") from None
            self.ws_batches += 1
            timeout = float(self.params["rest_timeout"])
            try:
                return await asyncio.wait_for(future, timeout)  # one Task per batch is cheap
            except asyncio.TimeoutError:
                raise RequestTimeout(
                    f"lighter: no answer to sendtxbatch {request_id} within {timeout}s"
                ) from None
            except RateLimitExceeded as exc:
                self._tx_limiter.penalize(exc.retry_after)
                raise
            finally:
                self._pending_txs.pop(request_id, None)
        self.http_batches += 1
        return await self._rest.send_tx_batch(types, infos, priority)

    async def _sign_beside_gate(
        self, sign: Callable[[], T], *, nonces: int, beside: Callable[[], object] | None = None
    ) -> T:
        """Run ``sign`` in the signing thread while the loop does what must happen before the
        send but not before the signature: ``beside`` (registering the order with the tracker),
        then the execution layer's journal commit (``send_gate``), so the request is durable
        before it is sent. Neither costs time of its own. The thread is handed the GIL before
        they start (see :mod:`helpers.worker_thread`), else their Python delays the signature's
        start. If either raises, the ``nonces`` just taken are handed back (the signed
        transactions are never sent) and the error is raised."""
        manager = self._signer.nonce_manager
        key = self.settings.api_key_index
        started = self.clock.now()
        signing = self._signing_thread.submit(sign, handover=SIGNER_HANDOVER_SECONDS)
        self._signing += 1
        self._signing_done.clear()
        try:
            try:
                if beside is not None:
                    beside()
                self.send_gate()
            except BaseException:
                await asyncio.wait([signing])
                for _ in range(nonces):
                    manager.acknowledge_failure(key)
                raise
            signed = await signing
        finally:
            self._signing -= 1
            if not self._signing:
                self._signing_done.set()
        self.sign_seconds.append(self.clock.now() - started)
        return signed

    async def _send_signed_batch(
        self,
        signs: list[Callable[[int, int], tuple[Any, Any, Any, Any]]],
        what: str,
        priority: Priority,
    ) -> list[ExchangeError | None]:
        """Sign ``signs`` with consecutive nonces and send them as one batch; one entry per
        transaction: None (accepted) or the typed error of that transaction."""
        manager = self._signer.nonce_manager
        key = self.settings.api_key_index
        outcomes: list[ExchangeError | None] = [None] * len(signs)
        todo = list(range(len(signs)))
        for attempt in (1, 2):
            async with manager.lock(key):
                if self._nonce_dirty:
                    await self._sdk_rest(lambda: manager.async_hard_refresh_nonce(key), "nonce resync")
                    self._nonce_dirty = False
                nonces = [await self._next_nonce(manager, key) for _ in todo]

                def sign_all(chosen: list[int] = todo, nonces: list[int] = nonces) -> list[tuple[Any, ...]]:
                    return [signs[i](n, key) for i, n in zip(chosen, nonces, strict=True)]

                signed = await self._sign_beside_gate(sign_all, nonces=len(todo))
                failed = [self._scrub(str(s[3])) for s in signed if s[3]]
                if failed:
                    # Nothing left: give every nonce back, and refuse the batch as specified.
                    for _ in todo:
                        manager.acknowledge_failure(key)
                    error = InvalidOrder(f"lighter: could not sign {what}: {failed[0]}")
                    for i in todo:
                        outcomes[i] = error
                    return outcomes
                types = [int(s[0]) for s in signed]
                infos = [str(s[1]) for s in signed]
                try:
                    await self._send_batch(types, infos, str(signed[0][2] or ""), priority)
                    return outcomes
                except (RequestTimeout, ExchangeUnavailable, NetworkError) as exc:
                    # Unknown (or a 429: declined, the nonces unused): the venue's nonce is read
                    # again before the next transaction, and each order is judged on its own.
                    self._nonce_dirty = True
                    for i in todo:
                        outcomes[i] = exc
                    return outcomes
                except ExchangeError as exc:
                    # An invalid nonce means the first one was stale (the rest follow it), so
                    # none went through; any other refusal came with valid nonces, and the
                    # venue's next nonce says how far it got.
                    used = await self._nonces_used(nonces[0], len(todo))
                    if isinstance(exc, InvalidNonce):
                        used = 0
                    refused_at = todo[used] if used < len(todo) else None
                    rest = todo[used + 1 :]
                    if isinstance(exc, InvalidNonce) and attempt == 1 and used == 0:
                        logger.warning("lighter: invalid nonce on %s; resynced, resending once", what)
                        continue
                    if refused_at is not None:
                        outcomes[refused_at] = exc
                    for i in rest:
                        outcomes[i] = NotProcessed(f"lighter: {what}: the batch stopped before it ({exc})")
                    return outcomes
        return outcomes

    async def _nonces_used(self, first: int, count: int) -> int:
        """After a refused batch: resync the nonce from the venue (so the manager is never left
        ahead of it) and return how many of the batch's nonces, from ``first``, it used."""
        manager = self._signer.nonce_manager
        key = self.settings.api_key_index
        try:
            await self._sdk_rest(lambda: manager.async_hard_refresh_nonce(key), "nonce resync")
        except ExchangeError:
            self._nonce_dirty = True
            return 0  # unreadable: count none as used (the refused one carries the error)
        self._nonce_dirty = False
        venue_next = int(manager.nonce[key]) + 1
        return max(0, min(count, venue_next - first))

    async def place_limit_orders(self, requests: Sequence[LimitOrderRequest]) -> list[BatchOutcome]:
        """Sign every order and send them in batches of at most MAX_BATCH_TXS (see above)."""
        outcomes: dict[int, BatchOutcome] = {}
        prepared: list[tuple[int, LighterMarket, VenueOrder, int, int, LimitOrderRequest]] = []
        for i, request in enumerate(requests):
            try:
                market = await self._market(request.contract_id)
                base, units = self._check_amounts(market, request.quantity, request.price)
                order = self._track(
                    request.client_order_id,
                    request.contract_id,
                    request.side,
                    OrderType.LIMIT,
                    request.quantity,
                    request.price,
                    post_only=request.post_only,
                )
            except ExchangeError as exc:
                outcomes[i] = BatchOutcome(request.client_order_id, error=exc)
                continue
            prepared.append((i, market, order, base, units, request))
        sent: list[tuple[int, VenueOrder]] = []
        for start in range(0, len(prepared), MAX_BATCH_TXS):
            chunk = prepared[start : start + MAX_BATCH_TXS]
            signs = [
                self._limit_signer(
                    market,
                    int(order.client_order_id),
                    order.side,
                    base,
                    units,
                    request.post_only,
                    request.reduce_only,
                )
                for _, market, order, base, units, request in chunk
            ]
            priority = Priority.HIGH if all(item[5].reduce_only for item in chunk) else Priority.LOW
            errors = await self._send_signed_batch(signs, f"batch of {len(chunk)} orders", priority)
            for (i, _, order, _, _, request), error in zip(chunk, errors, strict=True):
                if error is None:
                    sent.append((i, order))
                    continue
                self._orders.send_failed(order, ambiguous=isinstance(error, NetworkError))
                outcomes[i] = BatchOutcome(request.client_order_id, error=error)
        await asyncio.gather(*(self._await_order(order, until_final=False) for _, order in sent))
        for i, order in sent:
            try:
                self._raise_rejection(order)
            except ExchangeError as exc:
                outcomes[i] = BatchOutcome(order.client_order_id, error=exc)
            else:
                outcomes[i] = BatchOutcome(order.client_order_id, result=self._result(order))
        return [outcomes[i] for i in range(len(requests))]

    def _limit_signer(
        self,
        market: LighterMarket,
        client_index: int,
        side: OrderSide,
        base: int,
        units: int,
        post_only: bool,
        reduce_only: bool,
    ) -> Callable[[int, int], tuple[Any, Any, Any, Any]]:
        """A limit order's signing call: post-only or good-till-time, the SDK's 28-day expiry."""
        sdk = lighter.SignerClient
        tif = sdk.ORDER_TIME_IN_FORCE_POST_ONLY if post_only else sdk.ORDER_TIME_IN_FORCE_GOOD_TILL_TIME
        return self._order_signer(
            market,
            client_index,
            side,
            base,
            units,
            sdk.ORDER_TYPE_LIMIT,
            tif,
            reduce_only,
            sdk.DEFAULT_28_DAY_ORDER_EXPIRY,
        )

    def _order_signer(
        self,
        market: LighterMarket,
        client_index: int,
        side: OrderSide,
        base: int,
        price_units: int,
        order_type: int,
        time_in_force: int,
        reduce_only: bool,
        expiry: int,
    ) -> Callable[[int, int], tuple[Any, Any, Any, Any]]:
        """The signing call of one order, for a nonce and key chosen when it is sent."""
        market_index = int(market.market_id)
        is_ask = int(side is OrderSide.SELL)

        def sign(nonce: int, key: int) -> tuple[Any, Any, Any, Any]:
            return self._signer.sign_create_order(
                market_index,
                client_index,
                base,
                price_units,
                is_ask,
                order_type,
                time_in_force,
                reduce_only,
                lighter.SignerClient.NIL_TRIGGER_PRICE,
                expiry,
                nonce=nonce,
                api_key_index=key,
            )

        return sign

    async def _cancel_target(self, contract_id: str, order_id: str) -> tuple[int, str | None]:
        """The order index to cancel and our client id (the resolution cancel_order does)."""
        order_index, client_id = self._resolve_order_id(order_id)
        tracked = self._orders.get(order_id)
        if tracked is not None and tracked.status.is_final:
            raise OrderNotFound(f"lighter: order {order_id} is already {tracked.status.value}")
        if order_index is None and tracked is not None:
            await self._await_order(tracked, until_final=False)
            order_index = tracked.order_id
        if order_index is None:
            info = await self.get_order_info(contract_id, order_id)
            order_index = info.order_id or None
            if not info.status.is_active:
                raise OrderNotFound(f"lighter: order {order_id} is already {info.status.value}")
        if order_index is None:
            raise OrderNotFound(f"lighter: order {order_id} has no order index on the venue yet")
        return int(order_index), client_id

    async def cancel_orders(self, contract_id: str, order_ids: Sequence[str]) -> list[BatchOutcome]:
        """Cancel several orders with batches of cancel transactions (see above)."""
        market = await self._market(contract_id)
        targets = await asyncio.gather(
            *(self._cancel_target(contract_id, order_id) for order_id in order_ids), return_exceptions=True
        )
        outcomes: dict[int, BatchOutcome] = {}
        ready: list[tuple[int, int, str | None]] = []
        for i, (order_id, target) in enumerate(zip(order_ids, targets, strict=True)):
            if isinstance(target, ExchangeError):
                outcomes[i] = BatchOutcome(order_id, error=target)
            elif isinstance(target, BaseException):
                raise target
            else:
                ready.append((i, *target))
        sent: list[tuple[int, int, str | None]] = []
        for start in range(0, len(ready), MAX_BATCH_TXS):
            chunk = ready[start : start + MAX_BATCH_TXS]
            signs = [self._cancel_signer(int(market.market_id), index) for _, index, _ in chunk]
            errors = await self._send_signed_batch(signs, f"batch of {len(chunk)} cancels", Priority.HIGH)
            for item, error in zip(chunk, errors, strict=True):
                if error is None:
                    sent.append(item)
                else:
                    outcomes[item[0]] = BatchOutcome(order_ids[item[0]], error=error)
        results = await asyncio.gather(
            *(self._cancel_result(index, client_id) for _, index, client_id in sent)
        )
        for (i, _, _), result in zip(sent, results, strict=True):
            outcomes[i] = BatchOutcome(order_ids[i], result=result)
        return [outcomes[i] for i in range(len(order_ids))]

    def _cancel_signer(
        self, market_index: int, index: int
    ) -> Callable[[int, int], tuple[Any, Any, Any, Any]]:
        def sign(nonce: int, key: int) -> tuple[Any, Any, Any, Any]:
            return self._signer.sign_cancel_order(market_index, index, nonce=nonce, api_key_index=key)

        return sign

    async def _cancel_result(self, index: int, client_id: str | None) -> OrderResult:
        """A sent cancel's result, as cancel_order reports it (PENDING until the stream ends it)."""
        order_index = str(index)
        tracked = self._orders.get(order_index) or (self._orders.get(client_id) if client_id else None)
        if tracked is None:
            return OrderResult(
                success=True, order_id=order_index, client_order_id=client_id, status=OrderStatus.PENDING
            )
        await self._await_order(tracked, until_final=True)
        result = self._result(tracked)
        if not tracked.status.is_final:
            return dataclasses.replace(result, status=OrderStatus.PENDING)
        return result


if __name__ == "__main__":  # python -m exchanges.lighter --check ... (see exchanges/lighter_check.py)
    from exchanges.lighter_check import main

    sys.exit(main())
