"""lightning_sig's Lightning classes built on ``lightning.pytorch`` (the package lightning (``pip install lightning``)).

``from lightning_sig.lightning.pytorch import CombinedNet, CIFAR10DataModule, GradientQuantileCallback``
gives classes that a ``lightning.pytorch.Trainer`` accepts; see :mod:`lightning_sig.lightning.namespace`.
The CLI on this namespace reads the same configs (their ``pytorch_lightning`` class paths are
translated): ``python -m lightning_sig.lightning.pytorch fit --config configs/...yaml``.
"""
from __future__ import annotations

import functools

from lightning_sig.lightning.cli import main as _main
from lightning_sig.lightning.namespace import build_classes

_classes = build_classes("lightning.pytorch")
SigmoidNetModule = _classes["SigmoidNetModule"]
LargeParamsNet = _classes["LargeParamsNet"]
ManyLayersNet = _classes["ManyLayersNet"]
CombinedNet = _classes["CombinedNet"]
CIFAR10DataModule = _classes["CIFAR10DataModule"]
GradientQuantileCallback = _classes["GradientQuantileCallback"]
NonFiniteLossGuard = _classes["NonFiniteLossGuard"]
SaturationMonitor = _classes["SaturationMonitor"]
ResumeSaveConfigCallback = _classes["ResumeSaveConfigCallback"]
RemoveFailedStartLogs = _classes["RemoveFailedStartLogs"]
#: ``main(args=None, run=True)``: the LightningCLI on ``lightning.pytorch``.
main = functools.partial(_main, namespace="lightning.pytorch")

__all__ = ["SigmoidNetModule", "LargeParamsNet", "ManyLayersNet", "CombinedNet",
           "CIFAR10DataModule", "GradientQuantileCallback", "NonFiniteLossGuard", "SaturationMonitor",
           "ResumeSaveConfigCallback", "RemoveFailedStartLogs", "main"]

if __name__ == "__main__":
    main()
