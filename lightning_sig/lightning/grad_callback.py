"""GradientQuantileCallback: the paper's gradient statistics (bottom panels of Figures 1–4) for
any LightningModule, logged per optimizer step, per layer and globally, and per epoch.

The hook is ``on_before_optimizer_step``: after gradient accumulation, after AMP unscaling and
DDP's all-reduce, before clipping, i.e. exactly the gradient the optimizer will use. For our
modules with r > 0 that is the gradient of the regularized objective CE + r/2·Σθ² (Sec. 2.2).
The parts are plain objects: :class:`~lightning_sig.lightning.grad_sources.GradientReader`
(what is read), :class:`~lightning_sig.gradients.stats_pipeline.StatisticsPipeline` (the copy,
the jobs, the worker thread; the maths in :mod:`lightning_sig.gradients.quantile_engine`) and
:class:`~lightning_sig.lightning.grad_writer.GradientWriter` (what is written).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from lightning_sig.gradients.epoch_steps import DEFAULT_EPOCH_BUDGET_NUMEL, check_budget, \
    check_interval, epoch_step_interval, logs_at_step
from lightning_sig.gradients.epoch_sums import EpochSums
from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.saturation import monitored_activations
from lightning_sig.gradients.stat_keys import DEFAULT_QUANTILES, DEFAULT_VANISHING_THRESHOLD, \
    check_layer_statistics, check_quantile_levels, check_vanishing_threshold, statistic_names
from lightning_sig.gradients.stats_pipeline import StatisticsPipeline
from lightning_sig.gradients.step_jobs import StatisticsJob, StepFlags
from lightning_sig.gradients.step_lane import StepLane
from lightning_sig.lightning.grad_sources import GradientReader
from lightning_sig.lightning.grad_writer import GradientWriter
from lightning_sig.lightning.namespace import check_namespace
from lightning_sig.lightning.saturation_monitor import SaturationMonitorMixin
from lightning_sig.members.interface import member_seeds_of
from lightning_sig.lightning.mixin_bases import CallbackBase

__all__ = ["GradientQuantileCallbackMixin", "logs_at_step"]

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

_SHARDED_STRATEGIES = ("FSDPStrategy", "ModelParallelStrategy")
_interval = functools.lru_cache(maxsize=16)(epoch_step_interval)  # called at every step


class GradientQuantileCallbackMixin(CallbackBase):
    r"""Log exact coordinatewise statistics of the gradient g, globally and for every layer.

    At the logged optimizer steps (and the steps of the epoch means) the callback computes, for
    the vector g of all trainable parameters that have a gradient ("global") and for each
    module owning parameters (a "layer", named by its qualified name, e.g. ``net.features.0``),
    the quantiles of |g_j|, mean |g_j|, root mean square, L2 norm, the fraction of coordinates
    with |g_j| ≤ threshold and the number of non-finite coordinates (statistics are over the
    finite coordinates). Parameters with ``grad is None`` (frozen or unused) are skipped. Under
    DDP the gradient is the synchronized one and everything happens on global rank 0 only;
    under FSDP (``FSDPStrategy``, ``ModelParallelStrategy``) every rank reads its shard and the
    exact statistics of the whole gradient come from summed histograms
    (:mod:`lightning_sig.gradients.sharded_stats`; no histograms there).

    Logged metrics (step = ``trainer.global_step`` before the update; also the last step when
    training stops early, as Lightning; ``<g>`` is ``global`` or a layer name; gradient values in
    loss units per parameter unit). In TensorBoard files they sit in the group ``|g|``
    (``|g|/grad/global/abs_q50``, ...: listed after the user's ``train/*`` and ``val/*``,
    :mod:`lightning_sig.gradients.tag_groups`); other loggers get the names below:
        - ``grad/<g>/abs_q<p>``: the p-th percentile of |g_j| (``abs_q0`` min, ``abs_q100`` max)
        - ``grad/<g>/abs_mean``, ``grad/<g>/rms``, ``grad/<g>/l2_norm``: mean |g_j|,
          sqrt(mean g_j²), sqrt(Σ g_j²)
        - ``grad/<g>/vanishing_frac``: fraction (0–1) of finite coordinates with |g_j| ≤ t
        - ``grad/<g>/nonfinite_count``: number of NaN/±inf coordinates (count)
        - ``grad/<g>/q<p>``: percentiles of the signed g_j (only with ``signed=True``)
        - ``grad_epoch/<g>/<stat>``: the epoch means of the above, at the end of each training
          epoch (a layer without a gradient at some steps is averaged over the others)
        - ``grad_epoch_steps/global/every_k``, ``.../count``: the k of ``epoch_budget_numel``
          and the number of steps the epoch means are over (steps)
        - ``grad_data/<g>/<stat>``, ``grad_data_epoch/<g>/<stat>``: the same statistics of the
          data-loss gradient g − ∇penalty (modules with ``penalty_gradients``, nonzero penalty)
        - ``|g|/<prefix>/<g>/log10_q25``, ``log10_q50``, ``log10_q75`` (``<prefix>``: ``grad``,
          ``grad_data``, ``grad_epoch``, ``grad_data_epoch``): log10 of those quantiles of |g|
          (log10 units; 0 at the float32 floor −37.93), with ``log10_band``
        - ``grad_hist/<g>/log10_abs``: histogram of log10|g_j| over finite coordinates (log10
          units; zeros at the float32 floor, about −37.9), TensorBoardLogger only
        - ``grad_depth/abs_q50``: an image per epoch (with ``histograms`` and ``per_layer``,
          TensorBoard only): the epoch's median |g| of each layer in model order, log scale

    At the start of training each TensorBoardLogger gets a custom-scalars layout (rank 0, once
    per fit, so also on resume; :mod:`lightning_sig.gradients.layout`).

    Example::

        trainer = pl.Trainer(callbacks=[GradientQuantileCallback(quantiles=(0.1, 0.5, 0.9))])
    """

    def __init__(self, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                 vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD, signed: bool = False,
                 per_layer: bool = True, log_every_n_steps: Optional[int] = None,
                 histogram_every_n_steps: Optional[int] = None, histograms: bool = True,
                 epoch_aggregates: bool = True, buffer_steps: int = 128,
                 epoch_budget_numel: Optional[int] = DEFAULT_EPOCH_BUDGET_NUMEL,
                 data_gradient: bool = True, async_stats: bool = True,
                 layer_statistics: Union[str, Sequence[str]] = "default",
                 log10_band: bool = True) -> None:
        """Check and keep the settings; nothing is computed before the first training step.

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
            epoch_budget_numel: B, gradient coordinates per optimizer step (on average) that the
                epoch means may cost; default 2^18. A model of N ≤ B coordinates (the paper's
                networks: ~1,500) gets the mean over every step; a larger one the mean over every
                k-th step (steps with (step + 1) % k == 0), k the smallest divisor or multiple of
                the logging interval n with k ≥ N / B (:mod:`lightning_sig.gradients.epoch_steps`;
                e.g. ResNet-18, N = 11.2 M, n = 50: k = 50, the logged steps). k and the number of
                steps used are logged. None: every step, whatever it costs.
            data_gradient: for a module with the ``penalty_gradients()`` protocol
                (:mod:`lightning_sig.gradients.penalty`; ours when r > 0), also log the
                statistics of the data-loss gradient g − ∇penalty = g − r·θ (default True; a
                second copy).
            buffer_steps: the gradients of up to this many steps (default 128; at most 2^18
                coordinates in all) are copied and their statistics computed in one call, which
                for small models costs about as much as one step's; a large model's buffer holds
                one step, reused. 1 computes at every recorded step. A job of at least 2^16
                values goes to the background thread (smaller ones cost more to hand over than
                to compute): the paper nets' 128 steps of ~1,130 coordinates do, 32 did not.
            async_stats: compute in a background thread while training goes on (default True;
                same values as ``False``, which computes on the training thread).
            layer_statistics: the statistics written per layer: ``"default"`` the median and
                quartiles of |g| (``abs_q25``, ``abs_q50``, ``abs_q75``: three cards per layer
                in TensorBoard; an assumption, the paper shows no per-layer panel), ``"all"``
                every one, or a list such as ``["abs_q50", "l2_norm"]``. ``global`` gets all.
            log10_band: also write log10 of the median and quartiles of |g| under the group
                ``|g|`` (listed after the user's groups) and draw the custom-scalars bands from
                them, on a log scale as the paper (default True; needs levels 0.25, 0.5, 0.75).

        Every recorded step's gradient is copied (in ``on_before_optimizer_step``) and its
        statistics computed later; values are written on the training thread, in step order, each
        with its own step, at the latest at the end of each epoch, of training, on an exception and
        before each checkpoint (``state_dict``); with async_stats or buffering they may reach the
        loggers a few steps after their step. An error in the computation is raised in the training
        process at the next hook. Sparse gradients are made dense (their zeros count); fp16/bf16
        are upcast; a TensorBoardLogger's ``prefix`` is put before the tags, as ``log_metrics``.

        Raises:
            ValueError: a quantile level outside [0, 1] or not a number, a negative or non-finite
                threshold, an interval or ``buffer_steps`` that is not a positive integer, an
                unknown name in ``layer_statistics`` (each message names the value).
        """
        super().__init__()
        self.quantiles = check_quantile_levels(quantiles)
        self.vanishing_threshold = check_vanishing_threshold(vanishing_threshold)
        self.signed, self.per_layer = bool(signed), bool(per_layer)
        self.log_every_n_steps = check_interval("log_every_n_steps", log_every_n_steps)
        self.histogram_every_n_steps = check_interval(
            "histogram_every_n_steps", histogram_every_n_steps,
            hint=" To log no histograms, pass histograms=False.")
        self.histograms, self.epoch_aggregates = bool(histograms), bool(epoch_aggregates)
        self.buffer_steps = check_interval("buffer_steps", buffer_steps, allow_none=False)
        self.epoch_budget_numel = check_budget(epoch_budget_numel)
        self.data_gradient, self.async_stats = bool(data_gradient), bool(async_stats)
        names = statistic_names(self.quantiles, self.signed)
        self.names = [n for n in names if n != "numel"]  # logged statistics, in table order
        self._columns = [i for i, n in enumerate(names) if n != "numel"]
        self.layer_statistics = check_layer_statistics(layer_statistics, self.names)
        self.log10_band = bool(log10_band)
        self._reader = GradientReader(self.per_layer, self.data_gradient)
        self._writer = GradientWriter(self.names, None if self.layer_statistics == "all"
                                      else self.layer_statistics, self.log10_band)
        self._pipeline: Optional[StatisticsPipeline] = None  # per fit (setup)
        self._context: Optional[Tuple[pl.Trainer, pl.LightningModule]] = None
        self._epoch: Dict[RowKey, EpochSums] = {}  # this epoch's sums per gradient
        self._epoch_steps: Dict[RowKey, int] = {}  # steps in this epoch's means
        self._epoch_index: Optional[int] = None  # the epoch the sums belong to
        self._unlogged: Dict[RowKey, tuple] = {}  # (names, values, step) of an unlogged last step
        self._lane: Optional[StepLane] = None  # how steady steps are recorded (None: read())
        self._every_k = 1  # epoch means over every k-th step (epoch_step_interval)
        self._writes = True  # this process writes (global rank 0)

    # ------------------------------------------------------------------ results
    def _consume(self, job: StatisticsJob, table: Tensor, histograms: list) -> None:
        """Epoch sums and outputs of a finished job (training thread, step order)."""
        key, names = job.key, list(job.names)
        # (S, G, K) float64; numpy's indexing: torch's costs ~0.1 ms on these small tables
        table = table.cpu().numpy()[..., self._columns]
        used = [f.aggregate for f in job.flags]
        if self.epoch_aggregates and any(used):
            self._epoch.setdefault(key, EpochSums()).add(
                names, table if all(used) else table[np.array(used)])
            self._epoch_steps[key] = self._epoch_steps.get(key, 0) + sum(used)
        flat = table.reshape(len(job.steps), -1)  # (S, G·K)
        for i, (step, flags, hist) in enumerate(zip(job.steps, job.flags, histograms)):
            if flags.logged and self._writes:
                self._writer.scalars(*self._context, key.member, key.source, names, flat[i],
                                     step)
            if hist is not None and self._writes:
                self._writer.histograms(*self._context, key.member, names, hist, step)
        self._unlogged[key] = None if job.flags[-1].logged else \
            (names, flat[-1].copy(), job.steps[-1])

    def _collect(self, block: bool) -> None:
        """Write what the worker has finished (everything with ``block``)."""
        if self._pipeline is not None and self._context is not None:
            if block:
                self._pipeline.submit()
            self._pipeline.take(block, self._consume)

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_namespace(self, trainer)
        if stage == "fit":  # Lightning restores a checkpoint's state after this hook
            self._reset(trainer)

    def _reset(self, trainer: pl.Trainer) -> None:
        """Forget everything of a previous fit; a new pipeline."""
        if self._pipeline is not None:
            self._pipeline.close()
        sharded = type(trainer.strategy).__name__ in _SHARDED_STRATEGIES
        self._pipeline = StatisticsPipeline(self.quantiles, self.vanishing_threshold,
                                            self.signed, self.buffer_steps,
                                            self.async_stats and not sharded)
        if sharded and trainer.world_size > 1:
            import torch.distributed as dist
            self._pipeline.group = dist.group.WORLD
        self._reader.reset()
        self._epoch, self._epoch_steps, self._unlogged = {}, {}, {}
        self._epoch_index, self._context, self._every_k = None, None, 1
        self._lane = None

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The custom-scalars layout for each TensorBoardLogger (rank 0, once per fit)."""
        if not trainer.is_global_zero or member_seeds_of(pl_module):
            return
        layers = list(dict.fromkeys(n for n, p in self._reader.parameters(pl_module)
                                    if p.requires_grad)) if self.per_layer else []
        data = self.data_gradient and bool(getattr(pl_module, "penalty_gradients", dict)())
        monitor = any(isinstance(cb, SaturationMonitorMixin) for cb in trainer.callbacks)
        acts = [n for n, _ in monitored_activations(pl_module)] if monitor else []
        self._writer.layout(trainer, ["global"] + layers, self.quantiles, data, acts,
                            self.epoch_aggregates)
        if self._depth_images:
            self._writer.prepare_depth_image(trainer, pl_module, layers)  # not mid-epoch
        self._writer.hint_event_crc(trainer)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reader.reset()  # parameters may have been added or replaced
        self._lane = None
        if self._epoch_index != trainer.current_epoch:  # kept when resuming mid-epoch
            self._epoch, self._epoch_steps = {}, {}
            self._epoch_index = trainer.current_epoch

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self._lane is not None and self._pipeline.record_lane(self._lane,
                                                                 trainer.global_step):
            return  # a steady step: one compiled call (lightning_sig.gradients.step_lane)
        self._writes = trainer.is_global_zero
        if not self._writes and self._pipeline.group is None:
            return  # DDP: every rank holds the same gradient; rank 0 computes it once
        step = trainer.global_step
        flags = self._flags(trainer, pl_module, step)
        if flags is None:
            return
        rows = self._reader.read(pl_module, flags.histogram)
        if not rows:
            self._writer.warn_once("no_grad", "GradientQuantileCallback: no trainable parameter "
                                   "has a gradient at this optimizer step; nothing is logged.")
            return
        self._context = (trainer, pl_module)
        if flags.histogram and self._pipeline.histogram_limits is None:
            self._pipeline.histogram_limits = self._writer.histogram_limits(trainer, pl_module)
        for row in rows:
            self._pipeline.record(row.key, row.layout, row.data, step, flags)
        self._lane = None if self._pipeline.group is not None or not self.epoch_aggregates \
            else self._reader.lane(pl_module, self.log_every_n_steps or
                                   trainer.log_every_n_steps, self._every_k)
        if flags.logged and not self._writer.writes_late(trainer, pl_module):
            self._pipeline.submit()  # other loggers: no steps buffered past a logging step
        if flags.logged:  # (other steps: collected in on_train_batch_end)
            self._collect(block=False)

    @property
    def _depth_images(self) -> bool:
        """Whether each epoch end draws the depth-profile image (from the epoch means)."""
        return self.epoch_aggregates and self.histograms and self.per_layer

    def _flags(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int
               ) -> Optional[StepFlags]:
        """What optimizer step ``step`` is recorded for, or None."""
        every = self.log_every_n_steps or trainer.log_every_n_steps
        logged = logs_at_step(step, every)
        self._every_k = _interval(self._reader.numel(pl_module), max(every, 1),
                                  self.epoch_budget_numel)
        aggregate = self.epoch_aggregates and (step + 1) % self._every_k == 0
        if not (logged or aggregate or trainer.should_stop):
            return None
        hist_every = self.histogram_every_n_steps or 10 * every
        histogram = logged and self.histograms and (step + 1) % hist_every == 0
        return StepFlags(logged, aggregate, histogram)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._collect(block=False)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collect(block=True)
        if not trainer.is_global_zero:
            return
        self._context = self._context or (trainer, pl_module)
        for key, sums in self._epoch.items():
            if sums.total is None:
                continue
            self._writer.scalars(trainer, pl_module, key.member, key.epoch_prefix, sums.names,
                                 sums.means(), trainer.global_step)  # NaN: never defined
            if key.source == "grad":  # which steps the means are over: every k-th, how many
                self._writer.epoch_steps(trainer, pl_module, key.member, self._every_k,
                                         self._epoch_steps.get(key, 0))
                if self._depth_images:
                    self._writer.depth_image(trainer, pl_module, key.member, sums)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collect(block=True)
        if trainer.should_stop and trainer.is_global_zero:  # Lightning logs an early stop's
            for key, last in self._unlogged.items():         # last step: so do we
                if last is not None and last[2] == trainer.global_step - 1:
                    self._writer.scalars(trainer, pl_module, key.member, key.source, *last)
        self._unlogged = {}

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        try:
            self._collect(block=True)  # what was computed up to the failure is written
        except RuntimeError:
            pass  # the training's own exception is the one to report
        self._close()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        try:
            self._collect(block=True)
        finally:
            self._close()

    def _close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
        self._context = None

    # ------------------------------------------------------------------ state (resume)
    @override
    def state_dict(self) -> Dict[str, Any]:
        self._collect(block=True)  # a checkpoint holds the epoch sums of every step so far
        sums = {source: {k.member: s.state() for k, s in self._epoch.items()
                         if k.source == source and s.total is not None}
                for source in ("grad", "grad_data")}
        return {"epoch": sums["grad"], "epoch_data": sums["grad_data"],
                "epoch_index": self._epoch_index,
                "epoch_steps": {k.member: c for k, c in self._epoch_steps.items()
                                if k.source == "grad"}}

    @override
    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        def key(member: int, source: str) -> RowKey:  # older checkpoints: grad_data at -1 - s
            return RowKey(-1 - member, "grad_data") if member < 0 else RowKey(member, source)
        self._epoch = {key(int(m), source): EpochSums(n, t.double().cpu().clone(),
                                                     c.double().cpu().clone())
                       for source, entry in (("grad", "epoch"), ("grad_data", "epoch_data"))
                       for m, (n, t, c) in state_dict.get(entry, {}).items()}
        self._epoch_index = state_dict.get("epoch_index")
        self._epoch_steps = {RowKey(int(m), "grad"): int(c)
                             for m, c in state_dict.get("epoch_steps", {}).items()}
