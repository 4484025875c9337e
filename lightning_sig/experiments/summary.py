"""Run summaries: a few KB of JSON per finished run, enough to draw every figure without events.

Why: the paper's study is 10 arms × 25 seeds (Ven & Lederer, arXiv 2106.02260, Sec. 3). Event
files and checkpoints stay on the machine that trained; a summary per run can be committed, so a
sweep started from a clean clone on another machine continues where the last one stopped
(``python -m lightning_sig.sweep ... --summaries DIR`` treats a run with a summary as done) and
``python -m lightning_sig.figures DIR`` draws Figures 1-4 and the runtime table from them alone.
The sweep's side (a summary = a finished run; summaries written after each run) is
:mod:`lightning_sig.experiments.summary_sweep`; a summary is built from a run's event files by
:mod:`lightning_sig.experiments.summary_build`. This module is the format: where summaries
lie, writing and reading them, and reading them back as the figures' ``RunLog``.

Layout: ``<summaries>/<figure>/<arm>/seed_<s>.json`` (plus the sweep's ``<figure>/sweep.json``
manifest). One file holds (schema :data:`SCHEMA`):

* ``figure``, ``arm``, ``seed``, ``code_version`` (7 hex digits of the commit the sweep started
  the run on, ``-dirty`` if tracked files differed; older markers: ``git describe``),
  ``provenance`` (schema /2: commit, dirty, torch, lightning, cpu, isa, denormals, threads,
  backend, started_at, finished_at; :mod:`lightning_sig.experiments.provenance`), ``config``
  (the run's LightningCLI ``config.yaml``, parsed, its absolute paths made machine-free:
  :func:`portable_paths`), ``hparams`` (``hparams.yaml``), ``marker`` (the sweep's DONE record
  without machine paths: epochs, overrides, wall_time_s, threads, jobs, finished_at, members,
  resumed_from);
* ``start_wall_time`` (s since the Unix epoch: the first event) and ``n_epochs``;
* ``series``: tag → ``{"step": [...], "value": [...]}``, one entry per epoch, for ``val/acc``,
  ``val/loss``, ``train/loss``, ``grad_epoch/<layer>/*`` and ``grad_data_epoch/<layer>/*``
  (layers: :data:`DEFAULT_LAYERS`) and ``act/*`` (activation saturation, when logged);
  ``val/acc`` also keeps ``wall_time`` (s after ``start_wall_time``, for the fit time).

Choices (assumptions, documented): values are float32 in the event files and are written as
their shortest float32 decimal, so they read back bit-exactly (:func:`summary_to_run`); ``train/loss`` is logged per step
and is stored as the mean over the epoch's logged steps (the epoch of a step from Lightning's
``epoch`` scalar at that step; its ``step`` is the epoch's last logged step); any other tag with
more events than the run has epochs is reduced the same way; points read back from a summary
have ``wall_time`` NaN except ``val/acc`` (whose wall times are kept to the millisecond).
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from lightning_sig.experiments.figure_data import ACC_TAG, Point, RunLog, SweepDataWarning, _warn
from lightning_sig.experiments.provenance_check import provenance_of
from lightning_sig.experiments.sweep_layout import MANIFEST_NAME, SEED_DIR_PATTERN, seed_dir_name

__all__ = ["SCHEMA", "SCHEMAS", "code_version", "launch_code_version", "summary_path",
           "write_summary", "read_summary", "summary_to_run", "find_summaries", "load_summaries",
           "is_summary_dir", "SweepDataWarning"]

SCHEMA = "lightning_sig.run_summary/2"
#: schemas :func:`read_summary` reads: /1 (no provenance; the 10-seed study in
#: reproduction/full/) and /2
SCHEMAS = ("lightning_sig.run_summary/1", SCHEMA)


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """:func:`launch_code_version` at the first call of this process (cached)."""
    return launch_code_version()


def launch_code_version() -> str:
    """``git describe --always --dirty`` of the checkout holding this package now (not
    cached: the sweep records it when it starts a run, since the checkout may change while a
    run trains), else the installed ``lightning_sig`` version, else ``"unknown"``."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=here,
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return importlib.metadata.version("lightning_sig")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _from_f32(value: float) -> float:
    """Inverse of :func:`lightning_sig.experiments.summary_build._f32`: the exact float32 value (as logged) of a stored decimal."""
    return float(np.float32(value)) if math.isfinite(value) else float(value)


def summary_path(summaries: Path, figure: str, arm: str, seed: int) -> Path:
    """``<summaries>/<figure>/<arm>/seed_<s>.json``."""
    return Path(summaries) / figure / arm / f"{seed_dir_name(seed)}.json"


def write_summary(summaries: Path, summary: dict) -> Path:
    """Write ``summary`` atomically to its :func:`summary_path`; returns the path."""
    path = summary_path(summaries, summary["figure"], summary["arm"], summary["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, separators=(",", ":"), sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_summary(path: Path) -> dict:
    """The summary in ``path``.

    Raises:
        ValueError: not JSON, or not a summary of a schema in :data:`SCHEMAS` (names the
            file).
    """
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a JSON run summary: {err}") from None
    if not isinstance(record, dict) or record.get("schema") not in SCHEMAS:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path} is not a run summary of schema {' or '.join(SCHEMAS)} "
                         f"(found {found!r})")
    return record


def summary_to_run(summary: dict, path: Path) -> RunLog:
    """A :class:`~lightning_sig.experiments.figure_data.RunLog` like ``load_figure``'s for the run
    (epoch = rank from 1; ``wall_time`` absolute, NaN where the summary keeps none)."""
    start = summary.get("start_wall_time")
    series = {}
    for tag, columns in summary["series"].items():
        walls = columns.get("wall_time")
        series[tag] = [Point(k + 1, int(step), (start + walls[k]) if walls and start is not None
                             else math.nan, _from_f32(value))
                       for k, (step, value) in enumerate(zip(columns["step"], columns["value"]))]
    return RunLog(summary["figure"], summary["arm"], int(summary["seed"]), Path(path), series,
                  summary.get("marker") or {}, summary.get("hparams") or {}, start,
                  provenance_of(summary))


def find_summaries(summaries: Path) -> Dict[str, Dict[str, Dict[int, Path]]]:
    """Figure → arm → seed → summary file of a summaries folder (``seed_<s>.json`` files)."""
    found: Dict[str, Dict[str, Dict[int, Path]]] = {}
    for figure_dir in sorted(p for p in Path(summaries).iterdir() if p.is_dir()):
        arms = {}
        for arm_dir in sorted(p for p in figure_dir.iterdir() if p.is_dir()):
            seeds = {int(m.group(1)): f for f in arm_dir.glob("seed_*.json")
                     if (m := SEED_DIR_PATTERN.match(f.stem))}
            if seeds:
                arms[arm_dir.name] = dict(sorted(seeds.items()))
        if arms:
            found[figure_dir.name] = arms
    return found


def is_summary_dir(path: Path) -> bool:
    """Whether ``path`` holds at least one ``<figure>/<arm>/seed_<s>.json``."""
    return Path(path).is_dir() and bool(find_summaries(path))


def load_summaries(summaries: Path, figure: str, tags: Optional[Sequence[str]] = None
                   ) -> List[RunLog]:
    """Every run of ``figure`` in a summaries folder, as ``figure_data.load_figure`` gives them.

    ``tags`` restricts the series (default: all). Warns (:class:`SweepDataWarning`) about runs of
    the folder's ``sweep.json`` manifest without a summary and runs with fewer ``val/acc`` epochs
    than their marker's budget.

    Raises:
        ValueError: ``figure`` has no summaries (lists the figures found), or a file is not a
            summary (:func:`read_summary`).
    """
    found = find_summaries(summaries)
    if figure not in found:
        raise ValueError(f"figure {figure!r} has no summaries in {str(summaries)!r}; found: "
                         f"{', '.join(found) or '(none)'}")
    manifest = Path(summaries) / figure / MANIFEST_NAME
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        missing = [f"{a}/seed_{s}" for a in record.get("arms", []) for s in record.get("seeds", [])
                   if s not in found[figure].get(a, {})]
        if missing:
            _warn(f"{figure}: {len(missing)} run(s) without a summary: {', '.join(missing)}")
    runs = []
    for arm, by_seed in found[figure].items():
        for seed, path in by_seed.items():
            run = summary_to_run(read_summary(path), path)
            if tags is not None:
                run.series = {t: p for t, p in run.series.items() if t in tags}
            epochs = run.marker.get("epochs")
            logged = len(run.series.get(ACC_TAG, []))
            if epochs is not None and logged < epochs and (tags is None or ACC_TAG in tags):
                _warn(f"{figure}/{arm}/seed_{seed} logged {ACC_TAG} for {logged} of {epochs} epochs")
            runs.append(run)
    return runs
