"""The command line of a sweep task's process, and the overrides it refuses because it sets
them itself.

A task is one run (:func:`train_command`) or one ``--members`` group of seeds of an arm trained
in one process (:func:`group_command`). Its process is ``python -c _CHILD <log dir> fit ...``:
the LightningCLI run of ``python train.py fit`` from any directory, then ``provenance.json``
into its log dir (:func:`lightning_sig.experiments.provenance.child_main`). The folders the
commands name are those of :mod:`lightning_sig.experiments.sweep_layout`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Sequence

from lightning_sig.experiments.sweep_layout import (SEED_DIR_TEMPLATE, RunSpec, group_dir_name,
                                                    seed_dir_name)

__all__ = ["RESERVED_OVERRIDES", "MEMBER_KEYS", "check_overrides", "check_member_overrides",
           "train_command", "group_command"]

#: Keys the sweep sets itself; passing them through would break the run layout.
RESERVED_OVERRIDES = ("--config", "--seed_everything", "--trainer.max_epochs",
                      "--trainer.logger", "--trainer.default_root_dir")
#: Module/DataModule options that ``--members K > 1`` sets itself (see :func:`group_command`).
MEMBER_KEYS = ("num_members", "member_seeds", "member_log_dir")
#: = python train.py from any directory, then provenance.json into the log dir (argv[1])
_CHILD = "import sys; from lightning_sig.experiments.provenance import child_main; child_main(sys.argv.pop(1))"


def check_overrides(overrides: Sequence[str]) -> None:
    """Raise ValueError if an override sets what the sweep sets (:data:`RESERVED_OVERRIDES`)."""
    for token in overrides:
        key = token.split("=", 1)[0]
        if any(key == r or key.startswith(r + ".") for r in RESERVED_OVERRIDES):
            raise ValueError(f"override {token!r} is set by the sweep itself; use the sweep's "
                             f"--seeds, --epochs and --out instead (reserved: "
                             f"{', '.join(RESERVED_OVERRIDES)})")


def check_member_overrides(overrides: Sequence[str], members: int) -> None:
    """With ``members > 1``, refuse overrides naming what the sweep sets per group process.

    Raises:
        ValueError: a token of ``overrides`` mentions one of :data:`MEMBER_KEYS` (as an option
            such as ``--model.init_args.num_members=5`` or inside a dict value), naming it.
    """
    if members == 1:
        return
    for token in overrides:
        if any(key in token for key in MEMBER_KEYS):
            raise ValueError(f"override {token!r} conflicts with --members {members}, which sets "
                             f"{', '.join(MEMBER_KEYS)} of every group process itself; drop the "
                             f"override or use --members 1")


def train_command(spec: RunSpec, out: Path, epochs: int, overrides: Sequence[str] = ()) -> List[str]:
    """argv of the LightningCLI run of ``spec`` (``python train.py fit ...`` from any directory).

    The logger's save_dir/name/version put the TensorBoard files in
    :func:`~lightning_sig.experiments.sweep_layout.run_dir`, and ``default_root_dir`` is that
    folder too (where Lightning's SLURM auto-requeue saves and looks for
    ``hpc_ckpt_<n>.ckpt``; the default, the working directory, would be shared by all runs);
    the progress bar is off (the sweep prints progress) unless an override turns it on.
    """
    return _command(spec, out, epochs, seed_dir_name(spec.seed), overrides)


def _command(spec: RunSpec, out: Path, epochs: int, version: str,
             overrides: Sequence[str]) -> List[str]:
    log_dir = Path(out).resolve() / spec.figure / spec.arm / version
    return [sys.executable, "-c", _CHILD, str(log_dir), "fit",
            "--config", str(Path(spec.config).resolve()),
            "--seed_everything", str(spec.seed), "--trainer.max_epochs", str(epochs),
            "--trainer.default_root_dir", str(log_dir),
            "--trainer.logger.init_args.save_dir", str(Path(out).resolve()),
            "--trainer.logger.init_args.name", f"{spec.figure}/{spec.arm}",
            "--trainer.logger.init_args.version", version,
            "--trainer.enable_progress_bar", "false", *overrides]


def group_command(group: Sequence[RunSpec], out: Path, epochs: int,
                  overrides: Sequence[str] = ()) -> List[str]:
    """argv of the one process that trains the seeds of ``group`` as ``num_members`` members.

    A group of one seed is :func:`train_command` (the module refuses ``member_seeds`` for one
    network). Otherwise the Lightning run (checkpoints, config.yaml) goes to
    :func:`~lightning_sig.experiments.sweep_layout.group_dir` with ``seed_everything`` = the
    first seed, and member s writes its metrics into the run directory of seed s
    (``member_log_dir``: an absolute path, braces in it escaped). The member options come after
    ``overrides`` (a later ``--model`` class cannot drop them).
    """
    if len(group) == 1:
        return train_command(group[0], out, epochs, overrides)
    seeds = [s.seed for s in group]
    arm_dir = str(Path(out).resolve() / group[0].figure / group[0].arm)
    template = os.path.join(arm_dir.replace("{", "{{").replace("}", "}}"), SEED_DIR_TEMPLATE)
    return [*_command(group[0], out, epochs, group_dir_name(seeds), overrides),
            "--model.init_args.num_members", str(len(seeds)),
            "--model.init_args.member_seeds", str(seeds),
            "--model.init_args.member_log_dir", template]
