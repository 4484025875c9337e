"""Which gradient a row of statistics belongs to: a member (one of a many-seeds module's
networks, 0 otherwise) and a source (the total gradient or the data-loss one)."""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["RowKey", "SOURCES"]

#: The sources and their tag prefixes: the gradient the optimizer uses, and g − ∇penalty
#: (:mod:`lightning_sig.gradients.penalty`).
SOURCES = ("grad", "grad_data")


class RowKey(NamedTuple):
    """A gradient's identity: ``member`` (0 for an ordinary module, s for member s of a
    :class:`~lightning_sig.members.interface.MultiSeedModule`) and ``source`` (one of
    :data:`SOURCES`, also the prefix of its tags: ``grad/...``, ``grad_data/...``)."""

    member: int
    source: str

    @property
    def epoch_prefix(self) -> str:
        """The prefix of its epoch means: ``grad_epoch`` or ``grad_data_epoch``."""
        return f"{self.source}_epoch"
