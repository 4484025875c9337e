"""The sweep's use of run summaries: a run with a summary is done; each finished run gets one.

Why: ``python -m lightning_sig.sweep ... --summaries DIR`` must continue a study on a clean clone
from committed summaries (:mod:`lightning_sig.experiments.summary`) alone. A summary counts as
done when its ``--epochs`` and overrides match the sweep's, ignoring overrides that only locate
data and devices (:data:`MACHINE_OVERRIDES`, e.g. ``--data.data_dir``): a design assumption.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from lightning_sig.experiments.summary import (DEFAULT_LAYERS, build_summary, read_summary,
                                               summary_path, write_summary)
from lightning_sig.experiments.sweep_plan import RunSpec, read_marker, run_dir, update_manifest

__all__ = ["MACHINE_OVERRIDES", "portable_overrides", "summarized", "summarize_runs",
           "prepare_summaries", "summary_path"]


#: Overrides that name where data and devices are on a machine, not what is trained: ignored
#: when a summary made elsewhere is compared with this sweep (an assumption: they do not
#: change a run's results beyond float rounding).
MACHINE_OVERRIDES = ("--data.data_dir", "--data.num_workers", "--data.pin_memory",
                     "--data.download", "--trainer.accelerator", "--trainer.devices",
                     "--trainer.num_nodes", "--trainer.strategy")


def portable_overrides(overrides: Sequence[str]) -> List[str]:
    """``overrides`` without the :data:`MACHINE_OVERRIDES` (``--k v`` and ``--k=v`` forms)."""
    kept, skip = [], False
    for i, token in enumerate(overrides):
        if skip:
            skip = False
            continue
        key = token.split("=", 1)[0]
        if key in MACHINE_OVERRIDES:
            nxt = overrides[i + 1] if i + 1 < len(overrides) else None
            skip = "=" not in token and nxt is not None and not nxt.startswith("--")
            continue
        kept.append(token)
    return kept


def summarized(specs: Sequence[RunSpec], summaries: Path, epochs: int,
               overrides: Sequence[str]) -> List[RunSpec]:
    """The runs of ``specs`` that have a summary in ``summaries`` (done for the sweep).

    Raises:
        ValueError: a summary was made with another epoch budget or other overrides (like
            ``sweep.check_finished``, but :data:`MACHINE_OVERRIDES` such as ``--data.data_dir``
            may differ), naming the run and both settings; or a file is not a summary.
    """
    done = []
    for spec in specs:
        path = summary_path(summaries, spec.figure, spec.arm, spec.seed)
        if not path.is_file():
            continue
        marker = read_summary(path).get("marker", {})
        old = (marker.get("epochs", epochs), marker.get("overrides", list(overrides)))
        if (old[0], portable_overrides(old[1])) != (epochs, portable_overrides(overrides)):
            raise ValueError(f"{spec.label} has a summary in {summaries} made with epochs="
                             f"{old[0]}, overrides={old[1]}; this sweep asks epochs={epochs}, "
                             f"overrides={list(overrides)}. Use another --summaries folder.")
        done.append(spec)
    return done


def summarize_runs(specs: Sequence[RunSpec], out: Path, summaries: Path,
                   layers: Sequence[str] = DEFAULT_LAYERS) -> List[Path]:
    """Write the summary of every finished run of ``specs`` in ``out`` that lacks one; returns
    the files written. A summary that exists is never rewritten."""
    written = []
    for spec in specs:
        directory = run_dir(out, spec.figure, spec.arm, spec.seed)
        target = summary_path(summaries, spec.figure, spec.arm, spec.seed)
        if target.is_file() or read_marker(directory) is None:
            continue
        written.append(write_summary(summaries, build_summary(directory, spec.figure, spec.arm,
                                                              spec.seed, layers)))
    return written


def prepare_summaries(specs: Sequence[RunSpec], out: Path, summaries: Path, epochs: int,
                      overrides: Sequence[str]) -> set:
    """Before a sweep with ``--summaries``: check the existing summaries (:func:`summarized`),
    summarize finished runs of ``out`` that lack one, merge the figures' ``sweep.json`` manifest
    into ``summaries``; returns the set of specs that are done by their summary.

    Raises:
        ValueError: as :func:`summarized`, before anything is written.
    """
    summarized(specs, summaries, epochs, overrides)
    summarize_runs(specs, out, summaries)
    for figure in dict.fromkeys(s.figure for s in specs):
        mine = [s for s in specs if s.figure == figure]
        update_manifest(summaries, figure, [s.arm for s in mine], [s.seed for s in mine], epochs)
    return set(summarized(specs, summaries, epochs, overrides))
