"""CIFAR-10 as a LightningDataModule that keeps each split in memory as one uint8 tensor.

Why: the paper's networks are tiny, so per-image PIL decoding and collation would dominate a
training step. Here the official python-version batches are read once into (N, 3, 32, 32) uint8,
and every batch is one indexing operation plus a float conversion.

Layout read: ``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (pickles with
``data`` (10000, 3072) uint8 and ``labels``). ``prepare_data`` only downloads (torchvision's
``download_and_extract_archive`` with the official MD5) when batches are missing and
``download=True``; batches already on disk are used as they are, whatever their checksums (local
copies such as ``../shared/cifar10`` are re-encoded and have other sums).

Assumptions (the paper is silent): batch size 32 (Keras' default), no augmentation, pixels
scaled to [0, 1], per-channel standardisation off by default.
"""
from __future__ import annotations

import os
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from typing_extensions import override

from lightning_sig.lightning.data_position import PositionedLoader, PositionedSampler, \
    fit_position
from lightning_sig.lightning.data_files import TEST_FILES, TRAIN_FILES, download_cifar10, load_batches, \
    missing_files
from lightning_sig.members.batches import MemberBatchSampler, MemberCollate, member_loader
from lightning_sig.seeds import epoch_order
from lightning_sig.lightning.mixin_bases import DataModuleBase

__all__ = ["CIFAR10DataModuleMixin", "InMemoryImageDataset", "epoch_order", "EpochSeededSampler", "MemberBatchSampler",
           "MemberCollate"]


def _collate_batch(batch: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
    """``collate_fn`` for :class:`InMemoryImageDataset`: its ``__getitems__`` already batches."""
    return batch


class InMemoryImageDataset(Dataset):
    """Images held as one uint8 tensor; batches are formed by indexing (``__getitems__``).

    Args:
        images: (N, C, H, W) uint8.
        labels: (N,) int64.
        mean, std: per-channel statistics in [0, 1] units, shape (C,), or None (no standardising).

    Items: ``(image (C, H, W) float32 in [0, 1] or standardised, label int64 0-dim)``; a batch
    of indices gives ``(images (B, C, H, W) float32, labels (B,) int64)``.
    """

    def __init__(self, images: Tensor, labels: Tensor, mean: Optional[Tensor] = None,
                 std: Optional[Tensor] = None) -> None:
        self.images, self.labels = images, labels
        self.shift = None if mean is None else mean.view(1, -1, 1, 1)
        self.scale = None if std is None else std.view(1, -1, 1, 1)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitems__(self, indices: Sequence[int]) -> Tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[idx].float().div_(255.0)  # (B, C, H, W) in [0, 1]
        if self.shift is not None:
            x = x.sub_(self.shift).div_(self.scale)
        return x, self.labels[idx]

    def __getitem__(self, index: int) -> Tuple[Tensor, Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]


class EpochSeededSampler(PositionedSampler, DistributedSampler):
    """A random permutation of ``range(n)`` that is a pure function of ``(seed, epoch)``, sharded.

    Unlike ``RandomSampler`` (which draws from the global RNG), the order of epoch e is the same
    whether a run is uninterrupted or resumed from a checkpoint at epoch e: Lightning calls
    :meth:`set_epoch` before every epoch. It is torch's ``DistributedSampler`` (shuffle on), so
    under DDP Lightning keeps it instead of re-shuffling it inside a ``DistributedSamplerWrapper``:
    rank r of W gets positions r, r + W, ... of the permutation (padded to a multiple of W by
    repeating its start), and the W per-rank batches of a step together are the batch of size
    W·B that one process would draw: the same global batches for any number of devices.

    The permutation is :func:`epoch_order` (a seed derived from (seed, "data_order", epoch)),
    not DistributedSampler's ``seed + epoch``, whose orders repeat across seeds shifted by one
    epoch.

    Resumable (:mod:`lightning_sig.lightning.data_position`): an iteration starts at batch k of
    epoch e (batches of ``batch_size`` of this rank's indices) when the trainer stands there
    after a resume, or after :meth:`resume_at`; else at batch 0 of the ``set_epoch`` epoch.

    Args:
        n: dataset size.
        seed: the run's seed, an integer >= 0.
        num_replicas: world size W (default 1).
        rank: this process's global rank (default 0).
        batch_size: indices per batch of the loader it feeds (default 1), the unit of positions.
    """

    def __init__(self, n: int, seed: int, num_replicas: int = 1, rank: int = 0,
                 batch_size: int = 1) -> None:
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.n, self._per_batch = n, batch_size

    def _batches_per_epoch(self) -> int:
        return -(-self.num_samples // self._per_batch)

    @override
    def __iter__(self) -> Iterator[int]:
        epoch, batch = self._start()
        indices = epoch_order(self.n, self.seed, epoch).tolist()
        padding = self.total_size - len(indices)  # as DistributedSampler: repeat the start
        indices += (indices * -(-padding // max(len(indices), 1)))[:padding]
        mine = indices[self.rank:self.total_size:self.num_replicas]
        return self._counted(iter(mine[batch * self._per_batch:]))


class CIFAR10DataModuleMixin(DataModuleBase):
    """CIFAR-10 from the official python-version batches, held in memory.

    Raises:
        ValueError: ``batch_size`` < 1, ``val_split`` < 0 (here) or ≥ the training set size
            (at ``setup``), ``num_workers`` < 0; a truncated or malformed batch file (names it).
        FileNotFoundError: batches missing and ``download=False``, or ``data_dir`` pointing at
            ``cifar-10-batches-py`` itself (raised by ``prepare_data``/``setup``).
        RuntimeError: download requested but failed (e.g. offline); says how to supply the files.

    Example:
        >>> dm = CIFAR10DataModule("../shared/cifar10", batch_size=128)  # doctest: +SKIP
        >>> trainer.fit(model, datamodule=dm)  # doctest: +SKIP
    """

    num_classes = 10

    def __init__(self, data_dir: str = "data", batch_size: int = 32, val_split: int = 0,
                 normalize: bool = False, num_workers: int = 0, download: bool = False,
                 split_seed: int = 42, shuffle_seed: Optional[int] = None,
                 pin_memory: bool = False, member_seeds: Optional[List[int]] = None) -> None:
        """Check and keep the settings; the batches are read (or downloaded) by ``prepare_data`` and
        ``setup``.

        Args:
            data_dir: folder that *contains* ``cifar-10-batches-py/`` (e.g. ``../shared/cifar10``).
            batch_size: images per batch, ≥ 1; default 32 (assumption: Keras' default, the paper
                gives none).
            val_split: 0 (default) validates on the official 10,000-image test split, as the
                paper's accuracy curves do; n > 0 holds out n training images (seeded split) for
                validation and leaves the test split to ``trainer.test``.
            normalize: standardise each channel with the mean/std of the training images used for
                fitting (computed at ``setup``); default False: pixels in [0, 1] (assumption).
            num_workers: DataLoader worker processes; default 0 (indexing is cheap).
            download: download the official archive (with its MD5) if the batches are missing.
            split_seed: seed of the generator for the ``val_split`` hold-out.
            shuffle_seed: seed of the training order (epoch e is :func:`epoch_order` of
                ``shuffle_seed`` and e); None (default) takes the seed of ``seed_everything``
                (``torch.initial_seed()``), so runs with the same seed see the same order, and a
                resumed run sees the order the uninterrupted run would have seen.
            pin_memory: pin host memory for faster GPU transfers.
            member_seeds: for training S members at once (``num_members`` of our modules, which
                sets it at ``setup`` when None): the training loader yields member batches
                (images (S, B, 3, 32, 32), labels (S, B)), member s in the order of shuffle seed
                ``member_seeds[s]`` (:class:`MemberBatchSampler`). Validation and test batches
                stay (B, ...), shared by all members. Default None: one order, plain batches.

        Raises:
            ValueError: ``batch_size`` < 1, ``val_split`` < 0 or ``num_workers`` < 0, or one of
                them not an integer (the errors of ``prepare_data``/``setup``: the class's
                Raises).
        """
        super().__init__()
        for name, value, low in (("batch_size", batch_size, 1), ("val_split", val_split, 0),
                                 ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        self.save_hyperparameters(ignore=["member_seeds"])  # the module's hparams record them
        self.data_dir = os.fspath(data_dir)
        self.batch_size, self.val_split, self.normalize = batch_size, val_split, normalize
        self.num_workers, self.download, self.split_seed = num_workers, download, split_seed
        self.pin_memory, self.shuffle_seed = pin_memory, shuffle_seed
        self.member_seeds = None if member_seeds is None else list(member_seeds)
        self.train_set: Optional[InMemoryImageDataset] = None
        self.val_set: Optional[InMemoryImageDataset] = None
        self.test_set: Optional[InMemoryImageDataset] = None

    @override
    def prepare_data(self) -> None:
        """Download the archive if batches are missing and ``download=True`` (rank 0 only)."""
        if missing_files(self.data_dir, TRAIN_FILES + TEST_FILES):
            if not self.download:
                missing_files(self.data_dir, TRAIN_FILES + TEST_FILES, raise_error=True)
            download_cifar10(self.data_dir)

    @override
    def setup(self, stage: Optional[str] = None) -> None:
        """Load the splits into memory; split off ``val_split`` images with a seeded generator."""
        missing_files(self.data_dir, TRAIN_FILES + TEST_FILES, raise_error=True)
        if self.train_set is not None:
            return
        train_x, train_y = load_batches(self.data_dir, TRAIN_FILES)
        test_x, test_y = load_batches(self.data_dir, TEST_FILES)
        n = train_y.shape[0]
        if self.val_split >= n:
            raise ValueError(f"val_split={self.val_split} must be smaller than the training set "
                             f"({n} images).")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        fit_idx, val_idx = perm[self.val_split:].sort().values, perm[:self.val_split].sort().values
        if self.val_split == 0:
            fit_idx = torch.arange(n)
        mean = std = None
        if self.normalize:
            pixels = train_x[fit_idx].float().div_(255.0)  # (N, C, H, W)
            mean, std = pixels.mean(dim=(0, 2, 3)), pixels.std(dim=(0, 2, 3))
            del pixels
        self.train_set = InMemoryImageDataset(train_x[fit_idx], train_y[fit_idx], mean, std)
        self.test_set = InMemoryImageDataset(test_x, test_y, mean, std)
        self.val_set = (self.test_set if self.val_split == 0 else
                        InMemoryImageDataset(train_x[val_idx], train_y[val_idx], mean, std))

    def _loader(self, dataset: Optional[InMemoryImageDataset], shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("CIFAR10DataModule.setup() must run before asking for a loader.")
        sampler = None
        if shuffle and self.member_seeds is not None:
            return self._member_loader(dataset)
        if shuffle:
            seed = torch.initial_seed() if self.shuffle_seed is None else self.shuffle_seed
            trainer = self.trainer  # set by Lightning; None when used on its own
            world, rank = (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)
            sampler = EpochSeededSampler(len(dataset), seed % 2**62, world, rank, self.batch_size)
            sampler.locate = self._fit_position
        loader = DataLoader if sampler is None else PositionedLoader
        return loader(dataset, batch_size=self.batch_size, sampler=sampler,
                      num_workers=self.num_workers, collate_fn=_collate_batch,
                      pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def _member_loader(self, dataset: InMemoryImageDataset) -> DataLoader:
        world_size = 1 if self.trainer is None else self.trainer.world_size
        return member_loader(dataset, self.batch_size, self.member_seeds, self._fit_position,
                             self.num_workers, self.pin_memory, world_size)

    def _fit_position(self):
        return fit_position(self.trainer)  # the trainer's position while it trains, else None

    @override
    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    @override
    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
