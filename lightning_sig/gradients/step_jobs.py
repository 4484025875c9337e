"""One unit of the GradientQuantileCallback's work: the statistics (and histograms) of some
buffered optimizer steps of one gradient, as a plain function of its inputs, so that it runs on
the training thread or in a worker thread with the same result."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from lightning_sig.gradients.histograms import segment_log10_histograms
from lightning_sig.gradients.quantile_engine import table_statistics
from lightning_sig.gradients.row_key import RowKey

__all__ = ["StepFlags", "StatisticsJob", "compute_job"]


class StepFlags(NamedTuple):
    """What a recorded optimizer step is for: its scalars are ``logged``, it enters the epoch
    means (``aggregate``), its histograms are due (``histogram``)."""

    logged: bool
    aggregate: bool
    histogram: bool


class StatisticsJob(NamedTuple):
    """The copied gradients of S steps of one :class:`~lightning_sig.gradients.row_key.RowKey`:
    ``rows`` (S, N), each cut into the layers of ``sizes``; ``names`` of the groups of a
    statistics row ("global" first when ``with_total``); the S ``steps`` and their ``flags``."""

    key: RowKey
    names: Tuple[str, ...]
    sizes: Tuple[int, ...]
    with_total: bool
    rows: Tensor
    steps: List[int]
    flags: List[StepFlags]


def compute_job(job: StatisticsJob, levels: Sequence[float], threshold: float, signed: bool,
                histogram_limits: Optional[np.ndarray], group: Optional[object] = None
                ) -> Tuple[Tensor, List[Optional[list]]]:
    """The statistics table (S, groups, K) float64 on the rows' device (columns of
    ``statistic_names(levels, signed)``) and, per row, its histograms (the keyword arguments of
    ``add_histogram_raw`` per group, :func:`segment_log10_histograms`) where ``flags`` ask for
    them, ``histogram_limits`` are given and the source is the total gradient, else None.

    ``group``: a ``torch.distributed`` group over which the rows are sharded (one row per job;
    :mod:`~lightning_sig.gradients.sharded_stats`); histograms then stay None (each process
    holds only its shard).
    """
    if group is not None:
        from lightning_sig.gradients.sharded_stats import sharded_table_statistics
        table = sharded_table_statistics(job.rows.reshape(-1), job.sizes, levels, threshold,
                                         signed, job.with_total, group)
        return table, [None] * len(job.steps)
    table = table_statistics(job.rows, job.sizes, levels, threshold, rows=len(job.steps),
                             signed=signed, with_total=job.with_total)
    histograms: List[Optional[list]] = []
    for row, flags in zip(job.rows, job.flags):  # histograms of the total gradient only
        wanted = flags.histogram and histogram_limits is not None and job.key.source == "grad"
        histograms.append(segment_log10_histograms(row, job.sizes, histogram_limits,
                                                   with_total=job.with_total)
                          if wanted else None)
    return table, histograms
