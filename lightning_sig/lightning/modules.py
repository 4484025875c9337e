"""LightningModules for the paper's three CIFAR-10 experiments (Sec. 3, Tables 1–3).

The objective is cross-entropy + r/2·Σθ² (Sec. 2.2), the l2 term added explicitly in
``training_step`` rather than as the optimizer's ``weight_decay``: the gradient the optimizer
(and the GradientQuantileCallback) sees is exactly the gradient of the regularized objective,
whatever optimizer a user swaps in through the CLI.

Speed (benchmarks/RESULTS.md): per-step metrics are computed and passed to ``self.log`` only on
the steps Lightning writes to its loggers (``log_every_n_steps``), α and the l2 term are folded
into one autograd node over all weights (:mod:`lightning_sig.nn.folding`), Adam is fused where torch supports it,
and ``num_members = S`` trains S seeds at once (:mod:`lightning_sig.members`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy
from lightning_utilities.core.rank_zero import rank_zero_info
from typing_extensions import override

from lightning_sig.lightning.fit_summary import FitSummary, fit_progress
from lightning_sig.lightning.namespace import check_namespace
from lightning_sig.members.loggers import DEFAULT_MEMBER_LOG_DIR, MemberEvalMetrics, \
    MemberLogger, check_member_log_dir
from lightning_sig.members.networks import MemberConvNet, build_member_nets, resolve_member_seeds
from lightning_sig.members.steps import MemberStepsMixin
from lightning_sig._compat import FX_NAME_ATTRIBUTE, attached_trainer, foreach_mul, \
    training_batch_logs_now
from lightning_sig.nn.folding import l2_penalty
from lightning_sig.nn.optim import adam, portable_adam_state
from lightning_sig.nn.convnets import TABLE1, TABLE2, TABLE3, ConvNetSpec, build_initialised_net
from lightning_sig.nn.fused import fused_forward, fused_forward_penalized
from lightning_sig.nn.fused.backend import check_backend, resolve_backend
from lightning_sig.thread_choice import thread_report

__all__ = ["SigmoidNetModuleMixin", "LargeParamsNetMixin", "ManyLayersNetMixin",
           "CombinedNetMixin", "l2_penalty"]

if TYPE_CHECKING:  # annotations only: the bodies serve both Lightning namespaces
    import pytorch_lightning as pl


def _check_number(name: str, value: object, minimum: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


class SigmoidNetModuleMixin(MemberStepsMixin):
    """Base LightningModule: a paper network (``spec``) trained with Adam on CE + r/2·Σθ².

    Subclasses set ``spec`` (the architecture) and ``paper_init`` (the paper's initialisation
    for that experiment). Use :class:`LargeParamsNet`, :class:`ManyLayersNet` or
    :class:`CombinedNet`.

    Logged metrics:
        ``train/loss`` (CE + penalty, nats), ``train/data_loss`` (CE, nats),
        ``train/l2_penalty`` (r/2·Σθ², nats), ``train/acc`` (fraction) per step;
        ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc`` per epoch. The per-step ones
        only on the steps Lightning writes (``log_every_n_steps``), so ``callback_metrics``
        hold the last logged step's values. With S > 1 members, each member's metrics go to
        its own run directory (``member_log_dir``) through ``self.member_logger``.
    """

    spec: ClassVar[ConvNetSpec]
    paper_init: ClassVar[Tuple[str, float]]

    def __init__(self, activation: str = "tanh", alpha: float = 1.0, learnable_alpha: bool = False,
                 l2_strength: float = 0.0, lr: float = 1e-3, init: str = "paper",
                 init_scale: Optional[float] = None, zero_bias: bool = False,
                 num_members: int = 1, member_seeds: Optional[List[int]] = None,
                 member_log_dir: str = DEFAULT_MEMBER_LOG_DIR, compile_net: bool = False,
                 backend: str = "auto", adam_eps: float = 1e-8) -> None:
        """Check the hyperparameters, save them (``self.hparams``) and build the network of ``spec``
        (or its ``num_members`` copies), initialised as ``init`` says.

        Args:
            activation: activation family (``tanh``, ``sigmoid``/``logistic``, ``arctan``,
                ``softsign``, ``relu``, ``identity``, ``logsigmoid``); default ``tanh``.
            alpha: the scale α of f_α(z) = α·f(z/α) (eq. 1), finite and > 0; default 1.0.
            learnable_alpha: one trainable α per activation layer (excluded from the l2 term).
            l2_strength: the paper's r ≥ 0 (dimensionless); the loss is CE + r/2·Σθ² over all
                weights and biases (Sec. 2.2); default 0.
            lr: Adam's learning rate; default 1e-3 (Sec. 3).
            init: ``"paper"`` (the scheme of this experiment in the paper), ``"uniform"``,
                ``"normal"``, ``"default"`` (PyTorch's), ``"he_normal"`` or ``"glorot_uniform"``;
                see :func:`~lightning_sig.nn.convnets.init_parameters`. The parameters are
                drawn from the stream of (seed, "init")
                (:func:`~lightning_sig.nn.convnets.build_initialised_net`), seed =
                ``torch.initial_seed()`` (the ``seed_everything`` value) or the member's seed.
            init_scale: half-width (uniform) or std (normal), > 0; None takes the paper's scale of
                this experiment when ``init="paper"`` (10 for uniform, 0.05 for normal), else 1.0.
            zero_bias: initialise biases at 0 instead of with the weights' scheme.
            num_members: S ≥ 1 independent copies trained at once (default 1: one network). Member
                s = a separate run with ``seed_everything(member_seeds[s])``: own init, data order,
                loss, l2 term and Adam state (see :mod:`lightning_sig.members`). The loss
                returned to Lightning is the sum over members; forward maps (S, B, 3, 32, 32) or
                (B, 3, 32, 32) to (S, B, 10). Refused with global-norm gradient clipping or DDP.
            member_seeds: the S seeds; None (default) = s0, s0+1, …, s0+S−1 with s0 the current
                ``torch.initial_seed()`` (the ``seed_everything`` value). Saved resolved.
            member_log_dir: where member s writes its metrics (one TensorBoard run each, the tags
                of a separate run), a template with ``{log_dir}``, ``{save_dir}``, ``{name}``,
                ``{version}``, ``{seed}``, ``{member}``; default ``{log_dir}/seed_{seed}``.
            compile_net: ``torch.compile`` the network in place (``nn.Module.compile``, same
                state_dict) at ``setup``. Default False: ×0.91–0.97 per CPU step here after a
                first compilation of 30–40 s; needs a C++ compiler, recompiles for new input shapes.
            backend: ``"auto"`` (default), ``"torch"`` or ``"fused"``: the C++ CPU kernels of
                :mod:`lightning_sig.nn.fused` (3×3 conv + bias + f + 2×2 max pooling, forward and
                backward, one net or S members) or torch's ops; auto = fused on CPU when the
                kernels build (first use: a ~1 min compilation, cached), else torch. The same
                function up to float rounding (tests/test_fused.py). Resolved at ``setup`` (one
                info line names it) or at the first forward; ``self.backend`` holds the result.
            adam_eps: Adam's ε (> 0), default 1e-8, torch's default. An assumption: the paper
                (Keras) does not state it, and Keras' default is 1e-7, which damps the updates of
                coordinates whose gradients are below ~1e-7 (the vanishing regime) more.

        Raises:
            ValueError: bad family or α (see :class:`~lightning_sig.ScaledActivation`), r negative
                or not finite, lr or adam_eps not > 0, unknown init scheme, init_scale not > 0,
                num_members < 1, bad member_seeds or member_log_dir, unknown backend or
                ``"fused"`` with ``compile_net``.
        """
        super().__init__()
        check_backend(backend, compile_net)
        l2_strength = _check_number("l2_strength (r)", l2_strength, 0.0, strict=False)
        lr = _check_number("lr", lr, 0.0, strict=True)
        self.adam_eps = _check_number("adam_eps", adam_eps, 0.0, strict=True)
        if init == "paper":
            init, default_scale = self.paper_init
            init_scale = default_scale if init_scale is None else init_scale
        init_scale = 1.0 if init_scale is None else init_scale
        member_seeds = resolve_member_seeds(num_members, member_seeds)
        check_member_log_dir(member_log_dir)
        self.save_hyperparameters()
        self.hparams["member_seeds"] = member_seeds  # resolved; LightningCLI records the given None
        if member_seeds is None:  # the seed_everything value; its "init" stream (lightning_sig.seeds)
            self.net = build_initialised_net(self.spec, activation, alpha, learnable_alpha, init,
                                             init_scale, zero_bias, torch.initial_seed())
        else:
            self.net = MemberConvNet(build_member_nets(
                self.spec, activation, alpha, learnable_alpha, init, init_scale, zero_bias,
                member_seeds))
        self.num_members, self.member_seeds = num_members, member_seeds
        self.member_logger: Optional[MemberLogger] = None
        self._member_eval = {"val": MemberEvalMetrics(), "test": MemberEvalMetrics()}
        self.l2_strength, self.lr = l2_strength, lr
        self.backend: Optional[str] = None  # "torch" | "fused", see _resolve_backend
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes=self.spec.num_classes, average="micro")
            for _ in range(3))

    def __setattr__(self, name: str, value: object) -> None:
        if name == FX_NAME_ATTRIBUTE:  # set by Lightning around each hook, ~45 times a step:
            object.__setattr__(self, name, value)  # a str/None; nn.Module's checks cost ~4 µs
            return
        super().__setattr__(name, value)

    def penalized_parameters(self) -> List[nn.Parameter]:
        """Weights and biases θ of the net: every trainable parameter except learnable α."""
        return [p for n, p in self.net.named_parameters()
                if p.requires_grad and not n.endswith("log_alpha")]

    def penalty_gradients(self) -> Dict[Tensor, Tensor]:
        """∇ of the explicit l2 term r/2·Σθ² at each θ: r·θ (Sec. 2.2); empty when r = 0.

        The protocol of :mod:`lightning_sig.gradients.penalty`, through which the
        GradientQuantileCallback logs the data-loss gradient g − r·θ (``grad_data/*``).
        """
        if self.l2_strength == 0:
            return {}
        params = self._penalized_cached()
        with torch.no_grad():  # no detach per tensor: one fused call
            return dict(zip(params, foreach_mul(params, self.l2_strength)))

    def penalty_l2(self) -> Optional[Tuple[float, List[nn.Parameter]]]:
        """(r, [θ]) of the explicit l2 term r/2·Σθ² (Sec. 2.2), or None when r = 0: the
        optional fast path of :mod:`lightning_sig.gradients.penalty` (g − r·θ as one flat
        operation instead of a mapping per step). The list is cached: do not modify it."""
        return None if self.l2_strength == 0 else (float(self.l2_strength),
                                                   self._penalized_cached())

    def _penalized_cached(self) -> List[nn.Parameter]:
        """:meth:`penalized_parameters`, cached per ``self.net`` (a walk costs ~0.5 ms)."""
        cache = self.__dict__.get("_penalized_cache")
        if cache is None or cache[0] is not self.net:
            cache = (self.net, self.penalized_parameters())
            object.__setattr__(self, "_penalized_cache", cache)
        return cache[1]

    def _resolve_backend(self, device: Optional[torch.device] = None) -> str:
        """Resolve the ``backend`` hyperparameter once into ``self.backend`` (see
        :func:`~lightning_sig.nn.fused.backend.resolve_backend`) and log it."""
        if self.backend is None:
            self.backend, why = resolve_backend(self.hparams.get("backend", "auto"), self.net,
                                                device, bool(self.hparams.get("compile_net")))
            rank_zero_info(f"{type(self).__name__}: backend={self.backend} ({why}); "
                           f"{thread_report()}")
        return self.backend

    def _use_fused(self, x: Tensor) -> bool:
        return self._resolve_backend() == "fused" and x.device.type == "cpu" \
            and x.dtype in (torch.float32, torch.float64)

    @override
    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 32, 32) float images → (N, 10) logits; with S > 1 members (S, N, 3, 32, 32) or
        (N, 3, 32, 32) → (S, N, 10) (both shapes: :mod:`lightning_sig.members.interface`)."""
        return fused_forward(self.net, x) if self._use_fused(x) else self.net(x)

    @override
    def training_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        if self.member_seeds is not None:
            return self._member_training_step(batch)
        x, y = batch
        if getattr(self, "_compiled", False) or not hasattr(self.net, "forward_penalized"):
            logits = self(x)
            penalty = l2_penalty(self.penalized_parameters(), self.l2_strength)
        elif self._use_fused(x):  # the C++ kernels (lightning_sig.nn.fused)
            logits, penalty = fused_forward_penalized(self.net, x, self.l2_strength)
        else:  # α folding and l2 term in one autograd node (lightning_sig.nn.folding)
            logits, penalty = self.net.forward_penalized(x, self.l2_strength)
        data_loss = F.cross_entropy(logits, y)
        loss = data_loss + penalty
        if training_batch_logs_now(attached_trainer(self)):
            self.train_acc(logits, y)
            self.log_dict({"train/loss": loss, "train/acc": self.train_acc},
                          on_step=True, on_epoch=False, prog_bar=True)
            self.log_dict({"train/data_loss": data_loss, "train/l2_penalty": penalty},
                          on_step=True, on_epoch=False)
        return loss

    def _evaluate(self, batch: Tuple[Tensor, Tensor], stage: str, metric: MulticlassAccuracy) -> None:
        x, y = batch
        logits = self(x)
        if self.member_seeds is not None:
            self._member_eval[stage].update(logits, y)
            return
        metric.update(logits, y)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, sync_dist=True)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True)

    @override
    def validation_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    @override
    def test_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    @override
    def on_fit_start(self) -> None:
        self._fit_summary = FitSummary.start()

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_member_eval("val")
        summary = getattr(self, "_fit_summary", None)
        if summary is not None and not self.trainer.sanity_checking:
            summary.add_epoch(self.trainer.callback_metrics.get("val/acc"))

    @override
    def on_fit_end(self) -> None:
        """One line on the console: epochs and steps, wall time, last and best val/acc, log dir
        (``no logger`` when the Trainer has none)."""
        summary, trainer = getattr(self, "_fit_summary", None), self.trainer
        if summary is not None:
            log_dir = trainer.log_dir if trainer.loggers else None
            rank_zero_info(summary.line(fit_progress(trainer), log_dir))

    @override
    def on_test_epoch_end(self) -> None:
        self._log_member_eval("test")

    @override
    def setup(self, stage: str) -> None:
        """Same Lightning namespace as the Trainer; ``compile_net``; members: refuse coupling
        settings, give the DataModule the member seeds (when it has ``member_seeds`` unset),
        open the per-member loggers."""
        check_namespace(self, attached_trainer(self))
        if self.hparams.get("compile_net") and not getattr(self, "_compiled", False):
            self.net.compile()
            self._compiled = True
        trainer = attached_trainer(self)
        self._resolve_backend(trainer.strategy.root_device if trainer is not None else None)
        if self.member_seeds is not None:
            self._setup_members()

    @override
    def on_load_checkpoint(self, checkpoint: Dict) -> None:
        """Adam states saved as fused by a newer torch load on one without fused kernels for
        the device (:func:`~lightning_sig.nn.optim.portable_adam_state`)."""
        trainer = attached_trainer(self)
        device = trainer.strategy.root_device.type if trainer is not None else "cpu"
        for state in checkpoint.get("optimizer_states", []):
            portable_adam_state(state, device)

    @override
    def teardown(self, stage: str) -> None:
        if self.member_logger is not None:
            self.member_logger.close()
            self.member_logger = None

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the module's ``lr`` (Sec. 3); no weight decay: the l2 term is in the loss.
        Fused (one kernel for all parameters) where torch has fused Adam for the device; see
        :func:`lightning_sig.nn.optim.adam`."""
        return adam(self.parameters(), self.lr, eps=self.adam_eps)


class LargeParamsNetMixin(SigmoidNetModuleMixin):
    """Table 1 network, large-parameters regime (Sec. 3.1, Figure 1).

    3 blocks × 2 convs (3 channels), dense 8, output 10; paper init U[−10, 10).
    Same arguments as :class:`SigmoidNetModule`.
    """

    spec = TABLE1
    paper_init = ("uniform", 10.0)


class ManyLayersNetMixin(SigmoidNetModuleMixin):
    """Table 2 network, many-layers regime (Sec. 3.2, Figure 2).

    3 blocks × 3 convs (3 channels), dense 8, 8, 8, 8, output 10; paper init N(0, 0.05²).
    Same arguments as :class:`SigmoidNetModule`.
    """

    spec = TABLE2
    paper_init = ("normal", 0.05)


class CombinedNetMixin(SigmoidNetModuleMixin):
    """Table 3 network, combined regime (Sec. 3.3, Figures 3–4).

    3 blocks × 2 convs (3 channels), dense 8, 8, 8, output 10; paper init U[−10, 10).
    Same arguments as :class:`SigmoidNetModule`.
    """

    spec = TABLE3
    paper_init = ("uniform", 10.0)
