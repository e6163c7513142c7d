"""The venue registry imports only the chosen SDK and names the package when it is missing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from exchanges import factory
from exchanges.base import ConfigurationError, MissingDependencyError
from exchanges.factory import ExchangeEntry, ExchangeFactory
from helpers.clock import LiveClock
from helpers.trading_config import TradingConfig

ROOT = Path(__file__).resolve().parent.parent


def config(exchange: str) -> TradingConfig:
    return TradingConfig(ticker="BTC", exchange=exchange, strategy="grid", quantity=Decimal("0.01"))


def test_missing_sdk_names_the_package_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "needs_sdk_client.py").write_text("import sdk_that_is_not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        factory.EXCHANGE_CLASSES,
        "needsdk",
        ExchangeEntry("needs_sdk_client.Client", "needsdk-sdk", "requirements-needsdk.txt"),
    )
    with pytest.raises(MissingDependencyError) as error:
        ExchangeFactory.create_exchange("needsdk", config("needsdk"), LiveClock())
    message = str(error.value)
    assert "needsdk-sdk" in message and "pip install -r requirements-needsdk.txt" in message
    assert "\n" not in message


def test_unknown_exchange_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="choose one of"):
        ExchangeFactory.create_exchange("nowhere", config("nowhere"), LiveClock())


def test_a_paper_bot_never_imports_a_venue_sdk() -> None:
    script = (
        "import sys\n"
        "from decimal import Decimal\n"
        "from helpers.trading_config import TradingConfig\n"
        "from trading_bot import TradingBot\n"
        "TradingBot(TradingConfig(ticker='BTC', exchange='paper', strategy='grid', quantity=Decimal('0.01')),"
        " write_files=False)\n"
        "print(sorted(m for m in ('lighter', 'aiohttp', 'websockets') if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_missing_paradex_sdk_prints_the_one_command_that_installs_it() -> None:
    if importlib.util.find_spec("paradex_py") is not None:
        pytest.skip("paradex-py is installed here (this is the Paradex environment)")
    with pytest.raises(MissingDependencyError) as error:
        ExchangeFactory.create_exchange("paradex", config("paradex"), LiveClock())
    assert str(error.value).endswith(": bash scripts/paradex_env.sh")
