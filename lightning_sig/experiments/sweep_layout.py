"""Where a sweep keeps its runs: the names of the folders and files of ``<out>`` and the two
small records it writes there (a run's ``DONE`` marker, a figure's ``sweep.json`` manifest).

Why a module of its own: the sweep writes this layout and the figure code
(:mod:`lightning_sig.experiments.figure_data`, :mod:`lightning_sig.experiments.summary`) reads
it, so both take the names from here and nothing else. It imports no other module of the package.

Layout of a sweep directory ``<out>``::

    <out>/<figure>/sweep.json              figures' manifest: arms, seeds, epochs asked for
    <out>/<figure>/<arm>/seed_<s>/         one LightningCLI run = TensorBoardLogger log_dir
    <out>/<figure>/<arm>/seed_<s>/DONE     JSON written after the run exited 0 (wall time, command)
    <out>/<figure>/<arm>/seed_<s>/train.log   the run's stdout and stderr
    <out>/<figure>/<arm>/members_<a>-<b>/  with ``--members K > 1``: the Lightning run of the
                                           process training seeds a..b at once (checkpoints,
                                           config.yaml, train.log); its members write into
                                           their own seed_<s>/ (ignored by the figure code)

A figure is a folder of ``configs/`` (e.g. ``fig1_large_params``), an arm one ``*.yaml`` in it
(e.g. ``regularized``). :func:`run_dir` is the only place that names a run's directory and
:func:`group_dir` the only place that names a member group's (``num_members``, see
:mod:`lightning_sig.experiments.sweep_members`).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["DONE_NAME", "LOG_NAME", "MANIFEST_NAME", "SEED_DIR_TEMPLATE", "SEED_DIR_PATTERN",
           "RunSpec", "seed_dir_name", "run_dir", "group_dir_name", "group_dir", "task_label",
           "task_log", "read_marker", "write_marker", "update_manifest", "has_hpc_checkpoint"]

DONE_NAME = "DONE"
LOG_NAME = "train.log"
MANIFEST_NAME = "sweep.json"
SEED_DIR_TEMPLATE = "seed_{seed}"
SEED_DIR_PATTERN = re.compile(r"^seed_(\d+)$")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: ``config`` (a ``configs/<figure>/<arm>.yaml``) trained with ``seed``."""

    figure: str
    arm: str
    config: Path
    seed: int

    @property
    def label(self) -> str:
        """``<figure>/<arm>/seed_<s>``, for progress lines."""
        return f"{self.figure}/{self.arm}/{seed_dir_name(self.seed)}"


def seed_dir_name(seed: int) -> str:
    """``seed_<s>``: the TensorBoardLogger version of a run with ``seed_everything = s``."""
    return SEED_DIR_TEMPLATE.format(seed=seed)


def run_dir(out: Path, figure: str, arm: str, seed: int) -> Path:
    """``<out>/<figure>/<arm>/seed_<s>``: the run's TensorBoard log_dir and marker location."""
    return Path(out) / figure / arm / seed_dir_name(seed)


def group_dir_name(seeds: Sequence[int]) -> str:
    """The TensorBoardLogger version of a member group's process: ``members_<a>-<b>`` for the
    consecutive seeds a..b, else its runs of consecutive seeds joined by ``+``
    (``members_3+7+12-14``: the group of the unfinished seeds 3, 7, 12, 13, 14)."""
    runs: List[List[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return "members_" + "+".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def group_dir(out: Path, group: Sequence[RunSpec]) -> Path:
    """``<out>/<figure>/<arm>/members_<a>-<b>``: log_dir of the process training ``group``."""
    first = group[0]
    return Path(out) / first.figure / first.arm / group_dir_name([s.seed for s in group])


def task_label(group: Sequence[RunSpec]) -> str:
    """Progress label: ``<figure>/<arm>/seed_<s>`` for one seed, else ``.../members_<a>-<b>``."""
    if len(group) == 1:
        return group[0].label
    return f"{group[0].figure}/{group[0].arm}/{group_dir_name([s.seed for s in group])}"


def task_log(group: Sequence[RunSpec], out: Path) -> Path:
    """The train.log of a task: in the run directory (one seed) or the group directory."""
    if len(group) == 1:
        return run_dir(out, group[0].figure, group[0].arm, group[0].seed) / LOG_NAME
    return group_dir(out, group) / LOG_NAME


def has_hpc_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds Lightning's SLURM requeue checkpoint ``hpc_ckpt_<n>.ckpt``:
    an interrupted run that Lightning resumes by itself, so the sweep restarts it in place
    (its folder kept, its train.log appended) instead of from scratch."""
    return any(Path(directory).glob("hpc_ckpt_*.ckpt"))


def read_marker(directory: Path) -> Optional[dict]:
    """The DONE marker's JSON of a run directory, or None if the run is not finished."""
    path = Path(directory) / DONE_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # finished (the marker exists) but its content is unreadable


def write_marker(directory: Path, record: dict) -> None:
    """Write the DONE marker atomically (a crash never leaves a half-written marker)."""
    tmp = Path(directory) / (DONE_NAME + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, Path(directory) / DONE_NAME)


def update_manifest(out: Path, figure: str, arms: Sequence[str], seeds: Sequence[int],
                    epochs: int) -> None:
    """Merge arms and seeds into ``<out>/<figure>/sweep.json`` (what the figures expect to find)."""
    path = Path(out) / figure / MANIFEST_NAME
    old = json.loads(path.read_text()) if path.is_file() else {}
    record = {"arms": sorted(set(old.get("arms", [])) | set(arms)),
              "seeds": sorted(set(old.get("seeds", [])) | set(seeds)), "epochs": epochs}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
