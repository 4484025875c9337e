"""GradientQuantileCallback: the paper's gradient statistics (bottom panels of Figures 1–4) for
any LightningModule, logged per optimizer step, per layer and globally, and per epoch.

The hook is ``on_before_optimizer_step``: after gradient accumulation, after AMP unscaling and
DDP's all-reduce, before clipping, i.e. exactly the gradient the optimizer will use. For our
modules with r > 0 that is the gradient of the regularized objective CE + r/2·Σθ² (Sec. 2.2).
The maths lives in :mod:`lightning_sig.grad_stats` and :mod:`lightning_sig.grad_segments`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from lightning_sig.grad_segments import SEGMENTED_MAX_NUMEL, segment_statistics
from lightning_sig.grad_stats import DEFAULT_QUANTILES, DEFAULT_VANISHING_THRESHOLD, \
    check_quantile_levels, check_vanishing_threshold, gradient_statistics_tensor, \
    log10_abs_for_histogram, statistic_names

__all__ = ["GradientQuantileCallback"]


def _check_interval(name: str, value: Optional[int]) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    return value


def _write_scalar_summary(logger: TensorBoardLogger, metrics: Dict[str, float], step: int) -> None:
    """Write all scalars of a step as one TensorBoard event (one ``Summary`` with many values).

    Equivalent to ``logger.log_metrics`` (same tags, steps and values for every reader), but one
    event instead of one per scalar: ``add_scalar`` costs about 60 µs a call, which for ~150
    tags would exceed the whole training step of the paper's networks.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in metrics.items()])
    logger.experiment._get_file_writer().add_summary(summary, step)  # torch's SummaryWriter


class GradientQuantileCallback(Callback):
    r"""Log exact coordinatewise statistics of the gradient g, globally and for every layer.

    At every optimizer step the callback computes, for the vector g of all trainable
    parameters that have a gradient ("global") and for each module owning parameters (a
    "layer", named by its qualified name, e.g. ``net.features.0``), the quantiles of |g_j|,
    mean |g_j|, root mean square, L2 norm, the fraction of coordinates with |g_j| ≤ threshold
    and the number of non-finite coordinates (statistics are over the finite coordinates).
    Parameters with ``grad is None`` (frozen or unused) are skipped. Under DDP the gradient is
    the synchronized one and everything happens on global rank 0 only.

    Args:
        quantiles: levels q in [0, 1] of the |g_j| quantiles (numpy "linear" interpolation,
            exact for any size); default (0, 0.25, 0.5, 0.75, 1).
        vanishing_threshold: t ≥ 0 for ``vanishing_frac``; default 1e-8 (Adam's eps, an
            assumption: the paper gives no number).
        signed: also log the quantiles of the signed values g_j.
        per_layer: also log each layer's statistics (default True).
        log_every_n_steps: interval of the per-step scalars in optimizer steps; None (default)
            takes the Trainer's ``log_every_n_steps``. Step s is logged when (s + 1) % n == 0,
            the steps at which Lightning writes the module's ``train/*`` metrics.
        histogram_every_n_steps: interval of the log10|g| histograms (TensorBoardLogger only);
            None (default) is 10 × the scalar interval; 0 is refused, use ``histograms=False``.
        histograms: log histograms at all (default True).
        epoch_aggregates: log the mean over each epoch's optimizer steps of every statistic
            (steps where a statistic is undefined, e.g. no finite coordinate, are left out).

    Raises:
        ValueError: a quantile level outside [0, 1] or not a number, a negative or non-finite
            threshold, an interval that is not a positive integer (each message names the value).

    Logged metrics (step = ``trainer.global_step`` before the update; ``<g>`` is ``global`` or a
    layer name; gradient values in loss units per parameter unit):
        - ``grad/<g>/abs_q<p>``: the p-th percentile of |g_j| (``abs_q0`` min, ``abs_q100`` max)
        - ``grad/<g>/abs_mean``, ``grad/<g>/rms``, ``grad/<g>/l2_norm``: mean |g_j|,
          sqrt(mean g_j²), sqrt(Σ g_j²)
        - ``grad/<g>/vanishing_frac``: fraction (0–1) of finite coordinates with |g_j| ≤ t
        - ``grad/<g>/nonfinite_count``: number of NaN/±inf coordinates (count)
        - ``grad/<g>/q<p>``: percentiles of the signed g_j (only with ``signed=True``)
        - ``grad_epoch/<g>/<stat>``: the epoch means of the above, at the end of each training
          epoch (one point per epoch, for figures)
        - ``grad_hist/<g>/log10_abs``: histogram of log10|g_j| over finite coordinates (zeros at
          the float32 floor, about −37.9), TensorBoardLogger only

    Example::

        trainer = pl.Trainer(callbacks=[GradientQuantileCallback(quantiles=(0.1, 0.5, 0.9))])

        # or in a LightningCLI config
        trainer:
          callbacks:
            - class_path: lightning_sig.GradientQuantileCallback
              init_args: {log_every_n_steps: 50}
    """

    def __init__(self, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                 vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD, signed: bool = False,
                 per_layer: bool = True, log_every_n_steps: Optional[int] = None,
                 histogram_every_n_steps: Optional[int] = None, histograms: bool = True,
                 epoch_aggregates: bool = True) -> None:
        super().__init__()
        self.quantiles = check_quantile_levels(quantiles)
        self.vanishing_threshold = check_vanishing_threshold(vanishing_threshold)
        self.signed, self.per_layer = bool(signed), bool(per_layer)
        self.log_every_n_steps = _check_interval("log_every_n_steps", log_every_n_steps)
        self.histogram_every_n_steps = _check_interval("histogram_every_n_steps",
                                                       histogram_every_n_steps)
        self.histograms, self.epoch_aggregates = bool(histograms), bool(epoch_aggregates)
        self.names = [n for n in statistic_names(self.quantiles, self.signed) if n != "numel"]
        self._columns = [i for i, n in enumerate(statistic_names(self.quantiles, self.signed))
                         if n != "numel"]
        # member (0 without num_members) -> (group names, NaN-free sums (G, K), counts (G, K))
        self._epoch: Dict[int, Tuple[List[str], Tensor, Tensor]] = {}
        self._epoch_index: Optional[int] = None  # epoch the sums belong to
        self._warned: set = set()

    # ----------------------------------------------------------------- gathering gradients
    @staticmethod
    def _layers(pl_module: pl.LightningModule) -> Dict[str, List[Tensor]]:
        """Layer name → gradients (not None) of its own trainable parameters, in model order."""
        layers: Dict[str, List[Tensor]] = {}
        for name, p in pl_module.named_parameters():
            if p.requires_grad and p.grad is not None:
                layers.setdefault(name.rpartition(".")[0] or "<root>", []).append(p.grad)
        return layers

    def _statistics(self, layers: Dict[str, List[Tensor]]) -> Tuple[List[str], Tensor]:
        """Names (global first) and their (G, K) statistics, K = len(self.names)."""
        grads = [g.detach().reshape(-1) for gs in layers.values() for g in gs]  # (n_i,) each
        total = sum(g.numel() for g in grads)
        dtype = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
        args = (self.quantiles, self.vanishing_threshold, self.signed)
        if total <= SEGMENTED_MAX_NUMEL:
            flat = torch.cat([g.to(dtype) for g in grads])  # (N,)
            sizes = [total]
            if self.per_layer:  # global and layers in one call: flat twice, (2N,)
                flat = torch.cat([flat, flat])
                sizes += [sum(g.numel() for g in gs) for gs in layers.values()]
            table = segment_statistics(flat, sizes, *args)
        else:  # big models: per-vector path, a few copies of the gradient at most
            groups = [grads] + (list(layers.values()) if self.per_layer else [])
            table = torch.stack([gradient_statistics_tensor(g, *args) for g in groups])
        names = ["global"] + (list(layers) if self.per_layer else [])
        return names, table[:, self._columns]

    @classmethod
    def _gradient_sets(cls, pl_module: pl.LightningModule) -> List[Dict[str, List[Tensor]]]:
        """One layer → gradients dict, or one per member for our ``num_members > 1`` modules
        (each with a single network's layer names, so members get the tags of separate runs)."""
        seeds = getattr(pl_module, "member_seeds", None)
        if seeds:
            from lightning_sig.members import member_layer_gradients
            return member_layer_gradients(pl_module, len(seeds))
        return [cls._layers(pl_module)]

    # ----------------------------------------------------------------------- hooks
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_index != trainer.current_epoch:  # kept when resuming mid-epoch
            self._epoch = {}
            self._epoch_index = trainer.current_epoch

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        every = self.log_every_n_steps or trainer.log_every_n_steps
        log_now = (step + 1) % every == 0  # as Lightning's own train/* logging
        if not (log_now or self.epoch_aggregates):
            return
        gradient_sets = self._gradient_sets(pl_module)
        if not any(gradient_sets):
            self._warn_once("no_grad", "GradientQuantileCallback: no trainable parameter has a "
                            "gradient at this optimizer step; nothing is logged.")
            return
        hist_every = self.histogram_every_n_steps or 10 * every
        hist_now = log_now and self.histograms and (step + 1) % hist_every == 0
        for member, layers in enumerate(gradient_sets):
            names, table = self._statistics(layers)
            if self.epoch_aggregates:
                self._accumulate(member, names, table)
            if log_now:
                self._emit(trainer, pl_module, member, "grad", names, table, step)
            if hist_now:
                self._log_histograms(trainer, pl_module, member, layers, step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for member, (names, total, count) in self._epoch.items():
            mean = total / count  # NaN where never defined (0 / 0)
            self._emit(trainer, pl_module, member, "grad_epoch", names, mean, trainer.global_step)

    # --------------------------------------------------------------------- helpers
    def _accumulate(self, member: int, names: List[str], table: Tensor) -> None:
        defined = ~torch.isnan(table)
        previous = self._epoch.get(member)
        if previous is None or previous[0] != names:
            if previous is not None:  # the set of layers with gradients changed
                self._warn_once("groups", "GradientQuantileCallback: the layers with gradients "
                                "changed within an epoch; epoch means restart from this step.")
            previous = (names, torch.zeros_like(table), torch.zeros_like(table))
            self._epoch[member] = previous
        previous[1].add_(torch.where(defined, table, 0.0))
        previous[2].add_(defined)

    def _emit(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int, prefix: str,
              names: List[str], table: Tensor, step: int) -> None:
        values = table.tolist()  # the only host transfer of the step
        metrics = {f"{prefix}/{g}/{k}": v for g, row in zip(names, values)
                   for k, v in zip(self.names, row)}
        if getattr(pl_module, "member_seeds", None):  # member s -> its own run directory
            if pl_module.member_logger is not None:
                pl_module.member_logger.log(member, metrics, step)
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                _write_scalar_summary(logger, metrics, step)
            else:
                logger.log_metrics(metrics, step=step)

    def _log_histograms(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int,
                        layers: Dict[str, List[Tensor]], step: int) -> None:
        groups = {"global": [g for gs in layers.values() for g in gs]}
        if self.per_layer:
            groups.update(layers)
        member_logger = getattr(pl_module, "member_logger", None)
        if getattr(pl_module, "member_seeds", None):
            writers = [] if member_logger is None or member_logger.writers is None else \
                [member_logger.writers[member]]
        else:
            writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not writers:
            if trainer.loggers:
                self._warn_once("hist", "GradientQuantileCallback: histograms need a "
                                "TensorBoardLogger; skipping them (scalars are still logged).")
            return
        for name, grads in groups.items():
            values = log10_abs_for_histogram(grads)
            if values.numel() == 0:  # TensorBoard rejects empty input: nothing finite to show
                continue
            for writer in writers:
                writer.add_histogram(f"grad_hist/{name}/log10_abs", values, global_step=step)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message)

    # ------------------------------------------------------------------ state (resume)
    def state_dict(self) -> Dict[str, Any]:
        return {"epoch": {m: (list(n), t, c) for m, (n, t, c) in self._epoch.items()},
                "epoch_index": self._epoch_index}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._epoch = {int(m): (list(n), t, c) for m, (n, t, c) in state_dict.get("epoch", {}).items()}
        self._epoch_index = state_dict.get("epoch_index")
