"""Builds the chosen venue client, importing only that venue's SDK.

Importing every SDK costs ~77 MB and ~1 s; a paper bot should not pay that, so each venue is
named by a dotted path and imported on demand. A missing SDK becomes a one-line error naming the
package to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exchanges.base import BaseExchangeClient, ConfigurationError, MissingDependencyError
from helpers.clock import Clock

if TYPE_CHECKING:
    from helpers.trading_config import TradingConfig


@dataclass(frozen=True)
class ExchangeEntry:
    class_path: str
    pip_package: str | None
    requirements_file: str = "requirements.txt"
    #: The command that installs the venue, when it is more than a pip install (its own environment).
    install_command: str | None = None


EXCHANGE_CLASSES: dict[str, ExchangeEntry] = {
    "paper": ExchangeEntry("exchanges.paper.PaperExchangeClient", None),
    "lighter": ExchangeEntry("exchanges.lighter.LighterClient", "lighter-sdk", "requirements-lighter.txt"),
    "backpack": ExchangeEntry("exchanges.backpack.BackpackClient", "bpx-py", "requirements-backpack.txt"),
    "aster": ExchangeEntry("exchanges.aster.AsterClient", None),
    "edgex": ExchangeEntry("exchanges.edgex.EdgexClient", "edgex-python-sdk", "requirements-edgex.txt"),
    # paradex-py installs on CPython 3.10 only: the venue runs in its own environment.
    "paradex": ExchangeEntry(
        "exchanges.paradex.ParadexClient",
        "paradex-py",
        "requirements-paradex.txt",
        install_command="bash scripts/paradex_env.sh",
    ),
    "grvt": ExchangeEntry("exchanges.grvt.GrvtClient", "grvt-pysdk", "requirements-grvt.txt"),
}


class ExchangeFactory:
    @staticmethod
    def available() -> list[str]:
        return sorted(EXCHANGE_CLASSES)

    @staticmethod
    def create_exchange(name: str, config: TradingConfig, clock: Clock) -> BaseExchangeClient:
        entry = EXCHANGE_CLASSES.get(name.lower())
        if entry is None:
            raise ConfigurationError(
                f"unknown exchange {name!r}; choose one of: {', '.join(ExchangeFactory.available())}"
            )
        module_name, class_name = entry.class_path.rsplit(".", 1)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if entry.pip_package and exc.name and not exc.name.startswith(("exchanges", "helpers")):
                install = entry.install_command or f"pip install -r {entry.requirements_file}"
                raise MissingDependencyError(
                    f"exchange {name!r} needs the {entry.pip_package} package "
                    f"(missing module {exc.name!r}): {install}"
                ) from None
            raise
        client_class = getattr(module, class_name)
        client: BaseExchangeClient = client_class(config, clock)
        return client
