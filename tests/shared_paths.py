"""Where the read-only shared data lives: ``../shared`` beside the checkout (CI lays it there).

``BOT_SHARED_DIR`` overrides it for a checkout kept elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("BOT_SHARED_DIR", str(ROOT.parent / "shared")))
FIXTURES_DIR = SHARED_DIR / "fixtures"
RECORDED_FEED = SHARED_DIR / "data" / "binance-usdm-btcusdt-20240808.gz"
