"""The benchmark harness's figures (benchmarks/run_benchmarks.py): the side-by-side paired ratio,
and the best of several processes, cold runs each on an empty cache."""

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


def test_each_cold_run_is_a_first_run_on_an_empty_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold run on a cache another run wrote would be a warm run: each process gets its own
    empty folder; the best run is kept and every run listed."""
    seen: list[tuple[str, int, list[str]]] = []
    rates = iter([700_000.0, 1_200_000.0, 900_000.0])

    def fake_child(kind: str, source: str, repeat: int, cache_dir: str) -> dict[str, object]:
        seen.append((cache_dir, repeat, sorted(p.name for p in Path(cache_dir).iterdir())))
        (Path(cache_dir) / "feed.cache").write_bytes(b"written by this run")
        rate = next(rates)
        run = {"events": 87_402, "seconds": 87_402 / rate, "events_per_second": rate}
        return {**run, "runs": [run], "peak_rss_mb": rate / 100_000}

    monkeypatch.setattr(run_benchmarks, "run_child", fake_child)
    best = run_benchmarks.best_of_processes("recorded", "feed.gz", 3, 1)
    assert len({folder for folder, _, _ in seen}) == 3
    assert all(repeat == 1 and contents == [] for _, repeat, contents in seen)
    assert best["events_per_second"] == 1_200_000.0
    assert [run["events_per_second"] for run in best["runs"]] == [700_000.0, 1_200_000.0, 900_000.0]
    assert best["peak_rss_mb"] == 12.0


def test_warm_runs_share_the_cache_and_every_process_runs_are_listed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The best run of all processes is kept, not the best process's first one."""
    calls: list[tuple[str, int]] = []
    rates = iter([[1.0e6, 2.0e6], [2.6e6, 1.5e6]])

    def fake_child(kind: str, source: str, repeat: int, cache_dir: str) -> dict[str, object]:
        calls.append((cache_dir, repeat))
        runs = [{"events": 10, "seconds": 10 / rate, "events_per_second": rate} for rate in next(rates)]
        best = max(runs, key=lambda run: run["events_per_second"])
        return {**best, "runs": runs, "peak_rss_mb": 30.0}

    monkeypatch.setattr(run_benchmarks, "run_child", fake_child)
    best = run_benchmarks.best_of_processes("recorded", "feed.gz", 2, 2, str(tmp_path))
    assert calls == [(str(tmp_path), 2), (str(tmp_path), 2)]
    assert best["events_per_second"] == 2.6e6
    assert [run["events_per_second"] for run in best["runs"]] == [1.0e6, 2.0e6, 2.6e6, 1.5e6]
