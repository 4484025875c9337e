"""Independent random streams per seed: one ``torch.Generator`` seed per (seed, purpose, epoch).

Why: a study of S seeds (the paper's 25, Sec. 3) compares arms over independent repetitions.
The old convention — epoch e of seed s shuffled with ``seed s + e`` (DistributedSampler's), the
initialisation drawn from ``torch.manual_seed(s)`` — made seed s + 1 see seed s's data orders one
epoch later (seeds 0–9 × 30 epochs used only 39 distinct orders) and made seed s's
initialisation start the same stream as its first shuffle. Here each stream's seed is derived
from the tuple (seed, purpose, epoch) by numpy's :class:`numpy.random.SeedSequence`, whose
``spawn_key`` is designed for exactly this: streams with different keys are independent for
all practical purposes, and no stream of one seed is another seed's.

Purposes (:data:`PURPOSES`): ``"init"`` (the network's initial parameters; epoch 0) and
``"data_order"`` (the training order of epoch e). A member of a ``num_members`` group and a
separate run of the same seed call the same derivation, so they see the same streams.
:func:`epoch_order` is the ``"data_order"`` stream's permutation, shared by the single-run
sampler (:mod:`lightning_sig.lightning.data`) and the member batches (:mod:`lightning_sig.members.batches`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["PURPOSES", "derived_seed", "epoch_order"]

#: purpose name -> the integer put in the SeedSequence's spawn_key (never reuse or renumber:
#: renumbering changes every run's initialisation and data order)
PURPOSES: Dict[str, int] = {"init": 1, "data_order": 2}


def derived_seed(seed: int, purpose: str, epoch: int = 0) -> int:
    """The 63-bit seed of the stream ``purpose`` of ``seed`` at ``epoch``.

    ``SeedSequence(entropy=seed, spawn_key=(PURPOSES[purpose], epoch))`` generates two 32-bit
    words, joined into one integer < 2**63 (a valid ``torch.Generator.manual_seed``).

    Args:
        seed: the run's seed (``seed_everything`` value), an integer >= 0.
        purpose: one of :data:`PURPOSES`.
        epoch: 0-based epoch, an integer >= 0 (0 for ``"init"``).

    Returns:
        int in [0, 2**63).

    Raises:
        ValueError: ``seed`` or ``epoch`` not an integer >= 0; unknown ``purpose`` (lists the
            valid ones).
    """
    import numpy as np

    for name, value in (("seed", seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; valid: {', '.join(PURPOSES)}.")
    words = np.random.SeedSequence(entropy=seed, spawn_key=(PURPOSES[purpose], epoch)
                                   ).generate_state(2, dtype=np.uint32)
    return (int(words[1]) << 32 | int(words[0])) & (2**63 - 1)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """(n,) int64: the training order of ``epoch`` for ``seed``, a permutation of ``range(n)``.

    ``torch.randperm(n)`` of a generator seeded with ``derived_seed(seed, "data_order", epoch)``
    (this module): independent across seeds and epochs, the same for a separate
    run, a member of a group and every DDP rank of the same seed.
    """
    import torch  # here: deriving seeds needs no torch

    generator = torch.Generator().manual_seed(derived_seed(seed, "data_order", epoch))
    return torch.randperm(n, generator=generator)
