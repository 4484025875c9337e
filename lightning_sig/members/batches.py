"""Member batches: each of S members walks its own epoch order, one (S, B, ...) batch a step.

Why: member s of a ``num_members`` group must see the data order a separate run with seed s
sees (:func:`~lightning_sig.seeds.epoch_order`, the order :class:`~lightning_sig.lightning.data.EpochSeededSampler`
also walks), and the grouped convolutions read a (B, S·C, H, W) layout. The training loader of
``CIFAR10DataModule`` with ``member_seeds`` is :func:`member_loader`: a
:class:`MemberBatchSampler` (image-major indices) and :class:`MemberCollate` ((S, B, ...)
views, no copy), resumable mid-epoch like the single-run sampler.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from lightning_sig.lightning.data_position import PositionedLoader, PositionedSampler
from lightning_sig.seeds import epoch_order

__all__ = ["MemberBatchSampler", "MemberCollate", "member_loader"]


def _collate_batch(batch: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
    """The in-memory dataset's ``collate_fn``: its ``__getitems__`` already batches."""
    return batch


class _MemberOrders:
    """The S members' epoch orders, stepped through epochs together (``set_epoch``)."""

    def __init__(self, n: int, seeds: Sequence[int]) -> None:
        self.n, self.seeds, self.epoch = n, list(seeds), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def orders(self) -> Tensor:
        """(S, n) int64: row s is ``epoch_order(n, seeds[s], epoch)``, the order a separate run
        with seed ``seeds[s]`` sees (tests/test_members.py checks it)."""
        return torch.stack([epoch_order(self.n, seed, self.epoch) for seed in self.seeds])


class MemberBatchSampler(PositionedSampler, Sampler[Tensor]):
    """Batches of S members at once (``num_members``, see :mod:`lightning_sig.members`).

    Member s walks through its own epoch order, the permutation of
    ``EpochSeededSampler(n, seeds[s])`` (what a separate run with shuffle seed ``seeds[s]``
    sees); step i yields batch i of every member, flat and image-major: the k-th index of
    member 0, 1, …, S−1, then the (k+1)-th (a (b·S,) int64 tensor, position k·S + s; b =
    ``batch_size``, the last batch smaller unless ``drop_last``). Image-major because the
    grouped convolutions read a (b, S·C, H, W) layout: the gathered batch is already in it.
    :class:`MemberCollate` turns the flat batch into (S, b, ...) (a transposed view). Resumable
    as :class:`EpochSeededSampler` (positions count these batches).

    Args:
        n: dataset size. batch_size: per member, ≥ 1. seeds: one per member.
        drop_last: drop each epoch's last incomplete batch.
    """

    def __init__(self, n: int, batch_size: int, seeds: Sequence[int],
                 drop_last: bool = False) -> None:
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        # Lightning calls ``batch_sampler.sampler.set_epoch(e)`` before every epoch
        self.sampler = _MemberOrders(n, seeds)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def _batches_per_epoch(self) -> int:
        return len(self)

    def __iter__(self) -> Iterator[Tensor]:
        return self._counted(self._batches(*self._start()))

    def _batches(self, epoch: int, first: int) -> Iterator[Tensor]:
        order = self.sampler.orders()  # (S, n) of ``epoch`` (set by _start)
        for start in range(first * self.batch_size, len(self) * self.batch_size, self.batch_size):
            # (S, b) -> (b, S) -> (b·S,) int64 indices, image-major
            yield order[:, start:start + self.batch_size].t().reshape(-1)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class MemberCollate:
    """``collate_fn`` for :class:`MemberBatchSampler`: its image-major (b·S, ...) tensors →
    (S, b, ...) views (memory stays (b, S, ...): the members' grouped layout, no copy).

    Args:
        num_members: S. collate_fn: the per-item collate (default: the in-memory dataset's,
            whose ``__getitems__`` already batches).
    """

    def __init__(self, num_members: int, collate_fn=_collate_batch) -> None:
        self.num_members, self.collate_fn = num_members, collate_fn

    def __call__(self, batch):
        return tuple(t.unflatten(0, (-1, self.num_members)).transpose(0, 1)  # (b, S) -> (S, b)
                     for t in self.collate_fn(batch))


def member_loader(dataset: Dataset, batch_size: int, member_seeds: Sequence[int],
                  locate: Callable[[], Optional[tuple]], num_workers: int = 0,
                  pin_memory: bool = False, world_size: int = 1) -> PositionedLoader:
    """The training loader of S members: member batches (images (S, B, ...), labels (S, B)).

    Args:
        dataset: an in-memory dataset whose ``__getitems__`` batches (``InMemoryImageDataset``).
        batch_size: B, per member. member_seeds: the S shuffle seeds (taken modulo 2**62).
        locate: the sampler's ``locate`` (the trainer's (epoch, batch) position, or None), as
            :class:`~lightning_sig.lightning.data_position.PositionedSampler` uses it to resume.
        num_workers, pin_memory: as ``DataLoader``'s.
        world_size: the Trainer's processes.

    Raises:
        ValueError: ``world_size > 1`` (members and DDP are not combined).
    """
    if world_size > 1:
        raise ValueError(f"member_seeds (S={len(member_seeds)} members) is not supported "
                         f"with {world_size} processes; use one process.")
    seeds = [seed % 2**62 for seed in member_seeds]
    batches = MemberBatchSampler(len(dataset), batch_size, seeds)
    batches.locate = locate
    return PositionedLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                            collate_fn=MemberCollate(len(seeds)), pin_memory=pin_memory,
                            persistent_workers=num_workers > 0)
