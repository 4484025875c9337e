"""The benchmarks' confidence interval of a median paired ratio (benchmarks/_common.py)
against hand-computed binomial tail sums."""
import sys
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import paired_ratio, paired_ratio_interval  # noqa: E402


def _times(ratios):
    return {"base": [1.0] * len(ratios), "variant": list(ratios)}


def test_interval_of_eleven_ratios_is_the_second_and_tenth():
    # P(Bin(11, 1/2) <= 1) = 12/2048 = 0.0059 <= 0.025 < P(<= 2) = 67/2048 = 0.0327
    assert (1 + 11) / 2048 <= 0.025 < (1 + 11 + comb(11, 2)) / 2048
    ratios = [1.07, 1.01, 1.05, 1.03, 0.99, 1.04, 1.02, 1.06, 1.00, 1.08, 0.98]
    times = _times(ratios)
    assert paired_ratio(times, "variant", "base") == 1.03
    assert paired_ratio_interval(times, "variant", "base") == (0.99, 1.07)


def test_interval_needs_six_ratios_at_95_percent():
    # n = 5: P(Bin(5, 1/2) <= 0) = 1/32 = 0.031 > 0.025: no pair of order statistics covers 95 %
    assert paired_ratio_interval(_times([1.0, 1.1, 1.2, 1.3, 1.4]), "variant", "base") is None
    # n = 6: 1/64 = 0.016 <= 0.025: the extremes, coverage 1 − 2/64
    assert paired_ratio_interval(_times([1.3, 1.0, 1.2, 1.1, 1.5, 1.4]), "variant",
                                 "base") == (1.0, 1.5)
    # at 80 %, n = 5: P(<= 0) = 0.031 <= 0.1 < P(<= 1) = 6/32: the extremes
    assert paired_ratio_interval(_times([1.0, 1.1, 1.2, 1.3, 1.4]), "variant", "base",
                                 level=0.8) == (1.0, 1.4)
