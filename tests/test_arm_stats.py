"""The seed statistics of the tables: hand-computed quantiles, chance counts, paired differences."""
from __future__ import annotations

from pathlib import Path

import pytest

from lightning_sig.experiments.arm_stats import _markdown, epoch_table, left_chance, \
    paired_difference, values_by_epoch
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


def test_paired_difference_pairs_by_seed():
    # a − b per seed 0..3: 0.1, 0.2, 0.3, 0.4 on top of a large shared seed effect; seed 4 only in a
    base = {0: 0.0, 1: 0.5, 2: -0.4, 3: 0.9}
    a = {s: base[s] + 0.1 * (s + 1) for s in base} | {4: 0.7}
    n, diff, low, high, p, dropped = paired_difference(a, base)
    assert (n, dropped) == (4, (4,))
    assert diff == pytest.approx(0.25)
    assert 0.1 <= low < diff < high <= 0.4  # inside the range of the paired differences
    assert p == pytest.approx(2 / 16)  # exact sign-flip: all 4 differences positive
    lines = _markdown([_run("a", s, [a[s]]) for s in a] + [_run("b", s, [base[s]]) for s in base],
                      ["a", "b"], [1])
    assert lines[-1].startswith("| 1 | 4 (seeds [4] unpaired) | +0.2500 | [") and lines[-1].endswith(
        "| 0.125 |")
    with pytest.raises(ValueError, match="at least 2 common seeds"):
        paired_difference({0: 0.1}, {0: 0.2})
