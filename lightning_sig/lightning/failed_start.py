"""RemoveFailedStartLogs: a run that fails before training leaves no empty ``version_N`` behind.

Why: Lightning opens the loggers (``logger.experiment``, which creates the TensorBoard
``version_N`` folder and an events file) before it calls the DataModule's ``setup``. A bad
input found there (a truncated batch file, ``val_split`` too large) then leaves a new folder
holding only an events file without data, and the next run becomes ``version_N+1``. The
LightningCLI entry point (:func:`lightning_sig.lightning.cli.main`) adds this callback to every
Trainer it builds; it is not part of the configs (``--print_config`` does not show it).
"""
from __future__ import annotations

import glob
import os
import socket
from typing import TYPE_CHECKING, List

from typing_extensions import override
from lightning_sig.lightning.mixin_bases import CallbackBase

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["RemoveFailedStartLogsMixin", "own_event_files"]


class RemoveFailedStartLogsMixin(CallbackBase):
    """On an exception before this callback's ``setup`` hook ran (i.e. in ``prepare_data`` or
    the DataModule's ``setup``, or earlier), delete what the loggers wrote for this run.

    On global rank 0, for each logger with a ``log_dir`` that exists: close its writer, delete
    the TensorBoard events files this process created there (named
    ``events.out.tfevents.<time>.<host>.<pid>.*``), then remove the folder if it is empty.
    Files of other processes (an earlier run resumed into the same version) are never touched,
    and nothing is deleted once ``setup`` succeeded (a later failure keeps its logs).

    Example::

        trainer = pl.Trainer(callbacks=[RemoveFailedStartLogs()])
    """

    def __init__(self) -> None:
        """No arguments: the callback reads the Trainer's loggers when a run fails."""
        super().__init__()
        self._setup_done = False

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._setup_done = True

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._setup_done = False  # per fit/validate/test call

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self._setup_done or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            log_dir = getattr(logger, "log_dir", None)
            if log_dir and os.path.isdir(log_dir):
                own = own_event_files(log_dir)
                if own:
                    logger.finalize("failed")  # closes the events file (Lightning does so again)
                for path in own:
                    os.remove(path)
                if not os.listdir(log_dir):
                    os.rmdir(log_dir)


def own_event_files(log_dir: str) -> List[str]:
    """The TensorBoard events files in ``log_dir`` written by this process (host and pid in
    the name, as TensorBoard's ``EventFileWriter`` names them)."""
    pattern = f"events.out.tfevents.*.{glob.escape(socket.gethostname())}.{os.getpid()}.*"
    return sorted(glob.glob(os.path.join(glob.escape(log_dir), pattern)))
