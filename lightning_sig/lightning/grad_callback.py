"""GradientQuantileCallback: the paper's gradient statistics (bottom panels of Figures 1–4) for
any LightningModule, logged per optimizer step, per layer and globally, and per epoch.

The hook is ``on_before_optimizer_step``: after gradient accumulation, after AMP unscaling and
DDP's all-reduce, before clipping, i.e. exactly the gradient the optimizer will use. For our
modules with r > 0 that is the gradient of the regularized objective CE + r/2·Σθ² (Sec. 2.2).
The maths lives in :mod:`lightning_sig.gradients.stats`, :mod:`lightning_sig.gradients.segments` and
:mod:`lightning_sig.gradients.histograms`; the batching of steps in :mod:`lightning_sig.gradients.buffer`,
the TensorBoard events in :mod:`lightning_sig.gradients.events`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from typing_extensions import override
from torch import Tensor

from lightning_sig._compat import is_tensorboard_logger
from lightning_sig.lightning.grad_gather import GradientGatheringMixin
from lightning_sig.lightning.grad_outputs import DATA, GradientOutputsMixin
from lightning_sig.lightning.namespace import check_namespace
from lightning_sig.nn.member_protocol import member_seeds_of
from lightning_sig.gradients.buffer import BUFFER_MAX_NUMEL, EpochSums, GradientSnapshot, StepBuffer, \
    batched_statistics
from lightning_sig.gradients.epoch_steps import DEFAULT_EPOCH_BUDGET_NUMEL, check_budget, \
    epoch_step_interval
from lightning_sig.gradients.events import GradientEventWriter
from lightning_sig.gradients.sorted_stats import layered_statistics
from lightning_sig.gradients.stats import DEFAULT_QUANTILES, DEFAULT_VANISHING_THRESHOLD, \
    check_quantile_levels, check_vanishing_threshold, statistic_names

__all__ = ["GradientQuantileCallbackMixin"]

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl



def _check_interval(name: str, value: Optional[int], allow_none: bool = True,
                    hint: str = "") -> Optional[int]:
    if (value is None and not allow_none) or (value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1)):
        valid = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{name} must be {valid}, got {value!r}.{hint}")
    return value


def logs_at_step(step: int, every: int) -> bool:
    """Whether optimizer step ``step`` (0-based, counted before its update) is a logging step
    for interval ``every``: Lightning's own rule for ``train/*`` (``(step + 1) % every == 0``;
    ``every = 0`` logs no step, as ``Trainer(log_every_n_steps=0)``)."""
    return every > 0 and (step + 1) % every == 0


class GradientQuantileCallbackMixin(GradientGatheringMixin, GradientOutputsMixin):
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
        epoch_budget_numel: B, gradient coordinates per optimizer step (on average) that the
            epoch means may cost; default 2^18. A model of N ≤ B coordinates (the paper's
            networks: ~1,500) gets the mean over every step; a larger one the mean over every
            k-th step (steps with (step + 1) % k == 0), k the smallest divisor or multiple of
            the logging interval n with k ≥ N / B (:mod:`lightning_sig.gradients.epoch_steps`;
            e.g. ResNet-18, N = 11.2 M, n = 50: k = 50, the logged steps). k and the number of
            steps used are logged. None: every step, whatever it costs.
        data_gradient: for a module with the ``penalty_gradients()`` protocol
            (:mod:`lightning_sig.gradients.penalty`; ours when r > 0), also log the statistics
            of the data-loss gradient g − ∇penalty = g − r·θ (default True; about doubles the
            statistics' cost for such modules).
        buffer_steps: the gradients of up to this many optimizer steps (default 32) are kept
            (a copy, at most :data:`~lightning_sig.gradients.buffer.BUFFER_MAX_NUMEL` coordinates in
            all) and their statistics computed in one batch, which for small models costs
            about as much as one step's (:mod:`lightning_sig.gradients.buffer`). With only
            TensorBoard loggers, scalars are then written up to this many steps late (each with
            its own step, so the event files are the same); with any other logger, at every
            logging step. Everything is written at the end of each epoch, of training, on an
            exception and before a checkpoint. 1 computes and writes at every step.

    Sparse gradients are made dense (their zeros count as coordinates); fp16/bf16 are upcast;
    a TensorBoardLogger's ``prefix`` is put before the tags (scalars and histograms), as its
    ``log_metrics`` does.

    Raises:
        ValueError: a quantile level outside [0, 1] or not a number, a negative or non-finite
            threshold, an interval or ``buffer_steps`` that is not a positive integer (each
            message names the value).

    Logged metrics (step = ``trainer.global_step`` before the update; also the last step when
    training stops early, as Lightning; ``<g>`` is ``global`` or a layer name; gradient values in
    loss units per parameter unit):
        - ``grad/<g>/abs_q<p>``: the p-th percentile of |g_j| (``abs_q0`` min, ``abs_q100`` max)
        - ``grad/<g>/abs_mean``, ``grad/<g>/rms``, ``grad/<g>/l2_norm``: mean |g_j|,
          sqrt(mean g_j²), sqrt(Σ g_j²)
        - ``grad/<g>/vanishing_frac``: fraction (0–1) of finite coordinates with |g_j| ≤ t
        - ``grad/<g>/nonfinite_count``: number of NaN/±inf coordinates (count)
        - ``grad/<g>/q<p>``: percentiles of the signed g_j (only with ``signed=True``)
        - ``grad_epoch/<g>/<stat>``: the epoch means of the above, at the end of each training
          epoch (one point per epoch, for figures; a layer without a gradient at some steps is
          averaged over the others)
        - ``grad_epoch_steps/global/every_k``, ``.../count``: the k of ``epoch_budget_numel``
          and the number of steps the epoch means are over (at each epoch end)
        - ``grad_data/<g>/<stat>``, ``grad_data_epoch/<g>/<stat>``: the same statistics of the
          data-loss gradient g − ∇penalty (modules with ``penalty_gradients``, nonzero penalty)
        - ``grad_hist/<g>/log10_abs``: histogram of log10|g_j| over finite coordinates (zeros at
          the float32 floor, about −37.9), TensorBoardLogger only
        - ``grad_depth/abs_q50``: an image per epoch (with ``histograms`` and ``per_layer``,
          TensorBoard only): the epoch's median |g| of each layer in model order, log scale,
          the depth profile of Sec. 2.3's many-layers regime

    At the start of training each TensorBoardLogger gets a custom-scalars layout (rank 0, once
    per fit, so also on resume; :mod:`lightning_sig.gradients.layout`): for ``global`` and every
    layer a margin chart of ``abs_q50`` with the ``abs_q25``–``abs_q75`` band (total, data-loss
    and epoch series), and the SaturationMonitor's series when it is among the callbacks.

    Cost: models above :data:`~lightning_sig.gradients.segments.SEGMENTED_MAX_NUMEL`
    coordinates get exact statistics by sorting the float bits of one float32 working copy
    kept between steps (:mod:`lightning_sig.gradients.sorted_stats`); with the default budget
    only the logged steps of such a model are computed. Every logged step's value is exact.

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
                 epoch_aggregates: bool = True, buffer_steps: int = 32,
                 epoch_budget_numel: Optional[int] = DEFAULT_EPOCH_BUDGET_NUMEL,
                 data_gradient: bool = True) -> None:
        super().__init__()
        self.quantiles = check_quantile_levels(quantiles)
        self.vanishing_threshold = check_vanishing_threshold(vanishing_threshold)
        self.signed, self.per_layer = bool(signed), bool(per_layer)
        self.log_every_n_steps = _check_interval("log_every_n_steps", log_every_n_steps)
        self.histogram_every_n_steps = _check_interval(
            "histogram_every_n_steps", histogram_every_n_steps,
            hint=" To log no histograms, pass histograms=False.")
        self.histograms, self.epoch_aggregates = bool(histograms), bool(epoch_aggregates)
        self.buffer_steps = _check_interval("buffer_steps", buffer_steps, allow_none=False)
        self.epoch_budget_numel = check_budget(epoch_budget_numel)
        self.data_gradient = bool(data_gradient)
        self.names = [n for n in statistic_names(self.quantiles, self.signed) if n != "numel"]
        self._columns = [i for i, n in enumerate(statistic_names(self.quantiles, self.signed))
                         if n != "numel"]
        self._warned: set = set()
        self._events = GradientEventWriter(self.names)
        self._step_events = GradientEventWriter(["every_k", "count"])
        self._reset()

    def _reset(self) -> None:
        """Forget everything of a previous fit (epoch sums, buffered steps, caches)."""
        self._epoch: Dict[int, EpochSums] = {}  # member (0 without num_members) -> sums
        self._epoch_index: Optional[int] = None  # epoch the sums belong to
        self._buffers: Dict[int, StepBuffer] = {}  # member -> buffered steps
        self._unlogged: Dict[int, tuple] = {}  # member -> (names, values, step) of its last step
        self._context: Optional[Tuple[pl.Trainer, pl.LightningModule]] = None  # of the last step
        self._params: Optional[Tuple[pl.LightningModule, List[Tuple[str, Tensor]]]] = None
        self._layouts: Dict[Tuple[int, ...], tuple] = {}  # parameters with a grad -> layout
        self._workspace: Optional[np.ndarray] = None  # float32 copy for large gradients
        self._aggregate: set = set()  # (member, step) of recorded steps in the epoch means
        self._epoch_steps: Dict[int, int] = {}  # member -> steps in this epoch's means
        self._every_k = 1  # epoch means over every k-th step (epoch_step_interval)

    # ----------------------------------------------------------------- statistics
    def _record(self, member: int, snap: GradientSnapshot, step: int, logged: bool,
                flat: Optional[Tensor], aggregate: bool = True) -> None:
        """Buffer this step's flat gradient ``flat`` (N,) (statistics later, see :meth:`_flush`);
        models above :data:`SEGMENTED_MAX_NUMEL` coordinates get their statistics now, per
        vector (``flat`` may then be None)."""
        names = snap.names if self.per_layer else snap.names[:1]
        total = sum(snap.sizes)
        if aggregate:
            self._aggregate.add((member, step))
        if not self._buffered(total):  # big models: one float32 copy (sorted_stats)
            layers = snap.layer_grads() if self.per_layer else [snap.grads]
            table, self._workspace = layered_statistics(
                layers, self.quantiles, self.vanishing_threshold, self.signed,
                with_total=self.per_layer, workspace=self._workspace)
            self._consume(member, list(names), table[None], [step], [logged])
            return
        buffer = self._buffers.get(member)
        capacity = max(1, min(self.buffer_steps, BUFFER_MAX_NUMEL // max(total, 1)))
        key = (names, snap.sizes if self.per_layer else (total,))
        if buffer is not None and (buffer.capacity != capacity or not buffer.accepts(key)):
            self._flush_member(member)  # another layout: its steps first
            buffer = buffer if buffer.capacity == capacity else None
        if buffer is None:
            buffer = self._buffers[member] = StepBuffer(capacity)
        buffer.append(key, flat, step, logged)

    def _flush_member(self, member: int) -> None:
        """Statistics of a member's buffered steps in one batch; accumulate and emit them."""
        buffer = self._buffers.get(member)
        if buffer is None or not len(buffer):
            return
        (names, sizes), rows, steps, logged = buffer.take()
        table = batched_statistics(rows, sizes, self.quantiles, self.vanishing_threshold,
                                   self.signed, with_total=self.per_layer)  # (S, G, K)
        self._consume(member, list(names), table, steps, logged)

    def _flush(self) -> None:
        """Flush every member's buffer (nothing before the first step)."""
        if self._context is not None:
            for member in list(self._buffers):
                self._flush_member(member)

    def _consume(self, member: int, names: List[str], table: Tensor, steps: List[int],
                 logged: List[bool]) -> None:
        """Epoch sums and per-step scalars from a (S, G, K_all) table of S steps."""
        table = table[..., self._columns].cpu()  # one host transfer for S steps
        used = [(member, step) in self._aggregate for step in steps]
        self._aggregate.difference_update((member, step) for step in steps)
        if self.epoch_aggregates and any(used):
            self._epoch.setdefault(member, EpochSums()).add(names, table[torch.tensor(used)])
            self._epoch_steps[member] = self._epoch_steps.get(member, 0) + sum(used)
        values = table.reshape(len(steps), -1).tolist()
        for row, step, log_now in zip(values, steps, logged):
            if log_now:
                self._emit(member, self._prefix(member), names, row, step)
        self._unlogged[member] = None if logged[-1] else (names, values[-1], steps[-1])

    # ----------------------------------------------------------------------- hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_namespace(self, trainer)
        if stage == "fit":  # Lightning restores a checkpoint's state after this hook
            self._reset()

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._params, self._layouts = None, {}  # parameters may have been added or replaced
        if self._epoch_index != trainer.current_epoch:  # kept when resuming mid-epoch
            self._epoch, self._epoch_steps = {}, {}
            self._epoch_index = trainer.current_epoch

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        every = self.log_every_n_steps or trainer.log_every_n_steps
        log_now = logs_at_step(step, every)
        self._every_k = epoch_step_interval(self._numel(pl_module), max(every, 1),
                                            self.epoch_budget_numel)
        aggregate = self.epoch_aggregates and (step + 1) % self._every_k == 0
        if not (log_now or aggregate or trainer.should_stop):
            return
        hist_every = self.histogram_every_n_steps or 10 * every
        hist_now = log_now and self.histograms and (step + 1) % hist_every == 0
        totals, data = self._gather(pl_module, hist_now)  # grad_gather.py
        if not totals:
            self._warn_once("no_grad", "GradientQuantileCallback: no trainable parameter has a "
                            "gradient at this optimizer step; nothing is logged.")
            return
        self._context = (trainer, pl_module)
        for member, (snap, flat) in enumerate(totals):
            self._record(member, snap, step, log_now, flat, aggregate)
            if hist_now:
                self._log_histograms(member, snap, flat, step)
        for member, (snap, flat) in enumerate(data):
            self._record(DATA - member, snap, step, log_now, flat, aggregate)
        # TensorBoard stores each event with its own step, so scalars may be written a few
        # steps late; other loggers (e.g. W&B) expect increasing steps: write them now.
        deferred = member_seeds_of(pl_module) or all(
            is_tensorboard_logger(logger) for logger in trainer.loggers)
        if (log_now and not deferred) or any(b.full for b in self._buffers.values()):
            self._flush()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._flush()
        self._context = self._context or (trainer, pl_module)
        for member, sums in self._epoch.items():
            if sums.total is not None:  # NaN where never defined (0 / 0)
                self._emit(member, self._prefix(member) + "_epoch", sums.names, sums.means(),
                           trainer.global_step)
                if member >= 0:  # which steps the means are over: every k-th, how many
                    self._step_events.scalars(
                        trainer, pl_module, member, "grad_epoch_steps", ["global"],
                        [float(self._every_k), float(self._epoch_steps.get(member, 0))],
                        trainer.global_step)
                    if self.histograms and self.per_layer:
                        self._log_depth_image(trainer, pl_module, member, sums)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()
        if trainer.should_stop:  # Lightning logs the last step of an early stop: so do we
            for member, last in self._unlogged.items():
                if last is not None and last[2] == trainer.global_step - 1:
                    self._emit(member, self._prefix(member), *last)
        self._unlogged = {}

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        self._flush()  # what was computed up to the failure is written
        self._context = None  # teardown is not called after an exception

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._flush()
        self._context = None

    # ------------------------------------------------------------------ state (resume)
    @override
    def state_dict(self) -> Dict[str, Any]:
        self._flush()  # a checkpoint holds the epoch sums of every step so far
        return {"epoch": {m: s.state() for m, s in self._epoch.items() if s.total is not None},
                "epoch_index": self._epoch_index, "epoch_steps": dict(self._epoch_steps)}

    @override
    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._epoch = {int(m): EpochSums(n, t.double().cpu(), c.double().cpu())
                       for m, (n, t, c) in state_dict.get("epoch", {}).items()}
        self._epoch_index = state_dict.get("epoch_index")
        self._epoch_steps = {int(m): int(c) for m, c in state_dict.get("epoch_steps", {}).items()}
