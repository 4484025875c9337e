"""Draw the paper's Figures 1-4 from a sweep's TensorBoard logs: ``python -m lightning_sig.figures``
(or ``lightning-sig figures``).

Layout of each figure as in the paper (Ven & Lederer, arXiv 2106.02260, Sec. 3, Figures 1-4):
top panel, validation accuracy (``val/acc``) per epoch; bottom panel, "summary statistics of the
coordinate values of the gradients" per epoch on a log scale: by default the quartiles of |g|
over all parameters (``grad_epoch/global/abs_q25``, ``abs_q50``, ``abs_q75``; the epoch value
is the mean over the epoch's optimizer steps, per the GradientQuantileCallback's tag schema).
One colour, marker and (top panel) line style per arm. Top: the mean accuracy over seeds (the
paper's "averages over the runs"); bottom (log scale): the **median over seeds** of each
per-seed statistic, since a mean over seeds of log-scale values follows the few seeds that are
orders of magnitude larger (the seeds that took off) and can lie far above the band (issue 20,
part 6). Bands: the interquartile range over seeds of the same per-seed value, so that a
gradient line lies inside its band (in the bottom panel for the median statistic only, so that
bands do not cover each other); the title and the arms' legend say how many seeds.
``--per-seed`` adds every seed as a thin line (accuracy and the banded gradient statistic). Legends sit below the axes. Epoch e on the x-axis (integer
ticks) = after e epochs of training. When the runs logged per-layer
statistics, ``<figure>_depth.png``/``.csv`` add the depth profile (median |g| per layer in forward
order, one line per epoch, one panel per arm; :mod:`lightning_sig.experiments.depth_profile`).

Outputs in ``--out`` (default ``<sweep>/figures``), per figure ``<figure>``:
``<figure>.png``; ``<figure>.csv``, the plotted numbers (figure, arm, tag, epoch, n_seeds, mean,
q25, q75); ``<figure>_runs.csv``, every run's per-epoch values (figure, arm, seed, tag, epoch,
step, wall_time, value). For the whole sweep: ``runtime.md`` / ``runtime.csv``, the Table 4
analog (:mod:`lightning_sig.experiments.figure_table`). Missing runs, epochs or gradient tags give a
warning; a figure without gradient tags is drawn with its accuracy panel only.

How one figure looks (panels, styles, legends) is :mod:`lightning_sig.experiments.figures_draw`;
this module finds the runs, aggregates them and writes the files.

The source is a sweep directory (TensorBoard event files) or a folder of run summaries
(``sweep --summaries DIR``, :mod:`lightning_sig.experiments.summary`; recognised by its
``<figure>/<arm>/seed_<s>.json`` files): the same figures, tables and CSVs from either.

Usage::

    python -m lightning_sig.figures sweeps/cifar [--figures fig1_large_params] [--out DIR]
        [--grad-stats abs_q25 abs_q50 abs_q75] [--grad-layer global] [--grad-source total]
        [--per-seed] [--allow-mixed-code]

A figure whose runs ran on different commits or denormal modes (summaries' ``provenance``,
:mod:`lightning_sig.experiments.provenance`), or of which only some runs record provenance, is
refused unless ``--allow-mixed-code``; then it says "MIXED CODE" above the title. Runs without
any provenance (schema /1 summaries, TensorBoard sweeps) are drawn with a warning and a note.

``--grad-source data`` plots the data-loss gradient g − r·θ (``grad_data_epoch/*``) instead of
the total g = ∇CE + r·θ the optimizer sees; the bottom panel's label says which. Runs without
``grad_data`` tags (r = 0, where both are the same) are plotted from their ``grad_epoch`` tags.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from lightning_sig.experiments import summary as run_summary
from lightning_sig.experiments.figure_data import (ACC_TAG, SweepDataWarning, aggregate,
                                                   find_figures, grad_tag, load_figure, per_seed)
from lightning_sig.experiments.figure_table import (arm_settings, rows_to_csv, runtime_markdown,
                                                    runtime_rows)
from lightning_sig.experiments.figures_draw import band_tag, plot_figure
from lightning_sig.experiments.provenance_check import (MIXED_CODE_FLAG, UNKNOWN_NOTE,
                                                        figure_code_note)

__all__ = ["make_figures", "figure_rows", "build_parser", "main", "DEFAULT_GRAD_STATS"]

DEFAULT_GRAD_STATS = ("abs_q25", "abs_q50", "abs_q75")
NUMBER_COLUMNS = ("figure", "arm", "tag", "epoch", "n_seeds", "mean", "median", "q25", "q75")
RUN_COLUMNS = ("figure", "arm", "seed", "tag", "epoch", "step", "wall_time", "value")


def figure_rows(figure: str, aggregated: Dict[str, Dict[str, List[dict]]]) -> List[dict]:
    """Flatten tag → arm → rows of :func:`~lightning_sig.experiments.figure_data.aggregate` into CSV rows."""
    return [{"figure": figure, "arm": arm, "tag": tag, **row}
            for tag, by_arm in aggregated.items() for arm, rows in by_arm.items() for row in rows]


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    path.write_text(rows_to_csv(rows, columns))


def _data_fallback(runs: list, grad_tags: List[str]) -> None:
    """Runs without a ``grad_data_epoch`` series (r = 0: data gradient = total) get their
    ``grad_epoch`` one under that tag."""
    for run in runs:
        for tag in grad_tags:
            total = "grad_epoch/" + tag.partition("/")[2]
            if tag.startswith("grad_data_epoch/") and not run.series.get(tag) and \
                    run.series.get(total):
                run.series[tag] = run.series.pop(total)


def _depth_tags(sweep_dir: Path, figure: str, data: bool) -> List[str]:
    """The per-layer median tags of the figure's first run (total or data-loss source)."""
    from lightning_sig.experiments.depth_profile import layer_tags
    for by_seed in find_figures(sweep_dir)[figure].values():
        for path in by_seed.values():
            return layer_tags(path, "grad_data_epoch" if data else "grad_epoch") or (
                [t.replace("grad_epoch/", "grad_data_epoch/", 1) for t in layer_tags(path)]
                if data else [])
    return []


def _write_depth(figure: str, out: Path, runs: list, tags: List[str], data: bool) -> None:
    from lightning_sig.experiments.depth_profile import DEPTH_COLUMNS, depth_rows, \
        plot_depth_profile
    rows = depth_rows(figure, runs, tags)
    if rows:
        plot_depth_profile(figure, rows, "data-loss gradient" if data else "total gradient",
                           out / f"{figure}_depth.png")
        _write_csv(out / f"{figure}_depth.csv", rows, DEPTH_COLUMNS)


def _one_figure(sweep_dir: Path, figure: str, out: Path, grad_tags: List[str],
                from_summaries: bool = False, seeds: bool = False,
                allow_mixed: bool = False) -> list:
    data = bool(grad_tags) and grad_tags[0].startswith("grad_data_epoch/")
    depth = [] if from_summaries else _depth_tags(sweep_dir, figure, data)  # summaries: global only
    totals = ["grad_epoch/" + t.partition("/")[2] for t in grad_tags + depth] if data else []
    tags = [ACC_TAG, *grad_tags, *depth, *totals]
    runs = (run_summary.load_summaries(sweep_dir, figure, tags) if from_summaries
            else load_figure(sweep_dir, figure, tags))
    if data:
        _data_fallback(runs, grad_tags + depth)
    note = figure_code_note(figure, runs, allow_mixed)  # raises MixedCodeError on mixed code
    if note == UNKNOWN_NOTE:
        warnings.warn(f"{figure}: {note}: cannot check that its arms ran the same code",
                      SweepDataWarning)
    _write_depth(figure, out, runs, depth, data)
    if not runs:
        warnings.warn(f"{figure}: no runs found; figure skipped", SweepDataWarning)
        return runs
    aggregated = {tag: aggregate(runs, tag) for tag in [ACC_TAG, *grad_tags]}
    absent = [t for t in grad_tags if not aggregated[t]]
    if absent:
        warnings.warn(f"{figure}: no run logged {', '.join(absent)} (GradientQuantileCallback "
                      f"not in the configs?); drawing without them", SweepDataWarning)
    _write_figure(figure, out, runs, aggregated, grad_tags, seeds, note)
    return runs


def _write_figure(figure: str, out: Path, runs: list, aggregated: dict, grad_tags: List[str],
                  seeds: bool, note: Optional[str]) -> None:
    """``<figure>.png``, ``<figure>.csv`` (the plotted numbers), ``<figure>_runs.csv``."""
    arms = sorted({r.arm for r in runs})
    band = band_tag(grad_tags)
    lines = {t: per_seed(runs, t) for t in [ACC_TAG] + ([band] if band else [])} if seeds else None
    plot_figure(figure, aggregated, arms, arm_settings(runs), grad_tags, out / f"{figure}.png",
                lines, note)
    _write_csv(out / f"{figure}.csv", figure_rows(figure, aggregated), NUMBER_COLUMNS)
    per_run = [{"figure": r.figure, "arm": r.arm, "seed": r.seed, "tag": tag, "epoch": p.epoch,
                "step": p.step, "wall_time": p.wall_time, "value": p.value}
               for r in runs for tag, points in r.series.items() for p in points]
    _write_csv(out / f"{figure}_runs.csv", per_run, RUN_COLUMNS)


def make_figures(sweep_dir: Path, out: Optional[Path] = None,
                 figures: Optional[Sequence[str]] = None,
                 grad_stats: Sequence[str] = DEFAULT_GRAD_STATS,
                 grad_layer: str = "global", grad_source: str = "total",
                 seeds: bool = False, allow_mixed_code: bool = False) -> Path:
    """Write every figure's PNG and CSVs and the runtime table into ``out``; returns ``out``.

    Args:
        sweep_dir: a sweep directory of :mod:`lightning_sig.experiments.sweep_cli`, or a folder of
            run summaries (:func:`lightning_sig.experiments.summary.is_summary_dir`).
        out: output folder (default ``<sweep_dir>/figures``), created if needed.
        figures: figure names to draw (default: all found in ``sweep_dir``).
        grad_stats: statistics of the bottom panel (``abs_q50`` etc. of the tag schema).
        grad_layer: ``global`` (all parameters) or a module name such as ``net.features.0``.
        grad_source: ``total`` (g, default) or ``data`` (g − r·θ, see the module docstring).
        seeds: also draw every seed as a thin line (default False).
        allow_mixed_code: draw figures whose arms ran different code (with a note on them).

    Raises:
        ValueError: ``sweep_dir`` is not a folder, holds no figure, or lacks a requested figure
            (the message lists the figures found); an unknown ``grad_source``.
        MixedCodeError (a ValueError): a figure's runs ran different commits or denormal
            modes and not ``allow_mixed_code``.
    """
    sweep_dir = Path(sweep_dir)
    grad_tag("abs_q50", grad_layer, grad_source)  # a bad source fails before anything is read
    if not sweep_dir.is_dir():
        raise ValueError(f"sweep_dir={str(sweep_dir)!r} is not a folder")
    from_summaries = run_summary.is_summary_dir(sweep_dir)
    found = list(run_summary.find_summaries(sweep_dir) if from_summaries
                 else find_figures(sweep_dir))
    unknown = [f for f in figures or [] if f not in found]
    if not found or unknown:
        raise ValueError(f"figure(s) {unknown or '(any)'} not found in sweep {str(sweep_dir)!r};"
                         f" found: {', '.join(found) or '(none)'}")
    out = Path(out) if out is not None else sweep_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    grad_tags = [grad_tag(stat, grad_layer, grad_source) for stat in grad_stats]
    runs = []
    for figure in figures or found:
        runs.extend(_one_figure(sweep_dir, figure, out, grad_tags, from_summaries, seeds,
                                allow_mixed_code))
    rows = runtime_rows(runs)
    (out / "runtime.csv").write_text(rows_to_csv(rows))
    (out / "runtime.md").write_text(runtime_markdown(rows))
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command's options (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m lightning_sig.figures", allow_abbrev=False,
                                     description="Draw Figures 1-4 and the runtime table from a "
                                                 "sweep's TensorBoard logs.")
    add = parser.add_argument
    add("sweep_dir", type=Path, help="the --out of python -m lightning_sig.sweep, or its "
        "--summaries folder")
    add("--out", type=Path, default=None, help="default: <sweep_dir>/figures")
    add("--figures", nargs="+", default=None, help="default: all in the sweep")
    add("--grad-stats", nargs="+", default=list(DEFAULT_GRAD_STATS),
        help="bottom panel: grad_epoch/<layer>/<stat> for these stats (default: abs_q25 "
             "abs_q50 abs_q75; also abs_q0, abs_q100, abs_mean, rms, l2_norm, vanishing_frac)")
    add("--grad-layer", default="global",
        help="'global' (all parameters, default) or a module name, e.g. net.features.0")
    add("--grad-source", choices=("total", "data"), default="total",
        help="bottom panel: the total gradient g = dCE + r·θ the optimizer sees (default) or "
             "the data-loss gradient g − r·θ (grad_data_epoch/*)")
    add("--per-seed", action="store_true",
        help="also draw every seed as a thin line (accuracy and median |g|)")
    add(MIXED_CODE_FLAG, dest="allow_mixed", action="store_true",
        help="draw figures whose arms ran on different commits or denormal modes (the figure "
             "says so); refused by default")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 written, 2 bad use). Data warnings
    (missing runs, epochs, tags) are printed as ``warning: ...`` lines on stderr."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepDataWarning)
        try:
            out = make_figures(args.sweep_dir, args.out, args.figures, args.grad_stats,
                               args.grad_layer, args.grad_source, args.per_seed, args.allow_mixed)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        finally:
            for w in caught:
                if issubclass(w.category, SweepDataWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
