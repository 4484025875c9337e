"""Where the training data stands: the (epoch, batch) an epoch-seeded sampler starts from.

Why: a run resumed from a checkpoint must train on exactly the batches the uninterrupted run
would have trained, whatever the checkpoint: mid-epoch (``ModelCheckpoint(every_n_train_steps)``,
a run stopped by ``max_steps``, SLURM's ``hpc_ckpt`` written from a signal handler) or at an
epoch's end, resumed under ``max_steps`` or ``max_epochs``. A plain sampler restarts the epoch's
order at its first batch, and Lightning's ``set_epoch`` value (its count of *processed* epochs)
runs one ahead of ``trainer.current_epoch`` after a resume that stopped at an epoch's end under
``max_steps`` or ran into ``max_steps`` mid-epoch (Lightning 2.6: it then calls ``set_epoch(e+1)``
and ``set_epoch(e+2)`` before the first batch of epoch e+1).

The rule, applied when an iteration of our samplers starts drawing (the first ``next()``): the
trainer trains next batch ``k`` of epoch ``e``, where ``e = trainer.current_epoch`` and ``k`` is the
number of batches it has processed in that epoch (Lightning restores both from the checkpoint and
resumes its own ``batch_idx`` at ``k``), or batch 0 of epoch ``e + 1`` when epoch ``e``'s last
batch is done. The sampler then yields the rest of epoch ``e``'s order from batch ``k``. In an
uninterrupted run this is ``(set_epoch value, 0)`` at every epoch, so the orders are unchanged.

:class:`PositionedLoader` also saves that position in the checkpoint through Lightning's
``state_dict`` / ``load_state_dict`` support for data loaders (so Lightning knows the loader is
resumable), and restores it for loops without a trainer.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from torch.utils.data import DataLoader

from lightning_sig._compat import fit_batch_progress

__all__ = ["Position", "fit_position", "PositionedSampler", "PositionedLoader"]

#: (epoch, batch): the 0-based epoch and the index of its next batch.
Position = Tuple[int, int]


def fit_position(trainer: Any) -> Optional[Position]:
    """The (epoch, batch) ``trainer`` trains next, or None when it is not in its training loop.

    ``epoch`` is ``trainer.current_epoch`` and ``batch`` the batches it processed in it; when the
    epoch's last batch is done (``is_last_batch`` and nothing half-way), ``(epoch + 1, 0)``.
    """
    if trainer is None or not getattr(trainer, "training", False):
        return None
    processed, ready, last = fit_batch_progress(trainer)
    epoch = int(trainer.current_epoch)
    if last and processed == ready and processed > 0:
        return epoch + 1, 0
    return epoch, processed


def _check_position(state: Any) -> Optional[Position]:
    if state == {}:
        return None
    valid = isinstance(state, dict) and set(state) == {"epoch", "batch"} and all(
        isinstance(state[k], int) and not isinstance(state[k], bool) and state[k] >= 0
        for k in ("epoch", "batch"))
    if not valid:
        raise ValueError(f"a data loader position must be {{'epoch': int >= 0, 'batch': int >= 0}} "
                         f"(or {{}}), got {state!r}.")
    return state["epoch"], state["batch"]


class PositionedSampler:
    """Mixin of :class:`~lightning_sig.lightning.data.EpochSeededSampler` and
    :class:`~lightning_sig.lightning.data.MemberBatchSampler`: each iteration starts at a
    :data:`Position` and counts what it hands out.

    Where an iteration starts, first that applies: ``locate()`` (set by the DataModule to
    :func:`fit_position` of its trainer), a position given to :meth:`resume_at` (used once), else
    ``(self.epoch, 0)`` (``set_epoch``). Subclasses call :meth:`_start` at the start of
    ``__iter__`` and wrap what they yield in :meth:`_counted`, and have ``epoch``, ``set_epoch``,
    ``_per_batch`` (items per batch: indices per batch, or 1 for a batch sampler) and
    ``_batches_per_epoch()``.
    """

    epoch: int
    _per_batch: int = 1
    locate: Optional[Callable[[], Optional[Position]]] = None
    _resume: Optional[Position] = None
    _items: int = 0  # items handed out in the current epoch, from batch 0 on

    def _batches_per_epoch(self) -> int:
        raise NotImplementedError

    def resume_at(self, epoch: int, batch: int) -> None:
        """Start the next iteration at batch ``batch`` of epoch ``epoch`` (when no trainer says
        otherwise). Raises ValueError for negative or non-integer values."""
        self._resume = _check_position({"epoch": epoch, "batch": batch})

    def _start(self) -> Position:
        located = self.locate() if self.locate is not None else None
        if located is None and self._resume is not None:
            located = self._resume
        self._resume = None
        epoch, batch = located if located is not None else (self.epoch, 0)
        self.set_epoch(epoch)
        self._items = batch * self._per_batch
        return epoch, batch

    def _counted(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self._items += 1
            yield item

    def position(self) -> Position:
        """Where the next batch comes from: ``locate()`` when it answers, else the current
        epoch and the batches handed out so far ((epoch + 1, 0) once the epoch is used up)."""
        located = self.locate() if self.locate is not None else None
        if located is not None:
            return located
        batch = math.ceil(self._items / self._per_batch)
        return (self.epoch + 1, 0) if batch >= self._batches_per_epoch() else (self.epoch, batch)


class _DeferredIterator:
    """The loader's iterator, created at the first ``next()``: with worker processes, DataLoader
    draws indices when the iterator is created, and Lightning creates it before it restores its
    epoch counters; deferring it makes every draw see the counters of the batch it feeds."""

    def __init__(self, loader: "PositionedLoader") -> None:
        self._loader, self._iterator = loader, None

    def __iter__(self) -> "_DeferredIterator":
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = DataLoader.__iter__(self._loader)
        return next(self._iterator)

    def __len__(self) -> int:
        return len(self._loader)


class PositionedLoader(DataLoader):
    """A ``DataLoader`` over a :class:`PositionedSampler` (as ``sampler`` or ``batch_sampler``)
    whose position is saved in Lightning checkpoints.

    ``state_dict()`` is ``{"epoch": e, "batch": k}``, the sampler's
    :meth:`~PositionedSampler.position` (``{}`` if Lightning replaced the sampler);
    ``load_state_dict`` hands it to :meth:`~PositionedSampler.resume_at`. Lightning calls both
    (``fit_loop``'s ``combined_loader`` state) and, seeing them, does not warn that mid-epoch
    resumes are unreliable. Iterators are created at their first ``next()`` (see
    ``_DeferredIterator``). Takes DataLoader's arguments.

    Raises:
        ValueError: ``load_state_dict`` of anything but such a dict (names it).
    """

    def _positioned(self) -> Optional[PositionedSampler]:
        for candidate in (self.batch_sampler, self.sampler):
            if isinstance(candidate, PositionedSampler):
                return candidate
        return None

    def __iter__(self) -> Iterator[Any]:
        return _DeferredIterator(self)

    def state_dict(self) -> Dict[str, int]:
        sampler = self._positioned()
        if sampler is None:
            return {}
        epoch, batch = sampler.position()
        return {"epoch": epoch, "batch": batch}

    def load_state_dict(self, state_dict: Dict[str, int]) -> None:
        position = _check_position(state_dict)
        sampler = self._positioned()
        if position is not None and sampler is not None:
            sampler.resume_at(*position)
