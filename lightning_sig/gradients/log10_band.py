"""The band of |g| on a log scale: log10 of the quartiles and median of |g| as their own tags,
drawn by the custom-scalars margin charts (:mod:`lightning_sig.gradients.layout`).

Why: TensorBoard draws custom-scalars charts on a linear axis, where one spike (an upper
quartile of 16) flattens a median of 0.1; the paper draws |g| on a log scale. The tags live in
their own group ``|g|``, which TensorBoard lists after lowercase groups such as ``train`` and
``val`` (it sorts groups by name and opens the first ones), so they add no cards before the
user's metrics: ``|g|/<source>/<group>/log10_q<p>``, e.g. ``|g|/grad/global/log10_q50``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from lightning_sig.gradients.histograms import HISTOGRAM_FLOOR_LOG10
from lightning_sig.gradients.stat_keys import quantile_key

__all__ = ["LOG10_GROUP", "BAND_LEVELS", "band_columns", "log10_band_tag", "log10_band_values"]

#: The tag group of the log10 band.
LOG10_GROUP = "|g|"
#: (value, lower, upper) levels of the band: median with the quartiles, as the paper's figures.
BAND_LEVELS = (0.5, 0.25, 0.75)


def band_columns(statistics: Sequence[str]) -> Optional[List[int]]:
    """Columns of ``abs_q50``, ``abs_q25``, ``abs_q75`` among ``statistics``; None if one is
    missing (then there is no band)."""
    keys = [quantile_key(q) for q in BAND_LEVELS]
    return [list(statistics).index(k) for k in keys] if all(k in statistics for k in keys) \
        else None


def log10_band_tag(source: str, group: str, level: float) -> str:
    """``|g|/<source>/<group>/log10_q<p>`` (source: ``grad``, ``grad_epoch``, ...)."""
    return f"{LOG10_GROUP}/{source}/{group}/{quantile_key(level, 'log10_q')}"


def log10_band_values(values: np.ndarray) -> np.ndarray:
    """log10 of quantiles of |g| (any shape); 0 at the float32 floor log10(1.18e-38) ≈ −37.93,
    as the histograms draw zeros; NaN stays NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    return np.where(values == 0, HISTOGRAM_FLOOR_LOG10, out)
