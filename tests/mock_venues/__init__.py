"""Loopback mock venues that speak each venue's real wire protocol (REST + WebSocket).

Names are resolved lazily so ``python -m tests.mock_venues.lighter_venue`` does not import the
module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MarketSpec", "MockLighterVenue", "generate_api_key"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tests.mock_venues.lighter_venue"), name)
    raise AttributeError(name)
