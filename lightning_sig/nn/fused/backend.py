"""Which path runs a paper network: the ``backend`` hyperparameter of our LightningModules.

``"torch"``: torch's ops (oneDNN convolutions on CPU, cuDNN grouped convolutions for members on a
GPU). ``"fused"``: the C++ kernels of :mod:`lightning_sig.nn.fused` (CPU only; an error when they
cannot run the model). ``"auto"`` (default): fused when the model runs on a CPU, in float32 or
float64, without ``compile_net`` and the kernels build; else torch (with one warning when the
build fails). On a GPU, auto is the torch path (grouped convolutions over the members).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from lightning_sig.nn.fused._build import load_kernels
from lightning_sig.nn.fused.nets import unsupported_reason

__all__ = ["BACKENDS", "check_backend", "resolve_backend"]

#: Valid values of ``backend``.
BACKENDS = ("auto", "torch", "fused")


def check_backend(backend: object, compile_net: bool = False) -> str:
    """Return ``backend`` after checking it is one of :data:`BACKENDS`.

    Raises:
        ValueError: another value (names it and the valid ones), or ``"fused"`` together with
            ``compile_net=True`` (torch.compile traces torch's ops, not the C++ kernels).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got "
                         f"{backend!r}.")
    if backend == "fused" and compile_net:
        raise ValueError("backend='fused' cannot be combined with compile_net=True; use "
                         "backend='torch' (or 'auto') with compile_net.")
    return backend


def resolve_backend(backend: str, net: nn.Module, device: Optional[torch.device] = None,
                    compile_net: bool = False) -> Tuple[str, str]:
    """``("torch" | "fused", why)`` for ``net`` on ``device`` (default: its parameters').

    Raises:
        ValueError: ``backend="fused"`` for a model the kernels cannot run (says why).
        RuntimeError: ``backend="fused"`` and the kernels cannot be built.
    """
    if backend == "torch":
        return "torch", "backend='torch'"
    if compile_net:
        return "torch", "compile_net=True"
    reason = unsupported_reason(net, device=device)
    if reason is not None:
        if backend == "fused":
            raise ValueError(f"backend='fused' cannot run this model: {reason}; use "
                             f"backend='auto' or 'torch'.")
        return "torch", reason
    if load_kernels(required=backend == "fused") is None:
        return "torch", "the C++ kernels could not be built"
    return "fused", "C++ 3x3 conv + bias + activation + max-pool kernels (lightning_sig.nn.fused)"
