"""The optimizer of the paper's experiments: Adam (Sec. 3: "Adam with learning rate 10^-3"),
fused where torch has a fused kernel for the device."""
from __future__ import annotations

import torch

from lightning_sig._compat import fused_adam_devices

__all__ = ["adam", "portable_adam_state"]


def adam(params, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr, eps=eps)``, with ``fused=True`` when every parameter is a floating
    tensor on a device with fused Adam kernels (CPU from torch 2.4, CUDA, ...), else torch's
    default implementation. The same update up to float rounding; measured on this CPU: an
    Adam step of a paper network ×0.35 (benchmarks/RESULTS.md)."""
    params = list(params)
    devices = set(fused_adam_devices())
    fused = bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True if fused else None)


def portable_adam_state(state: dict, device_type: str) -> dict:
    """An optimizer ``state_dict`` from a checkpoint, made loadable by this torch: a param
    group's ``fused=True`` is kept only where this torch has fused Adam kernels for
    ``device_type`` (CPU from torch 2.4), else set to None (torch's default implementation, the
    same update up to float rounding; :func:`adam` would have chosen it here). Without this a
    checkpoint written on torch >= 2.4 fails to resume on torch 2.2-2.3 at the first step
    ("Could not run 'aten::_fused_adam_' ... 'CPU' backend"). Changes ``state`` in place and
    returns it; a state without param groups is returned as is."""
    supported = device_type in set(fused_adam_devices())
    for group in state.get("param_groups", []):
        if group.get("fused") and not supported:
            group["fused"] = None
    return state
