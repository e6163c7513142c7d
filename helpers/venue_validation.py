"""Checks every number and book a venue sends before any of it reaches the bot.

Shared by every connector (issue 8, point 1). A connector parses its wire format; what it hands
on passes through these functions first, so one bad message cannot stop the bot or mislead a
strategy:

* :func:`venue_decimal` / :func:`price` / :func:`size`: a venue number becomes a finite
  :class:`~decimal.Decimal` within sane bounds (prices > 0, sizes >= 0), or
  :class:`InvalidVenueData` is raised. ``Decimal("NaN")`` and ``Decimal("Infinity")`` parse
  without complaint, and a 3 MB digit string parses too, so parsing alone is not a check.
* :func:`filled_within` : a cumulative fill may exceed the order's size by at most one size step
  (venues round), never more.
* :func:`book_side`: one side of a book snapshot or delta, built into a *new* dict and returned
  only when every level is valid, so a caller that swaps it in applies a snapshot atomically (a
  snapshot with one bad level never leaves a half-applied book marked valid).
* :func:`crossed`: best bid >= best ask; such a book must be flagged and not used.
* :class:`MalformedCounter`: counts malformed messages by kind and logs each kind at most once
  per interval, so a flood of bad frames costs a counter increment, not a log line each.
* :func:`rest_body`: a context manager turning the AttributeError/KeyError/TypeError a
  malformed REST body provokes in parsing code into :class:`InvalidVenueData` naming the
  endpoint (a typed ExchangeError, never a raw traceback).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from exchanges.base import MalformedMessage

logger = logging.getLogger(__name__)

#: Longest number text accepted. Real prices and sizes have at most ~20 significant digits.
MAX_NUMBER_CHARS = 64
#: Largest magnitude accepted for any venue number (far above any price, size or balance).
MAX_MAGNITUDE = Decimal("1e18")
#: Seconds between two log lines about malformed messages of the same kind.
LOG_INTERVAL = 60.0

_ZERO = Decimal(0)


class InvalidVenueData(MalformedMessage):
    """A venue message or body failed a check; ``kind`` is a short fixed label for counting."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


def venue_decimal(
    value: Any, what: str = "number", *, minimum: Decimal | None = None, positive: bool = False
) -> Decimal:
    """``value`` (str, int or Decimal) as a finite Decimal in range, else :class:`InvalidVenueData`.

    Floats are refused as well as bools: a venue number in a float has already lost precision
    (the JSON parser gives fractions as Decimal, so a float here is a caller's bug).
    """
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        if not value or len(value) > MAX_NUMBER_CHARS:
            raise InvalidVenueData("bad number", f"{what}: {'empty' if not value else 'too long'}")
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            raise InvalidVenueData("bad number", f"{what} is not a number") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif value is None:
        raise InvalidVenueData("missing field", what)
    else:
        raise InvalidVenueData("wrong type", f"{what} is a {type(value).__name__}")
    if not number.is_finite():
        raise InvalidVenueData("non-finite number", what)
    if abs(number) > MAX_MAGNITUDE:
        raise InvalidVenueData("number out of range", what)
    if positive and number <= 0:
        raise InvalidVenueData("number out of range", f"{what} must be positive")
    if minimum is not None and number < minimum:
        raise InvalidVenueData("number out of range", f"{what} below {minimum}")
    return number


def price(value: Any, what: str = "price") -> Decimal:
    """A price: finite and > 0."""
    return venue_decimal(value, what, positive=True)


def size(value: Any, what: str = "size") -> Decimal:
    """A size, filled size or quote amount: finite and >= 0."""
    return venue_decimal(value, what, minimum=_ZERO)


def filled_within(filled: Decimal, order_size: Decimal, step: Decimal, what: str = "order") -> None:
    """A cumulative fill may exceed the order's size by at most one size step."""
    if filled > order_size + step:
        raise InvalidVenueData("overfilled", f"{what}: {filled} filled of {order_size}")


def book_side(levels: Iterable[Any], base: Mapping[Decimal, Decimal] | None = None) -> dict[Decimal, Decimal]:
    """Levels (``{"price": ..., "size": ...}`` mappings) applied to a copy of ``base``.

    Size 0 removes a level. Every level is checked before the result is returned, so the caller
    swaps in a side that is wholly valid or keeps the old one.
    """
    side = dict(base or {})
    if not isinstance(levels, (list, tuple)):
        raise InvalidVenueData("wrong type", "book levels are not a list")
    for level in levels:
        if not isinstance(level, Mapping):
            raise InvalidVenueData("wrong type", "a book level is not an object")
        level_price = price(level.get("price"), "level price")
        level_size = size(level.get("size"), "level size")
        if level_size == 0:
            side.pop(level_price, None)
        else:
            side[level_price] = level_size
    return side


def crossed(best_bid: Decimal, best_ask: Decimal) -> bool:
    """True when the book's best bid is at or above its best ask (not a usable book)."""
    return best_bid >= best_ask


class MalformedCounter:
    """Counts malformed messages by kind; logs each kind at most once per ``interval`` seconds.

    ``now`` is the bot's clock (so simulated time drives the rate limit in tests).
    """

    def __init__(self, name: str, now: Any, interval: float = LOG_INTERVAL) -> None:
        self.name = name
        self.now = now
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(self, kind: str, detail: str) -> None:
        count = self.counts[kind] = self.counts.get(kind, 0) + 1
        at = float(self.now())
        last = self._logged_at.get(kind)
        if last is None or at - last >= self.interval:
            self._logged_at[kind] = at
            logger.warning(
                "%s: dropped a malformed message (%s: %s); %d of this kind so far",
                self.name,
                kind,
                detail[:160],
                count,
            )


@contextlib.contextmanager
def rest_body(endpoint: str) -> Iterator[None]:
    """Parsing code of one REST answer: a malformed body surfaces as InvalidVenueData.

    Catches what unexpected shapes provoke (a string where an object was expected, a missing
    key, a wrong type) and re-raises it typed, naming the endpoint; InvalidVenueData raised
    inside gets the endpoint prefixed.
    """
    try:
        yield
    except InvalidVenueData as exc:
        if exc.detail.startswith(endpoint):
            raise
        raise InvalidVenueData(exc.kind, f"{endpoint}: {exc.detail}") from None
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, InvalidOperation) as exc:
        raise InvalidVenueData("malformed body", f"{endpoint}: {type(exc).__name__}") from None
