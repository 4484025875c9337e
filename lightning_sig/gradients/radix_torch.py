"""The radix selection of ``radix_kernel.cpp`` in torch ops, for gradients on a GPU (or any
device): the same outputs (order statistics exactly; float64 sums up to summation order), no
host synchronisation (fixed shapes, no ``.item()``, host tensors sent with
``non_blocking=True``), so the statistics of a step are read back once, when they are logged.

Algorithm, per group (a segment, or a whole row with ``with_total``): keys ordered as |x| (or x)
are cut into digits of 16 bits from the top (2 digits for float32, 4 for float64). The first
digit's histogram (one ``index_add_`` over all groups at once) and its cumulative sum give, by
``searchsorted``, the digit of every wanted rank and the count below it; each further digit
counts, for each wanted rank, the values sharing the digits found so far. Ranks 0 and F - 1 are
found the same way (no special case).

Memory: a few int64 tensors of the gradient's size (keys, group ids) and (groups, 65536) int64
histograms; meant for accelerators. On the CPU the kernel or its numpy twin is faster.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["radix_table_torch"]

#: histogram entries (groups x ranks x buckets) up to which digits are 16 bits wide, else 8
_WIDE_HISTOGRAMS = 1 << 22


def _host(values: Sequence, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A small host tensor on ``device`` without a synchronising copy."""
    return torch.tensor(list(values), dtype=dtype).to(device, non_blocking=True)


def _keys(x: Tensor, signed: bool) -> Tuple[Tensor, int]:
    """(int64 bit patterns whose unsigned order is the order of |x| or x, key width)."""
    width = 64 if x.dtype == torch.float64 else 32
    bits = x.view(torch.int64 if width == 64 else torch.int32)
    magnitude = torch.iinfo(bits.dtype).max
    if not signed:
        return (bits & magnitude).long(), width
    ordered = bits ^ ((bits >> (width - 1)) & magnitude)  # as signed integers: the order of x
    if width == 32:
        return ordered.long() + (1 << 31), width  # [0, 2^32)
    return ordered ^ torch.iinfo(torch.int64).min, width  # the top bit flipped: unsigned order


def _values(keys: Tensor, width: int, signed: bool, dtype: torch.dtype) -> Tensor:
    """Inverse of :func:`_keys`, as float64."""
    if width == 32:
        k = keys - (1 << 31) if signed else keys
        k = k.to(torch.int32)
    else:
        k = keys ^ torch.iinfo(torch.int64).min if signed else keys
    if signed:
        k = k ^ ((k >> (width - 1)) & torch.iinfo(k.dtype).max)
    return k.view(dtype).double()


def _ranks(count: Tensor, levels: Tensor) -> Tensor:
    """(groups, 2L) ranks lo, hi of numpy's "linear" rule (hi = lo at weight 0), >= 0."""
    last = (count - 1).double().unsqueeze(1)
    virtual = last * levels
    low = torch.floor(virtual)
    top = virtual >= last
    lo = torch.where(top, last, low)
    hi = torch.where(top | (virtual == low), lo, low + 1)
    return torch.stack([lo, hi], dim=2).flatten(1).long().clamp_(min=0)


def _select(keys: Tensor, width: int, finite: Tensor, gid: Tensor, groups: int,
            ranks: Tensor, reduce: Optional[Callable[[Tensor], None]] = None) -> Tensor:
    """Keys (groups, R) of the finite values of rank ``ranks`` within each group; ``reduce``
    (e.g. an all-reduce over shards) is applied in place to each digit's histograms."""
    slots = ranks.shape[1]
    wide = reduce is None and groups * max(slots, 1) << 16 <= _WIDE_HISTOGRAMS
    digit_bits = 16 if wide else 8
    buckets = 1 << digit_bits
    prefix = torch.zeros_like(ranks)
    rest = ranks.clone()
    for d in range(width // digit_bits):
        shift = width - digit_bits * (d + 1)
        digit = (keys >> shift) & (buckets - 1)
        count = 1 if d == 0 else slots  # the first digit: one histogram serves every rank
        hist = torch.zeros(groups * count * buckets, dtype=torch.int64, device=keys.device)
        if d == 0:
            hist.index_add_(0, gid * buckets + digit, finite.long())
        else:
            high = (keys >> (shift + digit_bits)) & ((1 << (digit_bits * d)) - 1)
            for j in range(slots):
                member = finite & (high == prefix[:, j][gid])
                hist.index_add_(0, (gid * count + j) * buckets + digit, member.long())
        if reduce is not None:
            reduce(hist)
        hist = hist.view(groups, count, buckets).expand(groups, slots, buckets)
        cum = hist.cumsum(2)
        pick = torch.searchsorted(cum, rest.unsqueeze(2), right=True).clamp_(max=buckets - 1)
        rest = rest - (cum.gather(2, pick) - hist.gather(2, pick)).squeeze(2)
        prefix = (prefix << digit_bits) | pick.squeeze(2)
    return prefix


def _group_table(x: Tensor, gid: Tensor, groups: int, levels: Tensor, tkey: int,
                 signed: bool, reduce: Optional[Callable[[Tensor], None]]) -> Tuple[Tensor, ...]:
    device = x.device
    finite = torch.isfinite(x)
    magnitude, width = _keys(x, False)
    zeros = torch.zeros(groups, dtype=torch.int64, device=device)
    count = zeros.index_add(0, gid, finite.long())
    small = zeros.index_add(0, gid, (magnitude <= tkey).long())
    numel = zeros.index_add(0, gid, torch.ones_like(gid))
    a = torch.where(finite, x.abs(), 0).double()
    sums = torch.stack([torch.zeros(groups, dtype=torch.float64, device=device).index_add(0, gid, v)
                        for v in (a, a * a)], dim=1)
    counts = torch.stack([count, numel - count, small], dim=1)
    if reduce is not None:  # shards: the counts and sums of the whole gradient
        reduce(counts)
        reduce(sums)
        count = counts[:, 0]
    ranks = _ranks(count, levels)
    none = (count == 0).view(-1, 1, 1)
    orders = []
    for kind in (False, True) if signed else (False,):
        keys = magnitude if not kind else _keys(x, True)[0]
        found = _values(_select(keys, width, finite, gid, groups, ranks, reduce), width, kind,
                        x.dtype)
        orders.append(torch.where(none, math.nan, found.view(groups, -1, 2)))
    return counts, sums, *orders


def radix_table_torch(x: Tensor, sizes: Sequence[int], rows: int, levels: Sequence[float],
                      tkey: int, with_total: bool, signed: bool,
                      reduce: Optional[Callable[[Tensor], None]] = None) -> Tuple[Tensor, ...]:
    """``radix_table`` of ``radix_kernel.cpp`` for a flat float32/float64 tensor ``x`` (rows * N)
    on any device: counts, sums, abs order, signed order (empty unless ``signed``), all on x's
    device. The sums are float64 ``index_add`` sums: equal to the kernel's up to rounding.

    ``reduce``: for a gradient sharded over processes (x holds this process's part of each
    segment, ``sizes`` its local sizes), an in-place sum over the processes (e.g.
    ``torch.distributed.all_reduce``) applied to the counts and sums and to each digit's
    histograms (8-bit digits: 4 small reductions for float32): every process then gets the
    statistics of the whole gradient without gathering it."""
    device = x.device
    sizes = [int(s) for s in sizes]
    per_row = len(sizes)
    level_t = _host(levels, torch.float64, device)
    parts = []
    if per_row:
        repeats = _host(sizes * rows, torch.int64, device)
        seg = torch.repeat_interleave(torch.arange(rows * per_row, device=device), repeats,
                                      output_size=x.numel())
        parts.append(_group_table(x, seg, rows * per_row, level_t, tkey, signed, reduce))
    if with_total:
        row_id = torch.repeat_interleave(torch.arange(rows, device=device),
                                         _host([sum(sizes)] * rows, torch.int64, device),
                                         output_size=x.numel())
        totals = _group_table(x, row_id, rows, level_t, tkey, signed, reduce)
        if per_row:  # the row's sums as the kernel: its segments' sums
            totals = (totals[0], parts[0][1].view(rows, per_row, 2).sum(1), *totals[2:])
        parts.insert(0, totals)
    out = []
    for k in range(3 + signed):
        pieces = [p[k].view(rows, p[k].shape[0] // rows, *p[k].shape[1:]) for p in parts]
        out.append(torch.cat(pieces, 1).flatten(0, 1))
    if not signed:
        out.append(torch.empty((0, len(levels), 2), dtype=torch.float64, device=device))
    return tuple(out)
