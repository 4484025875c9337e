"""``python -m lightning_sig.sweep --members K``: K seeds of an arm in one process, filed as K runs.

Why: the paper's study is 25 seeds of tiny networks per arm (Ven & Lederer, arXiv 2106.02260,
Sec. 3). One process per seed pays Python/Lightning start-up per seed and leaves much of a
step idle; ``num_members = S`` (:mod:`lightning_sig.members`) trains S seeds at once, member s
being a separate run with ``seed_everything(s)`` up to float rounding of the grouped kernels.
Measured on this 2-core CPU at the ``Trainer.fit`` level with the fused kernels
(benchmarks/RESULTS.md): 10 members 4.2-5.1x, 25 members 4.6-5.3x the throughput of
sequential torch runs; GPU not measured.

This module runs one group process (argv:
:func:`~lightning_sig.experiments.sweep_commands.group_command`; the process itself:
:mod:`lightning_sig.experiments.sweep_process`) and then completes each member's
``<out>/<figure>/<arm>/seed_<s>/`` (where the member wrote its TensorBoard files) so that it
reads like a separate run's for :mod:`lightning_sig.experiments.figure_data`.
Choices made here (design assumptions, not from the paper):

* ``hparams.yaml`` of member s = the group's (written by Lightning into the group directory) with
  ``num_members: 1``, ``member_seeds: null`` and ``member_log_dir`` the module default: what a
  separate run of the same config and overrides records (a run's seed is not an hparam).
* ``DONE`` of member s: the fields of a separate run's marker, ``wall_time_s`` = the group's
  wall time (one process trained them all, so the runtime table shows the group's time per run:
  compare arms within sweeps of one ``--members``), plus ``members`` (the group's seeds),
  ``group_wall_time_s``, ``group_dir`` and ``log`` (the group's train.log).
* Resume: the sweep groups only unfinished seeds (a finished run is never rerun); a killed
  group resumes from its last end-of-epoch checkpoint when the same seeds are planned again
  (:mod:`lightning_sig.experiments.sweep_process`), else its directories are deleted and it is
  trained again from the start.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

from lightning_sig.experiments.sweep_commands import group_command
from lightning_sig.experiments.sweep_layout import (LOG_NAME, RunSpec, group_dir, read_marker,
                                                    run_dir, write_marker)
from lightning_sig.experiments.sweep_process import run_task_process
from lightning_sig.members.interface import DEFAULT_MEMBER_LOG_DIR

__all__ = ["run_group", "member_hparams", "file_members"]


def member_hparams(group_hparams: dict) -> dict:
    """A member's hparams from its group's: ``num_members`` 1, ``member_seeds`` None,
    ``member_log_dir`` the default (those of a separate run; other keys unchanged)."""
    return dict(group_hparams, num_members=1, member_seeds=None,
                member_log_dir=DEFAULT_MEMBER_LOG_DIR)


def file_members(group: Sequence[RunSpec], out: Path, record: dict) -> None:
    """After the group process exited 0: each member's ``hparams.yaml`` (when the group has
    one), then its ``DONE`` marker (``record`` with the member's seed), written last."""
    source = group_dir(out, group) / "hparams.yaml"
    hparams = (yaml.safe_load(source.read_text()) or {}) if source.is_file() else None
    for spec in group:
        directory = run_dir(out, spec.figure, spec.arm, spec.seed)
        directory.mkdir(parents=True, exist_ok=True)
        if hparams is not None:
            (directory / "hparams.yaml").write_text(yaml.safe_dump(member_hparams(hparams)))
        write_marker(directory, dict(record, seed=spec.seed))


def run_group(group: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str],
              threads: int, jobs: int = 1) -> dict:
    """Train the >= 2 seeds of ``group`` (one figure and arm) in one process; file each member
    as a finished run (:func:`file_members`) if it exits 0.

    The group directory is resumed, kept or cleaned as
    :func:`~lightning_sig.experiments.sweep_process.run_task_process` says (a clean
    restart also deletes the members' unfinished directories). Returns the group's record:
    ``returncode``, ``wall_time_s`` (s, this process), ``members``, ...

    Raises:
        RuntimeError: a member is finished already (the sweep groups unfinished runs only).
        ValueError: fewer than 2 seeds (one seed is a plain run:
            :func:`lightning_sig.experiments.sweep_task.run_one`).
    """
    if len(group) < 2:
        raise ValueError(f"run_group needs >= 2 seeds, got {len(group)}; run one seed with "
                         f"lightning_sig.experiments.sweep_task.run_one")
    out = Path(out)
    dirs = [run_dir(out, s.figure, s.arm, s.seed) for s in group]
    if any(read_marker(d) is not None for d in dirs):
        raise RuntimeError(f"refusing to restart member group {group_dir(out, group)}: it "
                           f"holds finished runs")
    target = group_dir(out, group)
    record = run_task_process(group, target, [*dirs, target],
                              group_command(group, out, epochs, overrides), epochs, overrides,
                              threads, jobs)
    record.update(members=[s.seed for s in group], group_wall_time_s=record["wall_time_s"],
                  group_dir=str(target.resolve()), log=str((target / LOG_NAME).resolve()))
    if record["returncode"] == 0:
        file_members(group, out, record)
    return record
