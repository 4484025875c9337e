"""The numpy twin of ``radix_kernel.cpp``: the same outputs, bit for bit, without a compiler.

Used when the kernel cannot be built, for float64 gradients (the kernel reads float32 only) and
as the kernel's reference in the tests. Same definitions as the kernel (see its header):

- counts: finite F, non-finite, finite with |x| <= threshold (compared on the bits: ``tkey``);
- sums: element i of a segment adds to lane i % 16 of 16 sequential float64 sums (numpy's
  ``add.reduce`` along axis 0 of an (m, 16) array adds row after row), the lanes combine as the
  kernel's fixed tree, the row's sums add its segments' in order;
- order statistics: exact by any method; here ``numpy.partition`` of the finite keys (|x| or
  sign-flipped bits, ordered as the values) at the ranks of :func:`rank_plan`.

Memory: one key array per segment and per row (the size of the data), float64 chunks of
:data:`_CHUNK` values for the sums.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["radix_table_numpy", "rank_plan"]

_CHUNK = 1 << 16  # values per float64 chunk of the lane sums (a multiple of 16)
_KEYS = {np.dtype(np.float32): (np.uint32, np.int32, 32), np.dtype(np.float64): (np.uint64, np.int64, 64)}


def rank_plan(count: int, level: float) -> Tuple[int, int, float]:
    """numpy "linear": ranks (lo, hi) around the virtual index (count - 1) * level and the weight
    of hi; hi = lo where the weight is 0 (at the top, or an integer index)."""
    virtual = (count - 1) * level
    if virtual >= count - 1:
        return count - 1, count - 1, 0.0
    low = math.floor(virtual)
    return (low, low, 0.0) if virtual == low else (low, low + 1, virtual - low)


def _tree16(lanes: np.ndarray) -> float:
    l = lanes.tolist()
    return ((((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])))
            + (((l[8] + l[9]) + (l[10] + l[11])) + ((l[12] + l[13]) + (l[14] + l[15]))))


def _lane_sums(values: np.ndarray, finite: np.ndarray) -> Tuple[float, float]:
    """(sum |x|, sum x^2) over the finite values, in the kernel's 16 lanes."""
    lanes = np.zeros((2, 16))
    head = values.size - values.size % 16
    for start in range(0, head, _CHUNK):
        block = values[start:min(head, start + _CHUNK)]
        a = np.where(finite[start:start + block.size], np.abs(block), 0).astype(np.float64)
        stacked = np.empty((a.size // 16 + 1, 16))
        for row, data in ((0, a), (1, np.square(a))):
            stacked[0], stacked[1:] = lanes[row], data.reshape(-1, 16)
            lanes[row] = np.add.reduce(stacked, axis=0)  # sequential: carry, then row after row
    tail = np.where(finite[head:], np.abs(values[head:]), 0).astype(np.float64)
    lanes[0, :tail.size] += tail
    lanes[1, :tail.size] += np.square(tail)
    return _tree16(lanes[0]), _tree16(lanes[1])


def _keys(values: np.ndarray, signed: bool) -> np.ndarray:
    """Unsigned keys ordered as |x| (or x): the bits of |x|, or the bits with the sign bit
    flipped (x >= +0) or all bits flipped (x <= -0)."""
    unsigned, integer, width = _KEYS[values.dtype]
    bits = values.view(unsigned)
    if not signed:
        return bits & unsigned((1 << (width - 1)) - 1)
    flip = (values.view(integer) >> (width - 1)).view(unsigned) | unsigned(1 << (width - 1))
    return bits ^ flip


def _values(keys: np.ndarray, dtype: np.dtype, signed: bool) -> np.ndarray:
    """Inverse of :func:`_keys`, as float64."""
    unsigned, _, width = _KEYS[dtype]
    if signed:
        top = unsigned(1 << (width - 1))
        keys = np.where(keys & top, keys ^ top, ~keys)
    return keys.astype(unsigned).view(dtype).astype(np.float64)


def _order(values: np.ndarray, finite: np.ndarray, count: int, levels: Sequence[float],
           signed: bool) -> np.ndarray:
    """(L, 2) values at the ranks (lo, hi) of each level among the finite values; NaN if none."""
    out = np.full((len(levels), 2), np.nan)
    if count == 0:
        return out
    keys = _keys(values, signed)  # a new array, partitioned in place
    if count < values.size:
        keys = keys[finite]
    plans = [rank_plan(count, q)[:2] for q in levels]
    ranks = sorted({r for plan in plans for r in plan})
    if ranks:
        keys.partition(ranks)
    for i, (lo, hi) in enumerate(plans):
        out[i] = _values(keys[[lo, hi]], values.dtype, signed)
    return out


def _finite(values: np.ndarray) -> np.ndarray:
    unsigned = _KEYS[values.dtype][0]
    return _keys(values, False) < np.array(np.inf, values.dtype).view(unsigned)


def _group(values: np.ndarray, levels: Sequence[float], tkey: int, signed: bool
           ) -> Tuple[List[int], List[float], np.ndarray, np.ndarray]:
    """counts, sums, |x| order statistics and signed ones of one segment"""
    unsigned = _KEYS[values.dtype][0]
    magnitude = _keys(values, False)
    finite = magnitude < np.array(np.inf, values.dtype).view(unsigned)
    count = int(np.count_nonzero(finite))
    small = int(np.count_nonzero(magnitude <= unsigned(tkey)))
    del magnitude
    sums = list(_lane_sums(values, finite))
    abs_order = _order(values, finite, count, levels, False)
    signed_order = _order(values, finite, count, levels, True) if signed else abs_order[:0]
    return [count, values.size - count, small], sums, abs_order, signed_order


def radix_table_numpy(parts: Sequence[np.ndarray], sizes: Sequence[int], rows: int,
                      levels: Sequence[float], tkey: int, with_total: bool, signed: bool
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's ``radix_table`` on 1-D float32 or float64 arrays (one dtype); ``tkey``: the
    |x| key of the largest value of that dtype at most the threshold. Same return values."""
    flat = parts[0] if len(parts) == 1 else np.concatenate(parts)
    sizes = [int(s) for s in sizes]
    row_size = sum(sizes)
    if flat.size != rows * row_size:
        raise ValueError(f"radix_table_numpy: {flat.size} values, not rows * N = "
                         f"{rows * row_size}")
    per_row = len(sizes) + bool(with_total)
    count = rows * per_row
    counts = np.zeros((count, 3), np.int64)
    sums = np.zeros((count, 2))
    abs_order = np.empty((count, len(levels), 2))
    signed_order = np.empty((count if signed else 0, len(levels), 2))
    for r in range(rows):
        row = flat[r * row_size:(r + 1) * row_size]
        base, start = r * per_row + bool(with_total), 0
        for s, size in enumerate(sizes):
            c, m, a, o = _group(row[start:start + size], levels, tkey, signed)
            counts[base + s], sums[base + s], abs_order[base + s] = c, m, a
            if signed:
                signed_order[base + s] = o
            start += size
        if with_total:
            total = r * per_row
            counts[total] = counts[total + 1:total + per_row].sum(axis=0)
            sums[total] = [_sequential(sums[total + 1:total + per_row, k]) for k in range(2)]
            finite = _finite(row)
            f = int(counts[total, 0])
            abs_order[total] = _order(row, finite, f, levels, False)
            if signed:
                signed_order[total] = _order(row, finite, f, levels, True)
    return counts, sums, abs_order, signed_order


def _sequential(values: np.ndarray) -> float:
    total = 0.0
    for v in values.tolist():
        total += v
    return total
