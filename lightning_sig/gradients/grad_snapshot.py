"""The gradients of one optimizer step with their layers (:class:`GradientSnapshot`), and their
flat concatenation (:func:`flatten_gradients`)."""
from __future__ import annotations

import functools
from typing import Dict, List, NamedTuple, Tuple

import numpy as np
import torch
from torch import Tensor

from lightning_sig._compat import flatten_dense_tensors

__all__ = ["GradientSnapshot", "flatten_gradients"]


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
