"""edgeX perpetuals client (contract API v2: ``{TICKER}USD`` contracts, USD collateral).

How it talks to the venue, and why:

* REST ``/api/v2/...`` over one aiohttp session of our own
  (:class:`~exchanges.connector_kit.HttpSession`). Private requests carry the four
  ``X-edgeX-*`` headers of edgex-python-sdk 2.x: an HMAC-SHA256 over
  ``timestamp + METHOD + path + body``, where the body is the SDK's sorted ``k=v&...`` rendering
  of the JSON body (or the sorted query of a GET) and the key is ``base64(api secret)``. The SDK's
  own ``build_hmac_headers`` and ``get_value`` make them, afresh for every attempt. Every answer is
  the envelope ``{"code": "SUCCESS", "data": ...}``; any other code is mapped by one function
  (:func:`map_error`) onto our taxonomy, a body we cannot read is InvalidVenueData naming the
  endpoint.
* Orders are signed EIP-712 (``LimitOrderParams``, domain ``EdgeX``/``1``, chain id and verifying
  contract from the metadata) with the trading private key, by the SDK's own order builder
  (``edgex_sdk.order.client.Client.create_order``) run against a capturing client that returns
  the body instead of sending it. The builder is synchronous in effect (eth-account signing is
  CPU work) so it runs in a worker thread: the event loop never waits on a signature.
* Two :class:`~helpers.reconnecting_websocket.ReconnectingWebSocket` connections, spoken by us
  (the SDK's WebSocketManager runs websocket-client threads): the public
  ``/api/v1/public/ws`` (``depth.{contractId}.15``: a local book from the snapshot plus deltas,
  continuity checked with ``startVersion``/``endVersion``; ``ticker.{contractId}`` best bid/ask
  while the book is rebuilt) and the private ``/api/v1/private/ws`` (authenticated in the
  handshake headers; ``trade-event`` messages carry ``order`` and ``orderFillTransaction`` lists,
  folded by the shared :class:`~exchanges.venue_orders.VenueOrders`, which also drops the
  duplicated FILLED events the venue is known to send). Public data arrives as ``quote-event``
  (live) or ``payload`` (the docs): both are read. The server's ``{"type":"ping"}`` is answered
  with a ``pong`` carrying the same time (5 unanswered pings end the connection).

Settings come from the environment (the bot loads the .env first), named as the SDK's own
examples and tests name them: EDGEX_ACCOUNT_ID, EDGEX_API_KEY, EDGEX_API_PASSPHRASE,
EDGEX_API_SECRET, EDGEX_TRADING_PRIVATE_KEY, optional EDGEX_BASE_URL / EDGEX_WS_URL (e.g. the
loopback mock, tests/mock_venues/edgex_venue.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

from edgex_sdk.internal.async_client import AsyncClient
from edgex_sdk.internal.auth import build_hmac_headers, get_value
from edgex_sdk.internal.eip712 import derive_address_from_private_key
from edgex_sdk.order.client import Client as SdkOrderClient
from edgex_sdk.order.types import CreateOrderParams
from edgex_sdk.order.types import OrderSide as SdkSide
from edgex_sdk.order.types import OrderType as SdkOrderType
from edgex_sdk.order.types import TimeInForce as SdkTimeInForce

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
    json_or_none,
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
from helpers import venue_validation
from helpers.clock import Clock
from helpers.rate_limiter import Priority, RetryPolicy
from helpers.reconnecting_websocket import ReconnectingWebSocket
from helpers.trading_config import TradingConfig
from helpers.venue_validation import InvalidVenueData, MalformedCounter

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://edgex-prod-v2.edgex.exchange"
DEFAULT_WS_URL = "wss://edgex-quote-prod-v2.edgex.exchange"
PUBLIC_WS_PATH = "/api/v1/public/ws"
PRIVATE_WS_PATH = "/api/v1/private/ws"

META_PATH = "/api/v2/public/meta/getMetaData"
DEPTH_PATH = "/api/v2/public/quote/getDepth"
TICKER_PATH = "/api/v2/public/quote/getTicker"
FUNDING_PATH = "/api/v2/public/funding/getLatestFundingRate"
ASSET_PATH = "/api/v2/private/account/getAccountAsset"
CREATE_PATH = "/api/v2/private/order/createOrder"
CANCEL_BY_ID_PATH = "/api/v2/private/order/cancelOrderById"
CANCEL_BY_CLIENT_ID_PATH = "/api/v2/private/order/cancelOrderByClientOrderId"
ACTIVE_PAGE_PATH = "/api/v2/private/order/getActiveOrderPage"
BY_ID_PATH = "/api/v2/private/order/getOrderById"
BY_CLIENT_ID_PATH = "/api/v2/private/order/getOrderByClientOrderId"
HISTORY_BY_CLIENT_ID_PATH = "/api/v2/private/order/getHistoryOrderByClientOrderId"
HISTORY_BY_ID_PATH = "/api/v2/private/order/getHistoryOrderById"

#: The header prefix of edgeX's private REST and WebSocket authentication.
HEADER_KEY = "edgeX"


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgexSettings:
    """Connection settings; secrets are excluded from repr so they never reach a log."""

    account_id: int
    api_key: str
    api_passphrase: str = field(repr=False)
    api_secret: str = field(repr=False)
    trading_private_key: str = field(repr=False)
    base_url: str
    ws_url: str

    @classmethod
    def load(cls, env: Mapping[str, str], params: Mapping[str, Any]) -> EdgexSettings:
        """Read and validate; every problem is a one-line ConfigurationError naming the variable
        (never its value: a key pasted into the wrong variable would reach the console)."""
        account = required_setting(env, "EDGEX_ACCOUNT_ID")
        api_key = required_setting(env, "EDGEX_API_KEY")
        passphrase = required_setting(env, "EDGEX_API_PASSPHRASE")
        secret = required_setting(env, "EDGEX_API_SECRET")
        key = required_setting(env, "EDGEX_TRADING_PRIVATE_KEY")
        if not account.isdigit() or not 0 < int(account) < 2**63:
            raise ConfigurationError("EDGEX_ACCOUNT_ID must be your numeric edgeX account id")
        digits = key[2:] if key.lower().startswith("0x") else key
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ConfigurationError("EDGEX_TRADING_PRIVATE_KEY is not a 32-byte hex private key")
        base_url, ws_url = venue_urls(env, params, "EDGEX", (DEFAULT_BASE_URL, DEFAULT_WS_URL))
        return cls(
            account_id=int(account),
            api_key=api_key,
            api_passphrase=passphrase,
            api_secret=secret,
            trading_private_key="0x" + digits,
            base_url=base_url,
            ws_url=ws_url,
        )


# ---------------------------------------------------------------------------------------------
# Signing: the SDK's HMAC headers and its EIP-712 order builder
# ---------------------------------------------------------------------------------------------


def hmac_headers(
    settings: EdgexSettings, method: str, path: str, signed_body: str, stamp_ms: int
) -> dict[str, str]:
    """The four X-edgeX-* headers of one private request (``signed_body``: see :func:`body_text`)."""
    return build_hmac_headers(
        api_key=settings.api_key,
        api_passphrase=settings.api_passphrase,
        api_secret=settings.api_secret,
        timestamp=str(stamp_ms),
        method=method,
        request_uri=path,
        body=signed_body,
        header_key=HEADER_KEY,
    )


def body_text(method: str, params: Mapping[str, Any] | None, data: Mapping[str, Any] | None) -> str:
    """What the HMAC covers besides time, method and path: a GET's query sorted by key as
    ``k=v&...``; any other request's JSON body in the SDK's sorted rendering."""
    if method == "GET":
        return "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
    return get_value(dict(data)) if data else ""


class _CapturingClient(AsyncClient):
    """The SDK's client with the network taken out: a "request" returns what would be sent."""

    async def make_authenticated_request(
        self,
        method: str,
        path: str,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        rewrite_version: bool = True,
    ) -> dict[str, Any]:
        return {"method": method, "path": path, "data": data, "params": params}


def _run_to_completion(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (the SDK's builder over the capturing client)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the SDK's order builder tried to wait on I/O")


@dataclass(frozen=True)
class OrderSpec:
    """One limit order as the venue is asked for it (market orders are IOC limits)."""

    contract_id: str
    side: OrderSide
    size: str
    price: str
    time_in_force: str  # GOOD_TIL_CANCEL, POST_ONLY or IMMEDIATE_OR_CANCEL
    client_order_id: str
    reduce_only: bool = False


class OrderSigner:
    """Builds and EIP-712-signs createOrder bodies with the SDK, off the event loop."""

    def __init__(self, settings: EdgexSettings) -> None:
        self._sdk = SdkOrderClient(
            _CapturingClient(
                base_url=settings.base_url,
                account_id=settings.account_id,
                trading_private_key=settings.trading_private_key,
            )
        )
        self.address: str | None = None
        self._key = settings.trading_private_key

    def signer_address(self) -> str:
        """The trading key's address (derived once; CPU work, so call it from a thread)."""
        if self.address is None:
            self.address = derive_address_from_private_key(self._key)
            self._sdk.async_client.trading_address = self.address
        return self.address

    def build(self, spec: OrderSpec, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """The signed body (blocking: run it with ``asyncio.to_thread``)."""
        self.signer_address()
        params = CreateOrderParams(
            contract_id=spec.contract_id,
            price=spec.price,
            size=spec.size,
            type=SdkOrderType.LIMIT,
            side=SdkSide.BUY if spec.side is OrderSide.BUY else SdkSide.SELL,
            time_in_force=SdkTimeInForce(spec.time_in_force),
            client_order_id=spec.client_order_id,
            reduce_only=spec.reduce_only,
        )
        try:
            request = _run_to_completion(self._sdk.create_order(params, dict(metadata), Decimal(spec.price)))
        except (ValueError, ArithmeticError) as exc:
            # The SDK raises ValueError for metadata it cannot sign with (no chain id, no
            # resolution): the venue's metadata is not what contract API v2 publishes.
            raise InvalidVenueData("unusable metadata", f"{META_PATH}: {exc}") from None
        return dict(request["data"])

    async def build_async(self, spec: OrderSpec, metadata: Mapping[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.build, spec, metadata)


# ---------------------------------------------------------------------------------------------
# Errors: the envelope's code onto our taxonomy
# ---------------------------------------------------------------------------------------------


def map_error(code: str, message: str, http_status: int, what: str) -> ExchangeError:
    """The typed error for a non-SUCCESS envelope (or a bare HTTP status).

    edgeX publishes no table of its error codes; they are upper-case words (the docs show
    ``INVALID_CONTRACT_ID``), so the words decide, and the HTTP status where there are none.
    """
    text = f"edgex {what}: {code or 'HTTP ' + str(http_status)} {message}".strip()
    words = f"{code} {message}".upper()
    if http_status == 429 or "RATE_LIMIT" in words or "TOO_MANY" in words:
        return RateLimitExceeded(text)
    if "POST_ONLY" in words:
        return PostOnlyRejected(text)
    if "SIGNATURE" in words or "API_KEY" in words or "PASSPHRASE" in words or http_status in (401, 403):
        return AuthenticationError(text)
    if "TIMESTAMP" in words or "EXPIRED_REQUEST" in words:
        return InvalidNonce(text)
    if "NOT_FOUND" in words or "NOT_EXIST" in words or http_status == 404:
        return OrderNotFound(text)
    if "MIN_ORDER" in words or "LESS_THAN_MIN" in words or "TOO_SMALL" in words:
        return OrderBelowMinimum(text)
    if "BALANCE" in words or "MARGIN" in words or "INSUFFICIENT" in words:
        return InsufficientFunds(text)
    if http_status >= 500 or "MAINTENANCE" in words or "SYSTEM_BUSY" in words:
        return ExchangeUnavailable(text)
    if "ORDER" in words or "PRICE" in words or "SIZE" in words or "CONTRACT" in words:
        return InvalidOrder(text)
    return ExchangeError(text)


def envelope_data(body: Any, what: str) -> Any:
    """The ``data`` of a SUCCESS envelope; the mapped error otherwise."""
    if not isinstance(body, Mapping):
        raise InvalidVenueData("malformed body", f"{what}: not a JSON object")
    code = body.get("code")
    if code == "SUCCESS":
        return body.get("data")
    if not isinstance(code, str) or not code:
        raise InvalidVenueData("malformed body", f"{what}: no code")
    message = body.get("msg")
    raise map_error(code, message if isinstance(message, str) else "", 200, what)


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgexContract:
    contract_id: str
    name: str
    base: str
    tick_size: Decimal
    step_size: Decimal
    min_size: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    funding_interval_hours: Decimal


def contracts_from_metadata(data: Any) -> dict[str, EdgexContract]:
    """Every tradable contract of getMetaData's ``data``, by contract id."""
    with venue_validation.rest_body(META_PATH):
        if not isinstance(data["coinList"], list) or not isinstance(data["contractList"], list):
            raise InvalidVenueData("malformed body", f"{META_PATH}: coinList/contractList are not lists")
        coins = {
            str(c["coinId"]): str(c.get("coinName") or "") for c in data["coinList"] if isinstance(c, dict)
        }
        result: dict[str, EdgexContract] = {}
        for raw in data["contractList"]:
            if not isinstance(raw, dict) or raw.get("enableTrade") is False:
                continue
            contract_id = str(raw["contractId"])
            interval = venue_validation.venue_decimal(
                raw.get("fundingRateIntervalMin") or "480", "fundingRateIntervalMin", positive=True
            )
            result[contract_id] = EdgexContract(
                contract_id=contract_id,
                name=str(raw.get("contractName") or ""),
                base=(
                    coins.get(str(raw.get("baseCoinId"))) or _base_of(str(raw.get("contractName") or ""))
                ).upper(),
                tick_size=venue_validation.price(raw.get("tickSize"), "tickSize"),
                step_size=venue_validation.price(raw.get("stepSize"), "stepSize"),
                min_size=venue_validation.size(raw.get("minOrderSize") or "0", "minOrderSize"),
                maker_fee=venue_validation.size(raw.get("defaultMakerFeeRate") or "0", "defaultMakerFeeRate"),
                taker_fee=venue_validation.size(raw.get("defaultTakerFeeRate") or "0", "defaultTakerFeeRate"),
                funding_interval_hours=interval / 60,
            )
        return result


def _base_of(name: str) -> str:
    """The base asset of a contract name (a coin the metadata's coinList does not list)."""
    for quote in ("USDT", "USD"):
        if name.upper().endswith(quote):
            return name[: -len(quote)]
    return name


def contract_for_ticker(contracts: Mapping[str, EdgexContract], ticker: str) -> EdgexContract:
    """``{TICKER}USD`` (the mainnet names); ``{TICKER}USDT`` as testnet listed them in 2024."""
    wanted = ticker.upper()
    by_name = {c.name.upper(): c for c in contracts.values()}
    for name in (f"{wanted}USD", f"{wanted}USDT", wanted):
        if name in by_name:
            return by_name[name]
    raise ConfigurationError(f"edgeX has no contract for ticker {ticker!r} (looked for {wanted}USD)")


# ---------------------------------------------------------------------------------------------
# Orders and fills -> the shared report vocabulary
# ---------------------------------------------------------------------------------------------

STATUS_TABLE: dict[str, OrderStatus] = {
    "PENDING": OrderStatus.PENDING,
    "OPEN": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "CANCELING": OrderStatus.OPEN,  # still resting until the venue says CANCELED
    "CANCELED": OrderStatus.CANCELLED,
    "UNTRIGGERED": OrderStatus.PENDING,
}

#: Cancel reasons (edgeX's CancelReason enum) that mean the venue refused to rest a post-only
#: order that would have taken; with REDUCE_ONLY_CANCELED and no fill they make a refusal
#: (REJECTED) of an order that never rested.
POST_ONLY_REASONS = frozenset({"COULD_NOT_FILL", "POST_ONLY_CANCELED", "POST_ONLY_WOULD_TAKE"})


def _side(raw: Any) -> OrderSide:
    if raw == "BUY":
        return OrderSide.BUY
    if raw == "SELL":
        return OrderSide.SELL
    raise InvalidVenueData("bad field", f"order side {str(raw)[:20]!r}")


def order_report(raw: Mapping[str, Any], now: float) -> OrderReport | None:
    """An order object (REST pages and look-ups, the private stream) as an OrderReport; None
    for an order without a client id (placed by hand on the website)."""
    client_id = str(raw.get("clientOrderId") or "")
    if not client_id:
        return None
    venue_status = str(raw.get("status") or "")
    filled = venue_validation.size(raw.get("cumFillSize") or "0", "cumFillSize")
    status = STATUS_TABLE.get(venue_status, OrderStatus.UNKNOWN)
    time_in_force = str(raw.get("timeInForce") or "")
    reason = str(raw.get("cancelReason") or "")
    if status is OrderStatus.CANCELLED and filled == 0:
        if reason == "EXPIRE_CANCELED":
            status = OrderStatus.EXPIRED
        elif time_in_force == "POST_ONLY" and reason in POST_ONLY_REASONS:
            status = OrderStatus.REJECTED
        elif reason == "REDUCE_ONLY_CANCELED":
            status = OrderStatus.REJECTED
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    is_market = raw.get("type") == "MARKET" or time_in_force in ("IMMEDIATE_OR_CANCEL", "FILL_OR_KILL")
    fee = raw.get("cumFillFee")
    return OrderReport(
        client_order_id=client_id,
        order_id=str(raw.get("id") or "") or None,
        contract_id=str(raw.get("contractId") or ""),
        side=_side(raw.get("side")),
        order_type=OrderType.MARKET if is_market else OrderType.LIMIT,
        size=venue_validation.price(raw.get("size"), "size"),
        price=venue_validation.size(raw.get("price") or "0", "price"),
        status=status,
        venue_status=f"{venue_status}/{reason}" if reason and status.is_final else venue_status,
        filled_size=filled,
        filled_quote=venue_validation.size(raw.get("cumFillValue") or "0", "cumFillValue"),
        filled_fee=to_decimal(fee, "cumFillFee") if fee not in (None, "") else None,
        timestamp=timestamp_seconds(raw.get("updatedTime") or raw.get("createdTime"), now),
        post_only=time_in_force == "POST_ONLY",
    )


def trade_report(raw: Mapping[str, Any], now: float) -> TradeReport:
    """One ``orderFillTransaction`` (our execution) as a TradeReport, keyed by its id."""
    trade_id = str(raw.get("id") or raw.get("matchFillId") or "")
    order_id = str(raw.get("orderId") or "")
    if not trade_id or not order_id:
        raise InvalidVenueData("missing field", "orderFillTransaction id/orderId")
    fee = raw.get("fillFee")
    direction = raw.get("direction")
    return TradeReport(
        trade_id=trade_id,
        client_order_id=None,
        order_id=order_id,
        size=venue_validation.size(raw.get("fillSize"), "fillSize"),
        price=venue_validation.price(raw.get("fillPrice"), "fillPrice"),
        fee=to_decimal(fee, "fillFee") if fee not in (None, "") else None,
        is_maker=True if direction == "MAKER" else False if direction == "TAKER" else None,
        timestamp=timestamp_seconds(raw.get("matchTime") or raw.get("createdTime"), now),
    )


def order_list(data: Any, what: str) -> list[Mapping[str, Any]]:
    """The orders of a look-up (a list) or a page (``dataList``)."""
    with venue_validation.rest_body(what):
        rows = data["dataList"] if isinstance(data, Mapping) else data
        if rows is None:
            return []
        if not isinstance(rows, list):
            raise InvalidVenueData("malformed body", f"{what}: orders are not a list")
        return [row for row in rows if isinstance(row, Mapping)]


def next_page(data: Any) -> str:
    """The cursor of the next page ('' when this was the last)."""
    cursor = data.get("nextPageOffsetData") if isinstance(data, Mapping) else None
    return str(cursor) if cursor else ""


# ---------------------------------------------------------------------------------------------
# Account
# ---------------------------------------------------------------------------------------------


def positions_from_asset(data: Any) -> list[Position]:
    """getAccountAsset's ``positionList`` joined with ``positionAssetList`` (entry price,
    unrealized PnL, liquidation price); ``openSize`` is signed."""
    with venue_validation.rest_body(ASSET_PATH):
        assets = {
            str(a["contractId"]): a for a in data.get("positionAssetList") or [] if isinstance(a, Mapping)
        }
        result = []
        for raw in data.get("positionList") or []:
            if not isinstance(raw, Mapping):
                continue
            contract_id = str(raw["contractId"])
            size = to_decimal(raw.get("openSize") or "0", "openSize")
            value = to_decimal(raw.get("openValue") or "0", "openValue")
            asset = assets.get(contract_id, {})
            entry = asset.get("avgEntryPrice")
            entry_price = (
                venue_validation.size(entry, "avgEntryPrice")
                if entry not in (None, "")
                else abs(value / size)
                if size
                else Decimal(0)
            )
            result.append(
                Position(
                    contract_id=contract_id,
                    size=size,
                    entry_price=entry_price,
                    unrealized_pnl=to_decimal(asset.get("unrealizePnl") or "0", "unrealizePnl"),
                    realized_pnl=to_decimal(asset.get("totalRealizePnl") or "0", "totalRealizePnl"),
                    liquidation_price=optional_price(asset.get("liquidatePrice"), "liquidatePrice"),
                )
            )
        return result


def account_snapshot(data: Any, now: float) -> AccountSnapshot:
    """Equity from ``collateralAssetModelList`` (totalEquity); balance is equity without the
    open positions' unrealized PnL; fees and funding from the collateral's running totals
    (negative there when paid, positive here)."""
    with venue_validation.rest_body(ASSET_PATH):
        models = [m for m in data["collateralAssetModelList"] if isinstance(m, Mapping)]
        if not models:
            raise InvalidVenueData("malformed body", f"{ASSET_PATH}: no collateral")
        equity = to_decimal(models[0]["totalEquity"], "totalEquity")
        positions = tuple(p for p in positions_from_asset(data) if p.size != 0)
        unrealized = sum((p.unrealized_pnl for p in positions), Decimal(0))
        collateral = [c for c in data.get("collateralList") or [] if isinstance(c, Mapping)]
        fees = funding = Decimal(0)
        if collateral:
            fees = -to_decimal(collateral[0].get("cumFillFeeAmount") or "0", "cumFillFeeAmount")
            funding = -to_decimal(collateral[0].get("cumFundingFeeAmount") or "0", "cumFundingFeeAmount")
        return AccountSnapshot(
            balance=equity - unrealized,
            equity=equity,
            positions=positions,
            realized_pnl=sum((p.realized_pnl for p in positions), Decimal(0)),
            fees_paid=fees,
            funding_paid=funding,
            timestamp=now,
        )


def funding_rate(data: Any, contract: EdgexContract) -> FundingRate:
    """getLatestFundingRate's entry for the contract: the rate per ``fundingRateIntervalMin``."""
    with venue_validation.rest_body(FUNDING_PATH):
        rows = data if isinstance(data, list) else [data]
        for row in rows:
            if isinstance(row, Mapping) and str(row.get("contractId")) == contract.contract_id:
                minutes = row.get("fundingRateIntervalMin")
                hours = (
                    venue_validation.venue_decimal(minutes, "fundingRateIntervalMin", positive=True) / 60
                    if minutes not in (None, "")
                    else contract.funding_interval_hours
                )
                last = timestamp_seconds(row.get("fundingTime"), 0.0)
                return FundingRate(
                    contract_id=contract.contract_id,
                    rate=to_decimal(row.get("fundingRate"), "fundingRate"),
                    interval_hours=hours,
                    next_funding_time=last + float(hours) * 3600 if last else None,
                )
        raise InvalidVenueData("missing field", f"{FUNDING_PATH}: no rate for {contract.contract_id}")


# ---------------------------------------------------------------------------------------------
# Market data
# ---------------------------------------------------------------------------------------------

#: Envelope types that carry public market data: ``quote-event`` live, ``payload`` in the docs.
QUOTE_TYPES = frozenset({"quote-event", "payload"})


def levels(raw: Any, what: str) -> list[tuple[Any, Any]]:
    """Book levels as (price, size) pairs, from ``{"price", "size"}`` objects (REST) or
    ``[price, size]`` arrays (the WebSocket docs)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidVenueData("wrong type", f"{what} levels are not a list")
    pairs = []
    for level in raw:
        if isinstance(level, Mapping):
            pairs.append((level.get("price"), level.get("size")))
        elif isinstance(level, list | tuple) and len(level) >= 2:
            pairs.append((level[0], level[1]))
        else:
            raise InvalidVenueData("wrong type", f"{what} level {str(level)[:40]!r}")
    return pairs


def depth_entry(
    raw: Mapping[str, Any],
) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]], int | None, int | None, bool]:
    """(bids, asks, startVersion, endVersion, is_snapshot) of one depth entry."""

    def version(value: Any) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    kind = str(raw.get("depthType") or "").upper()
    return (
        levels(raw.get("bids"), "bid"),
        levels(raw.get("asks"), "ask"),
        version(raw.get("startVersion")),
        version(raw.get("endVersion")),
        kind == "SNAPSHOT",
    )


def ticker_top(raw: Mapping[str, Any]) -> tuple[Decimal, Decimal] | None:
    """Best bid and ask of a ticker entry; None when the venue shows none ("0", as live for
    contracts without a book)."""
    bid, ask = raw.get("bestBidPrice"), raw.get("bestAskPrice")
    if bid in (None, "") or ask in (None, ""):
        return None
    best_bid = venue_validation.size(bid, "bestBidPrice")
    best_ask = venue_validation.size(ask, "bestAskPrice")
    return (best_bid, best_ask) if 0 < best_bid < best_ask else None


def as_rows(value: Any) -> list[Mapping[str, Any]]:
    return [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []


def now_ms() -> int:
    """Wall-clock milliseconds: what the venue checks request stamps against (never the bot's
    possibly simulated clock)."""
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
# REST: our session, the SDK's headers
# ---------------------------------------------------------------------------------------------


class EdgexRest:
    """Public and private requests with one envelope check, limiter and retry policy."""

    def __init__(self, settings: EdgexSettings, *, timeout: float, retry: RetryPolicy) -> None:
        self.settings = settings
        self.retry = retry
        self.http = HttpSession("edgex", timeout)

    async def public(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.retry.call(lambda: self._send("GET", path, params=params))

    async def private(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        priority: Priority = Priority.NORMAL,
    ) -> Any:
        query = {k: str(v) for k, v in (params or {}).items()}
        signed = body_text(method, query, data)
        body = json.dumps(data, separators=(",", ":")) if data is not None else None

        async def attempt() -> Any:
            headers = hmac_headers(self.settings, method, path, signed, now_ms())
            headers["Content-Type"] = "application/json"
            return await self._send(method, path, params=query, data=body, headers=headers)

        return await self.retry.call(attempt, idempotent=idempotent, priority=priority)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        what = f"{method} {path}"
        status, text, retry_after = await self.http.request(
            method, self.settings.base_url + path, params=params, data=data, headers=headers, what=what
        )
        body = json_or_none(text)
        if status >= 400:
            code = str(body.get("code") or "") if isinstance(body, dict) else ""
            message = str(body.get("msg") or "") if isinstance(body, dict) else ""
            raise with_retry_after(map_error(code, message[:200], status, what), retry_after)
        if body is None:
            raise InvalidVenueData("malformed body", f"{what}: answer is not JSON")
        return envelope_data(body, what)


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


class EdgexClient(StreamingVenueClient):
    """edgeX contract API v2: SDK signing, our REST session, our two reconnecting streams."""

    name = "edgex"
    PARAMS: ClassVar[dict[str, Any]] = {**COMMON_PARAMS, "active_page_size": 100, "active_max_pages": 20}

    def __init__(self, config: TradingConfig, clock: Clock, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(config, clock)
        self.settings: EdgexSettings = self._load_settings(EdgexSettings, env)
        self._rest = EdgexRest(self.settings, timeout=float(self.params["rest_timeout"]), retry=self.retry)
        self._http = self._rest.http
        self._signer = OrderSigner(self.settings)
        self._metadata: dict[str, Any] = {}
        self._markets: dict[str, EdgexContract] = {}
        self._public_ws: ReconnectingWebSocket | None = None
        self._private_ws: ReconnectingWebSocket | None = None
        self._private_stamp = 0
        self._private_connected_once = False
        self.malformed = MalformedCounter("edgex-ws", clock.now)

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> None:
        await self._load_markets()
        contract_id = self._symbol_for_ticker(self.config.ticker)
        await asyncio.to_thread(self._signer.signer_address)
        # A signed read proves the keys before the bot trades (a bad key fails here, typed,
        # instead of as a private stream that never connects).
        await self._asset()
        self._public_ws = self._make_socket(
            lambda: f"{self.settings.ws_url}{PUBLIC_WS_PATH}?timestamp={now_ms()}",
            self._on_public_message,
            "edgex-public-ws",
            self._on_public_connect,
            self._stream_disconnected,
        )
        self._private_ws = self._make_socket(
            self._private_url,
            self._on_private_message,
            "edgex-private-ws",
            self._on_private_connect,
            headers=self._private_headers,
        )
        await self._ensure_streams(contract_id)
        self._public_ws.start()
        self._private_ws.start()
        await self._wait_connected(self._public_ws, PUBLIC_WS_PATH)
        await self._wait_connected(self._private_ws, PRIVATE_WS_PATH)

    async def _close(self) -> None:
        for ws in (self._public_ws, self._private_ws):
            if ws is not None:
                await ws.close()
        self._public_ws = self._private_ws = None

    def _account(self, **extra: Any) -> dict[str, Any]:
        return {"accountId": str(self.settings.account_id), **extra}

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        data = await self._rest.public(META_PATH)
        self._markets = contracts_from_metadata(data)
        self._metadata = dict(data)
        mine = next((c for c in self._markets.values() if c.base == self.config.ticker.upper()), None)
        if mine is not None:
            # The venue's own rates make the estimates of fees it did not report.
            self._fees = (mine.maker_fee, mine.taker_fee)

    def _symbol_for_ticker(self, ticker: str) -> str:
        return contract_for_ticker(self._markets, ticker).contract_id

    def _contract(self, contract_id: str) -> EdgexContract:
        contract = self._markets.get(contract_id)
        if contract is None:
            raise InvalidOrder(f"edgex: unknown contract {contract_id!r}")
        return contract

    def contract(self, contract_id: str) -> ContractInfo:
        c = self._contract(contract_id)
        return ContractInfo(
            ticker=c.base,
            contract_id=c.contract_id,
            tick_size=c.tick_size,
            size_step=c.step_size,
            min_size=c.min_size,
        )

    async def get_funding_rate(self, contract_id: str) -> FundingRate:
        contract = self._contract(contract_id)
        data = await self._rest.public(FUNDING_PATH, {"contractId": contract_id})
        return funding_rate(data, contract)

    # -- order hooks -------------------------------------------------------------------------

    def _rejection(self, order: VenueOrder) -> ExchangeError:
        if order.post_only:
            return PostOnlyRejected(
                f"edgex: post-only order {order.client_order_id} would have taken liquidity"
            )
        return InvalidOrder(f"edgex: order {order.client_order_id} refused ({order.venue_status})")

    async def _send_order(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> OrderReport:
        if order.post_only:
            venue_tif = "POST_ONLY"
        elif time_in_force == "IOC":
            venue_tif = "IMMEDIATE_OR_CANCEL"
        else:
            venue_tif = "GOOD_TIL_CANCEL"
        spec = OrderSpec(
            contract_id=order.contract_id,
            side=order.side,
            size=plain(order.size),
            price=plain(order.price),
            time_in_force=venue_tif,
            client_order_id=order.client_order_id,
            reduce_only=reduce_only,
        )
        body = await self._signer.build_async(spec, self._metadata)
        data = await self._rest.private("POST", CREATE_PATH, data=body, idempotent=False, priority=priority)
        with venue_validation.rest_body(CREATE_PATH):
            order_id = str(data["orderId"])
        report = OrderReport(
            client_order_id=order.client_order_id,
            order_id=order_id,
            contract_id=order.contract_id,
            side=order.side,
            order_type=order.order_type,
            size=order.size,
            price=order.price,
            status=OrderStatus.PENDING,
            timestamp=self.clock.now(),
            post_only=order.post_only,
        )
        self._apply(report)
        # The answer is only the order id: the stream says whether it rests, traded or was
        # refused (a crossing post-only order comes back CANCELED). Wait a bounded moment for it.
        await self._orders.wait(
            order,
            lambda o: o.status is not OrderStatus.PENDING,
            float(self.params["order_ack_timeout"]),
            self.clock,
        )
        return report

    async def _send_cancel(
        self, contract_id: str, venue_id: str | None, client_id: str | None
    ) -> OrderReport | None:
        if venue_id:
            path, field_name, key = CANCEL_BY_ID_PATH, "orderIdList", venue_id
        elif client_id:
            path, field_name, key = CANCEL_BY_CLIENT_ID_PATH, "clientOrderIdList", client_id
        else:
            raise OrderNotFound(f"edgex: order on {contract_id} has no id to cancel by")
        data = await self._rest.private(
            "POST", path, data=self._account(**{field_name: [key]}), idempotent=False, priority=Priority.HIGH
        )
        with venue_validation.rest_body(path):
            results = data["cancelResultMap"]
            outcome = str(results.get(key) or "") if isinstance(results, Mapping) else ""
        if outcome != "SUCCESS":
            raise map_error(outcome or "ORDER_NOT_FOUND", "", 200, f"cancel {key}")
        tracked = self._orders.get(key)
        if tracked is None:
            return None
        done = await self._orders.wait(
            tracked, lambda o: o.status.is_final, float(self.params["order_ack_timeout"]), self.clock
        )
        if done or tracked.order_id is None:
            return None
        # The stream did not tell in time: read the order back.
        return await self._lookup(BY_ID_PATH, orderIdList=tracked.order_id)

    # -- reading orders back -----------------------------------------------------------------

    def _report_of(self, raw: Mapping[str, Any], what: str) -> OrderReport:
        """One order object of the answer of ``what`` (its endpoint named if it is malformed)."""
        with venue_validation.rest_body(what):
            report = order_report(raw, self.clock.now())
        if report is None:
            raise InvalidVenueData("missing field", f"{what}: order {raw.get('id')} has no clientOrderId")
        return report

    async def _lookup(self, path: str, **params: str) -> OrderReport | None:
        rows = order_list(await self._rest.private("GET", path, params=self._account(**params)), path)
        return self._report_of(rows[0], path) if rows else None

    async def find_order(self, contract_id: str, client_order_id: str) -> OrderInfo:
        report = await self._lookup(BY_CLIENT_ID_PATH, clientOrderIdList=client_order_id)
        if report is None:
            report = await self._lookup(HISTORY_BY_CLIENT_ID_PATH, clientOrderIdList=client_order_id)
        if report is None:
            raise OrderNotFound(f"edgex: no order with clientOrderId {client_order_id} (active or finished)")
        return self._info_of(report)

    async def get_order_info(self, contract_id: str, order_id: str) -> OrderInfo:
        tracked = self._orders.get(order_id)
        if tracked is not None and tracked.order_id is None:
            return await self.find_order(contract_id, tracked.client_order_id)
        venue_id = tracked.order_id if tracked is not None and tracked.order_id else order_id
        report = await self._lookup(BY_ID_PATH, orderIdList=venue_id)
        if report is None:
            report = await self._lookup(HISTORY_BY_ID_PATH, orderIdList=venue_id)
        if report is None:
            raise OrderNotFound(f"edgex: order {order_id} not found")
        return self._info_of(report)

    async def get_active_orders(self, contract_id: str) -> list[OrderInfo]:
        """Every page of the active orders (the venue pages by cursor), ours only."""
        result: list[OrderInfo] = []
        cursor = ""
        for _page in range(int(self.params["active_max_pages"])):
            params = self._account(
                size=str(self.params["active_page_size"]), filterContractIdList=contract_id
            )
            if cursor:
                params["offsetData"] = cursor
            data = await self._rest.private("GET", ACTIVE_PAGE_PATH, params=params)
            rows = [dict(row) for row in order_list(data, ACTIVE_PAGE_PATH)]
            result += self._our_active(
                rows,
                lambda raw: str(raw.get("clientOrderId") or ""),
                lambda raw: self._info_of(self._report_of(raw, ACTIVE_PAGE_PATH)),
            )
            cursor = next_page(data)
            if not cursor:
                return result
        raise ExchangeError(
            f"edgex: more than {self.params['active_max_pages']} pages of active orders; not all were read"
        )

    # -- positions and account ---------------------------------------------------------------

    async def _asset(self) -> Any:
        return await self._rest.private("GET", ASSET_PATH, params=self._account())

    async def _positions(self, symbol: str | None = None) -> list[Position]:
        return positions_from_asset(await self._asset())

    async def get_account_snapshot(self) -> AccountSnapshot:
        return account_snapshot(await self._asset(), self.clock.now())

    # -- public stream -----------------------------------------------------------------------

    def _book_socket(self) -> ReconnectingWebSocket | None:
        return self._public_ws

    async def _subscribe_market(self, ws: ReconnectingWebSocket, contract_id: str) -> None:
        for channel in (f"depth.{contract_id}.15", f"ticker.{contract_id}"):
            await ws.subscribe(channel, {"type": "subscribe", "channel": channel})

    async def _depth_snapshot(self, contract_id: str) -> tuple[Any, Any, int]:
        data = await self._rest.public(DEPTH_PATH, {"contractId": contract_id, "level": "15"})
        with venue_validation.rest_body(DEPTH_PATH):
            bids, asks, _start, end, _snapshot = depth_entry(data[0])
        if end is None:
            raise InvalidVenueData("missing field", f"{DEPTH_PATH}: endVersion")
        return bids, asks, end

    async def _on_public_connect(self) -> None:
        self._stream_connected(reconcile=False)  # our orders travel on the private stream

    async def _pong(self, ws: ReconnectingWebSocket | None, message: Mapping[str, Any]) -> None:
        if ws is not None:
            try:
                await ws.send({"type": "pong", "time": str(message.get("time") or "")})
            except ConnectionError:
                pass

    async def _on_public_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            self.malformed.record("not an object", str(message)[:40])
            return
        kind = message.get("type")
        if kind == "ping":
            await self._pong(self._public_ws, message)
        elif kind in QUOTE_TYPES:
            try:
                self._on_quote(message)
            except MalformedMessage as exc:
                self.malformed.record(getattr(exc, "kind", "malformed"), str(exc))
        elif kind == "error":
            logger.warning("edgex-public-ws: venue error: %.200s", message.get("content"))

    def _on_quote(self, message: Mapping[str, Any]) -> None:
        channel = str(message.get("channel") or "")
        content = message.get("content")
        if not isinstance(content, Mapping):
            raise InvalidVenueData("malformed frame", f"{channel}: no content")
        rows = as_rows(content.get("data"))
        if channel.startswith("depth."):
            book = self._books.get(channel.split(".")[1])
            if book is None:
                return
            for row in rows:
                try:
                    depth_entry(row)  # checked whole before the book sees any of it
                except MalformedMessage:
                    book.restart()
                    raise
                book.on_delta(row)
        elif channel.startswith("ticker."):
            for row in rows:
                book = self._books.get(str(row.get("contractId") or ""))
                top = ticker_top(row)
                if book is not None and top is not None:
                    book.on_ticker(*top)

    # -- private stream ----------------------------------------------------------------------

    def _private_url(self) -> str:
        self._private_stamp = now_ms()
        query = urlencode({"accountId": self.settings.account_id, "timestamp": self._private_stamp})
        return f"{self.settings.ws_url}{PRIVATE_WS_PATH}?{query}"

    def _private_headers(self) -> dict[str, str]:
        """The handshake is a signed GET of the private path over ``accountId=...&timestamp=...``
        (the same stamp as the URL, which is built first)."""
        signed = f"accountId={self.settings.account_id}&timestamp={self._private_stamp}"
        return hmac_headers(self.settings, "GET", PRIVATE_WS_PATH, signed, self._private_stamp)

    async def _on_private_connect(self) -> None:
        if self._private_connected_once:
            self._tasks.spawn(self._reconcile_orders(), "edgex-reconcile")
            self._emit_reconnected()
        self._private_connected_once = True

    async def _on_private_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            self.malformed.record("not an object", str(message)[:40])
            return
        kind = message.get("type")
        if kind == "ping":
            await self._pong(self._private_ws, message)
        elif kind == "trade-event":
            content = message.get("content")
            data = content.get("data") if isinstance(content, Mapping) else None
            if not isinstance(data, Mapping):
                self.malformed.record("malformed frame", "trade-event without data")
                return
            self._on_trade_event(data)
        elif kind == "error":
            logger.warning("edgex-private-ws: venue error: %.200s", message.get("content"))

    def _apply_report(self, report: OrderReport) -> None:
        """A cancel reason reads as a refusal only for an order that never rested: one that
        rested and was then cancelled (a reduce-only order whose position closed) ended."""
        if report.status is OrderStatus.REJECTED:
            tracked = self._orders.get(report.client_order_id)
            if tracked is not None and tracked.seen_resting:
                report.status = OrderStatus.CANCELLED
        self._apply(report)

    def _on_trade_event(self, data: Mapping[str, Any]) -> None:
        """Orders and fills of one event. Trades of orders already known go first (exact fee and
        maker flag), then the order reports (which teach the order ids), then the other trades;
        the shared VenueOrders counts each quantity once whichever source told it first."""
        now = self.clock.now()
        trades: list[TradeReport] = []
        for raw in as_rows(data.get("orderFillTransaction")):
            try:
                trades.append(trade_report(raw, now))
            except MalformedMessage as exc:
                self.malformed.record(getattr(exc, "kind", "malformed"), str(exc))
        later = []
        for trade in trades:
            if trade.order_id is not None and self._orders.get(trade.order_id) is not None:
                self._apply_trade(trade)
            else:
                later.append(trade)
        for raw in as_rows(data.get("order")):
            try:
                report = order_report(raw, now)
            except MalformedMessage as exc:
                self.malformed.record(getattr(exc, "kind", "malformed"), str(exc))
                continue
            if report is not None:
                self._apply_report(report)
        for trade in later:
            self._apply_trade(trade)

    def __repr__(self) -> str:
        return f"EdgexClient({self.settings!r})"

    @staticmethod
    def depth_continues(book: PriceLevels, delta: Mapping[str, Any]) -> bool:
        return depth_continues(book, delta)


def depth_continues(book: PriceLevels, data: Mapping[str, Any]) -> bool:
    """edgeX's depth continuity: a snapshot replaces the book; a delta covering versions
    start..end must start at most right after the last version applied (older ones are
    skipped); False on a gap (the book is then rebuilt)."""
    bids, asks, start, end, snapshot = depth_entry(data)
    if snapshot and end is not None:
        book.replace(bids, asks, end)
        return True
    if start is None or end is None or book.sequence is None:
        return False
    if end <= book.sequence:
        return True
    if start > book.sequence + 1:
        return False
    book.apply(bids, asks, end)
    return True


__all__ = [
    "EdgexClient",
    "EdgexSettings",
    "OrderSigner",
    "account_snapshot",
    "contracts_from_metadata",
    "depth_continues",
    "map_error",
    "order_report",
    "trade_report",
]
