"""The process of one sweep task (one run or one ``--members`` group) in its Lightning log dir:
resumed, kept or started clean, then run with its output in ``train.log``.

Why here and not in a launcher: both launchers (:mod:`~lightning_sig.experiments.sweep_local`,
:mod:`~lightning_sig.experiments.sweep_submitit`) run the same tasks
(:mod:`lightning_sig.experiments.sweep_task`), and a task killed anywhere (a stopped study, a
SLURM time limit) must come back the same way:

* a log dir holding Lightning's ``hpc_ckpt`` (a SLURM requeue) is kept and Lightning resumes it;
* one whose ``task.json`` records the same seeds and overrides and that holds a whole
  end-of-epoch checkpoint is resumed from it with ``--ckpt_path``
  (:mod:`lightning_sig.experiments.sweep_resume`);
* otherwise the task's folders are deleted first (a clean restart).

The record returned becomes the runs' ``DONE`` markers, with the provenance the sweep knows
(:mod:`lightning_sig.experiments.provenance`: ``commit``, ``dirty``, ``started_at``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence, Tuple

from lightning_sig.experiments.provenance import git_state, short_version, utc_now
from lightning_sig.experiments.sweep_layout import LOG_NAME, RunSpec, has_hpc_checkpoint
from lightning_sig.experiments.sweep_resume import read_started_at, resume_checkpoint, write_task

__all__ = ["run_process", "run_task_process"]


def run_process(command: Sequence[str], log_path: Path, threads: int,
                append: bool = False) -> Tuple[int, float]:
    """Run ``command`` with stdout+stderr into ``log_path`` (appended to with ``append``) and
    ``OMP_NUM_THREADS = MKL_NUM_THREADS = threads``; returns ``(returncode, wall time in s,
    start-up included)``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(log_path, "a" if append else "w") as log:
        returncode = subprocess.run(list(command), stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL).returncode
    return returncode, time.perf_counter() - start


def run_task_process(group: Sequence[RunSpec], log_dir: Path, owned: Sequence[Path],
                     command: Sequence[str], epochs: int, overrides: Sequence[str],
                     threads: int, jobs: int) -> dict:
    """Run one task's process (a run or a member group) in its Lightning ``log_dir``.

    ``log_dir`` is resumed, kept or started clean as the module docstring says (a clean start
    deletes every folder of ``owned``: the task's run directories and ``log_dir``). Returns the
    marker record: ``returncode``, ``wall_time_s`` (s, this process only), ``resumed_from``
    (the checkpoint's file name or None), ``commit``, ``dirty``, ``code_version``,
    ``started_at`` (the task's first start, kept across resumes), ``finished_at``, ...
    """
    seeds = [s.seed for s in group]
    requeued = has_hpc_checkpoint(log_dir)
    resume = None if requeued else resume_checkpoint(log_dir, seeds, overrides, epochs)
    continued = requeued or resume is not None
    started = read_started_at(log_dir) if continued else None
    if not continued:
        for directory in owned:
            if directory.exists():
                shutil.rmtree(directory)
    started = started or utc_now()
    write_task(log_dir, seeds, overrides, started)
    if resume is not None:
        command = [*command, "--ckpt_path", str(resume)]
    state = git_state()  # what the process imports: the checkout now
    returncode, wall = run_process(command, log_dir / LOG_NAME, threads, append=continued)
    first = group[0]
    return {"figure": first.figure, "arm": first.arm, "seed": first.seed,
            "config": str(Path(first.config).resolve()), "epochs": epochs,
            "overrides": list(overrides), "command": list(command), "returncode": returncode,
            "wall_time_s": wall, "threads": threads, "jobs": jobs, "finished_at": utc_now(),
            "code_version": short_version(state), **state, "started_at": started,
            "resumed_from": None if resume is None else resume.name}
