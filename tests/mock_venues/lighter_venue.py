"""A loopback Lighter venue: REST + WebSocket on 127.0.0.1, speaking Lighter's wire shapes.

Every message the venue sends is built from a real captured message in
``../shared/fixtures/lighter/`` (loaded as a template, values filled in), so the shapes stay
real. The venue accepts transactions signed by the real ``lighter-sdk`` (its native signer), keeps
its own order book per market, matches our orders against it and pushes book and account updates.

It runs in its own thread with its own event loop, because ``SignerClient.check_client`` makes
its HTTP request from native code (blocking the caller's thread) and the SDK's ``SignerClient``
must itself be built inside the *test's* running loop. Control methods (``set_book``,
``trade_through``, fault injection, ...) are thread-safe: they run on the venue's loop and return
when done.

Wire facts the mock follows (see the fixtures and the installed SDK):

* REST under ``/api/v1``; ``sendTx`` takes form fields ``tx_type`` and ``tx_info`` (the signed tx
  as a JSON string, fields ``AccountIndex``, ``ApiKeyIndex``, ``MarketIndex``, ``ClientOrderIndex``,
  ``BaseAmount``, ``Price``, ``IsAsk``, ``Type``, ``TimeInForce``, ``ReduceOnly``, ``OrderExpiry``,
  ``ExpiredAt``, ``Nonce``, ``Sig``). Tx types: 14 create order, 15 cancel order, 16 cancel all,
  17 modify order, 20 update leverage.
* A stale nonce answers HTTP 400 ``{"code":21104,"message":"invalid nonce"}``; the SDK's nonce
  manager looks for the text "invalid nonce" in the 400 body and resyncs from ``nextNonce``.
  Rejected transactions do not consume the nonce (the SDK rolls its counter back on failure).
* ``sendTx`` acknowledges *acceptance*; execution results (resting, fills, post-only
  cancellation) arrive asynchronously on the WebSocket account channels and in the order
  endpoints, as on the real venue.
* Auth tokens (``SignerClient.create_auth_token_with_expiry``) look like
  ``"<expiry unix s>:<account>:<api key index>:<hex signature>"``. REST takes them in the
  ``authorization`` header (current SDK) or the ``auth`` query parameter; WS subscriptions take
  them in an ``"auth"`` field. The mock checks the format, expiry, account and key registration; it
  cannot verify the Schnorr signature itself (the native library exports no verifier).
* WS: path ``/stream``; first frame ``{"type":"connected","session_id":...}``; subscribe with
  ``{"type":"subscribe","channel":"order_book/0"}`` ('/' in requests, ':' in replies).

How fills arrive (as on Lighter): each execution pushes
``update/account_orders`` on ``account_orders:{market}:{account}`` (and
``update/account_all_orders``) with the order's new ``filled_base_amount`` /
``remaining_base_amount`` / ``status`` ("open" while partially filled, "filled" when done), and
an ``update/account_all_trades`` with the trade (size, price, ``is_maker_ask``, our
``bid_client_id``/``ask_client_id``, maker/taker fee in millionths); then positions, assets and
user stats. Public ``trade:{market}``, ``order_book:{market}``, ``ticker:{market}`` and
``market_stats`` updates follow. A taker order's state is pushed once, after its sweep.

Channels: order_book/{m}, ticker/{m}, trade/{m}, market_stats/{m|all}, user_stats/{a},
account_all/{a} (the SDK's WsClient channel; no capture exists, shape from Lighter's docs) and,
with ``auth``: account_orders/{m}/{a}, account_all_orders/{a}, account_all_trades/{a},
account_all_positions/{a}, account_all_assets/{a}. Also ``jsonapi/sendtx`` and
``jsonapi/sendtxbatch`` over WS, ``{"type":"ping"}`` -> ``{"type":"pong"}``, and the 30002 /
30003 / 30005 subscription errors.

Run as its own process (``python -m tests.mock_venues.lighter_venue --help``) it serves two
endpoints of its own, outside the Lighter API and never faulted: ``GET /_mock/state`` (the
venue's truth: every order, position, trade and fault counter, Decimal values as strings) and
``POST /_mock/control`` (move the market, drop connections, queue or clear faults), so a test in
another process can drive and check it. Faults can be queued one by one (``rate_limit_next``,
``fail_next``, ``slow_next``, ``duplicate_next_message``, ...) or drawn at seeded random moments
(``set_fault_rates``, the ``--*-rate`` options); both feed the same queues. Faults only change
what is *delivered*: the venue's own state is never altered by them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import copy
import hashlib
import itertools
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tests.mock_venues.base import MockConn, MockVenueBase, fixture_loader, now_ms, write_private_file
from tests.mock_venues.base import non_negative as _non_negative
from tests.mock_venues.base import probability as _probability
from tests.shared_paths import FIXTURES_DIR as SHARED_FIXTURES_DIR

log = logging.getLogger(__name__)

FIXTURES_DIR = Path(os.environ.get("LIGHTER_FIXTURES_DIR", str(SHARED_FIXTURES_DIR / "lighter")))

# Transaction types (Lighter's TxTypeL2* constants, as produced by the SDK's signer).
TX_CHANGE_PUB_KEY = 8
TX_CREATE_ORDER = 14
TX_CANCEL_ORDER = 15
TX_CANCEL_ALL_ORDERS = 16
TX_MODIFY_ORDER = 17
TX_UPDATE_LEVERAGE = 20

# Order enums as in SignerClient.
ORDER_TYPE_LIMIT = 0
ORDER_TYPE_MARKET = 1
TIF_IOC = 0
TIF_GTT = 1
TIF_POST_ONLY = 2

ORDER_TYPE_NAMES = {
    0: "limit",
    1: "market",
    2: "stop-loss",
    3: "stop-loss-limit",
    4: "take-profit",
    5: "take-profit-limit",
    6: "twap",
}
TIF_NAMES = {TIF_IOC: "immediate-or-cancel", TIF_GTT: "good-till-time", TIF_POST_ONLY: "post-only"}

# Status vocabulary of lighter.models.Order.status.
STATUS_OPEN = "open"
STATUS_FILLED = "filled"
STATUS_CANCELED = "canceled"
STATUS_CANCELED_POST_ONLY = "canceled-post-only"
STATUS_CANCELED_REDUCE_ONLY = "canceled-reduce-only"
# Unsourced: lighter.models.Order lists these statuses, but no capture or source says which one
# the venue gives an IOC/market order that ends with nothing filled. The mock picks these two;
# ``set_ioc_unfilled_status`` makes it answer any other, so clients are tested against every form.
STATUS_CANCELED_SLIPPAGE = "canceled-too-much-slippage"
STATUS_CANCELED_NO_LIQUIDITY = "canceled-not-enough-liquidity"
STATUS_CANCELED_EXPIRED = "canceled-expired"

# Error bodies. Codes with a source: fixtures (21104) and the ccxt error table (21xxx, 23000,
# 30xxx). Codes marked "unsourced" are the mock's own choice; no real body was available.
ERR_INVALID_NONCE = (21104, "invalid nonce")
ERR_INVALID_TX_INFO = (21501, "invalid tx info")
ERR_UNSUPPORTED_TX = (21505, "unsupported tx type")
ERR_NOT_ACTIVE = (21600, "given order is not an active limit order")
ERR_INVALID_MARKET = (21602, "invalid market index")
ERR_INVALID_AMOUNT = (21706, "invalid order base or quote amount")
ERR_INVALID_PRICE = (21702, "invalid price")
ERR_INVALID_EXPIRY = (21711, "invalid expiry")
ERR_INVALID_CLIENT_INDEX = (21727, "invalid client order index")
ERR_CLIENT_INDEX_EXISTS = (21728, "client order index already exists")
ERR_TOO_MANY_REQUESTS = (23000, "Too Many Requests!")
ERR_REST_INVALID_MARKET = (1001, "invalid market")  # fixture http_error_invalid_market.json
ERR_INVALID_AUTH = (20013, "invalid auth")  # unsourced
ERR_ACCOUNT_NOT_FOUND = (21100, "account not found")  # unsourced
ERR_SERVER = (29500, "internal server error")  # unsourced
WS_ERR_NOT_SUBSCRIBED = 30002
WS_ERR_ALREADY_SUBSCRIBED = 30003
WS_ERR_INVALID_CHANNEL = 30005

MAX_CLIENT_ORDER_INDEX = 2**48 - 1
MAKER_ACCOUNT_INDEX = 281474976641952  # owner of the synthetic book liquidity (from a capture)
ASK_ORDER_INDEX_BASE = 281476929510000
BID_ORDER_INDEX_BASE = 562947905454000
SCALE_QUOTE = Decimal("0.000001")

#: Fault types. The same names key the seeded rates (``set_fault_rates``, CLI ``--<name>-rate``
#: with '-' for '_'), the counters and ``/_mock/state``.
FAULT_KINDS = (
    "ws_drop",
    "http_429_retry_after",
    "http_429",
    "http_5xx",
    "slow_reply",
    "ws_duplicate",
    "ws_reorder",
    "book_gap",
    "malformed_frame",
    "oversized_frame",
)
#: ``POST /_mock/control`` actions: the venue method called and the JSON fields it takes.
CONTROL_ACTIONS: dict[str, set[str]] = {
    "set_book": {"bids", "asks", "market_id"},
    "seed_book": {"mid", "market_id"},
    "trade_through": {"price", "size", "market_id", "reseed"},
    "walk_step": {"market_id"},
    "drop_connections": set(),
    "hold_connections": {"hold"},
    "clear_faults": set(),
    "set_fault_rates": {"seed", "slow_ms", "retry_after", "oversize_bytes", *FAULT_KINDS},
    "rate_limit_next": {"n", "retry_after"},
    "fail_next": {"n", "status"},
    "set_delay": {"ms"},
    "slow_next": {"n", "ms"},
    "reject_next_tx": {"code", "message", "n"},
    "duplicate_next_message": {"channel_prefix", "n"},
    "reorder_next_messages": {"channel_prefix"},
    "inject_book_gap": {"market_id", "n"},
    "malform_next_message": {"channel_prefix", "kind", "n"},
    "oversize_next_message": {"channel_prefix", "n"},
    "expire_orders": {"at_ms"},
    "set_ioc_unfilled_status": {"status"},
    "set_account_limits": {"rest_per_minute", "tx_per_minute"},
    "refuse_next_subscription": {"channel_prefix", "code", "message", "n"},
    "announce_shutdown": {"close_in_ms"},
    "apply_funding": {"market_id"},
    "set_funding_rate": {"market_id", "rate"},
}
#: Counted but only ever queued by hand (``reject_next_tx``): a rejection is a venue decision.
COUNTED_ONLY_FAULTS = ("tx_reject",)
MALFORMED_KINDS = ("invalid_json", "wrong_types", "nan_price")
#: 5xx statuses a drawn ``http_5xx`` fault picks from. 504 is a gateway timeout *after* the venue
#: handled the request (a sendTx in it was executed); the others are refused before handling.
SERVER_ERROR_STATUSES = (500, 502, 503, 504)
EXECUTED_THEN_FAILED_STATUS = 504
DEFAULT_SLOW_MS = 11_000.0  # just over the Lighter client's default 10 s REST timeout
DEFAULT_OVERSIZE_BYTES = 5 * 2**20  # over the 4 MiB frame limit of helpers/reconnecting_websocket.py
WALK_STEP_FRACTION = Decimal("0.0005")  # largest walk step, as a fraction of the price
WALK_REVERSION = Decimal("0.02")  # share of the distance to the anchor the walk closes per step


# ---------------------------------------------------------------------------------------------
# Fixture templates
# ---------------------------------------------------------------------------------------------

#: A deep copy of a captured Lighter message from the fixtures directory.
fixture = fixture_loader(FIXTURES_DIR)


def _fill(template: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Set values on a template, refusing keys the real message does not have."""
    for key, value in values.items():
        if key not in template:
            raise KeyError(f"{key!r} is not a field of the captured message")
        template[key] = value
    return template


def _tx_hash(seed: str) -> str:
    return hashlib.blake2b(f"{seed}:{time.time_ns()}".encode(), digest_size=40).hexdigest()


def malformed_frame(message: dict[str, Any], kind: str) -> str:
    """A broken version of ``message`` as frame text (fault injection).

    ``invalid_json``: the text cut in half. ``wrong_types``: every payload field (all but
    ``type`` and ``channel``, so the frame is still routed to its handler) swapped for a value of
    another JSON type. ``nan_price``: every ``*price*`` field set to "NaN", which Decimal accepts;
    a message without prices gets ``wrong_types`` instead.
    """
    if kind == "invalid_json":
        text = json.dumps(message)
        return text[: max(1, len(text) // 2)]
    if kind == "nan_price":
        replaced = False

        def nan(value: Any) -> Any:
            nonlocal replaced
            if isinstance(value, dict):
                out = {}
                for key, item in value.items():
                    if "price" in key and not isinstance(item, dict | list):
                        out[key] = "NaN"
                        replaced = True
                    else:
                        out[key] = nan(item)
                return out
            if isinstance(value, list):
                return [nan(item) for item in value]
            return value

        broken = nan(message)
        if replaced:
            return json.dumps(broken)
    if kind not in MALFORMED_KINDS:
        raise ValueError(f"unknown malformed frame kind {kind!r}")

    def other_type(value: Any) -> Any:
        if isinstance(value, dict | list):
            return "?"
        if isinstance(value, str):
            return 12345
        return [value]

    return json.dumps(
        {key: value if key in ("type", "channel") else other_type(value) for key, value in message.items()}
    )


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass
class MarketSpec:
    """One perp market. Fees are fractions (0.0002 = 0.02 %)."""

    market_id: int = 0
    symbol: str = "ETH"
    size_decimals: int = 4
    price_decimals: int = 2
    min_base_amount: Decimal = Decimal("0.0050")
    min_quote_amount: Decimal = Decimal("10")
    maker_fee: Decimal = Decimal("0.00002")
    taker_fee: Decimal = Decimal("0.0002")
    funding_rate: Decimal = Decimal("0.0001")
    default_imf: int = 500  # initial margin fraction in 1/10000 (500 = 5 %)

    def price_int(self, price: Decimal | str | float | int) -> int:
        return int((Decimal(str(price)) * 10**self.price_decimals).to_integral_value(ROUND_DOWN))

    def size_int(self, size: Decimal | str | float | int) -> int:
        return int((Decimal(str(size)) * 10**self.size_decimals).to_integral_value(ROUND_DOWN))

    def price_dec(self, price_int: int) -> Decimal:
        return Decimal(price_int).scaleb(-self.price_decimals)

    def size_dec(self, size_int: int) -> Decimal:
        return Decimal(size_int).scaleb(-self.size_decimals)

    def fmt_price(self, price_int: int) -> str:
        return f"{self.price_dec(price_int):.{self.price_decimals}f}"

    def fmt_size(self, size_int: int) -> str:
        return f"{self.size_dec(size_int):.{self.size_decimals}f}"


def _q6(value: Decimal) -> str:
    return f"{value.quantize(SCALE_QUOTE):f}"


@dataclass
class VenueOrder:
    order_index: int
    client_order_index: int
    market_id: int
    account_index: int
    is_ask: bool
    order_type: int
    time_in_force: int
    reduce_only: bool
    price: int
    initial: int
    order_expiry: int
    nonce: int
    created_ms: int
    filled: int = 0
    filled_quote: Decimal = Decimal(0)
    status: str = "open"
    updated_ms: int = 0
    block_height: int = 0

    @property
    def remaining(self) -> int:
        return 0 if self.status != STATUS_OPEN else self.initial - self.filled

    @property
    def active(self) -> bool:
        return self.status == STATUS_OPEN


@dataclass
class PositionState:
    size: int = 0  # signed, base units
    avg_entry: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    funding_paid: Decimal = Decimal(0)
    imf: int = 500
    margin_mode: int = 0


@dataclass
class AccountState:
    index: int
    l1_address: str
    collateral: Decimal
    api_keys: dict[int, str] = field(default_factory=dict)  # api key index -> public key
    next_nonce: dict[int, int] = field(default_factory=dict)
    positions: dict[int, PositionState] = field(default_factory=dict)
    fees_paid: Decimal = Decimal(0)
    created_ms: int = field(default_factory=now_ms)
    trades: list[dict[str, Any]] = field(default_factory=list)  # every fill, never trimmed


@dataclass
class BookState:
    spec: MarketSpec
    bids: dict[int, int] = field(default_factory=dict)  # external liquidity: price -> size
    asks: dict[int, int] = field(default_factory=dict)
    published_bids: dict[int, int] = field(default_factory=dict)
    published_asks: dict[int, int] = field(default_factory=dict)
    offset: int = 1000
    book_nonce: int = 0
    last_trade_price: int = 0
    gaps_pending: int = 0
    trades: list[dict[str, Any]] = field(default_factory=list)
    last_bbo: tuple[Any, ...] = ()


@dataclass
class VenueStats:
    """What the venue received, for assertions (read through MockLighterVenue.stats())."""

    rest_calls: dict[str, int] = field(default_factory=dict)
    txs: list[dict[str, Any]] = field(default_factory=list)  # every decoded tx received
    nonces_seen: list[tuple[int, int, int]] = field(default_factory=list)  # (account, key, nonce)
    orders_accepted: int = 0
    cancels: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (code, message)
    invalid_nonces: int = 0
    ws_connections: int = 0
    ws_messages_in: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    batches: int = 0  # sendTxBatch / jsonapi/sendtxbatch requests received (HTTP and WS)


class TxRejected(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TimingMark:
    """One timestamped venue event, for latency benchmarks (see ``set_timing_hook``).

    ``kind``: ``"tx_received"`` (a create-order sendTx reached the handler, stamped on arrival),
    ``"order_resting"`` (an order's resting state was queued for the account stream) or
    ``"fill_sent"`` (an account_orders frame carrying a fill is about to be written to a socket).
    ``at`` is ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, comparable across threads and
    processes); ``price`` is in the market's integer price units.
    """

    kind: str
    client_order_index: int
    at: float
    reduce_only: bool = False
    is_ask: bool = False
    price: int = 0


TimingHook = Callable[[TimingMark], None]


# ---------------------------------------------------------------------------------------------
# WebSocket connection wrapper
# ---------------------------------------------------------------------------------------------


class _Conn(MockConn):
    """A shared mock connection with the session id of Lighter's ``connected`` frame."""

    def __init__(self, ws: web.WebSocketResponse, session_id: str) -> None:
        super().__init__(ws)
        self.session_id = session_id


# ---------------------------------------------------------------------------------------------
# The venue
# ---------------------------------------------------------------------------------------------


def generate_api_key() -> tuple[str, str]:
    """(private key, public key) from the SDK's native signer, as ``create_api_key()`` gives them."""
    from lighter.signer_client import create_api_key

    private_key, public_key, err = create_api_key()
    if err or not private_key or not public_key:
        raise RuntimeError(f"lighter signer could not generate an API key: {err}")
    return private_key, public_key


class MockLighterVenue(MockVenueBase):
    """Loopback Lighter venue for tests and manual runs.

    >>> venue = MockLighterVenue(start_price=Decimal("3000")); venue.start()
    >>> venue.base_url, venue.ws_url, venue.account_index, venue.api_key_index, venue.api_private_key
    >>> venue.stop()
    """

    name = "lighter"
    fault_kinds = FAULT_KINDS
    CONTROL_ACTIONS = CONTROL_ACTIONS

    def __init__(
        self,
        markets: Iterable[MarketSpec] | None = None,
        *,
        start_price: Decimal | str | int = Decimal("3000"),
        account_index: int = 712440,
        api_key_index: int = 4,
        api_private_key: str | None = None,
        api_public_key: str | None = None,
        collateral: Decimal | str = Decimal("10000"),
        initial_nonce: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        book_levels: int = 10,
        level_size: Decimal | str = Decimal("0.5"),
        seed: int = 7,
        fault_seed: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port, fault_seed=seed if fault_seed is None else fault_seed)
        self.markets: dict[int, MarketSpec] = {m.market_id: m for m in (markets or [MarketSpec()])}
        if api_private_key is None and api_public_key is None:
            api_private_key, api_public_key = generate_api_key()
        elif api_public_key is None:
            raise ValueError("give api_public_key with api_private_key (the signer cannot derive it)")
        self.api_private_key = api_private_key
        self.api_public_key: str = api_public_key
        self.account_index = account_index
        self.api_key_index = api_key_index
        self.chain_id = 304  # what SignerClient guesses for a non-Lighter URL; pass it explicitly
        self._book_levels = book_levels
        self._level_size = Decimal(str(level_size))
        self._rng = random.Random(seed)
        self._walk_rng = random.Random(seed)
        self._walk_anchor: dict[int, int] = {}  # market -> price units the walk drifts back to
        self._walk_price: dict[int, int] = {}
        self._walk_task: asyncio.Task[None] | None = None

        self._accounts: dict[int, AccountState] = {}
        self.add_account(account_index, collateral=Decimal(str(collateral)))
        self._accounts[account_index].api_keys[api_key_index] = api_public_key
        self._accounts[account_index].next_nonce[api_key_index] = initial_nonce

        self._orders: dict[int, VenueOrder] = {}
        #: The orders that may still be open (see :meth:`_open_orders`), in arrival order.
        self._maybe_open: dict[int, VenueOrder] = {}
        self._books: dict[int, BookState] = {}
        self._ask_ids = itertools.count(ASK_ORDER_INDEX_BASE)
        self._bid_ids = itertools.count(BID_ORDER_INDEX_BASE)
        self._trade_ids = itertools.count(19209006902)
        self._engine_nonce = 9182389000
        self._block_height = 227535000
        self._stats = VenueStats()
        for mid, spec in self.markets.items():
            book = self._books[mid] = BookState(spec=spec)
            self._seed_book_now(mid, Decimal(str(start_price)))
            book.published_bids, book.published_asks = self._aggregate(mid)
            book.book_nonce = self._next_engine_nonce()
            self._walk_anchor[mid] = self._walk_price[mid] = spec.price_int(Decimal(str(start_price)))

        # Fault state beyond the shared queues (``_rest_faults``, ``_slow``, ``_refusing``...).
        # Queues filled by the *_next methods or by seeded draws (_roll); popped where the fault
        # applies, which is also where it is counted.
        self._delay_s = 0.0
        self._dup_pending: list[str | None] = []
        self._reorder_pending: list[str | None] = []
        self._malformed_pending: list[tuple[str | None, str | None]] = []  # (prefix, kind)
        self._oversized_pending: list[str | None] = []
        self._held: tuple[str, list[tuple[_Conn, dict[str, Any]]]] | None = None
        #: Queued transaction refusals; None lets one transaction through (see reject_next_tx).
        self._tx_faults: list[tuple[int, str] | None] = []
        self._timing_hook: TimingHook | None = None
        self._fault_counts = dict.fromkeys(FAULT_KINDS + COUNTED_ONLY_FAULTS, 0)
        self._slow_s = DEFAULT_SLOW_MS / 1000.0
        self._retry_after = 1.0
        self._oversize_bytes = DEFAULT_OVERSIZE_BYTES
        self._ioc_unfilled_status: str | None = None
        # Standard-account limits (None: off), rolling 60 s windows of request/transaction times.
        self._rest_limit: int | None = None
        self._tx_limit: int | None = None
        self._rest_times: collections.deque[float] = collections.deque()
        self._tx_times: collections.deque[float] = collections.deque()
        self.limit_refusals = {"rest": 0, "tx": 0}
        self._refusals: list[tuple[str, int, str]] = []  # (channel prefix, code, message)
        self.shutdown_forced_closes = 0  # connections still open when a shutdown notice ran out

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        if self.port is None:
            raise RuntimeError("venue not started")
        return f"ws://{self.host}:{self.port}/stream"

    def env(self) -> dict[str, str]:
        """Environment a Lighter client reads to point at this venue."""
        return {
            "LIGHTER_BASE_URL": self.base_url,
            "LIGHTER_WS_URL": self.ws_url,
            "LIGHTER_ACCOUNT_INDEX": str(self.account_index),
            "LIGHTER_API_KEY_INDEX": str(self.api_key_index),
            "LIGHTER_API_PRIVATE_KEY": self.api_private_key,
            "LIGHTER_CHAIN_ID": str(self.chain_id),
        }

    def __enter__(self) -> MockLighterVenue:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def on_stop(self) -> None:
        if self._walk_task is not None:
            self._walk_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._walk_task

    # -- configuration -----------------------------------------------------------------------

    def add_account(
        self, index: int, collateral: Decimal | str = Decimal("10000"), l1_address: str | None = None
    ) -> None:
        def do() -> None:
            acct = AccountState(
                index=index,
                l1_address=l1_address or "0x" + hashlib.sha1(str(index).encode()).hexdigest()[:40],
                collateral=Decimal(str(collateral)),
            )
            for mid, spec in self.markets.items():
                acct.positions[mid] = PositionState(imf=spec.default_imf)
            self._accounts[index] = acct

        self.call(do)

    def add_api_key(self, account_index: int, api_key_index: int, public_key: str, nonce: int = 1) -> None:
        def do() -> None:
            acct = self._accounts[account_index]
            acct.api_keys[api_key_index] = public_key
            acct.next_nonce[api_key_index] = nonce

        self.call(do)

    def set_funding_rate(self, market_id: int, rate: Decimal | str) -> None:
        self.call(lambda: setattr(self.markets[market_id], "funding_rate", Decimal(str(rate))))

    def next_nonce(self, account_index: int | None = None, api_key_index: int | None = None) -> int:
        acct = self._accounts[account_index if account_index is not None else self.account_index]
        return self.call(
            lambda: acct.next_nonce[api_key_index if api_key_index is not None else self.api_key_index]
        )

    # -- observation -------------------------------------------------------------------------

    def set_timing_hook(self, hook: TimingHook | None) -> None:
        """Call ``hook(TimingMark)`` on the venue thread at each timed event (None: off).

        For latency benchmarks: the hook must be quick and must not call back into the venue
        synchronously (hand the mark to another thread or loop instead).
        """
        self.call(lambda: setattr(self, "_timing_hook", hook))

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the venue loop without waiting for it (e.g. ``trade_through``)."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("venue not started")
        loop.call_soon_threadsafe(lambda: fn(*args))

    def _mark(self, kind: str, order: VenueOrder) -> None:
        hook = self._timing_hook
        if hook is not None:
            hook(
                TimingMark(
                    kind,
                    order.client_order_index,
                    time.perf_counter(),
                    reduce_only=order.reduce_only,
                    is_ask=order.is_ask,
                    price=order.price,
                )
            )

    def stats(self) -> VenueStats:
        """A snapshot copy of what the venue received."""
        return self.call(lambda: copy.deepcopy(self._stats))

    def orders(self, account_index: int | None = None) -> list[dict[str, Any]]:
        """All orders (any status) of the account as Lighter order objects."""
        acct = account_index if account_index is not None else self.account_index
        return self.call(
            lambda: [self._order_json(o) for o in self._orders.values() if o.account_index == acct]
        )

    def position(self, market_id: int = 0, account_index: int | None = None) -> Decimal:
        """Signed position size in base units (Decimal)."""
        acct = self._accounts[account_index if account_index is not None else self.account_index]
        spec = self.markets[market_id]
        return self.call(lambda: spec.size_dec(acct.positions[market_id].size))

    def collateral(self, account_index: int | None = None) -> Decimal:
        acct = self._accounts[account_index if account_index is not None else self.account_index]
        return self.call(lambda: acct.collateral)

    def best_bid_ask(self, market_id: int = 0) -> tuple[Decimal | None, Decimal | None]:
        def do() -> tuple[Decimal | None, Decimal | None]:
            bids, asks = self._aggregate(market_id)
            spec = self.markets[market_id]
            return (
                spec.price_dec(max(bids)) if bids else None,
                spec.price_dec(min(asks)) if asks else None,
            )

        return self.call(do)

    # -- moving the market -------------------------------------------------------------------

    def seed_book(self, mid: Decimal | str | int, market_id: int = 0) -> None:
        """Replace the external liquidity with a symmetric ladder around ``mid``."""

        def do() -> None:
            self._seed_book_now(market_id, Decimal(str(mid)))
            mid_int = self.markets[market_id].price_int(Decimal(str(mid)))
            self._walk_anchor[market_id] = self._walk_price[market_id] = mid_int
            self._match_resting_against_book(market_id)
            self._publish_book(market_id)

        self.call(do)

    def set_book(
        self,
        bids: Iterable[tuple[Any, Any]],
        asks: Iterable[tuple[Any, Any]],
        market_id: int = 0,
    ) -> list[dict[str, Any]]:
        """Replace the external liquidity with the given (price, size) levels.

        Levels crossing our resting orders trade with them (our orders are makers, at their
        price). Returns the trades that caused.
        """

        def do() -> list[dict[str, Any]]:
            book = self._books[market_id]
            spec = book.spec
            book.bids = {spec.price_int(p): spec.size_int(s) for p, s in bids if spec.size_int(s) > 0}
            book.asks = {spec.price_int(p): spec.size_int(s) for p, s in asks if spec.size_int(s) > 0}
            trades = self._match_resting_against_book(market_id)
            self._publish_book(market_id)
            return trades

        return self.call(do)

    def trade_through(
        self,
        price: Decimal | str | int,
        size: Decimal | str | int | None = None,
        market_id: int = 0,
        reseed: bool = True,
    ) -> list[dict[str, Any]]:
        """Print market trades down (or up) to ``price``.

        Our resting bids at or above ``price`` and asks at or below it fill (as makers, at their
        own price, best price first, then oldest first). ``size`` caps the total traded size, so
        a smaller trade partially fills. With ``reseed`` the external book is rebuilt around
        ``price`` afterwards; otherwise only the swept external levels are removed. Returns the
        trades (Lighter trade objects). The random walk (``walk_step``) continues from ``price``.
        """
        return self.call(self._trade_through_now, price, size, market_id, reseed)

    def _trade_through_now(
        self, price: Decimal | str | int, size: Decimal | str | int | None, market_id: int, reseed: bool
    ) -> list[dict[str, Any]]:
        book = self._books[market_id]
        spec = book.spec
        p = spec.price_int(price)
        self._walk_price[market_id] = p
        budget = spec.size_int(size) if size is not None else None
        crossed = [
            o
            for o in self._open_orders()
            if o.market_id == market_id and ((not o.is_ask and o.price >= p) or (o.is_ask and o.price <= p))
        ]
        crossed.sort(key=lambda o: (-o.price if not o.is_ask else o.price, o.order_index))
        trades: list[dict[str, Any]] = []
        for order in crossed:
            qty = order.remaining if budget is None else min(order.remaining, budget)
            if qty <= 0:
                break
            trades.append(self._execute(order, qty, order.price, maker=True))
            if budget is not None:
                budget -= qty
        if not trades:
            lot = budget if budget else max(spec.size_int(spec.min_base_amount), 1)
            trades.append(self._public_trade(market_id, p, lot, taker_is_ask=p < self._mid_int(market_id)))
        if reseed:
            self._seed_book_now(market_id, spec.price_dec(p))
            self._prune_levels_crossing_ours(market_id)
        else:
            book.bids = {px: sz for px, sz in book.bids.items() if px < p}
            book.asks = {px: sz for px, sz in book.asks.items() if px > p}
        self._publish_book(market_id)
        return trades

    def walk_step(self, market_id: int = 0) -> Decimal:
        """One step of the venue's own market activity; returns the new price.

        The price moves by a seeded random step of up to 0.05 % and is pulled 2 % of the way
        back to its anchor (the start price, or the last ``seed_book`` mid), then trades through
        (``trade_through``). The pull keeps the walk oscillating around the anchor instead of
        drifting away, so resting orders on both sides of it (a buy grid and its take-profit
        sells) keep filling over minutes. Same seed, same sequence of prices.
        """
        return self.call(self._walk_step_now, market_id)

    def _walk_step_now(self, market_id: int) -> Decimal:
        spec = self.markets[market_id]
        price = spec.price_dec(self._walk_price[market_id])
        anchor = spec.price_dec(self._walk_anchor[market_id])
        tick = Decimal(1).scaleb(-spec.price_decimals)
        noise = price * WALK_STEP_FRACTION * Decimal(str(self._walk_rng.uniform(-1, 1)))
        step = (noise + (anchor - price) * WALK_REVERSION).quantize(tick)
        price = max(tick, price + step)
        self._trade_through_now(price, None, market_id, True)
        return price

    def start_walk(self, interval: float) -> None:
        """Run ``walk_step`` on every market each ``interval`` seconds until the venue stops."""
        if interval <= 0:
            raise ValueError("walk interval must be positive")

        async def walk() -> None:
            while True:
                await asyncio.sleep(interval)
                for market_id in sorted(self.markets):
                    try:
                        self._walk_step_now(market_id)
                    except Exception:  # a bug in one step must not silently end the market
                        log.exception("mock venue: walk step on market %d failed", market_id)

        def do() -> None:
            if self._walk_task is not None:
                self._walk_task.cancel()
            self._walk_task = asyncio.ensure_future(walk())

        self.call(do)

    def apply_funding(self, market_id: int = 0) -> dict[int, Decimal]:
        """Settle one funding interval at the market's rate and mark price.

        Longs pay shorts when the rate is positive. Returns what each account paid (negative =
        received) and pushes the changed positions and balances.
        """

        def do() -> dict[int, Decimal]:
            spec = self.markets[market_id]
            mark = self._mark_price(market_id)
            paid: dict[int, Decimal] = {}
            for acct in self._accounts.values():
                pos = acct.positions.get(market_id)
                if pos is None or not pos.size:
                    continue
                amount = (spec.size_dec(pos.size) * mark * spec.funding_rate).quantize(SCALE_QUOTE)
                pos.funding_paid += amount
                acct.collateral -= amount
                paid[acct.index] = amount
                self._push_account_state(acct.index)
            return paid

        return self.call(do)

    def expire_orders(self, at_ms: int | None = None) -> list[int]:
        """Cancel (status ``canceled-expired``) resting orders whose expiry is before ``at_ms``
        (default now). Returns their order indexes."""

        def do() -> list[int]:
            cutoff = now_ms() if at_ms is None else at_ms
            expired = [o for o in self._open_orders() if 0 < o.order_expiry < cutoff]
            for o in expired:
                self._cancel_order_now(o, STATUS_CANCELED_EXPIRED)
                self._push_account_state(o.account_index)
            for mid in {o.market_id for o in expired}:
                self._publish_book(mid)
            return [o.order_index for o in expired]

        return self.call(do)

    # -- fault injection ---------------------------------------------------------------------
    # Shared (MockVenueBase): drop_connections, hold_connections, fault_counts, clear_faults,
    # rate_limit_next (429 with code 23000, see fault_body) and fail_next (a 504 is answered
    # *after* the request was handled, so a sendTx in it was executed; other statuses refuse).

    def set_delay(self, ms: float) -> None:
        """Delay every REST response by ``ms`` milliseconds (0 to turn off).

        The request is handled first, as a slow network would: a client that gives up waiting
        does not undo it."""
        self.call(lambda: setattr(self, "_delay_s", ms / 1000.0))

    def slow_next(self, n: int = 1, ms: float | None = None) -> None:
        """Answer the next ``n`` REST calls ``ms`` milliseconds late (default: the slow-reply
        delay, just over the client's timeout). The request itself is handled at once."""
        self.call(lambda: self._slow.extend([self._slow_s if ms is None else ms / 1000.0] * n))

    def reject_next_tx(
        self, code: int = 21029, message: str = "insufficient margin", n: int = 1, after: int = 0
    ) -> None:
        """The next ``n`` valid transactions, after letting ``after`` through (a refusal inside
        a batch), answer HTTP 400 ``{"code":code,"message":message}``."""
        self.call(lambda: self._tx_faults.extend([None] * after + [(code, message)] * n))

    def set_account_limits(self, rest_per_minute: int | None = 60, tx_per_minute: int | None = 60) -> None:
        """Model a standard account's limits (apidocs.lighter.xyz "Rate Limits"): at most
        ``rest_per_minute`` REST requests (``/api/...``, unweighted) and ``tx_per_minute``
        transactions (HTTP sendTx and WebSocket sendtx alike) in any rolling 60 s. Beyond them a
        REST request answers HTTP 429 ``{"code": 23000}`` and a transaction is rejected with
        23000 (the bodies are unsourced). None turns a limit off."""

        def do() -> None:
            self._rest_limit, self._tx_limit = rest_per_minute, tx_per_minute
            self._rest_times.clear()
            self._tx_times.clear()

        self.call(do)

    @staticmethod
    def _over_limit(times: collections.deque[float], limit: int | None) -> bool:
        """Record one event now; True if the rolling minute then holds more than ``limit``."""
        if limit is None:
            return False
        now = time.monotonic()
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) >= limit:
            return True
        times.append(now)
        return False

    def set_ioc_unfilled_status(self, status: str | None) -> None:
        """End every IOC/market order that fills nothing with ``status`` (None: the default
        slippage/liquidity statuses). Unsourced: the real status is not known from any capture,
        so clients must treat every cancelled form alike."""
        if status is not None and not status.startswith("canceled"):
            raise ValueError("status must be a cancelled status (canceled or canceled-...)")
        self.call(lambda: setattr(self, "_ioc_unfilled_status", status))

    def refuse_next_subscription(
        self, channel_prefix: str = "account_orders", code: int = 20001, message: str = "denied", n: int = 1
    ) -> None:
        """Answer the next ``n`` subscribes to a channel starting with the prefix with the error
        frame ``{"error": {"code": code, "message": message}}``. Unsourced: the venue's words
        for a refused subscription are not known beyond the auth errors, so a client must
        treat any error answering its subscription as a refusal."""
        self.call(lambda: self._refusals.extend([(channel_prefix, code, message)] * n))

    def announce_shutdown(self, close_in_ms: int = 1000) -> int:
        """Send every connection ``{"type": "shutdown", "close_in_ms": N}`` (the frame lighter-sdk's
        WsClient handles) and close the ones still open N ms later, counted in
        ``shutdown_forced_closes``. Returns how many connections were told."""

        def do() -> int:
            conns = list(self.conns)
            for conn in conns:
                conn.send({"type": "shutdown", "close_in_ms": close_in_ms})

            def close_remaining() -> None:
                for conn in conns:
                    if conn in self.conns and not conn.ws.closed:
                        self.shutdown_forced_closes += 1
                        self.close_conn(conn)
                        task = asyncio.ensure_future(conn.ws.close(code=1001, message=b"shutdown"))
                        self._closing.add(task)
                        task.add_done_callback(self._closing.discard)

            assert self._loop is not None
            self._loop.call_later(close_in_ms / 1000.0, close_remaining)
            return len(conns)

        return self.call(do)

    def duplicate_next_message(self, channel_prefix: str | None = None, n: int = 1) -> None:
        """Send the next ``n`` pushed WS messages (optionally: whose channel starts with the
        prefix, e.g. ``"account_orders"``) twice."""
        self.call(lambda: self._dup_pending.extend([channel_prefix] * n))

    def reorder_next_messages(self, channel_prefix: str | None = None) -> None:
        """Send the next two pushed WS messages (matching the prefix) in swapped order."""
        self.call(lambda: self._reorder_pending.append(channel_prefix))

    def inject_book_gap(self, market_id: int = 0, n: int = 1) -> None:
        """Drop the next ``n`` order-book updates of the market: the book state still changes,
        so subscribers see a skipped offset and a begin_nonce that does not match their last
        nonce, and their local book is stale until they resubscribe."""
        self.call(
            lambda: setattr(self._books[market_id], "gaps_pending", self._books[market_id].gaps_pending + n)
        )

    def malform_next_message(
        self, channel_prefix: str | None = None, kind: str | None = None, n: int = 1
    ) -> None:
        """Before each of the next ``n`` pushed WS messages (matching the prefix), send a broken
        copy of it: ``kind`` "invalid_json" (truncated text), "wrong_types" (payload fields of
        the wrong JSON type) or "nan_price" (every price "NaN"); None picks one (seeded). The
        genuine message still follows: a client must discard the bad frame, not act on it."""
        if kind is not None and kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
        self.call(lambda: self._malformed_pending.extend([(channel_prefix, kind)] * n))

    def oversize_next_message(self, channel_prefix: str | None = None, n: int = 1) -> None:
        """Before each of the next ``n`` pushed WS messages (matching the prefix), send a copy
        padded past the oversize limit (``set_fault_rates(oversize_bytes=...)``); the genuine
        message follows, if the client kept the connection."""
        self.call(lambda: self._oversized_pending.extend([channel_prefix] * n))

    def set_fault_rates(
        self,
        seed: int | None = None,
        *,
        slow_ms: float | None = None,
        retry_after: float | None = None,
        oversize_bytes: int | None = None,
        **rates: float,
    ) -> None:
        """Inject faults at seeded random moments: ``rates`` maps names in ``FAULT_KINDS`` to
        a probability (0..1) per eligible event. Eligible: every ``/api/...`` REST request for
        http_429_retry_after, http_429, http_5xx and slow_reply; every pushed WS message that
        has a subscriber for ws_drop (all connections close), ws_duplicate, ws_reorder,
        malformed_frame and oversized_frame; every order-book update with a subscriber for
        book_gap. Each kind draws from its own stream seeded by ``(seed, kind)``, so the n-th
        eligible event of a kind gets the same decision for the same seed whatever else happens.
        A given ``seed`` restarts the streams. Unnamed kinds keep their rates.
        """
        unknown = sorted(set(rates) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}")
        checked: dict[str, float] = {}
        for kind, rate in rates.items():
            value = float(rate)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rate for {kind} must be between 0 and 1, got {rate}")
            checked[kind] = value
        for name, value in (
            ("slow_ms", slow_ms),
            ("retry_after", retry_after),
            ("oversize_bytes", oversize_bytes),
        ):
            if value is not None and float(value) < 0:
                raise ValueError(f"{name} must not be negative")

        def do() -> None:
            self._fault_rates.update(checked)
            if seed is not None:
                self._fault_seed = int(seed)
                self._rngs = self._seeded(self._fault_seed)
            if slow_ms is not None:
                self._slow_s = float(slow_ms) / 1000.0
            if retry_after is not None:
                self._retry_after = float(retry_after)
            if oversize_bytes is not None:
                self._oversize_bytes = int(oversize_bytes)

        self.call(do)

    def clear_venue_faults(self) -> None:
        """Lighter's own queued faults and the constant delay, cleared with the shared ones."""
        self._delay_s = 0.0
        self._dup_pending.clear()
        self._reorder_pending.clear()
        self._malformed_pending.clear()
        self._oversized_pending.clear()
        self._tx_faults.clear()
        for book in self._books.values():
            book.gaps_pending = 0

    # -- inspection and remote control (the /_mock endpoints) ------------------------------

    def state(self, account_index: int | None = None) -> dict[str, Any]:
        """The venue's truth as JSON-ready data (what ``GET /_mock/state`` answers).

        Raises KeyError for an unknown ``account_index``."""
        return self.call(self.state_now, account_index)

    # =========================================================================================
    # Everything below runs on the venue loop.
    # =========================================================================================

    # -- book helpers ------------------------------------------------------------------------

    def _open_orders(self) -> list[VenueOrder]:
        """The open orders, in arrival order, without walking every order ever placed.

        An order leaves "open" once (filled, cancelled, expired) and never comes back, so those
        that left are dropped from the index the next time it is read. Every scan of open
        orders runs on each fill and each transaction: over all orders they made a long run's
        venue slower with every cycle (5 ms of work per cycle at 300 cycles, 33 ms at 3,000).
        """
        maybe_open = self._maybe_open
        open_now = [o for o in maybe_open.values() if o.active]
        if len(open_now) != len(maybe_open):
            self._maybe_open = {o.order_index: o for o in open_now}
        return open_now

    def _seed_book_now(self, market_id: int, mid: Decimal) -> None:
        book = self._books[market_id]
        spec = book.spec
        mid_int = spec.price_int(mid)
        step = max(1, spec.price_int(mid * Decimal("0.0001")))
        lot = spec.size_int(self._level_size)
        book.bids = {
            mid_int - step * k: lot * k for k in range(1, self._book_levels + 1) if mid_int - step * k > 0
        }
        book.asks = {mid_int + step * k: lot * k for k in range(1, self._book_levels + 1)}
        if not book.last_trade_price:
            book.last_trade_price = mid_int

    def _prune_levels_crossing_ours(self, market_id: int) -> None:
        """Drop synthetic levels that would cross our resting orders (which a partial trade
        left standing): the generated market sits behind them instead of trading into them."""
        book = self._books[market_id]
        ours = [o for o in self._open_orders() if o.market_id == market_id]
        top_bid = max((o.price for o in ours if not o.is_ask), default=None)
        low_ask = min((o.price for o in ours if o.is_ask), default=None)
        if top_bid is not None:
            book.asks = {px: sz for px, sz in book.asks.items() if px > top_bid}
        if low_ask is not None:
            book.bids = {px: sz for px, sz in book.bids.items() if px < low_ask}

    def _mid_int(self, market_id: int) -> int:
        bids, asks = self._aggregate(market_id)
        if bids and asks:
            return (max(bids) + min(asks)) // 2
        return self._books[market_id].last_trade_price

    def _mark_price(self, market_id: int) -> Decimal:
        return self.markets[market_id].price_dec(self._mid_int(market_id))

    def _aggregate(self, market_id: int) -> tuple[dict[int, int], dict[int, int]]:
        book = self._books[market_id]
        bids = dict(book.bids)
        asks = dict(book.asks)
        for o in self._open_orders():
            if o.market_id == market_id and o.order_type == ORDER_TYPE_LIMIT:
                side = asks if o.is_ask else bids
                side[o.price] = side.get(o.price, 0) + o.remaining
        return bids, asks

    def _next_engine_nonce(self) -> int:
        self._engine_nonce += self._rng.randint(1, 25)
        return self._engine_nonce

    def _publish_book(self, market_id: int) -> None:
        book = self._books[market_id]
        bids, asks = self._aggregate(market_id)

        def diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
            out = {p: s for p, s in new.items() if old.get(p) != s}
            out.update({p: 0 for p in old if p not in new})
            return out

        d_bids = diff(book.published_bids, bids)
        d_asks = diff(book.published_asks, asks)
        book.published_bids, book.published_asks = bids, asks
        self._publish_ticker(market_id, bids, asks)
        if not d_bids and not d_asks:
            return
        begin = book.book_nonce
        book.book_nonce = self._next_engine_nonce()
        book.offset += 1
        if self.subscribers.get(f"order_book:{market_id}") and self._roll("book_gap"):
            book.gaps_pending += 1
        if book.gaps_pending > 0:
            book.gaps_pending -= 1
            self._count("book_gap")
            return
        msg = self._book_message("ws_order_book_update.json", market_id, d_bids, d_asks, begin)
        self._broadcast(f"order_book:{market_id}", msg)

    def _book_snapshot(self, market_id: int) -> dict[str, Any]:
        book = self._books[market_id]
        if not book.book_nonce:
            book.book_nonce = self._next_engine_nonce()
        return self._book_message(
            "ws_order_book_snapshot.json", market_id, book.published_bids, book.published_asks, 0
        )

    def _book_message(
        self, template: str, market_id: int, bids: dict[int, int], asks: dict[int, int], begin_nonce: int
    ) -> dict[str, Any]:
        """An order_book snapshot or update (per ``template``) carrying these levels."""
        book = self._books[market_id]
        spec = book.spec
        ts_us = time.time_ns() // 1000
        msg = fixture(template)
        inner = _fill(
            msg["order_book"],
            asks=[{"price": spec.fmt_price(p), "size": spec.fmt_size(s)} for p, s in sorted(asks.items())],
            bids=[
                {"price": spec.fmt_price(p), "size": spec.fmt_size(s)}
                for p, s in sorted(bids.items(), reverse=True)
            ],
            offset=book.offset,
            nonce=book.book_nonce,
            last_updated_at=ts_us,
            begin_nonce=begin_nonce,
        )
        return _fill(
            msg,
            channel=f"order_book:{market_id}",
            last_updated_at=ts_us,
            offset=book.offset,
            order_book=inner,
            timestamp=now_ms(),
        )

    def _ticker_msg(
        self, market_id: int, bids: dict[int, int], asks: dict[int, int], kind: str
    ) -> dict[str, Any]:
        spec = self.markets[market_id]
        msg = fixture("ws_ticker_bbo_update.json")
        ts_us = time.time_ns() // 1000

        def level(side: dict[int, int], best: Callable[[Iterable[int]], int]) -> dict[str, str]:
            if not side:
                return {"price": "", "size": ""}
            p = best(side)
            return {"price": spec.fmt_price(p), "size": spec.fmt_size(side[p])}

        _fill(msg["ticker"], s=spec.symbol, a=level(asks, min), b=level(bids, max), last_updated_at=ts_us)
        return _fill(
            msg,
            channel=f"ticker:{market_id}",
            last_updated_at=ts_us,
            nonce=self._books[market_id].book_nonce,
            timestamp=now_ms(),
            type=f"{kind}/ticker",
        )

    def _publish_ticker(self, market_id: int, bids: dict[int, int], asks: dict[int, int]) -> None:
        book = self._books[market_id]
        bbo = (
            max(bids) if bids else None,
            bids[max(bids)] if bids else None,
            min(asks) if asks else None,
            asks[min(asks)] if asks else None,
        )
        if bbo == book.last_bbo:
            return
        book.last_bbo = bbo
        self._broadcast(f"ticker:{market_id}", self._ticker_msg(market_id, bids, asks, "update"))

    # -- order helpers -----------------------------------------------------------------------

    def _order_json(self, o: VenueOrder) -> dict[str, Any]:
        spec = self.markets[o.market_id]
        tmpl = fixture("http_account_active_orders.json")["orders"][0]
        return _fill(
            tmpl,
            order_index=o.order_index,
            client_order_index=o.client_order_index,
            order_id=str(o.order_index),
            client_order_id=str(o.client_order_index),
            market_index=o.market_id,
            owner_account_index=o.account_index,
            initial_base_amount=spec.fmt_size(o.initial),
            price=spec.fmt_price(o.price),
            nonce=o.nonce,
            remaining_base_amount=spec.fmt_size(o.remaining),
            is_ask=o.is_ask,
            base_size=o.initial,
            base_price=o.price,
            filled_base_amount=spec.fmt_size(o.filled),
            filled_quote_amount=_q6(o.filled_quote),
            side="sell" if o.is_ask else "buy",
            type=ORDER_TYPE_NAMES.get(o.order_type, "limit"),
            time_in_force=TIF_NAMES.get(o.time_in_force, "Unknown"),
            reduce_only=o.reduce_only,
            trigger_price=spec.fmt_price(0),
            order_expiry=o.order_expiry,
            status=o.status,
            block_height=o.block_height,
            timestamp=o.created_ms,
            created_at=o.created_ms,
            updated_at=o.updated_ms or o.created_ms,
            transaction_time=o.created_ms * 1000,
        )

    def _find_order(self, account_index: int, market_id: int, index: int) -> VenueOrder | None:
        order = self._orders.get(index)
        if order and order.account_index == account_index and order.market_id == market_id and order.active:
            return order
        for o in self._open_orders():  # Lighter also accepts the client order index here
            if (
                o.account_index == account_index
                and o.market_id == market_id
                and o.client_order_index == index
            ):
                return o
        return None

    def _touch(self, order: VenueOrder) -> None:
        order.updated_ms = now_ms()
        order.nonce = self._next_engine_nonce()
        self._block_height += 1
        order.block_height = self._block_height

    # -- execution ---------------------------------------------------------------------------

    def _apply_fill_to_account(
        self, account_index: int, market_id: int, signed_qty: int, price: Decimal, fee: Decimal
    ) -> None:
        acct = self._accounts.get(account_index)
        if acct is None:
            return
        spec = self.markets[market_id]
        pos = acct.positions[market_id]
        qty = spec.size_dec(signed_qty)
        size = spec.size_dec(pos.size)
        realized = Decimal(0)
        if size == 0 or (size > 0) == (qty > 0):
            total = abs(size) + abs(qty)
            pos.avg_entry = (abs(size) * pos.avg_entry + abs(qty) * price) / total
        else:
            closing = min(abs(qty), abs(size))
            direction = 1 if size > 0 else -1
            realized = closing * (price - pos.avg_entry) * direction
            if abs(qty) > abs(size):
                pos.avg_entry = price
            elif abs(qty) == abs(size):
                pos.avg_entry = Decimal(0)
        pos.size += signed_qty
        pos.realized_pnl += realized
        acct.collateral += realized - fee
        acct.fees_paid += fee

    def _execute(
        self, order: VenueOrder, qty: int, price: int, maker: bool, push: bool = True
    ) -> dict[str, Any]:
        """Fill ``qty`` of ``order`` at ``price`` against the synthetic counterparty.

        With ``push`` off (a taker sweeping several levels) the caller pushes the order's final
        state once, so an IOC order is never seen as "open"."""
        spec = self.markets[order.market_id]
        px = spec.price_dec(price)
        notional = spec.size_dec(qty) * px
        rate = spec.maker_fee if maker else spec.taker_fee
        fee = (notional * rate).quantize(SCALE_QUOTE)
        acct = self._accounts[order.account_index]
        pos_before = acct.positions[order.market_id]
        size_before = spec.fmt_size(abs(pos_before.size))
        entry_before = _q6(abs(spec.size_dec(pos_before.size)) * pos_before.avg_entry)
        imf_before = pos_before.imf
        sign_before = (pos_before.size > 0) - (pos_before.size < 0)

        order.filled += qty
        order.filled_quote += notional
        self._touch(order)
        if order.filled >= order.initial:
            order.status = STATUS_FILLED
        self._apply_fill_to_account(
            order.account_index, order.market_id, -qty if order.is_ask else qty, px, fee
        )
        sign_after = (acct.positions[order.market_id].size > 0) - (acct.positions[order.market_id].size < 0)

        trade = self._trade_json(
            order.market_id,
            price,
            qty,
            our=order,
            maker=maker,
            fee_rate=rate,
            position_before=(size_before, entry_before, imf_before, sign_before != sign_after),
        )
        self._record_trade(order.market_id, trade)
        acct.trades.append(
            {
                "trade_id": trade["trade_id"],
                "market_id": order.market_id,
                "price": spec.fmt_price(price),
                "size": spec.fmt_size(qty),
                "side": "sell" if order.is_ask else "buy",
                "role": "maker" if maker else "taker",
                "fee": f"{fee:f}",
                "client_order_index": order.client_order_index,
                "order_index": order.order_index,
                "position_after": spec.fmt_size(acct.positions[order.market_id].size),
                "timestamp_ms": trade["timestamp"],
            }
        )
        if push:
            self._push_order(order, fill=True)
        self._push_account_trade(order.account_index, order.market_id, trade)
        if push:
            self._push_account_state(order.account_index)
        return trade

    def _trade_json(
        self,
        market_id: int,
        price: int,
        qty: int,
        *,
        our: VenueOrder | None,
        maker: bool,
        fee_rate: Decimal,
        position_before: tuple[str, str, int, bool] | None,
        taker_is_ask: bool = False,
    ) -> dict[str, Any]:
        spec = self.markets[market_id]
        tmpl = fixture("http_recent_trades.json")["trades"][0]
        trade_id = next(self._trade_ids)
        synthetic_id = 2**48 + trade_id % 10**9
        if our is not None:
            is_ask = our.is_ask
            our_id, our_cid, our_acct = our.order_index, our.client_order_index, our.account_index
            other_id, other_acct = synthetic_id, MAKER_ACCOUNT_INDEX
            ask_id, bid_id = (our_id, other_id) if is_ask else (other_id, our_id)
            ask_cid, bid_cid = (our_cid, 0) if is_ask else (0, our_cid)
            ask_acct, bid_acct = (our_acct, other_acct) if is_ask else (other_acct, our_acct)
            is_maker_ask = is_ask if maker else not is_ask
        else:
            ask_id, bid_id = synthetic_id, synthetic_id + 1
            ask_cid = bid_cid = 0
            ask_acct = bid_acct = MAKER_ACCOUNT_INDEX
            is_maker_ask = not taker_is_ask
        ts = now_ms()
        self._block_height += 1
        fee_units = int(fee_rate * 1_000_000)
        trade = _fill(
            tmpl,
            trade_id=trade_id,
            trade_id_str=str(trade_id),
            tx_hash=_tx_hash(str(trade_id)),
            type="trade",
            market_id=market_id,
            size=spec.fmt_size(qty),
            price=spec.fmt_price(price),
            usd_amount=_q6(spec.size_dec(qty) * spec.price_dec(price)),
            ask_id=ask_id,
            ask_id_str=str(ask_id),
            bid_id=bid_id,
            bid_id_str=str(bid_id),
            ask_client_id=ask_cid,
            ask_client_id_str=str(ask_cid),
            bid_client_id=bid_cid,
            bid_client_id_str=str(bid_cid),
            ask_account_id=ask_acct,
            bid_account_id=bid_acct,
            is_maker_ask=is_maker_ask,
            block_height=self._block_height,
            timestamp=ts,
            transaction_time=ts * 1000,
        )
        # Position-before fields belong to whichever side is ours; fees are omitted when zero.
        for key in (
            "taker_position_size_before",
            "taker_entry_quote_before",
            "taker_initial_margin_fraction_before",
            "maker_fee",
            "maker_position_size_before",
            "maker_entry_quote_before",
            "maker_initial_margin_fraction_before",
        ):
            trade.pop(key, None)
        if our is not None and position_before is not None:
            side = "maker" if maker else "taker"
            size_before, entry_before, imf_before, sign_changed = position_before
            trade[f"{side}_position_size_before"] = size_before
            trade[f"{side}_entry_quote_before"] = entry_before
            trade[f"{side}_initial_margin_fraction_before"] = imf_before
            if sign_changed:
                trade[f"{side}_position_sign_changed"] = True
            if fee_units:
                trade[f"{side}_fee"] = fee_units
        return trade

    def _public_trade(self, market_id: int, price: int, qty: int, taker_is_ask: bool) -> dict[str, Any]:
        trade = self._trade_json(
            market_id,
            price,
            qty,
            our=None,
            maker=False,
            fee_rate=Decimal(0),
            position_before=None,
            taker_is_ask=taker_is_ask,
        )
        self._record_trade(market_id, trade)
        return trade

    def _record_trade(self, market_id: int, trade: dict[str, Any]) -> None:
        book = self._books[market_id]
        book.trades.append(trade)
        del book.trades[:-200]
        book.last_trade_price = self.markets[market_id].price_int(trade["price"])
        msg = fixture("ws_trade_update.json")
        _fill(msg, channel=f"trade:{market_id}", nonce=self._next_engine_nonce(), trades=[trade])
        self._broadcast(f"trade:{market_id}", msg)
        self._broadcast(f"market_stats:{market_id}", self._market_stats_msg(market_id, "update"))
        self._broadcast("market_stats:all", self._market_stats_all_msg("update"))

    def _take(self, order: VenueOrder) -> tuple[list[dict[str, Any]], bool]:
        """Match an incoming order against the external book within its price.

        Returns the trades and whether liquidity (not the price bound) ran out.
        """
        book = self._books[order.market_id]
        levels = book.bids if order.is_ask else book.asks
        trades: list[dict[str, Any]] = []
        while order.filled < order.initial:
            if not levels:
                return trades, True
            best = max(levels) if order.is_ask else min(levels)
            if (order.is_ask and best < order.price) or (not order.is_ask and best > order.price):
                return trades, False
            qty = min(order.initial - order.filled, levels[best])
            levels[best] -= qty
            if levels[best] <= 0:
                del levels[best]
            trades.append(self._execute(order, qty, best, maker=False, push=False))
        return trades, False

    def _crosses(self, order: VenueOrder) -> bool:
        book = self._books[order.market_id]
        if order.is_ask:
            return bool(book.bids) and max(book.bids) >= order.price
        return bool(book.asks) and min(book.asks) <= order.price

    def _match_resting_against_book(self, market_id: int) -> list[dict[str, Any]]:
        """External levels that cross our resting orders trade with them (ours are makers)."""
        book = self._books[market_id]
        trades: list[dict[str, Any]] = []
        resting = sorted(
            (o for o in self._open_orders() if o.market_id == market_id and o.order_type == ORDER_TYPE_LIMIT),
            key=lambda o: o.order_index,
        )
        for order in resting:
            levels = book.bids if order.is_ask else book.asks
            while order.active:
                crossing = [p for p in levels if (p >= order.price if order.is_ask else p <= order.price)]
                if not crossing:
                    break
                best = max(crossing) if order.is_ask else min(crossing)
                qty = min(order.remaining, levels[best])
                levels[best] -= qty
                if levels[best] <= 0:
                    del levels[best]
                trades.append(self._execute(order, qty, order.price, maker=True))
        return trades

    def _reduce_only_violates(self, order: VenueOrder) -> bool:
        pos = self._accounts[order.account_index].positions[order.market_id].size
        return pos == 0 or (pos > 0) == (not order.is_ask)

    def _run_order(self, order: VenueOrder) -> None:
        """Execute a just-accepted order (the asynchronous half of sendTx)."""
        if order.reduce_only and self._reduce_only_violates(order):
            order.status = STATUS_CANCELED_REDUCE_ONLY
            self._touch(order)
            self._push_order(order)
            return
        if order.time_in_force == TIF_POST_ONLY:
            if self._crosses(order):
                order.status = STATUS_CANCELED_POST_ONLY
                self._touch(order)
                self._push_order(order)
                return
            self._push_order(order)
            self._publish_book(order.market_id)
            self._push_account_state(order.account_index)
            return
        _, ran_out = self._take(order)
        if order.active and (order.time_in_force == TIF_IOC or order.order_type == ORDER_TYPE_MARKET):
            order.status = STATUS_CANCELED_NO_LIQUIDITY if ran_out else STATUS_CANCELED_SLIPPAGE
            if order.filled == 0 and order.order_type == ORDER_TYPE_LIMIT:
                order.status = STATUS_CANCELED
            if order.filled == 0 and self._ioc_unfilled_status:
                order.status = self._ioc_unfilled_status  # unsourced: see set_ioc_unfilled_status
            self._touch(order)
        self._push_order(order)
        self._publish_book(order.market_id)
        self._push_account_state(order.account_index)

    # -- transactions ------------------------------------------------------------------------

    def _decode_tx(self, tx_type: int, tx_info: Any) -> dict[str, Any]:
        if isinstance(tx_info, str):
            try:
                info = json.loads(tx_info)
            except json.JSONDecodeError as exc:
                raise TxRejected(*ERR_INVALID_TX_INFO) from exc
        else:
            info = tx_info
        if not isinstance(info, dict):
            raise TxRejected(*ERR_INVALID_TX_INFO)
        sig = info.get("Sig")
        try:
            sig_ok = isinstance(sig, str) and len(base64.b64decode(sig, validate=True)) == 80
        except ValueError:
            sig_ok = False
        if not sig_ok:
            raise TxRejected(ERR_INVALID_TX_INFO[0], "invalid tx info: missing or malformed signature")
        for key in ("AccountIndex", "ApiKeyIndex", "Nonce", "ExpiredAt"):
            if not isinstance(info.get(key), int):
                raise TxRejected(ERR_INVALID_TX_INFO[0], f"invalid tx info: {key}")
        return info

    def _submit_tx(self, tx_type: int, tx_info: Any, *, counted: bool = False) -> dict[str, Any]:
        """Validate and apply one transaction; returns the sendTx body or raises TxRejected.

        ``counted``: the transaction's request was already counted against the account's
        transaction limit (a batch counts once, see :meth:`_submit_batch`)."""
        info = self._decode_tx(tx_type, tx_info)
        self._stats.txs.append({"tx_type": tx_type, **info})
        account, key, nonce = info["AccountIndex"], info["ApiKeyIndex"], info["Nonce"]
        self._stats.nonces_seen.append((account, key, nonce))
        acct = self._accounts.get(account)
        if acct is None or key not in acct.api_keys:
            raise TxRejected(ERR_INVALID_TX_INFO[0], "invalid tx info: api key not registered for account")
        if nonce != acct.next_nonce.get(key):
            self._stats.invalid_nonces += 1
            raise TxRejected(*ERR_INVALID_NONCE)
        if info["ExpiredAt"] < now_ms():
            raise TxRejected(*ERR_INVALID_EXPIRY)
        fault = self._tx_faults.pop(0) if self._tx_faults else None
        if fault is not None:
            self._count("tx_reject")
            raise TxRejected(*fault)
        if not counted and self._over_limit(self._tx_times, self._tx_limit):
            self.limit_refusals["tx"] += 1
            raise TxRejected(*ERR_TOO_MANY_REQUESTS)

        action: Callable[[], None]
        if tx_type == TX_CREATE_ORDER:
            action = self._prepare_create(acct, info)
        elif tx_type == TX_CANCEL_ORDER:
            action = self._prepare_cancel(acct, info)
        elif tx_type == TX_CANCEL_ALL_ORDERS:
            action = self._prepare_cancel_all(acct, info)
        elif tx_type == TX_MODIFY_ORDER:
            action = self._prepare_modify(acct, info)
        elif tx_type == TX_UPDATE_LEVERAGE:
            action = self._prepare_leverage(acct, info)
        else:
            raise TxRejected(*ERR_UNSUPPORTED_TX)

        acct.next_nonce[key] = nonce + 1
        # Execution is asynchronous, as on the venue: the ack goes out first.
        asyncio.get_running_loop().call_soon(action)
        body = fixture("http_sendtx_response.json")
        _fill(
            body, tx_hash=_tx_hash(json.dumps(info, sort_keys=True)), predicted_execution_time_ms=now_ms() + 3
        )
        body["volume_quota_remaining"] = 100000  # declared by the SDK's RespSendTx model
        return body

    def _prepare_create(self, acct: AccountState, info: dict[str, Any]) -> Callable[[], None]:
        market_id = info.get("MarketIndex")
        spec = self.markets.get(market_id) if isinstance(market_id, int) else None
        if spec is None:
            raise TxRejected(*ERR_INVALID_MARKET)
        cid = info.get("ClientOrderIndex", 0)
        base, price = info.get("BaseAmount", 0), info.get("Price", 0)
        if not isinstance(cid, int) or cid < 0 or cid > MAX_CLIENT_ORDER_INDEX:
            raise TxRejected(*ERR_INVALID_CLIENT_INDEX)
        if cid and any(
            o.account_index == acct.index and o.client_order_index == cid for o in self._open_orders()
        ):
            raise TxRejected(*ERR_CLIENT_INDEX_EXISTS)
        if not isinstance(price, int) or price <= 0:
            raise TxRejected(*ERR_INVALID_PRICE)
        if (
            not isinstance(base, int)
            or base < spec.size_int(spec.min_base_amount)
            or spec.size_dec(base) * spec.price_dec(price) < spec.min_quote_amount
        ):
            raise TxRejected(*ERR_INVALID_AMOUNT)
        order_type, tif = info.get("Type", 0), info.get("TimeInForce", 1)
        if order_type not in (ORDER_TYPE_LIMIT, ORDER_TYPE_MARKET) or tif not in TIF_NAMES:
            raise TxRejected(ERR_UNSUPPORTED_TX[0], "unsupported order type")
        is_ask = bool(info.get("IsAsk"))
        order = VenueOrder(
            order_index=next(self._ask_ids if is_ask else self._bid_ids),
            client_order_index=cid,
            market_id=market_id,
            account_index=acct.index,
            is_ask=is_ask,
            order_type=order_type,
            time_in_force=tif,
            reduce_only=bool(info.get("ReduceOnly")),
            price=price,
            initial=base,
            order_expiry=int(info.get("OrderExpiry", 0)),
            nonce=0,
            created_ms=now_ms(),
        )
        self._stats.orders_accepted += 1

        def run() -> None:
            self._orders[order.order_index] = order
            self._maybe_open[order.order_index] = order
            self._touch(order)
            self._run_order(order)

        return run

    def _cancel_order_now(self, order: VenueOrder, status: str = STATUS_CANCELED) -> None:
        order.status = status
        self._touch(order)
        self._push_order(order)

    def _prepare_cancel(self, acct: AccountState, info: dict[str, Any]) -> Callable[[], None]:
        order = self._find_order(acct.index, info.get("MarketIndex", -1), info.get("Index", -1))
        if order is None:
            raise TxRejected(*ERR_NOT_ACTIVE)
        self._stats.cancels += 1

        def run() -> None:
            if order.active:
                self._cancel_order_now(order)
                self._publish_book(order.market_id)
                self._push_account_state(acct.index)

        return run

    def _prepare_cancel_all(self, acct: AccountState, info: dict[str, Any]) -> Callable[[], None]:
        self._stats.cancels += 1

        def run() -> None:
            touched = set()
            for o in self._open_orders():
                if o.account_index == acct.index:
                    self._cancel_order_now(o)
                    touched.add(o.market_id)
            for mid in touched:
                self._publish_book(mid)
            self._push_account_state(acct.index)

        return run

    def _prepare_modify(self, acct: AccountState, info: dict[str, Any]) -> Callable[[], None]:
        order = self._find_order(acct.index, info.get("MarketIndex", -1), info.get("Index", -1))
        if order is None:
            raise TxRejected(*ERR_NOT_ACTIVE)
        base, price = info.get("BaseAmount", 0), info.get("Price", 0)
        if not isinstance(price, int) or price <= 0:
            raise TxRejected(*ERR_INVALID_PRICE)
        if not isinstance(base, int) or base <= 0:
            raise TxRejected(*ERR_INVALID_AMOUNT)

        def run() -> None:
            if not order.active:
                return
            order.price = price
            order.initial = order.filled + base
            self._touch(order)
            if order.time_in_force == TIF_POST_ONLY and self._crosses(order):
                self._cancel_order_now(order, STATUS_CANCELED_POST_ONLY)
            elif self._crosses(order):
                self._take(order)
                self._push_order(order)
            else:
                self._push_order(order)
            self._publish_book(order.market_id)
            self._push_account_state(acct.index)

        return run

    def _prepare_leverage(self, acct: AccountState, info: dict[str, Any]) -> Callable[[], None]:
        market_id = info.get("MarketIndex")
        if market_id not in self.markets:
            raise TxRejected(*ERR_INVALID_MARKET)

        def run() -> None:
            pos = acct.positions[market_id]
            pos.imf = int(info.get("InitialMarginFraction", pos.imf))
            pos.margin_mode = int(info.get("MarginMode", pos.margin_mode))
            self._push_account_state(acct.index)

        return run

    # -- account views -----------------------------------------------------------------------

    def _position_json(self, acct: AccountState, market_id: int) -> dict[str, Any]:
        spec = self.markets[market_id]
        pos = acct.positions[market_id]
        size = spec.size_dec(pos.size)
        mark = self._mark_price(market_id)
        upnl = (mark - pos.avg_entry) * size if pos.size else Decimal(0)
        value = abs(size) * mark
        liq = Decimal(0)
        if pos.size:
            equity = acct.collateral + self._total_upnl(acct)
            maint = value * Decimal(spec.default_imf) / Decimal(10000) * Decimal("0.6")
            liq = max(Decimal(0), mark - (equity - maint) / size)
        open_orders = sum(
            1 for o in self._open_orders() if o.account_index == acct.index and o.market_id == market_id
        )
        tmpl = fixture("http_account.json")["accounts"][0]["positions"][0]
        return _fill(
            tmpl,
            market_id=market_id,
            symbol=spec.symbol,
            initial_margin_fraction=f"{Decimal(pos.imf) / Decimal(100):.2f}",
            open_order_count=open_orders,
            sign=-1 if pos.size < 0 else 1,
            position=spec.fmt_size(abs(pos.size)),
            avg_entry_price=f"{pos.avg_entry.quantize(Decimal(1).scaleb(-spec.price_decimals))}",
            position_value=_q6(value),
            unrealized_pnl=_q6(upnl),
            realized_pnl=_q6(pos.realized_pnl),
            liquidation_price=f"{liq.quantize(Decimal(1).scaleb(-spec.price_decimals))}",
            margin_mode=pos.margin_mode,
        )

    def _total_upnl(self, acct: AccountState) -> Decimal:
        total = Decimal(0)
        for mid, pos in acct.positions.items():
            if pos.size:
                total += (self._mark_price(mid) - pos.avg_entry) * self.markets[mid].size_dec(pos.size)
        return total

    def _margin_used(self, acct: AccountState) -> Decimal:
        used = Decimal(0)
        for mid, pos in acct.positions.items():
            if pos.size:
                used += (
                    abs(self.markets[mid].size_dec(pos.size))
                    * self._mark_price(mid)
                    * Decimal(pos.imf)
                    / 10000
                )
        return used

    def _account_json(self, acct: AccountState) -> dict[str, Any]:
        upnl = self._total_upnl(acct)
        equity = acct.collateral + upnl
        used = self._margin_used(acct)
        open_orders = [o for o in self._open_orders() if o.account_index == acct.index]
        tmpl = fixture("http_account.json")["accounts"][0]
        asset = tmpl["assets"][0]
        _fill(asset, balance=_q6(acct.collateral), margin_balance=_q6(equity))
        return _fill(
            tmpl,
            index=acct.index,
            account_index=acct.index,
            l1_address=acct.l1_address,
            total_order_count=len(open_orders),
            available_balance=_q6(max(Decimal(0), equity - used)),
            collateral=_q6(acct.collateral),
            created_at=acct.created_ms // 1000,
            positions=[self._position_json(acct, mid) for mid in sorted(acct.positions)],
            assets=[asset],
            total_asset_value=_q6(equity),
            cross_asset_value=_q6(equity),
            cross_initial_margin_requirement=_q6(used),
            cross_maintenance_margin_requirement=_q6(used * Decimal("0.6")),
        )

    def _stats_json(self, acct: AccountState) -> dict[str, Any]:
        upnl = self._total_upnl(acct)
        equity = acct.collateral + upnl
        used = self._margin_used(acct)
        notional = sum(
            (abs(self.markets[m].size_dec(p.size)) * self._mark_price(m) for m, p in acct.positions.items()),
            Decimal(0),
        )
        leverage = notional / equity if equity > 0 else Decimal(0)
        usage = used / equity * 100 if equity > 0 else Decimal(0)
        block = {
            "available_balance": _q6(max(Decimal(0), equity - used)),
            "buying_power": "0",
            "collateral": _q6(acct.collateral),
            "leverage": f"{leverage:.2f}",
            "margin_usage": f"{usage:.2f}",
            "portfolio_value": _q6(equity),
        }
        stats = fixture("ws_user_stats_subscribed.json")["stats"]
        return _fill(stats, cross_stats=dict(block), total_stats=dict(block), **block)

    # -- the venue's truth for /_mock/state ---------------------------------------------------

    def _state_order(self, o: VenueOrder) -> dict[str, Any]:
        spec = self.markets[o.market_id]
        return {
            "order_index": o.order_index,
            "client_order_index": o.client_order_index,
            "market_id": o.market_id,
            "side": "sell" if o.is_ask else "buy",
            "type": ORDER_TYPE_NAMES.get(o.order_type, "limit"),
            "time_in_force": TIF_NAMES.get(o.time_in_force, "unknown"),
            "reduce_only": o.reduce_only,
            "price": spec.fmt_price(o.price),
            "initial_size": spec.fmt_size(o.initial),
            "filled_size": spec.fmt_size(o.filled),
            "remaining_size": spec.fmt_size(o.remaining),
            "filled_quote": _q6(o.filled_quote),
            "status": o.status,
            "order_expiry": o.order_expiry,
            "created_ms": o.created_ms,
            "updated_ms": o.updated_ms or o.created_ms,
        }

    def _state_account(self, acct: AccountState) -> dict[str, Any]:
        positions = {}
        for mid in sorted(acct.positions):
            spec = self.markets[mid]
            pos = acct.positions[mid]
            positions[str(mid)] = {
                "market_id": mid,
                "symbol": spec.symbol,
                "size": spec.fmt_size(pos.size),
                "entry_price": f"{pos.avg_entry.quantize(Decimal(1).scaleb(-spec.price_decimals))}",
                "realized_pnl": _q6(pos.realized_pnl),
                "funding_paid": _q6(pos.funding_paid),
            }
        return {
            "account_index": acct.index,
            "collateral": _q6(acct.collateral),
            "fees_paid": _q6(acct.fees_paid),
            "next_nonce": {str(k): v for k, v in sorted(acct.next_nonce.items())},
            "positions": positions,
            "orders": [
                self._state_order(o)
                for o in sorted(self._orders.values(), key=lambda o: o.order_index)
                if o.account_index == acct.index
            ],
            "trades": [dict(t) for t in acct.trades],
        }

    def state_now(self, account_index: int | None = None) -> dict[str, Any]:
        """The truth ``state`` answers (all accounts, or one: KeyError if unknown)."""
        if account_index is not None and account_index not in self._accounts:
            raise KeyError(f"unknown account {account_index}")
        markets = {}
        for mid in sorted(self.markets):
            spec = self.markets[mid]
            bids, asks = self._aggregate(mid)
            book = self._books[mid]
            markets[str(mid)] = {
                "market_id": mid,
                "symbol": spec.symbol,
                "best_bid": spec.fmt_price(max(bids)) if bids else None,
                "best_ask": spec.fmt_price(min(asks)) if asks else None,
                "last_trade_price": spec.fmt_price(book.last_trade_price),
                "book_offset": book.offset,
            }
        return {
            "time_ms": now_ms(),
            "markets": markets,
            "accounts": {
                str(idx): self._state_account(acct)
                for idx, acct in sorted(self._accounts.items())
                if account_index is None or idx == account_index
            },
            "faults": {
                "seed": self._fault_seed,
                "rates": dict(self._fault_rates),
                "counts": dict(self._fault_counts),
            },
            "ws_connections_open": len(self.conns),
            "rest_calls": sum(self._stats.rest_calls.values()),
        }

    # -- pushes to account channels ----------------------------------------------------------

    def _push_order(self, order: VenueOrder, fill: bool = False) -> None:
        oj = self._order_json(order)
        msg = fixture("ws_account_orders_update_partial_fill.json")
        _fill(
            msg,
            channel=f"account_orders:{order.market_id}:{order.account_index}",
            account=order.account_index,
            nonce=order.nonce,
            orders={str(order.market_id): [oj]},
        )
        before_write = None
        if self._timing_hook is not None:
            if fill:
                before_write = lambda: self._mark("fill_sent", order)  # noqa: E731
            elif order.active:
                self._mark("order_resting", order)
        self._broadcast(f"account_orders:{order.market_id}:{order.account_index}", msg, before_write)
        all_msg = {
            "channel": f"account_all_orders:{order.account_index}",
            "orders": {str(order.market_id): [oj]},
            "type": "update/account_all_orders",
        }
        self._broadcast(f"account_all_orders:{order.account_index}", all_msg)

    def _push_account_trade(self, account_index: int, market_id: int, trade: dict[str, Any]) -> None:
        msg = fixture("ws_account_all_trades_update.json")
        _fill(msg, channel=f"account_all_trades:{account_index}", trades={str(market_id): [trade]})
        self._broadcast(f"account_all_trades:{account_index}", msg)

    def _positions_msg(self, acct: AccountState, kind: str) -> dict[str, Any]:
        msg = fixture("ws_account_all_positions_update.json")
        positions = {}
        for mid in sorted(acct.positions):
            pj = self._position_json(acct, mid)
            pj["total_funding_paid_out"] = _q6(acct.positions[mid].funding_paid)
            positions[str(mid)] = pj
        return _fill(
            msg,
            type=f"{kind}/account_all_positions",
            channel=f"account_all_positions:{acct.index}",
            positions=positions,
        )

    def _assets_msg(self, acct: AccountState, kind: str) -> dict[str, Any]:
        msg = fixture("ws_account_all_assets_subscribed.json")
        equity = acct.collateral + self._total_upnl(acct)
        asset = _fill(msg["assets"]["3"], balance=_q6(acct.collateral), margin_balance=_q6(equity))
        return _fill(
            msg,
            assets={"3": asset},
            channel=f"account_all_assets:{acct.index}",
            timestamp=now_ms(),
            type=f"{kind}/account_all_assets",
        )

    def _user_stats_msg(self, acct: AccountState, kind: str) -> dict[str, Any]:
        msg = fixture("ws_user_stats_subscribed.json")
        return _fill(
            msg,
            channel=f"user_stats:{acct.index}",
            stats=self._stats_json(acct),
            timestamp=now_ms(),
            type=f"{kind}/user_stats",
        )

    def _account_all_msg(
        self, acct: AccountState, kind: str, trades: dict[str, list[Any]] | None = None
    ) -> dict[str, Any]:
        # No captured account_all frame exists; the shape follows Lighter's WebSocket docs and
        # reuses the captured position/asset/trade objects.
        positions = {str(mid): self._position_json(acct, mid) for mid in sorted(acct.positions)}
        return {
            "account": acct.index,
            "assets": self._assets_msg(acct, kind)["assets"],
            "channel": f"account_all:{acct.index}",
            "daily_trades_count": 0,
            "daily_volume": 0,
            "weekly_trades_count": 0,
            "weekly_volume": 0,
            "monthly_trades_count": 0,
            "monthly_volume": 0,
            "total_trades_count": 0,
            "total_volume": 0,
            "funding_histories": {},
            "positions": positions,
            "shares": [],
            "trades": trades or {},
            "type": f"{kind}/account_all",
        }

    def _push_account_state(self, account_index: int) -> None:
        acct = self._accounts.get(account_index)
        if acct is None:
            return
        self._broadcast(f"account_all_positions:{account_index}", self._positions_msg(acct, "update"))
        self._broadcast(f"account_all_assets:{account_index}", self._assets_msg(acct, "update"))
        self._broadcast(f"user_stats:{account_index}", self._user_stats_msg(acct, "update"))
        self._broadcast(f"account_all:{account_index}", self._account_all_msg(acct, "update"))

    def _market_stats_json(self, market_id: int) -> dict[str, Any]:
        spec = self.markets[market_id]
        book = self._books[market_id]
        mark = spec.fmt_price(self._mid_int(market_id))
        last = spec.fmt_price(book.last_trade_price)
        stats = fixture("ws_market_stats_update_single.json")["market_stats"]
        return _fill(
            stats,
            symbol=spec.symbol,
            market_id=market_id,
            index_price=mark,
            mark_price=mark,
            mid_price=mark,
            last_trade_price=last,
            current_funding_rate=f"{spec.funding_rate * 100:.4f}",
            funding_rate=f"{spec.funding_rate * 100:.4f}",
            funding_timestamp=(now_ms() // 3_600_000 + 1) * 3_600_000,
        )

    def _market_stats_msg(self, market_id: int, kind: str) -> dict[str, Any]:
        msg = fixture("ws_market_stats_update_single.json")
        return _fill(
            msg,
            channel=f"market_stats:{market_id}",
            market_stats=self._market_stats_json(market_id),
            timestamp=now_ms(),
            type=f"{kind}/market_stats",
        )

    def _market_stats_all_msg(self, kind: str) -> dict[str, Any]:
        msg = fixture("ws_market_stats_update_all.json")
        return _fill(
            msg,
            market_stats={str(m): self._market_stats_json(m) for m in sorted(self.markets)},
            timestamp=now_ms(),
            type=f"{kind}/market_stats",
        )

    # -- broadcasting with faults ------------------------------------------------------------

    @staticmethod
    def _matches(prefix: str | None, channel: str) -> bool:
        return prefix is None or channel.startswith(prefix)

    def _broadcast(
        self, channel: str, message: dict[str, Any], before_write: Callable[[], None] | None = None
    ) -> None:
        conns = list(self.subscribers.get(channel, ()))
        if not conns:
            return
        if self._roll("ws_drop"):
            self._drop_now()  # this message is lost with the connections
            return
        if self._roll("ws_duplicate"):
            self._dup_pending.append(None)
        if self._roll("ws_reorder"):
            self._reorder_pending.append(None)
        if self._roll("malformed_frame"):
            self._malformed_pending.append((None, None))
        if self._roll("oversized_frame"):
            self._oversized_pending.append(None)
        self._send_bad_copies(channel, message, conns)
        deliveries = [(c, message) for c in conns]
        times = 1
        for i, prefix in enumerate(self._dup_pending):
            if self._matches(prefix, channel):
                del self._dup_pending[i]
                self._count("ws_duplicate")
                times = 2
                break
        if self._held is not None and self._matches(self._held[0], channel):
            held = self._held[1]
            self._held = None
            self._deliver(deliveries, times, before_write)
            self._deliver(held, 1)
            return
        for i, prefix in enumerate(self._reorder_pending):
            if self._matches(prefix, channel):
                del self._reorder_pending[i]
                self._count("ws_reorder")
                self._held = (prefix or "", deliveries)
                assert self._loop is not None
                self._loop.call_later(2.0, self._flush_held, deliveries)
                if times == 2:
                    self._deliver(deliveries, 1)
                return
        self._deliver(deliveries, times, before_write)

    def _send_bad_copies(self, channel: str, message: dict[str, Any], conns: list[_Conn]) -> None:
        """Send the pending malformed / oversized copy of ``message`` (the genuine one follows)."""
        for i, (prefix, kind) in enumerate(self._malformed_pending):
            if self._matches(prefix, channel):
                del self._malformed_pending[i]
                kind = kind or self._rngs["malformed_frame"].choice(MALFORMED_KINDS)
                text = malformed_frame(message, kind)
                for conn in conns:
                    conn.send(text)
                self._count("malformed_frame")
                break
        for i, prefix in enumerate(self._oversized_pending):
            if self._matches(prefix, channel):
                del self._oversized_pending[i]
                text = json.dumps({**message, "padding": "x" * self._oversize_bytes})
                for conn in conns:
                    conn.send(text)
                self._count("oversized_frame")
                break

    def _flush_held(self, deliveries: list[tuple[_Conn, dict[str, Any]]]) -> None:
        if self._held is not None and self._held[1] is deliveries:
            self._held = None
            self._deliver(deliveries, 1)

    @staticmethod
    def _deliver(
        deliveries: list[tuple[_Conn, dict[str, Any]]],
        times: int,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        for conn, message in deliveries:
            for n in range(times):
                conn.send(message, before_write if n == 0 else None)

    # -- HTTP --------------------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        if request.path == "/stream" or request.path.startswith("/_mock/"):
            return await handler(request)
        self._stats.rest_calls[request.path] = self._stats.rest_calls.get(request.path, 0) + 1
        if request.path.startswith("/api/") and self._over_limit(self._rest_times, self._rest_limit):
            self.limit_refusals["rest"] += 1
            return self._error(ERR_TOO_MANY_REQUESTS, 429)
        if request.path.startswith("/api/"):
            self._roll_rest_faults()
        delay = self._delay_s
        if self._slow:
            delay += self._slow.pop(0)
            self._count("slow_reply")
        fault = self._rest_faults.pop(0) if self._rest_faults else None
        response: web.StreamResponse
        if fault is None:
            response = await handler(request)
        else:
            status, retry_after = fault
            if status == 429:
                self._count("http_429" if retry_after is None else "http_429_retry_after")
            else:
                self._count("http_5xx")
                if status == EXECUTED_THEN_FAILED_STATUS:
                    await handler(request)  # handled; only the answer is lost
            response = self.fault_response(status, retry_after)
        if delay and self._stopped is not None:
            # After handling, as a slow network: a client that gave up does not undo the request.
            # Cut short when the venue stops, so a long slow reply never holds up a shutdown.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
        return response

    def fault_body(self, status: int) -> Any:
        """Lighter's error body: code 23000 for a 429, 29500 for a server error."""
        code, message = ERR_TOO_MANY_REQUESTS if status == 429 else ERR_SERVER
        return {"code": code, "message": message}

    def _roll_rest_faults(self) -> None:
        """Seeded draws for one REST request; at most one status fault is queued per request."""
        statuses = [kind for kind in ("http_429_retry_after", "http_429", "http_5xx") if self._roll(kind)]
        if statuses:
            kind = statuses[0]
            if kind == "http_5xx":
                status = self._rngs["http_5xx"].choice(SERVER_ERROR_STATUSES)
                self._rest_faults.append((status, None))
            else:
                self._rest_faults.append((429, self._retry_after if kind == "http_429_retry_after" else None))
        if self._roll("slow_reply"):
            self._slow.append(self._slow_s)

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/stream", self._ws_handler)
        r.add_get("/api/v1/nextNonce", self._h_next_nonce)
        r.add_post("/api/v1/sendTx", self._h_send_tx)
        r.add_post("/api/v1/sendTxBatch", self._h_send_tx_batch)
        r.add_get("/api/v1/apikeys", self._h_api_keys)
        r.add_get("/api/v1/orderBooks", self._h_order_books)
        r.add_get("/api/v1/orderBookDetails", self._h_order_book_details)
        r.add_get("/api/v1/orderBookOrders", self._h_order_book_orders)
        r.add_get("/api/v1/recentTrades", self._h_recent_trades)
        r.add_get("/api/v1/trades", self._h_trades)
        r.add_get("/api/v1/account", self._h_account)
        r.add_get("/api/v1/accountLimits", self._h_account_limits)
        r.add_get("/api/v1/accountActiveOrders", self._h_active_orders)
        r.add_get("/api/v1/accountInactiveOrders", self._h_inactive_orders)
        r.add_get("/api/v1/funding-rates", self._h_funding_rates)
        r.add_get("/", self._h_root)

    @staticmethod
    def _error(code_message: tuple[int, str], status: int = 400) -> web.Response:
        code, message = code_message
        return web.json_response({"code": code, "message": message}, status=status)

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"code": 20001, "message": f"invalid param: {name}"}),
                content_type="application/json",
            ) from exc

    def _check_auth(self, token: str | None, account_index: int | None) -> str | None:
        """None when the token is acceptable, else the reason."""
        if not token:
            return "missing auth token"
        parts = token.split(":")
        if len(parts) != 4:
            return "malformed auth token"
        try:
            expiry, acct_idx, key_idx = int(parts[0]), int(parts[1]), int(parts[2])
            bytes.fromhex(parts[3])
        except ValueError:
            return "malformed auth token"
        if not parts[3]:
            return "malformed auth token"
        if expiry < time.time():
            return "auth token expired"
        acct = self._accounts.get(acct_idx)
        if acct is None or key_idx not in acct.api_keys:
            return "auth token for unknown account or api key"
        if account_index is not None and account_index != acct_idx:
            return "auth token is for another account"
        return None

    def _rest_auth(self, request: web.Request, account_index: int | None) -> web.Response | None:
        token = request.headers.get("authorization") or request.query.get("auth")
        reason = self._check_auth(token, account_index)
        if reason is None:
            return None
        return self._error((ERR_INVALID_AUTH[0], f"{ERR_INVALID_AUTH[1]}: {reason}"))

    async def _h_state(self, request: web.Request) -> web.Response:
        """``GET /_mock/state[?account_index=N]``: 404 for an unknown account."""
        account = self._int_param(request, "account_index")
        try:
            state = self.state_now(account)
        except KeyError:
            return web.json_response({"error": f"unknown account {account}"}, status=404)
        return web.json_response(state)

    async def _h_root(self, request: web.Request) -> web.Response:
        return web.json_response({"code": 200, "message": "mock lighter venue"})

    async def _h_next_nonce(self, request: web.Request) -> web.Response:
        account = self._int_param(request, "account_index")
        key = self._int_param(request, "api_key_index")
        acct = self._accounts.get(account) if account is not None else None
        if acct is None or key not in acct.api_keys:
            return self._error(ERR_ACCOUNT_NOT_FOUND)
        return web.json_response(_fill(fixture("http_next_nonce.json"), nonce=acct.next_nonce[key]))

    async def _h_send_tx(self, request: web.Request) -> web.Response:
        received_at = time.perf_counter()
        form = await request.post()
        try:
            tx_type = int(str(form.get("tx_type", "")))
        except ValueError:
            return self._error(ERR_INVALID_TX_INFO)
        try:
            body = self._submit_tx(tx_type, str(form.get("tx_info", "")))
        except TxRejected as rej:
            self._stats.rejected.append((rej.code, rej.message))
            return self._error((rej.code, rej.message))
        self._mark_tx_received(tx_type, received_at)
        return web.json_response(body)

    def _mark_tx_received(self, tx_type: int, received_at: float) -> None:
        """The "tx_received" timing mark of an accepted create-order tx (HTTP or WebSocket)."""
        hook = self._timing_hook
        if hook is not None and tx_type == TX_CREATE_ORDER:
            info = self._stats.txs[-1]
            hook(
                TimingMark(
                    "tx_received",
                    int(info.get("ClientOrderIndex", 0)),
                    received_at,
                    reduce_only=bool(info.get("ReduceOnly")),
                    is_ask=bool(info.get("IsAsk")),
                    price=int(info.get("Price", 0)),
                )
            )

    async def _h_send_tx_batch(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            hashes = self._submit_batch(form.get("tx_types"), form.get("tx_infos"))
        except TxRejected as rej:
            return self._error((rej.code, rej.message))
        body = fixture("http_sendtx_response.json")
        _fill(body, tx_hash=hashes, predicted_execution_time_ms=now_ms() + 3)
        body["volume_quota_remaining"] = 100000
        return web.json_response(body)

    def _submit_batch(self, tx_types: Any, tx_infos: Any) -> list[str]:
        """Validate and apply a batch; returns its hashes (one a transaction, in order).

        Sourced: the fields are JSON arrays as text (lighter-sdk's ``send_tx_batch`` json.dumps
        both lists; lists are accepted too), the answer is RespSendTxBatch (``tx_hash`` is a
        list), and a batch is one request of the account's limits (apidocs "Rate Limits":
        sendTxBatch weighs as sendTx, and WebSocket transactions share the REST limits).
        Unsourced: a refused batch. Here every transaction is verified (nonce, signature
        format, expiry, order checks) and applied in order until the first refusal, whose code
        answers the whole batch; those before it stay applied (their nonces used), those after
        it are never looked at. The venue's own behaviour (all-or-nothing or in order) is not
        documented; the client reads the nonce back to learn which went through, which is
        right either way. Also unsourced: any limit on the number of transactions a batch.
        """
        self._stats.batches += 1
        try:
            types = json.loads(tx_types) if isinstance(tx_types, str) else tx_types
            infos = json.loads(tx_infos) if isinstance(tx_infos, str) else tx_infos
        except json.JSONDecodeError:
            self._stats.rejected.append(ERR_INVALID_TX_INFO)
            raise TxRejected(*ERR_INVALID_TX_INFO) from None
        if (
            not isinstance(types, list)
            or not isinstance(infos, list)
            or len(types) != len(infos)
            or not types
        ):
            self._stats.rejected.append(ERR_INVALID_TX_INFO)
            raise TxRejected(*ERR_INVALID_TX_INFO)
        if self._over_limit(self._tx_times, self._tx_limit):
            self.limit_refusals["tx"] += 1
            self._stats.rejected.append(ERR_TOO_MANY_REQUESTS)
            raise TxRejected(*ERR_TOO_MANY_REQUESTS)
        hashes = []
        for tx_type, tx_info in zip(types, infos, strict=True):
            try:
                hashes.append(self._submit_tx(int(tx_type), tx_info, counted=True)["tx_hash"])
            except (ValueError, TypeError):
                self._stats.rejected.append(ERR_INVALID_TX_INFO)
                raise TxRejected(*ERR_INVALID_TX_INFO) from None
            except TxRejected as rej:
                self._stats.rejected.append((rej.code, rej.message))
                raise
        return hashes

    async def _h_api_keys(self, request: web.Request) -> web.Response:
        account = self._int_param(request, "account_index")
        key = self._int_param(request, "api_key_index", 255)
        acct = self._accounts.get(account) if account is not None else None
        if acct is None:
            return self._error(ERR_ACCOUNT_NOT_FOUND)
        keys = [
            {
                "account_index": acct.index,
                "api_key_index": idx,
                "nonce": acct.next_nonce.get(idx, 0),
                # The native check_client compares bare hex: the venue answers without "0x".
                "public_key": pub[2:] if pub.startswith("0x") else pub,
                "transaction_time": acct.created_ms * 1000,
            }
            for idx, pub in sorted(acct.api_keys.items())
            if key == 255 or idx == key
        ]
        return web.json_response({"code": 200, "api_keys": keys})

    def _market_filter(self, request: web.Request) -> list[int] | web.Response:
        market_id = self._int_param(request, "market_id", 255)
        if market_id == 255:
            return sorted(self.markets)
        if market_id not in self.markets:
            return self._error(ERR_REST_INVALID_MARKET)
        return [market_id]

    def _order_book_json(self, market_id: int) -> dict[str, Any]:
        spec = self.markets[market_id]
        tmpl = fixture("http_order_books.json")["order_books"][0]
        return _fill(
            tmpl,
            symbol=spec.symbol,
            market_id=market_id,
            taker_fee=f"{spec.taker_fee * 100:.4f}",
            maker_fee=f"{spec.maker_fee * 100:.4f}",
            min_base_amount=spec.fmt_size(spec.size_int(spec.min_base_amount)),
            min_quote_amount=_q6(spec.min_quote_amount),
            supported_size_decimals=spec.size_decimals,
            supported_price_decimals=spec.price_decimals,
        )

    async def _h_order_books(self, request: web.Request) -> web.Response:
        markets = self._market_filter(request)
        if isinstance(markets, web.Response):
            return markets
        body = fixture("http_order_books.json")
        return web.json_response(_fill(body, order_books=[self._order_book_json(m) for m in markets]))

    async def _h_order_book_details(self, request: web.Request) -> web.Response:
        markets = self._market_filter(request)
        if isinstance(markets, web.Response):
            return markets
        details = []
        for m in markets:
            spec = self.markets[m]
            book = self._books[m]
            tmpl = fixture("http_order_book_details.json")["order_book_details"][0]
            details.append(
                _fill(
                    tmpl,
                    **{
                        k: v
                        for k, v in self._order_book_json(m).items()
                        if k in tmpl and k not in ("order_quote_limit", "status", "market_type")
                    },
                    size_decimals=spec.size_decimals,
                    price_decimals=spec.price_decimals,
                    default_initial_margin_fraction=spec.default_imf,
                    last_trade_price=float(spec.price_dec(book.last_trade_price)),
                    open_interest=float(
                        sum(
                            (abs(spec.size_dec(a.positions[m].size)) for a in self._accounts.values()),
                            Decimal(0),
                        )
                    ),
                )
            )
        body = fixture("http_order_book_details.json")
        return web.json_response(_fill(body, order_book_details=details))

    async def _h_order_book_orders(self, request: web.Request) -> web.Response:
        markets = self._market_filter(request)
        if isinstance(markets, web.Response):
            return markets
        market_id = markets[0]
        limit = self._int_param(request, "limit", 20) or 20
        spec = self.markets[market_id]
        book = self._books[market_id]
        tmpl = fixture("http_order_book_orders.json")
        expiry = now_ms() + 28 * 24 * 3_600_000

        def entries(is_ask: bool) -> list[dict[str, Any]]:
            rows: list[tuple[int, int, dict[str, Any]]] = []
            levels = book.asks if is_ask else book.bids
            for i, (px, sz) in enumerate(levels.items()):
                oid = (ASK_ORDER_INDEX_BASE if is_ask else BID_ORDER_INDEX_BASE) - 100000 - i
                rows.append(
                    (
                        px,
                        oid,
                        {"oid": oid, "owner": MAKER_ACCOUNT_INDEX, "init": sz, "rem": sz, "exp": expiry},
                    )
                )
            for o in self._open_orders():
                if o.market_id == market_id and o.is_ask == is_ask and o.order_type == ORDER_TYPE_LIMIT:
                    rows.append(
                        (
                            o.price,
                            o.order_index,
                            {
                                "oid": o.order_index,
                                "owner": o.account_index,
                                "init": o.initial,
                                "rem": o.remaining,
                                "exp": o.order_expiry,
                            },
                        )
                    )
            rows.sort(key=lambda r: (r[0], r[1]) if is_ask else (-r[0], r[1]))
            out = []
            for px, _, row in rows[:limit]:
                entry = copy.deepcopy(tmpl["asks"][0])
                out.append(
                    _fill(
                        entry,
                        order_index=row["oid"],
                        order_id=str(row["oid"]),
                        owner_account_index=row["owner"],
                        initial_base_amount=spec.fmt_size(row["init"]),
                        remaining_base_amount=spec.fmt_size(row["rem"]),
                        price=spec.fmt_price(px),
                        order_expiry=row["exp"],
                    )
                )
            return out

        asks, bids = entries(True), entries(False)
        return web.json_response(
            _fill(tmpl, total_asks=len(asks), asks=asks, total_bids=len(bids), bids=bids)
        )

    async def _h_recent_trades(self, request: web.Request) -> web.Response:
        markets = self._market_filter(request)
        if isinstance(markets, web.Response):
            return markets
        limit = self._int_param(request, "limit", 100) or 100
        trades = list(reversed(self._books[markets[0]].trades))[:limit]
        return web.json_response(_fill(fixture("http_recent_trades.json"), trades=trades))

    async def _h_trades(self, request: web.Request) -> web.Response:
        account = self._int_param(request, "account_index")
        if account is not None:
            denied = self._rest_auth(request, account)
            if denied is not None:
                return denied
        market_id = self._int_param(request, "market_id", 255)
        limit = self._int_param(request, "limit", 100) or 100
        trades = [
            t
            for mid, book in self._books.items()
            if market_id in (255, mid)
            for t in book.trades
            if account is None or account in (t["ask_account_id"], t["bid_account_id"])
        ]
        trades.sort(key=lambda t: t["trade_id"], reverse=request.query.get("sort_dir", "desc") != "asc")
        body = fixture("http_account_trades_ccxt.json")
        return web.json_response(_fill(body, trades=trades[:limit]))

    async def _h_account(self, request: web.Request) -> web.Response:
        by = request.query.get("by", "index")
        value = request.query.get("value", "")
        acct: AccountState | None = None
        if by == "index":
            with contextlib.suppress(ValueError):
                acct = self._accounts.get(int(value))
        elif by == "l1_address":
            acct = next((a for a in self._accounts.values() if a.l1_address.lower() == value.lower()), None)
        if acct is None:
            return self._error(ERR_ACCOUNT_NOT_FOUND)
        body = fixture("http_account.json")
        return web.json_response(_fill(body, total=1, accounts=[self._account_json(acct)]))

    async def _h_account_limits(self, request: web.Request) -> web.Response:
        account = self._int_param(request, "account_index")
        denied = self._rest_auth(request, account)
        if denied is not None:
            return denied
        return web.json_response(fixture("http_account_tier.json"))

    def _orders_query(self, request: web.Request, active: bool) -> web.Response:
        account = self._int_param(request, "account_index")
        denied = self._rest_auth(request, account)
        if denied is not None:
            return denied
        market_id = self._int_param(request, "market_id", 255)
        if market_id != 255 and market_id not in self.markets:
            return self._error(ERR_REST_INVALID_MARKET)
        limit = self._int_param(request, "limit", 100) or 100
        orders = [
            self._order_json(o)
            for o in sorted(self._orders.values(), key=lambda o: o.order_index)
            if o.account_index == account and market_id in (255, o.market_id) and o.active == active
        ]
        body: dict[str, Any] = {"code": 200, "orders": orders}
        if not active:
            # Newest first, in pages as the venue serves them: ``cursor`` is the previous page's
            # opaque ``next_cursor`` (here its last order index); ``next_cursor`` is null at the end.
            orders.reverse()
            cursor = self._int_param(request, "cursor")
            if cursor is not None:
                orders = [o for o in orders if o["order_index"] < cursor]
            body["orders"] = orders[:limit]
            body["next_cursor"] = str(orders[limit - 1]["order_index"]) if len(orders) > limit else None
        return web.json_response(body)

    async def _h_active_orders(self, request: web.Request) -> web.Response:
        return self._orders_query(request, active=True)

    async def _h_inactive_orders(self, request: web.Request) -> web.Response:
        return self._orders_query(request, active=False)

    async def _h_funding_rates(self, request: web.Request) -> web.Response:
        body = fixture("http_funding_rates.json")
        rates = []
        for mid in sorted(self.markets):
            spec = self.markets[mid]
            entry = copy.deepcopy(body["funding_rates"][0])
            rates.append(
                _fill(
                    entry,
                    market_id=mid,
                    exchange="lighter",
                    symbol=spec.symbol,
                    rate=float(spec.funding_rate),
                )
            )
        return web.json_response(_fill(body, funding_rates=rates))

    # -- WebSocket ---------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        """Not the shared ``serve_ws``: a frame's arrival is stamped before it is decoded (the
        "tx_received" timing mark), and the first frame carries the session id."""
        if self._refusing:
            return web.json_response({"code": ERR_SERVER[0], "message": "stream unavailable"}, status=503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, str(uuid.uuid4()))
        self.conns.add(conn)
        self._stats.ws_connections += 1
        conn.send(_fill(fixture("ws_connected.json"), session_id=conn.session_id))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                received_at = time.perf_counter()
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    conn.send({"type": "error", "message": "invalid json"})
                    continue
                if isinstance(data, dict):
                    self._on_ws_message(conn, data, received_at)
        finally:
            self.close_conn(conn)
        return ws

    def _on_ws_message(self, conn: _Conn, data: dict[str, Any], received_at: float = 0.0) -> None:
        self._stats.ws_messages_in.append(data)
        kind = data.get("type")
        if kind == "ping":
            conn.send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "subscribe":
            self._subscribe(conn, str(data.get("channel", "")), data.get("auth"))
        elif kind == "unsubscribe":
            channel = str(data.get("channel", "")).replace("/", ":")
            if channel not in conn.streams:
                conn.send(
                    {"error": {"code": WS_ERR_NOT_SUBSCRIBED, "message": f"Not Subscribed to : {channel}"}}
                )
                return
            conn.streams.discard(channel)
            self.subscribers.get(channel, set()).discard(conn)
            conn.send({"type": "unsubscribed", "channel": channel})
        elif kind in ("jsonapi/sendtx", "jsonapi/sendtxbatch"):
            self._ws_send_tx(conn, kind, data.get("data") or {}, received_at)
        else:
            conn.send({"error": {"code": WS_ERR_INVALID_CHANNEL, "message": f"Invalid Channel:  ({kind})"}})

    def _ws_send_tx(self, conn: _Conn, kind: str, data: dict[str, Any], received_at: float = 0.0) -> None:
        req_id = data.get("id")
        reply: dict[str, Any]
        try:
            if kind == "jsonapi/sendtx":
                tx_type = int(data.get("tx_type", -1))
                body = self._submit_tx(tx_type, data.get("tx_info"))
                self._mark_tx_received(tx_type, received_at)
                reply = _fill(
                    fixture("ws_sendtx_ack.json"),
                    id=req_id,
                    predicted_execution_time_ms=body["predicted_execution_time_ms"],
                    tx_hash=body["tx_hash"],
                )
                reply["volume_quota_remaining"] = body["volume_quota_remaining"]
            else:
                try:
                    hashes = self._submit_batch(data.get("tx_types"), data.get("tx_infos"))
                except TxRejected as rej:
                    # The batch's refusal: the single reply's shape with the batch's type and
                    # our id (unsourced: no capture of a refused sendtxbatch exists).
                    reply = _fill(
                        fixture("ws_sendtx_rejected_insufficient_margin.json"),
                        code=rej.code,
                        message=rej.message,
                    )
                    reply["type"] = kind
                    if req_id is not None:
                        reply["id"] = req_id
                    conn.send(reply)
                    return
                # Unsourced shape: the single ack's fields (ws_sendtx_ack.json) with
                # RespSendTxBatch's list of hashes.
                reply = _fill(
                    fixture("ws_sendtx_ack.json"),
                    id=req_id,
                    predicted_execution_time_ms=now_ms() + 3,
                    tx_hash=hashes,
                    type=kind,
                )
        except (TxRejected, ValueError, TypeError) as exc:
            code, message = (exc.code, exc.message) if isinstance(exc, TxRejected) else ERR_INVALID_TX_INFO
            self._stats.rejected.append((code, message))
            reply = _fill(fixture("ws_sendtx_rejected_insufficient_margin.json"), code=code, message=message)
            if req_id is not None:
                reply["id"] = req_id
        conn.send(reply)

    def _subscribe(self, conn: _Conn, channel: str, auth: Any) -> None:
        parts = channel.split("/")
        name, args = parts[0], parts[1:]
        key = ":".join(parts)

        def invalid() -> None:
            conn.send(
                {"error": {"code": WS_ERR_INVALID_CHANNEL, "message": f"Invalid Channel:  ({channel})"}}
            )

        if ":" in channel or not channel:  # requests use '/', only replies use ':'
            invalid()
            return
        try:
            nums = [int(a) for a in args if a != "all"]
        except ValueError:
            invalid()
            return
        for i, (prefix, code, message) in enumerate(self._refusals):
            if channel.startswith(prefix):
                del self._refusals[i]
                conn.send({"error": {"code": code, "message": message}})  # unsourced wording
                return
        if key in conn.streams:
            conn.send(
                {"error": {"code": WS_ERR_ALREADY_SUBSCRIBED, "message": f"Already Subscribed to : {key}"}}
            )
            return

        market_channels = {"order_book", "ticker", "trade", "market_stats"}
        account_channels = {
            "account_all_orders": True,
            "account_all_trades": True,
            "account_all_positions": True,
            "account_all_assets": True,
            "user_stats": False,
            "account_all": False,
        }
        snapshot: dict[str, Any] | None
        if name in market_channels and len(args) == 1:
            if args[0] == "all" and name == "market_stats":
                snapshot = self._market_stats_all_msg("subscribed")
                snapshot["channel"] = "market_stats:all"
            elif len(nums) == 1 and nums[0] in self.markets:
                snapshot = self._market_snapshot(name, nums[0])
            else:
                invalid()
                return
        elif (
            name == "account_orders"
            and len(nums) == 2
            and nums[0] in self.markets
            and nums[1] in self._accounts
        ):
            reason = self._check_auth(auth if isinstance(auth, str) else None, nums[1])
            if reason:
                conn.send(
                    {"error": {"code": ERR_INVALID_AUTH[0], "message": f"{ERR_INVALID_AUTH[1]}: {reason}"}}
                )
                return
            market_id, account = nums
            orders = [
                self._order_json(o)
                for o in self._open_orders()
                if o.account_index == account and o.market_id == market_id
            ]
            snapshot = fixture("ws_account_orders_update_partial_fill.json")
            _fill(
                snapshot,
                type="subscribed/account_orders",
                channel=key,
                account=account,
                nonce=self._engine_nonce,
                orders={str(market_id): orders},
            )
        elif name in account_channels and len(nums) == 1 and nums[0] in self._accounts:
            account = nums[0]
            if account_channels[name]:
                reason = self._check_auth(auth if isinstance(auth, str) else None, account)
                if reason:
                    conn.send(
                        {
                            "error": {
                                "code": ERR_INVALID_AUTH[0],
                                "message": f"{ERR_INVALID_AUTH[1]}: {reason}",
                            }
                        }
                    )
                    return
            snapshot = self._account_snapshot(name, account)
        else:
            invalid()
            return
        self.subscribe(conn, key)
        self._stats.subscriptions.append(key)
        conn.send(snapshot)

    def _market_snapshot(self, name: str, market_id: int) -> dict[str, Any]:
        if name == "order_book":
            return self._book_snapshot(market_id)
        if name == "ticker":
            book = self._books[market_id]
            return self._ticker_msg(market_id, book.published_bids, book.published_asks, "subscribed")
        if name == "trade":
            msg = fixture("ws_trade_subscribed.json")
            return _fill(
                msg,
                channel=f"trade:{market_id}",
                nonce=self._engine_nonce,
                trades=self._books[market_id].trades[-20:],
            )
        msg = self._market_stats_msg(market_id, "subscribed")
        return msg

    def _account_snapshot(self, name: str, account: int) -> dict[str, Any]:
        acct = self._accounts[account]
        if name == "account_all_orders":
            by_market: dict[str, list[Any]] = {}
            for o in self._open_orders():
                if o.account_index == account:
                    by_market.setdefault(str(o.market_id), []).append(self._order_json(o))
            return {
                "channel": f"account_all_orders:{account}",
                "orders": by_market,
                "type": "subscribed/account_all_orders",
            }
        if name == "account_all_trades":
            trades: dict[str, list[Any]] = {}
            for mid, book in self._books.items():
                mine = [t for t in book.trades if account in (t["ask_account_id"], t["bid_account_id"])]
                if mine:
                    trades[str(mid)] = mine[-20:]
            msg = fixture("ws_account_all_trades_update.json")
            return _fill(
                msg,
                type="subscribed/account_all_trades",
                channel=f"account_all_trades:{account}",
                trades=trades,
            )
        if name == "account_all_positions":
            return self._positions_msg(acct, "subscribed")
        if name == "account_all_assets":
            return self._assets_msg(acct, "subscribed")
        if name == "user_stats":
            return self._user_stats_msg(acct, "subscribed")
        return self._account_all_msg(acct, "subscribed")


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


FAULT_HELP = {
    "ws_drop": "close every WebSocket connection (code 1012) instead of pushing a message",
    "http_429_retry_after": "answer a REST request HTTP 429 with a Retry-After header (--retry-after)",
    "http_429": "answer a REST request HTTP 429 without Retry-After",
    "http_5xx": "answer a REST request 500, 502 or 503 unhandled, or 504 after handling it "
    "(a sendTx in it is executed)",
    "slow_reply": "answer a REST request --slow-ms late (it is handled at once, so a client that "
    "times out has still had its order executed)",
    "ws_duplicate": "push a WS message twice",
    "ws_reorder": "hold a WS message back and push it after the next pushed message",
    "book_gap": "skip an order-book update (the book still changes: offsets and nonces jump)",
    "malformed_frame": "push a broken copy before a WS message: invalid JSON, wrong field types or "
    "NaN prices (seeded choice)",
    "oversized_frame": "push a copy padded to --oversize-bytes before a WS message",
}


def env_file_text(venue: MockLighterVenue) -> str:
    """A .env for ``runbot.py --exchange lighter --env-file FILE`` pointing at ``venue``."""
    lines = ["# Loopback mock Lighter venue (tests/mock_venues/lighter_venue.py); a throwaway test key."]
    lines += [f"{key}={value}" for key, value in venue.env().items()]
    return "\n".join(lines) + "\n"


def ready_info(venue: MockLighterVenue, spec: MarketSpec) -> dict[str, Any]:
    """What the ready file says: where the venue listens (no secrets)."""
    return {
        "base_url": venue.base_url,
        "ws_url": venue.ws_url,
        "port": venue.port,
        "pid": os.getpid(),
        "state_url": f"{venue.base_url}/_mock/state",
        "control_url": f"{venue.base_url}/_mock/control",
        "account_index": venue.account_index,
        "api_key_index": venue.api_key_index,
        "market_id": spec.market_id,
        "symbol": spec.symbol,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mock_venues.lighter_venue",
        description="Run a loopback mock Lighter venue (REST + WebSocket) in the foreground. "
        "GET /_mock/state shows its truth (orders, positions, trades, fault counters); "
        "POST /_mock/control moves the market and queues or clears faults. "
        "SIGTERM or SIGINT stops it cleanly.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 = random free port (see --ready-file)")
    parser.add_argument("--price", type=Decimal, default=Decimal("3000"), help="start price")
    parser.add_argument("--symbol", default="ETH")
    parser.add_argument("--market-id", type=int, default=0)
    parser.add_argument("--size-decimals", type=int, default=4)
    parser.add_argument("--price-decimals", type=int, default=2)
    parser.add_argument("--account-index", type=int, default=712440)
    parser.add_argument("--api-key-index", type=int, default=4)
    parser.add_argument("--collateral", type=Decimal, default=Decimal("10000"))
    parser.add_argument(
        "--walk",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="every SECONDS, move the price by a seeded random step (up to 0.05 %%, pulled back "
        "towards the start price) and trade through it, filling resting orders on either side "
        "(0 = static)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the walk and the engine nonces")
    files = parser.add_argument_group("files for other processes")
    files.add_argument(
        "--env-out",
        type=Path,
        metavar="FILE",
        help="write a .env (mode 0600) with the LIGHTER_* variables pointing at this venue, for "
        "runbot.py --exchange lighter --env-file FILE (written before the ready file)",
    )
    files.add_argument(
        "--ready-file",
        type=Path,
        metavar="FILE",
        help="once listening, write JSON {base_url, ws_url, port, pid, state_url, control_url, "
        "account_index, api_key_index, market_id, symbol} here (atomically); removed on a clean stop",
    )
    faults = parser.add_argument_group(
        "fault injection",
        "Faults at seeded random moments. Each RATE is a probability (0..1) per eligible event: "
        "every /api/ REST request for the http and slow faults, every pushed WS message with a "
        "subscriber for the ws, malformed and oversized faults, every order-book update with a "
        "subscriber for book gaps. Each fault type has its own random stream seeded by "
        "(--fault-seed, type): the same seed and the same sequence of requests give the same "
        "faults. Faults change only what is delivered, never the venue's own state. Counters are "
        "in GET /_mock/state under faults.counts.",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=None, help="seed of the fault streams (default --seed)"
    )
    for kind in FAULT_KINDS:
        faults.add_argument(
            f"--{kind.replace('_', '-')}-rate",
            dest=f"rate_{kind}",
            type=_probability,
            default=0.0,
            metavar="RATE",
            help=FAULT_HELP[kind],
        )
    faults.add_argument(
        "--slow-ms",
        type=_non_negative,
        default=DEFAULT_SLOW_MS,
        help="how late a slow reply is, in ms (default %(default)g: over the client's 10 s timeout)",
    )
    faults.add_argument(
        "--retry-after", type=_non_negative, default=1.0, help="Retry-After seconds of a 429 (default 1)"
    )
    faults.add_argument(
        "--oversize-bytes",
        type=int,
        default=DEFAULT_OVERSIZE_BYTES,
        help="padding of an oversized frame (default %(default)d, over the client's 4 MiB limit)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (FIXTURES_DIR / "http_order_books.json").is_file():
        print(
            f"error: captured Lighter messages not found in {FIXTURES_DIR} "
            "(set BOT_SHARED_DIR or LIGHTER_FIXTURES_DIR)",
            file=sys.stderr,
        )
        return 2
    spec = MarketSpec(
        market_id=args.market_id,
        symbol=args.symbol,
        size_decimals=args.size_decimals,
        price_decimals=args.price_decimals,
    )
    venue = MockLighterVenue(
        [spec],
        start_price=args.price,
        account_index=args.account_index,
        api_key_index=args.api_key_index,
        collateral=args.collateral,
        host=args.host,
        port=args.port,
        seed=args.seed,
        fault_seed=args.fault_seed,
    )
    venue.set_fault_rates(
        slow_ms=args.slow_ms,
        retry_after=args.retry_after,
        oversize_bytes=args.oversize_bytes,
        **{kind: getattr(args, f"rate_{kind}") for kind in FAULT_KINDS},
    )
    stop = threading.Event()
    # Installed before the venue starts, so a SIGTERM at any moment still stops it cleanly.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        venue.start()
    except RuntimeError as exc:
        print(f"error: {exc}: {exc.__cause__}", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        return 2
    try:
        if args.env_out is not None:
            write_private_file(args.env_out, env_file_text(venue))
        if args.ready_file is not None:
            write_private_file(args.ready_file, json.dumps(ready_info(venue, spec)) + "\n")
        if args.walk > 0:
            venue.start_walk(args.walk)
        print("Mock Lighter venue running")
        print(f"  REST: {venue.base_url}")
        print(f"  WS:   {venue.ws_url}")
        print(f"  state: {venue.base_url}/_mock/state   control: POST {venue.base_url}/_mock/control")
        print(
            f"  market {spec.market_id} {spec.symbol}: "
            f"size_decimals={spec.size_decimals} price_decimals={spec.price_decimals}"
        )
        if args.env_out is not None:
            print(f"  .env for the bot: {args.env_out}")
        print("  Environment for a client:")
        for key, value in venue.env().items():
            print(f"    export {key}={value}")
        print(f"  API public key: {venue.api_public_key}")
        print("  Ctrl-C or SIGTERM to stop.", flush=True)
        while not stop.wait(0.5):  # a timeout, so the signal handler gets to run promptly
            pass
    finally:
        venue.stop()
        if args.ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                args.ready_file.unlink()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
