"""The side-by-side benchmark's paired ratio (benchmarks/run_benchmarks.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "run_benchmarks.py"
_SPEC = importlib.util.spec_from_file_location("run_benchmarks", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
run_benchmarks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run_benchmarks)


def test_the_paired_ratio_is_the_median_of_the_rounds_ratios() -> None:
    """A fast moment that only the baseline met (its second round) moves the ratio of the best
    rounds to 0.55x; the rounds' own ratios say 1.1x twice out of three."""
    baseline, this = [100.0, 200.0, 100.0], [110.0, 110.0, 110.0]
    assert max(this) / max(baseline) == pytest.approx(0.55)
    assert run_benchmarks.paired_ratio(baseline, this) == pytest.approx(1.1)


def test_a_slow_phase_that_hits_both_versions_cancels_out() -> None:
    baseline, this = [100.0, 50.0, 100.0, 40.0], [120.0, 60.0, 120.0, 48.0]
    assert run_benchmarks.paired_ratio(baseline, this) == pytest.approx(1.2)


@pytest.mark.parametrize(("baseline", "this"), [([], []), ([1.0, 2.0], [1.0])])
def test_rounds_that_do_not_pair_are_refused(baseline: list[float], this: list[float]) -> None:
    with pytest.raises(ValueError, match="same number of rounds"):
        run_benchmarks.paired_ratio(baseline, this)
