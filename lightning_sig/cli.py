"""The LightningCLI entry point: ``python train.py fit --config configs/...yaml``.

The model class comes from the config (``model.class_path``: one of our LightningModules or any
subclass of :class:`~lightning_sig.modules.SigmoidNetModule`), the data from
:class:`~lightning_sig.CIFAR10DataModule`. Without a logger in the config, Lightning's default
TensorBoardLogger is used.
"""
from __future__ import annotations

from typing import List, Optional

from pytorch_lightning.cli import LightningCLI

from lightning_sig.data import CIFAR10DataModule
from lightning_sig.modules import SigmoidNetModule

__all__ = ["main"]


def main(args: Optional[List[str]] = None, run: bool = True) -> LightningCLI:
    """Run the CLI (``args`` defaults to ``sys.argv[1:]``); returns the LightningCLI object."""
    return LightningCLI(SigmoidNetModule, CIFAR10DataModule, subclass_mode_model=True,
                        args=args, run=run)
