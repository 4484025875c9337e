"""Exact gradient statistics of many small vectors at once (one layer = one segment).

:mod:`lightning_sig.gradients.stats` handles one vector of any size with little memory; calling it
once per layer costs a Python round trip per layer, which dominates a training step of the
paper's tiny networks (about 1,500 parameters in 15 layers). Here all layers are one flat tensor
cut into segments, and every statistic of every segment comes from a fixed number of vectorised
ops: two stable sorts order the values within their segments, quantiles are gathered by index,
and moments are segment sums (``index_add_``). Values equal :func:`grad_stats.gradient_statistics`
(numpy "linear" quantiles, float64 moments), with no host synchronisation.

On CPU the same algorithm runs in numpy (``lexsort``, ``bincount``): for the paper's networks
a torch op costs several microseconds of dispatch, a numpy op on a few thousand values about
one, and this runs at every optimizer step. Elsewhere (GPU) it runs in torch without host
synchronisation.

Memory: about eight copies of the flat gradient (sort keys and int64 indices), so callers
should use it for modest sizes (:data:`SEGMENTED_MAX_NUMEL`) and fall back to per-layer
:func:`grad_stats.gradient_statistics_tensor` beyond.
"""
from __future__ import annotations

import functools
from typing import Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from lightning_sig.gradients.stats import check_quantile_levels, check_vanishing_threshold

__all__ = ["segment_statistics", "segment_statistics_unchecked", "SEGMENTED_MAX_NUMEL"]

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
    if ordered.numel() == 0:  # only empty segments
        return torch.full((count.numel(), levels.numel()), torch.nan, dtype=torch.float64,
                          device=ordered.device)
    ordered = torch.cat([ordered, ordered[-1:]])  # a trailing empty segment starts at N
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


def _gather_quantiles_numpy(ordered: np.ndarray, starts: np.ndarray, count: np.ndarray,
                            levels: np.ndarray) -> np.ndarray:
    """numpy twin of :func:`_gather_quantiles` (same formulas, float64)."""
    if ordered.size == 0:  # only empty segments
        return np.full((count.size, levels.size), np.nan)
    last = np.maximum(count - 1, 0).astype(np.float64)[:, None]  # (G, 1)
    virtual = last * levels  # (G, L)
    low = np.floor(virtual)
    gamma = virtual - low
    a = ordered[starts[:, None] + np.minimum(low, last).astype(np.int64)].astype(np.float64)
    b = ordered[starts[:, None] + np.minimum(low + 1, last).astype(np.int64)].astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in segments without finite values
        diff = b - a
        value = np.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)
    return np.where(count[:, None] > 0, value, np.nan)


class _Layout:
    """Index arrays for segments of ``sizes`` (cached: the layers of a model rarely change).

    Segments of equal length m are sorted together as the rows of one (k, m) matrix
    (``np.sort(axis=1)``; measured: 4× faster than one ``np.sort`` of int64 keys
    ``segment << 32 | value bits`` and 5× faster than ``np.lexsort`` for 32 steps of the
    Table 2 network).
    """

    def __init__(self, sizes: Tuple[int, ...]) -> None:
        self.sizes = np.asarray(sizes, np.int64)  # (G,)
        self.starts = np.cumsum(self.sizes) - self.sizes  # (G,)
        self.nonempty = self.sizes > 0
        uniform = len(set(sizes)) == 1
        # per distinct length m > 0: (segment indices (k,), (k, m) coordinate indices or None
        # when every segment has length m and a reshape gives the matrix)
        self.groups = [(np.flatnonzero(self.sizes == m),
                        None if uniform else self.starts[self.sizes == m][:, None] + np.arange(m))
                       for m in sorted(set(sizes) - {0})]


@functools.lru_cache(maxsize=32)
def _layout(sizes: Tuple[int, ...]) -> _Layout:
    return _Layout(sizes)


def _segment_quantiles(key: np.ndarray, layout: _Layout, count: np.ndarray,
                       levels: np.ndarray) -> np.ndarray:
    """(G, L) numpy "linear" quantiles of each segment of ``key`` (N,), whose non-finite
    entries are +inf (sorted last); ``count`` (G,) finite entries. NaN for empty segments."""
    out = np.full((layout.sizes.size, levels.size), np.nan)
    for index, coordinates in layout.groups:
        block = key.reshape(index.size, -1) if coordinates is None else key[coordinates]
        width = block.shape[1]
        block = np.sort(block, axis=1).reshape(-1)  # (k·m,) each segment sorted
        out[index] = _gather_quantiles_numpy(block, np.arange(index.size) * width,
                                             count[index], levels)
    return out


def _segment_sums(columns: np.ndarray, layout: _Layout) -> np.ndarray:
    """(C, N) float64 -> (G, C) sums over each segment (0 for empty ones); numpy's pairwise
    summation within each segment, as ``np.sum``."""
    if layout.nonempty.all():
        return np.add.reduceat(columns, layout.starts, axis=1).T
    out = np.zeros((layout.sizes.size, columns.shape[0]))
    if layout.nonempty.any():
        out[layout.nonempty] = np.add.reduceat(columns, layout.starts[layout.nonempty], axis=1).T
    return out


def _segment_statistics_numpy(x: np.ndarray, sizes: Tuple[int, ...], levels: np.ndarray,
                              threshold: float, signed: bool, with_total: bool) -> np.ndarray:
    """CPU path of :func:`segment_statistics` on a float32/float64 array; returns (G, K), or
    (1 + G, K) with the whole vector first when ``with_total``."""
    layout = _layout(sizes)
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    abs_x = np.abs(x)
    a64 = (abs_x if all_finite else np.where(finite, abs_x, 0.0)).astype(np.float64)
    columns = np.empty((4, x.size))  # count, |g|, g², [|g| <= t] per coordinate
    columns[0], columns[1], columns[3] = finite, a64, finite & (a64 <= threshold)
    np.multiply(a64, a64, out=columns[2])
    sums = _segment_sums(columns, layout)  # (G, 4)
    numel = layout.sizes.astype(np.float64)
    keys = [abs_x if all_finite else np.where(finite, abs_x, np.inf).astype(x.dtype)]
    if signed:
        keys.append(x if all_finite else np.where(finite, x, np.inf).astype(x.dtype))
    count_i = sums[:, 0].astype(np.int64)
    quantiles = [_segment_quantiles(key, layout, count_i, levels) for key in keys]
    if with_total:  # the whole vector as one more segment, first
        sums = np.concatenate([columns.sum(axis=1)[None], sums])
        numel = np.concatenate([[float(x.size)], numel])
        whole = np.array([int(sums[0, 0])])
        quantiles = [np.concatenate([_gather_quantiles_numpy(np.sort(key), np.zeros(1, np.int64),
                                                             whole, levels), part])
                     for key, part in zip(keys, quantiles)]
    count, total, squares, small = sums.T
    with np.errstate(invalid="ignore", divide="ignore"):
        moments = np.stack([total / count, np.sqrt(squares / count), np.sqrt(squares),
                            small / count], axis=1)
    moments[count == 0] = np.nan
    table = [quantiles[0], moments, np.stack([numel - count, numel], axis=1)] + quantiles[1:]
    return np.concatenate(table, axis=1)


def segment_statistics(values: Tensor, sizes: Sequence[int], quantiles: Sequence[float],
                       vanishing_threshold: float, signed: bool = False,
                       backend: str = "auto", with_total: bool = False) -> Tensor:
    """Statistics of each segment of a flat gradient, as a (G, K) float64 tensor.

    Args:
        values: (N,) floating tensor, the concatenation of G segments (e.g. layers' gradients);
            fp16/bf16 are upcast to float32 (exact).
        sizes: G segment lengths ≥ 0, summing to N.
        quantiles, vanishing_threshold, signed: as in :func:`grad_stats.gradient_statistics`.
        backend: ``"auto"`` (numpy for CPU tensors, torch elsewhere), ``"numpy"`` or ``"torch"``;
            all give the same values.
        with_total: prepend a row for the whole vector (e.g. "global" before the layers).

    Returns:
        (G, K) float64 on ``values``' device, (1 + G, K) with ``with_total``; columns in the order of
        :func:`grad_stats.statistic_names` (``abs_q<p>``…, abs_mean, rms, l2_norm,
        vanishing_frac, nonfinite_count, numel, then ``q<p>``… if ``signed``), each row equal to
        ``gradient_statistics`` of that segment (statistics over the finite coordinates; NaN
        where a segment has none).

    Raises:
        ValueError: bad quantiles or threshold; ``sizes`` not summing to N or negative; an
            unknown backend, or ``"numpy"`` for a non-CPU tensor.
    """
    levels_list = check_quantile_levels(quantiles)
    threshold = check_vanishing_threshold(vanishing_threshold)
    if values.dim() != 1 or any(s < 0 for s in sizes) or sum(sizes) != values.numel():
        raise ValueError(f"sizes {list(sizes)} must be >= 0 and sum to the {values.numel()} "
                         f"values of a 1-D tensor (got shape {tuple(values.shape)})")
    device = values.device
    if backend not in ("auto", "numpy", "torch") or (backend == "numpy" and device.type != "cpu"):
        raise ValueError(f"backend {backend!r} is not one of 'auto', 'numpy' (CPU tensors only), "
                         f"'torch' (device {device})")
    return segment_statistics_unchecked(values, tuple(int(s) for s in sizes), levels_list,
                                        threshold, signed, with_total, backend == "torch")


def segment_statistics_unchecked(values: Tensor, sizes: Tuple[int, ...],
                                 levels_list: Tuple[float, ...], threshold: float, signed: bool,
                                 with_total: bool, use_torch: bool = False) -> Tensor:
    """:func:`segment_statistics` without the argument checks (for callers that validated
    them once, e.g. the callback at every step); ``use_torch`` forces the torch backend."""
    device = values.device
    x = values.float() if values.dtype in (torch.float16, torch.bfloat16) else values
    if device.type == "cpu" and not use_torch:
        table = _segment_statistics_numpy(x.detach().numpy(), sizes,
                                          np.asarray(levels_list, np.float64), threshold, signed,
                                          with_total)
        return torch.from_numpy(table)
    if with_total:  # the whole vector as a first segment: (2N,)
        x, sizes = torch.cat([x, x]), [x.numel(), *sizes]
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
