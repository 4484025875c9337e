"""From copied gradients to statistics tables: the GradientQuantileCallback's buffers and jobs.

:meth:`StatisticsPipeline.record` copies a step's gradient of one
:class:`~lightning_sig.gradients.row_key.RowKey` into that key's
:class:`~lightning_sig.gradients.step_buffer.StepBuffer` (the only copy: the optimizer may
change the gradient right after); a full buffer becomes a
:class:`~lightning_sig.gradients.step_jobs.StatisticsJob` for the
:class:`~lightning_sig.gradients.stats_worker.StatisticsWorker`; :meth:`take` returns finished
jobs with their tables, in the order they were recorded. A large gradient's buffer holds one
row and reuses its storage once the job reading it has finished (waiting for it if needed): at
most one working copy per key.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch import Tensor

from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.step_buffer import StepBuffer
from lightning_sig.gradients.step_lane import STEADY, StepLane, write_lane_rows
from lightning_sig.gradients.step_jobs import StatisticsJob, StepFlags, compute_job
from lightning_sig.gradients.stats_worker import StatisticsWorker

__all__ = ["StatisticsPipeline", "BUFFER_MAX_NUMEL", "THREAD_MIN_NUMEL"]

#: Largest buffer (steps × coordinates): 1 MiB of float32. Models with more than this many
#: gradient coordinates get one step per buffer, i.e. no batching.
BUFFER_MAX_NUMEL = 1 << 18
#: Buffers of at least this many coordinates wait for their job rather than take new memory.
_REUSE_NUMEL = 1 << 20
#: Jobs of fewer values run at submission even when threaded: handing ~1 ms of work for a
#: paper network's 32 buffered steps to the thread cost more than it saved.
THREAD_MIN_NUMEL = 1 << 16

Layout = Tuple[Tuple[str, ...], Tuple[int, ...], bool]  # group names, segment sizes, with_total


class StatisticsPipeline:
    """Buffers per row key, the jobs in flight and the worker.

    Args:
        levels, threshold, signed: the validated statistics settings.
        buffer_steps: rows per buffer at most (fewer for large gradients, ≥ 1).
        threaded: compute in a background thread (else at submission; also jobs of fewer
            than :data:`THREAD_MIN_NUMEL` values, collective (sharded) and GPU jobs).
    """

    def __init__(self, levels: Sequence[float], threshold: float, signed: bool,
                 buffer_steps: int, threaded: bool) -> None:
        self.levels, self.threshold, self.signed = tuple(levels), threshold, signed
        self.buffer_steps = buffer_steps
        self.histogram_limits: Optional[np.ndarray] = None  # TensorBoard's bucket edges
        self.group: Optional[object] = None  # a process group of sharded gradients
        self._worker = StatisticsWorker(threaded)
        self._buffers: Dict[RowKey, StepBuffer] = {}
        self._layouts: Dict[RowKey, Layout] = {}
        self._lent: Dict[RowKey, int] = {}  # key -> ticket of the job reading its storage
        self._jobs: List[StatisticsJob] = []  # submitted, not yet taken, in order

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet taken."""
        return len(self._jobs)

    def record(self, key: RowKey, layout: Layout, data: Union[Tensor, Sequence[Tensor]],
               step: int, flags: StepFlags) -> None:
        """Copy one step's gradient ``data`` (flat, or tensors read one after another) of
        ``key`` with its ``layout``; submits the buffer's job when it is full."""
        numel = sum(layout[1])
        capacity = 1 if self.group is not None else \
            max(1, min(self.buffer_steps, BUFFER_MAX_NUMEL // max(numel, 1)))
        buffer = self._buffers.get(key)
        if buffer is not None and (buffer.capacity != capacity or not buffer.accepts(layout)):
            self.submit(key)  # another layout: its steps first
            buffer = buffer if buffer.capacity == capacity else None
        if buffer is None:
            buffer = self._buffers[key] = StepBuffer(capacity)
        if not len(buffer):
            self._reuse(key, buffer, capacity * numel)
        buffer.append(layout, data, step, flags)
        self._layouts[key] = layout
        if buffer.full:
            self.submit(key)

    def record_lane(self, lane: StepLane, step: int) -> bool:
        """Record steady step ``step`` (:meth:`StepLane.is_steady`) of every key of ``lane``
        with one compiled call (:mod:`~lightning_sig.gradients.step_lane`); False, nothing
        recorded, where the step is not steady or needs :meth:`record` (e.g. its buffers are
        empty). Submits full buffers."""
        if not lane.is_steady(step):
            return False
        buffers = [self._buffers.get(key) for key in lane.keys]
        if not write_lane_rows(lane, buffers):
            return False
        for buffer in buffers:
            buffer.add_written(step, STEADY)
        if buffers[0].full:
            for key in lane.keys:
                self.submit(key)
        return True

    def submit(self, key: Optional[RowKey] = None) -> None:
        """Submit the buffered steps of ``key`` (of every key when None)."""
        for k in [key] if key is not None else list(self._buffers):
            buffer = self._buffers.get(k)
            if buffer is None or not len(buffer):
                continue
            (names, sizes, with_total), rows, steps, flags = buffer.take()
            job = StatisticsJob(k, names, sizes, with_total, rows, steps, flags)
            run = functools.partial(compute_job, job, self.levels, self.threshold, self.signed,
                                    self.histogram_limits, self.group)
            inline = self.group is not None or rows.device.type != "cpu" \
                or rows.numel() < THREAD_MIN_NUMEL
            self._lent[k] = self._worker.submit(run, inline=inline)
            self._jobs.append(job)

    def take(self, block: bool, consume: Callable[[StatisticsJob, Tensor, list], None]) -> None:
        """Call ``consume(job, table, histograms)`` for each finished job, oldest first (every
        submitted one with ``block``; submit first to include the buffered steps).

        Raises:
            RuntimeError: a job raised (its exception as the cause), after the jobs before it
                were consumed; later jobs stay queued.
        """
        if not self._jobs:
            return  # the common step: nothing submitted since the last take
        for error, output in self._worker.take(block):
            job = self._jobs.pop(0)
            if error is not None:
                raise RuntimeError(
                    f"GradientQuantileCallback: computing the gradient statistics of steps "
                    f"{job.steps} ({job.key.source}, member {job.key.member}) failed: "
                    f"{type(error).__name__}: {error}") from error
            consume(job, *output)

    def close(self) -> None:
        """Stop the worker thread (finished outputs stay takeable)."""
        self._worker.close()

    def _reuse(self, key: RowKey, buffer: StepBuffer, numel: int) -> None:
        """Let ``buffer`` copy into the storage of its last job once that job has read it
        (waiting for a large one, so that a large gradient has one working copy)."""
        ticket = self._lent.get(key)
        if ticket is None:
            return
        if not self._worker.ready(ticket):
            if numel < _REUSE_NUMEL:
                return  # small: new memory rather than a wait
            self._worker.wait(ticket)
        buffer.recycle()
        del self._lent[key]
