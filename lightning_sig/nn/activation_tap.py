"""A tap on the pre-activations of the folded forward (:mod:`lightning_sig.nn.folding`), so that
the SaturationMonitor can read them from the training step's own forward instead of running a
second, layer-by-layer forward (which cost as much as a whole fused training step).

The folded forward never calls the activation modules (α is folded into the affine layers,
eq. 1), so module hooks cannot see their inputs. While a tap is set (:func:`set_tap`, in this
thread's context only; :func:`reset_tap` restores the previous one), the plan executors call
``tap(layer, tensor, kind)`` once per affine layer that is followed by an activation:

- ``kind == "pre"``: ``tensor`` is u = z/α, the folded pre-activation, so that the activation's
  f_α(z) = α·f(u) and f_α′(z) = f′(u);
- ``kind == "post"``: ``tensor`` is f(u), the activation's output before pooling, from the fused
  C++ kernels (tanh and the logistic sigmoid, whose f′ follows from f(u): 1 − f² and f·(1 − f)).

``layer`` is the affine module (``nn.Conv2d``/``nn.Linear``) whose output it is. Nothing is
called while no tap is set (one context-variable read per forward).
"""
from __future__ import annotations

import contextvars
from typing import Callable, Optional

from torch import Tensor, nn

__all__ = ["Tap", "set_tap", "reset_tap", "current_tap"]

#: ``tap(affine layer, tensor, "pre" | "post")``, see the module docstring.
Tap = Callable[[nn.Module, Tensor, str], None]

_TAP: contextvars.ContextVar[Optional[Tap]] = contextvars.ContextVar(
    "lightning_sig_activation_tap", default=None)


def set_tap(tap: Tap) -> contextvars.Token:
    """Call ``tap`` from every folded forward of this thread until :func:`reset_tap`."""
    return _TAP.set(tap)


def reset_tap(token: contextvars.Token) -> None:
    """Restore the tap that was set before the :func:`set_tap` that returned ``token``."""
    _TAP.reset(token)


def current_tap() -> Optional[Tap]:
    """The tap set in this context, or None."""
    return _TAP.get()
