"""The seed statistics of the verdicts: hand-computed quantiles, chance counts, bootstrap."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightning_sig.experiments.arm_stats import bootstrap_difference, epoch_table, left_chance, \
    values_by_epoch
from lightning_sig.experiments.figure_data import Point, RunLog


def _run(arm, seed, accs):
    return RunLog("fig", arm, seed, Path("."), {"val/acc": [
        Point(e + 1, e, 0.0, a) for e, a in enumerate(accs)]})


RUNS = [_run("r", 0, [0.10, 0.16, 0.30]), _run("r", 1, [0.10, 0.12, 0.14]),
        _run("r", 2, [0.11, 0.10, 0.20]), _run("u", 0, [0.10, 0.10, 0.10])]


def test_epoch_table_is_numpy_linear_quantiles_over_seeds():
    rows = epoch_table(values_by_epoch(RUNS, "r"))
    assert [r[:2] for r in rows] == [(1, 3), (2, 3), (3, 3)]
    # epoch 3: values 0.14, 0.20, 0.30 -> median 0.20, q25 = 0.14 + 0.5·0.06, q75 = 0.20 + 0.5·0.10
    assert rows[2][2:] == pytest.approx((0.20, 0.17, 0.25))


def test_left_chance_counts_seeds_above_the_threshold_by_the_epoch():
    values = values_by_epoch(RUNS, "r")
    assert left_chance(values, 1) == (0, 3)
    assert left_chance(values, 2) == (1, 3)  # seed 0 at 0.16
    assert left_chance(values, 3) == (2, 3)  # and seed 2 at 0.20; seed 1 never above 0.15


def test_bootstrap_difference_mean_and_percentile_interval():
    diff, low, high = bootstrap_difference([0.3, 0.2, 0.4], [0.1, 0.1], resamples=20_000)
    assert diff == pytest.approx(0.2)
    # resampled means of a lie in [0.2, 0.4], b is constant: the CI lies in [0.1, 0.3]
    assert 0.1 - 1e-12 <= low < diff < high <= 0.3 + 1e-12  # float64 means of 3 values: ~1e-16
    rng = np.random.default_rng(0)
    a = rng.choice([0.3, 0.2, 0.4], (20_000, 3)).mean(1) - rng.choice([0.1, 0.1], (20_000, 2)).mean(1)
    assert (low, high) == tuple(np.percentile(a, [2.5, 97.5]))
    with pytest.raises(ValueError, match="need values in both arms"):
        bootstrap_difference([], [0.1])
