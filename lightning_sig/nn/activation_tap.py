"""A tap on the pre-activations of the folded forward (:mod:`lightning_sig.nn.folding`), so that
the SaturationMonitor can read them from the training step's own forward instead of running a
second, layer-by-layer forward (which cost as much as a whole fused training step).

The folded forward never calls the activation modules (α is folded into the affine layers,
eq. 1), so module hooks cannot see their inputs. While taps are added (:func:`add_tap`, in this
thread's context only, until :func:`remove_tap`; several at once, e.g. two monitors, each
removed by identity, in any order), the plan executors call each ``tap(layer, tensor, kind)``
once per affine layer that is followed by an activation:

- ``kind == "pre"``: ``tensor`` is u = z/α, the folded pre-activation, so that the activation's
  f_α(z) = α·f(u) and f_α′(z) = f′(u);
- ``kind == "post"``: ``tensor`` is f(u), the activation's output before pooling, from the fused
  C++ kernels (tanh and the logistic sigmoid, whose f′ follows from f(u): 1 − f² and f·(1 − f)).

``layer`` is the affine module (``nn.Conv2d``/``nn.Linear``) whose output it is. Nothing is
called while no tap is added (one context-variable read per forward).
"""
from __future__ import annotations

import contextvars
from typing import Callable, Tuple

from torch import Tensor, nn

__all__ = ["Tap", "add_tap", "remove_tap", "current_taps"]

#: ``tap(affine layer, tensor, "pre" | "post")``, see the module docstring.
Tap = Callable[[nn.Module, Tensor, str], None]

_TAPS: contextvars.ContextVar[Tuple[Tap, ...]] = contextvars.ContextVar(
    "lightning_sig_activation_taps", default=())


def add_tap(tap: Tap) -> None:
    """Call ``tap`` from every folded forward of this thread until :func:`remove_tap`."""
    _TAPS.set(_TAPS.get() + (tap,))


def remove_tap(tap: Tap) -> None:
    """Stop calling ``tap`` (compared by equality, so a bound method works; no-op if absent)."""
    taps = _TAPS.get()
    if tap in taps:
        _TAPS.set(tuple(t for t in taps if t != tap))


def current_taps() -> Tuple[Tap, ...]:
    """The taps added in this context (empty when none)."""
    return _TAPS.get()
