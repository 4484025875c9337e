"""lightning_sig's Lightning classes built on ``pytorch_lightning`` (the package pytorch-lightning).

``from lightning_sig.lightning.pytorch_lightning import CombinedNet, CIFAR10DataModule, GradientQuantileCallback``
gives classes that a ``pytorch_lightning.Trainer`` accepts; see :mod:`lightning_sig.lightning.namespace`.
These are also the top-level ``lightning_sig.CombinedNet`` etc. (their ``__module__`` is
``lightning_sig``, the name the configs' ``class_path`` s use).
"""
from __future__ import annotations

from lightning_sig.lightning.namespace import build_classes

_classes = build_classes("pytorch_lightning")
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

__all__ = ["SigmoidNetModule", "LargeParamsNet", "ManyLayersNet", "CombinedNet",
           "CIFAR10DataModule", "GradientQuantileCallback", "NonFiniteLossGuard", "SaturationMonitor",
           "ResumeSaveConfigCallback", "RemoveFailedStartLogs"]
