"""Where the GradientQuantileCallback's results go: scalars (one TensorBoard event per step,
``log_metrics`` for other loggers, a member's own run for many-seeds modules), the log10|g|
histograms, the per-epoch depth-profile image (:mod:`lightning_sig.gradients.depth_image`),
the custom-scalars layout at fit start (:mod:`lightning_sig.gradients.layout`) and one-time
warnings. Called on the training thread only."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from lightning_utilities.core.rank_zero import rank_zero_info, rank_zero_warn

from lightning_sig._compat import is_tensorboard_logger
from lightning_sig.gradients.depth_image import DepthProfileDrawer, depth_profile, \
    import_drawing
from lightning_sig.gradients.epoch_sums import EpochSums
from lightning_sig.gradients.events import GradientEventWriter, prefixed_tags
from lightning_sig.gradients.layout import custom_scalars_layout
from lightning_sig.gradients.log10_band import BAND_LEVELS, band_columns, log10_band_tag, \
    log10_band_values
from lightning_sig.members.interface import member_seeds_of
from lightning_sig.speedups import event_crc_is_slow

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["GradientWriter"]

_CRC_HINTED = False  # GradientWriter.hint_event_crc said it in this process


class GradientWriter:
    """The callback's outputs.

    Args:
        statistics: the statistic names of a group (``abs_q50``, ...), in table column order.
        layer_statistics: those written for layers (None: all); ``global`` gets all.
        log10: also the log10 band tags (:mod:`lightning_sig.gradients.log10_band`), where the
            statistics hold the quartiles and the median.
    """

    def __init__(self, statistics: Sequence[str], layer_statistics: Optional[Sequence[str]] = None,
                 log10: bool = True) -> None:
        self.statistics = list(statistics)
        self._layer_columns = None if layer_statistics is None else \
            [self.statistics.index(k) for k in layer_statistics]
        self._band = band_columns(self.statistics) if log10 else None
        self._tags: Dict[Tuple[str, Tuple[str, ...]], tuple] = {}  # (tags, picked, band)
        self._events = GradientEventWriter(self.statistics)
        self._step_events = GradientEventWriter(["every_k", "count"])
        self._warned: set = set()
        self._drawer: Optional[DepthProfileDrawer] = None  # the depth images' figure, reused

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message)

    @staticmethod
    def hint_event_crc(trainer: pl.Trainer) -> bool:
        """Say once per process (info) where a TensorBoardLogger checksums its records in pure
        Python although ``lightning_sig.enable_speedups()`` could switch it to C (an explicit
        process-wide choice left to the user: this only says so). True if it said so."""
        global _CRC_HINTED
        if _CRC_HINTED or not any(is_tensorboard_logger(lg) for lg in trainer.loggers) or \
                not event_crc_is_slow():
            return False
        _CRC_HINTED = True
        rank_zero_info(
            "GradientQuantileCallback: TensorBoard checksums every event record in pure Python "
            "in this process (~600 µs per step's record of the callback's scalars, in its "
            "writer thread, holding the GIL; 1-2 % of a paper-net step at log_every_n_steps=50 "
            "in benchmarks/RESULTS.md). lightning_sig.enable_speedups() switches every "
            "TensorBoard writer to the C CRC-32C (the same files; train.py does this); "
            "lightning_sig.disable_speedups() undoes it.")
        return True

    def layout(self, trainer: pl.Trainer, groups: List[str], levels: Sequence[float],
               data: bool, activations: List[str], epoch: bool) -> None:
        """The custom-scalars layout for each TensorBoardLogger (``groups``: "global" and the
        layers; ``data``: the ``grad_data`` charts too; ``activations``: the
        SaturationMonitor's layers)."""
        for logger in trainer.loggers:
            if is_tensorboard_logger(logger):
                tag: Callable[[str], str] = lambda t, lg=logger: prefixed_tags(lg, [t])[0]
                logger.experiment.add_custom_scalars(custom_scalars_layout(
                    groups, levels, data, activations, tag, epoch, self._band is not None))

    def scalars(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int,
                prefix: str, names: Sequence[str], values: Sequence[float], step: int) -> None:
        """One step's G × K ``values`` (row-major; a list or a float64 array) as
        ``<prefix>/<group>/<statistic>`` (layers: the layer statistics) and
        ``|g|/<prefix>/<group>/log10_q<p>``, one event."""
        tags, picked, band = self._layout(prefix, tuple(names))
        flat = np.asarray(values, dtype=np.float64).reshape(-1)  # (G·K,)
        out = flat[picked] if band is None else \
            np.concatenate([flat[picked], log10_band_values(flat[band])])
        self._events.write(trainer, pl_module, member, tags, out.tolist(), step)

    def _layout(self, prefix: str, names: Tuple[str, ...]
                ) -> Tuple[List[str], np.ndarray, Optional[np.ndarray]]:
        """(tags, positions of their values in the row-major G × K table, positions of the
        band's values or None) of a step's event, cached per prefix and groups."""
        key = (prefix, names)
        if key not in self._tags:
            width, every = len(self.statistics), list(range(len(self.statistics)))
            columns = [(g, every if name == "global" or self._layer_columns is None
                        else self._layer_columns) for g, name in enumerate(names)]
            tags = [f"{prefix}/{names[g]}/{self.statistics[c]}" for g, cols in columns
                    for c in cols]
            picked = np.array([g * width + c for g, cols in columns for c in cols], np.int64)
            band = None
            if self._band is not None:
                tags += [log10_band_tag(prefix, name, q) for name in names for q in BAND_LEVELS]
                band = np.array([g * width + c for g in range(len(names)) for c in self._band],
                                np.int64)
            self._tags[key] = (tags, picked, band)
        return self._tags[key]

    def epoch_steps(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int,
                    every_k: int, count: int) -> None:
        """``grad_epoch_steps/global/{every_k,count}`` at the epoch end."""
        self._step_events.scalars(trainer, pl_module, member, "grad_epoch_steps", ["global"],
                                  [float(every_k), float(count)], trainer.global_step)

    def histogram_limits(self, trainer: pl.Trainer,
                         pl_module: pl.LightningModule) -> Optional[np.ndarray]:
        """TensorBoard's bucket edges of the histograms, None (with one warning if there are
        loggers) when no histogram writer exists."""
        writers = self._events.histogram_writers(trainer, pl_module, 0)
        if writers:
            return np.asarray(writers[0][0].default_bins)
        if trainer.loggers:
            self.warn_once("hist", "GradientQuantileCallback: histograms need a "
                           "TensorBoardLogger; skipping them (scalars are still logged).")
        return None

    def histograms(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int,
                   names: Sequence[str], histograms: list, step: int) -> None:
        """``grad_hist/<group>/log10_abs`` of one step (None entries skipped)."""
        writers = self._events.histogram_writers(trainer, pl_module, member)
        if writers:
            self._events.histograms(writers, [f"grad_hist/{n}/log10_abs" for n in names],
                                    histograms, step)

    def prepare_depth_image(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                            layers: Sequence[str]) -> None:
        """Where :meth:`depth_image` will draw (a TensorBoard writer and ``abs_q50`` logged):
        import the drawing modules (0.34 s once per process) and draw the layer axis of
        ``layers`` (~35 ms, :meth:`DepthProfileDrawer.prepare`), at the start of training
        instead of inside the first epoch."""
        if self._depth_writers(trainer, pl_module, 0):
            import_drawing()
            self._drawer = self._drawer or DepthProfileDrawer()
            self._drawer.prepare(layers)

    def _depth_writers(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int
                       ) -> list:
        """Where the depth image goes: the histogram writers, none unless ``abs_q50`` is
        logged."""
        if "abs_q50" not in self.statistics:
            return []
        return self._events.histogram_writers(trainer, pl_module, member)

    def depth_image(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int,
                    sums: EpochSums) -> None:
        """``grad_depth/abs_q50``: the epoch's median |g| per layer in model order, an image
        (TensorBoard writers only)."""
        writers = self._depth_writers(trainer, pl_module, member)
        if not writers:
            return
        layers, values = depth_profile(sums.names, sums.means(), self.statistics)
        self._drawer = self._drawer or DepthProfileDrawer()
        image = self._drawer.draw(layers, values, f"epoch {trainer.current_epoch}: median |g| "
                                                  f"per layer")  # (3, H, W) uint8
        for writer, logger in writers:
            tag = prefixed_tags(logger, ["grad_depth/abs_q50"])[0]
            writer.add_image(tag, image, trainer.global_step, dataformats="CHW")

    @staticmethod
    def writes_late(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Whether scalars may reach the loggers a few steps after their step: TensorBoard
        (each event carries its step) and member runs; other loggers get them at once."""
        return bool(member_seeds_of(pl_module)) or all(
            is_tensorboard_logger(logger) for logger in trainer.loggers)
