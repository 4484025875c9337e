"""ResumeSaveConfigCallback: the LightningCLI's SaveConfigCallback for runs that resume into an
existing log dir (``--ckpt_path ... --trainer.logger.init_args.version N``).

Lightning's own SaveConfigCallback refuses to start when the log dir already holds a
``config.yaml``; this one keeps that file and writes the resumed run's config next to it as
``config_resumed.yaml``. The LightningCLI entry point (:func:`lightning_sig.lightning.cli.main`)
uses it for every run.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from typing_extensions import override
from lightning_sig.lightning.mixin_bases import SaveConfigCallbackBase

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["ResumeSaveConfigCallbackMixin"]


class ResumeSaveConfigCallbackMixin(SaveConfigCallbackBase):
    """SaveConfigCallback that lets a run given ``ckpt_path`` continue an existing log dir.

    If ``fit`` is given ``ckpt_path`` and the log dir already holds ``config.yaml``, this run's
    config is saved as ``config_resumed.yaml`` (overwriting an earlier resume's); the original
    is kept. Otherwise Lightning's behaviour is unchanged (it refuses to overwrite an existing
    config). The arguments are the namespace's ``SaveConfigCallback`` 's (the LightningCLI
    passes them).
    """

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.config.get("ckpt_path") is not None and trainer.log_dir:
            exists = os.path.isfile(os.path.join(trainer.log_dir, self.config_filename))
            if trainer.strategy.broadcast(exists):
                self.config_filename, self.overwrite = "config_resumed.yaml", True
        super().setup(trainer, pl_module, stage)
