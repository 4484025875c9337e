"""Drawing one figure: the paper's two panels (accuracy on top, gradient statistics below on a
log scale), one colour, marker and line style per arm, seed bands and ``--per-seed`` lines.

Why apart from :mod:`lightning_sig.experiments.figure_cli` (which finds the runs, aggregates
them and writes the files): the look of a figure is the part that changes on its own (issue
20, part 6: medians inside their band), and it is tested on hand-made numbers without a sweep.
matplotlib is imported when drawing only, so ``import lightning_sig.figures`` stays light.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lightning_sig.experiments.figure_data import ACC_TAG

__all__ = ["TITLES", "BAND_ALPHA", "BAND_STAT", "SEED_LINEWIDTH", "SEED_ALPHA", "band_tag",
           "draw_figure", "plot_figure"]

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


def band_tag(grad_tags: Sequence[str]) -> Optional[str]:
    """The gradient tag whose seed band is shaded: the median's if plotted, else the first."""
    for tag in grad_tags:
        if tag.rsplit("/", 1)[-1] == BAND_STAT:
            return tag
    return grad_tags[0] if grad_tags else None


Rows = Dict[str, List[dict]]  # arm → rows of aggregate(): epoch, n_seeds, mean, median, q25, q75
Looks = Dict[str, Tuple[object, object, str]]  # arm → (colour, top-panel line style, marker)
Seeds = Dict[str, Dict[str, Dict[int, list]]]  # tag → arm → seed → points


def _arm_looks(arms: Sequence[str]) -> Looks:
    import matplotlib.pyplot as plt
    return {arm: (plt.get_cmap("tab10")(i % 10), _ARM_STYLES[i % len(_ARM_STYLES)],
                  _ARM_MARKERS[i % len(_ARM_MARKERS)]) for i, arm in enumerate(arms)}


def _draw_top(top, figure: str, acc: Rows, arms: Sequence[str], looks: Looks,
              seeds: Dict[str, Dict[int, list]]) -> None:
    """Accuracy: mean over seeds per arm in its interquartile band; the title."""
    for arm in arms:
        if arm in seeds:
            _draw_seeds(top, seeds[arm], looks[arm][0])
        if arm in acc:
            _draw(top, acc[arm], *looks[arm])
    top.set_ylabel("validation accuracy")
    counts = {_seed_count(acc, arm) for arm in arms if arm in acc}
    n_seeds = f"{counts.pop()} seeds per arm" if len(counts) == 1 else "n seeds: see legend"
    top.set_title(f"{TITLES.get(figure, figure)}\ntop: mean, bottom: median over seeds\nband: "
                  f"interquartile range over seeds; {n_seeds}", fontsize="medium")


def _draw_bottom(bottom, aggregated: Dict[str, Rows], arms: Sequence[str], looks: Looks,
                 grad_tags: Sequence[str], seeds: Seeds) -> Tuple[dict, bool]:
    """Gradient statistics: median over seeds per arm and statistic (log scale), the band of
    :data:`BAND_STAT` only; returns (statistic → line style, whether a value <= 0 was masked)."""
    from matplotlib.ticker import MaxNLocator

    banded, stat_styles, nonpositive = band_tag(grad_tags), {}, False
    for i, tag in enumerate(grad_tags):
        stat_styles[tag.rsplit("/", 1)[-1]] = _linestyle(tag, i)
        for arm in arms:
            rows = aggregated.get(tag, {}).get(arm)
            if tag == banded and arm in seeds.get(tag, {}):
                _draw_seeds(bottom, seeds[tag][arm], looks[arm][0])
            if rows:
                nonpositive |= any(r[k] <= 0 for r in rows for k in ("median", "q25"))
                _draw(bottom, rows, looks[arm][0], _linestyle(tag, i), looks[arm][2],
                      band=tag == banded, center="median")
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
    return stat_styles, nonpositive


def _legends(fig, arms: Sequence[str], looks: Looks, settings: dict, acc: Rows,
             grad_tags: Sequence[str], stat_styles: dict, nonpositive: bool) -> None:
    """The arms' legend (bottom left) and the statistics' legend (bottom right), below the axes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [(Patch(color=looks[a][0], alpha=BAND_ALPHA, linewidth=0),
                Line2D([], [], color=looks[a][0], linestyle=looks[a][1], marker=looks[a][2],
                       markersize=4)) for a in arms]
    fig.legend(handles, [f"{_label(a, settings)}, {_seed_count(acc, a)}" for a in arms],
               loc="lower left", bbox_to_anchor=(0.01, 0.0), fontsize="small",
               title="arm (colour, marker; top: line style)", title_fontsize="small",
               frameon=False)
    if not stat_styles:
        return
    banded = band_tag(grad_tags)
    band = banded.rsplit("/", 1)[-1] if banded else ""
    title = f"bottom: statistic (line style);\nband for {_STAT_NAMES.get(band, band)} only"
    if nonpositive:
        title += "; 0 not drawn (log)"
    fig.legend([Line2D([], [], color="black", linestyle=ls) for ls in stat_styles.values()],
               [_STAT_NAMES.get(stat, stat) for stat in stat_styles], loc="lower right",
               bbox_to_anchor=(0.99, 0.0), fontsize="small", title=title,
               title_fontsize="small", frameon=False)


def draw_figure(figure: str, aggregated: Dict[str, Rows], arms: Sequence[str], settings: dict,
                grad_tags: Sequence[str], seeds: Optional[Seeds] = None,
                code_note: Optional[str] = None):
    """The two-panel matplotlib Figure (see :func:`plot_figure`); returns ``(fig, top, bottom)``.

    ``seeds``: tag → arm → seed → points, drawn as thin lines (``--per-seed``; for val/acc and
    the banded gradient statistic). ``code_note``: a line above the title (mixed or unknown code,
    :func:`~lightning_sig.experiments.provenance_check.figure_code_note`).

    Layout: accuracy on top, gradient statistics (log scale) below; integer epoch ticks; the
    arms' legend (colour, marker and top-panel line style per arm, with each arm's seed count)
    and the statistics' legend (line style) sit below the axes, outside the data; the title
    says what line and band are (top: mean over seeds, as in the paper; bottom: median over
    seeds; bands: interquartile range over seeds). In the bottom panel only
    :data:`BAND_STAT`'s band is shaded, so that the bands of three statistics × several arms
    do not cover each other.
    """
    import matplotlib  # imported when drawing only: `import lightning_sig.figures` stays light
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7.0, 7.5))
    looks, seeds, acc = _arm_looks(arms), seeds or {}, aggregated.get(ACC_TAG, {})
    _draw_top(top, figure, acc, arms, looks, seeds.get(ACC_TAG, {}))
    stat_styles, nonpositive = _draw_bottom(bottom, aggregated, arms, looks, grad_tags, seeds)
    for ax in (top, bottom):
        ax.grid(True, which="major", alpha=0.3, linewidth=0.5)
    fig.tight_layout(rect=(0, 0.125, 1, 0.965 if code_note else 1))
    _code_note(fig, code_note)
    _legends(fig, arms, looks, settings, acc, grad_tags, stat_styles, nonpositive)
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
