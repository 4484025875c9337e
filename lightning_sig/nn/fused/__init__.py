"""Fast CPU path for the paper's tiny conv nets: C++ 3×3 convolution + bias + activation + 2×2 max pooling (forward
and backward)
for one network or S members in one call, built at first use.

Public entry points: :func:`fused_forward`, :func:`fused_forward_penalized` (drop-in for
``net(x)`` / ``net.forward_penalized``), :func:`unsupported_reason`, :func:`kernels_available`
and the autograd Function :class:`Conv3x3Function`. The LightningModules select this path with
``backend="auto" | "fused"`` (:mod:`lightning_sig.lightning.modules`).
"""
from lightning_sig.nn.fused._build import build_error, build_seconds, kernels_available, \
    load_kernels
from lightning_sig.nn.fused.conv import ConvActFunction, Conv3x3Function, conv3x3, conv3x3_act, \
    run_plan_fused
from lightning_sig.nn.fused.nets import fused_forward, fused_forward_penalized, unsupported_reason

__all__ = ["ConvActFunction", "Conv3x3Function", "conv3x3", "conv3x3_act", "run_plan_fused",
           "fused_forward",
           "fused_forward_penalized", "unsupported_reason", "kernels_available", "load_kernels",
           "build_seconds", "build_error"]
