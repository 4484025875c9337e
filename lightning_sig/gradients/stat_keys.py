"""Names, defaults and argument checks of the gradient statistics (one place for the engine,
the public functions of :mod:`lightning_sig.gradients.stats` and the callback)."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Sequence, Tuple, Union

__all__ = ["DEFAULT_QUANTILES", "DEFAULT_LAYER_STATISTICS", "DEFAULT_VANISHING_THRESHOLD", "MOMENT_KEYS",
           "check_quantile_levels", "check_vanishing_threshold", "quantile_key",
           "statistic_names", "is_real", "check_layer_statistics"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_VANISHING_THRESHOLD: float = 1e-8
#: The per-layer statistics written by default: the median and quartiles of |g|, what the paper's
#: bottom panels draw (Figures 1-4) and what the per-layer log-scale bands and the depth profile
#: read; the others are opt-in (``layer_statistics="all"`` or a list). An assumption: the paper
#: shows no per-layer panel.
DEFAULT_LAYER_STATISTICS: tuple[str, ...] = ("abs_q25", "abs_q50", "abs_q75")
MOMENT_KEYS: tuple[str, ...] = (
    "abs_mean", "rms", "l2_norm", "vanishing_frac", "nonfinite_count", "numel")


def is_real(x: object) -> bool:
    """A real number that is not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_quantile_levels(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Return quantile levels q in [0, 1] (0 min, 0.5 median, 1 max; may be empty) as floats.

    Raises:
        ValueError: not a sequence; a level outside [0, 1], NaN or non-numeric; two levels with
            the same key (see :func:`quantile_key`).
    """
    if isinstance(quantiles, (str, bytes)) or not isinstance(quantiles, Iterable):
        raise ValueError(f"quantiles must be a sequence of numbers in [0, 1], got {quantiles!r}")
    levels = tuple(quantiles)
    for q in levels:
        if not is_real(q) or not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile level {q!r} is not a number in [0, 1] (valid: 0 <= q <= 1)")
    keys = [quantile_key(q) for q in levels]
    if len(set(keys)) != len(keys):
        raise ValueError(f"quantile levels {list(levels)!r} repeat a level (keys {keys})")
    return tuple(float(q) for q in levels)


def check_vanishing_threshold(threshold: float) -> float:
    """Return a vanishing threshold t (finite, >= 0) as a float.

    Raises:
        ValueError: negative, NaN, infinite or non-numeric threshold.
    """
    if not is_real(threshold) or not 0.0 <= threshold < math.inf:
        raise ValueError(
            f"vanishing_threshold {threshold!r} is not a finite number >= 0 (valid: 0 <= t < inf)")
    return float(threshold)


def quantile_key(level: float, prefix: str = "abs_q") -> str:
    """Key of a level in percent: 0.5 -> 'abs_q50', 0.125 -> 'abs_q12.5', 1 -> 'abs_q100'."""
    return f"{prefix}{format(round(level * 100.0, 9), '.12g')}"


def statistic_names(quantiles: Sequence[float] = DEFAULT_QUANTILES,
                    signed: bool = False) -> list[str]:
    """Names of the columns of a statistics table, in order: ``abs_q<p>`` per level, then
    :data:`MOMENT_KEYS`, then ``q<p>`` per level if ``signed``. Raises as
    :func:`check_quantile_levels`."""
    levels = check_quantile_levels(quantiles)
    names = [quantile_key(q) for q in levels] + list(MOMENT_KEYS)
    return names + ([quantile_key(q, "q") for q in levels] if signed else [])


def check_layer_statistics(value: Union[str, Sequence[str]], names: Sequence[str]
                           ) -> Union[str, Tuple[str, ...]]:
    """``"all"``, or the chosen statistic names (a name or a sequence of them, among ``names``).
    ``"default"``: those of :data:`DEFAULT_LAYER_STATISTICS` that are logged (the quantile levels
    may lack 0.25 or 0.75), or ``"all"`` when none is.

    Raises:
        ValueError: an empty choice or an unknown name (names the value and the valid ones).
    """
    if value == "all":
        return "all"
    if value == "default":
        return tuple(k for k in DEFAULT_LAYER_STATISTICS if k in names) or "all"
    chosen = (value,) if isinstance(value, str) else tuple(value)
    unknown = [k for k in chosen if k not in names]
    if unknown or not chosen:
        raise ValueError(f"layer_statistics must be 'default', 'all' or names among "
                         f"{list(names)}, got {value!r}.")
    return chosen
