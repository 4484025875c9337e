"""TensorBoard events of the GradientQuantileCallback: all scalars of a step as one event, all
histograms of a step as one event.

``SummaryWriter.add_scalar`` writes one event per scalar (about 60 µs each here): for the ~160
tags of a paper network that would exceed the training step. A ``Summary`` with many values is
the same to every reader (same tags, steps and values); its template is built once per tag
list and only the values are set at each step (measured: 22 µs instead of 99 µs for 160 tags).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import histogram_raw

from lightning_sig._compat import event_file_writer, is_tensorboard_logger, logger_prefix
from lightning_sig.gradients.tag_groups import tensorboard_tag
from lightning_sig.members.interface import member_seeds_of

__all__ = ["ScalarSummary", "prefixed_tags", "write_histograms", "GradientEventWriter"]


def prefixed_tags(logger, tags: Sequence[str]) -> List[str]:
    """``tags`` as written into TensorBoard files: in their TensorBoard group
    (:func:`~lightning_sig.gradients.tag_groups.tensorboard_tag`), after a TensorBoardLogger's
    ``prefix`` joined with ``LOGGER_JOIN_CHAR`` as its ``log_metrics`` does (e.g.
    ``p-|g|/grad/global/abs_q50``); ``logger`` None (a member's run): no prefix."""
    tags = [tensorboard_tag(tag) for tag in tags]
    prefix = logger_prefix(logger) if logger is not None else ""
    return [f"{prefix}{logger.LOGGER_JOIN_CHAR}{tag}" for tag in tags] if prefix else tags


class ScalarSummary:
    """One reusable ``Summary`` of ``tags``; :meth:`write` sets the values and writes one event.

    Args:
        tags: the scalar tags, in the order of the values given to :meth:`write`.
    """

    def __init__(self, tags: Sequence[str]) -> None:
        self.tags = list(tags)
        self.summary = Summary(value=[Summary.Value(tag=tag, simple_value=0.0) for tag in tags])

    def write(self, writer: SummaryWriter, values: Sequence[float], step: int) -> None:
        """One event at ``step`` holding ``values`` (one float per tag)."""
        for entry, value in zip(self.summary.value, values):
            entry.simple_value = value
        event_file_writer(writer).add_summary(self.summary, step)  # as SummaryWriter.add_scalar


def write_histograms(writers: Sequence[SummaryWriter], tags: Sequence[str],
                     histograms: Sequence[Optional[Dict[str, object]]], step: int) -> None:
    """One event at ``step`` with a histogram per tag, each from the keyword arguments of
    ``SummaryWriter.add_histogram_raw`` (torch's ``histogram_raw`` builds each value, as
    ``add_histogram_raw`` does); None entries (nothing finite to show, which TensorBoard
    rejects) are skipped."""
    summary = Summary(value=[value for tag, histogram in zip(tags, histograms)
                             if histogram is not None
                             for value in histogram_raw(tag, **histogram).value])
    if summary.value:
        for writer in writers:
            event_file_writer(writer).add_summary(summary, step)


class GradientEventWriter:
    """Where the callback's values go: each TensorBoardLogger gets one event per step (its
    prefix before the tags), other loggers ``log_metrics``, and a many-seeds module's
    (:mod:`lightning_sig.members.interface`) member s its own run (``member_logger``).

    Args:
        statistics: the statistic names K of a group (``abs_q50``, ...), in table order.
    """

    def __init__(self, statistics: Sequence[str]) -> None:
        self.statistics = list(statistics)
        self._summaries: Dict[tuple, ScalarSummary] = {}  # (logger prefix, tags)

    def tags(self, prefix: str, names: Sequence[str]) -> List[str]:
        """``<prefix>/<group>/<statistic>`` for every group and statistic, row-major."""
        return [f"{prefix}/{g}/{k}" for g in names for k in self.statistics]

    def scalars(self, trainer, pl_module, member: int, prefix: str, names: Sequence[str],
                values: Sequence[float], step: int) -> None:
        """Write one step's G × K ``values`` (row-major, as :meth:`tags`)."""
        self.write(trainer, pl_module, member, self.tags(prefix, names), values, step)

    def write(self, trainer, pl_module, member: int, tags: Sequence[str],
              values: Sequence[float], step: int) -> None:
        """Write one step's ``values`` under ``tags`` (one event per TensorBoardLogger)."""
        if member_seeds_of(pl_module):  # member s -> its own run directory
            if pl_module.member_logger is not None:
                pl_module.member_logger.log(member, dict(zip(tags, values)), step)
            return
        for logger in trainer.loggers:
            if is_tensorboard_logger(logger):
                key = (logger_prefix(logger), tuple(tags))
                summary = self._summaries.get(key)
                if summary is None:
                    summary = self._summaries[key] = ScalarSummary(prefixed_tags(logger, tags))
                summary.write(logger.experiment, values, step)
            else:
                logger.log_metrics(dict(zip(tags, values)), step=step)

    @staticmethod
    def histogram_writers(trainer, pl_module, member: int
                          ) -> List[Tuple[SummaryWriter, Optional[object]]]:
        """(writer, its logger or None for a member run) of every place histograms go."""
        if member_seeds_of(pl_module):
            member_logger = pl_module.member_logger
            return [] if member_logger is None or member_logger.writers is None else \
                [(member_logger.writers[member], None)]
        return [(lg.experiment, lg) for lg in trainer.loggers if is_tensorboard_logger(lg)]

    @staticmethod
    def histograms(writers: Sequence[Tuple[SummaryWriter, Optional[object]]],
                   tags: Sequence[str], histograms: Sequence[Optional[Dict[str, object]]],
                   step: int) -> None:
        """One histogram event per writer (tags with its logger's prefix)."""
        for writer, logger in writers:
            write_histograms([writer], prefixed_tags(logger, tags), histograms, step)
