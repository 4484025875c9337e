"""Sec. 2 as printed (arXiv 2106.02260): Theorem 1, Theorem 2, their proofs' steps, the printed
gradient formulas with f^0 := 1, and the four properties of Sec. 2.2.

Each test first checks the statement as printed, then the corrected one. Everything is float64;
a vectorised numpy tanh chain (an independent reference path, cross-checked against
lightning_sig.toy.chain) makes the dense searches cheap. Verdicts: docs/toy_model.md.
"""
import math

import numpy as np
import pytest
import torch

from lightning_sig.toy import chain as toy
from lightning_sig.toy import theorem1

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

F64 = torch.float64
U_STAR, C = theorem1.saturation_peak()
T1, T2 = theorem1.largest_t_unregularized(), theorem1.largest_t_regularized()


def _chain_grad(theta, x):
    """|∂g/∂θ^k| of a tanh chain, batched: theta (N, l), x (N,) → (N, l) (α = 1)."""
    n, l = theta.shape
    f = np.empty((n, l + 1))
    f[:, 0] = x
    for j in range(l):
        f[:, j + 1] = np.tanh(theta[:, j] * f[:, j])
    sat = 1.0 - f[:, 1:] ** 2                      # tanh'(θ^j f^{j−1}), (N, l)
    factor = theta * sat                           # θ^j tanh'(·), (N, l)
    down = np.ones((n, l))                         # Π_{j>k} factor_j
    for k in range(l - 2, -1, -1):
        down[:, k] = down[:, k + 1] * factor[:, k + 1]
    return np.abs(down * sat * f[:, :-1]), f[:, -1]


def _printed_assumption_points(t, l, n, rng):
    """n random (θ, x) meeting |θ^i| ≥ log(1/t)/min{|x|, 1/2}: x log-uniform in ±[1e-3, 1e3],
    |θ^i| = threshold·(1 or log-uniform up to 1e4), random signs. Shapes (n, l), (n,)."""
    x = np.exp(rng.uniform(math.log(1e-3), math.log(1e3), n)) * rng.choice([-1.0, 1.0], n)
    thr = math.log(1 / t) / np.minimum(np.abs(x), 0.5)
    scale = np.where(rng.random((n, l)) < 0.3, 1.0, np.exp(rng.uniform(0, math.log(1e4), (n, l))))
    return thr[:, None] * scale * rng.choice([-1.0, 1.0], (n, l)), x


def test_numpy_reference_chain_matches_closed_form_module():
    rng = np.random.default_rng(0)
    theta, x = rng.normal(0, 2, (5, 4)), rng.normal(0, 2, 5)
    got, _ = _chain_grad(theta, x)
    for i in range(5):
        ref = toy.output_gradient(torch.tensor(theta[i], dtype=F64), float(x[i]), "tanh").abs()
        np.testing.assert_allclose(got[i], ref.numpy(), rtol=1e-12, atol=1e-300)


# --------------------------------------------------------------------------- Theorem 1


def _plain_and_regularized(theta, x, y, r):
    th = torch.tensor(theta, dtype=F64)
    d = abs(float(toy.loss_derivative(th, x, y, "tanh")))
    plain = abs(float(toy.loss_gradient(th, x, y, "tanh")[0]))
    return d, plain, abs(float(toy.loss_gradient(th, x, y, "tanh", r=d if r is None else r)[0]))


def test_theorem1_as_printed_fails_issue_counterexamples():
    """As printed, false near t = 1. (a) l = 1, t = 0.9, x = 4, θ = 0.2108 ≥ 0.21072, y = 0:
    |∂h/∂θ| = |d|·4·sech²(0.8432) ≈ 2.900 > |d|·t ≈ 1.2375. (b) t = 0.7, x = 1.137,
    θ = 0.7134 ≥ 0.71335, y = 1.5, r = |d|: regularized partial ≈ 0.1446 < |d|·log(1/t) ≈ 0.5919.
    Expected values written out with the math module."""
    assert theorem1.printed_threshold(0.9, 4.0) == pytest.approx(2 * math.log(1 / 0.9), rel=1e-15)
    assert 0.2108 >= theorem1.printed_threshold(0.9, 4.0) == pytest.approx(0.210721, abs=1e-6)
    g = math.tanh(0.2108 * 4.0)
    d = 2 * abs(0.0 - g)
    d_got, plain, _ = _plain_and_regularized([0.2108], 4.0, 0.0, 0.0)
    assert d_got == pytest.approx(d, rel=1e-14)
    assert plain == pytest.approx(d * 4.0 * (1 - g * g), rel=1e-13) == pytest.approx(2.9004, abs=1e-4)
    assert plain > d * 0.9 == pytest.approx(1.2375, abs=1e-4)

    t, x, th, y = 0.7, 1.137, 0.7134, 1.5
    assert th >= theorem1.printed_threshold(t, x)
    g = math.tanh(th * x)
    d = 2 * abs(y - g)
    _, _, reg = _plain_and_regularized([th], x, y, None)
    assert reg == pytest.approx(abs(d * th - d * x * (1 - g * g)), rel=1e-12)
    assert reg == pytest.approx(0.1446, abs=1e-4) and d * math.log(1 / t) == pytest.approx(0.5919, abs=1e-4)
    assert reg < d * math.log(1 / t)


def test_saturation_peak_and_largest_t_constants():
    """u* solves u·tanh u = 1/2; c = max u·sech²u (dense grid); t₁*·log(1/t₁*) = c/2 with
    t₁* ∈ (1/e, 1); t₂* = exp(−√(c/2)). Values: u* ≈ 0.771702, c ≈ 0.447743, t₁* ≈ 0.738490,
    t₂* ≈ 0.623036."""
    assert U_STAR * math.tanh(U_STAR) == pytest.approx(0.5, abs=1e-15)
    u = np.linspace(0, 5, 2_000_001)
    assert C == pytest.approx(float(np.max(u / np.cosh(u) ** 2)), abs=1e-12)
    assert (U_STAR, C) == pytest.approx((0.771702, 0.447743), abs=1e-6)
    assert T1 * math.log(1 / T1) == pytest.approx(C / 2, abs=1e-15) and 1 / math.e < T1 < 1
    assert (T1, T2) == pytest.approx((0.738490, 0.623036), abs=1e-6)
    assert math.log(1 / T2) ** 2 == pytest.approx(C / 2, rel=1e-14)


def test_gradient_lemma_c_over_theta_any_chain():
    """Lemma behind the corrected Theorem 1: for every tanh chain and x, |∂g/∂θ^k|·|θ^k| ≤ c,
    with equality for l = 1 at θx = u* (50 000 random chains, l ≤ 6, θ, x log-uniform)."""
    rng = np.random.default_rng(1)
    for l in range(1, 7):
        theta = np.exp(rng.uniform(-7, 7, (50_000 // l, l))) * rng.choice([-1.0, 1.0], (50_000 // l, l))
        x = np.exp(rng.uniform(-7, 7, len(theta))) * rng.choice([-1.0, 1.0], len(theta))
        grad, _ = _chain_grad(theta, x)
        assert np.max(grad * np.abs(theta)) <= C * (1 + 1e-12)
    grad, _ = _chain_grad(np.array([[3.0]]), np.array([U_STAR / 3.0]))
    assert float(grad[0, 0]) * 3.0 == pytest.approx(C, rel=1e-14)


T_GRID = sorted(set(np.geomspace(1e-8, T1, 30).tolist()) | {0.1, 0.25, 1 / math.e, 0.5, 0.7, T1})


def test_theorem1_conclusion1_holds_exactly_up_to_t1():
    """Corrected Theorem 1 (first claim): under the printed assumptions, |∂h/∂θ^k| ≤ |d|·t for
    every t ≤ t₁* ≈ 0.738490 (so also well beyond the printed proof's t ≤ 1/e). Dense search:
    35 values of t, l = 1..4, 4 000 points each, every k. At t = t₁* the worst point is within
    1 % of |d|·t (the bound is attained in the limit), so the check is not loose."""
    rng = np.random.default_rng(2)
    worst_at_t1 = 0.0
    for t in T_GRID:
        for l in range(1, 5):
            theta, x = _printed_assumption_points(t, l, 4000, rng)
            if l == 1 and t >= math.exp(-U_STAR):  # add the extremal point itself
                th, xe = theorem1.extremal_point(t)
                theta, x = np.vstack([theta, [[th]]]), np.append(x, xe)
            ratio = np.max(_chain_grad(theta, x)[0]) / t
            assert ratio <= 1 + 1e-12, (t, l, ratio)
            if t == T1:
                worst_at_t1 = max(worst_at_t1, ratio)
    assert worst_at_t1 >= 0.99


@pytest.mark.parametrize("t", [T1 * 1.0001, 0.75, 0.8, 0.9, 0.99])
def test_theorem1_conclusion1_fails_for_every_t_above_t1(t):
    """For t > t₁*, the l = 1 point θ = 2·log(1/t), x = u*/θ (≥ 1/2) meets the printed
    assumptions and has |∂h/∂θ| = |d|·c/θ > |d|·t (any y ≠ g)."""
    th, x = theorem1.extremal_point(t)
    assert x >= 0.5 and th >= theorem1.printed_threshold(t, x) * (1 - 1e-15)
    d, plain, _ = _plain_and_regularized([th], x, 1.7, 0.0)
    assert plain == pytest.approx(d * C / th, rel=1e-12)
    assert plain > d * t


def test_theorem1_conclusion2_holds_exactly_up_to_t2():
    """Corrected Theorem 1 (second claim): with r = |d| (the weakest allowed r) and the worst
    sign of d, |∂(h + r/2 Σθ²)/∂θ^k| ≥ |θ^k|·|d| − |d|·|∂g/∂θ^k| ≥ |d|·log(1/t) for every
    t ≤ t₂* ≈ 0.623036. Same dense search as conclusion 1, t ≤ t₂*; at t₂* the slack is < 1 %."""
    rng = np.random.default_rng(3)
    tightest = math.inf
    for t in sorted({x for x in T_GRID if x <= T2} | {T2}):
        for l in range(1, 5):
            theta, x = _printed_assumption_points(t, l, 4000, rng)
            if l == 1:
                th, xe = theorem1.extremal_point(t) if t >= math.exp(-U_STAR) else (theta[0, 0], x[0])
                theta, x = np.vstack([theta, [[th]]]), np.append(x, xe)
            worst = np.min(np.abs(theta) - _chain_grad(theta, x)[0]) / math.log(1 / t)
            assert worst >= 1 - 1e-12, (t, l, worst)
            if t == T2:
                tightest = min(tightest, worst)
    assert tightest <= 1.01


@pytest.mark.parametrize("t", [T2 * 1.0001, 0.65, 0.7, 0.9])
def test_theorem1_conclusion2_fails_for_every_t_above_t2(t):
    """For t > t₂*: the extremal point with y = g + 1 (so −d·∂g/∂θ opposes r·θ) and
    r = |d|·max{1, c/θ²} ≥ |d| has regularized partial |d|·max{θ − c/θ, 0} < |d|·log(1/t)
    (exactly 0 once θ² < c, i.e. t > e^{−√c/2} ≈ 0.716), computed with the chain module."""
    th, x = theorem1.extremal_point(t)
    y = math.tanh(th * x) + 1.0
    d, _, _ = _plain_and_regularized([th], x, y, 0.0)
    r = d * max(1.0, C / th ** 2)
    _, _, reg = _plain_and_regularized([th], x, y, r)
    assert reg == pytest.approx(d * max(th - C / th, 0.0), abs=1e-12 * d)
    assert reg < d * math.log(1 / t)


def test_theorem1_printed_proof_needs_t_at_most_one_over_e():
    """The printed proof uses tanh(θ^1 x) ≥ tanh 1 (|θ^1 x| ≥ 1) and |θ^i| ≥ 2. The printed
    assumption guarantees only |θ^1 x| ≥ log(1/t) and |θ^i| ≥ 2·log(1/t) (both attained at
    |x| = 1/2), so the proof covers t ≤ 1/e; its step "log(1/t)/(2|f|²) ≥ 1/(4|f|²) since t < 1"
    needs t ≤ e^{−1/2}. The conclusion itself reaches t₁* > 1/e (tested above)."""
    assert theorem1.printed_proof_largest_t() == pytest.approx(math.exp(-1), rel=1e-15)
    for t in [0.01, 0.2, 1 / math.e]:
        th = theorem1.printed_threshold(t, 0.5)
        assert th * 0.5 >= 1 - 1e-15 and th >= 2 - 1e-15
    th = theorem1.printed_threshold(0.4, 0.5)  # t just above 1/e: both steps fail
    assert th * 0.5 < 1 and th < 2 and math.tanh(th * 0.5) < math.tanh(1.0)
    assert math.log(1 / 0.7) / 2 < 1 / 4  # the "t < 1" step, false at t = 0.7 (|f| cancels)


def test_theorem1_bad_t_and_x():
    with pytest.raises(ValueError, match="t must"):
        theorem1.printed_threshold(1.0, 1.0)
    with pytest.raises(ValueError, match="x must"):
        theorem1.printed_threshold(0.5, 0.0)
    with pytest.raises(ValueError, match="extremal_point"):
        theorem1.extremal_point(0.1)
