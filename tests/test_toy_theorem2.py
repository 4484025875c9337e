"""Sec. 2.1/2.3 as printed: the gradient formulas with f^0 := 1 (f^0_α := 1), Theorem 2's
proof steps, and Sec. 2.2's four properties for six sigmoid-type functions (float64).

Theorem 2's conclusions themselves are tested in tests/test_toy.py
(test_theorem2_bound_at_alpha_one, test_theorem2_large_alpha_limit_tanh); here: what the
printed formulas and proof steps give. Verdicts: docs/toy_model.md.
"""
import math

import pytest
import torch

from lightning_sig.nn.activations import scaled_activation
from lightning_sig.toy import chain as toy
from lightning_sig.toy import printed, properties

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

F64 = torch.float64


def _point(seed, l=5):
    gen = torch.Generator().manual_seed(seed)
    theta = 1.5 * torch.randn(l, generator=gen, dtype=F64)
    x, y = (1.0 + torch.rand(2, generator=gen, dtype=F64) * 2).tolist()  # x ∈ (1, 3): x ≠ 1
    return theta, x, y


# --------------------------------------------------------------------------- printed formulas


@pytest.mark.parametrize("seed", range(4))
def test_sec21_printed_formula_with_f0_one_drops_x_at_k1(seed):
    """Sec. 2.1 prints f^0 := 1. Then the printed partial for k = 1 is the true one divided by
    x (the chain rule gives ∂f^1/∂θ^1 = tanh'(θ^1 x)·x); for k ≥ 2 it is right. With f^0 := x it
    is right for every k. Up to sign: printed = −(true ∂h[y − g]/∂θ^k), since d := h'[y − g]."""
    theta, x, y = _point(seed)
    true = toy.loss_gradient(theta, x, y, "tanh")
    one = printed.printed_partials(theta, x, y, f0="one")
    torch.testing.assert_close(one[1:], -true[1:], rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(one[0] * x, -true[0], rtol=1e-12, atol=1e-300)
    assert abs(float(one[0] / true[0])) != pytest.approx(1.0, rel=1e-3)
    torch.testing.assert_close(printed.printed_partials(theta, x, y, f0="x"), -true,
                               rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("alpha", [0.5, 3.0, 100.0])
def test_sec23_printed_alpha_formula_needs_f0_x_over_alpha(alpha):
    """Sec. 2.3 prints d·α·f_α^{k−1}·Π(1 − (f_α^j)²)·Πθ^i with f_α^0 := 1. Against the chain
    f_α(z) = α·tanh(z/α): f_α^0 := x/α is right for every k; f_α^0 := 1 multiplies the k = 1
    partial by α/x, and f_α^0 := x by α; k ≥ 2 are right in all three."""
    theta, x, y = _point(7)
    true = toy.loss_gradient(theta, x, y, "tanh", alpha)
    got = {f0: printed.printed_partials(theta, x, y, alpha, f0) for f0 in printed.F0_CONVENTIONS}
    torch.testing.assert_close(got["x/alpha"], -true, rtol=1e-11, atol=1e-300)
    for f0, factor in [("one", alpha / x), ("x", alpha)]:
        torch.testing.assert_close(got[f0][1:], -true[1:], rtol=1e-11, atol=1e-300)
        torch.testing.assert_close(got[f0][0], -factor * true[0], rtol=1e-11, atol=1e-300)


@pytest.mark.parametrize("l", [1, 3, 6])
def test_theorem2_limit_through_printed_formula_each_f0(l):
    """Theorem 2(b) at |x| = θ^i = 1.5 through the printed α-formula: with f_α^0 := x/α,
    |∂h/∂θ^k| → |d_∞|·1.5^{l−1}·|x| for every k, d_∞ = 2(y − 1.5^l·x) the linear network's d
    (gap ∝ 1/α²: < 1e-6 relative at α = 1e5). With the printed f_α^0 := 1 (or := x) the k = 1
    entry grows ∝ α instead: ratio 10.0 per decade of α."""
    theta, x, y = torch.full((l,), 1.5, dtype=F64), 1.5, 0.3
    d_inf = abs(2 * (y - 1.5 ** l * x))
    limit = d_inf * 1.5 ** (l - 1) * x
    got = printed.printed_partials(theta, x, y, 1e5, "x/alpha").abs()
    torch.testing.assert_close(got, torch.full_like(got, limit), rtol=1e-6, atol=0)
    for f0 in ("one", "x"):
        a3, a4 = (float(printed.printed_partials(theta, x, y, a, f0)[0].abs()) for a in (1e4, 1e5))
        assert a4 / a3 == pytest.approx(10.0, rel=1e-5) and a4 > 1e3 * limit


@pytest.mark.parametrize("l", [1, 2, 3, 5])
def test_theorem2a_bound_through_printed_formula_both_f0(l):
    """Theorem 2(a) read through the printed Sec. 2.1 formula: with f^0 := 1 (printed) and with
    f^0 := x, |formula_k| ≤ |d|/2^{l−k+1} for every k, sign pattern of (x, θ) and y ∈ {−2, 0.3, 5}
    (with f^0 := 1 the k = 1 entry is the true partial divided by |x| = 1.5, so it is smaller)."""
    import itertools

    bound = torch.tensor([2.0 ** -(l - k + 1) for k in range(1, l + 1)], dtype=F64)
    for signs in itertools.product([-1.0, 1.0], repeat=l + 1):
        theta, x = 1.5 * torch.tensor(signs[1:], dtype=F64), 1.5 * signs[0]
        for y in (-2.0, 0.3, 5.0):
            d = abs(float(toy.loss_derivative(theta, x, y, "tanh")))
            for f0 in ("one", "x"):
                assert torch.all(printed.printed_partials(theta, x, y, f0=f0).abs() <= d * bound)


# --------------------------------------------------------------------------- Theorem 2 proof


def test_theorem2_proof_step_f_at_least_tanh13_fails_deep_in_chain():
    """The proof's "|f^i| ≥ tanh(1.3) for all i" is false from i = 5 on: f^i = tanh(1.5 f^{i−1})
    decreases to the fixed point u* ≈ 0.858560 < tanh(1.3) ≈ 0.861723 (f^5 ≈ 0.860851).
    The printed inputs hold: |x| = 1.5 ≥ 1.5·tanh 1.5 ≈ 1.358 and 1.5 ≥ 1.3/tanh 1.5 ≈ 1.436.
    Corrected step: |f^i| ≥ u* ≥ √(2/3) for i ≥ 1, so 1.5·(1 − (f^i)²) ≤ 1.5(1 − u*²) ≈ 0.394
    ≤ 1/2, and the bound of Theorem 2(a) still follows (tested in tests/test_toy.py)."""
    assert 1.5 >= 1.5 * math.tanh(1.5) and 1.5 >= 1.3 / math.tanh(1.5)
    f = toy.layer_outputs(torch.full((40,), 1.5, dtype=F64), 1.5, "tanh")[1:].abs()
    assert torch.all(f[:4] >= math.tanh(1.3)) and torch.all(f[4:] < math.tanh(1.3))
    assert float(f[4]) == pytest.approx(0.860851, abs=1e-6)
    u = 1.0
    for _ in range(200):
        u = math.tanh(1.5 * u)
    assert u == pytest.approx(0.858560, abs=1e-6) and u < math.tanh(1.3)
    assert torch.all(f >= u) and u >= math.sqrt(2 / 3)
    assert 1 - math.tanh(1.3) ** 2 <= 1 / (2 * 1.5)  # the printed next step itself holds
    assert 1.5 * (1 - math.tanh(1.5) ** 2) <= 0.5  # Sec. 2.1's example factor (≈ 0.271)


def test_theorem2_proof_step_f0_bound_fails_at_k1_but_bound_holds():
    """"|f^{k−1}| ≤ 1 by definition of tanh" fails for k = 1 once f^0 := x (|x| = 1.5); the k = 1
    factor is still small: |x|·(1 − tanh²(2.25)) ≈ 0.0651 ≤ 1/2."""
    assert 1.5 * (1 - math.tanh(2.25) ** 2) == pytest.approx(0.0651, abs=1e-4)
    grad = toy.output_gradient(torch.full((1,), 1.5, dtype=F64), 1.5, "tanh")
    assert float(grad[0]) == pytest.approx(1.5 * (1 - math.tanh(2.25) ** 2), rel=1e-14)


@pytest.mark.parametrize("l", [1, 4, 8])
def test_theorem2_proof_limit_alpha_f_is_linear_network(l):
    """"lim_{α→∞} α·f_α^i = Π_{m ≤ i} θ^m·x": with the chain f_α(z) = α·tanh(z/α) (whose i-th
    neuron is α·f_α^i), relative error < 1e-7 at α = 1e6 (the gap is O(1/α²))."""
    theta = torch.tensor([1.5, -1.5, 1.5, 1.5, -1.5, 1.5, 1.5, -1.5][:l], dtype=F64)
    outs = toy.layer_outputs(theta, 1.5, "tanh", 1e6)[1:]
    linear = torch.cumprod(theta, 0) * 1.5
    torch.testing.assert_close(outs, linear, rtol=1e-7, atol=0)


def test_sec23_scaled_derivative_larger_except_at_zero():
    """"(f_α[z])' > (f[z])' for α > 1": f_α'(z) = tanh'(z/α) > tanh'(z) for z ≠ 0, but = at z = 0."""
    z = torch.arange(-800, 801, dtype=F64) / 100  # step 0.01, exact 0
    nonzero = z != 0
    for alpha in [1.01, 2.0, 10.0]:
        scaled = toy.activation_derivative(z, "tanh", alpha)
        plain = toy.activation_derivative(z, "tanh")
        assert torch.all(scaled[nonzero] > plain[nonzero])
        assert float(scaled[~nonzero]) == float(plain[~nonzero]) == 1.0


# --------------------------------------------------------------------------- Sec. 2.2 properties


#: Hand derivations. logistic: α·σ(z/α) = α/2 + z/4 + O(1/α²) → ∞ (4 fails). log σ: → −∞ at
#: −∞ (1), z·σ(−z) → −∞ at −∞ (2), → 0 at +∞ (3), α·log σ(z/α) ≈ −α·log 2 (4). σ − 1/2:
#: |·| < 1/2, a_lin = 1/4. arctan: sup |·| = π/2 > 1 (1 fails as printed), a_lin = 1.
#: softsign: |·| < 1, z/(1+|z|)² → 0, a_lin = 1. tanh: all, a_lin = 1.
EXPECTED = {
    "tanh": {1: True, 2: True, 3: True, 4: True},
    "logistic": {1: True, 2: True, 3: True, 4: False},
    "logsigmoid": {1: False, 2: False, 3: False, 4: False},
    "centred_logistic": {1: True, 2: True, 3: True, 4: True},
    "arctan": {1: False, 2: True, 3: True, 4: True},
    "softsign": {1: True, 2: True, 3: True, 4: True},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sec22_four_properties_as_printed(name):
    """Sec. 2.2: "these four conditions are also met by ... logsigmoid and arctan". As printed,
    log σ meets none, the logistic σ fails 4, arctan fails 1 (bounded by π/2, not 1)."""
    assert properties.property_checks(name) == EXPECTED[name]


def test_logistic_scaling_limits_and_fig4_arm():
    """Why the logistic fails property 4, and what it means for Figure 4's scaled arm
    (activation sigmoid, α = 2, lightning_sig.nn.activations): α·σ(z/α) − α/2 → z/4, so the
    α-scaled logistic tends to a shifted line of slope 1/4, not to z; σ − 1/2 = tanh(z/2)/2 is
    the zero-centred variant that meets all four (a_lin = 1/4). At α = 2 the arm's activation
    has f_α(0) = 1 and f_α'(0) = 1/4 (tanh: 0 and 1), so Theorem 2(b)'s argument does not apply."""
    z = torch.linspace(-3, 3, 61, dtype=F64)
    alpha = 1e6
    torch.testing.assert_close(alpha * torch.sigmoid(z / alpha) - alpha / 2, z / 4, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.sigmoid(z) - 0.5, torch.tanh(z / 2) / 2, rtol=1e-14, atol=1e-15)
    zero = torch.zeros(1, dtype=F64, requires_grad=True)
    out = scaled_activation(zero, "sigmoid", 2.0)
    (slope,) = torch.autograd.grad(out.sum(), zero)
    assert float(out.detach()) == 1.0 and float(slope) == 0.25
    out = scaled_activation(zero, "tanh", 2.0)
    (slope,) = torch.autograd.grad(out.sum(), zero)
    assert float(out.detach()) == 0.0 and float(slope) == 1.0


def test_property_checks_unknown_name():
    with pytest.raises(ValueError, match="logsig"):
        properties.property_checks("logsig")
    with pytest.raises(ValueError, match="f0"):
        printed.printed_partials(torch.ones(2, dtype=F64), 1.0, 0.0, f0="zero")
