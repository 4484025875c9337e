"""LightningModules for the paper's three CIFAR-10 experiments (Sec. 3, Tables 1–3).

The objective is cross-entropy + r/2·Σθ² (Sec. 2.2), the l2 term added explicitly in
``training_step`` rather than as the optimizer's ``weight_decay``: the gradient the optimizer
(and the GradientQuantileCallback) sees is exactly the gradient of the regularized objective,
whatever optimizer a user swaps in through the CLI.
"""
from __future__ import annotations

import math
from typing import ClassVar, Dict, List, Optional, Tuple

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_sig.models import TABLE1, TABLE2, TABLE3, ConvNetSpec, SigmoidConvNet, \
    init_parameters

__all__ = ["SigmoidNetModule", "LargeParamsNet", "ManyLayersNet", "CombinedNet", "l2_penalty"]


def l2_penalty(params: List[Tensor], r: float) -> Tensor:
    """The paper's l2 term r/2·Σθ² over ``params`` (Sec. 2.2); a 0-dim tensor, 0 when r = 0."""
    if r == 0 or not params:
        return torch.zeros((), device=params[0].device if params else None)
    return 0.5 * r * torch.stack([p.square().sum() for p in params]).sum()


def _check_number(name: str, value: object, minimum: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


class SigmoidNetModule(pl.LightningModule):
    """Base LightningModule: a paper network (``spec``) trained with Adam on CE + r/2·Σθ².

    Subclasses set ``spec`` (the architecture) and ``paper_init`` (the paper's initialisation
    for that experiment). Use :class:`LargeParamsNet`, :class:`ManyLayersNet` or
    :class:`CombinedNet`.

    Args:
        activation: activation family (``tanh``, ``sigmoid``/``logistic``, ``arctan``,
            ``softsign``, ``relu``, ``identity``, ``logsigmoid``); default ``tanh``.
        alpha: the scale α of f_α(z) = α·f(z/α) (eq. 1), finite and > 0; default 1.0.
        learnable_alpha: one trainable α per activation layer (excluded from the l2 term).
        l2_strength: the paper's r ≥ 0 (dimensionless); the loss is CE + r/2·Σθ² over all
            weights and biases (Sec. 2.2); default 0.
        lr: Adam's learning rate; default 1e-3 (Sec. 3).
        init: ``"paper"`` (the scheme of this experiment in the paper), ``"uniform"``,
            ``"normal"`` or ``"default"`` (PyTorch's); see :func:`~lightning_sig.models.init_parameters`.
        init_scale: half-width (uniform) or std (normal), > 0; None takes the paper's value for
            this experiment (10 for uniform, 0.05 for normal) or 1.0 otherwise.
        zero_bias: initialise biases at 0 instead of with the weights' scheme.

    Raises:
        ValueError: bad family or α (see :class:`~lightning_sig.ScaledActivation`), r negative
            or not finite, lr not > 0, unknown init scheme, init_scale not > 0.

    Logged metrics:
        ``train/loss`` (CE + penalty, nats), ``train/data_loss`` (CE, nats),
        ``train/l2_penalty`` (r/2·Σθ², nats), ``train/acc`` (fraction) per step;
        ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc`` per epoch.
    """

    spec: ClassVar[ConvNetSpec]
    paper_init: ClassVar[Tuple[str, float]]

    def __init__(self, activation: str = "tanh", alpha: float = 1.0, learnable_alpha: bool = False,
                 l2_strength: float = 0.0, lr: float = 1e-3, init: str = "paper",
                 init_scale: Optional[float] = None, zero_bias: bool = False) -> None:
        super().__init__()
        l2_strength = _check_number("l2_strength (r)", l2_strength, 0.0, strict=False)
        lr = _check_number("lr", lr, 0.0, strict=True)
        if init == "paper":
            init, default_scale = self.paper_init
            init_scale = default_scale if init_scale is None else init_scale
        init_scale = 1.0 if init_scale is None else init_scale
        self.save_hyperparameters()
        self.net = SigmoidConvNet(self.spec, activation, alpha, learnable_alpha)
        init_parameters(self.net, init, init_scale, zero_bias)
        self.l2_strength, self.lr = l2_strength, lr
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes=self.spec.num_classes, average="micro")
            for _ in range(3))

    def penalized_parameters(self) -> List[nn.Parameter]:
        """Weights and biases θ of the net: every trainable parameter except learnable α."""
        return [p for n, p in self.net.named_parameters()
                if p.requires_grad and not n.endswith("log_alpha")]

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 32, 32) float images → (N, 10) logits."""
        return self.net(x)

    def training_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        data_loss = F.cross_entropy(logits, y)
        penalty = l2_penalty(self.penalized_parameters(), self.l2_strength)
        loss = data_loss + penalty
        self.train_acc(logits, y)
        self.log_dict({"train/loss": loss, "train/data_loss": data_loss,
                       "train/l2_penalty": penalty, "train/acc": self.train_acc},
                      on_step=True, on_epoch=False)
        return loss

    def _evaluate(self, batch: Tuple[Tensor, Tensor], stage: str, metric: MulticlassAccuracy) -> None:
        x, y = batch
        logits = self(x)
        metric.update(logits, y)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, sync_dist=True)
        self.log(f"{stage}/acc", metric, on_epoch=True)

    def validation_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the module's ``lr`` (Sec. 3); no weight decay: the l2 term is in the loss."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class LargeParamsNet(SigmoidNetModule):
    """Table 1 network, large-parameters regime (Sec. 3.1, Figure 1).

    3 blocks × 2 convs (3 channels), dense 8, output 10; paper init U[−10, 10).
    Same arguments as :class:`SigmoidNetModule`.
    """

    spec = TABLE1
    paper_init = ("uniform", 10.0)


class ManyLayersNet(SigmoidNetModule):
    """Table 2 network, many-layers regime (Sec. 3.2, Figure 2).

    3 blocks × 3 convs (3 channels), dense 8, 8, 8, 8, output 10; paper init N(0, 0.05²).
    Same arguments as :class:`SigmoidNetModule`.
    """

    spec = TABLE2
    paper_init = ("normal", 0.05)


class CombinedNet(SigmoidNetModule):
    """Table 3 network, combined regime (Sec. 3.3, Figures 3–4).

    3 blocks × 2 convs (3 channels), dense 8, 8, 8, output 10; paper init U[−10, 10).
    Same arguments as :class:`SigmoidNetModule`.
    """

    spec = TABLE3
    paper_init = ("uniform", 10.0)
