"""Sec. 2.2's four properties of tanh, checked numerically for six sigmoid-type functions.

Why: the paper says its proofs rest on four properties of tanh and that "these four conditions
are also met by other standard sigmoid-type activation functions, such as logsigmoid and
arctan". As printed they are:

  1. boundedness           |f(z)| ≤ 1 for all z;
  2. vanishing derivative  lim_{z→±∞} f'(z)·z = 0;
  3. positive limit        lim_{z→∞} f(z) > 0;
  4. linear at the origin  lim_{α→∞} α·f(z/α) = a_lin·z for some a_lin ∈ (0, ∞) and all z.

:func:`property_checks` evaluates each in float64 from closed forms: (1) the largest |f| on
a grid up to |z| = 1e6; (2) |z·f'(z)| at z = ±1e6 (≤ 1e-4 counts as → 0: every function here
has |z f'(z)| = O(1/|z|) or smaller when the limit is 0, and ≥ 1 there when it is not);
(3) f(1e6) > 1e-3 (log σ(1e6) ≈ −e^{−1e6} is 0); (4) α·f(z/α) at α = 1e8 against f'(0)·z on
z ∈ [−3, 3] (relative 1e-6) with f'(0) > 0. The thresholds are assumptions of this check,
chosen far from every borderline value; the tests compare the verdicts with hand derivations.

Names: "logistic" σ(z) = 1/(1+e^{−z}) (MATLAB's ``logsig``, what the project's configs call
"sigmoid"), "logsigmoid" log σ(z) (PyTorch's name), "centred_logistic" σ(z) − 1/2
(= tanh(z/2)/2), "arctan", "softsign" z/(1+|z|), "tanh".
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FUNCTIONS", "PROPERTIES", "property_checks"]

_Fn = Callable[[Tensor], Tensor]

#: name → (f, f') in closed form.
FUNCTIONS: Dict[str, Tuple[_Fn, _Fn]] = {
    "tanh": (torch.tanh, lambda z: 1.0 / torch.cosh(z) ** 2),
    "logistic": (torch.sigmoid, lambda z: torch.sigmoid(z) * torch.sigmoid(-z)),
    "logsigmoid": (F.logsigmoid, lambda z: torch.sigmoid(-z)),
    "centred_logistic": (lambda z: torch.sigmoid(z) - 0.5,
                         lambda z: torch.sigmoid(z) * torch.sigmoid(-z)),
    "arctan": (torch.atan, lambda z: 1.0 / (1.0 + z * z)),
    "softsign": (lambda z: z / (1.0 + z.abs()), lambda z: 1.0 / (1.0 + z.abs()) ** 2),
}
#: Property number → short name, in the paper's order.
PROPERTIES = {1: "bounded by 1", 2: "f'(z)·z → 0", 3: "positive limit", 4: "linear at origin"}


def property_checks(name: str) -> Dict[int, bool]:
    """Which of the four printed properties ``name`` meets (numerical verdict, see module doc).

    Args:
        name: a key of :data:`FUNCTIONS`.

    Returns: {1: bool, 2: bool, 3: bool, 4: bool}.
    Raises: ValueError for an unknown name (listing the valid ones).
    """
    if name not in FUNCTIONS:
        raise ValueError(f"Unknown function {name!r}; valid names: {', '.join(sorted(FUNCTIONS))}.")
    f, fprime = FUNCTIONS[name]
    f64 = torch.float64
    mag = torch.logspace(-3, 6, 2001, dtype=f64)
    grid = torch.cat([-mag.flip(0), torch.zeros(1, dtype=f64), mag])  # (4003,)
    tails = torch.tensor([-1e6, 1e6], dtype=f64)
    z = torch.linspace(-3.0, 3.0, 61, dtype=f64)
    alpha = 1e8
    slope = float(fprime(torch.zeros(1, dtype=f64)))
    linear = alpha * f(z / alpha)
    return {
        1: bool(f(grid).abs().max() <= 1.0),
        2: bool((tails * fprime(tails)).abs().max() <= 1e-4),
        3: bool(f(tails[1:]) > 1e-3),
        4: slope > 0 and bool(torch.allclose(linear, slope * z, rtol=1e-6, atol=1e-9)),
    }
