"""The optimizer of the paper's experiments: Adam (Sec. 3: "Adam with learning rate 10^-3"),
fused where torch has a fused kernel for the device."""
from __future__ import annotations

import torch

from lightning_sig._compat import fused_adam_devices

__all__ = ["adam"]


def adam(params, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr, eps=eps)``, with ``fused=True`` when every parameter is a floating
    tensor on a device with fused Adam kernels (CPU from torch 2.4, CUDA, ...), else torch's
    default implementation. The same update up to float rounding; measured on this CPU: an
    Adam step of a paper network ×0.35 (benchmarks/RESULTS.md)."""
    params = list(params)
    devices = set(fused_adam_devices())
    fused = bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True if fused else None)
