"""Exact coordinatewise statistics of gradient vectors, as plain tensor-in functions.

The paper's evidence for vanishing gradients (Ven & Lederer, arXiv 2106.02260, bottom panels of
Figures 1-4) is "summary statistics of the coordinate values of the gradients" over training.
This module computes them for one gradient vector g (a tensor, or several tensors read as one
concatenated vector, e.g. all parameters of a model) without a Trainer, so the maths is tested
against numpy and the logging callback stays thin.

Exactness: quantiles equal ``numpy.quantile(g.astype(float64), q)`` (method "linear") bit for
bit, for any size (older ``torch.quantile`` raised "input tensor is too large" above 2^24
coordinates, rejects fp16/bf16 and interpolates in the input dtype). fp16/bf16 are upcast to
float32 (exact: every fp16/bf16 value is a float32 value); order statistics are selected, never
approximated; interpolation and moments are computed in float64.

Backends, same values: on CPU, ``numpy.partition`` of one owned working copy (linear time, in
place, about one extra gradient copy of memory); elsewhere ``torch.sort`` with no host
synchronisation, so many layers cost one transfer (:func:`batched_gradient_statistics`).
``benchmarks/bench_grad_stats.py`` compares them with ``torch.kthvalue``.
"""
from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

import numpy as np
import torch
from torch import Tensor

DEFAULT_QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_VANISHING_THRESHOLD: float = 1e-8
MOMENT_KEYS: tuple[str, ...] = (
    "abs_mean", "rms", "l2_norm", "vanishing_frac", "nonfinite_count", "numel")
BACKENDS: tuple[str, ...] = ("auto", "numpy", "torch")
_NUMPY_DTYPES = (torch.float16, torch.float32, torch.float64)
_CHUNK = 1 << 20  # coordinates per float64 chunk in the CPU moments loop (8 MiB temporaries)

GradInput = Union[Tensor, Sequence[Tensor]]


def check_quantile_levels(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Return quantile levels q in [0, 1] (0 min, 0.5 median, 1 max; may be empty) as floats.

    Raises:
        ValueError: not a sequence; a level outside [0, 1], NaN or non-numeric; two levels with
            the same key (see :func:`quantile_key`).
    """
    if isinstance(quantiles, (str, bytes)) or not isinstance(quantiles, Iterable):
        raise ValueError(f"quantiles must be a sequence of numbers in [0, 1], got {quantiles!r}")
    levels = tuple(quantiles)
    for q in levels:
        if not _is_real(q) or not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile level {q!r} is not a number in [0, 1] (valid: 0 <= q <= 1)")
    keys = [quantile_key(q) for q in levels]
    if len(set(keys)) != len(keys):
        raise ValueError(f"quantile levels {list(levels)!r} repeat a level (keys {keys})")
    return tuple(float(q) for q in levels)


def check_vanishing_threshold(threshold: float) -> float:
    """Return a vanishing threshold t (finite, >= 0) as a float.

    Raises:
        ValueError: negative, NaN, infinite or non-numeric threshold.
    """
    if not _is_real(threshold) or not 0.0 <= threshold < math.inf:
        raise ValueError(
            f"vanishing_threshold {threshold!r} is not a finite number >= 0 (valid: 0 <= t < inf)")
    return float(threshold)


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def quantile_key(level: float, prefix: str = "abs_q") -> str:
    """Key of a level in percent: 0.5 -> 'abs_q50', 0.125 -> 'abs_q12.5', 1 -> 'abs_q100'."""
    return f"{prefix}{format(round(level * 100.0, 9), '.12g')}"


def statistic_names(quantiles: Sequence[float] = DEFAULT_QUANTILES,
                    signed: bool = False) -> list[str]:
    """Names of the entries of :func:`gradient_statistics_tensor`, in order: ``abs_q<p>`` per
    level, then :data:`MOMENT_KEYS`, then ``q<p>`` per level if ``signed``. Raises as
    :func:`check_quantile_levels`."""
    levels = check_quantile_levels(quantiles)
    names = [quantile_key(q) for q in levels] + list(MOMENT_KEYS)
    return names + ([quantile_key(q, "q") for q in levels] if signed else [])


def gradient_statistics(grads: GradInput, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                        vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                        signed: bool = False, backend: str = "auto") -> dict[str, float]:
    """Exact coordinatewise statistics of one gradient vector g, as a dict of Python floats.

    Args:
        grads: floating tensor of any shape, or a sequence of them on one device, read as one
            flattened concatenated vector g of N coordinates; not modified. Types narrower than
            float32 (fp16, bf16) are upcast to float32; float64 stays float64.
        quantiles: levels q in [0, 1]; default (0, .25, .5, .75, 1).
        vanishing_threshold: t >= 0, default 1e-8. Assumption (the paper gives no number): 1e-8
            is the default eps of torch.optim.Adam, the paper's optimizer; a coordinate with
            |g_j| <= eps gets an Adam step damped by at least half, i.e. it has vanished.
        signed: also return quantiles of the signed values g_j.
        backend: "auto" (numpy partition on CPU, torch sort elsewhere), "numpy" (CPU only) or
            "torch" (sort, no host synchronisation). All give the same values.

    Returns:
        Statistics over the F finite coordinates, in units of g (loss units per parameter unit)
        unless stated: ``abs_q<p>`` level-p/100 quantile of |g_j| (numpy "linear"; ``abs_q0``
        min, ``abs_q100`` max); ``abs_mean`` mean |g_j|; ``rms`` sqrt(mean g_j^2); ``l2_norm``
        sqrt(sum g_j^2); ``vanishing_frac`` fraction of coordinates with |g_j| <= t (in [0, 1]);
        ``nonfinite_count`` number of NaN/inf coordinates; ``numel`` N, all coordinates
        (F = numel - nonfinite_count); if ``signed``, ``q<p>`` quantiles of g_j. Counts are
        exact integers as floats. If F == 0 (empty or all non-finite), everything but the two
        counts is NaN, so a plot shows a gap rather than a fake zero.

    Raises:
        ValueError: bad quantiles, threshold or backend; non-tensor or non-floating input;
            tensors on several devices; backend "numpy" with a non-CPU tensor.
    """
    names = statistic_names(quantiles, signed)
    values = gradient_statistics_tensor(grads, quantiles, vanishing_threshold, signed, backend)
    return dict(zip(names, values.tolist()))


def gradient_statistics_tensor(grads: GradInput, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                               vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                               signed: bool = False, backend: str = "auto") -> Tensor:
    """:func:`gradient_statistics` as a float64 tensor of shape [K] on g's device.

    Entries in the order of :func:`statistic_names` ``(quantiles, signed)``. Off CPU the
    default backend never synchronises with the host, so the results of many calls can be
    stacked and moved once. Arguments and errors as in :func:`gradient_statistics`.
    """
    return _statistics(grads, check_quantile_levels(quantiles),
                       check_vanishing_threshold(vanishing_threshold), signed, backend)


def batched_gradient_statistics(groups: Mapping[str, GradInput],
                                quantiles: Sequence[float] = DEFAULT_QUANTILES,
                                vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                                signed: bool = False) -> dict[str, dict[str, float]]:
    """Statistics of several gradient vectors with one device-to-host transfer.

    Args:
        groups: name -> gradient (tensor or sequence of tensors), e.g. ``{"global": grads,
            "conv1": [w.grad, b.grad]}``. Other arguments as in :func:`gradient_statistics`.

    Returns:
        name -> :func:`gradient_statistics` dict, in the order of ``groups``.
    """
    names = statistic_names(quantiles, signed)
    levels = check_quantile_levels(quantiles)
    threshold = check_vanishing_threshold(vanishing_threshold)
    rows = [_statistics(g, levels, threshold, signed, "auto") for g in groups.values()]
    if not rows:
        return {}
    table = torch.stack([row.to(rows[0].device) for row in rows]).tolist()
    return {key: dict(zip(names, row)) for key, row in zip(groups, table)}


def _statistics(grads: GradInput, levels: tuple[float, ...], threshold: float, signed: bool,
                backend: str) -> Tensor:
    """Dispatch for validated levels and threshold; see :func:`gradient_statistics_tensor`."""
    tensors = _as_tensor_list(grads)
    device = tensors[0].device if tensors else torch.device("cpu")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    if backend == "numpy" and device.type != "cpu":
        raise ValueError(f"backend 'numpy' needs CPU tensors, got device {device}")
    if sum(t.numel() for t in tensors) == 0:  # NaN statistics, counts 0; no host copy
        row = torch.full((len(levels) * (1 + signed) + 6,), math.nan, dtype=torch.float64,
                         device=device)
        row[len(levels) + 4:len(levels) + 6] = 0.0
        return row
    if backend == "numpy" or (backend == "auto" and device.type == "cpu"):
        return _numpy_statistics(tensors, levels, threshold, signed)
    return _torch_statistics(tensors, levels, threshold, signed)


def _as_tensor_list(grads: GradInput) -> list[Tensor]:
    """Check the input (floating tensors on one device) and return it as a list."""
    tensors = [grads] if isinstance(grads, Tensor) else list(grads)
    for t in tensors:
        if not isinstance(t, Tensor) or not t.is_floating_point():
            kind = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"gradients must be floating-point tensors, got {kind}")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"gradients must share one device, got {sorted(map(str, devices))}")
    return tensors


def _working_copy(tensors: list[Tensor]) -> Tensor:
    """One owned flat copy of the concatenated tensors (float64 if any is float64, else float32)."""
    wide = any(t.dtype == torch.float64 for t in tensors)
    device = tensors[0].device if tensors else torch.device("cpu")
    buf = torch.empty(sum(t.numel() for t in tensors), device=device,
                      dtype=torch.float64 if wide else torch.float32)
    offset = 0
    for t in tensors:
        part = buf[offset:offset + t.numel()].view(t.shape)
        if t.device.type == "cpu" and t.dtype in _NUMPY_DTYPES:
            # numpy copies single-threaded; torch's copy_ of small tensors through its thread
            # pool was ~100x slower on a loaded 2-core CPU.
            np.copyto(part.numpy(), t.detach().numpy())
        else:
            part.copy_(t.detach())
        offset += t.numel()
    return buf


def _rank_plan(count: int, level: float) -> tuple[int, int, float]:
    """numpy "linear": virtual index (n-1)q, its neighbouring ranks and the weight gamma."""
    virtual = (count - 1) * level
    if virtual >= count - 1:
        return count - 1, count - 1, 0.0
    low = math.floor(virtual)
    return low, low + 1, virtual - low


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp``: a + (b-a)t, evaluated from b when t >= 0.5 (bitwise identical)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def _select_quantiles(arr: np.ndarray, levels: tuple[float, ...]) -> list[float]:
    """Quantiles of a finite 1-D array via one in-place ``partition`` (reorders ``arr``).

    Ranks 0 and n-1 come from min/max; a rank right after a partitioned rank is the minimum of
    the segment up to the next partitioned rank, which costs a scan, not a selection.
    """
    n = arr.size
    if n == 0:
        return [math.nan] * len(levels)
    plans = [_rank_plan(n, q) for q in levels]
    kth, followers = [], []
    for r in sorted({r for low, high, _ in plans for r in (low, high)} - {0, n - 1}):
        (followers if kth and kth[-1] == r - 1 else kth).append(r)
    if kth:
        arr.partition(kth)
    value = {0: float(arr.min()), n - 1: float(arr.max())}
    value.update((r, float(arr[r])) for r in kth)
    for r in followers:
        i = bisect.bisect_right(kth, r)
        value[r] = float(arr[r:kth[i] if i < len(kth) else n].min())
    return [_lerp(value[low], value[high], t) for low, high, t in plans]


def _numpy_moments(arr: np.ndarray, threshold: float) -> tuple[float, float, int]:
    """(sum |g|, sum g^2, count of |g| <= threshold) in float64, chunked to bound memory.

    Plain ufuncs, no BLAS ``dot``: multithreaded BLAS on a busy CPU was 1000x slower.
    """
    total, squares, small = 0.0, 0.0, 0
    for start in range(0, arr.size, _CHUNK):
        chunk = np.abs(arr[start:start + _CHUNK], dtype=np.float64)
        total += float(chunk.sum())
        small += int(np.count_nonzero(chunk <= threshold))
        squares += float(np.square(chunk, out=chunk).sum())
    return total, squares, small


def _numpy_statistics(tensors: list[Tensor], levels: tuple[float, ...], threshold: float,
                      signed: bool) -> Tensor:
    """CPU backend: one working copy, compacted only if a non-finite value occurs."""
    arr = _working_copy(tensors).numpy()
    numel = arr.size
    total, squares, small = _numpy_moments(arr, threshold)
    # Sums of float32 |g| cannot overflow float64, so a non-finite sum means a non-finite
    # coordinate (for float64 input an overflow only sends finite data through compaction).
    if not math.isfinite(total):
        arr = arr[np.isfinite(arr)]  # the full copy is released on rebinding
        total, squares, small = _numpy_moments(arr, threshold)
    count = arr.size
    signed_q = _select_quantiles(arr, levels) if signed else []
    abs_q = _select_quantiles(np.abs(arr, out=arr), levels)
    moments = [math.nan] * 4 if count == 0 else [
        total / count, math.sqrt(squares / count), math.sqrt(squares), small / count]
    row = abs_q + moments + [float(numel - count), float(numel)] + signed_q
    return torch.tensor(row, dtype=torch.float64)


def _torch_quantiles(ordered: Tensor, count: Tensor, levels: tuple[float, ...]) -> Tensor:
    """numpy "linear" quantiles of the first ``count`` entries of a sorted 1-D tensor, no sync."""
    last = (count - 1).to(torch.float64)
    if not levels:
        return last.new_empty(0)
    virtual = torch.stack([last * q for q in levels])  # no host-to-device copy (it would sync)
    low = torch.floor(virtual)
    gamma = virtual - low
    top = virtual >= last
    low_i = torch.where(top, count - 1, low.long()).clamp_(min=0)
    high_i = torch.where(top, count - 1, low.long() + 1).clamp_(min=0)
    a, b = ordered[low_i].double(), ordered[high_i].double()
    diff = b - a
    value = torch.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)
    return torch.where(count > 0, value, torch.nan)


def _torch_statistics(tensors: list[Tensor], levels: tuple[float, ...], threshold: float,
                      signed: bool) -> Tensor:
    """Device backend: sort, no host synchronisation; non-finite values sort last as +inf.

    Counts come from ``searchsorted`` on the sorted values and sums from float64 chunks, so
    beyond ``torch.sort`` (values + int64 indices) no full-size temporary is made.
    """
    buf = _working_copy(tensors)
    numel = buf.numel()
    buf.nan_to_num_(nan=math.inf, posinf=math.inf, neginf=math.inf)
    signed_q = []
    if signed:
        buf = torch.sort(buf).values
        signed_q = [_torch_quantiles(buf, _count_at_most(buf, math.inf, right=False), levels)]
    ordered = torch.sort(buf.abs_()).values
    del buf
    count = _count_at_most(ordered, math.inf, right=False)  # finite values precede the infs
    abs_q = _torch_quantiles(ordered, count, levels)
    small = _count_at_most(ordered, threshold)
    ordered.nan_to_num_(posinf=0.0)  # only after counting: these zeros are not vanished
    total = torch.zeros((), dtype=torch.float64, device=ordered.device)
    squares = total.clone()
    for start in range(0, numel, _CHUNK):
        chunk = ordered[start:start + _CHUNK].double()
        total += chunk.sum()
        squares += chunk.square_().sum()
    n = count.to(torch.float64)
    moments = torch.stack([total / n, (squares / n).sqrt(), squares.sqrt(), small / n])
    moments = torch.where(count > 0, moments, torch.nan)
    counts = torch.stack([numel - n, torch.full_like(n, numel)])
    return torch.cat([abs_q, moments, counts] + signed_q)


def _count_at_most(ordered: Tensor, value: float, right: bool = True) -> Tensor:
    """Entries of a sorted tensor <= value (< value if not ``right``), compared exactly."""
    t = torch.tensor(value, dtype=ordered.dtype)  # on the host
    if right and t.item() > value:  # the comparison runs in ordered.dtype: round down
        t = torch.nextafter(t, torch.tensor(-math.inf, dtype=ordered.dtype))
    boundary = torch.full((1,), t.item(), dtype=ordered.dtype, device=ordered.device)
    return torch.searchsorted(ordered, boundary, right=right)[0]
