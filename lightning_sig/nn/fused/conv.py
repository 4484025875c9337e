"""The C++ kernels as autograd Functions, and the fold-plan executor that routes the paper nets'
layers to them.

:class:`ConvActFunction` is one 3×3 "same" convolution + bias + f (identity, tanh, sigmoid,
relu) + optional 2×2 max pooling, forward and backward in one call; :class:`Conv3x3Function` is
the convolution alone (for arctan, softsign and logsigmoid, whose f then runs as torch's op).
α (eq. 1) is already folded into the weights (:mod:`lightning_sig.nn.folding`), so the kernels
apply the plain f. :func:`run_plan_fused` executes a fold plan like ``folding._run_plan``, with
these kernels where they apply and torch everywhere else (dense layers, other layers).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from lightning_sig.nn import folding
from lightning_sig.nn.activation_tap import current_taps
from lightning_sig.nn.activations import ACTIVATIONS
from lightning_sig.nn.fused._build import load_kernels
from lightning_sig.members.networks import _MemberConv2d, _scaled

__all__ = ["Conv3x3Function", "ConvActFunction", "conv3x3", "conv3x3_act", "ACT_CODES",
           "is_fusable_conv", "is_fusable_pool", "run_plan_fused"]

#: Activations the kernel fuses (f → code of conv3x3.cpp's ``Act``).
ACT_CODES = {None: 0, ACTIVATIONS["identity"]: 0, ACTIVATIONS["tanh"]: 1,
             ACTIVATIONS["sigmoid"]: 2, ACTIVATIONS["relu"]: 3}


class Conv3x3Function(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, stride=1, padding=1, groups=groups)`` for 3×3 kernels (C++).

    ``apply(x, weight, bias, groups)``: x (B, G·C, H, W), weight (G·O, C, 3, 3), bias (G·O,),
    float32 or float64 on CPU → (B, G·O, H, W), NCHW-contiguous. Backward gives ∂/∂x (when x
    requires grad), ∂/∂weight and ∂/∂bias; not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, groups: int) -> Tensor:
        x, weight = x.contiguous(), weight.contiguous()
        ctx.save_for_backward(x, weight)
        ctx.groups = groups
        return load_kernels(required=True).conv3x3_forward(x, weight, bias, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_out = grad_out.contiguous()
        dx, dw = load_kernels(required=True).conv3x3_backward(grad_out, x, weight, ctx.groups,
                                                              need_x)
        grad_b = grad_out.sum(dim=(0, 2, 3)) if need_b else None  # (G·O,)
        return (dx if need_x else None), (dw if need_w else None), grad_b, None


class ConvActFunction(torch.autograd.Function):
    """pool(f(conv3x3(x) + bias)) in one C++ call (forward and backward).

    ``apply(x, weight, bias, groups, act_code, pool)``: shapes as :class:`Conv3x3Function`;
    ``act_code`` from :data:`ACT_CODES`; ``pool``: 2×2 max pooling, stride 2, floor mode
    (``nn.MaxPool2d(2)``, torch's tie rule: the first maximum in row-major window order) →
    (B, G·O, H/2, W/2), else (B, G·O, H, W); ``sink`` (optional list): gets f's output before
    pooling appended (for :mod:`~lightning_sig.nn.activation_tap`). Saves x, weight, f's output
    and the pooling argmax (uint8) for backward; not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, groups: int, act_code: int,
                pool: bool, sink: Optional[list] = None) -> Tensor:
        x, weight = x.contiguous(), weight.contiguous()
        out, act, idx = load_kernels(required=True).conv3x3_act_forward(
            x, weight, bias, groups, act_code, pool)
        if sink is not None:  # f's output before pooling, for an activation tap
            sink.append(act)
        ctx.save_for_backward(x, weight, act, idx)
        ctx.config = (groups, act_code, pool)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight, act, idx = ctx.saved_tensors
        groups, act_code, pool = ctx.config
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx, dw, db = load_kernels(required=True).conv3x3_act_backward(
            grad_out.contiguous(), x, weight, act, idx, groups, act_code, pool, need_x)
        return (dx if need_x else None), (dw if need_w else None), (db if need_b else None), \
            None, None, None, None


def _bias(weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    return weight.new_zeros(weight.shape[0]) if bias is None else bias


def conv3x3(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int = 1) -> Tensor:
    """Functional :class:`Conv3x3Function`; ``bias=None`` means no bias."""
    return Conv3x3Function.apply(x, weight, _bias(weight, bias), groups)


def conv3x3_act(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int = 1,
                act_code: int = 0, pool: bool = False, sink: Optional[list] = None) -> Tensor:
    """Functional :class:`ConvActFunction`; ``bias=None`` means no bias."""
    return ConvActFunction.apply(x, weight, _bias(weight, bias), groups, act_code, pool, sink)


def _same3x3(layer: nn.Module) -> bool:
    return tuple(layer.stride) == (1, 1) and tuple(layer.padding) == (1, 1) \
        and tuple(layer.dilation) == (1, 1)


def is_fusable_conv(layer: nn.Module) -> bool:
    """True for a 3×3, stride 1, padding 1 (zeros), dilation 1 ``nn.Conv2d`` or member
    convolution (:class:`~lightning_sig.members.networks._MemberConv2d`): what the kernels compute."""
    if isinstance(layer, nn.Conv2d):
        return tuple(layer.kernel_size) == (3, 3) and _same3x3(layer) \
            and layer.padding_mode == "zeros"
    if isinstance(layer, _MemberConv2d):
        return tuple(layer.weight.shape[-2:]) == (3, 3) and _same3x3(layer)
    return False


def is_fusable_pool(layer: nn.Module) -> bool:
    """True for ``nn.MaxPool2d(2)`` (kernel 2, stride 2, no padding, dilation 1, floor mode)."""
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    return isinstance(layer, nn.MaxPool2d) and pair(layer.kernel_size) == (2, 2) \
        and pair(layer.stride) == (2, 2) and pair(layer.padding) == (0, 0) \
        and pair(layer.dilation) == (1, 1) and not layer.ceil_mode and not layer.return_indices


def _conv_weights(layer: nn.Module, ws, bs, weight: Optional[Tensor], bias: Optional[Tensor]):
    """(weight (G·O, C, 3, 3), bias (G·O,) or None, groups) with α folded in (see _affine)."""
    if isinstance(layer, _MemberConv2d):
        w = _scaled(layer.weight, ws).flatten(0, 1)  # (S, O, C, 3, 3) -> (S·O, C, 3, 3)
        b = _scaled(layer.bias, bs)
        return w, None if b is None else b.flatten(), layer.weight.shape[0]
    if weight is None:
        weight = layer.weight if ws is None else layer.weight * ws
        bias = layer.bias if bs is None or layer.bias is None else layer.bias * bs
    return weight, bias, layer.groups


def run_plan_fused(plan: Sequence[folding.Step], scale, h: Tensor,
                   params: Optional[Sequence[Tensor]] = None) -> Tensor:
    """``folding._run_plan`` with each fusable 3×3 conv (+ f + a following 2×2 max pooling) in
    one :class:`ConvActFunction` (f in :data:`ACT_CODES`) or a :class:`Conv3x3Function` followed
    by torch's f (other families); torch for everything else and for non-float/non-CPU ``h``."""
    cpu_float = h.device.type == "cpu" and h.dtype in (torch.float32, torch.float64)
    k, i, taps = 0, 0, current_taps()
    while i < len(plan):
        step = plan[i]
        if step[0] != "affine":
            h = folding._run_plan([step], None, h)
            i += 1
            continue
        layer, ws, bs, fn = step[1:]
        w, b, k = folding.next_scaled_params(params, k, layer)
        if not (cpu_float and is_fusable_conv(layer)):
            h = folding._affine(layer, h, ws, bs, w, b)
            for tap in taps if fn is not None else ():
                tap(layer, h, "pre")
            h, i = (h if fn is None else fn(h)), i + 1
            continue
        weight, bias, groups = _conv_weights(layer, ws, bs, w, b)
        if fn not in ACT_CODES:
            h = conv3x3(h, weight, bias, groups)
            for tap in taps:
                tap(layer, h, "pre")
            h, i = fn(h), i + 1
            continue
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        pool = nxt is not None and nxt[0] == "layer" and is_fusable_pool(nxt[1]) \
            and h.shape[-1] >= 2 and h.shape[-2] >= 2
        sink = [] if taps and fn is not None else None
        h = conv3x3_act(h, weight, bias, groups, ACT_CODES[fn], pool, sink)
        for tap in taps if sink else ():
            tap(layer, sink[0], "post")
        i += 2 if pool else 1
    return h if scale is None else h * scale
