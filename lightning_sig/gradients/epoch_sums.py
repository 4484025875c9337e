"""Sums over an epoch's optimizer steps of every gradient statistic (the callback's
``grad_epoch/*`` means)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["EpochSums"]


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

    def add(self, names: Sequence[str], table: Union[np.ndarray, Tensor]) -> None:
        """Add a (S, G, K) table of S steps for the G groups ``names`` (a numpy array or a
        tensor; float64 sums in numpy: for the paper nets' small tables ten torch ops cost more
        than the arithmetic)."""
        values = np.asarray(table.detach().cpu() if isinstance(table, Tensor) else table,
                            dtype=np.float64)
        defined = ~np.isnan(values)
        totals = np.where(defined, values, 0.0).sum(0)  # (G, K)
        counts = defined.sum(0).astype(np.float64)
        if self.total is None:
            self.total = torch.zeros(0, values.shape[-1], dtype=torch.float64)
            self.count = torch.zeros(0, values.shape[-1], dtype=torch.float64)
        new = [name for name in names if name not in self._rows]
        if new:
            for name in new:
                self._rows[name] = len(self.names)
                self.names.append(name)
            pad = torch.zeros(len(new), self.total.shape[1], dtype=torch.float64)
            self.total, self.count = torch.cat([self.total, pad]), torch.cat([self.count, pad])
        rows = [self._rows[name] for name in names]  # distinct (the groups of one table)
        self.total.numpy()[rows] += totals  # in place: the tensors share the memory
        self.count.numpy()[rows] += counts

    def means(self) -> List[float]:
        """The (R, K) means, row-major; NaN where a statistic was never defined (numpy: a
        torch op hands the GIL to other threads, e.g. TensorBoard's writer, at an epoch end)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.total.numpy() / self.count.numpy()).reshape(-1).tolist()

    def state(self) -> Tuple[List[str], Tensor, Tensor]:
        """(names, total, count), copies (a checkpoint does not change with later steps)."""
        return list(self.names), self.total.clone(), self.count.clone()
