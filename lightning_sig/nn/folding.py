"""The two remedies at the cost of a few small-tensor operations per step.

α-scaling (eq. 1, Sec. 2.3): after an affine layer z = W·x + b, f_α(z) = α·f(z/α) =
α·f((W/α)·x + b/α), and the factor α of the output passes through max pooling and flattening
(positive homogeneity) into the next affine layer: W'·(α·t) = (α·W')·t. So α is *folded* into the
small weight and bias tensors, never applied to the activations (:func:`run_folded`; measured on
CPU: applying α layer by layer makes a step ×1.05 slower).

l2 regularization (Sec. 2.2): the loss gains r/2·Σθ², whose gradient is r·θ.

:func:`run_folded_penalized` does both in one autograd node (:class:`ScaleAndPenalize`): one
``_foreach_mul`` makes the scaled weights, one ``_foreach_norm`` the penalty, and the backward
hands every parameter a single gradient s·∂L/∂(sθ) + r·θ·∂L/∂penalty, so autograd accumulates one
gradient per parameter instead of two. The same function and gradients as the layer-by-layer
definition up to float rounding (bitwise the same scaling for α a power of two).
"""
from __future__ import annotations

import functools
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from lightning_sig._compat import flatten_dense_tensors, unflatten_dense_tensors
from lightning_sig.nn.activation_tap import current_taps
from lightning_sig.nn.activations import ACTIVATIONS, HOMOGENEOUS

__all__ = ["l2_penalty", "run_folded", "run_folded_penalized", "fold_plan", "ScaleAndPenalize"]

Scale = Union[None, float, Tensor]  # None means 1
# One step of a folded forward: ("affine", layer, weight_scale, bias_scale, activation fn or
# None) | ("layer", layer) | ("rescale", layer, scale): multiply by scale, then apply layer.
Step = tuple
# (plan, scale, h, params or None) -> output: an executor of a fold plan, see _run_plan.
RunPlan = Callable[..., Tensor]


def l2_penalty(params: List[Tensor], r: float) -> Tensor:
    """The paper's l2 term r/2·Σθ² over ``params`` (Sec. 2.2); a 0-dim tensor, 0 when r = 0."""
    if r == 0 or not params:
        return torch.zeros((), device=params[0].device if params else None)
    return 0.5 * r * torch.cat([p.reshape(-1) for p in params]).square().sum()


def _ratio(numerator: Scale, denominator: Scale) -> Scale:
    if denominator is None:
        return numerator
    if numerator is None:
        return 1.0 / denominator
    if not isinstance(numerator, Tensor) and not isinstance(denominator, Tensor) \
            and numerator == denominator:
        return None
    return numerator / denominator


def _activation_alpha(act: nn.Module) -> Scale:
    """α of an α-scaled activation layer (float or tensor); None for α = 1 or relu/identity."""
    if act.family in HOMOGENEOUS:
        return None
    alpha = act.alpha_value()
    return None if not isinstance(alpha, Tensor) and alpha == 1.0 else alpha


def _is_affine(layer: nn.Module) -> bool:
    return isinstance(layer, (nn.Conv2d, nn.Linear)) or hasattr(layer, "scaled_forward")


def _affine(layer: nn.Module, h: Tensor, weight_scale: Scale, bias_scale: Scale,
            weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """``layer`` (Conv2d, Linear or a layer with ``scaled_forward``) with weight·weight_scale and
    bias·bias_scale (None = unscaled), or with the given already-scaled ``weight``/``bias``."""
    if weight is None:
        if hasattr(layer, "scaled_forward"):
            return layer.scaled_forward(h, weight_scale, bias_scale)
        weight = layer.weight if weight_scale is None else layer.weight * weight_scale
        bias = layer.bias if bias_scale is None or layer.bias is None else layer.bias * bias_scale
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(h, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    return F.linear(h, weight, bias)


def fold_plan(layers: Sequence[nn.Module]) -> Tuple[List[Step], Scale]:
    """The folded forward of ``layers`` as steps, and the scale left on the output.

    Affine layers: ``nn.Conv2d``, ``nn.Linear`` or any layer with ``scaled_forward(h,
    weight_scale, bias_scale)``; activations: layers with ``family``, ``learnable_alpha`` and
    ``_alpha``/``log_alpha`` (:class:`~lightning_sig.ScaledActivation`), folded when they follow
    an affine layer; ``nn.MaxPool2d``, ``nn.Flatten`` and layers with ``commutes_with_scale``
    pass a pending α through; any other layer gets the pending α applied to its input.

    Raises:
        ValueError: a tensor-valued per-member α (dim > 0) would have to be applied to the
            activations (before such another layer, or left after the last one).
    """
    plan: List[Step] = []
    scale: Scale = None  # the true activation is h·scale
    i = 0
    while i < len(layers):
        layer, nxt = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if _is_affine(layer):
            act = nxt if hasattr(nxt, "family") else None
            alpha = None if act is None else _activation_alpha(act)
            fn = None if act is None else ACTIVATIONS[act.family]
            plan.append(("affine", layer, _ratio(scale, alpha), _ratio(None, alpha), fn))
            scale, i = (alpha, i + 2) if act is not None else (None, i + 1)
            continue
        if isinstance(layer, (nn.MaxPool2d, nn.Flatten)) or getattr(layer, "commutes_with_scale",
                                                                   False):
            plan.append(("layer", layer))
        else:
            if isinstance(scale, Tensor) and scale.dim() > 0:
                raise ValueError(f"run_folded cannot apply a per-member α before a "
                                 f"{type(layer).__name__} layer.")
            plan.append(("rescale", layer, scale))
            scale = None
        i += 1
    if isinstance(scale, Tensor) and scale.dim() > 0:
        raise ValueError("run_folded: a per-member α is left over after the last layer.")
    return plan, scale


def next_scaled_params(params: Optional[Sequence[Tensor]], k: int, layer: nn.Module
                       ) -> Tuple[Optional[Tensor], Optional[Tensor], int]:
    """(weight, bias, next k) of ``layer`` from the flat list of scaled parameters at position
    ``k`` (bias None where the layer has none); (None, None, k) without ``params``."""
    if params is None:
        return None, None, k
    w, k = params[k], k + 1
    b = None
    if layer.bias is not None:
        b, k = params[k], k + 1
    return w, b, k


def _run_plan(plan: Sequence[Step], scale: Scale, h: Tensor,
              params: Optional[Sequence[Tensor]] = None) -> Tensor:
    """Execute ``plan`` on ``h``; ``params``: the affine layers' scaled (weight, bias) pairs,
    flattened in plan order, bias skipped where a layer has none. The fused CPU kernels
    (:mod:`lightning_sig.nn.fused`) have their own executor with this signature."""
    k, taps = 0, current_taps()
    for step in plan:
        if step[0] == "affine":
            layer, ws, bs, fn = step[1:]
            w, b, k = next_scaled_params(params, k, layer)
            h = _affine(layer, h, ws, bs, w, b)
            for tap in taps if fn is not None else ():
                tap(layer, h, "pre")  # the SaturationMonitor (activation_tap)
            h = h if fn is None else fn(h)
        elif step[0] == "layer":
            h = step[1](h)
        else:
            h = step[1](h if step[2] is None else h * step[2])
    return h if scale is None else h * scale


def run_folded(layers: Sequence[nn.Module], h: Tensor, run_plan: Optional[RunPlan] = None
               ) -> Tensor:
    """Apply ``layers`` to ``h`` with every α-scaling (eq. 1) folded into the affine layers (see
    the module docstring and :func:`fold_plan`). Same shapes as applying the layers in turn.
    ``run_plan``: optional replacement of the plan executor (the fused kernels' one).

    Raises:
        ValueError: from :func:`fold_plan`.
    """
    plan, scale = fold_plan(layers)
    return (run_plan or _run_plan)(plan, scale, h)


@functools.lru_cache(maxsize=64)
def _scale_vector(scales: Tuple[float, ...], numels: Tuple[int, ...], device: torch.device,
                  dtype: torch.dtype) -> Tensor:
    """(Σ numels,) vector holding scales[i] over the coordinates of parameter i, in float32 at
    least (a bf16/fp16 parameter is multiplied by the float32 scale and rounded once, as
    ``weight * scale`` with a Python float does)."""
    return torch.repeat_interleave(torch.tensor(scales, dtype=torch.promote_types(
        dtype, torch.float32)), torch.tensor(numels)).to(device)


# torch's C++ helpers (used by DDP and apex): concatenate tensors into one flat tensor, and cut a
# flat tensor into views shaped like a list of tensors; ~1 µs per tensor on CPU.
_flatten = flatten_dense_tensors
_unflatten = unflatten_dense_tensors


class ScaleAndPenalize(torch.autograd.Function):
    """θ_i ↦ (s_i·θ_i for every i, r/2·Σ_i ‖θ_i‖²) as one autograd node over one flat vector.

    ``apply(scales, r, *params)``: ``scales`` one float per parameter, ``r`` ≥ 0 the l2
    strength, ``params`` tensors of one dtype and device; returns the scaled tensors (same
    shapes; views of one new flat tensor) and the 0-dim penalty (0 when r = 0). Backward:
    ∂L/∂θ_i = s_i·∂L/∂(s_iθ_i) + r·θ_i·∂L/∂penalty (the exact gradient of r/2·Σθ², Sec. 2.2),
    one gradient per parameter (views of one flat tensor). Not twice differentiable (a
    second backward through it raises).

    Why flat: on CPU every small-tensor op costs ~2 µs of dispatch, so one ``cat`` and a few
    ops on the (Σ numels,) vector beat per-parameter (or ``_foreach``) ops (measured:
    benchmarks/RESULTS.md).
    """

    @staticmethod
    def forward(ctx, scales: List[float], r: float, *params: Tensor):
        ctx.params = params  # the inputs (leaf parameters): the shapes of the gradients
        flat = _flatten(params)  # (Σ numels,)
        ctx.scale = _scale_vector(tuple(scales), tuple(p.numel() for p in params), flat.device,
                                  flat.dtype)
        ctx.r = r
        if r:
            ctx.save_for_backward(flat)
            penalty = torch.dot(flat, flat) * (0.5 * r)
        else:
            penalty = flat.new_zeros(())
        return (*_unflatten((flat * ctx.scale).to(flat.dtype), params), penalty)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        grad_penalty = grads[-1]
        flat_grad = _flatten(grads[:-1])  # (Σ numels,); for one tensor a view of it: no in-place
        grad = (flat_grad * ctx.scale).to(flat_grad.dtype)
        if ctx.r:
            flat, = ctx.saved_tensors
            grad.add_(flat * (grad_penalty * ctx.r))  # tensor factor: no device sync
        return (None, None, *_unflatten(grad, ctx.params))


def run_folded_penalized(layers: Sequence[nn.Module], h: Tensor, r: float = 0.0,
                         run_plan: Optional[RunPlan] = None) -> Tuple[Tensor, Tensor]:
    """:func:`run_folded` and the l2 term r/2·Σθ² over the affine layers' weights and biases θ,
    fused (:class:`ScaleAndPenalize`) when every α is a plain float and every affine layer is an
    ``nn.Conv2d``/``nn.Linear`` whose parameters all require grad; otherwise the two computed
    separately (learnable or per-member α, frozen parameters, a layer used twice, whose
    parameters count once in the penalty).

    Args:
        layers: as for :func:`run_folded`.
        h: the input, e.g. (N, 3, 32, 32) images.
        r: the l2 strength, a float ≥ 0 (not checked here; the modules check it).
        run_plan: optional replacement of the plan executor (the fused kernels' one).

    Returns:
        ``(output, penalty)``: the output of the layers (e.g. (N, 10) logits) and a 0-dim tensor.
    """
    plan, scale = fold_plan(layers)
    run_plan = run_plan or _run_plan
    affine_steps = [step for step in plan if step[0] == "affine"]
    params: List[Tensor] = [p for step in affine_steps for p in (step[1].weight, step[1].bias)
                            if p is not None]
    if len({id(step[1]) for step in affine_steps}) < len(affine_steps):  # shared layer: θ once
        unique = list({id(p): p for p in params}.values())
        return (run_plan(plan, scale, h),
                l2_penalty([p for p in unique if p.requires_grad], r))
    scaled = [s for step in affine_steps for s, p in ((step[2], step[1].weight),
                                                (step[3], step[1].bias)) if p is not None]
    fusable = all(isinstance(step[1], (nn.Conv2d, nn.Linear)) for step in affine_steps) \
        and all(p.requires_grad for p in params) \
        and len({(p.dtype, p.device) for p in params}) == 1 \
        and not any(isinstance(s, Tensor) for s in (*scaled, scale)) \
        and not any(step[0] == "rescale" and isinstance(step[2], Tensor) for step in plan)
    if not params or not fusable or (r == 0 and all(s is None for s in scaled)):
        penalty = l2_penalty([p for p in params if p.requires_grad], r)
        return run_plan(plan, scale, h), penalty
    *folded, penalty = ScaleAndPenalize.apply([1.0 if s is None else float(s) for s in scaled],
                                              float(r), *params)
    return run_plan(plan, scale, h, folded), penalty
