"""The LightningCLI entry point: ``python train.py fit --config configs/...yaml``.

The model class comes from the config (``model.class_path``: one of our LightningModules or any
subclass of :class:`~lightning_sig.modules.SigmoidNetModule`), the data from
:class:`~lightning_sig.CIFAR10DataModule`. Without a logger in the config, Lightning's default
TensorBoardLogger is used.

Resuming into the same TensorBoard run (``--ckpt_path ... --trainer.logger.init_args.version N``)
keeps that run's ``config.yaml`` and writes the resumed run's config next to it as
``config_resumed.yaml`` (Lightning's own SaveConfigCallback would refuse to start).
"""
from __future__ import annotations

import os
from typing import List, Optional

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback

from lightning_sig.lightning.data import CIFAR10DataModule
from lightning_sig.speedups import use_fast_event_crc
from lightning_sig.lightning.modules import SigmoidNetModule

__all__ = ["main", "ResumeSaveConfigCallback"]


class ResumeSaveConfigCallback(SaveConfigCallback):
    """SaveConfigCallback that lets a run given ``ckpt_path`` continue an existing log dir.

    If ``fit`` is given ``ckpt_path`` and the log dir already holds ``config.yaml``, this run's
    config is saved as ``config_resumed.yaml`` (overwriting an earlier resume's); the original
    is kept.
    Otherwise Lightning's behaviour is unchanged (it refuses to overwrite an existing config).
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.config.get("ckpt_path") is not None and trainer.log_dir:
            exists = os.path.isfile(os.path.join(trainer.log_dir, self.config_filename))
            if trainer.strategy.broadcast(exists):
                self.config_filename, self.overwrite = "config_resumed.yaml", True
        super().setup(trainer, pl_module, stage)


def main(args: Optional[List[str]] = None, run: bool = True) -> LightningCLI:
    """Run the CLI (``args`` defaults to ``sys.argv[1:]``); returns the LightningCLI object.
    TensorBoard's event files get the C checksum (:func:`~lightning_sig.event_crc.use_fast_event_crc`)."""
    use_fast_event_crc()
    return LightningCLI(SigmoidNetModule, CIFAR10DataModule, subclass_mode_model=True,
                        save_config_callback=ResumeSaveConfigCallback, args=args, run=run)
