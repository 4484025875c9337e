"""The statistics engine: exact quantiles and moments of a gradient, of each of its layers and
of many steps at once, in linear time.

One call takes the gradient as float tensors read one after another as ``rows`` rows (steps) of
N values, each row cut into the G segments of ``sizes`` (layers), and returns for every row its
whole-row statistics (``with_total``, the callback's ``global``) and each segment's, in the
columns of :func:`~lightning_sig.gradients.stat_keys.statistic_names`.

Exactness: each quantile equals ``numpy.quantile(values.astype(float64), q)`` (method "linear")
bit for bit: the two order statistics around the virtual index (F - 1) q are *selected* among
the F finite values and interpolated with numpy's formula. Non-finite values are counted and
left out; fp16/bf16 are upcast to float32 (exact), float64 stays float64. Moments are float64
sums of |x| and x² over 16 fixed lanes (the same order on every CPU).

Selection (``radix_kernel.cpp``): keys are the float bits, whose unsigned order is the order of
|x| (or of x after a sign flip). One pass counts a histogram of the top 16 bits of every
segment (with the moments), the ranks' buckets come from cumulative counts, and a second pass
counts the low bits of the values in those buckets: two reads of the gradient, all layers and
the whole row together, no sort (segments of at most 2048 values sort instead, and a row of at
most 2048 values is radix-sorted once with all its segments).

Backends, the same values: ``"compiled"`` (the C++ kernel, built at first use; CPU float32;
about 0.11 s for 100 M coordinates here, ``benchmarks/bench_grad_stats.py``), ``"numpy"`` (its
numpy twin: identical outputs, slower; CPU, float32 and float64), ``"torch"`` (the same radix
selection in torch ops, for GPUs: no host synchronisation; sums equal up to rounding order).
``"auto"``: the kernel for float32 on the CPU when it builds, the twin for float64 or without
a compiler, torch on other devices. Memory: none beyond the input on the CPU (a float32 copy of
fp16/bf16 or non-contiguous inputs; the twin holds one key array of a segment or row).
"""
from __future__ import annotations

import math
from typing import List, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from lightning_sig.gradients.radix_build import load_radix_kernel
from lightning_sig.gradients.radix_numpy import radix_table_numpy
from lightning_sig.gradients.radix_torch import radix_table_torch
from lightning_sig.gradients.stat_keys import DEFAULT_QUANTILES, DEFAULT_VANISHING_THRESHOLD, \
    check_quantile_levels, check_vanishing_threshold

__all__ = ["BACKENDS", "GradInput", "gradient_parts", "table_statistics", "threshold_key",
           "finish_table", "flat_parts"]

BACKENDS: tuple[str, ...] = ("auto", "numpy", "torch", "compiled")
GradInput = Union[Tensor, Sequence[Tensor]]
_WIDE = (torch.float64,)


def gradient_parts(grads: GradInput) -> List[Tensor]:
    """The input as a list of floating tensors on one device (a tensor or a sequence of them).

    Raises:
        ValueError: a non-tensor or non-floating entry; tensors on several devices.
    """
    tensors = [grads] if isinstance(grads, Tensor) else list(grads)
    for t in tensors:
        if not isinstance(t, Tensor) or not t.is_floating_point():
            kind = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"gradients must be floating-point tensors, got {kind}")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"gradients must share one device, got {sorted(map(str, devices))}")
    return tensors


def threshold_key(threshold: float, dtype: torch.dtype) -> int:
    """The |x| key (bits) of the largest value of ``dtype`` (float32 or float64) that is at most
    ``threshold`` (finite, >= 0): ``key <= threshold_key`` is ``float64(|x|) <= threshold``."""
    if dtype == torch.float64:
        return int(np.array(threshold, np.float64).view(np.uint64))
    t32 = np.float32(threshold)
    if float(t32) > threshold:
        t32 = np.nextafter(t32, np.float32(0))
    return int(np.array(t32).view(np.uint32))


def flat_parts(tensors: List[Tensor]) -> List[Tensor]:
    """1-D contiguous float32 (or, if any input is float64, float64) views or copies."""
    dtype = torch.float64 if any(t.dtype in _WIDE for t in tensors) else torch.float32
    out = []
    for t in tensors:
        t = t.detach()
        t = t.to_dense() if t.layout != torch.strided else t
        out.append(t.reshape(-1).to(dtype).contiguous())
    return out


def finish_table(counts: Tensor, sums: Tensor, abs_order: Tensor, signed_order: Tensor,
                 levels: Sequence[float]) -> Tensor:
    """(R, K) statistics from the kernel's outputs (counts, sums, orders; any backend's):
    numpy's interpolation between the order statistics, the moments, the counts. Computed in
    numpy for CPU tensors (torch ran some of these small ops on its thread pool: milliseconds
    on a loaded machine), in torch ops elsewhere (no host synchronisation); the same formulas."""
    if counts.device.type == "cpu":
        parts = [t.numpy() for t in (counts, sums, abs_order, signed_order)]
        return torch.from_numpy(_finish(np, *parts, np.asarray(levels, np.float64)))
    level = torch.tensor(list(levels), dtype=torch.float64).to(counts.device, non_blocking=True)
    return _finish(torch, counts, sums, abs_order, signed_order, level)


def _finish(xp, counts, sums, abs_order, signed_order, level):
    """:func:`finish_table` in the array module ``xp`` (numpy or torch)."""
    count = counts[:, 0] * 1.0
    last = (count - 1)[:, None]
    virtual = last * level
    gamma = xp.where(virtual >= last, 0.0, virtual - xp.trunc(virtual))  # virtual >= 0 here

    def interpolate(order):  # numpy's _lerp: from b when gamma >= 0.5
        a, b = order[..., 0], order[..., 1]
        diff = b - a
        return xp.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)

    n = count[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0: NaN, replaced below
        moments = xp.concatenate([sums[:, :1] / n, xp.sqrt(sums[:, 1:] / n),
                                  xp.sqrt(sums[:, 1:]), counts[:, 2:] / n], 1)
    moments = xp.where(n > 0, moments, math.nan)
    tallies = xp.stack([counts[:, 1] * 1.0, (counts[:, 0] + counts[:, 1]) * 1.0], 1)
    columns = [interpolate(abs_order), moments, tallies]
    if signed_order.shape[0]:
        columns.append(interpolate(signed_order))
    return xp.concatenate(columns, 1)


def table_statistics(parts: GradInput, sizes: Sequence[int],
                     quantiles: Sequence[float] = DEFAULT_QUANTILES,
                     vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD, rows: int = 1,
                     signed: bool = False, with_total: bool = False,
                     backend: str = "auto") -> Tensor:
    """Statistics of every segment (and row) of a gradient.

    Args:
        parts: floating tensors on one device (any shapes), read one after another as
            ``rows * sum(sizes)`` values; not modified.
        sizes: the G segment lengths (>= 0) of a row.
        quantiles: levels q in [0, 1], as in
            :func:`~lightning_sig.gradients.stats.gradient_statistics`.
        vanishing_threshold: t >= 0, as in
            :func:`~lightning_sig.gradients.stats.gradient_statistics`.
        rows: how many rows (e.g. buffered optimizer steps) the values hold.
        signed: also the quantiles of the signed values.
        with_total: a first group per row for the whole row.
        backend: one of :data:`BACKENDS` (see the module docstring).

    Returns:
        (rows, G + with_total, K) float64 on the input's device, columns as
        ``statistic_names(levels, signed)``; statistics over the finite values, NaN where a
        group has none (counts 0 then).

    Raises:
        ValueError: bad levels or threshold (:mod:`~lightning_sig.gradients.stat_keys`); bad
            input (as :func:`gradient_parts`); ``sizes`` negative or not summing
            to the values; an unknown backend; "numpy"/"compiled" for non-CPU tensors;
            "compiled" when the kernel cannot run (not built, float64 input).
    """
    levels = check_quantile_levels(quantiles)
    threshold = check_vanishing_threshold(vanishing_threshold)
    tensors = gradient_parts(parts)
    device = tensors[0].device if tensors else torch.device("cpu")
    sizes = [int(s) for s in sizes]
    total = sum(t.numel() for t in tensors)
    if any(s < 0 for s in sizes) or rows < 1 or total != rows * sum(sizes):
        raise ValueError(f"sizes {sizes} must be >= 0 and sum to the {total} values of "
                         f"{rows} row(s)")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    if backend in ("numpy", "compiled") and device.type != "cpu":
        raise ValueError(f"backend {backend!r} needs CPU tensors, got device {device}")
    flat = flat_parts(tensors)
    dtype = flat[0].dtype if flat else torch.float32
    tkey = threshold_key(threshold, dtype)
    args = (rows, list(levels), tkey, with_total, signed)
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        x = flat[0] if len(flat) == 1 else torch.cat(flat) if flat else torch.zeros(0)
        out = radix_table_torch(x.to(device), sizes, *args)
    else:
        kernel = load_radix_kernel() if dtype == torch.float32 and backend != "numpy" else None
        if backend == "compiled" and kernel is None:
            raise ValueError("backend 'compiled' needs float32 input and the compiled kernel "
                             "(radix_build.radix_build_error() says why it is missing)")
        if kernel is not None:
            size_t = torch.tensor(sizes, dtype=torch.int64)
            out = kernel.radix_table(flat, size_t, rows, torch.tensor(list(levels),
                                     dtype=torch.float64), tkey, with_total, signed)
        else:
            arrays = [t.numpy() for t in flat] or [np.zeros(0, np.float32)]
            out = [torch.from_numpy(a) for a in radix_table_numpy(arrays, sizes, *args)]
    table = finish_table(*out, levels)
    return table.view(rows, len(sizes) + bool(with_total), -1)
