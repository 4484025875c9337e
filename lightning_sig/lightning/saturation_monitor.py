"""SaturationMonitor: on logging steps, the fraction of saturated pre-activations and the mean
f_α′(z) of every sigmoid-type activation layer (:mod:`lightning_sig.gradients.saturation`), to tell
the paper's two sources of vanishing gradients apart: saturation (large parameters, Sec. 2.2,
remedy r > 0) or depth (many layers, Sec. 2.3, remedy α > 1).

Which forward: our networks (:class:`~lightning_sig.SigmoidConvNet`) train through a folded
forward (:mod:`lightning_sig.nn.folding`) that never calls the activation modules, so for a
network with ``forward_penalized`` and ``features``/``classifier`` the monitor sets an
activation tap (:mod:`lightning_sig.nn.activation_tap`) for the logging step's training forward
and reads each layer's pre-activations (or, from the fused kernels, the activations' outputs)
there: no second forward. Where the training forward does not run the fold plan (a
``torch.compile``-d net) it falls back, with one warning, to the plain layer-by-layer forward
``classifier(features(x))``, once without gradient, on the logging step's batch (before the
optimizer step: the same parameters). Any other model is observed in its own training forward
through forward pre-hooks, registered on logging steps only and removed at the end of the batch.

Precision: the values describe the forward that trains. Under ``precision="bf16-mixed"`` (or
16-mixed) autocast, the tap and the hooks see the reduced-precision pre-activations, so the
saturated fraction can differ from a float32 forward's by the rounding of z near the threshold
(one check: 0.176094 with bf16 against 0.174981 in float32, global fraction). The separate
fallback forward runs in the parameters' dtype (float32), outside autocast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import torch
from lightning_utilities.core.rank_zero import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from lightning_sig.gradients.events import GradientEventWriter
from lightning_sig.gradients.saturation import DEFAULT_EPSILON, check_epsilon, \
    folded_saturation_sums, means_of, monitored_activations, saturation_sums
from lightning_sig.nn.activation_tap import add_tap, remove_tap
from lightning_sig.nn.convnets import preferred_memory_format
from lightning_sig._compat import training_batch_logs_now  # Lightning's own logging rule
from lightning_sig.lightning.namespace import check_namespace
from lightning_sig.members.interface import member_seeds_of
from lightning_sig.lightning.mixin_bases import CallbackBase

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["SaturationMonitorMixin"]


def _folded_nets(pl_module: nn.Module) -> List[nn.Module]:
    """Submodules whose forward bypasses their activation modules (our folded conv nets)."""
    return [m for m in pl_module.modules() if hasattr(m, "forward_penalized")
            and isinstance(getattr(m, "features", None), nn.Sequential)
            and isinstance(getattr(m, "classifier", None), nn.Sequential)]


def _tapped_layers(nets: List[nn.Module], names: Dict[int, str]
                   ) -> Dict[int, Tuple[str, nn.Module]]:
    """id(affine layer) → (name, activation module) for each monitored activation (``names``:
    id → qualified name) that directly follows an affine layer in a folded net: the layers
    whose values the activation tap reports."""
    out: Dict[int, Tuple[str, nn.Module]] = {}
    for net in nets:
        layers = [*net.features, *net.classifier]
        for layer, act in zip(layers, layers[1:]):
            if id(act) in names and isinstance(layer, (nn.Conv2d, nn.Linear)):
                out[id(layer)] = (names[id(act)], act)
    return out


class SaturationMonitorMixin(CallbackBase):
    r"""Log how saturated every sigmoid-type activation layer is, on logging steps.

    For every :class:`~lightning_sig.ScaledActivation` of a sigmoid-type family and every
    ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softsign`` and ``nn.Hardtanh`` of the model, over the
    pre-activations z of the step's batch: the fraction with f_α′(z) < ε·f′(0) and the mean
    f_α′(z) (f_α(z) = α·f(z/α), eq. 1, so f_α′(z) = f′(z/α)). Computed only on the steps
    Lightning writes (``trainer.log_every_n_steps``), on the device, one host transfer per step
    (the fused kernels' tanh and logistic outputs on the CPU: one compiled pass per layer,
    ``saturation_sums.cpp``, built at first use with the other statistics kernels).

    Logged metrics (at the logging steps, step = ``trainer.global_step`` as the
    GradientQuantileCallback's; one TensorBoard event per step, global rank 0 only; in
    TensorBoard files under the group ``|f'|``, e.g. ``|f'|/act/global/saturated_frac``, after
    the user's metrics: :mod:`lightning_sig.gradients.tag_groups`):
        - ``act/<layer>/saturated_frac``: fraction (0–1) of the layer's pre-activations with
          f_α′(z) < ε·f′(0)
        - ``act/<layer>/mean_derivative``: mean f_α′(z) (dimensionless; f′(0) is 1 for tanh,
          arctan, softsign, Hardtanh, 1/4 for the logistic sigmoid)
        - ``act/global/saturated_frac``, ``act/global/mean_derivative``: the same over all
          monitored pre-activations

    The activation modules are looked up at the first logging step of each epoch (modules
    added or replaced within an epoch are seen from the next one, as the
    GradientQuantileCallback's parameters). Not supported: our ``num_members > 1`` modules (a
    warning, nothing logged).

    Example::

        trainer = pl.Trainer(callbacks=[GradientQuantileCallback(), SaturationMonitor()])
    """

    def __init__(self, eps: float = DEFAULT_EPSILON) -> None:
        """Check and keep ``eps``.

        Args:
            eps: ε in (0, 1]; default 0.01 (an assumption: the paper gives no number).

        Raises:
            ValueError: ``eps`` not in (0, 1].
        """
        super().__init__()
        self.eps = check_epsilon(eps)
        self._hooks: List[Any] = []
        self._sums: Dict[str, Tensor] = {}
        self._last_step: Optional[int] = None
        self._warned = False
        self._events = GradientEventWriter(["saturated_frac", "mean_derivative"])
        self._context: Optional[tuple] = None  # (trainer, pl_module) of the logging step
        self._tapping = False  # our tap is added for this logging step's training forward
        self._tapped: Dict[int, Tuple[str, nn.Module]] = {}  # see _tapped_layers
        self._separate_forward = False  # the tap saw nothing once: a second forward instead
        self._parts: Optional[tuple] = None  # (module, layers, folded nets, tapped) this epoch

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_namespace(self, trainer)
        self._remove()
        self._separate_forward = False  # decided again for each fit
        self._parts = None

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._parts = None  # activation modules may have been added or replaced

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if not training_batch_logs_now(trainer) or self._last_step == trainer.global_step:
            return  # also: only the first micro-batch of an accumulated step
        if member_seeds_of(pl_module):
            self._warn("SaturationMonitor does not support num_members > 1; nothing logged.")
            return
        layers, folded, tapped = self._model_parts(pl_module)
        if not layers:
            self._warn("SaturationMonitor: the model has no sigmoid-type activation module; "
                       "nothing logged.")
            return
        self._remove()  # anything left by a batch whose end hook did not run
        self._last_step, self._sums = trainer.global_step, {}
        self._context = (trainer, pl_module)
        for name, module in layers:
            self._hooks.append(module.register_forward_pre_hook(self._hook(name)))
        if folded and not self._separate_forward:  # read in the training forward itself
            self._tapped = tapped
            add_tap(self._tap)
            self._tapping = True
        elif folded:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if x.dim() == 4:  # as the folded forward: channels_last on CPU (×1.3 here)
                x = x.contiguous(memory_format=preferred_memory_format(x))
            with torch.no_grad():
                for net in folded:
                    net.classifier(net.features(x))
            self._log()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not (self._hooks or self._tapping):
            return  # not a logging step (the common one)
        ran = outputs is not None and not (isinstance(outputs, Mapping)
                                           and outputs.get("loss") is None)  # a skipped step
        if self._tapping and self._tapped and ran and \
                not any(name in self._sums for name, _ in self._tapped.values()):
            self._separate_forward = True  # a step that ran (a loss) without the fold plan:
            # e.g. a torch.compile-d net
            self._warn("SaturationMonitor: the training forward did not report the folded "
                       "net's pre-activations (a compiled net?); from the next logging step "
                       "on, a separate forward is run for them.")
        self._log()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove()  # e.g. on_train_batch_start returned -1: no batch end ran

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove()

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        self._remove()

    def _model_parts(self, pl_module: pl.LightningModule) -> tuple:
        """(monitored activations, folded nets, their tapped layers) of ``pl_module``: looked up
        once per epoch (two walks of the module tree: ~0.1 ms at each logging step)."""
        if self._parts is None or self._parts[0] is not pl_module:
            layers = monitored_activations(pl_module)
            folded = _folded_nets(pl_module)
            tapped = _tapped_layers(folded, {id(m): n for n, m in layers})
            self._parts = (pl_module, layers, folded, tapped)
        return self._parts[1:]

    def _tap(self, layer: nn.Module, tensor: Tensor, kind: str) -> None:
        """The activation tap: add the saturation sums of a tapped layer's values."""
        entry = self._tapped.get(id(layer))
        if entry is not None:
            name, module = entry
            self._add(name, folded_saturation_sums(module, tensor, kind, self.eps))

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Tuple[Tensor, ...]) -> None:
            self._add(name, saturation_sums(module, args[0], self.eps))
        return hook

    def _add(self, name: str, sums: Tensor) -> None:
        """Accumulate a layer's (count, saturated, Σ f′) sums (a layer may run several times)."""
        self._sums[name] = sums if name not in self._sums else self._sums[name] + sums

    def _remove(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._tapping:
            remove_tap(self._tap)
            self._tapping = False

    def _log(self) -> None:
        """One event per TensorBoardLogger (``log_metrics`` for other loggers) at the step's
        ``global_step``, the step of the gradient callback's and Lightning's ``train/*``."""
        self._remove()
        if not self._sums or self._context is None:
            return
        trainer, pl_module = self._context
        names = list(self._sums)
        table = torch.stack([self._sums[n] for n in names]).cpu()  # (G, 3), one transfer
        values = [v for row in [*table, table.sum(0)] for v in means_of(row)]
        if trainer.is_global_zero:
            self._events.scalars(trainer, pl_module, 0, "act", names + ["global"], values,
                                 self._last_step)

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            rank_zero_warn(message)
