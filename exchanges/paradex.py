"""Paradex perpetuals client (``{TICKER}-USD-PERP`` markets, USDC-settled), on paradex-py.

How it talks to the venue, and why:

* paradex-py is used to *sign* only: its ``SubkeyAccount`` (an L2 key with an explicit account
  address: a main account's own L2 key or a registered subkey) makes the Stark signature of
  the JWT request (``auth_headers``) and of every order (``sign_order``, over the SDK's
  ``Order`` typed data: market, side, type, size and price in 8-decimal quanta, timestamp).
  Signing is CPU work in a native library, so it runs in a worker thread, off the event loop.
  Every request goes over one aiohttp session of our own
  (:class:`~exchanges.connector_kit.HttpSession`): the SDK's HTTP client is synchronous
  (httpx), so each of its calls would block the loop. One error mapping (ERROR_TABLE), one
  rate limiter and one retry policy cover every answer.
* Authentication: ``POST /auth/{l2 public key}`` with the signed headers returns a JWT, sent as
  ``Authorization: Bearer`` on private requests and in the WebSocket's ``auth`` call. The JWT
  carries its expiry (``exp``); it is refreshed ``jwt_refresh_margin`` seconds before that, and
  at once when the venue refuses it (HTTP 401, or WebSocket error 40111): the request is then
  sent once more with the fresh token, and the socket reconnects with it.
* Markets from ``GET /markets``: ``price_tick_size``, ``order_size_increment``, ``min_notional``.
  Paradex has no minimum size, only a minimum notional; ``ContractInfo.min_size`` is that
  notional at the mark price of ``GET /markets/summary`` when the markets are loaded (the
  smallest whole-step size that meets it), and every order is also checked against the
  notional itself.
* Orders: ``POST /orders`` answers the order as ``NEW`` (accepted, not yet in the book); the
  book's verdict comes on the ``orders`` channel, so a placement waits (bounded by
  ``order_ack_timeout``) for it: ``OPEN``, or ``CLOSED`` with ``cancel_reason``
  ``POST_ONLY_WOULD_CROSS`` for a post-only order that would have taken liquidity, which
  raises :class:`PostOnlyRejected`. Market orders are IOC limit orders at the slippage bound
  (the shared layer's rule). Cancels (``DELETE /orders/{id}``) are queued by the venue; the
  cancel waits (bounded) for the ``CLOSED`` on the stream.
* A malformed body of a read raises InvalidVenueData naming the endpoint; a malformed 2xx answer
  to ``POST /orders`` is logged and the order stays PENDING (it most likely exists: it is
  confirmed by the stream or looked up, never taken for refused).
* ``find_order``: ``GET /orders/by_client_id/{id}`` (open orders only), then
  ``GET /orders-history?client_id=`` (finished ones too); only when both answer without it is it
  OrderNotFound.
* One :class:`ReconnectingWebSocket` (JSON-RPC): ``auth`` first on every (re)connect, then
  ``orders.{market}``, ``fills.{market}`` (trade reports: exact fee, maker flag),
  ``positions``, ``order_book.{market}.snapshot@15@50ms`` (every message a 15-level snapshot
  with ``seq_no``; older ones are skipped) and ``bbo.{market}`` (the top while the book is
  rebuilt). Orders and fills are folded by the shared :class:`VenueOrders` (fills counted once
  whichever of the two channels reports them first). A malformed message is counted and
  logged (one line a minute per kind), never a traceback.

Settings (the bot loads the .env first): PARADEX_L1_ADDRESS (the Ethereum address of the
account, 0x + 40 hex digits), PARADEX_L2_PRIVATE_KEY (the Stark key or subkey, 0x + hex),
PARADEX_L2_ADDRESS (the account's L2 address; required for a subkey, derived from the key and
the venue's system config when absent), PARADEX_ENVIRONMENT (``prod`` default, or
``testnet``), optional PARADEX_BASE_URL / PARADEX_WS_URL (e.g. the loopback mock,
tests/mock_venues/paradex_venue.py). Install: ``bash scripts/paradex_env.sh`` (see README).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

from marshmallow import ValidationError
from paradex_py.account.subkey_account import SubkeyAccount
from paradex_py.account.utils import derive_l2_address_starknet
from paradex_py.api.models import SystemConfigSchema
from paradex_py.common.order import Order as SdkOrder
from paradex_py.common.order import OrderSide as SdkSide
from paradex_py.common.order import OrderType as SdkOrderType
from starknet_py.net.signer.key_pair import KeyPair

from exchanges.base import (
    AccountSnapshot,
    AuthenticationError,
    ConfigurationError,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    FundingRate,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    MalformedMessage,
    OrderBelowMinimum,
    OrderInfo,
    OrderNotFound,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PostOnlyRejected,
    RateLimitExceeded,
)
from exchanges.connector_kit import (
    HttpSession,
    PriceLevels,
    error_for_status,
    json_or_none,
    opt_int,
    optional_price,
    plain,
    required_setting,
    timestamp_seconds,
    to_decimal,
    venue_urls,
    with_retry_after,
)
from exchanges.venue_client import COMMON_PARAMS, StreamingVenueClient
from exchanges.venue_orders import OrderReport, TradeReport, VenueOrder
from helpers import safe_json, venue_validation
from helpers.clock import Clock
from helpers.rate_limiter import Priority, RetryPolicy
from helpers.reconnecting_websocket import ReconnectingWebSocket
from helpers.rounding import round_up
from helpers.trading_config import TradingConfig
from helpers.venue_validation import InvalidVenueData, MalformedCounter, rest_body

logger = logging.getLogger(__name__)

#: REST base (with its /v1) and WebSocket address of each environment.
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "prod": ("https://api.prod.paradex.trade/v1", "wss://ws.api.prod.paradex.trade/v1"),
    "testnet": ("https://api.testnet.paradex.trade/v1", "wss://ws.api.testnet.paradex.trade/v1"),
}
#: Assumed life of a token whose payload carries no ``exp`` (the SDK assumes the same).
OPAQUE_TOKEN_LIFETIME = 240.0
#: WebSocket JSON-RPC error of a refused or expired JWT.
WS_INVALID_TOKEN = 40111
POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
BOOK_CHANNEL = "order_book.{market}.snapshot@15@50ms"

_HEX = re.compile(r"0x[0-9a-fA-F]{1,64}")
_ETH_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class ParadexSettings:
    """Connection settings; the L2 key is excluded from repr so it never reaches a log."""

    l1_address: str
    l2_private_key: str = field(repr=False)
    l2_address: str | None
    environment: str
    base_url: str
    ws_url: str

    @classmethod
    def load(cls, env: Mapping[str, str], params: Mapping[str, Any]) -> ParadexSettings:
        """Read and validate; every problem is a one-line ConfigurationError naming the variable
        and never echoing a key."""
        l1_address = required_setting(env, "PARADEX_L1_ADDRESS")
        if not _ETH_ADDRESS.fullmatch(l1_address):
            raise ConfigurationError("PARADEX_L1_ADDRESS must be an Ethereum address (0x and 40 hex digits)")
        key = required_setting(env, "PARADEX_L2_PRIVATE_KEY")
        if not _HEX.fullmatch(key) or int(key, 16) == 0:
            raise ConfigurationError("PARADEX_L2_PRIVATE_KEY must be a Stark private key (0x and hex digits)")
        l2_address = (env.get("PARADEX_L2_ADDRESS") or "").strip() or None
        if l2_address is not None and not _HEX.fullmatch(l2_address):
            raise ConfigurationError("PARADEX_L2_ADDRESS must be a Starknet address (0x and hex digits)")
        environment = (
            str(params.get("environment") or env.get("PARADEX_ENVIRONMENT") or "prod").strip().lower()
        )
        if environment not in ENVIRONMENTS:
            raise ConfigurationError(f"PARADEX_ENVIRONMENT must be one of: {', '.join(ENVIRONMENTS)}")
        base_url, ws_url = venue_urls(env, params, "PARADEX", ENVIRONMENTS[environment])
        return cls(
            l1_address=l1_address,
            l2_private_key=key,
            l2_address=l2_address,
            environment=environment,
            base_url=base_url,
            ws_url=ws_url,
        )


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class TokenRejected(AuthenticationError):
    """The venue refused our JWT (expired or revoked): authenticate again and resend once."""


#: Paradex error codes (the ``error`` field of ``{"error", "message", "data"}``) -> our taxonomy.
ERROR_TABLE: dict[str, type[ExchangeError]] = {
    "INVALID_TOKEN": TokenRejected,
    "UNAUTHORIZED": TokenRejected,
    "STARKNET_SIGNATURE_VERIFICATION_FAILED": AuthenticationError,
    "INVALID_STARKNET_SIGNATURE": AuthenticationError,
    "INVALID_ORDER_SIGNATURE": AuthenticationError,
    "INVALID_SIGNATURE_EXPIRATION": AuthenticationError,
    "INVALID_STARKNET_ADDRESS": AuthenticationError,
    "ACCOUNT_NOT_FOUND": AuthenticationError,
    "NOT_ONBOARDED": AuthenticationError,
    "PUBLIC_KEY_INVALID": AuthenticationError,
    "GEO_IP_BLOCK": AuthenticationError,
    "INVALID_TIMESTAMP": InvalidNonce,
    "ORDER_ID_NOT_FOUND": OrderNotFound,
    "CLIENT_ORDER_ID_NOT_FOUND": OrderNotFound,
    "ORDER_IS_CLOSED": OrderNotFound,
    "NOT_FOUND": OrderNotFound,
    "VALIDATION_ERROR": InvalidOrder,
    "BINDING_ERROR": InvalidOrder,
    "INVALID_REQUEST_PARAMETER": InvalidOrder,
    "INVALID_PRICE_PRECISION": InvalidOrder,
    "INVALID_SYMBOL": InvalidOrder,
    "MARKET_NOT_FOUND": InvalidOrder,
    "MARKET_NOT_OPEN": InvalidOrder,
    "DUPLICATED_CLIENT_ID": InvalidOrder,
    "ORDER_IS_NOT_OPEN_YET": ExchangeUnavailable,
    "NOT_ENOUGH_MARGIN": InsufficientFunds,
    "INSUFFICIENT_MARGIN": InsufficientFunds,
    "MIN_NOTIONAL": OrderBelowMinimum,
    "INTERNAL_ERROR": ExchangeUnavailable,
    "SERVICE_UNAVAILABLE": ExchangeUnavailable,
}


def map_error(body: Any, http_status: int, endpoint: str) -> ExchangeError:
    """The typed error of an error answer (``body`` may be anything, even not JSON)."""
    code = str(body.get("error") or "") if isinstance(body, dict) else ""
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    text = f"paradex {endpoint}: {code or 'HTTP ' + str(http_status)}"
    if message:
        text = f"{text}: {message[:160]}"
    if code == "NOT_ONBOARDED":
        text += " (onboard the account on the Paradex app first)"
    if http_status == 429:
        return RateLimitExceeded(text)
    cls = ERROR_TABLE.get(code)
    if cls is None:
        if http_status == 401:
            cls = TokenRejected
        else:
            cls = error_for_status(http_status, not_found_404=endpoint.split()[-1].startswith("/orders"))
    return cls(text)


# ---------------------------------------------------------------------------------------------
# Wire -> our vocabulary (pure functions, tested from the captured messages)
# ---------------------------------------------------------------------------------------------


def _side(raw: Any) -> OrderSide:
    if raw == "BUY":
        return OrderSide.BUY
    if raw == "SELL":
        return OrderSide.SELL
    raise InvalidVenueData("bad value", f"order side {str(raw)[:20]!r}")


def order_report(raw: Mapping[str, Any], now: float) -> OrderReport:
    """A Paradex order object (REST answer or ``orders`` channel data) as an OrderReport.

    Paradex reports ``size`` and ``remaining_size``: the filled size is their difference. NEW
    (accepted, not yet in the book) is PENDING; CLOSED is FILLED when nothing remains, REJECTED
    when a post-only order would have crossed, else CANCELLED.
    """
    if not isinstance(raw, Mapping):
        raise InvalidVenueData("wrong type", "order is not an object")
    size = venue_validation.size(raw.get("size"), "size")
    remaining_raw = raw.get("remaining_size")
    remaining = (
        size if remaining_raw in (None, "") else venue_validation.size(remaining_raw, "remaining_size")
    )
    if remaining > size:
        raise InvalidVenueData("overfilled", f"remaining_size {remaining} above size {size}")
    filled = size - remaining
    venue_status = str(raw.get("status") or "")
    cancel_reason = str(raw.get("cancel_reason") or "")
    if venue_status == "NEW":
        status = OrderStatus.PENDING
    elif venue_status == "OPEN":
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    elif venue_status == "CLOSED":
        if remaining == 0 and filled > 0:
            status = OrderStatus.FILLED
        elif filled == 0 and cancel_reason == POST_ONLY_WOULD_CROSS:
            status = OrderStatus.REJECTED
        else:
            status = OrderStatus.CANCELLED
    else:
        status = OrderStatus.UNKNOWN
    instruction = str(raw.get("instruction") or "")
    average = optional_price(raw.get("avg_fill_price"), "avg_fill_price") if filled > 0 else None
    return OrderReport(
        client_order_id=str(raw.get("client_id") or ""),
        order_id=str(raw.get("id") or "") or None,
        contract_id=str(raw.get("market") or ""),
        side=_side(raw.get("side")),
        order_type=OrderType.MARKET
        if raw.get("type") == "MARKET" or instruction == "IOC"
        else OrderType.LIMIT,
        size=size,
        price=venue_validation.size(raw.get("price") or "0", "price"),
        status=status,
        venue_status=cancel_reason if venue_status == "CLOSED" and cancel_reason else venue_status,
        filled_size=filled,
        average_fill_price=average,
        timestamp=timestamp_seconds(raw.get("last_updated_at") or raw.get("created_at"), now),
        post_only=instruction == "POST_ONLY",
    )


def trade_report(raw: Mapping[str, Any], now: float) -> TradeReport:
    """One of our fills (``fills`` channel or ``GET /fills``) as a TradeReport."""
    if not isinstance(raw, Mapping):
        raise InvalidVenueData("wrong type", "fill is not an object")
    trade_id = str(raw.get("id") or "")
    if not trade_id:
        raise InvalidVenueData("missing field", "fill id")
    fee = raw.get("fee")
    liquidity = raw.get("liquidity")
    return TradeReport(
        trade_id=trade_id,
        client_order_id=str(raw.get("client_id") or "") or None,
        order_id=str(raw.get("order_id") or "") or None,
        size=venue_validation.size(raw.get("size"), "fill size"),
        price=venue_validation.price(raw.get("price"), "fill price"),
        fee=None if fee in (None, "") else to_decimal(fee, "fill fee"),
        is_maker=None if liquidity not in ("MAKER", "TAKER") else liquidity == "MAKER",
        timestamp=timestamp_seconds(raw.get("created_at"), now),
    )


def position_of(raw: Mapping[str, Any]) -> Position:
    """A ``GET /positions`` row or ``positions`` channel data; signed by its ``side``."""
    if not isinstance(raw, Mapping):
        raise InvalidVenueData("wrong type", "position is not an object")
    size = abs(to_decimal(raw.get("size"), "position size"))
    if raw.get("status") == "CLOSED":
        size = Decimal(0)
    elif raw.get("side") == "SHORT":
        size = -size
    elif raw.get("side") != "LONG" and size != 0:
        raise InvalidVenueData("bad value", f"position side {str(raw.get('side'))[:20]!r}")
    return Position(
        contract_id=str(raw.get("market") or ""),
        size=size,
        entry_price=venue_validation.size(raw.get("average_entry_price") or "0", "average_entry_price"),
        unrealized_pnl=to_decimal(raw.get("unrealized_pnl") or "0", "unrealized_pnl"),
        liquidation_price=optional_price(raw.get("liquidation_price"), "liquidation_price"),
    )


def market_of(raw: Mapping[str, Any], mark_price: Decimal | None) -> ContractInfo:
    """A ``GET /markets`` row as ContractInfo (``min_size``: see the module docstring)."""
    tick = venue_validation.price(raw.get("price_tick_size"), "price_tick_size")
    step = venue_validation.price(raw.get("order_size_increment"), "order_size_increment")
    min_notional = venue_validation.size(raw.get("min_notional") or "0", "min_notional")
    min_size = step
    if mark_price is not None and mark_price > 0 and min_notional > 0:
        min_size = max(step, round_up(min_notional / mark_price, step))
    return ContractInfo(
        ticker=str(raw.get("base_currency") or "").upper(),
        contract_id=str(raw["symbol"]),
        tick_size=tick,
        size_step=step,
        min_size=min_size,
        min_notional=min_notional,
    )


def _levels(levels: Any, side: str | None = None) -> list[list[Any]]:
    """Book levels as [price, size] pairs, from [[p, s]] lists or {side, price, size} objects."""
    if not isinstance(levels, list):
        raise InvalidVenueData("wrong type", "book levels are not a list")
    out = []
    for level in levels:
        if isinstance(level, Mapping):
            if side is None or level.get("side") == side:
                out.append([level.get("price"), level.get("size")])
        else:
            out.append(level)
    return out


def depth_continues(book: PriceLevels, data: Mapping[str, Any]) -> bool:
    """Paradex book messages: a snapshot (``update_type`` "s") replaces the book unless it is
    older than what we hold; a delta ("d") must carry the next ``seq_no`` (its inserts and
    updates set levels, deletes remove them). False on a gap or a message without ``seq_no``."""
    sequence = opt_int(data.get("seq_no"))
    if sequence is None:
        return False
    if book.sequence is not None and sequence <= book.sequence:
        return True
    inserts, updates = data.get("inserts") or [], data.get("updates") or []
    if data.get("update_type") == "s":
        book.replace(_levels(inserts, "BUY"), _levels(inserts, "SELL"), sequence)
        return True
    if book.sequence is None or sequence != book.sequence + 1:
        return False
    bids: list[list[Any]] = []
    asks: list[list[Any]] = []
    for removing, levels in ((False, [*inserts, *updates]), (True, data.get("deletes") or [])):
        for level in levels:
            if not isinstance(level, Mapping):
                raise InvalidVenueData("wrong type", "a book level is not an object")
            entry = [level.get("price"), "0" if removing else level.get("size")]
            (bids if level.get("side") == "BUY" else asks).append(entry)
    book.apply(bids, asks, sequence)
    return True


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying it (the venue does);
    None when the token is not a readable JWT."""
    try:
        payload = token.split(".")[1]
        claims = safe_json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode())
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError, MalformedMessage):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | Decimal) and not isinstance(exp, bool) else None


# ---------------------------------------------------------------------------------------------
# Signing (paradex-py) and the JWT
# ---------------------------------------------------------------------------------------------


class ParadexSigner:
    """The SDK's L2 account, used only to sign. Built from the venue's system config (its
    Starknet chain id is in every signed message)."""

    def __init__(self, settings: ParadexSettings, config: Mapping[str, Any]) -> None:
        fields = dict(config)
        rpc = str(fields.get("starknet_fullnode_rpc_url") or "")
        fields.setdefault("starknet_fullnode_rpc_base_url", re.sub(r"/rpc/v\d+[._]\d+.*$", "", rpc))
        try:
            system = SystemConfigSchema().load(fields, unknown="exclude")
        except ValidationError as exc:
            raise InvalidVenueData("malformed body", f"GET /system/config: {sorted(exc.messages)}") from None
        public_key = KeyPair.from_private_key(int(settings.l2_private_key, 16)).public_key
        address = settings.l2_address or hex(derive_l2_address_starknet(system, public_key))
        try:
            self.account = SubkeyAccount(
                config=system, l2_private_key=settings.l2_private_key, l2_address=address
            )
        except ValueError:
            raise ConfigurationError(
                f"paradex: the venue's chain id {system.starknet_chain_id!r} is not one paradex-py knows"
            ) from None
        self.address = address
        self.public_key = hex(public_key)

    def auth_headers(self) -> dict[str, str]:
        return dict(self.account.auth_headers())

    def signed_order(self, order: VenueOrder, *, instruction: str, reduce_only: bool) -> dict[str, Any]:
        sdk_order = SdkOrder(
            market=order.contract_id,
            order_type=SdkOrderType.Limit,
            order_side=SdkSide.Buy if order.side is OrderSide.BUY else SdkSide.Sell,
            size=order.size,
            limit_price=order.price,
            client_id=order.client_order_id,
            instruction=instruction,
            reduce_only=reduce_only,
        )
        sdk_order.signature = self.account.sign_order(sdk_order)
        body = sdk_order.dump_to_dict()
        body["size"], body["price"] = plain(order.size), plain(order.price)
        return {key: value for key, value in body.items() if value is not None}


class ParadexAuth:
    """The JWT: made on first use, refreshed ``margin`` seconds before it expires or at once
    after the venue refused it; one refresh at a time however many requests wait for it."""

    def __init__(self, rest: ParadexRest, clock: Clock, margin: float) -> None:
        self.rest = rest
        self.clock = clock
        self.margin = margin
        self.signer: ParadexSigner | None = None
        self.token: str | None = None
        self.expires_at = 0.0
        self.refreshes = 0
        self._lock = asyncio.Lock()

    def fresh(self) -> bool:
        return self.token is not None and self.clock.now() < self.expires_at - self.margin

    async def bearer(self) -> str:
        if not self.fresh():
            async with self._lock:
                if not self.fresh():
                    await self._authenticate()
        assert self.token is not None
        return self.token

    def invalidate(self, token: str | None) -> None:
        """Forget ``token`` (if still current): the next request authenticates again."""
        if token is None or token == self.token:
            self.token = None

    async def _authenticate(self) -> None:
        signer = self.signer
        if signer is None:
            raise ExchangeError("paradex: not connected (call connect first)")
        headers = await asyncio.to_thread(signer.auth_headers)
        path = f"/auth/{signer.public_key}"
        body = await self.rest.send("POST", path, headers=headers)
        with rest_body(f"POST {path}"):
            token = body["jwt_token"]
            if not isinstance(token, str) or not token:
                raise InvalidVenueData("missing field", "jwt_token")
        expiry = jwt_expiry(token)
        self.token = token
        self.expires_at = expiry if expiry is not None else self.clock.now() + OPAQUE_TOKEN_LIFETIME
        self.refreshes += 1
        logger.info("paradex: authenticated (token %d)", self.refreshes)


class ParadexRest:
    """Public and JWT-authenticated requests with one error mapping, limiter and retries."""

    def __init__(self, settings: ParadexSettings, *, timeout: float, retry: RetryPolicy) -> None:
        self.settings = settings
        self.retry = retry
        self.http = HttpSession("paradex", timeout)
        self.auth: ParadexAuth | None = None
        self.tokens_refused = 0

    async def public(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.retry.call(lambda: self.send("GET", path, params=params))

    async def private(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool = True,
        priority: Priority = Priority.NORMAL,
    ) -> Any:
        """A request with the JWT; a refused token is replaced and the request sent once more
        (a 401 proves the request did nothing, so this holds for orders too). ``body`` may be
        a callable making it afresh per attempt (a new order signature)."""
        auth = self.auth
        if auth is None:
            raise ExchangeError("paradex: not connected (call connect first)")

        async def attempt() -> Any:
            payload = await body() if callable(body) else body
            token = await auth.bearer()
            try:
                return await self.send(method, path, params=params, body=payload, token=token)
            except TokenRejected:
                self.tokens_refused += 1
                logger.warning("paradex: the venue refused the JWT; authenticating again")
                auth.invalidate(token)
                return await self.send(method, path, params=params, body=payload, token=await auth.bearer())

        return await self.retry.call(attempt, idempotent=idempotent, priority=priority)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        endpoint = f"{method} {path}"
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        status, text, retry_after = await self.http.request(
            method,
            f"{self.settings.base_url}{path}",
            params={k: v for k, v in (params or {}).items() if v is not None},
            data=data,
            headers=all_headers,
            what=endpoint,
        )
        answer = json_or_none(text)
        if status >= 400:
            raise with_retry_after(map_error(answer, status, endpoint), retry_after)
        if answer is None:
            if status == 204 or not text:
                return None
            raise InvalidVenueData("malformed body", f"{endpoint}: answer is not JSON")
        return answer


def _results(body: Any, endpoint: str) -> list[Any]:
    """The ``results`` list of a list answer; InvalidVenueData naming the endpoint otherwise."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise InvalidVenueData("malformed body", f"{endpoint}: no results list")
    return results


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


class ParadexClient(StreamingVenueClient):
    """Paradex perpetuals: SDK-signed requests on our session, one authenticated stream."""

    name = "paradex"
    PARAMS: ClassVar[dict[str, Any]] = {
        **COMMON_PARAMS,
        "maker_fee": "0.000075",
        "taker_fee": "0.000125",
        "jwt_refresh_margin": 30.0,  # refresh the JWT this many seconds before it expires
        "history_page_size": 100,
    }

    def __init__(self, config: TradingConfig, clock: Clock, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(config, clock)
        self.settings: ParadexSettings = self._load_settings(ParadexSettings, env)
        self._rest = ParadexRest(self.settings, timeout=float(self.params["rest_timeout"]), retry=self.retry)
        self._auth = ParadexAuth(self._rest, clock, float(self.params["jwt_refresh_margin"]))
        self._rest.auth = self._auth
        self._http = self._rest.http
        self._markets: dict[str, ContractInfo] = {}
        self._ws: ReconnectingWebSocket | None = None
        self._malformed = MalformedCounter("paradex-ws", clock.now)
        #: The latest position per market from the ``positions`` channel (REST stays the truth).
        self.stream_positions: dict[str, Position] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        config = await self._rest.public("/system/config")
        if not isinstance(config, dict):
            raise InvalidVenueData("malformed body", "GET /system/config: not an object")
        self._auth.signer = await asyncio.to_thread(ParadexSigner, self.settings, config)
        await self._auth.bearer()
        await self._load_markets()
        market = self._symbol_for_ticker(self.config.ticker)
        self._ws = self._make_socket(
            self.settings.ws_url, self._on_message, "paradex-ws", self._on_connect, self._stream_disconnected
        )
        await self._ws.subscribe("auth", self._auth_message)
        await self._ws.subscribe("positions", self._channel("positions"))
        await self._ensure_streams(market)
        self._ws.start()
        await self._wait_connected(self._ws)

    async def _close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        self._ws = None

    async def _on_connect(self) -> None:
        await self._auth.bearer()  # the auth message that follows must carry a valid token
        self._stream_connected()

    def _auth_message(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": "auth", "params": {"bearer": self._auth.token}, "id": 0}

    @staticmethod
    def _channel(channel: str) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": "subscribe", "params": {"channel": channel}, "id": 1}

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        body = await self._rest.public("/markets")
        summary = await self._rest.public("/markets/summary", {"market": "ALL"})
        marks: dict[str, Decimal] = {}
        with rest_body("GET /markets/summary"):
            for row in _results(summary, "GET /markets/summary"):
                if isinstance(row, dict) and row.get("mark_price") not in (None, ""):
                    marks[str(row.get("symbol"))] = to_decimal(row["mark_price"], "mark_price")
        with rest_body("GET /markets"):
            for raw in _results(body, "GET /markets"):
                if isinstance(raw, dict) and raw.get("asset_kind") == "PERP":
                    info = market_of(raw, marks.get(str(raw.get("symbol"))))
                    self._markets[info.contract_id] = info

    def _symbol_for_ticker(self, ticker: str) -> str:
        symbol = f"{ticker.upper()}-USD-PERP"
        if symbol not in self._markets:
            raise ConfigurationError(f"Paradex has no perpetual market {symbol} (ticker {ticker!r})")
        return symbol

    def contract(self, contract_id: str) -> ContractInfo:
        info = self._markets.get(contract_id)
        if info is None:
            raise InvalidOrder(f"paradex: unknown market {contract_id!r}")
        return info

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        self.contract(contract_id)
        body = await self._rest.public("/markets/summary", {"market": contract_id})
        with rest_body("GET /markets/summary"):
            rows = [r for r in _results(body, "GET /markets/summary") if r.get("symbol") == contract_id]
            if not rows:
                raise InvalidVenueData("missing field", f"GET /markets/summary: no row for {contract_id}")
            rate = to_decimal(rows[0].get("funding_rate"), "funding_rate")
        return FundingRate(contract_id=contract_id, rate=rate, interval_hours=Decimal(8))

    # -- order hooks -------------------------------------------------------------------------

    async def _send_order(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> OrderReport:
        if time_in_force == "IOC":
            instruction = "IOC"
        else:
            instruction = "POST_ONLY" if order.post_only else "GTC"
        signer = self._auth.signer
        if signer is None:
            raise ExchangeError("paradex: not connected (call connect first)")

        async def signed_body() -> dict[str, Any]:
            return await asyncio.to_thread(
                signer.signed_order, order, instruction=instruction, reduce_only=reduce_only
            )

        body = await self._rest.private(
            "POST", "/orders", body=signed_body, idempotent=False, priority=priority
        )
        try:
            with rest_body("POST /orders"):
                report = order_report(body, self.clock.now())
        except InvalidVenueData as exc:
            # A 2xx answer we cannot read: the order most likely exists. Refusing it here would
            # tell the execution layer it was provably refused; as PENDING it is looked up.
            self._malformed.record(exc.kind, str(exc))
            report = OrderReport(
                client_order_id=order.client_order_id,
                order_id=None,
                contract_id=order.contract_id,
                side=order.side,
                order_type=order.order_type,
                size=order.size,
                price=order.price,
                status=OrderStatus.PENDING,
                post_only=order.post_only,
            )
        # NEW is "accepted, not yet in the book": the book's verdict (OPEN, or CLOSED with the
        # reason) comes on the orders channel; wait for it, bounded.
        self._apply(report)
        await self._orders.wait(
            order,
            lambda o: o.status is not OrderStatus.PENDING,
            float(self.params["order_ack_timeout"]),
            self.clock,
        )
        return report

    def _rejection(self, order: VenueOrder) -> ExchangeError:
        if order.venue_status == POST_ONLY_WOULD_CROSS:
            return PostOnlyRejected(
                f"paradex: post-only order {order.client_order_id} would have crossed the book"
            )
        return super()._rejection(order)

    async def _send_cancel(
        self, contract_id: str, venue_id: str | None, client_id: str | None
    ) -> OrderReport | None:
        if venue_id:
            path = f"/orders/{quote(venue_id, safe='')}"
        elif client_id:
            path = f"/orders/by_client_id/{quote(client_id, safe='')}"
        else:
            raise OrderNotFound(f"paradex: order on {contract_id} has no id to cancel by")
        await self._rest.private("DELETE", path, idempotent=False, priority=Priority.HIGH)
        # The venue queues the cancel; its CLOSED comes on the orders channel.
        tracked = self._orders.get(client_id or venue_id or "")
        if tracked is not None:
            await self._orders.wait(
                tracked, lambda o: o.status.is_final, float(self.params["order_ack_timeout"]), self.clock
            )
        return None

    # -- reading orders back -----------------------------------------------------------------

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        path = f"/orders/by_client_id/{quote(client_order_id, safe='')}"
        try:
            body = await self._rest.private("GET", path)
        except OrderNotFound:
            body = None
        if body is not None:
            with rest_body(f"GET {path}"):
                return self._info_of(order_report(body, self.clock.now()))
        params = {
            "client_id": client_order_id,
            "market": contract_id,
            "page_size": int(self.params["history_page_size"]),
        }
        history = await self._rest.private("GET", "/orders-history", params=params)
        with rest_body("GET /orders-history"):
            rows = [
                r
                for r in _results(history, "GET /orders-history")
                if isinstance(r, dict) and str(r.get("client_id") or "") == client_order_id
            ]
            if not rows:
                raise OrderNotFound(f"paradex: no order with client id {client_order_id} on {contract_id}")
            newest = max(rows, key=lambda r: opt_int(r.get("created_at")) or 0)
            return self._info_of(order_report(newest, self.clock.now()))

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        tracked = self._orders.get(order_id)
        if tracked is not None:
            return await self.find_order(contract_id, tracked.client_order_id)
        if self.client_ids.is_ours(order_id):
            return await self.find_order(contract_id, order_id)
        path = f"/orders/{quote(order_id, safe='')}"
        body = await self._rest.private("GET", path)
        with rest_body(f"GET {path}"):
            return self._info_of(order_report(body, self.clock.now()))

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        body = await self._rest.private("GET", "/orders", params={"market": contract_id})
        with rest_body("GET /orders"):
            return self._our_active(
                _results(body, "GET /orders"),
                lambda raw: str(raw.get("client_id") or ""),
                lambda raw: self._info_of(order_report(raw, self.clock.now())),
            )

    # -- positions and account ---------------------------------------------------------------

    async def _positions(self, symbol: str | None = None) -> list[Position]:
        body = await self._rest.private("GET", "/positions")
        with rest_body("GET /positions"):
            positions = [position_of(raw) for raw in _results(body, "GET /positions")]
        return [p for p in positions if symbol is None or p.contract_id == symbol]

    async def get_account_snapshot(self) -> AccountSnapshot:
        body = await self._rest.private("GET", "/account")
        with rest_body("GET /account"):
            balance = to_decimal(body["total_collateral"], "total_collateral")
            equity = to_decimal(body["account_value"], "account_value")
        positions = tuple(p for p in await self._positions() if p.size != 0)
        return AccountSnapshot(
            balance=balance, equity=equity, positions=positions, timestamp=self.clock.now()
        )

    # -- the stream --------------------------------------------------------------------------

    depth_continues = staticmethod(depth_continues)

    def _book_socket(self) -> ReconnectingWebSocket | None:
        return self._ws

    async def _subscribe_market(self, ws: ReconnectingWebSocket, symbol: str) -> None:
        for channel in (
            f"orders.{symbol}",
            f"fills.{symbol}",
            BOOK_CHANNEL.format(market=symbol),
            f"bbo.{symbol}",
        ):
            await ws.subscribe(channel, self._channel(channel))

    async def _depth_snapshot(self, symbol: str) -> tuple[Any, Any, int]:
        path = f"/orderbook/{quote(symbol, safe='')}"
        body = await self._rest.public(path, {"depth": 15})
        with rest_body(f"GET {path}"):
            sequence = opt_int(body.get("seq_no"))
            if sequence is None:
                raise InvalidVenueData("missing field", f"GET {path}: seq_no")
            return _levels(body.get("bids") or []), _levels(body.get("asks") or []), sequence

    def _on_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        try:
            if "error" in message:
                self._on_rpc_error(message["error"])
            elif message.get("method") == "subscription":
                params = message.get("params")
                if not isinstance(params, dict) or not isinstance(params.get("data"), dict):
                    raise InvalidVenueData("wrong type", "subscription without data")
                self._on_channel(str(params.get("channel") or ""), params["data"])
        except MalformedMessage as exc:
            self._malformed.record(getattr(exc, "kind", "malformed"), str(exc))

    def _on_channel(self, channel: str, data: dict[str, Any]) -> None:
        now = self.clock.now()
        if channel.startswith("order_book."):
            book = self._books.get(str(data.get("market") or ""))
            if book is not None:
                book.on_delta(data, data.get("last_updated_at"))
        elif channel.startswith("bbo."):
            book = self._books.get(str(data.get("market") or ""))
            if book is not None:
                bid = venue_validation.price(data.get("bid"), "bbo bid")
                ask = venue_validation.price(data.get("ask"), "bbo ask")
                book.on_ticker(bid, ask, data.get("last_updated_at"))
        elif channel.startswith("orders."):
            report = order_report(data, now)
            self._apply_stream(report if report.client_order_id else None, None)
        elif channel.startswith("fills."):
            self._apply_stream(None, trade_report(data, now))
        elif channel == "positions":
            position = position_of(data)
            self.stream_positions[position.contract_id] = position
        else:
            logger.debug("paradex-ws: ignoring channel %.60s", channel)

    def _on_rpc_error(self, error: Any) -> None:
        code = opt_int(error.get("code")) if isinstance(error, dict) else None
        message = str(error.get("message") or "")[:120] if isinstance(error, dict) else ""
        if code == WS_INVALID_TOKEN:
            logger.warning(
                "paradex-ws: the venue refused the JWT (%s); reconnecting with a fresh one", message
            )
            self._auth.invalidate(None)
            if self._ws is not None:
                self._tasks.spawn(self._ws.reconnect("JWT refused", immediate=True), "paradex-reauth")
        else:
            logger.warning("paradex-ws: venue error %s: %s", code, message)

    def __repr__(self) -> str:
        return f"ParadexClient({self.settings!r})"


__all__ = [
    "ParadexClient",
    "ParadexSettings",
    "depth_continues",
    "jwt_expiry",
    "map_error",
    "market_of",
    "order_report",
    "position_of",
    "trade_report",
]
