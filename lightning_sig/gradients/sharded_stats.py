"""Exact statistics of a gradient sharded over processes (FSDP, ZeRO), without gathering it.

Each process holds a part of every layer's gradient (possibly none). The engine's radix
selection (:mod:`lightning_sig.gradients.radix_torch`) needs of the data only counts: how many
values each group has, their sums, and histograms of key digits. Those add up over the shards,
so one ``all_reduce`` (sum) of the counts and sums and one per digit of the histograms (8-bit
digits: 4 for float32, 8 for float64; each (groups, ranks, 256) int64, about 0.5 MiB for 50
layers and the 5 default levels) give every process the statistics of the whole gradient,
equal to those of the gathered gradient (quantiles bit for bit, sums up to rounding order).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from lightning_sig.gradients.quantile_engine import GradInput, finish_table, flat_parts, \
    gradient_parts, threshold_key
from lightning_sig.gradients.radix_torch import radix_table_torch
from lightning_sig.gradients.stat_keys import DEFAULT_QUANTILES, DEFAULT_VANISHING_THRESHOLD, \
    check_quantile_levels, check_vanishing_threshold

__all__ = ["sharded_table_statistics"]


def sharded_table_statistics(parts: GradInput, sizes: Sequence[int],
                             quantiles: Sequence[float] = DEFAULT_QUANTILES,
                             vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                             signed: bool = False, with_total: bool = False,
                             group: Optional[object] = None) -> Tensor:
    """:func:`~lightning_sig.gradients.quantile_engine.table_statistics` (one row) of a
    gradient whose segments are split over the processes of ``group``.

    Args:
        parts: this process's floating tensors, read one after another as its part of each
            segment (local sizes ``sizes``); on the device the process group communicates on.
        sizes: the G local segment lengths (the same G, in the same order, on every process).
        quantiles, vanishing_threshold, signed, with_total: as in ``table_statistics``.
        group: the ``torch.distributed`` process group (None: the default group).

    Returns:
        (1, G + with_total, K) float64 on the parts' device, the same on every process: the
        statistics of the concatenation over processes of each segment's parts.

    Raises:
        ValueError: as ``table_statistics``; RuntimeError: torch.distributed not initialised.
    """
    import torch.distributed as dist
    levels = check_quantile_levels(quantiles)
    threshold = check_vanishing_threshold(vanishing_threshold)
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("sharded_table_statistics needs an initialised torch.distributed "
                           "process group")
    tensors = gradient_parts(parts)
    flat = flat_parts(tensors)
    dtype = flat[0].dtype if flat else torch.float32
    if flat:
        x = torch.cat(flat) if len(flat) > 1 else flat[0]
    else:
        x = torch.zeros(0, dtype=dtype)
    wide = torch.tensor([dtype == torch.float64], dtype=torch.int64, device=x.device)
    dist.all_reduce(wide, op=dist.ReduceOp.MAX, group=group)  # one key width on every shard
    if bool(wide.item()) and dtype != torch.float64:
        x = x.double()
    if sum(int(s) for s in sizes) != x.numel():
        raise ValueError(f"sizes {list(sizes)} must sum to this shard's {x.numel()} values")

    def reduce(t: Tensor) -> None:
        dist.all_reduce(t, group=group)

    out = radix_table_torch(x, sizes, 1, levels, threshold_key(threshold, x.dtype), with_total,
                            signed, reduce)
    return finish_table(*out, levels).view(1, len(sizes) + bool(with_total), -1)
