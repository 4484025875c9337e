"""Per-member metrics for ``num_members > 1``: each member in its own TensorBoard run directory.

Why: the sweep and figure code read one TensorBoard run per seed (``.../seed_<s>/``). With S
members in one process, member s's scalars and histograms are written by its own
``SummaryWriter`` into ``member_log_dir`` (default ``{log_dir}/seed_{seed}``: next to nothing
else, inside the Lightning run's directory) under exactly the tags a separate run uses
(``train/loss``, ``val/acc``, ``grad/global/abs_q50``, ...), so a member's directory reads like
a separate run's. Values are gathered as (S,) tensors and moved to the host once per logging
call (no per-member or per-metric device synchronisation).

Without a TensorBoardLogger (another logger), tags are prefixed with ``seed_<s>/`` and go through
that logger's ``log_metrics``; histograms are then skipped. Only global rank 0 writes.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor

from lightning_sig.gradients.tag_groups import tensorboard_tag
from lightning_sig.members.interface import DEFAULT_MEMBER_LOG_DIR

__all__ = ["DEFAULT_MEMBER_LOG_DIR", "check_member_log_dir", "MemberLogger", "MemberEvalMetrics"]

_PLACEHOLDERS = {"log_dir": "L", "save_dir": "S", "name": "N", "version": "V", "seed": 7,
                 "member": 3}


def check_member_log_dir(template: str) -> str:
    """Check a member directory template; returns it.

    Placeholders: ``{log_dir}`` (the TensorBoardLogger's run directory), ``{save_dir}``,
    ``{name}``, ``{version}`` (its parts), ``{seed}`` (member's seed), ``{member}`` (0-based
    index). E.g. the sweep layout ``<out>/<figure>/<arm>/seed_<s>/`` is
    ``{save_dir}/{name}/seed_{seed}`` with ``name = <figure>/<arm>``.

    Raises:
        ValueError: not a string, an unknown placeholder or bad braces, or neither ``{seed}``
            nor ``{member}`` (all members would write into one directory).
    """
    if not isinstance(template, str):
        raise ValueError(f"member_log_dir must be a string, got {template!r}.")
    try:
        probe = template.format(**_PLACEHOLDERS)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"member_log_dir={template!r} is not a valid template ({err!r}); valid "
                         f"placeholders: {', '.join('{%s}' % k for k in _PLACEHOLDERS)}.") from None
    if probe == template.format(**dict(_PLACEHOLDERS, seed=8, member=4)):
        raise ValueError(f"member_log_dir={template!r} must contain {{seed}} or {{member}} so "
                         f"that each member gets its own directory.")
    return template


class MemberLogger:
    """Writes each member's metrics under its own run directory (or tag prefix).

    Args:
        seeds: the members' seeds (S of them), used in directory names / tag prefixes.
        directories: one run directory per member (TensorBoard ``SummaryWriter`` each), or None
            to prefix tags with ``seed_<s>/`` and use ``loggers`` instead.
        loggers: Lightning loggers for the prefixed fallback.

    Use :meth:`for_trainer` inside a Trainer run; a module holds one as ``member_logger``.
    """

    def __init__(self, seeds: Sequence[int], directories: Optional[Sequence[str]] = None,
                 loggers: Sequence = ()) -> None:
        self.seeds = list(seeds)
        self.directories = None if directories is None else [os.fspath(d) for d in directories]
        self.loggers = list(loggers)
        self.writers: Optional[list] = None
        if self.directories is not None:
            from torch.utils.tensorboard import SummaryWriter
            self.writers = [SummaryWriter(log_dir=d) for d in self.directories]

    @classmethod
    def for_trainer(cls, trainer, seeds: Sequence[int],
                    template: str = DEFAULT_MEMBER_LOG_DIR) -> Optional["MemberLogger"]:
        """The logger for this Trainer: None off global rank 0 or without any logger; member
        directories from ``template`` (see :func:`check_member_log_dir`) for the first
        TensorBoardLogger; else the prefixed fallback through ``trainer.loggers``."""
        from pytorch_lightning.loggers import TensorBoardLogger
        if not trainer.is_global_zero or not trainer.loggers:
            return None
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if tb is None:
            return cls(seeds, None, trainer.loggers)
        version = tb.version if isinstance(tb.version, str) else f"version_{tb.version}"
        dirs = [os.path.normpath(template.format(
            log_dir=tb.log_dir, save_dir=tb.save_dir, name=tb.name, version=version, seed=seed,
            member=s)) for s, seed in enumerate(seeds)]
        return cls(seeds, dirs)

    def log(self, member: int, metrics: Mapping[str, float], step: int) -> None:
        """Scalars of one member (tag → float) at ``step``; the callbacks' tags under their
        TensorBoard group in the member's run (:mod:`lightning_sig.gradients.tag_groups`)."""
        if self.writers is not None:
            writer = self.writers[member]
            for tag, value in metrics.items():
                writer.add_scalar(tensorboard_tag(tag), value, global_step=step)
            return
        prefixed = {f"seed_{self.seeds[member]}/{k}": v for k, v in metrics.items()}
        for logger in self.loggers:
            logger.log_metrics(prefixed, step=step)

    def log_stacked(self, metrics: Mapping[str, Tensor], step: int,
                    extra: Optional[Mapping[str, float]] = None) -> None:
        """Tag → (S,) tensor of all members, one host transfer; ``extra`` is the same for all
        members (e.g. ``{"epoch": 3}``)."""
        tags = list(metrics)
        table = torch.stack([metrics[t].detach().float().reshape(-1) for t in tags], 1).tolist()
        for member, row in enumerate(table):  # row: one value per tag
            values = dict(zip(tags, row))
            values.update(extra or {})
            self.log(member, values, step)

    def histogram(self, member: int, tag: str, values: Tensor, step: int) -> bool:
        """A histogram of ``values`` for one member; False (nothing written) without writers."""
        if self.writers is None:
            return False
        self.writers[member].add_histogram(tag, values, global_step=step)
        return True

    def flush(self) -> None:
        for writer in self.writers or []:
            writer.flush()
        for logger in self.loggers:
            logger.save()

    def close(self) -> None:
        for writer in self.writers or []:
            writer.close()


class MemberEvalMetrics:
    """Each member's cross-entropy and accuracy over an evaluation epoch (all its batches).

    ``loss`` = Σ CE / N (nats), ``acc`` = correct / N (fraction), per member: the values a
    separate run logs as ``val/loss`` and ``val/acc`` (Lightning's batch-size-weighted mean
    of batch means, torchmetrics' micro accuracy).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the epoch's sums (called after each validation/test epoch)."""
        self.loss_sum: Optional[Tensor] = None  # (S,) float64
        self.correct: Optional[Tensor] = None  # (S,) int64
        self.count = 0

    def update(self, logits: Tensor, y: Tensor) -> None:
        """logits (S, B, K), labels (B,) shared by all members or (S, B)."""
        y = y.expand(logits.shape[:2])
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                               reduction="none").view(y.shape)
        loss, correct = ce.double().sum(1), (logits.argmax(-1) == y).sum(1)
        if self.loss_sum is None:
            self.loss_sum, self.correct = loss, correct
        else:
            self.loss_sum, self.correct = self.loss_sum + loss, self.correct + correct
        self.count += y.shape[1]

    def compute(self) -> Dict[str, Tensor]:
        """``{"loss": (S,), "acc": (S,)}``; raises RuntimeError before any update."""
        if self.loss_sum is None:
            raise RuntimeError("MemberEvalMetrics.compute() called before update().")
        return {"loss": self.loss_sum / self.count, "acc": self.correct.double() / self.count}

