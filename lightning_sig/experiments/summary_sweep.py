"""The sweep's records around its tasks: the figures' manifests and the summaries of finished
runs, before the first task (:func:`prepare`) and after each one (:func:`summarize_runs`).

Stage 4 of ``python -m lightning_sig.sweep`` (parse → plan → launch → **summarise**). Why:
``python -m lightning_sig.sweep ... --summaries DIR`` must continue a study on a clean clone
from committed summaries (:mod:`lightning_sig.experiments.summary`) alone, so every finished
run gets one. Which runs count as done by their summary is the plan's rule
(:func:`lightning_sig.experiments.sweep_plan.summarized`).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from lightning_sig.experiments.summary import summary_path, write_summary
from lightning_sig.experiments.summary_build import DEFAULT_LAYERS, build_summary
from lightning_sig.experiments.sweep_layout import RunSpec, read_marker, run_dir, update_manifest
from lightning_sig.experiments.sweep_plan import Plan

__all__ = ["summarize_runs", "prepare"]


def summarize_runs(specs: Sequence[RunSpec], out: Path, summaries: Path,
                   layers: Sequence[str] = DEFAULT_LAYERS) -> List[Path]:
    """Write the summary of every finished run of ``specs`` in ``out`` that lacks one; returns
    the files written. A summary that exists is never rewritten.

    Raises:
        ValueError: a finished run holds no scalar events
            (:func:`~lightning_sig.experiments.summary_build.build_summary`).
    """
    written = []
    for spec in specs:
        directory = run_dir(out, spec.figure, spec.arm, spec.seed)
        target = summary_path(summaries, spec.figure, spec.arm, spec.seed)
        if target.is_file() or read_marker(directory) is None:
            continue
        written.append(write_summary(summaries, build_summary(directory, spec.figure, spec.arm,
                                                              spec.seed, layers)))
    return written


def prepare(plan: Plan) -> None:
    """Before a sweep's first task: merge each figure's arms and seeds into its manifest
    ``sweep.json`` in ``plan.out`` and, with ``plan.summaries``, summarize the runs finished in
    ``plan.out`` that lack a summary and merge the manifest there too.

    Raises:
        ValueError: as :func:`summarize_runs`.
    """
    if plan.summaries is not None:
        summarize_runs(plan.done, plan.out, plan.summaries)
    for figure in dict.fromkeys(s.figure for s in plan.specs):
        mine = [s for s in plan.specs if s.figure == figure]
        for folder in (plan.summaries, plan.out):
            if folder is not None:
                update_manifest(folder, figure, [s.arm for s in mine], [s.seed for s in mine],
                                plan.epochs)
