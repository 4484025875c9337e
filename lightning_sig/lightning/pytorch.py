"""lightning_sig's classes for ``lightning.pytorch`` (the package lightning, ``pip install
lightning``).

``from lightning_sig.lightning.pytorch import CombinedNet, CIFAR10DataModule,
GradientQuantileCallback`` gives classes that a ``lightning.pytorch.Trainer`` accepts; their
``pytorch_lightning`` twins are ``lightning_sig.CombinedNet`` etc.
(:mod:`lightning_sig.lightning.pytorch_lightning`). Each class is its mixin's body (where the
full docstring and the arguments are) on this namespace's base class; see
:mod:`lightning_sig.lightning.namespace`. The pure-torch public names (``ScaledActivation``, ...)
are re-exported, so every public name of ``lightning_sig`` is importable from here too
(the one list: :mod:`lightning_sig.public_names`).

The CLI on this namespace reads the same configs (their ``pytorch_lightning`` class paths are
translated): ``python -m lightning_sig.lightning.pytorch fit --config configs/...yaml``.
"""
from __future__ import annotations

import functools

import lightning.pytorch as pl
from lightning.pytorch.cli import SaveConfigCallback

from lightning_sig.lightning.cli import main as _main
from lightning_sig.lightning.data import CIFAR10DataModuleMixin
from lightning_sig.lightning.failed_start import RemoveFailedStartLogsMixin
from lightning_sig.lightning.grad_callback import GradientQuantileCallbackMixin
from lightning_sig.lightning.modules import CombinedNetMixin, LargeParamsNetMixin, \
    ManyLayersNetMixin, SigmoidNetModuleMixin
from lightning_sig.lightning.nonfinite import NonFiniteLossGuardMixin
from lightning_sig.lightning.resume_config import ResumeSaveConfigCallbackMixin
from lightning_sig.lightning.saturation_monitor import SaturationMonitorMixin
from lightning_sig.nn.activations import ACTIVATIONS, ScaledActivation, scaled_activation
from lightning_sig.nn.convnets import TABLE1, TABLE2, TABLE3, ConvNetSpec, SigmoidConvNet, \
    init_parameters
from lightning_sig.speedups import disable_speedups, enable_speedups
from lightning_sig.thread_choice import choose_threads, restore_threads

__all__ = [
    # Lightning classes for lightning.pytorch (public_names.LIGHTNING_CLASSES, CLI_CLASSES)
    "SigmoidNetModule", "LargeParamsNet", "ManyLayersNet", "CombinedNet", "CIFAR10DataModule",
    "GradientQuantileCallback", "NonFiniteLossGuard", "SaturationMonitor",
    "ResumeSaveConfigCallback", "RemoveFailedStartLogs",
    # pure torch, re-exported (public_names.TORCH_NAMES)
    "ACTIVATIONS", "ScaledActivation", "scaled_activation", "ConvNetSpec", "SigmoidConvNet",
    "TABLE1", "TABLE2", "TABLE3", "init_parameters", "enable_speedups", "disable_speedups",
    "choose_threads", "restore_threads",
    # the LightningCLI on lightning.pytorch
    "main"]


class SigmoidNetModule(SigmoidNetModuleMixin, pl.LightningModule):
    """Base LightningModule for ``lightning.pytorch``: a paper network trained with Adam on
    CE + r/2·Σθ² (Sec. 2.2).

    Subclass it with ``spec`` and ``paper_init``, or use :class:`LargeParamsNet`,
    :class:`ManyLayersNet`, :class:`CombinedNet`. Arguments, logged metrics and errors:
    :class:`~lightning_sig.lightning.modules.SigmoidNetModuleMixin`.
    """


class LargeParamsNet(LargeParamsNetMixin, SigmoidNetModule):
    """Table 1 network, large-parameters regime (Sec. 3.1, Figure 1), for ``lightning.pytorch``.

    Paper init U[−10, 10). Arguments: :class:`SigmoidNetModule`'s.
    """


class ManyLayersNet(ManyLayersNetMixin, SigmoidNetModule):
    """Table 2 network, many-layers regime (Sec. 3.2, Figure 2), for ``lightning.pytorch``.

    Paper init N(0, 0.05²). Arguments: :class:`SigmoidNetModule`'s.
    """


class CombinedNet(CombinedNetMixin, SigmoidNetModule):
    """Table 3 network, combined regime (Sec. 3.3, Figures 3–4), for ``lightning.pytorch``.

    Paper init U[−10, 10). Arguments: :class:`SigmoidNetModule`'s.
    """


class CIFAR10DataModule(CIFAR10DataModuleMixin, pl.LightningDataModule):
    """CIFAR-10 from the official python-version batches, held in memory, for
    ``lightning.pytorch``.

    Arguments, splits and the seeded epoch order:
    :class:`~lightning_sig.lightning.data.CIFAR10DataModuleMixin`.
    """


class GradientQuantileCallback(GradientQuantileCallbackMixin, pl.Callback):
    """The paper's gradient statistics (bottom panels of Figures 1–4), per optimizer step, per
    layer and globally, and per epoch, for ``lightning.pytorch``.

    Arguments, tags and timing:
    :class:`~lightning_sig.lightning.grad_callback.GradientQuantileCallbackMixin`.
    """


class NonFiniteLossGuard(NonFiniteLossGuardMixin, pl.Callback):
    """Stop or continue training when the loss becomes non-finite; keep the last good
    checkpoint. For ``lightning.pytorch``.

    Arguments: :class:`~lightning_sig.lightning.nonfinite.NonFiniteLossGuardMixin`.
    """


class SaturationMonitor(SaturationMonitorMixin, pl.Callback):
    """Saturated fraction and mean f_α′(z) of every sigmoid-type activation layer on logging
    steps (saturation, Sec. 2.2, or depth, Sec. 2.3), for ``lightning.pytorch``.

    Arguments and tags: :class:`~lightning_sig.lightning.saturation_monitor.SaturationMonitorMixin`.
    """


class ResumeSaveConfigCallback(ResumeSaveConfigCallbackMixin, SaveConfigCallback):
    """The CLI's SaveConfigCallback for ``lightning.pytorch``: a resumed run keeps the log dir's
    ``config.yaml`` and writes ``config_resumed.yaml``.

    See :class:`~lightning_sig.lightning.resume_config.ResumeSaveConfigCallbackMixin`.
    """


class RemoveFailedStartLogs(RemoveFailedStartLogsMixin, pl.Callback):
    """The CLI's callback for ``lightning.pytorch`` that deletes the logs of a run failing
    before training (no empty ``version_N``).

    See :class:`~lightning_sig.lightning.failed_start.RemoveFailedStartLogsMixin`.
    """


#: ``main(args=None, run=True)``: the LightningCLI on ``lightning.pytorch``
#: (:func:`lightning_sig.lightning.cli.main`).
main = functools.partial(_main, namespace="lightning.pytorch")

if __name__ == "__main__":
    main()
