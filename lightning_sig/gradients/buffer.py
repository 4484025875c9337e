"""Flat gradients of successive optimizer steps, kept as the rows of one tensor so that the
GradientQuantileCallback computes their statistics together.

Why: for the paper's tiny networks (about 1,500 gradient coordinates) the statistics of one step
are ~60 small array operations whose cost is per-call overhead, not arithmetic; inside a real
``Trainer.fit`` (caches cold after the training step) one step's statistics took ~700 µs on
this CPU, 6% of a step. The statistics of S buffered steps take about the same number of
operations as those of one (:func:`batched_statistics`), so the per-step cost is a copy of the
gradient into the buffer plus 1/S of one batched call.
"""
from __future__ import annotations

import functools
from typing import Dict, Hashable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from lightning_sig._compat import flatten_dense_tensors
from lightning_sig.gradients.segments import segment_statistics_unchecked

__all__ = ["StepBuffer", "batched_statistics", "BUFFER_MAX_NUMEL", "GradientSnapshot",
           "flatten_gradients", "EpochSums"]

#: Largest buffer (steps × coordinates): 1 MiB of float32. Models with more than this many
#: gradient coordinates get one step per buffer, i.e. no batching.
BUFFER_MAX_NUMEL = 1 << 18


class StepBuffer:
    """Up to ``capacity`` flat gradients of one layout (the layer names and sizes) as rows.

    Args:
        capacity: rows (optimizer steps) held at most, ≥ 1.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}.")
        self.capacity = capacity
        self.key: Optional[Hashable] = None  # the layout of the buffered rows
        self.steps: List[int] = []  # optimizer step of each row
        self.logged: List[bool] = []  # whether each row's step is a scalar-logging step
        self._rows: Optional[Tensor] = None  # (capacity, N)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def full(self) -> bool:
        return len(self.steps) >= self.capacity

    def accepts(self, key: Hashable) -> bool:
        """Whether a row of layout ``key`` can be appended (empty buffer or the same layout)."""
        return not self.steps or key == self.key

    def append(self, key: Hashable, flat: Tensor, step: int, logged: bool) -> None:
        """Copy ``flat`` (N,) in as the next row.

        Raises:
            ValueError: the buffer is full or holds rows of another layout.
        """
        if self.full or not self.accepts(key):
            raise ValueError("StepBuffer.append: the buffer is full or has another layout; "
                             "take() its rows first.")
        rows = self._rows
        if not self.steps and (rows is None or rows.shape[1] != flat.numel()
                               or rows.dtype != flat.dtype or rows.device != flat.device):
            self._rows = rows = flat.new_empty((self.capacity, flat.numel()))
        self.key = key
        rows[len(self.steps)].copy_(flat)
        self.steps.append(step)
        self.logged.append(logged)

    def take(self) -> Tuple[Hashable, Tensor, List[int], List[bool]]:
        """(layout, rows (S, N), steps, logged) of the S buffered steps; empties the buffer.
        The rows are a view, valid until the next :meth:`append`."""
        count = len(self.steps)
        out = (self.key, self._rows[:count], self.steps, self.logged)
        self.steps, self.logged = [], []
        return out


def batched_statistics(rows: Tensor, sizes: Sequence[int], quantiles: Tuple[float, ...],
                       vanishing_threshold: float, signed: bool, with_total: bool) -> Tensor:
    """Statistics of every segment of every row, as in
    :func:`~lightning_sig.gradients.segments.segment_statistics`.

    Args:
        rows: (S, N) floating, one flat gradient per row, each cut into segments of ``sizes``.
        sizes: the G segment lengths of a row (sum N).
        quantiles, vanishing_threshold, signed: already validated (see ``segment_statistics``).
        with_total: also the statistics of each whole row, first.

    Returns:
        (S, G, K) float64, or (S, 1 + G, K) with ``with_total``.
    """
    count, numel = rows.shape
    flat = rows.reshape(-1)  # (S·N,): row s is segment s of the totals layout
    args = (quantiles, vanishing_threshold, signed)
    parts = [segment_statistics_unchecked(flat, tuple(sizes) * count, *args, with_total=False)
             .reshape(count, len(sizes), -1)]
    if with_total:
        totals = segment_statistics_unchecked(flat, (numel,) * count, *args, with_total=False)
        parts.insert(0, totals.reshape(count, 1, -1))
    return torch.cat(parts, dim=1)


class GradientSnapshot(NamedTuple):
    """The gradients of one optimizer step: ``names`` ("global", then the layers), ``sizes``
    (coordinates per layer), ``counts`` (tensors per layer) and ``grads`` (every gradient
    tensor, layer after layer)."""

    names: Tuple[str, ...]
    sizes: Tuple[int, ...]
    counts: Tuple[int, ...]
    grads: List[Tensor]

    @classmethod
    def of_layers(cls, layers: Dict[str, List[Tensor]]) -> "GradientSnapshot":
        """From layer name → its gradient tensors."""
        return cls(("global",) + tuple(layers),
                   tuple(sum(g.numel() for g in gs) for gs in layers.values()),
                   tuple(len(gs) for gs in layers.values()),
                   [g for gs in layers.values() for g in gs])

    def layer_grads(self) -> List[List[Tensor]]:
        """The gradients grouped by layer."""
        ends = np.cumsum(self.counts)
        return [self.grads[end - count:end] for count, end in zip(self.counts, ends)]


@torch.no_grad()
def flatten_gradients(grads: List[Tensor]) -> Tensor:
    """The gradients as one flat (N,) tensor (one C++ concatenation, a copy).

    Mixed dtypes are promoted (``torch.promote_types``: float16 with bfloat16 gives float32, so
    neither is rounded into the other); sparse gradients (e.g. ``nn.Embedding(sparse=True)``)
    are made dense, so their statistics include the zeros (an assumption: the coordinates of
    the gradient vector, as for a dense layer).
    """
    grads = [g.to_dense() if g.layout != torch.strided else g for g in grads]
    dtype = grads[0].dtype
    if any(g.dtype != dtype for g in grads):
        dtype = functools.reduce(torch.promote_types, {g.dtype for g in grads})
        grads = [g.to(dtype) for g in grads]
    return flatten_dense_tensors(grads)


class EpochSums:
    """Sums over an epoch's steps of every statistic, per group name (NaN entries left out), so
    that a layer whose gradient is missing at some steps is averaged over the others.

    State: ``names`` (R,), ``total`` and ``count`` (R, K) float64 on the CPU.
    """

    def __init__(self, names: Sequence[str] = (), total: Optional[Tensor] = None,
                 count: Optional[Tensor] = None) -> None:
        self.names = list(names)
        self.total, self.count = total, count
        self._rows = {name: i for i, name in enumerate(self.names)}

    def add(self, names: Sequence[str], table: Tensor) -> None:
        """Add a (S, G, K) table of S steps for the G groups ``names``."""
        defined = ~torch.isnan(table)
        totals = torch.where(defined, table, 0.0).sum(0).double().cpu()  # (G, K)
        counts = defined.sum(0).double().cpu()
        if self.total is None:
            self.total = torch.zeros(0, table.shape[-1], dtype=torch.float64)
            self.count = torch.zeros(0, table.shape[-1], dtype=torch.float64)
        new = [name for name in names if name not in self._rows]
        if new:
            for name in new:
                self._rows[name] = len(self.names)
                self.names.append(name)
            pad = torch.zeros(len(new), self.total.shape[1], dtype=torch.float64)
            self.total, self.count = torch.cat([self.total, pad]), torch.cat([self.count, pad])
        rows = torch.tensor([self._rows[name] for name in names])
        self.total.index_add_(0, rows, totals)
        self.count.index_add_(0, rows, counts.to(self.count.dtype))

    def means(self) -> List[float]:
        """The (R, K) means, row-major; NaN where a statistic was never defined."""
        return (self.total / self.count).reshape(-1).tolist()

    def state(self) -> Tuple[List[str], Tensor, Tensor]:
        """(names, total, count), copies (a checkpoint does not change with later steps)."""
        return list(self.names), self.total.clone(), self.count.clone()
