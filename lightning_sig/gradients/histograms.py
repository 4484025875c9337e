"""TensorBoard histograms of log10|g| for many layers at once (the callback's ``grad_hist/*``).

``SummaryWriter.add_histogram`` bins one tensor at a time with ``np.histogram`` over
TensorBoard's ~1,500 default bucket edges: 3.7 ms on this CPU for the 15 histograms (global and
14 layers) of the Table 2 network, against 0.26 ms here (``benchmarks/bench_callback_parts.py``).
Here the log10|g| values of the whole flat gradient are binned once (the compiled kernel
``log10_histogram.cpp``: a bucket per value from a table of the top 16 bits of its float32,
about 5 ns a value; without it numpy: one ``searchsorted`` over the same edges, one
``bincount`` by (layer, bucket)), the global histogram is the sum of the layers' counts, and
each histogram is written with the writer's own ``add_histogram_raw``. Buckets, limits, min, max and count equal ``add_histogram``'s
(torch.utils.tensorboard.summary.make_histogram); sum and sum of squares agree to float
rounding (tested).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from lightning_sig.gradients.quantile_engine import GradInput, gradient_parts
from lightning_sig.gradients.radix_build import load_radix_kernel
from lightning_sig.gradients.stat_keys import is_real

__all__ = ["segment_log10_histograms", "histogram_support", "log10_abs_for_histogram",
           "HISTOGRAM_FLOOR_LOG10"]

#: log10 of the smallest normal float32, about −37.93: where zeros are drawn (an assumption,
#: the paper shows no histogram); it alters no normal nonzero float32 value.
HISTOGRAM_FLOOR_LOG10: float = math.log10(torch.finfo(torch.float32).tiny)


def log10_abs_for_histogram(grads: GradInput,
                            floor: float | None = HISTOGRAM_FLOOR_LOG10) -> Tensor:
    """log10 |g_j| of the finite coordinates of g, for a TensorBoard histogram.

    Args:
        grads: as in :func:`~lightning_sig.gradients.stats.gradient_statistics`; not modified.
        floor: log10 values below it (zeros give -inf) are raised to it, so exact zeros (e.g.
            dead relu units) stay visible as a spike at the left edge. Default: log10 of the
            smallest normal float32, about -37.93 (assumption, the paper shows no histogram),
            which alters no normal nonzero float32 value. ``None`` drops zeros instead.

    Returns:
        float32 tensor [M], M <= N, on g's device; empty when nothing is left, and then the
        caller skips the histogram (TensorBoard rejects empty input).

    Raises:
        ValueError: ``floor`` neither a finite number nor None; bad ``grads`` as in
            :func:`gradient_statistics`.
    """
    if floor is not None and not (is_real(floor) and math.isfinite(floor)):
        raise ValueError(f"floor {floor!r} is not a finite number or None")
    tensors = gradient_parts(grads)
    wide = any(t.dtype == torch.float64 for t in tensors)
    dtype = torch.float64 if wide else torch.float32
    device = tensors[0].device if tensors else torch.device("cpu")
    buf = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors]) if tensors else \
        torch.zeros(0, dtype=dtype, device=device)
    buf = buf[torch.isfinite(buf)].abs_()
    if floor is None:
        return buf[buf > 0].log10_().to(torch.float32)
    return buf.log10_().clamp_(min=floor).to(torch.float32)


def histogram_support(counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """First and one-past-last non-empty bucket of each row of ``counts`` (G, B) (rows with a
    non-empty bucket). TensorBoard's ``make_histogram`` keeps buckets ``start - 1 .. end - 1``
    (bucket ``start - 1`` is empty; a leading empty bucket when start is 0) and the limits
    ``start .. end``."""
    nonempty = counts > 0
    start = nonempty.argmax(axis=1)
    end = counts.shape[1] - nonempty[:, ::-1].argmax(axis=1)
    return start, end


def segment_log10_histograms(values: Tensor, sizes: Sequence[int], limits: np.ndarray,
                             floor: float = HISTOGRAM_FLOOR_LOG10, with_total: bool = True
                             ) -> List[Optional[Dict[str, object]]]:
    """Histograms of log10|g_j| over the finite coordinates of each segment of a flat gradient.

    Args:
        values: (N,) floating tensor, G segments (layers) one after the other; any device
            (copied to the CPU: histograms are written rarely).
        sizes: the G segment lengths, summing to N.
        limits: (B + 1,) increasing bucket edges, e.g. ``np.asarray(writer.default_bins)``.
        floor: log10 values below it (zeros) are raised to it, as
            :func:`log10_abs_for_histogram` (default about −37.93).
        with_total: prepend the histogram of the whole vector (the callback's "global").

    Returns:
        One entry per segment (after the total with ``with_total``): None when the segment has
        no finite coordinate (TensorBoard rejects empty histograms), else the keyword arguments
        of ``SummaryWriter.add_histogram_raw``: ``min``, ``max``, ``num``, ``sum``,
        ``sum_squares``, ``bucket_limits``, ``bucket_counts``.
    """
    x = values.detach()
    x = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).cpu()
    kernel = load_radix_kernel()
    if kernel is not None:  # non-finite coordinates give NaN or +-inf logs: left out there
        logs = x.abs().log10_().clamp_(min=floor).to(torch.float32).contiguous()
        counts, moments = kernel.log10_histograms(
            logs, torch.tensor([int(n) for n in sizes], dtype=torch.int64),
            torch.from_numpy(np.asarray(limits, float)), with_total)
        moments = moments.numpy()
        return _entries(counts.numpy(), moments[:, 0].astype(np.int64), moments[:, 1:], limits,
                        0)
    finite = torch.isfinite(x)
    logs = x[finite].abs().log10().clamp(min=floor).to(torch.float32)  # as the per-layer path
    return _numpy_histograms(logs, finite, sizes, limits, with_total)


def _numpy_histograms(logs: Tensor, finite: Tensor, sizes: Sequence[int], limits: np.ndarray,
                      with_total: bool) -> List[Optional[Dict[str, object]]]:
    """:func:`segment_log10_histograms` in numpy (without the compiled kernel)."""
    v = logs.numpy().astype(np.float64)  # (F,) as make_histogram's values.astype(float)
    sizes_np = np.asarray(sizes, np.int64)
    groups = sizes_np.size
    seg = np.repeat(np.arange(groups), sizes_np)[finite.numpy()]  # (F,) segment of each value
    per_segment = np.bincount(seg, minlength=groups)  # (G,) finite coordinates
    buckets = limits.size - 1
    index = np.searchsorted(limits, v, side="right") - 1  # np.histogram's half-open buckets
    index[v == limits[-1]] = buckets - 1  # the last bucket is closed
    inside = (index >= 0) & (index < buckets)
    index, seg = index[inside], seg[inside]
    low = int(index.min()) if index.size else 0  # only the buckets from the lowest used one
    width = int(index.max()) - low + 1 if index.size else 1  # to the highest are counted
    counts = np.bincount(seg * width + (index - low),
                         minlength=groups * width).reshape(groups, width)
    if with_total:
        counts = np.concatenate([counts.sum(axis=0, keepdims=True), counts])
        per_segment = np.concatenate([[v.size], per_segment])
        v = np.concatenate([v, v])  # the whole vector as a first segment
    # per segment, vectorised: min, max, Σv (pairwise, as np.sum) and Σv² of its values
    starts = np.cumsum(per_segment) - per_segment
    some = per_segment > 0
    moments = np.zeros((per_segment.size, 4))
    if some.any():
        moments[some, 0] = np.minimum.reduceat(v, starts[some])
        moments[some, 1] = np.maximum.reduceat(v, starts[some])
        moments[some, 2:] = np.add.reduceat(np.stack([v, v * v]), starts[some], axis=1).T
    return _entries(counts, per_segment, moments, limits, low)


def _entries(counts: np.ndarray, per_segment: np.ndarray, moments: np.ndarray,
             limits: np.ndarray, low: int) -> List[Optional[Dict[str, object]]]:
    """``add_histogram_raw`` arguments per segment from counts (G, width) of the buckets from
    ``low`` on, finite counts (G,) and (min, max, sum, sum of squares) (G, 4)."""
    first, end = histogram_support(counts)
    out: List[Optional[Dict[str, object]]] = []
    for row, num, (smallest, largest, total, squares), a, b in zip(counts, per_segment.tolist(),
                                                                   moments.tolist(),
                                                                   first.tolist(), end.tolist()):
        if num == 0:
            out.append(None)
            continue
        # TensorBoard keeps an empty bucket left of the first non-empty one (always 0)
        out.append(dict(min=smallest, max=largest, num=num, sum=total, sum_squares=squares,
                        bucket_limits=limits[low + a:low + b + 1].tolist(),
                        bucket_counts=[0] + row[a:b].tolist()))
    return out
