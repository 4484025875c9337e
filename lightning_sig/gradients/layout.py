"""The paper's bands as a TensorBoard custom-scalars layout (the ``custom_scalars`` plugin).

The bottom panels of the paper's Figures 1–4 show the median |g_j| with its quartiles as a band.
TensorBoard draws exactly that as a *margin chart* (a value tag with a lower and an upper tag);
the layout written once at fit start (``SummaryWriter.add_custom_scalars``) groups one such
chart per layer, globally and per epoch, for the total gradient and, where the module declares
an explicit penalty, the data-loss gradient; plus a multiline chart of the saturation series of
the :class:`~lightning_sig.SaturationMonitor` (tags are regular expressions there).

Layout (the dict ``add_custom_scalars`` takes)::

    {category: {chart title: ["Margin", [value tag, lower tag, upper tag]]
                              or ["Multiline", [tag regex, ...]]}}
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Sequence

from lightning_sig.gradients.log10_band import BAND_LEVELS, log10_band_tag
from lightning_sig.gradients.stat_keys import quantile_key

__all__ = ["custom_scalars_layout", "BAND_LEVELS"]


def _band(prefix: str, group: str, tag: Callable[[str], str], log10: bool = False) -> list:
    if log10:
        return ["Margin", [tag(log10_band_tag(prefix, group, q)) for q in BAND_LEVELS]]
    return ["Margin", [tag(f"{prefix}/{group}/{quantile_key(q)}") for q in BAND_LEVELS]]


def custom_scalars_layout(groups: Sequence[str], levels: Sequence[float], data: bool,
                          activations: Sequence[str], tag: Callable[[str], str] = str,
                          epoch: bool = True, log10: bool = False) -> Dict[str, Dict[str, list]]:
    """The layout for the GradientQuantileCallback's tags.

    Args:
        groups: ``"global"`` then the layer names (as in the ``grad/<g>/...`` tags).
        levels: the callback's quantile levels; the margin charts need 0.25, 0.5 and 0.75 (else
            each group gets a multiline chart of all its ``abs_q*`` tags instead).
        data: also the ``grad_data/*`` charts (the module declares an explicit penalty).
        activations: layer names of the SaturationMonitor's ``act/<layer>/*`` tags (empty:
            no saturation category).
        tag: maps a tag to the written one (e.g. a logger prefix).
        epoch: also the ``grad_epoch/*`` (and ``grad_data_epoch/*``) charts.
        log10: the bands on a log scale: every layer's chart and a first chart per source in
            the global category draw the ``|g|/...`` log10 tags
            (:mod:`lightning_sig.gradients.log10_band`); the linear global charts follow.

    Returns:
        ``{category: {title: [kind, tags]}}``; categories ``gradient |g|: global``,
        ``gradient |g|: layers`` (one chart per layer and source), ``activation saturation``.
    """
    band = all(any(abs(level - q) < 1e-12 for level in levels) for q in BAND_LEVELS)
    prefixes = ["grad"] + (["grad_data"] if data else [])
    prefixes += [p + "_epoch" for p in prefixes] if epoch else []

    log10 = log10 and band

    def chart(prefix: str, group: str, logarithmic: bool = log10) -> list:
        if band:
            return _band(prefix, group, tag, logarithmic)
        return ["Multiline", [re.escape(tag(f"{prefix}/{group}/")) + r"abs_q.*"]]

    title = "median |g| (band: quartiles)" if band else "quantiles of |g|"
    # TensorBoard 2.21 shows a category's charts last first: with log10, the charts are listed
    # in reverse, so that the page shows grad, grad_data, ... and the log scale first
    order = (lambda items: list(reversed(items))) if log10 else list
    global_charts = {f"{p} global {title}": chart(p, "global", False) for p in order(prefixes)}
    if log10:
        global_charts.update({f"{p} global median log10|g| (band: quartiles)": chart(p, "global")
                              for p in order(prefixes)})
    layout: Dict[str, Dict[str, list]] = {"gradient |g|: global": global_charts}
    layers: Dict[str, list] = {}
    for group in order([g for g in groups if g != "global"]):
        for p in order(prefixes):
            layers[f"{p} {group}"] = chart(p, group)
    if layers:
        layout["gradient |g|: layers"] = layers
    if activations:
        layout["activation saturation"] = {
            "saturated fraction (f'(z) < eps f'(0))": ["Multiline", [
                re.escape(tag("act/")) + r".*/saturated_frac"]],
            "mean f'(z)": ["Multiline", [re.escape(tag("act/")) + r".*/mean_derivative"]],
        }
    return layout


def layout_tags(layout: Dict[str, Dict[str, list]]) -> List[str]:
    """The exact tags of the margin charts (for checks)."""
    return [t for charts in layout.values() for kind, tags in charts.values()
            if kind == "Margin" for t in tags]
