"""The paper nets' forward through the fused CPU kernels (one network or S members).

:func:`fused_forward` and :func:`fused_forward_penalized` compute exactly what
``net(x)`` and ``net.forward_penalized(x, r)`` compute (:class:`~lightning_sig.SigmoidConvNet`,
:class:`~lightning_sig.members.networks.MemberConvNet`), with the 3×3 convolutions in C++
with bias, f and 2×2 max pooling (:mod:`lightning_sig.nn.fused.conv`) on NCHW tensors instead
of oneDNN on channels_last; the same up to float rounding.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from lightning_sig.nn.convnets import SigmoidConvNet
from lightning_sig.nn.folding import run_folded, run_folded_penalized
from lightning_sig.nn.fused.conv import is_fusable_conv, run_plan_fused
from lightning_sig.members.networks import MemberConvNet, _MemberConv2d

__all__ = ["unsupported_reason", "fused_forward", "fused_forward_penalized"]


def unsupported_reason(net: nn.Module, device: Optional[torch.device] = None,
                       dtype: Optional[torch.dtype] = None) -> Optional[str]:
    """Why the fused kernels cannot run ``net`` (a sentence), or None when they can.

    Supported: a :class:`SigmoidConvNet` or :class:`MemberConvNet` on CPU, float32/float64
    parameters, every convolution 3×3 "same" (the paper's nets, Tables 1–3).
    """
    if not isinstance(net, (SigmoidConvNet, MemberConvNet)):
        return f"the network is a {type(net).__name__}, not a SigmoidConvNet/MemberConvNet"
    p = next(net.parameters())
    device, dtype = device or p.device, dtype or p.dtype
    if torch.device(device).type != "cpu":
        return f"the fused kernels are CPU kernels (device {device})"
    if dtype not in (torch.float32, torch.float64):
        return f"dtype {dtype} (fused kernels: float32, float64)"
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, _MemberConv2d))]
    if not all(is_fusable_conv(m) for m in convs):
        return "a convolution is not 3×3 with stride 1, padding 1, dilation 1"
    return None


def _layers(net: nn.Module) -> list:
    return [*net.features, *net.classifier]


def _member_input(net: MemberConvNet, x: Tensor) -> Tensor:
    """(S, B, C, H, W) or (B, C, H, W) → the grouped NCHW layout (B, S·C, H, W)."""
    s = net.num_members
    x = net.member_input(x)
    _, b, c, height, width = x.shape
    return x.transpose(0, 1).reshape(b, s * c, height, width)  # one copy, NCHW-contiguous


def fused_forward(net: nn.Module, x: Tensor) -> Tensor:
    """``net(x)`` with the convolutions in the fused kernels.

    Args:
        net: a :class:`SigmoidConvNet` (x (N, 3, H, W) → (N, 10) logits) or a
            :class:`MemberConvNet` (x (S, B, 3, H, W) or (B, 3, H, W) → (S, B, 10)).

    Raises:
        ValueError: a member input of the wrong shape.
        RuntimeError: the kernels cannot be built.
    """
    if isinstance(net, MemberConvNet):
        return run_folded(_layers(net), _member_input(net, x), run_plan=run_plan_fused)
    return run_folded(_layers(net), x.contiguous(), run_plan=run_plan_fused)


def fused_forward_penalized(net: SigmoidConvNet, x: Tensor, r: float = 0.0
                            ) -> Tuple[Tensor, Tensor]:
    """``net.forward_penalized(x, r)`` with the convolutions in the fused kernels:
    (N, 10) logits and the 0-dim l2 term r/2·Σθ² (Sec. 2.2)."""
    return run_folded_penalized(_layers(net), x.contiguous(), r, run_plan=run_plan_fused)
