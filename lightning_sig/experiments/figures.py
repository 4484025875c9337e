"""Draw the paper's Figures 1-4 from a sweep's TensorBoard logs: ``python -m lightning_sig.figures``.

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

from lightning_sig.experiments.figure_data import (ACC_TAG, SweepDataWarning, aggregate, find_figures,  # noqa: E402
                                       grad_tag, load_figure, per_seed)
from lightning_sig.experiments.provenance_check import (MIXED_CODE_FLAG, UNKNOWN_NOTE,  # noqa: E402
                                                  figure_code_note)
from lightning_sig.experiments import summary as run_summary  # noqa: E402
from lightning_sig.experiments.figure_table import (arm_settings, rows_to_csv, runtime_markdown,  # noqa: E402
                                        runtime_rows)

__all__ = ["make_figures", "figure_rows", "draw_figure", "plot_figure", "main",
           "DEFAULT_GRAD_STATS"]

DEFAULT_GRAD_STATS = ("abs_q25", "abs_q50", "abs_q75")
NUMBER_COLUMNS = ("figure", "arm", "tag", "epoch", "n_seeds", "mean", "median", "q25", "q75")
RUN_COLUMNS = ("figure", "arm", "seed", "tag", "epoch", "step", "wall_time", "value")
TITLES = {"fig1_large_params": "Figure 1: large parameters (Sec. 3.1)",
          "fig2_many_layers": "Figure 2: many layers (Sec. 3.2)",
          "fig3_combined": "Figure 3: combined (Sec. 3.3)",
          "fig4_logistic": "Figure 4: logistic activation (Appendix C)"}
_STAT_STYLES = {"abs_q50": "-", "abs_q25": ":", "abs_q75": "--", "abs_mean": "-."}
_OTHER_STAT_STYLES = ((0, (5, 1)), (0, (1, 3)), (0, (3, 1, 1, 1, 1, 1)), (0, (8, 2, 2, 2)))
#: Top panel: one line style and marker per arm, so arms that overlap stay apart (colours too).
_ARM_STYLES = ("-", "--", "-.", ":")
_ARM_MARKERS = ("o", "s", "^", "D", "v", "P")
_STAT_NAMES = {"abs_q0": "min |g|", "abs_q25": "lower quartile of |g|", "abs_q50": "median |g|",
               "abs_q75": "upper quartile of |g|", "abs_q100": "max |g|", "abs_mean": "mean |g|",
               "rms": "rms of g", "l2_norm": "‖g‖₂", "vanishing_frac": "fraction |g| ≤ threshold"}
BAND_ALPHA = 0.18
SEED_LINEWIDTH, SEED_ALPHA = 0.5, 0.35  # --per-seed lines
#: The statistic whose seed band is shaded in the bottom panel (the others: lines only).
BAND_STAT = "abs_q50"


def figure_rows(figure: str, aggregated: Dict[str, Dict[str, List[dict]]]) -> List[dict]:
    """Flatten tag → arm → rows of :func:`~lightning_sig.experiments.figure_data.aggregate` into CSV rows."""
    return [{"figure": figure, "arm": arm, "tag": tag, **row}
            for tag, by_arm in aggregated.items() for arm, rows in by_arm.items() for row in rows]


def _label(arm: str, settings: dict) -> str:
    s = settings.get(arm)
    return f"{arm} ({s['activation']}, α={s['alpha']:g}, r={s['r']:g})" if s else arm


def _seed_count(rows_by_arm: Dict[str, List[dict]], arm: str) -> str:
    """``n=10`` (or ``n=3–5`` when the number of seeds changes over the epochs)."""
    counts = [r["n_seeds"] for r in rows_by_arm.get(arm, [])]
    if not counts:
        return "n=0"
    low, high = min(counts), max(counts)
    return f"n={high}" if low == high else f"n={low}–{high}"


def _draw(ax, rows: List[dict], color, linestyle, marker: str, band: bool = True,
          center: str = "mean") -> None:
    epochs = [r["epoch"] for r in rows]
    # markers: a one-epoch run is a single visible point, and overlapping arms stay apart
    ax.plot(epochs, [r[center] for r in rows], color=color, linestyle=linestyle, marker=marker,
            markersize=3.5, markevery=max(1, len(epochs) // 15), linewidth=1.4)
    if band:
        ax.fill_between(epochs, [r["q25"] for r in rows], [r["q75"] for r in rows],
                        color=color, alpha=BAND_ALPHA, linewidth=0)


def _draw_seeds(ax, by_seed: Dict[int, list], color) -> None:
    """Every seed's points as a thin line (``--per-seed``)."""
    for points in by_seed.values():
        ax.plot([p.epoch for p in points], [p.value for p in points], color=color,
                linewidth=SEED_LINEWIDTH, alpha=SEED_ALPHA, zorder=1)


def _code_note(fig, note: Optional[str]) -> None:
    if note:
        fig.text(0.5, 0.997, note, ha="center", va="top", fontsize="small", wrap=True,
                 color="red" if note.startswith("MIXED") else "dimgray")


def _linestyle(tag: str, index: int):
    stat = tag.rsplit("/", 1)[-1]
    return _STAT_STYLES.get(stat, _OTHER_STAT_STYLES[index % len(_OTHER_STAT_STYLES)])


def _band_tag(grad_tags: Sequence[str]) -> Optional[str]:
    """The gradient tag whose seed band is shaded: the median's if plotted, else the first."""
    for tag in grad_tags:
        if tag.rsplit("/", 1)[-1] == BAND_STAT:
            return tag
    return grad_tags[0] if grad_tags else None


def draw_figure(figure: str, aggregated: Dict[str, Dict[str, List[dict]]], arms: Sequence[str],
                settings: dict, grad_tags: Sequence[str],
                seeds: Optional[Dict[str, Dict[str, Dict[int, list]]]] = None,
                code_note: Optional[str] = None):
    """The two-panel matplotlib Figure (see :func:`plot_figure`); returns ``(fig, top, bottom)``.

    ``seeds``: tag → arm → seed → points, drawn as thin lines (``--per-seed``; for val/acc and
    the banded gradient statistic). ``code_note``: a line above the title (mixed or unknown code,
    :func:`~lightning_sig.experiments.provenance.figure_code_note`).

    Layout: accuracy on top, gradient statistics (log scale) below; integer epoch ticks; the
    arms' legend (colour, marker and top-panel line style per arm, with each arm's seed count)
    and the statistics' legend (line style) sit below the axes, outside the data; the title
    says what line and band are (top: mean over seeds, as in the paper; bottom: median over
    seeds; bands: interquartile range over seeds). In the bottom panel only :data:`BAND_STAT`'s band is shaded, so that the bands of
    three statistics × several arms do not cover each other.
    """
    import matplotlib  # imported when drawing only: `import lightning_sig.figures` stays light
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7.0, 7.5))
    colors = {arm: plt.get_cmap("tab10")(i % 10) for i, arm in enumerate(arms)}
    styles = {arm: _ARM_STYLES[i % len(_ARM_STYLES)] for i, arm in enumerate(arms)}
    markers = {arm: _ARM_MARKERS[i % len(_ARM_MARKERS)] for i, arm in enumerate(arms)}
    acc = aggregated.get(ACC_TAG, {})
    seeds = seeds or {}
    for arm in arms:
        if arm in seeds.get(ACC_TAG, {}):
            _draw_seeds(top, seeds[ACC_TAG][arm], colors[arm])
        if arm in acc:
            _draw(top, acc[arm], colors[arm], styles[arm], markers[arm])
    top.set_ylabel("validation accuracy")
    counts = {_seed_count(acc, arm) for arm in arms if arm in acc}
    n_seeds = f"{counts.pop()} seeds per arm" if len(counts) == 1 else "n seeds: see legend"
    top.set_title(f"{TITLES.get(figure, figure)}\ntop: mean, bottom: median over seeds\nband: "
                  f"interquartile range over seeds; {n_seeds}", fontsize="medium")
    band_tag = _band_tag(grad_tags)
    stat_styles = {}
    nonpositive = False
    for i, tag in enumerate(grad_tags):
        stat = tag.rsplit("/", 1)[-1]
        stat_styles[stat] = _linestyle(tag, i)
        for arm in arms:
            rows = aggregated.get(tag, {}).get(arm)
            if tag == band_tag and arm in seeds.get(tag, {}):
                _draw_seeds(bottom, seeds[tag][arm], colors[arm])
            if rows:
                nonpositive |= any(r[k] <= 0 for r in rows for k in ("median", "q25"))
                _draw(bottom, rows, colors[arm], _linestyle(tag, i), markers[arm],
                      band=tag == band_tag, center="median")
    if stat_styles:
        bottom.set_yscale("log", nonpositive="mask")
    else:
        bottom.text(0.5, 0.5, "no gradient statistics logged\n(GradientQuantileCallback absent)",
                    ha="center", va="center", transform=bottom.transAxes)
    source = "data-loss gradient g − r·θ" if any(t.startswith("grad_data_epoch/")
                                                  for t in grad_tags) else "gradient g"
    bottom.set_ylabel(f"{source}, all parameters:\nstatistic (mean over epoch's steps)")
    bottom.set_xlabel("epoch (after e epochs of training)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    for ax in (top, bottom):
        ax.grid(True, which="major", alpha=0.3, linewidth=0.5)
    arm_handles = [(Patch(color=colors[a], alpha=BAND_ALPHA, linewidth=0),
                    Line2D([], [], color=colors[a], linestyle=styles[a], marker=markers[a],
                           markersize=4)) for a in arms]
    arm_labels = [f"{_label(a, settings)}, {_seed_count(acc, a)}" for a in arms]
    fig.tight_layout(rect=(0, 0.125, 1, 0.965 if code_note else 1))
    _code_note(fig, code_note)
    fig.legend(arm_handles, arm_labels, loc="lower left", bbox_to_anchor=(0.01, 0.0),
                            fontsize="small", title="arm (colour, marker; top: line style)",
                            title_fontsize="small", frameon=False)
    if stat_styles:
        band = band_tag.rsplit("/", 1)[-1] if band_tag else ""
        title = f"bottom: statistic (line style);\nband for {_STAT_NAMES.get(band, band)} only"
        if nonpositive:
            title += "; 0 not drawn (log)"
        fig.legend([Line2D([], [], color="black", linestyle=ls) for ls in stat_styles.values()],
                   [_STAT_NAMES.get(stat, stat) for stat in stat_styles], loc="lower right",
                   bbox_to_anchor=(0.99, 0.0), fontsize="small", title=title,
                   title_fontsize="small", frameon=False)
    return fig, top, bottom


def plot_figure(figure: str, aggregated: Dict[str, Dict[str, List[dict]]], arms: Sequence[str],
                settings: dict, grad_tags: Sequence[str], path: Path,
                seeds: Optional[Dict[str, Dict[str, Dict[int, list]]]] = None,
                code_note: Optional[str] = None) -> None:
    """Write the two-panel PNG: accuracy on top, gradient statistics (log scale) below.

    ``aggregated``: tag → arm → rows (epoch, n_seeds, mean, median, q25, q75); colours, markers and
    top-panel line styles follow the order of ``arms``; line styles of the bottom panel tell the
    statistics apart (median solid). Layout: :func:`draw_figure`.
    """
    import matplotlib.pyplot as plt
    fig, _, _ = draw_figure(figure, aggregated, arms, settings, grad_tags, seeds, code_note)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    arms = sorted({r.arm for r in runs})
    band = _band_tag(grad_tags)
    lines = {t: per_seed(runs, t) for t in [ACC_TAG] + ([band] if band else [])} if seeds else None
    plot_figure(figure, aggregated, arms, arm_settings(runs), grad_tags, out / f"{figure}.png",
                lines, note)
    _write_csv(out / f"{figure}.csv", figure_rows(figure, aggregated), NUMBER_COLUMNS)
    per_run = [{"figure": r.figure, "arm": r.arm, "seed": r.seed, "tag": tag, "epoch": p.epoch,
                "step": p.step, "wall_time": p.wall_time, "value": p.value}
               for r in runs for tag, points in r.series.items() for p in points]
    _write_csv(out / f"{figure}_runs.csv", per_run, RUN_COLUMNS)
    return runs


def make_figures(sweep_dir: Path, out: Optional[Path] = None,
                 figures: Optional[Sequence[str]] = None,
                 grad_stats: Sequence[str] = DEFAULT_GRAD_STATS,
                 grad_layer: str = "global", grad_source: str = "total",
                 seeds: bool = False, allow_mixed_code: bool = False) -> Path:
    """Write every figure's PNG and CSVs and the runtime table into ``out``; returns ``out``.

    Args:
        sweep_dir: a sweep directory of :mod:`lightning_sig.experiments.sweep`, or a folder of
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 written, 2 bad use)."""
    parser = argparse.ArgumentParser(prog="python -m lightning_sig.figures", allow_abbrev=False,
                                     description="Draw Figures 1-4 and the runtime table from a "
                                                 "sweep's TensorBoard logs.")
    parser.add_argument("sweep_dir", type=Path, help="the --out of python -m lightning_sig.sweep, "
                        "or its --summaries folder")
    parser.add_argument("--out", type=Path, default=None, help="default: <sweep_dir>/figures")
    parser.add_argument("--figures", nargs="+", default=None, help="default: all in the sweep")
    parser.add_argument("--grad-stats", nargs="+", default=list(DEFAULT_GRAD_STATS),
                        help="bottom panel: grad_epoch/<layer>/<stat> for these stats (default: "
                             "abs_q25 abs_q50 abs_q75; also abs_q0, abs_q100, abs_mean, rms, "
                             "l2_norm, vanishing_frac)")
    parser.add_argument("--grad-layer", default="global",
                        help="'global' (all parameters, default) or a module name, e.g. "
                             "net.features.0")
    parser.add_argument("--grad-source", choices=("total", "data"), default="total",
                        help="bottom panel: the total gradient g = dCE + r·θ the optimizer sees "
                             "(default) or the data-loss gradient g − r·θ (grad_data_epoch/*)")
    parser.add_argument("--per-seed", action="store_true",
                        help="also draw every seed as a thin line (accuracy and median |g|)")
    parser.add_argument(MIXED_CODE_FLAG, dest="allow_mixed", action="store_true",
                        help="draw figures whose arms ran on different commits or denormal "
                             "modes (the figure says so); refused by default")
    args = parser.parse_args(argv)
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
