"""Instrument specifications (tick, size step, limits, contract type, fees) and inverse accounting.

Why: a backtest that assumes BTC's 0.1 tick on ETHUSDT (real tick 0.01) rests its orders ten
ticks from the touch, and one that treats Binance's BTCUSD_PERP (100 USD inverse contracts) as
linear is off by a factor of hundreds. The specification of a run comes, in this order of
precedence, from

1. the paper venue options given explicitly (command-line flags),
2. ``data/instruments.toml`` for a known symbol (real venue values, each with its source), or
   its ``[synthetic]`` table for a synthetic market's start price and tick,
3. the data itself: the finest price granularity seen (see :func:`price_granularity`),
4. the paper venue's defaults.

Inverse contracts (``kind = "inverse"``) keep sizes in contracts of ``contract_multiplier`` USD
and money in the settlement coin; :class:`InverseLedger` holds that arithmetic.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from exchanges.base import ConfigurationError, OrderSide

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The project's instruments file.
INSTRUMENTS_FILE = Path(__file__).resolve().parent.parent / "data" / "instruments.toml"

_ZERO = Decimal(0)
_SPEC_KEYS = (
    "tick_size",
    "size_step",
    "min_size",
    "min_notional",
    "contract_multiplier",
    "maker_fee_pct",
    "taker_fee_pct",
)


@dataclass(frozen=True)
class Instrument:
    """One symbol's specification, as in ``data/instruments.toml``."""

    symbol: str
    kind: str
    base: str
    quote: str
    settlement: str
    tick_size: Decimal
    size_step: Decimal
    min_size: Decimal
    min_notional: Decimal
    contract_multiplier: Decimal
    maker_fee_pct: Decimal
    taker_fee_pct: Decimal

    @property
    def inverse(self) -> bool:
        return self.kind == "inverse"

    def metadata(self) -> dict[str, str]:
        """The keys :func:`instrument_from_metadata` reads, as strings (a recording's header)."""
        keys = {"kind": self.kind, "base": self.base, "quote": self.quote, "settlement": self.settlement}
        return {**keys, **{key: str(getattr(self, key)) for key in _SPEC_KEYS}}

    def paper_params(self) -> dict[str, Any]:
        """The paper venue options this specification sets."""
        params: dict[str, Any] = {key: getattr(self, key) for key in _SPEC_KEYS}
        params["inverse"] = self.inverse
        params["settlement_currency"] = self.settlement
        return params


@dataclass(frozen=True)
class InstrumentTable:
    instruments: dict[str, Instrument]
    synthetic: dict[str, dict[str, Decimal]]

    def find(self, ticker: str) -> Instrument | None:
        return self.instruments.get(ticker.upper())

    def synthetic_entry(self, ticker: str) -> dict[str, Decimal] | None:
        """The synthetic market entry of ``ticker`` (or of its base coin for a known symbol)."""
        symbol = ticker.upper()
        entry = self.synthetic.get(symbol)
        if entry is None and symbol in self.instruments:
            entry = self.synthetic.get(self.instruments[symbol].base)
        return entry


def _decimal(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ConfigurationError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ConfigurationError(f"{where}: {value!r} must be a finite number >= 0")
    return number


def instrument_from_metadata(symbol: str, entry: Mapping[str, Any], where: str) -> Instrument:
    """One instrument from its keys (an instruments-file entry or a venue recording's header).

    The same keys and checks for both, so a recording's metadata means exactly what a file
    entry does; ConfigurationError names ``where`` and the bad key.
    """
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where}: the instrument is not a table of keys")
    kind = str(entry.get("kind", "linear"))
    if kind not in ("linear", "inverse"):
        raise ConfigurationError(f"{where}: kind must be linear or inverse, got {kind!r}")
    missing = [key for key in (*_SPEC_KEYS, "base", "settlement") if key not in entry]
    if missing:
        raise ConfigurationError(f"{where}: missing {', '.join(missing)}")
    values = {key: _decimal(entry[key], f"{where} {key}") for key in _SPEC_KEYS}
    if values["tick_size"] <= 0 or values["size_step"] <= 0 or values["contract_multiplier"] <= 0:
        raise ConfigurationError(f"{where}: tick_size, size_step and contract_multiplier must be > 0")
    return Instrument(
        symbol=symbol.upper(),
        kind=kind,
        base=str(entry["base"]).upper(),
        quote=str(entry.get("quote", "USD")).upper(),
        settlement=str(entry["settlement"]).upper(),
        **values,
    )


def parse_instruments(text: str, source: str = "instruments file") -> InstrumentTable:
    """Parse the TOML text of an instruments file; ConfigurationError names the bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML ({exc})") from None
    instruments: dict[str, Instrument] = {}
    for symbol, entry in dict(data.get("instruments", {})).items():
        instruments[symbol.upper()] = instrument_from_metadata(
            symbol, entry, f"{source} [instruments.{symbol}]"
        )
    synthetic: dict[str, dict[str, Decimal]] = {}
    for ticker, entry in dict(data.get("synthetic", {})).items():
        where = f"{source} [synthetic.{ticker}]"
        synthetic[ticker.upper()] = {
            key: _decimal(entry[key], f"{where} {key}")
            for key in ("start_price", "tick_size")
            if key in entry
        }
    return InstrumentTable(instruments, synthetic)


@lru_cache(maxsize=4)
def load_instruments(path: Path = INSTRUMENTS_FILE) -> InstrumentTable:
    """The instruments file (read once per process); an absent file is an empty table."""
    if not path.is_file():
        return InstrumentTable({}, {})
    return parse_instruments(path.read_text(encoding="utf-8"), str(path))


def resolve_paper_params(ticker: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Paper venue options for ``ticker``: ``params`` (explicit) over the instruments file."""
    resolved = dict(params)
    table = load_instruments()
    instrument = table.find(ticker)
    if instrument is not None:
        for key, value in instrument.paper_params().items():
            resolved.setdefault(key, value)
    synthetic = table.synthetic_entry(ticker)
    if synthetic is not None:
        for key, value in synthetic.items():
            resolved.setdefault(key, value)
    return resolved


def known_synthetic_tickers() -> list[str]:
    return sorted(load_instruments().synthetic)


def price_granularity(prices: Iterable[Decimal]) -> Decimal | None:
    """The finest power of ten the prices use: 10 ** (smallest exponent after normalizing).

    Exchanges often pad prices ("61800.30" on a 0.1 tick), so the digits sent say little; the
    last non-zero digit over many prices does. With a tick that is not a power of ten (0.5,
    0.25) this gives the power of ten below it, and a short sample may look coarser than the
    real tick: a hint, never a replacement for a known specification.
    """
    smallest: int | None = None
    step: Decimal | None = None  # 10 ** smallest
    for price in prices:
        if not price:
            continue
        if step is not None:
            # A multiple of the finest step so far cannot lower it: one remainder instead of a
            # normalized copy (which costs about seven times as much) for nearly every price.
            try:
                if not price % step:
                    continue
            except InvalidOperation:  # a quotient beyond the context's digits: look closer
                pass
        exponent = price.normalize().as_tuple().exponent
        if isinstance(exponent, int) and (smallest is None or exponent < smallest):
            smallest = exponent
            step = Decimal(1).scaleb(smallest)
    return step


def tick_warning(tick: Decimal, granularity: Decimal | None, symbol: str) -> str | None:
    """A warning when the configured tick disagrees with the prices in the data."""
    if granularity is None:
        return None
    if granularity < tick and tick % granularity == 0:
        return (
            f"tick size {tick} for {symbol} is coarser than the data's prices (they use steps of "
            f"{granularity}): orders will rest off the real ticks"
        )
    if granularity >= tick * 10:
        return (
            f"tick size {tick} for {symbol} is much finer than the data's prices (steps of "
            f"{granularity}): check the instrument specification"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Inverse contracts
# ---------------------------------------------------------------------------------------------


class InverseLedger:
    """A net position in inverse contracts, with money in the settlement coin.

    ``N`` contracts of ``M`` USD at price ``P`` are worth ``N * M / P`` coin. The average entry
    is harmonic (``sum N_i / sum (N_i / P_i)``), so the coin value of the position is the sum of
    its parts. Realized PnL on closing ``n`` of a long is ``n * M * (1/entry - 1/exit)`` (a short
    mirrors it); a fee is ``n * M / P * rate``. Fees are kept apart from PnL, as in
    :class:`~helpers.position_ledger.PositionLedger`.
    """

    def __init__(self, multiplier: Decimal) -> None:
        self.multiplier = multiplier
        self.size = _ZERO  # contracts, signed
        self.entry_price = _ZERO
        self.realized_pnl = _ZERO  # coin, before fees
        self.fees = _ZERO  # coin
        self.volume = _ZERO  # coin notional traded

    def notional(self, contracts: Decimal, price: Decimal) -> Decimal:
        """The coin value of ``contracts`` at ``price``."""
        return contracts * self.multiplier / price

    def apply_fill(self, side: OrderSide, price: Decimal, contracts: Decimal, fee: Decimal) -> None:
        signed = contracts if side is OrderSide.BUY else -contracts
        position = self.size
        new_position = position + signed
        self.fees += fee
        self.volume += self.notional(contracts, price)
        if position == 0 or (position > 0) == (signed > 0):
            # Harmonic average: contracts over their summed coin-per-USD.
            held = abs(position) / self.entry_price if position else _ZERO
            self.entry_price = abs(new_position) / (held + contracts / price)
        else:
            closed = min(contracts, abs(position))
            direction = 1 if position > 0 else -1
            self.realized_pnl += closed * self.multiplier * (1 / self.entry_price - 1 / price) * direction
            if new_position == 0:
                self.entry_price = _ZERO
            elif (new_position > 0) != (position > 0):
                self.entry_price = price
        self.size = new_position

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        if self.size == 0 or mark <= 0:
            return _ZERO
        return self.size * self.multiplier * (1 / self.entry_price - 1 / mark)
