"""Where the GradientQuantileCallback writes besides its scalars: the custom-scalars layout at
fit start (:mod:`lightning_sig.gradients.layout`), the log10|g| histograms, the per-epoch
depth-profile image (:mod:`lightning_sig.gradients.depth_image`) and its one-time warnings. A
base of :class:`~lightning_sig.lightning.grad_callback.GradientQuantileCallbackMixin`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List

import numpy as np
from lightning_utilities.core.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_sig._compat import is_tensorboard_logger
from lightning_sig.gradients.buffer import EpochSums, GradientSnapshot
from lightning_sig.gradients.depth_image import depth_profile, depth_profile_image
from lightning_sig.gradients.events import prefixed_tags
from lightning_sig.gradients.histograms import segment_log10_histograms
from lightning_sig.gradients.layout import custom_scalars_layout
from lightning_sig.gradients.saturation import monitored_activations
from lightning_sig.lightning.saturation import SaturationMonitorMixin
from lightning_sig.nn.member_protocol import member_seeds_of

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["GradientOutputsMixin", "DATA"]

#: Keys of the data-loss gradient g − ∇penalty: member s's is -1 - s (so DATA = -1 without
#: members); the total gradient's are the members 0, 1, ...
DATA = -1


class GradientOutputsMixin:
    """The output half of the callback (state in ``_events``, ``_context``, ``_warned``; see
    the callback)."""

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the custom-scalars layout (:mod:`lightning_sig.gradients.layout`) to each
        TensorBoardLogger, rank 0 only, once per fit (so also on resume)."""
        loggers = [lg for lg in trainer.loggers if is_tensorboard_logger(lg)]
        if not trainer.is_global_zero or not loggers or member_seeds_of(pl_module):
            return
        layers = list(dict.fromkeys(n for n, p in self._named_parameters(pl_module)
                                    if p.requires_grad)) if self.per_layer else []
        data = self.data_gradient and bool(getattr(pl_module, "penalty_gradients", dict)())
        monitor = any(isinstance(cb, SaturationMonitorMixin) for cb in trainer.callbacks)
        acts = [n for n, _ in monitored_activations(pl_module)] if monitor else []
        for logger in loggers:
            layout = custom_scalars_layout(["global"] + layers, self.quantiles, data, acts,
                                           lambda t: prefixed_tags(logger, [t])[0],
                                           self.epoch_aggregates)
            logger.experiment.add_custom_scalars(layout)

    def _log_depth_image(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int,
                         sums: EpochSums) -> None:
        """``grad_depth/abs_q50``: the epoch's median |g| per layer in model order, an image
        (TensorBoard writers only; :mod:`lightning_sig.gradients.depth_image`)."""
        writers = self._events.histogram_writers(trainer, pl_module, member)
        if not writers or "abs_q50" not in self.names:
            return
        layers, values = depth_profile(sums.names, sums.means(), self.names)
        image = depth_profile_image(layers, values, f"epoch {trainer.current_epoch}: median |g| "
                                                    f"per layer")  # (3, H, W) uint8
        for writer, logger in writers:
            tag = "grad_depth/abs_q50" if logger is None else \
                prefixed_tags(logger, ["grad_depth/abs_q50"])[0]
            writer.add_image(tag, image, trainer.global_step, dataformats="CHW")

    @staticmethod
    def _prefix(member: int) -> str:
        return "grad_data" if member < 0 else "grad"

    def _emit(self, member: int, prefix: str, names: List[str], values: List[float],
              step: int) -> None:
        """Write one step's G × K values (row-major) to the loggers."""
        member = member if member >= 0 else DATA - member  # data-gradient key -1 - s -> s
        self._events.scalars(*self._context, member, prefix, names, values, step)

    def _log_histograms(self, member: int, snap: GradientSnapshot, flat: Tensor,
                        step: int) -> None:
        writers = self._events.histogram_writers(*self._context, member)
        if not writers:
            if self._context[0].loggers:
                self._warn_once("hist", "GradientQuantileCallback: histograms need a "
                                "TensorBoardLogger; skipping them (scalars are still logged).")
            return
        sizes = snap.sizes if self.per_layer else (sum(snap.sizes),)
        names = snap.names if self.per_layer else snap.names[:1]
        limits = np.asarray(writers[0][0].default_bins)  # TensorBoard's "tensorflow" buckets
        histograms = segment_log10_histograms(flat, sizes, limits,
                                              with_total=self.per_layer)
        self._events.histograms(writers, [f"grad_hist/{name}/log10_abs" for name in names],
                                histograms, step)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message)
