"""NonFiniteLossGuard: stop (or knowingly continue) a run whose training loss becomes NaN or ±inf,
without letting a diverged model overwrite the last good checkpoint.

Why: a diverged step (e.g. a far too large learning rate) turns the weights into NaN through the
optimizer update, and Lightning's ``ModelCheckpoint`` would then save the NaN model at the next
epoch end, deleting the previous ("top-k" with k = 1, or ``last.ckpt``) checkpoint. Lightning's
``EarlyStopping(check_finite=True)`` only looks at a validation metric, once per epoch, and does
not protect checkpoints. This callback checks the training loss (and, by default, the
parameters) after every optimizer step, before any ``ModelCheckpoint`` hook of the same step runs
(Lightning always calls checkpoint callbacks last), and switches checkpointing off from then on.
The paper (Ven & Lederer, arXiv 2106.02260) does not discuss diverged runs; this is tooling.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import torch
from lightning_utilities.core.rank_zero import rank_zero_warn
from typing_extensions import override

from lightning_sig.lightning.namespace import check_namespace
from torch import Tensor
from lightning_sig.lightning.mixin_bases import CallbackBase

__all__ = ["NonFiniteLossGuardMixin", "ACTIONS"]

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

#: Valid values of ``NonFiniteLossGuard(action=...)``.
ACTIONS = ("stop", "continue")


class NonFiniteLossGuardMixin(CallbackBase):
    """Stop or continue training when the loss becomes non-finite; keep the last good checkpoint.

    After every training batch (``on_train_batch_end``, i.e. after the optimizer step) the
    callback checks that the loss returned by ``training_step`` is finite and, with
    ``check_parameters=True``, that every parameter is finite (a finite loss can still produce
    an overflowing update). Under DDP the decision is reduced over ranks (any rank non-finite
    means all stop), so ranks never disagree. On the first non-finite step it

    * warns once, naming the global step, the loss value and the checkpoint kept;
    * switches every ``ModelCheckpoint`` of the Trainer off for the rest of the run
      (``save_top_k = 0``, ``save_last = False``, ``save_on_exception = False``; the original
      values are restored at ``teardown``), so no checkpoint of the diverged model is written
      and none written before is deleted: the last good checkpoint stays intact on disk;
    * with ``action="stop"``, sets ``trainer.should_stop`` (Lightning then ends the epoch,
      runs its usual end-of-fit validation and returns normally; ``min_epochs``/``min_steps``
      can delay the stop, as for ``EarlyStopping``);
    * with ``action="continue"``, keeps training (e.g. to watch the non-finite counts of
      :class:`~lightning_sig.GradientQuantileCallback`); checkpointing stays off.

    Attributes:
        nonfinite_steps: global steps (counted before the step's update, as Lightning's
            ``trainer.global_step`` inside ``training_step``) whose loss or parameters were
            non-finite, in order.
        tripped_step: the first of them, or None.

    Logged metrics (per step, through ``pl_module.log``):
        ``train/nonfinite_steps``: the number of non-finite steps so far (count).

    Example::

        trainer = pl.Trainer(callbacks=[GradientQuantileCallback(), NonFiniteLossGuard("stop")])

        # LightningCLI config
        trainer:
          callbacks:
            - class_path: lightning_sig.NonFiniteLossGuard
              init_args: {action: stop}
    """

    def __init__(self, action: str = "stop", check_parameters: bool = True) -> None:
        """Check and keep ``action`` and ``check_parameters``.

        Args:
            action: ``"stop"`` (default) or ``"continue"``.
            check_parameters: also treat a non-finite parameter as a non-finite step (default
                True; costs one ``isfinite`` reduction per parameter tensor per step).

        Raises:
            ValueError: ``action`` not one of ``"stop"``, ``"continue"`` (names the value).
        """
        super().__init__()
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(map(repr, ACTIONS))}, "
                             f"got {action!r}.")
        self.action, self.check_parameters = action, bool(check_parameters)
        self.nonfinite_steps: List[int] = []
        self.tripped_step: Optional[int] = None
        self._saved_settings: List[Tuple[ModelCheckpoint, Dict[str, Any]]] = []
        self._step_at_start, self._tripped = 0, False  # per fit

    @staticmethod
    def _loss(outputs: Any) -> Optional[Tensor]:
        """The loss in ``training_step``'s output (a tensor or a mapping with ``"loss"``)."""
        if isinstance(outputs, Mapping):
            outputs = outputs.get("loss")
        return outputs.detach() if isinstance(outputs, Tensor) else None

    def _params_finite(self, pl_module: pl.LightningModule) -> bool:
        flags = [torch.isfinite(p).all() for p in pl_module.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_namespace(self, trainer)

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._step_at_start = trainer.global_step

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = self._loss(outputs)
        bad = loss is not None and not bool(torch.isfinite(loss).all())
        if self.check_parameters and not bad:
            bad = not self._params_finite(pl_module)
        bad = bool(trainer.strategy.reduce_boolean_decision(bad, all=False))
        if bad:
            self.nonfinite_steps.append(self._step_at_start)
            if not self._tripped:  # first non-finite step of this fit
                self._trip(trainer, self._step_at_start, loss)
            if self.action == "stop":
                trainer.should_stop = True
        pl_module.log("train/nonfinite_steps", float(len(self.nonfinite_steps)),
                      on_step=True, on_epoch=False)

    def _trip(self, trainer: pl.Trainer, step: int, loss: Optional[Tensor]) -> None:
        self.tripped_step = step if self.tripped_step is None else self.tripped_step
        self._tripped = True
        kept = dict.fromkeys(p for cb in trainer.checkpoint_callbacks
                             for p in (cb.best_model_path, cb.last_model_path) if p)
        for cb in trainer.checkpoint_callbacks:
            self._saved_settings.append((cb, {"save_top_k": cb.save_top_k,
                                              "save_last": cb.save_last,
                                              "save_on_exception": cb.save_on_exception}))
            cb.save_top_k, cb.save_last, cb.save_on_exception = 0, False, False
        value = math.nan if loss is None or loss.numel() != 1 else float(loss)
        what = "stopping training" if self.action == "stop" else "continuing (action='continue')"
        rank_zero_warn(
            f"NonFiniteLossGuard: non-finite training loss ({value}) or parameters at global "
            f"step {step} (epoch {trainer.current_epoch}); {what}. Checkpointing is off for the "
            f"rest of this run; the last checkpoint written before is kept: "
            f"{', '.join(kept) or 'none was written'}.")

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Give the ModelCheckpoint callbacks their original settings back."""
        for cb, settings in self._saved_settings:
            for name, value in settings.items():
                setattr(cb, name, value)
        self._saved_settings, self._tripped = [], False
