"""Exact coordinatewise statistics of one gradient vector, as plain tensor-in functions.

The paper's evidence for vanishing gradients (Ven & Lederer, arXiv 2106.02260, bottom panels of
Figures 1-4) is "summary statistics of the coordinate values of the gradients" over training.
These functions compute them for one gradient vector g (a tensor, or several tensors read as one
concatenated vector, e.g. all parameters of a model) without a Trainer, so the maths is tested
against numpy and the logging callback stays thin. They are the one-vector face of the engine
:mod:`lightning_sig.gradients.quantile_engine` (many layers and steps at once:
:func:`~lightning_sig.gradients.quantile_engine.table_statistics`).

Exactness: quantiles equal ``numpy.quantile(g.astype(float64), q)`` (method "linear") bit for
bit, for any size; fp16/bf16 are upcast to float32 (exact), float64 stays float64; moments are
float64 sums.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

import torch
from torch import Tensor

from lightning_sig.gradients.quantile_engine import BACKENDS, GradInput, gradient_parts, \
    table_statistics
from lightning_sig.gradients.stat_keys import DEFAULT_QUANTILES, DEFAULT_VANISHING_THRESHOLD, \
    MOMENT_KEYS, check_quantile_levels, check_vanishing_threshold, quantile_key, statistic_names

__all__ = ["DEFAULT_QUANTILES", "DEFAULT_VANISHING_THRESHOLD", "MOMENT_KEYS", "BACKENDS",
           "GradInput", "check_quantile_levels", "check_vanishing_threshold", "quantile_key",
           "statistic_names", "gradient_statistics", "gradient_statistics_tensor",
           "batched_gradient_statistics", "layer_statistics"]


def gradient_statistics(grads: GradInput, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                        vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                        signed: bool = False, backend: str = "auto") -> dict[str, float]:
    """Exact coordinatewise statistics of one gradient vector g, as a dict of Python floats.

    Args:
        grads: floating tensor of any shape, or a sequence of them on one device, read as one
            flattened concatenated vector g of N coordinates; not modified. Types narrower than
            float32 (fp16, bf16) are upcast to float32; float64 stays float64.
        quantiles: levels q in [0, 1]; default (0, .25, .5, .75, 1).
        vanishing_threshold: t >= 0, default 1e-8. Assumption (the paper gives no number): 1e-8
            is the default eps of torch.optim.Adam, the paper's optimizer; a coordinate with
            |g_j| <= eps gets an Adam step damped by at least half, i.e. it has vanished.
        signed: also return quantiles of the signed values g_j.
        backend: "auto", "numpy", "torch" or "compiled"
            (:mod:`~lightning_sig.gradients.quantile_engine`); all give the same quantiles.

    Returns:
        Statistics over the F finite coordinates, in units of g (loss units per parameter unit)
        unless stated: ``abs_q<p>`` level-p/100 quantile of |g_j| (numpy "linear"; ``abs_q0``
        min, ``abs_q100`` max); ``abs_mean`` mean |g_j|; ``rms`` sqrt(mean g_j^2); ``l2_norm``
        sqrt(sum g_j^2); ``vanishing_frac`` fraction of coordinates with |g_j| <= t (in [0, 1]);
        ``nonfinite_count`` number of NaN/inf coordinates; ``numel`` N, all coordinates
        (F = numel - nonfinite_count); if ``signed``, ``q<p>`` quantiles of g_j. Counts are
        exact integers as floats. If F == 0 (empty or all non-finite), everything but the two
        counts is NaN, so a plot shows a gap rather than a fake zero.

    Raises:
        ValueError: bad quantiles, threshold or backend; non-tensor or non-floating input;
            tensors on several devices; backend "numpy" with a non-CPU tensor.
    """
    names = statistic_names(quantiles, signed)
    values = gradient_statistics_tensor(grads, quantiles, vanishing_threshold, signed, backend)
    return dict(zip(names, values.tolist()))


def gradient_statistics_tensor(grads: GradInput, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                               vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                               signed: bool = False, backend: str = "auto") -> Tensor:
    """:func:`gradient_statistics` as a float64 tensor of shape [K] on g's device.

    Entries in the order of :func:`statistic_names` ``(quantiles, signed)``. Off CPU the
    default backend never synchronises with the host, so the results of many calls can be
    stacked and moved once. Arguments and errors as in :func:`gradient_statistics`.
    """
    check_quantile_levels(quantiles)  # argument errors before input errors
    check_vanishing_threshold(vanishing_threshold)
    tensors = gradient_parts(grads)
    numel = sum(t.numel() for t in tensors)
    return table_statistics(tensors, [numel], quantiles, vanishing_threshold, signed=signed,
                            backend=backend)[0, 0]


def batched_gradient_statistics(groups: Mapping[str, GradInput],
                                quantiles: Sequence[float] = DEFAULT_QUANTILES,
                                vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                                signed: bool = False) -> dict[str, dict[str, float]]:
    """Statistics of several gradient vectors with one device-to-host transfer.

    Args:
        groups: name -> gradient (tensor or sequence of tensors), e.g. ``{"global": grads,
            "conv1": [w.grad, b.grad]}``. Other arguments as in :func:`gradient_statistics`.

    Returns:
        name -> :func:`gradient_statistics` dict, in the order of ``groups``.
    """
    names = statistic_names(quantiles, signed)
    rows = [gradient_statistics_tensor(g, quantiles, vanishing_threshold, signed)
            for g in groups.values()]
    if not rows:
        return {}
    table = torch.stack([row.to(rows[0].device) for row in rows]).tolist()
    return {key: dict(zip(names, row)) for key, row in zip(groups, table)}


def layer_statistics(values: GradInput, sizes: Sequence[int],
                     quantiles: Sequence[float] = DEFAULT_QUANTILES,
                     vanishing_threshold: float = DEFAULT_VANISHING_THRESHOLD,
                     signed: bool = False, backend: str = "auto",
                     with_total: bool = False) -> Tensor:
    """Statistics of each segment (layer) of one gradient, as a (G, K) float64 tensor.

    Args:
        values: floating tensor(s) read as one vector of N = sum(sizes) coordinates, the
            concatenation of G segments (e.g. layers' gradients).
        sizes: the G segment lengths ≥ 0.
        quantiles: as in :func:`gradient_statistics`.
        vanishing_threshold: as in :func:`gradient_statistics`.
        signed: as in :func:`gradient_statistics`.
        backend: as in :func:`gradient_statistics`.
        with_total: prepend a row for the whole vector (e.g. "global" before the layers).

    Returns:
        (G, K) (or (1 + G, K)) float64 on the input's device, columns as
        :func:`statistic_names`, each row equal to :func:`gradient_statistics` of its segment.

    Raises:
        ValueError: as :func:`gradient_statistics`; sizes negative or not summing to N.
    """
    return table_statistics(values, sizes, quantiles, vanishing_threshold, signed=signed,
                            with_total=with_total, backend=backend)[0]
