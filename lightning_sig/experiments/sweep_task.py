"""One task of a sweep, the unit both launchers run: a plain run (one seed, :func:`run_one`) or
a ``--members`` group (:func:`~lightning_sig.experiments.sweep_members.run_group`), then the
summaries of its runs (:func:`~lightning_sig.experiments.summary_sweep.summarize_runs`).

The local launcher calls :func:`run_task` in a thread per task; the submitit launcher pickles
it into each array task. Its arguments are plain values (no
:class:`~lightning_sig.experiments.sweep_plan.Plan`), so a task is small to send and reads
nothing but its own folders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from lightning_sig.experiments import summary_sweep
from lightning_sig.experiments.sweep_commands import train_command
from lightning_sig.experiments.sweep_layout import RunSpec, read_marker, run_dir, write_marker
from lightning_sig.experiments.sweep_members import run_group
from lightning_sig.experiments.sweep_process import run_task_process

__all__ = ["run_one", "run_task"]


def run_one(spec: RunSpec, out: Path, epochs: int, overrides: Sequence[str], threads: int,
            jobs: int = 1) -> dict:
    """Train one run in a subprocess; write its DONE marker if it exits 0.

    An unfinished directory of the run is resumed from its last end-of-epoch checkpoint, kept
    when it holds Lightning's ``hpc_ckpt`` (a SLURM requeue), else deleted first
    (:mod:`lightning_sig.experiments.sweep_process`). The child gets ``OMP_NUM_THREADS =
    MKL_NUM_THREADS = threads``. Returns the marker record (with ``returncode``;
    ``wall_time_s`` in seconds of this process, start-up included).

    Raises:
        RuntimeError: the run is finished already (its DONE marker exists).
    """
    directory = run_dir(out, spec.figure, spec.arm, spec.seed)
    if read_marker(directory) is not None:
        raise RuntimeError(f"refusing to restart finished run {directory}")
    record = run_task_process([spec], directory, [directory],
                              train_command(spec, out, epochs, overrides), epochs, overrides,
                              threads, jobs)
    if record["returncode"] == 0:
        write_marker(directory, record)
    return record


def run_task(group: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str],
             threads: int, jobs: int, summaries: Optional[Path] = None) -> dict:
    """One task, i.e. one process: a plain run (:func:`run_one`) or a member group
    (``run_group``); then, with ``summaries``, the runs' summaries (a failure to summarize is
    recorded as ``summary_error``, not raised). Returns its record (``returncode``,
    ``wall_time_s``, ...)."""
    if len(group) == 1:
        record = run_one(group[0], out, epochs, overrides, threads, jobs)
    else:
        record = run_group(group, out, epochs, overrides, threads, jobs)
    if summaries is not None and record["returncode"] == 0:
        try:
            summary_sweep.summarize_runs(group, out, summaries)
        except ValueError as err:
            record["summary_error"] = str(err)
    return record
