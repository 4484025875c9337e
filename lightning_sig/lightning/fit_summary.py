"""The one-line summary our LightningModules print at the end of ``fit``.

Example: ``lightning_sig: fit done: 30 epochs in 512.3 s; val/acc last 0.4127, best 0.4190
(epoch 27); logs in runs/fig3_combined/tanh_reg_scaled/version_0``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import List, Optional

__all__ = ["FitSummary"]


@dataclass
class FitSummary:
    """Wall-clock start of a fit and the val/acc of each finished validation epoch.

    Attributes:
        started: ``time.perf_counter()`` at fit start (seconds).
        val_acc: val/acc (fraction) after each validation epoch, NaN where none was logged.
    """

    started: float
    val_acc: List[float] = field(default_factory=list)

    @classmethod
    def start(cls) -> "FitSummary":
        """A summary whose clock starts now."""
        return cls(time.perf_counter())

    def add_epoch(self, val_acc: Optional[object]) -> None:
        """Record one validation epoch's val/acc (a float or 0-d tensor; None → NaN)."""
        self.val_acc.append(math.nan if val_acc is None else float(val_acc))

    def line(self, epochs: int, log_dir: Optional[str]) -> str:
        """The summary line for ``epochs`` finished epochs and the run's ``log_dir``."""
        seconds = time.perf_counter() - self.started
        finite = [(acc, i) for i, acc in enumerate(self.val_acc) if not math.isnan(acc)]
        if finite:
            best, at = max(finite)
            acc = (f"val/acc last {finite[-1][0]:.4f}, best {best:.4f} "
                   f"(validation {at + 1} of {len(self.val_acc)})")
        else:
            acc = "no val/acc logged"
        where = f"logs in {log_dir}" if log_dir else "no logger"
        return f"lightning_sig: fit done: {epochs} epoch(s) in {seconds:.1f} s; {acc}; {where}"
