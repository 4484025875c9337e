"""Theorem 1 (Sec. 2.2) as printed, where it fails, and its sharp range of t.

Why: the printed theorem assumes, for a fixed t ∈ (0, 1), r ≥ |d| and

    |θ^i| ≥ log(1/t) / min{|x|, 1/2}   for all i            (the "printed threshold")

and concludes |∂h/∂θ^k| ≤ |d|·t and |∂(h + r/2·Σθ²)/∂θ^k| ≥ |d|·log(1/t). Both conclusions
are false for t near 1 (the threshold then tends to 0, so "large" parameters are small).
This module gives the constants that make the statement sharp (tests/test_toy_printed.py):

* Lemma (any tanh chain, any x, any k with θ^k ≠ 0):  |∂g/∂θ^k| ≤ c / |θ^k|,  where
  c := max_u u·sech²(u) = u*·sech²(u*) ≈ 0.44774 and u* ≈ 0.77170 solves u·tanh(u) = 1/2.
  (Write θ^j = u_j / f^{j−1}; the product telescopes into factors 2u/sinh(2u) ≤ 1 and one
  factor u·sech²(u) ≤ c.)
* Conclusion 1 holds iff t ≤ t₁* ≈ 0.73849, the root of t·log(1/t) = c/2 in (1/e, 1).
  (For t ≥ 0.0952 it follows from the lemma and |θ^k| ≥ 2·log(1/t); for t ≤ 1/4 from the
  printed proof's idea, |f^i| ≥ 1/2 and sech²(log(1/t)) ≤ 4t².)
* Conclusion 2 holds iff t ≤ t₂* = exp(−√(c/2)) ≈ 0.62304 (from r|θ^k| − |d|·c/|θ^k|,
  increasing in |θ^k|, at |θ^k| = 2·log(1/t)).
* Both are sharp: for larger t, l = 1, x = u*/(2·log(1/t)), θ = 2·log(1/t) violates them.

Everything here is plain float math (α = 1, tanh, h[z] = z²); the chain itself is
:mod:`lightning_sig.toy.chain`.
"""
from __future__ import annotations

import math
from typing import Callable, Tuple

__all__ = [
    "printed_threshold", "saturation_peak", "largest_t_unregularized", "largest_t_regularized",
    "printed_proof_largest_t", "extremal_point",
]


def _check_t(t: float) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1.0:
        raise ValueError(f"t must be a number in (0, 1), got {t!r}.")
    return float(t)


def _bisect(fn: Callable[[float], float], lo: float, hi: float) -> float:
    """Root of a continuous ``fn`` with a sign change on [lo, hi], to float64 resolution."""
    f_lo = fn(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if (fn(mid) > 0) == (f_lo > 0):
            lo, f_lo = mid, fn(mid)
        else:
            hi = mid
    return 0.5 * (lo + hi)


def printed_threshold(t: float, x: float) -> float:
    """The printed assumption's bound log(1/t) / min{|x|, 1/2} on every |θ^i| (Theorem 1).

    Args:
        t: the theorem's constant, 0 < t < 1.
        x: the input x_sgd, x ≠ 0.

    Raises: ValueError for t outside (0, 1) or x = 0 (the bound would be infinite).
    """
    t = _check_t(t)
    if x == 0 or not math.isfinite(x):
        raise ValueError(f"x must be finite and non-zero, got {x!r}.")
    return math.log(1.0 / t) / min(abs(x), 0.5)


def saturation_peak() -> Tuple[float, float]:
    """(u*, c): the maximiser and maximum of u·sech²(u) = u·tanh'(u) on u ≥ 0.

    u* solves u·tanh(u) = 1/2 (u* ≈ 0.771702), c = u*·sech²(u*) ≈ 0.447743. The constant of the
    lemma |∂g/∂θ^k| ≤ c/|θ^k| (module docstring).
    """
    u = _bisect(lambda v: v * math.tanh(v) - 0.5, 0.1, 2.0)
    return u, u / math.cosh(u) ** 2


def largest_t_unregularized() -> float:
    """t₁* ≈ 0.738490: the largest t for which |∂h/∂θ^k| ≤ |d|·t follows from the printed
    assumptions (root of t·log(1/t) = c/2 in (1/e, 1)); it fails for every t in (t₁*, 1)."""
    _, c = saturation_peak()
    return _bisect(lambda t: t * math.log(1.0 / t) - 0.5 * c, 1.0 / math.e, 1.0 - 1e-12)


def largest_t_regularized() -> float:
    """t₂* = exp(−√(c/2)) ≈ 0.623036: the largest t for which the regularized partial is
    ≥ |d|·log(1/t) under the printed assumptions (r ≥ |d|); it fails for every t in (t₂*, 1)."""
    _, c = saturation_peak()
    return math.exp(-math.sqrt(0.5 * c))


def printed_proof_largest_t() -> float:
    """1/e: the printed proof uses |θ^1 x| ≥ 1 (for tanh(θ^1 x) ≥ tanh 1) and |θ^i| ≥ 2; the
    printed assumption gives |θ^1 x| ≥ log(1/t) and |θ^i| ≥ 2·log(1/t), i.e. both iff t ≤ 1/e."""
    return 1.0 / math.e


def extremal_point(t: float) -> Tuple[float, float]:
    """(θ, x) of a one-neuron chain (l = 1) on the printed threshold with |∂g/∂θ| = c/θ.

    θ = 2·log(1/t) and x = u*/θ, so θ·x = u* and x ≥ 1/2 (then the threshold is 2·log(1/t)).
    For t > t₁* it violates conclusion 1 (c/θ > t); for t > t₂*, with r = |d| and y > g, it
    violates conclusion 2 (|d|·(θ − c/θ) < |d|·log(1/t)).

    Raises: ValueError unless exp(−u*) ≤ t < 1 (below that, x would be < 1/2).
    """
    t = _check_t(t)
    u_star, _ = saturation_peak()
    theta = 2.0 * math.log(1.0 / t)
    if not t >= math.exp(-u_star):
        raise ValueError(f"extremal_point needs exp(-u*) = {math.exp(-u_star):.6f} <= t < 1, got {t!r}.")
    return theta, u_star / theta
