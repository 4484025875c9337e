"""The partial-derivative formulas of Sec. 2.1 and Sec. 2.3 exactly as printed, with the
convention for f^0 as a parameter, so that tests can compare them with autograd.

Why: the paper prints f^0 := 1 (Sec. 2.1) and f^0_α := 1 (Sec. 2.3). With those, the formulas
are wrong for k = 1 (they drop the factor x, resp. x/α, that the chain rule puts there);
with f^0 := x and f^0_α := x/α they are right up to the sign (the printed d := h'[y − g] is
the derivative in y − g, so ∂h[y − g]/∂θ^k = −d·∂g/∂θ^k; the printed right-hand side is
+d·∂g/∂θ^k). tanh only (α = 1 in Sec. 2.1), least squares h[z] = z² (Sec. 2.1's example).

Printed formulas (θ of shape (l,), k = 1..l):
  Sec. 2.1:  d · f^{k−1} · (1 − (f^l)²)···(1 − (f^k)²) · Π_{i=k+1..l} θ^i,
             f^i = tanh(θ^i f^{i−1}) for i ≥ 1 (f^1 = tanh(θ^1 x)).
  Sec. 2.3:  d · α · f_α^{k−1} · (1 − (f_α^l)²)···(1 − (f_α^k)²) · Π_{i=k+1..l} θ^i,
             f_α^i = tanh(θ^i ··· tanh(θ^1 x/α)), network output g = α·f_α^l.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["F0_CONVENTIONS", "printed_partials"]

#: "one": the printed f^0 := 1 (f^0_α := 1); "x": f^0 := x (also for the α-formula);
#: "x/alpha": f^0_α := x/α (for α = 1 the same as "x").
F0_CONVENTIONS = ("one", "x", "x/alpha")


def printed_partials(theta: Tensor, x: float, y: float, alpha: float = 1.0,
                     f0: str = "one") -> Tensor:
    """The printed right-hand side for every k (Sec. 2.1 at α = 1, Sec. 2.3 for any α).

    Args:
        theta: (θ^1, ..., θ^l), shape (l,), floating (use float64).
        x, y: the sample (x_sgd, y_sgd).
        alpha: α > 0 (default 1: the Sec. 2.1 formula, since the factor α and x/α drop out).
        f0: one of :data:`F0_CONVENTIONS`; the printed choice is "one".

    Returns: shape (l,), in ``theta``'s dtype, with d = h'[y − g] = 2·(y − α·f_α^l).
    Raises: ValueError for an unknown ``f0``, α not finite and > 0, or ``theta`` not 1-D non-empty.
    """
    if f0 not in F0_CONVENTIONS:
        raise ValueError(f"Unknown f0 convention {f0!r}; valid: {', '.join(F0_CONVENTIONS)}.")
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and math.isfinite(alpha)
                                       and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}.")
    if not isinstance(theta, Tensor) or theta.dim() != 1 or theta.numel() == 0:
        raise ValueError(f"theta must be a non-empty 1-D tensor of shape (l,), got {theta!r}.")
    z = torch.as_tensor(x / alpha, dtype=theta.dtype)
    outs = []  # f_α^1 .. f_α^l
    for k in range(theta.numel()):
        z = torch.tanh(theta[k] * z)
        outs.append(z)
    f = torch.stack(outs)  # (l,)
    first = {"one": 1.0, "x": float(x), "x/alpha": x / alpha}[f0]
    prev = torch.cat([f.new_full((1,), first), f[:-1]])  # f^{k−1}, (l,)
    sat = torch.flip(torch.cumprod(torch.flip(1.0 - f ** 2, [0]), 0), [0])  # Π_{j≥k}(1−(f^j)²)
    thetas_above = torch.cat([torch.flip(torch.cumprod(torch.flip(theta[1:], [0]), 0), [0]),
                              theta.new_ones(1)])  # Π_{i>k} θ^i, (l,)
    d = 2.0 * (y - alpha * f[-1])
    return d * alpha * prev * sat * thetas_above
