"""The venue-independent half of a connector whose venue answers an order request with the
order, and streams order events and depth over a WebSocket (Backpack, Aster, and most CEX-style
venues).

Everything venue-independent is here once: registering an order before it leaves (so no stream
report can be missed), typing a failed send as unknown or refused, waiting (bounded) for the
trades of an order that filled at once so its fills carry exact fees, refusing a post-only
order that the venue refused, market orders as IOC limit orders at the slippage bound,
cancels, book waits, connect/disconnect with cleanup on a failed connect, market look-up by
ticker, stream subscription and depth books, positions, our open orders, and reading our
orders back after the stream came back.

Adding a venue
--------------
Subclass :class:`StreamingVenueClient`, set ``name`` and ``PARAMS`` (``COMMON_PARAMS`` plus the
venue's own), and in ``__init__`` load the settings (``self._load_settings(XSettings, env)``,
built with :func:`~exchanges.connector_kit.required_setting`,
:func:`~exchanges.connector_kit.venue_urls` and
:func:`~exchanges.connector_kit.milliseconds_setting`) and set ``self._http`` (the
:class:`~exchanges.connector_kit.HttpSession` the venue's REST helper sends on; parse answers
with ``json_or_none``/``error_for_status``/``with_retry_after``). Then implement the hooks:

* ``_open()``: what ``connect`` does after the HTTP session opened (load markets, make the
  sockets with ``self._make_socket``, ``await self._ensure_streams(symbol)``, start them,
  ``await self._wait_connected(ws)``); a failure closes everything again;
* ``_close()``: close the venue's sockets (``disconnect`` does the rest);
* ``_load_markets()`` filling ``self._markets``; ``_symbol_for_ticker(ticker)``; ``contract(symbol)``;
* ``_book_socket()`` (the socket carrying depth, None before connect),
  ``_subscribe_market(ws, symbol)`` (send the venue's subscriptions),
  ``_depth_snapshot(symbol)`` (``depth_snapshot_levels``) and ``depth_continues(book, delta)``
  (the venue's sequence rule);
* ``_send_order``, ``_send_cancel`` (the wire, answering with an :class:`OrderReport`),
  ``_rejection`` (refine a REJECTED placement, e.g. post-only);
* ``find_order``, ``get_order_info``; ``get_active_orders`` via ``_our_active(rows, client_id_of,
  info_of)``; ``_positions(symbol)`` (``get_position`` is here); ``get_account_snapshot``;
  ``get_funding_rate``;
* stream handlers that call ``book.on_delta``/``book.on_ticker`` and ``_apply_stream(report,
  trade)``, and ``_stream_connected``/``_stream_disconnected`` from the socket callbacks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from exchanges.base import (
    BaseExchangeClient,
    ClientOrderIdFactory,
    ContractInfo,
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrder,
    MalformedMessage,
    NetworkError,
    OrderInfo,
    OrderNotFound,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    SlippageExceeded,
)
from exchanges.connector_kit import (
    BackgroundTasks,
    HttpSession,
    MarketBook,
    PriceLevels,
    check_amounts,
    order_result,
    slippage_bound,
    to_decimal,
)
from exchanges.venue_orders import OrderReport, OrderSearchTruncated, TradeReport, VenueOrder, VenueOrders
from helpers.clock import Clock
from helpers.rate_limiter import Priority, RateLimiter, RetryPolicy
from helpers.reconnecting_websocket import HeadersHook, ReconnectingWebSocket, Url
from helpers.trading_config import TradingConfig

logger = logging.getLogger(__name__)

#: Tunables every streaming venue reads from ``config.exchange_params`` (venues add their own).
COMMON_PARAMS: dict[str, Any] = {
    "order_ack_timeout": 5.0,  # wait this long for an order's trades / final state on the stream
    "bbo_timeout": 10.0,  # wait this long for a two-sided book
    "ws_connect_timeout": 15.0,
    "rest_timeout": 10.0,
    "rest_requests_per_minute": 600.0,
    "rest_max_attempts": 4,
    "ws_ping_interval": 20.0,
    "backoff_base": 0.5,
    "backoff_cap": 30.0,
    "maker_fee": "0.0002",  # estimates only: fills on the stream carry their exact fee
    "taker_fee": "0.0005",
}


class StreamingVenueClient(BaseExchangeClient):
    """Shared order flow, book waits and stream bookkeeping; see the module docstring."""

    PARAMS: ClassVar[dict[str, Any]] = COMMON_PARAMS

    def __init__(self, config: TradingConfig, clock: Clock) -> None:
        super().__init__(config, clock)
        self.client_ids = self._make_client_ids()
        given = dict(config.exchange_params or {})
        self.params = {key: given.get(key, default) for key, default in self.PARAMS.items()}
        rpm = float(self.params["rest_requests_per_minute"])
        limiter = RateLimiter(clock, rpm, 60.0, burst=max(1.0, rpm / 6), name=f"{self.name}-rest")
        self.retry = RetryPolicy(
            clock,
            max_attempts=int(self.params["rest_max_attempts"]),
            limiter=limiter,
            name=f"{self.name}-rest",
        )
        self._fees = (to_decimal(self.params["maker_fee"]), to_decimal(self.params["taker_fee"]))
        self._orders = VenueOrders(
            lambda _contract: self._fees, is_ours=self.client_ids.is_ours, name=self.name
        )
        self._books: dict[str, MarketBook] = {}
        self._tasks = BackgroundTasks(self.name)
        self._connected_once = False
        self._markets: dict[str, Any] = {}
        self._streams: set[str] = set()
        self._http: HttpSession | None = None

    def _load_settings(self, settings_cls: Any, env: Mapping[str, str] | None) -> Any:
        """The venue's settings from ``env`` (the process environment when None) and
        ``config.exchange_params``."""
        return settings_cls.load(os.environ if env is None else env, dict(self.config.exchange_params or {}))

    def _make_socket(
        self,
        url: Url,
        on_message: Callable[[Any], Any],
        name: str,
        on_connect: Callable[[], Awaitable[None]] | None,
        on_disconnect: Callable[..., None] | None = None,
        *,
        headers: HeadersHook | None = None,
    ) -> ReconnectingWebSocket:
        """A reconnecting socket tuned by the common params (ping, backoff); ``url`` and
        ``headers`` may be built afresh per connection (edgeX signs its handshake, GRVT sends a
        session cookie that may have been renewed)."""
        return ReconnectingWebSocket(
            url,
            on_message,
            self.clock,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
            headers=headers,
            ping_interval=float(self.params["ws_ping_interval"]),
            backoff_base=float(self.params["backoff_base"]),
            backoff_cap=float(self.params["backoff_cap"]),
            compression=None,
            name=name,
        )

    async def _wait_connected(self, ws: ReconnectingWebSocket, what: str | None = None) -> None:
        """ExchangeUnavailable when ``ws`` is not up within ``ws_connect_timeout``."""
        timeout = float(self.params["ws_connect_timeout"])
        if not await ws.wait_connected(timeout):
            why = ws.last_error or "no answer"
            raise ExchangeUnavailable(f"{self.name} stream {what or ws.name} not up after {timeout}s ({why})")

    # -- connecting --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the HTTP session, then the venue's ``_open``; a failure anywhere closes all
        that was opened (a failed connect leaks no session, socket or task)."""
        if self._http is not None:
            await self._http.open()
        try:
            await self._open()
        except BaseException:
            await self.disconnect()
            raise

    async def _open(self) -> None:
        """Venue hook: markets, sockets, streams (see the module docstring)."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Venue hook: close the venue's sockets and whatever else ``_open`` made."""

    def _make_client_ids(self) -> ClientOrderIdFactory:
        """The venue's client-id format (the default 14 digits; Backpack needs 32-bit ids)."""
        return self.client_ids

    # -- venue hooks -------------------------------------------------------------------------

    def contract(self, contract_id: str) -> ContractInfo:
        """The loaded market; InvalidOrder for an unknown one."""
        raise NotImplementedError

    async def _send_order(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> OrderReport:
        """Send a limit order ("GTC" resting, "IOC" taking); the venue's answer as a report."""
        raise NotImplementedError

    async def _send_cancel(
        self, contract_id: str, venue_id: str | None, client_id: str | None
    ) -> OrderReport | None:
        """Cancel by venue id (or our client id when there is none yet); the answer, if any."""
        raise NotImplementedError

    def _rejection(self, order: VenueOrder) -> ExchangeError:
        """The error a REJECTED placement raises (venues refine it, e.g. post-only)."""
        return InvalidOrder(f"{self.name}: order {order.client_order_id} rejected ({order.venue_status})")

    # -- books -------------------------------------------------------------------------------

    def _add_book(
        self,
        contract_id: str,
        fetch_snapshot: Callable[[], Awaitable[tuple[Iterable[Any], Iterable[Any], int]]],
        continues: Callable[[PriceLevels, Mapping[str, Any]], bool],
    ) -> MarketBook:
        book = self._books.get(contract_id)
        if book is None:
            book = self._books[contract_id] = MarketBook(
                f"{self.name} {contract_id}",
                contract_id,
                fetch_snapshot,
                continues,
                self._emit_market_update,
                self.clock,
                self._tasks,
            )
        return book

    async def fetch_bbo_prices(self, contract_id: str) -> tuple[Decimal, Decimal]:
        """Top of the depth book (the ticker while it is rebuilt); never zeros, never crossed."""
        self.contract(contract_id)
        await self._ensure_streams(contract_id)
        return await self._books[contract_id].wait_top(float(self.params["bbo_timeout"]))

    async def _ensure_streams(self, contract_id: str) -> None:
        """Subscribe the market's streams once, with a depth book kept by the venue's
        ``depth_continues`` rule from ``_depth_snapshot``."""
        ws = self._book_socket()
        if ws is None:
            raise NetworkError(f"{self.name}: not connected (call connect first)")
        if contract_id in self._streams:
            return
        self._streams.add(contract_id)
        book = self._add_book(contract_id, lambda: self._depth_snapshot(contract_id), self.depth_continues)
        await self._subscribe_market(ws, contract_id)
        if ws.connected.is_set():
            book.restart()

    def _book_socket(self) -> ReconnectingWebSocket | None:
        """Venue hook: the socket that carries the depth stream (None before connect)."""
        return None

    async def _subscribe_market(self, ws: ReconnectingWebSocket, contract_id: str) -> None:
        """Venue hook: send the market's subscriptions (depth, ticker, private)."""
        raise NotImplementedError

    async def _depth_snapshot(self, contract_id: str) -> tuple[Any, Any, int]:
        """Venue hook: (bids, asks, sequence) of a REST depth snapshot."""
        raise NotImplementedError

    @staticmethod
    def depth_continues(book: PriceLevels, delta: Mapping[str, Any]) -> bool:
        """Venue hook: apply ``delta`` when it continues the book; False on a gap."""
        raise NotImplementedError

    # -- markets -----------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        """Venue hook: fill ``self._markets``."""
        raise NotImplementedError

    def _symbol_for_ticker(self, ticker: str) -> str:
        """Venue hook: the market id for the configured ticker; ConfigurationError if none."""
        raise NotImplementedError

    async def get_contract_info(self, ticker: str) -> ContractInfo:
        if not self._markets:
            await self._load_markets()
        symbol = self._symbol_for_ticker(ticker)
        if self._book_socket() is not None:
            await self._ensure_streams(symbol)
        return self.contract(symbol)

    # -- positions and orders read back ------------------------------------------------------

    async def _positions(self, symbol: str | None = None) -> list[Position]:
        """Venue hook: open positions (of ``symbol`` where the venue can filter)."""
        raise NotImplementedError

    async def get_position(self, contract_id: str) -> Position:
        for position in await self._positions(contract_id):
            if position.contract_id == contract_id:
                return position
        return Position(contract_id=contract_id, size=Decimal(0), entry_price=Decimal(0))

    def _our_active(
        self,
        rows: Any,
        client_id_of: Callable[[Mapping[str, Any]], str | None],
        info_of: Callable[[Mapping[str, Any]], OrderInfo],
    ) -> list[OrderInfo]:
        """Our still-active orders among the venue's open-order rows (others' are skipped)."""
        result = []
        for raw in rows if isinstance(rows, list) else []:
            if isinstance(raw, dict) and self.client_ids.is_ours(client_id_of(raw)):
                info = info_of(raw)
                if info.status.is_active:
                    result.append(info)
        return result

    def _stream_connected(self, *, reconcile: bool = True) -> None:
        """Call from the stream's on_connect: rebuild books; after a break, reconcile orders
        (``reconcile`` False when our orders travel on another stream)."""
        for book in self._books.values():
            book.disconnected()
            book.restart()
        if self._connected_once and reconcile:
            self._tasks.spawn(self._reconcile_orders(), f"{self.name}-reconcile")
            self._emit_reconnected()
        self._connected_once = True

    def _stream_disconnected(self, reason: str = "") -> None:
        for book in self._books.values():
            book.disconnected()

    # -- reports -----------------------------------------------------------------------------

    def _apply(self, report: OrderReport) -> None:
        update = self._orders.apply(report)
        if update is None:
            return
        if update.order.status is OrderStatus.EXPIRED:
            logger.warning("%s: order %s expired on the venue", self.name, update.order.client_order_id)
        self._emit_order_update(update)

    def _apply_stream(self, report: OrderReport | None, trade: TradeReport | None) -> None:
        """One stream event: its trade first (exact fee), then the order's state."""
        if trade is not None:
            self._apply_trade(trade)
        if report is not None:
            self._apply(report)

    def _apply_trade(self, trade: TradeReport) -> None:
        update = self._orders.apply_trade(trade)
        if update is not None:
            self._emit_order_update(update)

    def _info_of(self, report: OrderReport) -> OrderInfo:
        """Fold a looked-up order in and describe it as we now know it."""
        self._apply(report)
        tracked = self._orders.get(report.client_order_id)
        return tracked.info() if tracked is not None else report.info()

    async def _reconcile_orders(self) -> None:
        """After a reconnect: read our tracked active orders back, so no fill is missed."""
        for order in list(self._orders.active()):
            try:
                await self.find_order(order.contract_id, order.client_order_id)
            except (OrderNotFound, OrderSearchTruncated, NetworkError) as exc:
                logger.warning("%s: reconciling order %s: %s", self.name, order.client_order_id, exc)

    # -- placing and cancelling --------------------------------------------------------------

    def _track(
        self,
        client_order_id: str,
        contract_id: str,
        side: OrderSide,
        kind: OrderType,
        quantity: Decimal,
        price: Decimal,
        *,
        post_only: bool = False,
    ) -> VenueOrder:
        """Register before the request leaves, so no stream report of the order can be missed."""
        if not self.client_ids.is_ours(client_order_id) or self._orders.get(client_order_id) is not None:
            raise InvalidOrder(f"client order id {client_order_id!r} is not a fresh id of this bot")
        return self._orders.register(
            client_order_id,
            contract_id,
            side,
            kind,
            quantity,
            price,
            post_only=post_only,
            timestamp=self.clock.now(),
        )

    async def _place(
        self, order: VenueOrder, *, time_in_force: str, reduce_only: bool, priority: Priority
    ) -> None:
        try:
            report = await self._send_order(
                order, time_in_force=time_in_force, reduce_only=reduce_only, priority=priority
            )
        except NetworkError:
            self._orders.send_failed(order, ambiguous=True)
            raise
        except MalformedMessage as exc:
            # An answer we cannot read proves nothing about the order: the venue may have taken
            # it. Its outcome is unknown (looked up), never "refused" and so placed again.
            self._orders.send_failed(order, ambiguous=True)
            raise ExchangeUnavailable(f"{exc}; the order's outcome is unknown") from None
        except ExchangeError:
            self._orders.send_failed(order, ambiguous=False)
            raise
        if report.filled_size > order.filled:
            # It traded at once: give the stream's trades (exact fee, maker flag) a bounded moment.
            await self._orders.wait(
                order,
                lambda o: o.filled >= report.filled_size,
                float(self.params["order_ack_timeout"]),
                self.clock,
            )
        self._apply(report)
        if order.status is OrderStatus.REJECTED:
            raise self._rejection(order)

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
        """Good-till-cancelled limit order, post-only by default; crossing raises PostOnlyRejected."""
        check_amounts(self.contract(contract_id), quantity, price)
        order = self._track(
            client_order_id, contract_id, side, OrderType.LIMIT, quantity, price, post_only=post_only
        )
        priority = Priority.HIGH if reduce_only else Priority.LOW
        await self._place(order, time_in_force="GTC", reduce_only=reduce_only, priority=priority)
        return order_result(order)

    async def place_market_order(
        self,
        contract_id: str,
        side: OrderSide,
        quantity: Decimal,
        client_order_id: str,
        max_slippage_pct: Decimal,
        reduce_only: bool = False,
    ) -> OrderResult:
        """An IOC limit order at ``max_slippage_pct`` percent beyond the touch: it never fills
        worse than that; nothing filled within the bound raises SlippageExceeded."""
        info = self.contract(contract_id)
        bid, ask = await self.fetch_bbo_prices(contract_id)
        bound = slippage_bound(side, bid, ask, max_slippage_pct, info.tick_size)
        check_amounts(dataclasses.replace(info, min_notional=Decimal(0)), quantity, bound)
        order = self._track(client_order_id, contract_id, side, OrderType.MARKET, quantity, bound)
        logger.info("%s: market %s %s with price bound %s", self.name, side.value, quantity, bound)
        await self._place(order, time_in_force="IOC", reduce_only=reduce_only, priority=Priority.HIGH)
        await self._orders.wait(
            order, lambda o: o.status.is_final, float(self.params["order_ack_timeout"]), self.clock
        )
        if order.status.is_final and order.filled == 0:
            raise SlippageExceeded(
                f"{self.name}: market order {client_order_id} found nothing within {bound}"
            )
        return order_result(order)

    async def cancel_order(self, contract_id: str, order_id: str) -> OrderResult:
        """Cancel by venue order id or our client id; OrderNotFound if it is no longer open."""
        tracked = self._orders.get(order_id)
        if tracked is not None and tracked.status.is_final:
            raise OrderNotFound(f"{self.name}: order {order_id} is already {tracked.status.value}")
        venue_id = tracked.order_id if tracked is not None else order_id
        client_id = tracked.client_order_id if tracked is not None else None
        report = await self._send_cancel(contract_id, venue_id, client_id)
        if report is not None:
            self._apply(report)
            tracked = self._orders.get(report.client_order_id)
        if tracked is None:
            return OrderResult(success=True, order_id=venue_id, status=OrderStatus.CANCELLED)
        result = order_result(tracked)
        return result if tracked.status.is_final else dataclasses.replace(result, status=OrderStatus.PENDING)

    async def disconnect(self) -> None:
        await self._tasks.cancel_all()
        await self._close()
        self._streams.clear()
        if self._http is not None:
            await self._http.close()
