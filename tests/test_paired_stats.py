"""The pre-registered paired statistics against hand-computed cases
(``lightning_sig/experiments/paired_stats.py``; ``reproduction/PREREGISTRATION.md`` Sec. 3)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lightning_sig.experiments import paired_stats as ps


def _enumerated_p(d):
    """Two-sided sign-flip p by brute force: P(|sum of ±d| ≥ |sum d|) over all 2^n signs."""
    d = np.asarray(d, dtype=float)
    sums = [abs(np.dot(signs, d)) for signs in itertools.product((1, -1), repeat=d.size)]
    return sum(s >= abs(d.sum()) - 1e-12 for s in sums) / len(sums)


def test_sign_flip_exact_n4_by_hand():
    # all of 1, 2, 3, 4 positive: only the all-plus and all-minus vectors reach |sum| = 10
    r = ps.sign_flip_test([1.0, 2.0, 3.0, 4.0])
    assert (r.n, r.mean, r.exact) == (4, 2.5, True)
    assert r.pvalue == pytest.approx(2 / 16)
    # 4, 3, 2, −1 (sum 8): |sum| ≥ 8 when the flipped set sums to ≤ 1 or ≥ 9: {}, {1} and the
    # complements {1, 2, 3, 4}, {2, 3, 4} -> 4 of 16
    assert ps.sign_flip_test([4.0, 3.0, 2.0, -1.0]).pvalue == pytest.approx(4 / 16)
    d = [0.3, -0.1, 0.25, 0.05, 0.2, -0.02]
    assert ps.sign_flip_test(d).pvalue == pytest.approx(_enumerated_p(d))
    # zero differences do not move the statistic; all-zero -> p = 1
    assert ps.sign_flip_test([0.0, 0.0, 0.0]).pvalue == pytest.approx(1.0)


def test_sign_flip_monte_carlo_above_16_pairs():
    # 30 positive differences: no random sign vector but all-plus reaches the observed mean,
    # so each side has (0 + 1) / (100,000 + 1) and two-sided is twice that
    r = ps.sign_flip_test(np.arange(1.0, 31.0))
    assert not r.exact and r.n == 30
    assert r.pvalue == pytest.approx(2 / 100_001)
    again = ps.sign_flip_test(np.arange(1.0, 31.0) - 15.2)  # seeded: reproducible
    assert again.pvalue == ps.sign_flip_test(np.arange(1.0, 31.0) - 15.2).pvalue


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, 1·0.04 = .02 .03 .06 .04,
    # made monotone: .02 .03 .06 .06; back in input order
    assert ps.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert ps.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # 2·0.5 capped at 1, then max
    assert ps.holm([0.02, 0.02, 0.02]) == pytest.approx([0.06, 0.06, 0.06])
    assert ps.holm([0.04]) == pytest.approx([0.04])
    assert ps.holm([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ps.holm([0.1, 1.5])
    with pytest.raises(ValueError):
        ps.holm([float("nan")])


def _t3_cdf(t):
    """Student t CDF with 3 degrees of freedom, closed form."""
    return 0.5 + (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3))) / math.pi


def test_tost_by_hand():
    d = [0.01, -0.01, 0.02, 0.0]  # mean 0.005, sd sqrt(5e-4 / 3), se = sd / 2
    se = math.sqrt(5e-4 / 3) / 2
    r = ps.tost_paired(d, 0.05)
    assert r.mean == pytest.approx(0.005)
    assert r.p_lower == pytest.approx(1 - _t3_cdf((0.005 + 0.05) / se))
    assert r.p_upper == pytest.approx(_t3_cdf((0.005 - 0.05) / se))
    assert r.pvalue == r.p_upper and r.pvalue < 0.01  # 0.0030: equivalent at δ = 0.05
    narrow = ps.tost_paired(d, 0.01)  # t = (0.005 − 0.01)/se = −0.775: not equivalent
    assert narrow.pvalue == pytest.approx(_t3_cdf((0.005 - 0.01) / se)) and narrow.pvalue > 0.2
    # zero variance: decided by the mean alone
    assert ps.tost_paired([0.01, 0.01], 0.02).pvalue == 0.0
    assert ps.tost_paired([0.03, 0.03], 0.02).pvalue == 1.0
    with pytest.raises(ValueError, match="margin"):
        ps.tost_paired(d, 0.0)


def test_one_sided_t_non_inferiority():
    d = [0.01, -0.01, 0.02, 0.0]
    se = math.sqrt(5e-4 / 3) / 2
    assert ps.one_sided_t(d, -0.05, "greater") == pytest.approx(1 - _t3_cdf(0.055 / se))
    with pytest.raises(ValueError, match="alternative"):
        ps.one_sided_t(d, 0.0, "two-sided")


def test_takeoff_epoch_censored_after_the_last_epoch():
    assert ps.takeoff_epoch([0.10, 0.12, 0.20], last_epoch=3) == 3
    assert ps.takeoff_epoch([0.10, 0.15, 0.15], last_epoch=3) == 4  # strictly above 0.15
    assert ps.takeoff_epoch([0.3, 0.1, 0.1, 0.1], last_epoch=3) == 1  # epoch 4 ignored
    assert ps.takeoff_epoch([0.1, 0.1, 0.1, 0.4], last_epoch=3) == 4  # censored at 3
    with pytest.raises(ValueError, match="need 30 epochs"):
        ps.takeoff_epoch([0.2] * 12)


def test_takeoff_test_by_hand():
    # d = t_b − t_a = 29, 28, 0, 1: a earlier in 3, tied in 1 (both censored at 31);
    # |sum| = 58 only with the nonzero signs all equal: 2 · 2 (the zero's sign) of 16
    r = ps.takeoff_test([2, 3, 31, 5], [31, 31, 31, 6])
    assert (r.n, r.a_earlier, r.a_later, r.tied) == (4, 3, 0, 1)
    assert (r.mean, r.median) == (14.5, 14.5)
    assert r.pvalue == pytest.approx(4 / 16) and r.exact
    with pytest.raises(ValueError, match="integers"):
        ps.takeoff_test([1.5, 2], [3, 4])


def test_mcnemar_exact_counts():
    # 4-0 discordant: two-sided binomial p = 2 · 0.5^4 (the Figure 2 count)
    r = ps.mcnemar_exact([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0])
    assert (r.a_only, r.b_only) == (4, 0) and r.pvalue == pytest.approx(0.125)
    # 5-1: 2 · (C(6,0) + C(6,1)) / 64
    r = ps.mcnemar_exact([True] * 5 + [False], [False] * 5 + [True])
    assert (r.a_only, r.b_only) == (5, 1) and r.pvalue == pytest.approx(14 / 64)
    assert ps.mcnemar_exact([1, 0], [1, 0]).pvalue == 1.0
    with pytest.raises(ValueError, match="booleans"):
        ps.mcnemar_exact([2, 0], [1, 0])


def test_bootstrap_is_paired_and_bca():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 10, 12)  # large seed-to-seed spread, shared by both arms
    d = np.array([0.9, 1.1, 1.0, 1.2, 0.8, 1.0, 1.05, 0.95, 1.1, 0.9, 1.0, 1.0])
    ci = ps.bootstrap_mean_difference(base + d, base)
    assert ci.estimate == pytest.approx(d.mean())
    # paired: the interval depends on d only (an unpaired one would be ~±6 wide here)
    assert d.min() <= ci.low < ci.estimate < ci.high <= d.max()
    shifted = ps.bootstrap_mean_difference(base + d + 100, base + 100)
    assert (shifted.low, shifted.high) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert ps.bootstrap_mean_difference([1, 2, 3], [0, 1, 2]) == ps.Interval(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="one value per seed"):
        ps.bootstrap_mean_difference([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        ps.bootstrap_mean_difference([1], [1])


def test_log_ratio_is_the_geometric_mean_ratio():
    b = np.array([1e-7, 3e-6, 2e-3, 5e-5])
    exact = ps.bootstrap_log_ratio(10 * b, b)  # every seed ×10: degenerate, exactly 10
    assert (exact.estimate, exact.low, exact.high) == pytest.approx((10, 10, 10))
    a = b * np.array([2.0, 8.0, 4.0, 4.0])  # geometric mean of the factors: (256)^(1/4) = 4
    r = ps.bootstrap_log_ratio(a, b)
    assert r.estimate == pytest.approx(4.0) and 2.0 <= r.low < 4.0 < r.high <= 8.0
    with pytest.raises(ValueError, match="positive"):
        ps.bootstrap_log_ratio([0.0, 1.0], [1.0, 1.0])
    floored, n = ps.floor_positive([0.0, 1e-40, 2.0])
    assert floored.tolist() == [1e-38, 1e-38, 2.0] and n == 2


def test_pair_by_seed_drops_or_refuses_unpaired_seeds():
    p = ps.pair_by_seed({0: 0.1, 1: 0.2, 3: 0.4}, {3: 1.0, 1: 2.0, 2: 3.0})
    assert p.seeds == (1, 3) and p.a.tolist() == [0.2, 0.4] and p.b.tolist() == [2.0, 1.0]
    assert (p.only_a, p.only_b) == ((0,), (2,))
    with pytest.raises(ValueError, match=r"only in a \[0\], only in b \[2\]"):
        ps.pair_by_seed({0: 0.1, 1: 0.2, 3: 0.4}, {3: 1.0, 1: 2.0, 2: 3.0}, strict=True)
    with pytest.raises(ValueError, match="at least 2 common seeds"):
        ps.pair_by_seed({0: 0.1}, {0: 0.2})
    with pytest.raises(ValueError, match="non-finite"):
        ps.sign_flip_test([0.1, float("nan")])
