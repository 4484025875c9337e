"""The one-line summary our LightningModules print at the end of ``fit``.

Examples: ``lightning_sig: fit done: 30 epoch(s), 7500 step(s) in 512.3 s; val/acc last
0.4127, best 0.4190 (validation 28 of 30); logs in runs/fig3_combined/tanh_reg_scaled/version_0``;
a fit stopped inside its first epoch (``max_steps=1``) without a logger: ``lightning_sig: fit
done: 0 epoch(s) and 1 of 5 batches, 1 step(s) in 2.1 s; no val/acc logged; no logger``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional

__all__ = ["FitSummary", "fit_progress"]


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

    def line(self, progress: str, log_dir: Optional[str]) -> str:
        """The summary line for ``progress`` (:func:`fit_progress`) and the run's ``log_dir``
        (None: the Trainer has no logger)."""
        seconds = time.perf_counter() - self.started
        finite = [(acc, i) for i, acc in enumerate(self.val_acc) if not math.isnan(acc)]
        if finite:
            best, at = max(finite)
            acc = (f"val/acc last {finite[-1][0]:.4f}, best {best:.4f} "
                   f"(validation {at + 1} of {len(self.val_acc)})")
        else:
            acc = "no val/acc logged"
        where = f"logs in {log_dir}" if log_dir else "no logger"
        return f"lightning_sig: fit done: {progress} in {seconds:.1f} s; {acc}; {where}"


def fit_progress(trainer: Any) -> str:
    """How far the fit of ``trainer`` (a Lightning Trainer, at ``on_fit_end``) went, counted
    from the start of training (a resumed fit included): ``"1 epoch(s), 5 step(s)"``, or, when it
    stopped inside an epoch (``max_steps``, an early stop), ``"0 epoch(s) and 1 of 5 batches,
    1 step(s)"``.

    Lightning counts an epoch cut short as finished in ``trainer.current_epoch``; the batches
    of the epoch it stopped in (``fit_loop.epoch_loop.batch_progress``) against
    ``trainer.num_training_batches`` tell it apart. Steps are optimizer steps
    (``trainer.global_step``), fewer than batches with gradient accumulation.
    """
    steps, epochs = int(trainer.global_step), int(trainer.current_epoch)
    per_epoch = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    if epochs > 0 and math.isfinite(per_epoch) and 0 < done < per_epoch:
        return f"{epochs - 1} epoch(s) and {done} of {int(per_epoch)} batches, {steps} step(s)"
    return f"{epochs} epoch(s), {steps} step(s)"
