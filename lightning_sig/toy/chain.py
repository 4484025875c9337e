"""The toy model of Sec. 2: a chain of l scalar neurons, its loss and its gradient in closed form.

Why: the paper explains the vanishing-gradient problem on the simplest possible network,

    g_θ(x) = f_α(θ^l·f_α(θ^{l−1}···f_α(θ^1·x))),   f_α(z) = α·f(z/α)   (eq. 1),

whose partial derivatives are explicit products of activation derivatives (Sec. 2.1, 2.3).
This module evaluates those products directly, so that the claims of Theorem 1 (large
parameters, remedied by the l2 term r/2·Σθ²) and Theorem 2 (many layers, remedied by α)
can be checked numerically (tests/test_toy.py, tests/test_toy_printed.py,
tests/test_toy_theorem2.py) and drawn (lightning_sig/toy/figure.py). The printed statements
and their sharp forms: lightning_sig/toy/theorem1.py, printed.py, properties.py.

Notation (documented choices, see docs/toy_model.md):
  * f^0 := x and f^j := f_α(θ^j·f^{j−1}) for j = 1..l, so g_θ(x) = f^l. (The paper prints
    f^0 := 1, which drops the factor x from the k = 1 partial: tests/test_toy_theorem2.py.)
  * Loss ℓ(θ) := h[y − g_θ(x)] with the least-squares h[z] = z² (a data-fitting loss on one
    sample (x, y)); d := ∂ℓ/∂g = −2·(y − g_θ(x)), so |d| = |h'[y − g_θ(x)]|.
  * ∂ℓ/∂θ^k = d · D_k · φ'(θ^k f^{k−1}) · f^{k−1}  with the downstream factor
    D_k := Π_{j=k+1..l} θ^j·φ'(θ^j f^{j−1}) (D_l = 1),
    where φ is the layer activation: φ = f_α with φ'(z) = f'(z/α) (``scaling="alpha"``, eq. 1),
    or the naive φ(z) = α·f(z) with φ'(z) = α·f'(z) (``scaling="naive"``).

Self-contained on purpose (torch only): the closed-form derivatives f' are needed here anyway.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

__all__ = [
    "FAMILIES", "SCALINGS", "SATURATION_CONSTANTS", "activation", "activation_derivative",
    "layer_outputs", "forward", "loss", "loss_derivative", "downstream_factors",
    "output_gradient", "loss_gradient", "saturation_threshold",
]


def _tanh_prime(z: Tensor) -> Tensor:
    e = torch.exp(-2.0 * z.abs())  # sech²(z) = 4e^{-2|z|}/(1+e^{-2|z|})², exact in the tails
    return 4.0 * e / (1.0 + e) ** 2


def _sigmoid_prime(z: Tensor) -> Tensor:
    return torch.sigmoid(z) * torch.sigmoid(-z)


#: Family name → (f, f'). "sigmoid" is the logistic function 1/(1+e^{−z}).
FAMILIES: Dict[str, Tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "tanh": (torch.tanh, _tanh_prime),
    "sigmoid": (torch.sigmoid, _sigmoid_prime),
}
_ALIASES = {"logistic": "sigmoid"}
#: "alpha": φ(z) = α·f(z/α) (paper eq. 1); "naive": φ(z) = α·f(z) (the rejected alternative).
SCALINGS = ("alpha", "naive")
#: Constants (c, b) with f'(z) ≤ c·e^{−b|z|} for all z: tanh' = sech² ≤ 4e^{−2|z|},
#: logistic' = σ(z)σ(−z) ≤ e^{−|z|}. Used for the saturation threshold of Theorem 1.
SATURATION_CONSTANTS: Dict[str, Tuple[float, float]] = {"tanh": (4.0, 2.0), "sigmoid": (1.0, 1.0)}


def _family(family: str) -> str:
    name = _ALIASES.get(family, family) if isinstance(family, str) else family
    if name not in FAMILIES:
        valid = ", ".join(sorted(FAMILIES) + sorted(_ALIASES))
        raise ValueError(f"Unknown activation family {family!r}; valid names: {valid}.")
    return name


def _check_args(alpha: float, scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ValueError(f"Unknown scaling {scaling!r}; valid names: {', '.join(SCALINGS)}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
        math.isfinite(alpha) and alpha > 0
    ):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}.")


def activation(z: Tensor, family: str, alpha: float = 1.0, scaling: str = "alpha") -> Tensor:
    """Layer activation φ(z): α·f(z/α) (``scaling="alpha"``, eq. 1) or α·f(z) (``"naive"``).

    Args:
        z: pre-activations, any shape, floating dtype.
        family: "tanh" or "sigmoid" (alias "logistic").
        alpha: the scale α > 0, default 1.0 (both scalings then equal f).
        scaling: "alpha" or "naive".

    Returns: tensor shaped like ``z``.
    Raises: ValueError for an unknown family or scaling, or α that is not finite and > 0.
    """
    f, _ = FAMILIES[_family(family)]
    _check_args(alpha, scaling)
    return alpha * f(z / alpha) if scaling == "alpha" else alpha * f(z)


def activation_derivative(z: Tensor, family: str, alpha: float = 1.0,
                          scaling: str = "alpha") -> Tensor:
    """Closed-form φ'(z): f'(z/α) for ``"alpha"`` (Sec. 2.3), α·f'(z) for ``"naive"``.

    Same arguments, shapes and errors as :func:`activation`.
    """
    _, fprime = FAMILIES[_family(family)]
    _check_args(alpha, scaling)
    return fprime(z / alpha) if scaling == "alpha" else alpha * fprime(z)


def layer_outputs(theta: Tensor, x: float | Tensor, family: str, alpha: float = 1.0,
                  scaling: str = "alpha") -> Tensor:
    """All neuron outputs (f^0, f^1, ..., f^l) of the chain, with f^0 := x (Sec. 2.1).

    Args:
        theta: parameters (θ^1, ..., θ^l), shape (l,), l ≥ 1, floating dtype (use float64).
        x: the scalar input (float or 0-dim tensor).
        family, alpha, scaling: see :func:`activation`.

    Returns: tensor of shape (l + 1,) in ``theta``'s dtype; differentiable w.r.t. ``theta``.
    Raises: ValueError if ``theta`` is not a non-empty 1-D floating tensor, or as in
    :func:`activation`.
    """
    if not isinstance(theta, Tensor) or theta.dim() != 1 or theta.numel() == 0 \
            or not theta.is_floating_point():
        raise ValueError(
            f"theta must be a non-empty 1-D floating tensor of shape (l,), got {theta!r}.")
    outs = [torch.as_tensor(x, dtype=theta.dtype, device=theta.device).reshape(())]
    for k in range(theta.numel()):
        outs.append(activation(theta[k] * outs[-1], family, alpha, scaling))
    return torch.stack(outs)


def forward(theta: Tensor, x: float | Tensor, family: str, alpha: float = 1.0,
            scaling: str = "alpha") -> Tensor:
    """The network output g_θ(x) = f^l, a 0-dim tensor (Sec. 2.1; eq. 1 when α ≠ 1)."""
    return layer_outputs(theta, x, family, alpha, scaling)[-1]


def loss(theta: Tensor, x: float | Tensor, y: float | Tensor, family: str, alpha: float = 1.0,
         scaling: str = "alpha", r: float = 0.0) -> Tensor:
    """Objective ℓ(θ) + r/2·Σ_k (θ^k)², with ℓ(θ) = h[y − g_θ(x)], h[z] = z² (Sec. 2.1, 2.2).

    ``r`` ≥ 0 is the l2 regularization strength (default 0: unregularized). 0-dim tensor.
    Raises: ValueError for r < 0, or as in :func:`layer_outputs`.
    """
    _check_r(r)
    residual = torch.as_tensor(y, dtype=theta.dtype) - forward(theta, x, family, alpha, scaling)
    return residual ** 2 + 0.5 * r * (theta ** 2).sum()


def loss_derivative(theta: Tensor, x: float | Tensor, y: float | Tensor, family: str,
                    alpha: float = 1.0, scaling: str = "alpha") -> Tensor:
    """d := ∂ℓ/∂g = −2·(y − g_θ(x)), the loss derivative at the output (the paper's d).

    |d| = |h'[y − g_θ(x)]|.

    0-dim tensor. Same arguments and errors as :func:`loss` (without ``r``).
    """
    g = forward(theta, x, family, alpha, scaling)
    return -2.0 * (torch.as_tensor(y, dtype=theta.dtype) - g)


def _chain_terms(theta: Tensor, x: float | Tensor, family: str, alpha: float, scaling: str):
    """(f^{k−1}, φ'(θ^k f^{k−1}), D_k) for k = 1..l, each of shape (l,)."""
    outs = layer_outputs(theta, x, family, alpha, scaling)
    inputs = outs[:-1]
    deriv = activation_derivative(theta * inputs, family, alpha, scaling)
    factors = theta * deriv  # θ^j φ'(θ^j f^{j−1}), j = 1..l
    suffix = torch.flip(torch.cumprod(torch.flip(factors, [0]), 0), [0])  # Π_{j ≥ k}
    downstream = torch.cat([suffix[1:], suffix.new_ones(1)])  # Π_{j > k}; D_l = 1
    return inputs, deriv, downstream


def downstream_factors(theta: Tensor, x: float | Tensor, family: str, alpha: float = 1.0,
                       scaling: str = "alpha") -> Tensor:
    """D_k = Π_{j=k+1..l} θ^j·φ'(θ^j f^{j−1}) for k = 1..l (D_l = 1), shape (l,).

    The factor by which layers above k scale the gradient (the "effects across layers" of
    Sec. 2.3). Arguments and errors as :func:`layer_outputs`.
    """
    return _chain_terms(theta, x, family, alpha, scaling)[2]


def output_gradient(theta: Tensor, x: float | Tensor, family: str, alpha: float = 1.0,
                    scaling: str = "alpha") -> Tensor:
    """Closed-form ∂g_θ(x)/∂θ^k = D_k·φ'(θ^k f^{k−1})·f^{k−1} for k = 1..l (Sec. 2.1, 2.3).

    Returns: shape (l,); equals ∂ℓ/∂θ^k divided by d.
    Arguments and errors as :func:`layer_outputs`.
    """
    inputs, deriv, downstream = _chain_terms(theta, x, family, alpha, scaling)
    return downstream * deriv * inputs


def loss_gradient(theta: Tensor, x: float | Tensor, y: float | Tensor, family: str,
                  alpha: float = 1.0, scaling: str = "alpha", r: float = 0.0) -> Tensor:
    """Closed-form gradient of :func:`loss`: ∂/∂θ^k = d·∂g/∂θ^k + r·θ^k, shape (l,).

    ``r`` = 0 gives the unregularized partials of Sec. 2.1; r > 0 those of Sec. 2.2.
    Raises: ValueError for r < 0, or as in :func:`layer_outputs`.
    """
    _check_r(r)
    d = loss_derivative(theta, x, y, family, alpha, scaling)
    return d * output_gradient(theta, x, family, alpha, scaling) + r * theta


def saturation_threshold(t: float, family: str) -> float:
    """The |z| beyond which f'(z) ≤ t is guaranteed by f'(z) ≤ c·e^{−b|z|}: log(c/t)/b.

    tanh: ½·log(4/t); logistic: log(1/t). Used as the "large parameter" assumption
    |θ^k f^{k−1}| ≥ saturation_threshold(t) of the project's earlier reconstruction of
    Theorem 1 (tests/test_toy.py); the printed assumption is theorem1.printed_threshold.

    Raises: ValueError unless 0 < t < 1, or for an unknown family.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1.0:
        raise ValueError(f"t must be a number in (0, 1), got {t!r}.")
    c, b = SATURATION_CONSTANTS[_family(family)]
    return math.log(c / t) / b


def _check_r(r: float) -> None:
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not (math.isfinite(r) and r >= 0):
        raise ValueError(f"r must be a finite number >= 0, got {r!r}.")
