"""The depth profile of the gradient as a TensorBoard image: the epoch's median |g| of each layer
in model (forward) order, on a log scale.

Why: the paper's second source of small gradients (Sec. 2.3, Theorem 2) multiplies factors
below 1 layer by layer, so in the many-layers regime |g| shrinks towards the input: a slope in
this profile. Large parameters (Sec. 2.2) instead lower every layer at once. Drawn with
matplotlib's object API (a ``Figure`` on an Agg canvas): no global backend switch.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["depth_profile", "depth_profile_image", "import_drawing"]


def depth_profile(names: Sequence[str], means: Sequence[float], statistics: Sequence[str],
                  statistic: str = "abs_q50") -> Tuple[List[str], List[float]]:
    """The layers of an epoch-means table, in its (model) order, and one statistic of each.

    Args:
        names: the table's G group names (``global`` first, then layers in model order).
        means: its G × K values, row-major (:meth:`~lightning_sig.gradients.epoch_sums.EpochSums.means`).
        statistics: the K statistic names of a row (``abs_q50``, ...).
        statistic: the one to profile; default the median |g|.

    Returns:
        (layer names without ``global``, their values).

    Raises:
        ValueError: ``statistic`` not among ``statistics`` (names the valid ones).
    """
    if statistic not in statistics:
        raise ValueError(f"statistic {statistic!r} is not logged; valid: {list(statistics)}")
    k, width = list(statistics).index(statistic), len(statistics)
    rows = [(name, means[i * width + k]) for i, name in enumerate(names) if name != "global"]
    return [name for name, _ in rows], [float(value) for _, value in rows]


def import_drawing() -> tuple:
    """Import the matplotlib classes :func:`depth_profile_image` draws with (0.34 s here, once
    per process), e.g. at the start of training, so that the first epoch's image does not hold
    up a training step (the callback calls it where it will draw images). No backend switch.

    Returns:
        (FigureCanvasAgg, Figure, LogFormatter, NullLocator).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter, NullLocator
    return FigureCanvasAgg, Figure, LogFormatter, NullLocator


def depth_profile_image(layers: Sequence[str], values: Sequence[float], title: str
                        ) -> np.ndarray:
    """A (3, H, W) uint8 RGB image: ``values`` (e.g. median |g|, gradient units) against layer
    position 1..L on a log y-axis, layers named on the x-axis. Non-positive or NaN values are
    left out of the line (log scale)."""
    FigureCanvasAgg, Figure, LogFormatter, NullLocator = import_drawing()
    figure = Figure(figsize=(6.4, 3.6), dpi=80)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = [(i + 1, v) for i, v in enumerate(values) if v > 0 and math.isfinite(v)]
    if points:
        axes.plot(*zip(*points), marker="o")
        axes.set_yscale("log")
        # plain labels (1e-02), not the default mathtext ones, whose parsing was ~20 % of a draw
        axes.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False,
                                                    minor_thresholds=(2, 0.4)))
        ys = [v for _, v in points]
        if max(ys) >= 100 * min(ys):  # two decades or more: the decades alone label the axis
            axes.yaxis.set_minor_locator(NullLocator())  # (minor labels: ~25 % of a draw)
    axes.set_xticks(range(1, len(layers) + 1), list(layers), rotation=60, fontsize=6)
    axes.set_xlabel("layer (forward order)")
    axes.set_ylabel("median |g|")
    axes.set_title(title, fontsize=9)
    # fixed margins for the rotated layer names; tight_layout measured ~60 % of a draw
    figure.subplots_adjust(left=0.15, right=0.97, top=0.92, bottom=0.30)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
    return np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1))  # (3, H, W)
