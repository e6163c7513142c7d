"""Where the Paradex tests can run, and how CI makes sure they did.

paradex-py installs on CPython 3.10 only (see requirements-paradex.txt), so the main suite on
3.11 skips the Paradex tests, and CI runs them again in .venv-paradex (scripts/paradex_env.sh)
with PARADEX_TESTS_REQUIRED=1: there a missing SDK fails the run instead of skipping it, so a
broken environment can never pass as "all skipped".
"""

from __future__ import annotations

import os

import pytest


def require_paradex_sdk() -> None:
    """Skip the calling test (or module) without paradex-py, unless PARADEX_TESTS_REQUIRED=1."""
    if os.environ.get("PARADEX_TESTS_REQUIRED") == "1":
        import paradex_py  # noqa: F401  (an ImportError here fails the run, as intended)
    else:
        pytest.importorskip(
            "paradex_py", reason="paradex-py runs on CPython 3.10: bash scripts/paradex_env.sh --dev"
        )
