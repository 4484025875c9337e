"""lightning_sig: sigmoid-type networks without vanishing gradients, in PyTorch Lightning.

Reference implementation of Ven & Lederer, "Regularization and Reparameterization Avoid
Vanishing Gradients in Sigmoid-Type Networks" (arXiv 2106.02260): α-scaled activations
(eq. 1), the paper's CIFAR-10 networks with the explicit l2 term r/2·Σθ² (Sec. 2.2), a
CIFAR-10 DataModule and a gradient-statistics callback.

Public names are imported lazily: ``import lightning_sig`` imports neither torch nor Lightning,
so ``python -m lightning_sig.sweep`` and ``lightning_sig.figures`` start fast. The Lightning
classes here are those of :mod:`lightning_sig.lightning.pytorch_lightning` (built on
``pytorch_lightning``); their ``lightning.pytorch`` twins are in
:mod:`lightning_sig.lightning.pytorch`. The list of public names: :mod:`lightning_sig.public_names`.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict

from lightning_sig.public_names import LIGHTNING_CLASSES, NAMESPACE_MODULES, TORCH_NAMES

if TYPE_CHECKING:  # for type checkers and static API-doc tools; at run time see __getattr__
    from lightning_sig.lightning.pytorch_lightning import CIFAR10DataModule, CombinedNet, \
        GradientQuantileCallback, LargeParamsNet, ManyLayersNet, NonFiniteLossGuard, \
        SaturationMonitor, SigmoidNetModule
    from lightning_sig.nn.activations import ACTIVATIONS, ScaledActivation, scaled_activation
    from lightning_sig.nn.convnets import TABLE1, TABLE2, TABLE3, ConvNetSpec, SigmoidConvNet, \
        init_parameters
    from lightning_sig.speedups import disable_speedups, enable_speedups
    from lightning_sig.thread_choice import choose_threads, restore_threads

__version__ = "0.1.0"

#: public name -> module that defines it (the one list: lightning_sig/public_names.py)
_EXPORTS: Dict[str, str] = {
    **TORCH_NAMES,
    **{name: NAMESPACE_MODULES["pytorch_lightning"] for name in LIGHTNING_CLASSES}}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_sig' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
