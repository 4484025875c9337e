"""The LightningCLI entry point: ``python train.py fit --config configs/...yaml``.

The model class comes from the config (``model.class_path``: one of our LightningModules or any
subclass of :class:`~lightning_sig.modules.SigmoidNetModule`), the data from
:class:`~lightning_sig.CIFAR10DataModule`. Without a logger in the config, Lightning's default
TensorBoardLogger is used.

Resuming into the same TensorBoard run (``--ckpt_path ... --trainer.logger.init_args.version N``)
keeps that run's ``config.yaml`` and writes the resumed run's config next to it as
``config_resumed.yaml`` (Lightning's own SaveConfigCallback would refuse to start).

Errors: a ``ValueError`` or ``FileNotFoundError`` raised by this package's code (a bad
argument, a truncated batch file, ``val_split`` too large) prints as ``error: <message>`` plus
the usual tip and exits with status 2, like jsonargparse's own parse errors (which are
unchanged); others keep their traceback. A run that fails before training leaves no empty
``version_N`` (:class:`~lightning_sig.lightning.failed_start.RemoveFailedStartLogs`). Option
names must be spelt out: argparse's prefix matching is off (``--trainer.max_step 50`` is an
error, not ``max_steps``).
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import List, Optional

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback

from lightning_sig.lightning.data import CIFAR10DataModule
from lightning_sig.speedups import use_fast_event_crc
from lightning_sig.lightning.modules import SigmoidNetModule
from lightning_sig.lightning.failed_start import RemoveFailedStartLogs

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
    TensorBoard's event files get the C checksum (:func:`~lightning_sig.event_crc.use_fast_event_crc`).

    Raises:
        SystemExit: status 2 for jsonargparse's parse errors and for a ValueError or
            FileNotFoundError raised by this package (printed as one ``error:`` line).
    """
    use_fast_event_crc()
    try:
        return LightningCLI(SigmoidNetModule, CIFAR10DataModule, subclass_mode_model=True,
                            save_config_callback=ResumeSaveConfigCallback, args=args, run=run,
                            parser_kwargs=_no_abbreviations(),
                            trainer_defaults={"callbacks": [RemoveFailedStartLogs()]})
    except (ValueError, FileNotFoundError) as err:
        own = _own_error(err)
        if own is None:
            raise
        _exit_with_error(own, sys.argv[1:] if args is None else args)


_SUBCOMMANDS = ("fit", "validate", "test", "predict")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _no_abbreviations() -> dict:
    """LightningCLI ``parser_kwargs``: argparse's ``allow_abbrev=False`` for the main parser
    and every subcommand's (``--trainer.max_step`` must not be read as ``max_steps``)."""
    return {"allow_abbrev": False, **{name: {"allow_abbrev": False} for name in _SUBCOMMANDS}}


def _own_error(err: Optional[BaseException]) -> Optional[BaseException]:
    """The first ValueError/FileNotFoundError in ``err``'s chain (itself, then its
    ``__cause__``/``__context__``, as jsonargparse wraps errors of a class's ``__init__``)
    whose innermost traceback frame is in the lightning_sig package; None if there is none."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        frames = traceback.extract_tb(err.__traceback__)
        if isinstance(err, (ValueError, FileNotFoundError)) and frames and \
                os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIR + os.sep):
            return err
        err = err.__cause__ or err.__context__
    return None


def _exit_with_error(err: BaseException, args) -> None:
    """Print ``err`` as one ``error:`` line and the usual tip (stderr); exit with status 2."""
    script = os.path.basename(sys.argv[0])  # "-c" for the sweep's children
    prog = f"python {script}" if script.endswith(".py") and script != "__main__.py" else \
        "python train.py"
    command = next((a for a in (args or []) if isinstance(a, str) and a in _SUBCOMMANDS), "")
    message = " ".join(str(err).split())  # one line
    print(" ".join(f"tip: For details of accepted options run: {prog} {command}".split())
          + f" --help\nerror: {message}", file=sys.stderr)
    raise SystemExit(2)
