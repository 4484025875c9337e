"""Paired statistics over seeds for the pre-registered study (``reproduction/PREREGISTRATION.md``).

Both arms of a figure share each seed's initialisation and data order, so every comparison is
paired by seed: one value per seed and arm, differences d_s = a_s − b_s. Numpy and scipy only
(no torch). The paper (Ven & Lederer, arXiv 2106.02260, Sec. 3) reports averages over 25 seeds
and no test; every test here is our choice, fixed in the pre-registration:

* :func:`sign_flip_test`: paired permutation test of the mean difference
  (``scipy.stats.permutation_test``, ``permutation_type="samples"``); exact for n ≤ 16, else a
  seeded Monte Carlo of 100,000 sign vectors (scipy's exact enumeration of 2^25 takes minutes).
* :func:`bootstrap_mean_difference`, :func:`bootstrap_log_ratio`: paired BCa bootstrap CIs
  (``scipy.stats.bootstrap(..., paired=True, method="BCa")``), descriptive only.
* :func:`holm`: Holm's step-down adjusted p-values (scipy has none).
* :func:`tost_paired`, :func:`one_sided_t`: equivalence / non-inferiority by paired t-tests.
* :func:`takeoff_epoch`, :func:`takeoff_test`: first epoch above chance, censored at the last
  epoch, compared by the sign-flip test (valid for a censoring time common to all runs).
* :func:`mcnemar_exact`: exact McNemar test of paired yes/no outcomes ("left chance by epoch k").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Tuple

import numpy as np
from scipy import stats

__all__ = ["EXACT_MAX_N", "MC_RESAMPLES", "BOOT_RESAMPLES", "LOG_FLOOR", "Pairs", "SignFlip",
           "Interval", "Tost", "Takeoff", "McNemar", "pair_by_seed", "sign_flip_test",
           "bootstrap_mean_difference", "bootstrap_log_ratio", "floor_positive", "holm",
           "tost_paired", "one_sided_t", "takeoff_epoch", "takeoff_test", "mcnemar_exact"]

#: the sign-flip test enumerates all 2^n sign vectors up to this n (2^16 = 65,536).
EXACT_MAX_N = 16
#: Monte Carlo sign vectors above EXACT_MAX_N.
MC_RESAMPLES = 100_000
#: bootstrap resamples of the BCa intervals.
BOOT_RESAMPLES = 10_000
#: float32's smallest normal number: values below are set to it before taking logs.
LOG_FLOOR = 1e-38


@dataclass(frozen=True)
class Pairs:
    """Values of two arms on their common seeds (sorted), and the seeds only one arm has."""
    seeds: Tuple[int, ...]
    a: np.ndarray
    b: np.ndarray
    only_a: Tuple[int, ...]
    only_b: Tuple[int, ...]


@dataclass(frozen=True)
class SignFlip:
    n: int
    mean: float
    pvalue: float
    exact: bool


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Tost:
    n: int
    mean: float
    pvalue: float
    p_lower: float
    p_upper: float


@dataclass(frozen=True)
class Takeoff:
    n: int
    mean: float
    median: float
    a_earlier: int
    a_later: int
    tied: int
    pvalue: float
    exact: bool


@dataclass(frozen=True)
class McNemar:
    a_only: int
    b_only: int
    pvalue: float


def _vector(values, name: str, min_n: int = 2) -> np.ndarray:
    """``values`` as a finite 1-D float64 array of at least ``min_n`` entries, else ValueError."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < min_n:
        raise ValueError(f"{name} must be 1-D with at least {min_n} values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite values: {x[~np.isfinite(x)].tolist()}")
    return x


def _paired(a, b) -> Tuple[np.ndarray, np.ndarray]:
    a, b = _vector(a, "a"), _vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired samples need one value per seed in both arms: {a.size} vs {b.size}")
    return a, b


def pair_by_seed(a: Mapping[int, float], b: Mapping[int, float], strict: bool = False) -> Pairs:
    """Align two arms' seed → value maps on their common seeds (ascending).

    Args:
        a, b: seed → value of one statistic (e.g. ``val/acc`` at one epoch) per arm.
        strict: raise instead of dropping seeds that only one arm has (default False: dropped
            seeds are returned in ``only_a``/``only_b`` so that the caller can report them).

    Raises:
        ValueError: ``strict`` and the seed sets differ (names the seeds), or fewer than 2
            common seeds.
    """
    common = sorted(set(a) & set(b))
    only_a, only_b = tuple(sorted(set(a) - set(b))), tuple(sorted(set(b) - set(a)))
    if strict and (only_a or only_b):
        raise ValueError(f"seed sets differ: only in a {list(only_a)}, only in b {list(only_b)}")
    if len(common) < 2:
        raise ValueError(f"need at least 2 common seeds, got {common} (a: {sorted(a)}, b: {sorted(b)})")
    return Pairs(tuple(common), np.array([a[s] for s in common], dtype=np.float64),
                 np.array([b[s] for s in common], dtype=np.float64), only_a, only_b)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def sign_flip_test(d: Sequence[float], exact_max_n: int = EXACT_MAX_N,
                   n_resamples: int = MC_RESAMPLES, seed: int = 0) -> SignFlip:
    """Two-sided paired permutation (sign-flip) test of mean(d) = 0.

    Args:
        d: (n,) paired differences a_s − b_s, n ≥ 2 (any unit).
        exact_max_n: enumerate all 2^n sign vectors when n ≤ this (default 16); else draw
            ``n_resamples`` (default 100,000) sign vectors from ``numpy.random.default_rng(seed)``.

    Returns:
        :class:`SignFlip` with n, the mean difference, scipy's two-sided p-value (Monte Carlo:
        (k + 1)/(n_resamples + 1) per side) and whether it was exact.

    Raises:
        ValueError: fewer than 2 values or a non-finite one.
    """
    d = _vector(d, "d")
    exact = d.size <= exact_max_n
    result = stats.permutation_test((d,), _mean, permutation_type="samples", vectorized=True,
                                    n_resamples=np.inf if exact else n_resamples,
                                    alternative="two-sided", rng=np.random.default_rng(seed))
    return SignFlip(int(d.size), float(d.mean()), float(result.pvalue), exact)


def _diff_mean(x, y, axis=-1):
    return np.mean(x - y, axis=axis)


def bootstrap_mean_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                              n_resamples: int = BOOT_RESAMPLES, seed: int = 0) -> Interval:
    """Mean of the paired differences a_s − b_s with its paired BCa bootstrap CI.

    ``scipy.stats.bootstrap((a, b), paired=True, method="BCa")`` with
    ``numpy.random.default_rng(seed)``. If every difference is the same, the interval is that
    value (the bootstrap distribution is degenerate); if BCa fails otherwise, low/high are NaN.

    Args:
        a, b: (n,) values of the two arms, in the same seed order, n ≥ 2.

    Raises:
        ValueError: unequal lengths, n < 2, non-finite values, or confidence outside (0, 1).
    """
    a, b = _paired(a, b)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    d = a - b
    if np.ptp(d) == 0:
        return Interval(float(d[0]), float(d[0]), float(d[0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = stats.bootstrap((a, b), _diff_mean, paired=True, vectorized=True, method="BCa",
                                 n_resamples=n_resamples, confidence_level=confidence,
                                 rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(float(d.mean()), float(ci.low), float(ci.high))


def floor_positive(values: Sequence[float], floor: float = LOG_FLOOR) -> Tuple[np.ndarray, int]:
    """(values with every entry below ``floor`` set to ``floor``, how many were set).

    For log-scale gradient statistics, which can be exactly 0 (dead relu units; FTZ kernels).
    Default floor 1e-38, float32's smallest normal number (our choice; pre-registered).

    Raises:
        ValueError: non-finite or negative values, or ``floor`` ≤ 0.
    """
    x = _vector(values, "values", min_n=1)
    if floor <= 0 or np.any(x < 0):
        raise ValueError(f"need floor > 0 and values ≥ 0, got floor {floor}, min {x.min()}")
    low = x < floor
    return np.where(low, floor, x), int(low.sum())


def bootstrap_log_ratio(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                        n_resamples: int = BOOT_RESAMPLES, seed: int = 0) -> Interval:
    """Ratio of geometric means 10^mean(log10 a_s − log10 b_s), with the paired BCa CI of the
    mean log-difference mapped back by 10^x (so the CI is a ratio too).

    Args:
        a, b: (n,) positive values (e.g. ``grad_epoch/global/abs_q50``), same seed order; apply
            :func:`floor_positive` first to values that can be 0.

    Raises:
        ValueError: a value ≤ 0, unequal lengths, n < 2, or non-finite values.
    """
    a, b = _paired(a, b)
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("log-ratio needs positive values; use floor_positive first")
    ci = bootstrap_mean_difference(np.log10(a), np.log10(b), confidence, n_resamples, seed)
    return Interval(10.0 ** ci.estimate, 10.0 ** ci.low, 10.0 ** ci.high)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order.

    With p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)). Rejecting
    where adjusted p < α controls the family-wise error rate at α (Holm 1979). Ties keep their
    input order (the adjusted values of tied p-values are equal anyway).

    Raises:
        ValueError: a p-value outside [0, 1] or NaN.
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    if p.size and not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def one_sided_t(d: Sequence[float], null: float, alternative: str) -> float:
    """p-value of the one-sided one-sample t-test of mean(d) against ``null``.

    ``alternative="greater"``: H0 mean ≤ null; ``"less"``: H0 mean ≥ null
    (``scipy.stats.ttest_1samp``). If every d_s is equal (zero variance): 0 when the mean lies
    strictly on the alternative's side of ``null``, else 1 (our convention).

    Raises:
        ValueError: n < 2, non-finite values, or an alternative other than "greater"/"less".
    """
    d = _vector(d, "d")
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    if np.ptp(d) == 0:
        side = d[0] > null if alternative == "greater" else d[0] < null
        return 0.0 if side else 1.0
    return float(stats.ttest_1samp(d, null, alternative=alternative).pvalue)


def tost_paired(d: Sequence[float], margin: float) -> Tost:
    """Paired equivalence test (TOST) of |mean(d)| < ``margin``.

    Two one-sided t-tests: H0 mean ≤ −margin and H0 mean ≥ +margin; p = the larger of the two
    (equivalence shown at level α iff the (1 − 2α) t-interval lies inside (−margin, margin)).
    The t-test, not a permutation test: shifting d by the margin and flipping signs would assume
    d symmetric about ±margin (our choice; pre-registered).

    Args:
        d: (n,) paired differences, n ≥ 2, in the unit of ``margin`` (e.g. val/acc fraction).
        margin: δ > 0.

    Raises:
        ValueError: margin ≤ 0, n < 2, or non-finite values.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    d = _vector(d, "d")
    p_lower = one_sided_t(d, -margin, "greater")
    p_upper = one_sided_t(d, margin, "less")
    return Tost(int(d.size), float(d.mean()), max(p_lower, p_upper), p_lower, p_upper)


def takeoff_epoch(values: Sequence[float], threshold: float = 0.15, last_epoch: int = 30) -> int:
    """First epoch (1-based) whose value exceeds ``threshold``; ``last_epoch + 1`` if none
    (censored: "after the last epoch").

    Args:
        values: (≥ last_epoch,) a run's ``val/acc`` per epoch, epoch 1 first; only the first
            ``last_epoch`` entries are used, so that every run has the same censoring time.
        threshold: 0.15 by default (chance is 0.10 on CIFAR-10; the pre-registered "left chance").

    Raises:
        ValueError: fewer than ``last_epoch`` values (a shorter run would be censored earlier
            than the others) or last_epoch < 1.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if last_epoch < 1 or x.size < last_epoch:
        raise ValueError(f"need {last_epoch} epochs (last_epoch ≥ 1), got {x.size} values")
    above = np.flatnonzero(x[:last_epoch] > threshold)
    return int(above[0]) + 1 if above.size else last_epoch + 1


def takeoff_test(t_a: Sequence[int], t_b: Sequence[int], **kwargs) -> Takeoff:
    """Paired comparison of take-off epochs censored at a common last epoch.

    d_s = t_b − t_a (positive: arm a takes off earlier), with censored runs coded
    ``last_epoch + 1`` by :func:`takeoff_epoch`; :func:`sign_flip_test` on d (``kwargs`` go
    there). Valid because the censoring time is the same fixed epoch for every run: the coded
    value min(T, last + 1) is one fixed function of the true take-off T in both arms, so arms
    exchangeable within a seed stay exchangeable. Seeds censored in both arms give d_s = 0.

    Args:
        t_a, t_b: (n,) take-off epochs of the two arms, same seed order, n ≥ 2.

    Returns:
        :class:`Takeoff`: n, mean and median of d, counts of seeds where a is earlier / later /
        tied, the sign-flip p-value and whether it was exact.

    Raises:
        ValueError: unequal lengths, n < 2, or non-integer epochs.
    """
    a, b = _paired(t_a, t_b)
    if np.any(a != np.round(a)) or np.any(b != np.round(b)):
        raise ValueError(f"take-off epochs must be integers, got {a.tolist()}, {b.tolist()}")
    d = b - a
    test = sign_flip_test(d, **kwargs)
    return Takeoff(int(d.size), float(d.mean()), float(np.median(d)), int((d > 0).sum()),
                   int((d < 0).sum()), int((d == 0).sum()), test.pvalue, test.exact)


def mcnemar_exact(yes_a: Sequence[bool], yes_b: Sequence[bool]) -> McNemar:
    """Exact McNemar test of paired yes/no outcomes (e.g. "left chance by epoch k" per seed).

    Discordant seeds: ``a_only`` (yes in a, no in b) and ``b_only``. Two-sided p of
    ``scipy.stats.binomtest(a_only, a_only + b_only, 0.5)``; 1 without discordant seeds.

    Raises:
        ValueError: unequal lengths, fewer than 1 seed, or values other than booleans/0/1.
    """
    a = np.asarray(yes_a).reshape(-1)
    b = np.asarray(yes_b).reshape(-1)
    if a.size < 1 or a.shape != b.shape:
        raise ValueError(f"need one outcome per seed in both arms, got {a.size} and {b.size}")
    for x in (a, b):
        if not np.all(np.isin(x, [0, 1])):
            raise ValueError(f"outcomes must be booleans (or 0/1), got {x.tolist()}")
    a, b = a.astype(bool), b.astype(bool)
    n_a, n_b = int((a & ~b).sum()), int((b & ~a).sum())
    p = 1.0 if n_a + n_b == 0 else float(stats.binomtest(n_a, n_a + n_b, 0.5).pvalue)
    return McNemar(n_a, n_b, p)
