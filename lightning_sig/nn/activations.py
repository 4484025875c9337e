"""α-scaled sigmoid-type activations, f_α(z) = α·f(z/α) (paper eq. 1, Sec. 2.3).

Why: in a deep chain of sigmoid-type layers the derivatives multiply; for tanh, arctan and
softsign f'(0) = 1 but f' < 1 elsewhere, so the product vanishes with depth. Rescaling the
activation as α·f(z/α) keeps the function's shape but stretches its linear region by α, so
the derivatives f_α'(z) = f'(z/α) stay near f'(0) (Theorem 2). Positively homogeneous
activations (relu, identity) are unchanged by this scaling, so α is ignored for them exactly.

The registry follows timm's ``create_act.py``: a plain dict looked up by lower-case name.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ScaledActivation", "scaled_activation", "resolve_family", "check_alpha"]


def _softsign(z: Tensor) -> Tensor:
    return z / (1.0 + z.abs())


#: Family name → elementwise function f. ``sigmoid`` is the logistic function 1/(1+e^-z), which
#: is what the paper calls "logsigmoid" (MATLAB's ``logsig``); ``logsigmoid`` here is PyTorch's
#: log(1/(1+e^-z)).
ACTIVATIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "arctan": torch.atan,
    "softsign": _softsign,
    "relu": torch.relu,
    "identity": lambda z: z,
    "logsigmoid": F.logsigmoid,
}
_ALIASES = {"logistic": "sigmoid"}
#: Families with f(c·z) = c·f(z) for c > 0: α-scaling leaves them unchanged.
HOMOGENEOUS = frozenset({"relu", "identity"})


def resolve_family(family: str) -> str:
    """Return the canonical lower-case family name for ``family`` (``"logistic"`` → ``"sigmoid"``).

    Raises:
        ValueError: if ``family`` is not a string naming a registered family; the message lists
            the valid names.
    """
    name = family.lower() if isinstance(family, str) else family
    name = _ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        valid = sorted(ACTIVATIONS) + sorted(_ALIASES)
        raise ValueError(f"Unknown activation family {family!r}; valid names: {', '.join(valid)}.")
    return name


def check_alpha(alpha: object) -> float:
    """Return ``alpha`` as a float after checking it is a finite number > 0 (paper eq. 1: α > 0).

    Raises:
        ValueError: for 0, negative, NaN, ±inf, booleans and non-numbers, naming the value.
    """
    ok = isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
    if not ok or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}.")
    return float(alpha)


def scaled_activation(z: Tensor, family: str, alpha: float | Tensor = 1.0) -> Tensor:
    """Functional α-scaled activation f_α(z) = α·f(z/α) (paper eq. 1).

    Args:
        z: pre-activations, any shape, floating dtype.
        family: activation family name (see :data:`ACTIVATIONS`; ``"logistic"`` = ``"sigmoid"``).
        alpha: the scale α > 0 (float, default 1.0), or a 0-dim tensor (learnable α).

    Returns:
        Tensor of the same shape and dtype as ``z``. For relu and identity, f(z) exactly.

    Raises:
        ValueError: unknown family, or a float α that is not finite and > 0.
    """
    name = resolve_family(family)
    f = ACTIVATIONS[name]
    if name in HOMOGENEOUS:
        return f(z)
    if not isinstance(alpha, Tensor):
        if check_alpha(alpha) == 1.0:
            return f(z)
    return alpha * f(z / alpha)


class ScaledActivation(nn.Module):
    """The α-scaled activation f_α(z) = α·f(z/α) as a module (paper eq. 1, Sec. 2.3).

    Shape:
        input (*), output (*), same dtype.

    Example:
        >>> act = ScaledActivation("tanh", alpha=2.0)
        >>> act(torch.tensor([0.0, 2.0]))  # 2·tanh(z/2)
        tensor([0.0000, 1.5232])
    """

    def __init__(self, family: str, alpha: float = 1.0, learnable_alpha: bool = False) -> None:
        """f_α(z) = α·f(z/α) for ``family``, α fixed or trainable (eq. 1).

        Args:
            family: ``tanh``, ``sigmoid`` (alias ``logistic``), ``arctan``, ``softsign``, ``relu``,
                ``identity`` or ``logsigmoid`` (case-insensitive).
            alpha: the scale α, a finite float > 0; default 1.0 (the unscaled activation).
            learnable_alpha: if True, α is a trainable parameter of this layer, stored as
                ``log_alpha`` so it stays positive and initialised at ``alpha``. The paper mentions
                learning α (end of Sec. 2.3) but does not test it. Exclude it from the l2 penalty
                (our LightningModules do). Not allowed for relu/identity, where α has no effect.

        Raises:
            ValueError: unknown family (lists the valid names); α not finite and > 0;
                ``learnable_alpha`` with a positively homogeneous family.
        """
        super().__init__()
        self.family = resolve_family(family)
        alpha = check_alpha(alpha)
        if learnable_alpha and self.family in HOMOGENEOUS:
            raise ValueError(
                f"learnable_alpha=True has no effect for the positively homogeneous family "
                f"{self.family!r} (α·f(z/α) = f(z)); use it with tanh, sigmoid, arctan, softsign "
                f"or logsigmoid."
            )
        self.learnable_alpha = bool(learnable_alpha)
        if self.learnable_alpha:
            self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))
        else:
            self._alpha = alpha

    @property
    def alpha(self) -> float:
        """Current α as a Python float (detached; no autograd warning)."""
        return float(self.log_alpha.detach().exp()) if self.learnable_alpha else self._alpha

    def alpha_value(self) -> float | Tensor:
        """α as the forward pass uses it: the 0-d tensor exp(log_alpha) (differentiable) when
        learnable, else the float α. What α-folding (:mod:`lightning_sig.nn.folding`) reads."""
        return self.log_alpha.exp() if self.learnable_alpha else self._alpha

    def forward(self, z: Tensor) -> Tensor:
        """f_α(z) = α·f(z/α) elementwise; (*) → (*)."""
        return scaled_activation(z, self.family, self.alpha_value())

    def extra_repr(self) -> str:
        return f"family={self.family!r}, alpha={self.alpha:.4g}, learnable_alpha={self.learnable_alpha}"
