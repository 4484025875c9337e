"""Closed-form checks of every activation family and of α-scaling (paper eq. 1, Sec. 2.3)."""
import math

import numpy as np
import pytest
import torch

from lightning_sig import ScaledActivation, scaled_activation
from lightning_sig.nn.activations import ACTIVATIONS
from tests.tolerances import assert_close_scaled

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

Z = np.array([-30.0, -3.0, -1.0, -0.25, 0.0, 0.5, 2.0, 30.0])
NUMPY_REF = {
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "arctan": np.arctan,
    "softsign": lambda z: z / (1.0 + np.abs(z)),
    "relu": lambda z: np.maximum(z, 0.0),
    "identity": lambda z: z,
    "logsigmoid": lambda z: -np.logaddexp(0.0, -z),  # log(1/(1+e^-z)), stable
}


@pytest.mark.parametrize("family", sorted(NUMPY_REF))
@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0, 7.0])
def test_scaled_matches_numpy_closed_form(family, alpha):
    z = torch.tensor(Z, dtype=torch.float64)
    got = scaled_activation(z, family, alpha).numpy()
    want = alpha * NUMPY_REF[family](Z / alpha)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    module = ScaledActivation(family, alpha)
    np.testing.assert_allclose(module(z).numpy(), want, rtol=1e-12, atol=1e-12)


def test_hand_computed_values():
    assert scaled_activation(torch.tensor(0.0), "sigmoid", 1.0).item() == 0.5
    assert scaled_activation(torch.tensor(0.0), "sigmoid", 4.0).item() == 2.0  # α·σ(0) = α/2
    assert scaled_activation(torch.tensor(1.0), "softsign", 1.0).item() == 0.5
    assert scaled_activation(torch.tensor(1.0), "arctan", 1.0).item() == pytest.approx(math.pi / 4)
    assert scaled_activation(torch.tensor(0.0), "logsigmoid", 1.0).item() == pytest.approx(-math.log(2))
    # 2·tanh(2/2) = 2·tanh(1)
    assert scaled_activation(torch.tensor(2.0), "tanh", 2.0).item() == pytest.approx(2 * math.tanh(1))


@pytest.mark.parametrize("alpha", [1e-3, 0.3, 1.0, 3.0, 1e6])
def test_relu_and_identity_bitwise_unchanged_by_alpha(alpha):
    z = torch.randn(1000, dtype=torch.float32) * 100
    assert torch.equal(scaled_activation(z, "relu", alpha), torch.relu(z))
    assert torch.equal(ScaledActivation("relu", alpha)(z), torch.relu(z))
    assert torch.equal(scaled_activation(z, "identity", alpha), z)


@pytest.mark.parametrize("family,cubic", [("tanh", -1 / 3), ("arctan", -1 / 3), ("softsign", None)])
def test_large_alpha_tends_to_linear(family, cubic):
    """Paper property 4: α·f(z/α) → f'(0)·z = z as α grows (f(0)=0, f'(0)=1)."""
    z = torch.linspace(-3, 3, 61, dtype=torch.float64)
    errors = []
    for alpha in [30.0, 100.0, 1000.0]:
        err = (scaled_activation(z, family, alpha) - z).abs().max().item()
        errors.append(err)
        if cubic is not None:  # Taylor: α f(z/α) − z = c z³/α² + O(α⁻⁴)
            assert err == pytest.approx(abs(cubic) * 27 / alpha**2, rel=0.01)
        else:  # softsign: α(z/α)/(1+|z|/α) − z = −z|z|/(α+|z|), max at |z| = 3
            assert err == pytest.approx(9 / (alpha + 3), rel=1e-9)
    assert errors[0] > errors[1] > errors[2]


def test_sigmoid_does_not_tend_to_linear_but_to_half_alpha_plus_quarter_z():
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    alpha = 1000.0
    torch.testing.assert_close(scaled_activation(z, "sigmoid", alpha), alpha / 2 + z / 4,
                               rtol=0, atol=1e-6)


def test_scaled_derivative_closed_form():
    """f_α'(z) = f'(z/α): the α-scaled tanh has derivative 1 − tanh²(z/α)."""
    z = torch.tensor([-2.0, 0.0, 0.7, 3.0], dtype=torch.float64, requires_grad=True)
    scaled_activation(z, "tanh", 3.0).sum().backward()
    torch.testing.assert_close(z.grad, 1 - torch.tanh(z.detach() / 3.0) ** 2)


@pytest.mark.parametrize("bad", [0, 0.0, -1, -1.0, float("nan"), float("inf"), -float("inf"), "2", None, True])
def test_bad_alpha_raises_naming_value(bad):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0") as info:
        ScaledActivation("tanh", bad)
    assert repr(bad) in str(info.value)
    with pytest.raises(ValueError):
        scaled_activation(torch.zeros(2), "tanh", bad)


def test_unknown_family_lists_valid_names():
    with pytest.raises(ValueError, match="'swish'") as info:
        ScaledActivation("swish")
    for name in list(ACTIVATIONS) + ["logistic"]:
        assert name in str(info.value)


def test_family_lookup_is_case_insensitive_and_alias():
    assert ScaledActivation("TanH").family == "tanh"
    assert ScaledActivation("logistic").family == "sigmoid"


def test_learnable_alpha_is_positive_parameter_initialised_at_alpha():
    act = ScaledActivation("tanh", 2.5, learnable_alpha=True)
    names = [n for n, _ in act.named_parameters()]
    assert names == ["log_alpha"]
    assert act.alpha == pytest.approx(2.5)
    z = torch.tensor([1.0, -2.0])
    out = act(z)
    # float32: α = exp(log α) and α·tanh(z/α) round a few times (exp, /, tanh ≤ 1 ulp, ·)
    assert_close_scaled(out, 2.5 * torch.tanh(z / 2.5), ulps=8, msg="forward")
    out.sum().backward()
    # d/d(log α) of α·tanh(z/α) = α·[tanh(z/α) − (z/α)(1 − tanh²(z/α))]
    u = z / 2.5
    expected = (2.5 * (torch.tanh(u) - u * (1 - torch.tanh(u) ** 2))).sum()
    # a sum of two terms, each a few float32 roundings of values of size ~1 (scale: |term|max)
    terms = 2.5 * (torch.tanh(u) - u * (1 - torch.tanh(u) ** 2))
    assert_close_scaled(act.log_alpha.grad, expected, ulps=16, scale=float(terms.abs().max()),
                        msg="d/dlog α")


def test_learnable_alpha_refused_for_relu():
    with pytest.raises(ValueError, match="relu"):
        ScaledActivation("relu", 2.0, learnable_alpha=True)
