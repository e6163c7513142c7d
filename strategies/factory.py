"""The strategy registry: adding a strategy is a new file plus one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from exchanges.base import BaseExchangeClient
from helpers.clock import Clock
from strategies.base_strategy import BaseStrategy, ParameterError, Venue
from strategies.funding_arbitrage_strategy import FundingArbitrageStrategy
from strategies.grid_strategy import GridStrategy

if TYPE_CHECKING:
    from execution.engine import ExecutionEngine
    from helpers.trading_config import TradingConfig

_strategies: dict[str, type[BaseStrategy]] = {
    "grid": GridStrategy,
    "funding_arbitrage": FundingArbitrageStrategy,
}


class StrategyFactory:
    @staticmethod
    def available() -> list[str]:
        return sorted(_strategies)

    @staticmethod
    def strategy_class(name: str) -> type[BaseStrategy]:
        try:
            return _strategies[name.lower()]
        except KeyError:
            raise ParameterError(
                f"unknown strategy {name!r}; choose one of: {', '.join(StrategyFactory.available())}"
            ) from None

    @staticmethod
    def create_strategy(
        name: str,
        config: TradingConfig,
        exchange_client: BaseExchangeClient,
        clock: Clock,
        execution: ExecutionEngine | None = None,
        venues: list[Venue] | None = None,
    ) -> BaseStrategy:
        strategy_class = StrategyFactory.strategy_class(name)
        if venues is None:
            return strategy_class(config, exchange_client, clock, execution)
        return strategy_class(config, exchange_client, clock, execution, venues=venues)
