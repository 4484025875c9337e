"""The many-seeds half of our LightningModules (``num_members = S > 1``).

:class:`MemberStepsMixin` is a base of :class:`~lightning_sig.lightning.modules.SigmoidNetModuleMixin`:
the training step of S members at once (each member's own CE and l2 term, summed for
Lightning), their evaluation metrics and loggers (each member in its own run directory), and
the :mod:`lightning_sig.members.interface` interface (``member_gradients`` and the optional
``member_gradient_rows``) through which the gradient callback treats each member as a separate run.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from lightning_sig._compat import attached_trainer, trainer_log_step, training_batch_logs_now
from lightning_sig.members.gradients import MemberGradientRows, member_gradient_rows, \
    member_layer_gradients
from lightning_sig.members.loggers import MemberLogger
from lightning_sig.members.networks import check_member_trainer, member_l2_penalty, member_losses
from lightning_sig.lightning.mixin_bases import ModuleBase

__all__ = ["MemberStepsMixin"]


class MemberStepsMixin(ModuleBase):
    """Members' training step, evaluation logging and setup; needs the module's ``net``,
    ``num_members``, ``member_seeds``, ``member_logger``, ``_member_eval``, ``l2_strength``,
    ``penalized_parameters()`` and ``penalty_gradients()``."""

    def member_gradients(self) -> List[Dict[str, List[Tensor]]]:
        """Members (:mod:`lightning_sig.members.interface`): per member, layer name (as a
        single network's) → that member's slice of each parameter gradient of the layer."""
        return member_layer_gradients(self, self.num_members)

    def member_gradient_rows(self, data: bool = False,
                             layer_parameters: Optional[Sequence[Tuple[str, Tensor]]] = None
                             ) -> Optional[MemberGradientRows]:
        """Members (optional part of :mod:`lightning_sig.members.interface`): every member's
        flat gradient as a row of one (S, N) tensor with the layout of :meth:`member_gradients`
        (:func:`~lightning_sig.members.gradients.member_gradient_rows`); with ``data`` also those of
        the data-loss gradient g − r·θ (Sec. 2.2; ``data`` None when r = 0).
        ``layer_parameters``: the caller's cached (layer name, parameter) pairs in model order,
        or None to walk the parameters. A subclass overriding :meth:`member_gradients` must
        override this too, or set it to None (the callback then slices per member)."""
        return member_gradient_rows(self, self.num_members,
                                    self.penalty_gradients() if data else None, layer_parameters)

    def _member_training_step(self, batch: Tuple[Tensor, Tensor]) -> Tensor:
        """Σ_s (CE_s + r/2·Σθ_s²) for member batches x (S, B, 3, H, W), y (S, B)."""
        x, y = batch
        if x.dim() != 5 or x.shape[0] != self.num_members:
            raise ValueError(f"num_members={self.num_members} needs member batches "
                             f"(S, B, C, H, W), got shape {tuple(x.shape)}: use CIFAR10DataModule (set up by this "
                             f"module) or lightning_sig.lightning.data.MemberBatchSampler + MemberCollate.")
        logits = self(x)  # (S, B, K)
        data_loss = member_losses(logits, y)  # (S,)
        penalty = member_l2_penalty(self.penalized_parameters(), self.l2_strength)  # (S,)
        loss = data_loss + penalty
        if self.member_logger is not None and training_batch_logs_now(attached_trainer(self)):
            acc = (logits.argmax(-1) == y).float().mean(1)
            self.member_logger.log_stacked(
                {"train/loss": loss, "train/data_loss": data_loss, "train/l2_penalty": penalty,
                 "train/acc": acc}, trainer_log_step(self.trainer), {"epoch": self.current_epoch})
        return loss.sum()

    def _log_member_eval(self, stage: str) -> None:
        """Members: ``<stage>/loss`` and ``<stage>/acc`` of the epoch into each member's run."""
        metrics = self._member_eval[stage]
        if metrics.loss_sum is not None and self.member_logger is not None \
                and not self.trainer.sanity_checking:
            values = metrics.compute()
            self.member_logger.log_stacked({f"{stage}/loss": values["loss"], f"{stage}/acc":
                                            values["acc"]}, trainer_log_step(self.trainer),
                                           {"epoch": self.current_epoch})
        metrics.reset()

    def _setup_members(self) -> None:
        """Refuse coupling Trainer settings, give the DataModule the member seeds (when it has
        ``member_seeds`` unset), open the per-member loggers."""
        check_member_trainer(self.trainer, self.num_members)
        datamodule = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "member_seeds"):
            if datamodule.member_seeds is None:
                datamodule.member_seeds = list(self.member_seeds)
            elif list(datamodule.member_seeds) != list(self.member_seeds):
                raise ValueError(f"datamodule member_seeds={datamodule.member_seeds} differ from "
                                 f"the module's member_seeds={self.member_seeds}.")
        if self.member_logger is None:
            self.member_logger = MemberLogger.for_trainer(self.trainer, self.member_seeds,
                                                          self.hparams.member_log_dir)
