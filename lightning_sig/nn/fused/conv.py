"""The C++ 3×3 convolution as an autograd Function, and the ``affine`` hook of
:func:`~lightning_sig.nn.folding.run_folded` that routes the paper nets' convolutions to it.

Only the convolutions (with their bias) run in C++; the activations f (with α folded into the
weights, :mod:`lightning_sig.nn.folding`), max pooling and the dense layers stay torch's own
vectorised ops, so f and its derivative are bitwise torch's and the fast path differs from the
torch path only by the rounding of the convolution sums (a different summation order).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from lightning_sig.nn import folding
from lightning_sig.nn.fused._build import load_kernels
from lightning_sig.nn.members import _MemberConv2d, _scaled

__all__ = ["Conv3x3Function", "conv3x3", "is_fusable_conv", "fused_affine"]


class Conv3x3Function(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, stride=1, padding=1, groups=groups)`` for 3×3 kernels (C++).

    ``apply(x, weight, bias, groups)``: x (B, G·C, H, W), weight (G·O, C, 3, 3), bias (G·O,),
    float32 or float64 on CPU → (B, G·O, H, W), NCHW-contiguous. Backward gives ∂/∂x (when x
    requires grad), ∂/∂weight and ∂/∂bias; not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, groups: int) -> Tensor:
        kernels = load_kernels(required=True)
        x, weight = x.contiguous(), weight.contiguous()
        ctx.save_for_backward(x, weight)
        ctx.groups = groups
        return kernels.conv3x3_forward(x, weight, bias, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if need_x or need_w:
            dx, dw = load_kernels(required=True).conv3x3_backward(grad_out, x, weight,
                                                                  ctx.groups, need_x)
            grad_x, grad_w = (dx if need_x else None), (dw if need_w else None)
        if need_b:
            grad_b = grad_out.sum(dim=(0, 2, 3))  # (G·O,)
        return grad_x, grad_w, grad_b, None


def conv3x3(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int = 1) -> Tensor:
    """Functional :class:`Conv3x3Function`; ``bias=None`` means no bias (zeros)."""
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return Conv3x3Function.apply(x, weight, bias, groups)


def _same3x3(layer: nn.Module) -> bool:
    return tuple(layer.stride) == (1, 1) and tuple(layer.padding) == (1, 1) \
        and tuple(layer.dilation) == (1, 1)


def is_fusable_conv(layer: nn.Module) -> bool:
    """True for a 3×3, stride 1, padding 1, dilation 1 ``nn.Conv2d`` (zero padding) or member
    convolution (:class:`~lightning_sig.nn.members._MemberConv2d`): what the kernel computes."""
    if isinstance(layer, nn.Conv2d):
        return tuple(layer.kernel_size) == (3, 3) and _same3x3(layer) \
            and layer.padding_mode == "zeros"
    if isinstance(layer, _MemberConv2d):
        return tuple(layer.weight.shape[-2:]) == (3, 3) and _same3x3(layer)
    return False


def fused_affine(layer: nn.Module, h: Tensor, weight_scale, bias_scale,
                 weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """The ``affine`` hook of :func:`~lightning_sig.nn.folding.run_folded`: 3×3 convolutions on
    float CPU tensors through :func:`conv3x3`, everything else through torch (``folding._affine``).
    Same arguments as ``folding._affine``."""
    if h.device.type != "cpu" or h.dtype not in (torch.float32, torch.float64) \
            or not is_fusable_conv(layer):
        return folding._affine(layer, h, weight_scale, bias_scale, weight, bias)
    if isinstance(layer, _MemberConv2d):
        w = _scaled(layer.weight, weight_scale).flatten(0, 1)  # (S·O, C, 3, 3)
        b = _scaled(layer.bias, bias_scale)
        return conv3x3(h, w, None if b is None else b.flatten(), layer.weight.shape[0])
    if weight is None:
        weight = layer.weight if weight_scale is None else layer.weight * weight_scale
        bias = layer.bias if bias_scale is None or layer.bias is None else layer.bias * bias_scale
    return conv3x3(h, weight, bias, layer.groups)
