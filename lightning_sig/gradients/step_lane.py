"""The GradientQuantileCallback's lane for steady optimizer steps: one compiled call per step.

Why: for the paper's networks (about 1,130 coordinates, Table 3) recording a step is overhead,
not copying. On a step whose statistics only enter the epoch means (neither logged nor a
histogram step: 49 of every 50 with the paper configs) the general path reads the gradients
into rows, checks their layout against the buffer and copies each row through its own calls:
~50 µs here with warm caches, and in a fit, where each training step evicts them, it measured
about 4 % of a 3 ms step (``epoch_aggregates=False`` against the defaults). The lane writes the
step's rows (g, and g − r·θ of Sec. 2.2) with one call, ``StepRows.record`` (``row_copy.cpp``,
the same float32 operations as the general path), into the rows the general path began at the
buffer's first step.

It applies only to what the general path would do with the same result: a single network (no
members) of float32 parameters on the CPU with the compiled kernel, at most ``FLAT_MAX_NUMEL`` coordinates, the
data-loss gradient by ``penalty_l2`` (or none). Anything else at a step (a buffer's first row,
another layout, a gradient that appeared or went, not float32, another r) makes the lane
decline before writing, and that step takes the general path: the same rows, bitwise (tested).
"""
from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from torch import Tensor

from lightning_sig.gradients.epoch_steps import logs_at_step
from lightning_sig.gradients.radix_build import load_radix_kernel
from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.step_buffer import StepBuffer
from lightning_sig.gradients.step_jobs import StepFlags

__all__ = ["STEADY", "StepLane", "make_lane", "write_lane_rows"]


#: The flags of a steady step: not logged, in the epoch means, no histogram.
STEADY = StepFlags(False, True, False)


class StepLane(NamedTuple):
    """What a steady step records, fixed while the layout holds.

    ``keys``: the row keys, (grad,) or (grad, grad_data); ``layout``: their buffers' layout
    (names, sizes, with_total); ``rows``: the compiled ``StepRows`` holding the layout's
    parameters in row order (their gradients are read at each step) and the trainable
    parameters without a gradient (one appearing changes the layout); ``l2``: the module's
    ``penalty_l2`` (None: not asked, then no data row), whose answer must stay ``spec_params``
    (the same list object) and ``r``, or None when ``spec_params`` is None; ``log_every``: the
    logging interval n (step s is logged when n > 0 and (s + 1) % n == 0: the general path's);
    ``every_k``: the epoch means' step interval k (steps with (s + 1) % k == 0 enter them;
    a lane is made only where the epoch means are kept).
    """

    keys: Tuple[RowKey, ...]
    layout: tuple
    rows: Any
    l2: Optional[Callable[[], Optional[tuple]]]
    r: float
    spec_params: Optional[list]
    log_every: int
    every_k: int

    def is_steady(self, step: int) -> bool:
        """Whether optimizer step ``step`` only enters the epoch means (not logged, no
        histogram: histograms are at logged steps only)."""
        return not logs_at_step(step, self.log_every) and (step + 1) % self.every_k == 0


def make_lane(keys: Tuple[RowKey, ...], layout: tuple, params: List[Tensor],
              absent: List[Tensor], l2: Optional[Callable[[], Optional[tuple]]], r: float,
              spec_params: Optional[list], log_every: int, every_k: int) -> Optional[StepLane]:
    """A :class:`StepLane` (see its fields), None without the compiled kernel."""
    kernel = load_radix_kernel()
    if kernel is None:
        return None
    return StepLane(keys, layout, kernel.StepRows(list(params), list(absent)), l2, float(r),
                    spec_params, max(int(log_every), 0), max(int(every_k), 1))


def write_lane_rows(lane: StepLane, buffers: Sequence[Optional[StepBuffer]]) -> bool:
    """Write one step's rows into the next row of each of ``buffers`` (those of ``lane.keys``,
    each holding at least one row of ``lane.layout``, all equally many); False, with nothing
    written, where the general path must record the step instead (see the module docstring).
    The caller then counts the rows (:meth:`StepBuffer.add_written`)."""
    first = buffers[0]
    if first is None or not first.steps:
        return False
    for buffer in buffers:
        if buffer is None or len(buffer.steps) != len(first.steps) or buffer.key != lane.layout:
            return False
    spec = lane.l2() if lane.l2 is not None else None
    if (spec is not None) != (lane.spec_params is not None) or (
            spec is not None and (spec[0] != lane.r or spec[1] is not lane.spec_params)):
        return False
    data = buffers[1].rows if len(buffers) > 1 else None
    return lane.rows.record(lane.r, first.rows, data, len(first.steps))
