"""Exact gradient statistics of many small vectors at once (one layer = one segment).

:mod:`lightning_sig.grad_stats` handles one vector of any size with little memory; calling it
once per layer costs a Python round trip per layer, which dominates a training step of the
paper's tiny networks (about 1,500 parameters in 15 layers). Here all layers are one flat tensor
cut into segments, and every statistic of every segment comes from a fixed number of vectorised
ops: two stable sorts order the values within their segments, quantiles are gathered by index,
and moments are segment sums (``index_add_``). Values equal :func:`grad_stats.gradient_statistics`
(numpy "linear" quantiles, float64 moments), with no host synchronisation.

Memory: about eight copies of the flat gradient (sort keys and int64 indices), so callers
should use it for modest sizes (:data:`SEGMENTED_MAX_NUMEL`) and fall back to per-layer
:func:`grad_stats.gradient_statistics_tensor` beyond.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lightning_sig.grad_stats import check_quantile_levels, check_vanishing_threshold

__all__ = ["segment_statistics", "SEGMENTED_MAX_NUMEL"]

#: Largest total size (coordinates) for which :func:`segment_statistics` is the cheaper path.
SEGMENTED_MAX_NUMEL = 1 << 22


def _segment_sort(keys: Tensor, seg: Tensor) -> Tensor:
    """Sort ``keys`` (N,) within segments; ``seg`` (N,) is non-decreasing segment ids."""
    order = torch.argsort(keys, stable=True)
    order = order[torch.argsort(seg[order], stable=True)]  # segments back together, still sorted
    return keys[order]


def _gather_quantiles(ordered: Tensor, starts: Tensor, count: Tensor, levels: Tensor) -> Tensor:
    """numpy "linear" quantiles: ``ordered`` (N,) sorted per segment, finite values first.

    starts, count: (G,) int64 segment offsets and finite counts; levels (L,) float64.
    Returns (G, L) float64; NaN where count == 0.
    """
    last = (count - 1).clamp(min=0).to(torch.float64).unsqueeze(1)  # (G, 1)
    virtual = last * levels  # (G, L), numpy: (n - 1)·q
    low = torch.floor(virtual)
    gamma = virtual - low
    low_i = torch.minimum(low, last).long()
    high_i = torch.minimum(low + 1, last).long()
    a = ordered[starts.unsqueeze(1) + low_i].double()
    b = ordered[starts.unsqueeze(1) + high_i].double()
    diff = b - a
    value = torch.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)  # numpy _lerp
    return torch.where(count.unsqueeze(1) > 0, value, torch.nan)


def segment_statistics(values: Tensor, sizes: Sequence[int], quantiles: Sequence[float],
                       vanishing_threshold: float, signed: bool = False) -> Tensor:
    """Statistics of each segment of a flat gradient, as a (G, K) float64 tensor.

    Args:
        values: (N,) floating tensor, the concatenation of G segments (e.g. layers' gradients);
            fp16/bf16 are upcast to float32 (exact).
        sizes: G segment lengths ≥ 0, summing to N.
        quantiles, vanishing_threshold, signed: as in :func:`grad_stats.gradient_statistics`.

    Returns:
        (G, K) float64 on ``values``' device; columns in the order of
        :func:`grad_stats.statistic_names` (``abs_q<p>``…, abs_mean, rms, l2_norm,
        vanishing_frac, nonfinite_count, numel, then ``q<p>``… if ``signed``), each row equal to
        ``gradient_statistics`` of that segment (statistics over the finite coordinates; NaN
        where a segment has none).

    Raises:
        ValueError: bad quantiles or threshold; ``sizes`` not summing to N or negative.
    """
    levels_list = check_quantile_levels(quantiles)
    threshold = check_vanishing_threshold(vanishing_threshold)
    if values.dim() != 1 or any(s < 0 for s in sizes) or sum(sizes) != values.numel():
        raise ValueError(f"sizes {list(sizes)} must be >= 0 and sum to the {values.numel()} "
                         f"values of a 1-D tensor (got shape {tuple(values.shape)})")
    device = values.device
    x = values.float() if values.dtype in (torch.float16, torch.bfloat16) else values
    sizes_t = torch.tensor(list(sizes), dtype=torch.long, device=device)
    groups = sizes_t.numel()
    seg = torch.repeat_interleave(torch.arange(groups, device=device), sizes_t)  # (N,)
    starts = torch.cumsum(sizes_t, 0) - sizes_t
    finite = torch.isfinite(x)
    count = torch.zeros(groups, dtype=torch.long, device=device).index_add_(0, seg, finite.long())
    levels = torch.tensor(levels_list, dtype=torch.float64, device=device)
    abs_x = x.abs()
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=device)
    ordered = _segment_sort(torch.where(finite, abs_x, inf), seg)
    columns = [_gather_quantiles(ordered, starts, count, levels)]
    a64 = torch.where(finite, abs_x, 0).double()
    zeros = torch.zeros(groups, dtype=torch.float64, device=device)
    total = zeros.index_add(0, seg, a64)
    squares = zeros.index_add(0, seg, a64 * a64)
    small = zeros.index_add(0, seg, (finite & (a64 <= threshold)).double())
    n = count.double()
    moments = torch.stack([total / n, (squares / n).sqrt(), squares.sqrt(), small / n], dim=1)
    moments = torch.where(count.unsqueeze(1) > 0, moments, torch.nan)
    numel = sizes_t.double()
    columns += [moments, torch.stack([numel - n, numel], dim=1)]
    if signed:
        ordered_signed = _segment_sort(torch.where(finite, x, inf), seg)
        columns.append(_gather_quantiles(ordered_signed, starts, count, levels))
    return torch.cat(columns, dim=1)
