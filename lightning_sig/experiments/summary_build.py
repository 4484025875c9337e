"""Building a run summary (:mod:`lightning_sig.experiments.summary`) from a finished run's
TensorBoard event files, ``DONE`` marker, configs and ``provenance.json``.

Why apart from the format: building needs TensorBoard's ``EventAccumulator`` and makes the
choices written in :mod:`~lightning_sig.experiments.summary`'s docstring (one value per epoch,
the shortest float32 decimal, machine paths removed); reading a summary needs none of that.
Called by the sweep after each task (:mod:`lightning_sig.experiments.summary_sweep`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from lightning_sig.experiments.figure_data import ACC_TAG, EPOCH_TAG, _SIZE_GUIDANCE, _warn
from lightning_sig.experiments.provenance import FIELDS as PROVENANCE_FIELDS, read_provenance
from lightning_sig.experiments.summary import SCHEMA, code_version
from lightning_sig.experiments.sweep_layout import read_marker
from lightning_sig.gradients.tag_groups import canonical_names

__all__ = ["DEFAULT_LAYERS", "select_tags", "build_summary", "portable_paths"]

DEFAULT_LAYERS = ("global",)
PER_EPOCH_TAGS = (ACC_TAG, "val/loss", "train/loss")
LAYER_PREFIXES = ("grad_epoch", "grad_data_epoch")
ACT_PREFIX = "act/"
_MARKER_KEYS = ("epochs", "overrides", "returncode", "wall_time_s", "threads", "jobs",
                "finished_at", "members", "group_wall_time_s", "code_version", "resumed_from")
_SWEEP_PROVENANCE = ("commit", "dirty", "started_at", "finished_at")


def select_tags(tags: Sequence[str], layers: Sequence[str] = DEFAULT_LAYERS) -> List[str]:
    """The tags of ``tags`` a summary keeps (module docstring), sorted."""
    keep = []
    for tag in tags:
        parts = tag.split("/")
        if tag in PER_EPOCH_TAGS or (parts[0] in LAYER_PREFIXES and len(parts) == 3
                                     and parts[1] in layers):
            keep.append(tag)
        elif tag.startswith(ACT_PREFIX) and (len(parts) < 3 or parts[1] in layers):
            keep.append(tag)
    return sorted(keep)


def _f32(value: float) -> float:
    """The float32 nearest ``value`` as a float whose repr is the shortest float32 decimal."""
    if not math.isfinite(value):
        return value
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def _epoch_of_steps(accumulator, present) -> List[Tuple[int, int]]:
    """Sorted (step, 0-based epoch) pairs from Lightning's ``epoch`` scalar."""
    if EPOCH_TAG not in present:
        return []
    return sorted({(e.step, int(e.value)) for e in accumulator.Scalars(EPOCH_TAG)})


def _per_epoch(events, epoch_map: List[Tuple[int, int]], n_epochs: int) -> Tuple[list, list]:
    """(steps, values) with one entry per epoch: the events themselves if at most one per
    epoch, else the mean per epoch of Lightning's ``epoch`` scalar (last step of each)."""
    events = sorted(events, key=lambda e: (e.step, e.wall_time))
    if len(events) <= max(n_epochs, 1) or not epoch_map:
        return [e.step for e in events], [_f32(e.value) for e in events]
    steps = [s for s, _ in epoch_map]
    by_epoch: Dict[int, list] = {}
    for e in events:
        i = max(0, int(np.searchsorted(steps, e.step, side="right")) - 1)
        by_epoch.setdefault(epoch_map[i][1], []).append(e)
    out_steps = [by_epoch[k][-1].step for k in sorted(by_epoch)]
    # mean in float64 of the float32 values, stored as float32 like the logged ones
    out_values = [_f32(float(np.mean([e.value for e in by_epoch[k]]))) for k in sorted(by_epoch)]
    return out_steps, out_values


def _latest_per_step(events) -> list:
    """One event per step, the last written: a run resumed from an end-of-epoch checkpoint
    logs again the steps its killed predecessor had logged after that checkpoint (TensorBoard
    purges the later steps when the resumed run goes back; an equal step is left to us)."""
    return list({e.step: e for e in sorted(events, key=lambda e: e.wall_time)}.values())


def _read_yaml(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        _warn(f"{path} is not valid YAML; left out of the summary")
        return None


def _read_series(directory: Path, layers: Sequence[str]) -> Tuple[dict, float, int]:
    """``(series, start, n_epochs)`` of the run's event files: tag → ``{"step", "value"}`` (and
    ``wall_time`` for val/acc) for the kept tags, the first event's wall time (s since the
    epoch) and the number of epochs Lightning's ``epoch`` scalar counts.

    Raises:
        ValueError: ``directory`` holds no scalar events.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance=_SIZE_GUIDANCE)
    accumulator.Reload()
    present = canonical_names(accumulator.Tags().get("scalars", []))  # plain -> in the file
    if not present:
        raise ValueError(f"{directory} holds no scalar events (no TensorBoard files?)")
    epoch_map = _epoch_of_steps(accumulator, present)
    n_epochs = len({k for _, k in epoch_map})
    start = accumulator.FirstEventTimestamp()
    series = {}
    for tag in select_tags(sorted(present), layers):
        events = _latest_per_step(accumulator.Scalars(present[tag]))
        steps, values = _per_epoch(events, epoch_map, n_epochs)
        series[tag] = {"step": steps, "value": values}
        if tag == ACC_TAG:
            ordered = sorted(events, key=lambda e: (e.step, e.wall_time))
            series[tag]["wall_time"] = [round(e.wall_time - start, 3) for e in ordered]
    return series, start, n_epochs


def build_summary(directory: Path, figure: str, arm: str, seed: int,
                  layers: Sequence[str] = DEFAULT_LAYERS) -> dict:
    """The summary dict of the finished run in ``directory`` (``<out>/<figure>/<arm>/seed_<s>``).

    Args:
        directory: the run's TensorBoard log_dir, holding the sweep's DONE marker.
        figure, arm, seed: the run's names (``seed`` = its ``seed_everything``).
        layers: layers of ``grad_epoch/<layer>/*`` etc. to keep (default: ``global`` only).

    Raises:
        ValueError: the run has no DONE marker (unfinished) or no scalar events.
    """
    directory = Path(directory)
    marker = read_marker(directory)
    if marker is None:
        raise ValueError(f"{directory} has no DONE marker: only finished runs are summarized")
    series, start, n_epochs = _read_series(directory, layers)
    task_dir = Path(marker["group_dir"]) if marker.get("group_dir") else directory  # a member's group
    out = directory.resolve().parents[2]  # <out>/<figure>/<arm>/seed_<s>
    config = _read_yaml(directory / "config.yaml") or _read_yaml(task_dir / "config.yaml")
    return {"schema": SCHEMA, "figure": figure, "arm": arm, "seed": int(seed),
            "code_version": marker.get("code_version") or code_version(),
            "provenance": _provenance(marker, task_dir),
            "config": portable_paths(config, out),
            "hparams": portable_paths(_read_yaml(directory / "hparams.yaml") or {}, out),
            "marker": portable_paths({k: marker[k] for k in _MARKER_KEYS if k in marker}, out),
            "start_wall_time": start, "n_epochs": n_epochs, "series": series}


def _provenance(marker: dict, task_dir: Path) -> dict:
    """The summary's ``provenance`` (:data:`~lightning_sig.experiments.provenance.FIELDS`): the
    sweep's part from the marker, the process's from ``provenance.json`` (its ``finished_at``,
    the end of ``fit``, wins); fields neither holds are ``"unknown"``."""
    found = {k: marker[k] for k in _SWEEP_PROVENANCE if k in marker}
    found.update(read_provenance(task_dir))
    return {k: found.get(k, "unknown") for k in PROVENANCE_FIELDS}


def portable_paths(value, out: Path):
    """``value`` (a parsed config) with every absolute path made machine-free: the sweep folder
    ``out`` becomes ``<out>``, any other absolute path ``<abs>/<its last part>`` (a summary
    names no path of the machine that trained)."""
    if isinstance(value, dict):
        return {k: portable_paths(v, out) for k, v in value.items()}
    if isinstance(value, list):
        return [portable_paths(v, out) for v in value]
    if not isinstance(value, str):
        return value
    root = str(out)
    if value == root or value.startswith(root + os.sep):
        return "<out>" + value[len(root):]
    if os.path.isabs(value):
        return "<abs>/" + Path(value).name
    return value
