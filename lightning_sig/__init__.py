"""lightning_sig: sigmoid-type networks without vanishing gradients, in PyTorch Lightning.

Reference implementation of Ven & Lederer, "Regularization and Reparameterization Avoid
Vanishing Gradients in Sigmoid-Type Networks" (arXiv 2106.02260): α-scaled activations
(eq. 1), the paper's CIFAR-10 networks with the explicit l2 term r/2·Σθ² (Sec. 2.2), a
CIFAR-10 DataModule and a gradient-statistics callback.

Public names are imported lazily: ``import lightning_sig`` imports neither torch nor Lightning,
so ``python -m lightning_sig.sweep`` and ``lightning_sig.figures`` start fast. The Lightning
classes here are built on ``pytorch_lightning``; their ``lightning.pytorch`` twins are in
:mod:`lightning_sig.lightning.pytorch`.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict

__version__ = "0.1.0"

_LIGHTNING = "lightning_sig.lightning.pytorch_lightning"
#: public name -> module that defines it
_EXPORTS: Dict[str, str] = {
    "ACTIVATIONS": "lightning_sig.nn.activations",
    "ScaledActivation": "lightning_sig.nn.activations",
    "scaled_activation": "lightning_sig.nn.activations",
    "ConvNetSpec": "lightning_sig.nn.convnets",
    "SigmoidConvNet": "lightning_sig.nn.convnets",
    "TABLE1": "lightning_sig.nn.convnets",
    "TABLE2": "lightning_sig.nn.convnets",
    "TABLE3": "lightning_sig.nn.convnets",
    "init_parameters": "lightning_sig.nn.convnets",
    "SigmoidNetModule": _LIGHTNING,
    "LargeParamsNet": _LIGHTNING,
    "ManyLayersNet": _LIGHTNING,
    "CombinedNet": _LIGHTNING,
    "CIFAR10DataModule": _LIGHTNING,
    "GradientQuantileCallback": _LIGHTNING,
    "NonFiniteLossGuard": _LIGHTNING,
    "SaturationMonitor": _LIGHTNING,
    "enable_speedups": "lightning_sig.speedups",
    "disable_speedups": "lightning_sig.speedups",
    "choose_threads": "lightning_sig.thread_choice",
    "restore_threads": "lightning_sig.thread_choice",
}
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
