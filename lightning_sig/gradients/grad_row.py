"""One gradient to record at an optimizer step: its key, its layout and its values."""
from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple, Union

from torch import Tensor

from lightning_sig.gradients.row_key import RowKey

__all__ = ["GradientRow"]


class GradientRow(NamedTuple):
    """``key`` (member, source); ``names`` of the statistics groups ("global" first when
    ``with_total``, then the layers); ``sizes``, the layers' coordinates; ``data``, the values:
    one flat (N,) tensor, or tensors read one after another (N in all)."""

    key: RowKey
    names: Tuple[str, ...]
    sizes: Tuple[int, ...]
    with_total: bool
    data: Union[Tensor, Sequence[Tensor]]

    @property
    def layout(self) -> Tuple[Tuple[str, ...], Tuple[int, ...], bool]:
        """(names, sizes, with_total): rows of one layout are buffered together."""
        return self.names, self.sizes, self.with_total
