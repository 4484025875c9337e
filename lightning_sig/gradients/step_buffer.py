"""Flat gradients of successive optimizer steps, kept as the rows of one tensor: the copy the
GradientQuantileCallback takes of a gradient before the optimizer changes it.

Why rows: for the paper's tiny networks (about 1,500 gradient coordinates) the statistics of one
step are per-call overhead, not arithmetic; the statistics of S buffered steps cost about one
call (:func:`~lightning_sig.gradients.quantile_engine.table_statistics` with ``rows=S``). For a
large model a buffer holds one row: the working copy that the statistics read while training
goes on, reused from step to step (:meth:`StepBuffer.recycle`).
"""
from __future__ import annotations

from typing import Any, Hashable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from lightning_sig.gradients.kernel_row import KernelRow

__all__ = ["StepBuffer"]

_NUMPY_COPY = (torch.float32, torch.float16, torch.float64)


def _copy_into(row: Tensor, data: Union[Tensor, Sequence[Tensor], KernelRow]) -> None:
    """Copy a flat tensor, a list of tensors (read one after another) or a
    :class:`~lightning_sig.gradients.kernel_row.KernelRow` into ``row`` (N,)."""
    if isinstance(data, KernelRow):  # the small models' case: one compiled call
        data.write(row)
        return
    if isinstance(data, Tensor) and data.dtype == row.dtype and data.device.type == "cpu" \
            and row.device.type == "cpu" and data.is_contiguous():  # the small models' case
        np.copyto(row.numpy(), data.detach().numpy().reshape(-1))
        return
    offset = 0
    for t in [data] if isinstance(data, Tensor) else data:
        t = t.detach()
        t = t.to_dense() if t.layout != torch.strided else t
        n = t.numel()
        part = row[offset:offset + n]
        if row.device.type == "cpu" and t.device.type == "cpu" and t.dtype in _NUMPY_COPY \
                and t.is_contiguous():
            # numpy copies on the calling thread only; torch's copy_ of small tensors through
            # its thread pool was ~100x slower on a loaded 2-core CPU
            np.copyto(part.numpy(), t.numpy().reshape(-1))
        else:
            part.copy_(t.reshape(-1))
        offset += n


def _row_format(data: Union[Tensor, Sequence[Tensor], KernelRow]
                ) -> Tuple[int, torch.dtype, torch.device]:
    """(N, float32 or float64, device) of a row holding ``data`` (fp16/bf16 become float32)."""
    if isinstance(data, KernelRow):
        return data.numel(), torch.float32, torch.device("cpu")
    tensors = [data] if isinstance(data, Tensor) else list(data)
    wide = any(t.dtype == torch.float64 for t in tensors)
    device = tensors[0].device if tensors else torch.device("cpu")
    return sum(t.numel() for t in tensors), torch.float64 if wide else torch.float32, device


class StepBuffer:
    """Up to ``capacity`` flat gradients of one layout (the layer names and sizes) as rows.

    Args:
        capacity: rows (optimizer steps) held at most, ≥ 1.

    Raises:
        ValueError: ``capacity`` < 1.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}.")
        self.capacity = capacity
        self.key: Optional[Hashable] = None  # the layout of the buffered rows
        self.steps: List[int] = []  # optimizer step of each row
        self.logged: List[Any] = []  # what the caller said about each row (e.g. log it)
        self._rows: Optional[Tensor] = None  # (capacity, N) while rows are buffered
        self._lent: Optional[Tensor] = None  # the storage of the last take()
        self._spare: Optional[Tensor] = None  # a storage handed back by recycle()

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def full(self) -> bool:
        return len(self.steps) >= self.capacity

    def accepts(self, key: Hashable) -> bool:
        """Whether a row of layout ``key`` can be appended (empty buffer or the same layout)."""
        return not self.steps or key == self.key

    def append(self, key: Hashable, data: Union[Tensor, Sequence[Tensor], KernelRow], step: int,
               logged: Any) -> None:
        """Copy ``data`` (a flat (N,) tensor, tensors read one after another, or a
        :class:`~lightning_sig.gradients.kernel_row.KernelRow`) in as the next row; fp16/bf16
        become float32 (exact), float64 stays float64.

        Raises:
            ValueError: the buffer is full or holds rows of another layout.
        """
        if self.full or not self.accepts(key):
            raise ValueError("StepBuffer.append: the buffer is full or has another layout; "
                             "take() its rows first.")
        if not self.steps:
            self._rows = self._storage(*_row_format(data))
        self.key = key
        _copy_into(self._rows[len(self.steps)], data)
        self.steps.append(step)
        self.logged.append(logged)

    @property
    def rows(self) -> Optional[Tensor]:
        """The (capacity, N) storage being filled, None while the buffer is empty: rows
        ``len(self)`` onwards are free (see :meth:`add_written`)."""
        return self._rows

    def add_written(self, step: int, logged: Any) -> None:
        """Count row ``len(self)`` of :attr:`rows`, written by the caller (one compiled call of
        the step lane, :mod:`~lightning_sig.gradients.step_lane`), as the row of ``step``.

        Raises:
            ValueError: the buffer is empty (no storage) or full.
        """
        if not self.steps or len(self.steps) >= self.capacity:
            raise ValueError("StepBuffer.add_written: the buffer is empty or full; append() "
                             "a buffer's first row.")
        self.steps.append(step)
        self.logged.append(logged)

    def take(self) -> Tuple[Hashable, Tensor, List[int], List[Any]]:
        """(layout, rows (S, N), steps, logged) of the S buffered steps; empties the buffer. The
        rows are the caller's until it hands them back with :meth:`recycle`."""
        count = len(self.steps)
        out = (self.key, self._rows[:count], self.steps, self.logged)
        self._lent = self._rows
        self.steps, self.logged, self._rows = [], [], None
        return out

    def recycle(self) -> None:
        """Hand back the rows of the last :meth:`take` (no longer read): the next rows of the
        same size, dtype and device are copied into their storage instead of a new one."""
        self._spare, self._lent = self._lent, None

    def _storage(self, numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        spare, self._spare = self._spare, None
        if spare is not None and spare.shape[1] == numel and spare.dtype == dtype \
                and spare.device == device:
            return spare
        return torch.empty((self.capacity, numel), dtype=dtype, device=device)
