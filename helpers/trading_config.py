"""The one configuration object runbot.py builds and every layer reads."""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RiskLimits:
    """Account-protection thresholds (the seed's defaults), each configurable."""

    enabled: bool = True
    max_consecutive_failures: int = 15
    stall_seconds: float = 600.0
    loss_pct: Decimal = Decimal("10")
    close_worst_fraction: Decimal = Decimal("0.2")
    emergency_loss_pct: Decimal = Decimal("15")


def default_client_id_prefix(bot_name: str) -> str:
    """A stable 3-digit prefix per bot name, so restarts find their orders (and only theirs)."""
    digest = zlib.crc32(bot_name.encode())
    return str(100 + digest % 900)


def default_bot_name(exchange: str, ticker: str, strategy: str, suffix: str = "") -> str:
    """exchange_TICKER_strategy[_suffix]: two bots of one strategy on one ticker (a buy grid and
    a sell grid) differ by the strategy's identity suffix."""
    name = f"{exchange}_{ticker.upper()}_{strategy}"
    return f"{name}_{suffix}" if suffix else name


@dataclass(frozen=True)
class VenueSpec:
    """One more venue for a strategy that trades on several (venue 0 is ``exchange`` itself)."""

    exchange: str
    exchange_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TradingConfig:
    """Everything one bot process needs: which market, which venue, which strategy, how."""

    ticker: str
    exchange: str
    strategy: str
    quantity: Decimal
    strategy_params: dict[str, Any] = field(default_factory=dict)
    exchange_params: dict[str, Any] = field(default_factory=dict)
    env_file: Path | None = None
    log_level: str = "INFO"
    log_dir: Path = Path("logs")
    file_log_level: str = "INFO"
    log_max_mb: float = 20.0
    log_backups: int = 5
    duration: float | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)
    cancel_take_profits_on_exit: bool = False
    max_slippage_pct: Decimal = Decimal("0.5")
    idle_wait_seconds: float = 1.0
    client_id_prefix: str = ""
    #: The bot's identity: prefixes its client ids and names its log, CSV and journal.
    bot_name: str = ""
    #: Venues after the first, for strategies that declare they need several (REQUIRED_VENUES).
    extra_venues: list[VenueSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ticker = self.ticker.upper()
        if not self.bot_name:
            self.bot_name = default_bot_name(self.exchange, self.ticker, self.strategy)
        if not self.client_id_prefix:
            self.client_id_prefix = default_client_id_prefix(self.bot_name)

    @property
    def venue_count(self) -> int:
        return 1 + len(self.extra_venues)

    def venue_config(self, index: int) -> TradingConfig:
        """The configuration one venue's client and journal see: venue 0 is this config itself;
        venue ``i`` has its own exchange, options and identity ``<bot_name>_v<i>`` (its own
        order-id prefix and journal, so two venues of one kind stay apart)."""
        if index == 0:
            return self
        spec = self.extra_venues[index - 1]
        name = f"{self.bot_name}_v{index}"
        return dataclasses.replace(
            self,
            exchange=spec.exchange,
            exchange_params=dict(spec.exchange_params),
            bot_name=name,
            client_id_prefix=default_client_id_prefix(name),
            extra_venues=[],
        )
