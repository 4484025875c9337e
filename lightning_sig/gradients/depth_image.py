"""The depth profile of the gradient as a TensorBoard image: the epoch's median |g| of each layer
in model (forward) order, on a log scale.

Why: the paper's second source of small gradients (Sec. 2.3, Theorem 2) multiplies factors
below 1 layer by layer, so in the many-layers regime |g| shrinks towards the input: a slope in
this profile. Large parameters (Sec. 2.2) instead lower every layer at once. Drawn with
matplotlib's object API (a ``Figure`` on an Agg canvas): no global backend switch.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["depth_profile", "depth_profile_image", "decade_limits", "DepthProfileDrawer",
           "import_drawing"]


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


def decade_limits(values: Sequence[float]) -> Optional[Tuple[float, float]]:
    """The y-limits of a depth image: (10^⌊log10 min⌋, 10^⌈log10 max⌉) of the positive finite
    ``values``, at least one decade; None when there is none. Whole decades, so that the axes of
    successive epochs' images stay put (TensorBoard's image slider then shows the profile move)
    and are redrawn only when the values leave them (:class:`DepthProfileDrawer`)."""
    ys = [v for v in values if v > 0 and math.isfinite(v)]
    if not ys:
        return None
    lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    return 10.0 ** lo, 10.0 ** max(hi, lo + 1)


class DepthProfileDrawer:
    """Draws depth images (:func:`depth_profile_image`), reusing one matplotlib figure.

    A figure is drawn in two layers, each kept as a background: the layer axis (x ticks named
    by the layers, labels, frame; :meth:`prepare`, once per list of layers, ~35 ms measured with
    10 layers) and on it the value axis (y ticks over the :func:`decade_limits`, ~8–20 ms, once
    per limits). Each image restores the second background and draws the line and the title on
    it (~1.5 ms). A whole draw took ~47 ms, most of the callback's work at an epoch end; the
    callback calls :meth:`prepare` at the start of training, where the layers are known and the
    limits are not. An image equals, pixel for pixel, the one a new drawer makes for the same
    input (tested). Not thread-safe: one drawer per thread (the callback draws on the training
    thread).
    """

    def __init__(self) -> None:
        self._layers: Optional[Tuple[str, ...]] = None  # of the layer-axis background
        self._parts: Optional[tuple] = None  # (canvas, axes, line, title, layer background)
        self._limits: object = _UNSET  # the y-limits of the value-axis background
        self._background = None  # the layer and value axes drawn

    @property
    def axes(self):
        """The matplotlib ``Axes`` of the last image (None before the first), e.g. to map a
        (layer position, value) to its pixel with ``axes.transData``."""
        return None if self._parts is None else self._parts[1]

    def prepare(self, layers: Sequence[str]) -> None:
        """Draw the layer axis of ``layers`` now (a new figure) unless it is drawn already."""
        if self._parts is None or tuple(layers) != self._layers:
            self._parts, self._layers = _layer_axis(list(layers)), tuple(layers)
            self._limits, self._background = _UNSET, None

    def draw(self, layers: Sequence[str], values: Sequence[float], title: str) -> np.ndarray:
        """A (3, H, W) uint8 RGB image, as :func:`depth_profile_image`."""
        self.prepare(layers)
        limits = decade_limits(values)
        if limits != self._limits:
            self._background, self._limits = _value_axis(self._parts, limits), limits
        canvas, axes, line, text, _ = self._parts
        canvas.restore_region(self._background)
        points = [(i + 1, v) for i, v in enumerate(values) if v > 0 and math.isfinite(v)]
        line.set_data(*zip(*points)) if points else line.set_data([], [])
        text.set_text(title)
        axes.draw_artist(line)
        axes.draw_artist(text)
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
        return np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1))  # (3, H, W)


_UNSET = object()  # no value axis drawn yet (None is a valid limits value: no positive value)


def _layer_axis(layers: List[str]) -> tuple:
    """A new figure with the axes of ``layers`` drawn, the value (y) axis hidden and the line
    and title left out (``animated``): the first background of :class:`DepthProfileDrawer`."""
    FigureCanvasAgg, Figure, _, _ = import_drawing()
    figure = Figure(figsize=(6.4, 3.6), dpi=80)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    line, = axes.plot([], [], marker="o", animated=True)
    axes.set_xlim(0.5, len(layers) + 0.5)
    axes.set_xticks(range(1, len(layers) + 1), list(layers), rotation=60, fontsize=6)
    axes.set_xlabel("layer (forward order)")
    axes.set_ylabel("median |g|")
    title = axes.set_title(" ", fontsize=9)
    title.set_animated(True)
    # fixed margins for the rotated layer names; tight_layout measured ~60 % of a draw
    figure.subplots_adjust(left=0.15, right=0.97, top=0.92, bottom=0.30)
    axes.yaxis.set_visible(False)  # drawn by _value_axis, after the x-axis as in a whole draw
    canvas.draw()
    return canvas, axes, line, title, canvas.copy_from_bbox(figure.bbox)


def _value_axis(parts: tuple, limits: Optional[Tuple[float, float]]):
    """The value (y) axis over ``limits`` (log; linear 0–1 when None) drawn on the layer-axis
    background of ``parts`` (:func:`_layer_axis`); returns the region with both axes."""
    _, _, LogFormatter, NullLocator = import_drawing()
    canvas, axes, _, _, layer_background = parts
    canvas.restore_region(layer_background)
    if limits is None:
        axes.set_yscale("linear")  # the scale's own locators and formatters
        axes.set_ylim(0.0, 1.0)
    else:
        axes.set_yscale("log")
        axes.set_ylim(*limits)
        # plain labels (1e-02), not the default mathtext ones, whose parsing was ~20 % of a draw
        axes.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False,
                                                    minor_thresholds=(2, 0.4)))
        if limits[1] >= 100 * limits[0]:  # two decades or more: the decades label the axis
            axes.yaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_visible(True)
    axes.draw_artist(axes.yaxis)
    return canvas.copy_from_bbox(canvas.figure.bbox)


def depth_profile_image(layers: Sequence[str], values: Sequence[float], title: str
                        ) -> np.ndarray:
    """A (3, H, W) uint8 RGB image: ``values`` (e.g. median |g|, gradient units) against layer
    position 1..L on a log y-axis over whole decades (:func:`decade_limits`), layers named on
    the x-axis. Non-positive or NaN values are left out of the line (log scale); none left: an
    empty linear axis. One image with a new figure; :class:`DepthProfileDrawer` reuses one."""
    return DepthProfileDrawer().draw(layers, values, title)
