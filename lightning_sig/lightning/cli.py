"""The LightningCLI entry points: ``python train.py fit --config configs/...yaml``
(``pytorch_lightning``) and ``python -m lightning_sig.lightning.pytorch fit --config ...``
(``lightning.pytorch``).

The model class comes from the config (``model.class_path``: one of our LightningModules or any
subclass of ``SigmoidNetModule``), the data from ``CIFAR10DataModule``. Without a logger in the
config, Lightning's default TensorBoardLogger is used. The CLI turns on the process-wide
speed-ups of :mod:`lightning_sig.speedups` and prints what it turned on, and sets one intra-op
thread for the paper nets while the subcommand runs, unless ``OMP_NUM_THREADS`` (or an earlier
``torch.set_num_threads``) says otherwise (:func:`lightning_sig.thread_choice.choose_threads`;
restored when :func:`main` returns; the model's ``backend=...`` line says which count is in
force and why).

The configs name ``pytorch_lightning`` classes (``lightning_sig.CombinedNet``,
``pytorch_lightning.loggers.TensorBoardLogger``). The ``lightning.pytorch`` entry point reads
the same files: :func:`translate_class_paths` maps those names to their ``lightning.pytorch``
twins (``lightning_sig.lightning.pytorch.CombinedNet``, ``lightning.pytorch.loggers...``) in
the config files and on the command line before LightningCLI parses them.

Resuming into the same TensorBoard run (``--ckpt_path ... --trainer.logger.init_args.version N``)
keeps that run's ``config.yaml`` and writes the resumed run's config next to it as
``config_resumed.yaml`` (Lightning's own SaveConfigCallback would refuse to start;
:mod:`lightning_sig.lightning.resume_config`).

Errors (:mod:`lightning_sig.lightning.cli_errors`): our own ``ValueError`` s print as one
``error:`` line (exit status 2); option abbreviations are off. A run that fails before training
leaves no empty ``version_N`` (:mod:`lightning_sig.lightning.failed_start`).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional

from lightning_utilities.core.rank_zero import rank_zero_info

from lightning_sig.lightning.cli_errors import exit_with_error, no_abbreviations, own_error
from lightning_sig.lightning.namespace import lightning_classes
from lightning_sig.public_names import CLI_CLASSES, LIGHTNING_CLASSES, PUBLIC_MODULES
from lightning_sig.speedups import enable_speedups, speedup_report
from lightning_sig.thread_choice import choose_threads, restore_threads

__all__ = ["main", "translate_class_paths"]

#: ``lightning_sig.<Name>`` or ``lightning_sig.lightning.pytorch_lightning.<Name>`` for each of
#: our Lightning classes (the one list, :mod:`lightning_sig.public_names`).
_OURS = re.compile(r"(?<![\w.])lightning_sig\.(?:lightning\.pytorch_lightning\.)?("
                   + "|".join(LIGHTNING_CLASSES + CLI_CLASSES) + r")\b")
#: ``pytorch_lightning.<x>`` of the package itself (not of
#: ``lightning_sig.lightning.pytorch_lightning``).
_PL = re.compile(r"(?<![\w.])pytorch_lightning\.")
_TWINS = PUBLIC_MODULES["lightning.pytorch"]
_CONFIG_FLAGS = ("--config", "-c")


def translate_class_paths(text: str) -> str:
    """``pytorch_lightning`` class paths in ``text`` → their ``lightning.pytorch`` twins:
    ``lightning_sig.<Name>`` and ``lightning_sig.lightning.pytorch_lightning.<Name>`` →
    ``lightning_sig.lightning.pytorch.<Name>`` for each of our Lightning classes
    (:data:`~lightning_sig.public_names.LIGHTNING_CLASSES`, ``CLI_CLASSES``), and
    ``pytorch_lightning.<x>`` → ``lightning.pytorch.<x>``."""
    return _PL.sub("lightning.pytorch.", _OURS.sub(_TWINS + r".\1", text))


def _translated_args(args: List[str]) -> List[str]:
    """Command-line ``args`` for the ``lightning.pytorch`` CLI: class paths translated, and each
    ``--config FILE`` replaced by the translated YAML text (jsonargparse takes either)."""
    out: List[str] = []
    for arg in args:
        flag, eq, value = arg.partition("=")
        if out and out[-1] in _CONFIG_FLAGS and not arg.startswith("-") and Path(arg).is_file():
            out.append(translate_class_paths(Path(arg).read_text()))
        elif eq and flag in _CONFIG_FLAGS and Path(value).is_file():
            out.append(f"{flag}={translate_class_paths(Path(value).read_text())}")
        else:
            out.append(translate_class_paths(arg))
    return out


def main(args: Optional[List[str]] = None, run: bool = True,
         namespace: str = "pytorch_lightning"):
    """Run the CLI (``args`` defaults to ``sys.argv[1:]``) on ``namespace``
    (``pytorch_lightning`` or ``lightning.pytorch``); returns the LightningCLI object.

    Raises:
        SystemExit: status 2 with one ``error:`` line for our own ValueError/FileNotFoundError
            (:func:`~lightning_sig.lightning.cli_errors.own_error`); jsonargparse's exits.
        ValueError: unknown ``namespace``. ImportError: its package is not installed.
    """
    import importlib

    classes = lightning_classes(namespace)
    cli_module = importlib.import_module(f"{namespace}.cli")
    if namespace == "lightning.pytorch":
        args = _translated_args(list(sys.argv[1:] if args is None else args))
    rank_zero_info(speedup_report(enable_speedups()))
    if run:  # the subcommand runs here, with our thread choice; restored when it returns
        choose_threads()
    try:
        cli = cli_module.LightningCLI(
            classes["SigmoidNetModule"], classes["CIFAR10DataModule"], subclass_mode_model=True,
            save_config_callback=classes["ResumeSaveConfigCallback"], args=args, run=run,
            parser_kwargs=no_abbreviations(),
            trainer_defaults={"callbacks": [classes["RemoveFailedStartLogs"]()]})
    except (ValueError, FileNotFoundError) as err:
        own = own_error(err)
        if own is None:
            raise
        exit_with_error(own, sys.argv[1:] if args is None else args)
    finally:
        restore_threads()
    exit_if_terminated(cli.trainer if run else None)
    return cli


def exit_if_terminated(trainer) -> None:
    """Exit with status 143 (128 + SIGTERM) when Lightning stopped ``trainer`` on a SIGTERM.

    Lightning catches SIGTERM, ends the fit early and returns normally, so the process would
    exit 0 and a sweep would file a run cut short as finished; 143 is the status of a process
    killed by SIGTERM, what schedulers and our sweep read as "interrupted".
    """
    if trainer is not None and getattr(trainer, "received_sigterm", False):
        rank_zero_info("lightning_sig: the fit was stopped by SIGTERM before its end; exit 143.")
        raise SystemExit(143)
