"""Read a sweep's TensorBoard event files into per-epoch numbers and aggregate them over seeds.

The paper's Figures 1-4 (Ven & Lederer, arXiv 2106.02260, Sec. 3) plot, per arm, the mean over
seeds of a per-epoch quantity with a shaded interquartile band. This module finds the runs of a
sweep (layout: :mod:`lightning_sig.experiments.sweep_layout`), reads their scalars with TensorBoard's own
``EventAccumulator`` and computes, per arm, tag and epoch: the number of seeds, their mean and
their 25 % / 75 % quantiles (numpy's "linear" rule). Missing runs, unfinished runs, missing tags
and missing epochs give a :class:`SweepDataWarning`, never an error.

Epochs: the tags read here are logged once per epoch (``val/acc`` after each validation,
``grad_epoch/...`` after each training epoch; tag schema of the GradientQuantileCallback), so the
k-th event of a tag (ordered by step) is epoch k, counted from 1 (= after k epochs of training).
A run that stopped early simply has fewer epochs. This is an assumption about the logging
schedule (one validation per epoch, Lightning's default): with ``val_check_interval < 1`` the
epochs of ``val/acc`` would be miscounted, which the reader detects and warns about.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from lightning_sig.experiments.sweep_layout import MANIFEST_NAME, SEED_DIR_PATTERN, read_marker
from lightning_sig.gradients.tag_groups import canonical_names

__all__ = ["SweepDataWarning", "Point", "RunLog", "ACC_TAG", "grad_tag", "find_figures",
           "read_run", "load_figure", "aggregate", "per_seed"]

ACC_TAG = "val/acc"
EPOCH_TAG = "epoch"  # logged by Lightning next to every metric: value = 0-based epoch
# Keep every scalar; load at most one histogram/tensor per tag (they are not plotted here).
_SIZE_GUIDANCE = {"scalars": 0, "histograms": 1, "tensors": 1, "images": 1, "audio": 1,
                  "compressedHistograms": 1}


class SweepDataWarning(UserWarning):
    """A run, epoch or tag the figures expected is missing (the figure is drawn without it)."""


#: ``--grad-source``: the gradient the optimizer sees (g = ∇CE + r·θ) or the data-loss one
#: (g − r·θ, logged by the GradientQuantileCallback for modules with an explicit l2 term).
GRAD_SOURCES = {"total": "grad_epoch", "data": "grad_data_epoch"}


def grad_tag(stat: str, layer: str = "global", source: str = "total") -> str:
    """Per-epoch gradient statistic tag: ``grad_epoch/<layer>/<stat>`` (e.g. stat ``abs_q50``),
    ``grad_data_epoch/...`` for ``source="data"``.

    Raises:
        ValueError: unknown ``source`` (lists the valid ones).
    """
    if source not in GRAD_SOURCES:
        raise ValueError(f"grad source {source!r} is not one of {sorted(GRAD_SOURCES)}")
    return f"{GRAD_SOURCES[source]}/{layer}/{stat}"


@dataclass(frozen=True)
class Point:
    """One per-epoch scalar: ``epoch`` from 1, the logged ``step``, ``wall_time`` (s), ``value``."""

    epoch: int
    step: int
    wall_time: float
    value: float


@dataclass
class RunLog:
    """The per-epoch scalars of one run (``series``: tag → points ordered by epoch).

    ``marker`` is the sweep's DONE record (None if the run did not finish); ``hparams`` the run's
    ``hparams.yaml`` written by Lightning (empty if absent); ``start_wall_time`` the timestamp
    (s since the epoch) of the run's first event, written when Lightning set up its logger.
    """

    figure: str
    arm: str
    seed: int
    path: Path
    series: Dict[str, List[Point]] = field(default_factory=dict)
    marker: Optional[dict] = None
    hparams: dict = field(default_factory=dict)
    start_wall_time: Optional[float] = None
    provenance: Optional[dict] = None  # summaries of schema /2 only (experiments.provenance)


def _warn(message: str) -> None:
    warnings.warn(message, SweepDataWarning, stacklevel=3)


def find_figures(sweep_dir: Path) -> Dict[str, Dict[str, Dict[int, Path]]]:
    """Figures of a sweep directory → arm → seed → run directory (``<fig>/<arm>/seed_<s>``).

    A figure is a sub-folder holding a ``sweep.json`` manifest or at least one seed directory.
    """
    found: Dict[str, Dict[str, Dict[int, Path]]] = {}
    for figure_dir in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir()):
        arms = {}
        for arm_dir in sorted(p for p in figure_dir.iterdir() if p.is_dir()):
            seeds = {int(m.group(1)): d for d in arm_dir.iterdir()
                     if d.is_dir() and (m := SEED_DIR_PATTERN.match(d.name))}
            if seeds:
                arms[arm_dir.name] = dict(sorted(seeds.items()))
        if arms or (figure_dir / MANIFEST_NAME).is_file():
            found[figure_dir.name] = arms
    return found


def read_run(path: Path, tags: Sequence[str]
             ) -> Tuple[Dict[str, List[Point]], int, Optional[float]]:
    """Read ``tags`` of one run directory with TensorBoard's EventAccumulator.

    Returns ``(series, n_epochs_logged, start_wall_time)``: tag → points with epoch = rank by
    step (from 1), for the tags present; the number of distinct values of Lightning's ``epoch``
    scalar (0 if absent), used to detect tags logged more than once per epoch; the first
    event's timestamp in seconds (None without events).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance=_SIZE_GUIDANCE)
    accumulator.Reload()
    present = canonical_names(accumulator.Tags().get("scalars", []))  # plain -> in the file
    series = {}
    for tag in tags:
        if tag in present:
            events = sorted(accumulator.Scalars(present[tag]),
                            key=lambda e: (e.step, e.wall_time))
            series[tag] = [Point(k + 1, e.step, e.wall_time, float(e.value))
                           for k, e in enumerate(events)]
    epochs = {int(e.value) for e in accumulator.Scalars(EPOCH_TAG)} if EPOCH_TAG in present \
        else set()
    try:
        start = accumulator.FirstEventTimestamp()
    except ValueError:  # no events at all
        start = None
    return series, len(epochs), start


def _expected(sweep_dir: Path, figure: str, found: Dict[str, Dict[int, Path]]
              ) -> Tuple[List[str], List[int], Optional[int]]:
    """Arms, seeds and epochs the figure should have: the sweep's manifest, else what was found."""
    manifest = Path(sweep_dir) / figure / MANIFEST_NAME
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        return list(record.get("arms", [])), list(record.get("seeds", [])), record.get("epochs")
    seeds = sorted({s for by_seed in found.values() for s in by_seed})
    return sorted(found), seeds, None


def _read_hparams(path: Path) -> dict:
    file = Path(path) / "hparams.yaml"
    if not file.is_file():
        return {}
    try:
        return yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError:
        _warn(f"{file} is not valid YAML; its arm's settings are unknown")
        return {}


def load_figure(sweep_dir: Path, figure: str, tags: Sequence[str]) -> List[RunLog]:
    """Every run of ``figure`` in ``sweep_dir`` with the ``tags`` it holds.

    Warns (:class:`SweepDataWarning`) about: expected runs that are absent, runs without a DONE
    marker (read anyway), runs with fewer epochs of ``val/acc`` than the sweep asked for, and
    a tag with more events than the run has epochs.

    Raises:
        ValueError: ``figure`` is not a figure of ``sweep_dir`` (lists the ones found).
    """
    figures = find_figures(sweep_dir)
    if figure not in figures:
        raise ValueError(f"figure {figure!r} not in sweep {str(sweep_dir)!r}; found: "
                         f"{', '.join(figures) or '(none)'}")
    found = figures[figure]
    arms, seeds, epochs = _expected(sweep_dir, figure, found)
    missing = [f"{a}/seed_{s}" for a in arms for s in seeds if s not in found.get(a, {})]
    if missing:
        _warn(f"{figure}: {len(missing)} run(s) missing: {', '.join(missing)}")
    runs = []
    for arm, by_seed in found.items():
        for seed, path in by_seed.items():
            series, n_epochs, start = read_run(path, tags)
            run = RunLog(figure, arm, seed, path, series, read_marker(path), _read_hparams(path),
                         start)
            _check_run(run, epochs, n_epochs)
            runs.append(run)
    return runs


def _check_run(run: RunLog, epochs: Optional[int], n_epochs: int) -> None:
    name = f"{run.figure}/{run.arm}/seed_{run.seed}"
    if run.marker is None:
        _warn(f"{name} has no DONE marker (unfinished or running); using the epochs it logged")
    logged = len(run.series.get(ACC_TAG, []))
    if epochs is not None and logged < epochs:
        _warn(f"{name} logged {ACC_TAG} for {logged} of {epochs} epochs")
    for tag, points in run.series.items():
        if n_epochs and len(points) > n_epochs:
            _warn(f"{name}: {tag} has {len(points)} events but the run logged {n_epochs} epochs "
                  f"(several per epoch?); epoch numbers of this tag are event ranks")


def aggregate(runs: Sequence[RunLog], tag: str) -> Dict[str, List[dict]]:
    """Per arm, per epoch statistics over seeds of ``tag``.

    Returns: arm → rows ordered by epoch, each ``{"epoch", "n_seeds", "mean", "median", "q25",
    "q75"}`` (quantiles: ``numpy.quantile`` method "linear" over the seeds that logged that
    epoch, so q25 ≤ median ≤ q75; non-finite values are kept, so a NaN in one seed makes that
    epoch's statistics NaN). Arms without the tag are absent. The figures draw the mean for
    accuracy (the paper's "averages over the runs") and the median for the log-scale gradient
    statistics, whose mean a few seeds orders of magnitude larger pull above the band
    (issue 20, part 6).
    """
    by_arm: Dict[str, Dict[int, List[float]]] = {}
    for run in runs:
        for point in run.series.get(tag, []):
            by_arm.setdefault(run.arm, {}).setdefault(point.epoch, []).append(point.value)
    result = {}
    for arm, by_epoch in sorted(by_arm.items()):
        rows = []
        for epoch, values in sorted(by_epoch.items()):
            array = np.asarray(values, dtype=np.float64)
            q25, median, q75 = np.quantile(array, [0.25, 0.5, 0.75])
            rows.append({"epoch": epoch, "n_seeds": array.size, "mean": float(array.mean()),
                         "median": float(median), "q25": float(q25), "q75": float(q75)})
        result[arm] = rows
    return result


def per_seed(runs: Sequence[RunLog], tag: str) -> Dict[str, Dict[int, List[Point]]]:
    """arm → seed → the run's points of ``tag`` (for drawing every seed as a thin line)."""
    out: Dict[str, Dict[int, List[Point]]] = {}
    for run in runs:
        if run.series.get(tag):
            out.setdefault(run.arm, {})[run.seed] = run.series[tag]
    return out

