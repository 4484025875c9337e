"""A gradient row that the compiled kernel writes straight into a buffer row: the tensors of one
optimizer step one after another, or the data-loss gradient g − r·θ (Sec. 2.2) computed while
copying (``row_copy.cpp``). For small models this replaces a flat concatenation, the flat
g − r·θ in torch ops and a second copy into the buffer: one call per row and step."""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

from torch import Tensor

from lightning_sig.gradients.radix_build import load_radix_kernel

__all__ = ["KernelRow", "kernel_available"]


class KernelRow(NamedTuple):
    """``grads`` (CPU tensors, N values in all) read one after another into a float32 row; with
    ``params`` (float32 θ of the same sizes, the parameters of ``grads``) the row holds
    g − θ·r instead, per coordinate in float32 with r rounded to float32 first: the values of
    torch's ``g - θ.mul(r)`` (tested bitwise against the ``penalty_gradients()`` mapping path).

    Built only where :func:`kernel_available` and the tensors suit it (the reader checks: CPU,
    no float64; float32 for ``params``)."""

    grads: Sequence[Tensor]
    params: Optional[Sequence[Tensor]] = None
    r: float = 0.0

    def numel(self) -> int:
        """N, the values of the row."""
        return sum(g.numel() for g in self.grads)

    def write(self, row: Tensor) -> None:
        """Fill ``row`` ((N,) contiguous float32 CPU).

        Raises:
            RuntimeError: (from the kernel) another row size, a non-CPU or non-float tensor.
        """
        kernel = load_radix_kernel()
        if self.params is None:
            kernel.copy_into_row(list(self.grads), row)
        else:
            kernel.data_gradient_into_row(list(self.grads), list(self.params), float(self.r),
                                          row)


def kernel_available() -> bool:
    """Whether the compiled kernel is loaded (built at first call; False without a compiler)."""
    return load_radix_kernel() is not None
