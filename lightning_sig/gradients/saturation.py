"""Activation saturation: how many pre-activations sit where the activation is flat.

Sec. 2.2 of the paper: large parameters push the pre-activations z of a sigmoid-type layer into
the flat tails, where f′(z) ≈ 0 and the gradient through the layer vanishes (Theorem 1); the l2
term is the remedy. The many-layers regime (Sec. 2.3) vanishes instead through the product of
many factors f′ < 1 (Theorem 2; the α-scaling remedy), with pre-activations that need not be
saturated. So the fraction of saturated pre-activations tells the two sources apart.

For a layer f_α(z) = α·f(z/α) (eq. 1) the derivative is f_α′(z) = f′(z/α), and f_α′(0) = f′(0).
A pre-activation is *saturated* when f_α′(z) < ε·f′(0) (ε = 0.01 by default: an assumption,
the paper gives no number; a unit there passes less than 1 % of the gradient it would at 0).
Closed forms below; no autograd.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Tuple

import torch
from torch import Tensor, nn

from lightning_sig.gradients.radix_build import load_radix_kernel
from lightning_sig.nn.activations import ScaledActivation

__all__ = ["DERIVATIVES", "activation_derivative", "derivative_at_zero", "saturation_sums",
           "folded_saturation_sums",
           "monitored_activations", "check_epsilon", "DEFAULT_EPSILON"]

DEFAULT_EPSILON = 0.01

#: family -> f′(z) in closed form (sigmoid-type families of :class:`ScaledActivation`).
DERIVATIVES: Dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": lambda z: 1.0 - torch.tanh(z).square(),
    "sigmoid": lambda z: torch.sigmoid(z) * torch.sigmoid(-z),
    "arctan": lambda z: 1.0 / (1.0 + z.square()),
    "softsign": lambda z: 1.0 / (1.0 + z.abs()).square(),
    "logsigmoid": lambda z: torch.sigmoid(-z),
}
_AT_ZERO = {"tanh": 1.0, "sigmoid": 0.25, "arctan": 1.0, "softsign": 1.0, "logsigmoid": 0.5}
_TORCH_FAMILIES = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softsign: "softsign"}


def check_epsilon(eps: float) -> float:
    """ε as a float, finite and in (0, 1].

    Raises:
        ValueError: not a number in (0, 1] (names the value).
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps <= 1.0:
        raise ValueError(f"eps must be a number in (0, 1] (saturated: f'(z) < eps·f'(0)), "
                         f"got {eps!r}.")
    return float(eps)


def _is_monitored(module: nn.Module) -> bool:
    if isinstance(module, ScaledActivation):
        return module.family in DERIVATIVES  # relu/identity: not sigmoid-type, never flat tails
    if isinstance(module, nn.Hardtanh):  # also nn.ReLU6, a Hardtanh(0, 6): f′(0) = 0, skipped
        return module.min_val < 0.0 < module.max_val
    return type(module) in _TORCH_FAMILIES


def monitored_activations(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(qualified name, module) of every sigmoid-type activation of ``model``, in module order:
    :class:`ScaledActivation` of a sigmoid-type family, ``nn.Tanh``, ``nn.Sigmoid``,
    ``nn.Softsign`` and ``nn.Hardtanh`` (with 0 inside its linear range)."""
    return [(name, m) for name, m in model.named_modules() if _is_monitored(m)]


def activation_derivative(module: nn.Module, z: Tensor) -> Tensor:
    """f_α′(z) elementwise (same shape as z, float32 or wider) for a monitored ``module``.

    ScaledActivation: f′(z/α) (eq. 1); Hardtanh: 1 strictly inside (min_val, max_val), else 0.
    """
    z = z.detach()
    z = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
    if isinstance(module, ScaledActivation):
        return DERIVATIVES[module.family](z / module.alpha)
    if isinstance(module, nn.Hardtanh):
        return ((z > module.min_val) & (z < module.max_val)).to(z.dtype)
    return DERIVATIVES[_TORCH_FAMILIES[type(module)]](z)


def derivative_at_zero(module: nn.Module) -> float:
    """f′(0) of a monitored module (f_α′(0) = f′(0) for every α)."""
    if isinstance(module, ScaledActivation):
        return _AT_ZERO[module.family]
    if isinstance(module, nn.Hardtanh):
        return 1.0
    return _AT_ZERO[_TORCH_FAMILIES[type(module)]]


@torch.no_grad()
def saturation_sums(module: nn.Module, z: Tensor, eps: float) -> Tensor:
    """(count, saturated count, sum of f_α′(z)) of the pre-activations ``z`` (any shape),
    float64 (3,) on z's device, no host synchronisation; saturated: f_α′(z) < eps·f′(0). NaN
    pre-activations count in ``count`` and the sum (they propagate), not as saturated."""
    return _sums(activation_derivative(module, z), eps * derivative_at_zero(module))


#: family -> f′ from the output y = f(u) of the fused kernels (tanh: 1 − y², logistic: y·(1 − y));
#: the kernels' f is within 2 ulp of torch's, so these agree with f′(u) to about 1e-6 absolute.
_FROM_OUTPUT: Dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": lambda y: 1.0 - y.square(),
    "sigmoid": lambda y: y * (1.0 - y),
}


@torch.no_grad()
def folded_saturation_sums(module: nn.Module, tensor: Tensor, kind: str, eps: float) -> Tensor:
    """:func:`saturation_sums` from what the folded forward's tap gives
    (:mod:`lightning_sig.nn.activation_tap`): ``kind`` "pre", the folded pre-activation u = z/α
    (so f_α′(z) = f′(u), eq. 1), or "post", the fused kernel's f(u) for tanh and the logistic
    sigmoid; ``module`` the :class:`ScaledActivation` the values belong to.

    Raises:
        ValueError: another ``kind``, or "post" for a family other than tanh and sigmoid.
    """
    family = module.family
    t = tensor.detach()
    t = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    if kind == "post" and family in _FROM_OUTPUT and _one_pass(t):
        return load_radix_kernel().saturation_sums_from_output(
            t, family == "tanh", eps * derivative_at_zero(module))
    if kind == "pre":
        d = DERIVATIVES[family](t)
    elif kind == "post" and family in _FROM_OUTPUT:
        d = _FROM_OUTPUT[family](t)
    else:
        raise ValueError(f"folded_saturation_sums: kind {kind!r} for family {family!r}; valid: "
                         f"'pre' (any of {sorted(DERIVATIVES)}) or 'post' "
                         f"({sorted(_FROM_OUTPUT)})")
    return _sums(d, eps * derivative_at_zero(module))


def _one_pass(t: Tensor) -> bool:
    """Whether the compiled one-pass sums (``saturation_sums.cpp``) take ``t``: a contiguous
    float32 CPU tensor, the kernel built. Same count and saturated count as the torch ops, the
    float64 sum in another order (rounding only)."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() \
        and t.layout == torch.strided and load_radix_kernel() is not None


def _sums(d: Tensor, limit: float) -> Tensor:
    """(count, count of d < limit, Σ d) float64 (3,) on d's device."""
    return torch.stack([torch.tensor(float(d.numel()), dtype=torch.float64, device=d.device),
                        (d < limit).sum().double(), d.sum(dtype=torch.float64)])


def means_of(sums: Tensor) -> Tuple[float, float]:
    """(saturated fraction, mean f_α′) from :func:`saturation_sums` (NaN when empty)."""
    count, saturated, total = sums.tolist()
    return (saturated / count, total / count) if count else (math.nan, math.nan)
