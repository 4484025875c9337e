"""Which optimizer steps enter the epoch means of the GradientQuantileCallback.

Every logged step's statistics are exact; the epoch means (``grad_epoch/*``) need the statistics
of further steps, which for a large model cost more than its training step (exact quantiles of
11.2 M coordinates take about half a ResNet-18 step on a CPU). So the epoch means are taken
over every k-th step under a budget of coordinates per step: with N coordinates and a budget B,
k = 1 if N ≤ B (every step, as before: the paper's networks have ~1,500 coordinates), else the
smallest k ≥ N / B that nests with the logging interval n, i.e. a divisor of n (so the logged
steps are among the steps used) or a multiple of n (so the steps used are logged steps, at no
extra cost). The steps used are those with (step + 1) % k == 0 — Lightning's rule for logging
steps — deterministic for a given model size, budget and interval.
"""
from __future__ import annotations

import math
from typing import Optional

__all__ = ["DEFAULT_EPOCH_BUDGET_NUMEL", "epoch_step_interval", "check_budget", "logs_at_step",
           "check_interval"]

#: Default budget B: 2^18 gradient coordinates per optimizer step (averaged), about 8 ms of
#: exact statistics (global and per layer) per step on this CPU.
DEFAULT_EPOCH_BUDGET_NUMEL = 1 << 18


def check_budget(budget: Optional[int]) -> Optional[int]:
    """``budget`` (a positive int, or None for every step) unchanged.

    Raises:
        ValueError: not None and not a positive integer (names the value).
    """
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        raise ValueError(f"epoch_budget_numel must be a positive integer (coordinates per step) "
                         f"or None (every step), got {budget!r}.")
    return budget


def epoch_step_interval(numel: int, log_every: int, budget: Optional[int]) -> int:
    """k: every k-th optimizer step enters the epoch means.

    Args:
        numel: N, gradient coordinates of the model (≥ 0).
        log_every: n ≥ 1, the scalar logging interval in optimizer steps.
        budget: B ≥ 1 coordinates per step on average, or None (k = 1).

    Returns:
        1 if ``budget`` is None or N ≤ B; else the smallest divisor of n that is ≥ ⌈N/B⌉, or,
        when ⌈N/B⌉ > n, n·⌈⌈N/B⌉/n⌉. Example: N = 11.2 M, B = 2^18, n = 50 gives k = 50.
    """
    if budget is None or numel <= budget:
        return 1
    need = math.ceil(numel / budget)
    if need > log_every:
        return log_every * math.ceil(need / log_every)
    return min(d for d in range(need, log_every + 1) if log_every % d == 0)


def logs_at_step(step: int, every: int) -> bool:
    """Whether optimizer step ``step`` (0-based, counted before its update) is a logging step
    for interval ``every``: Lightning's own rule for ``train/*`` (``(step + 1) % every == 0``;
    ``every = 0`` logs no step, as ``Trainer(log_every_n_steps=0)``)."""
    return every > 0 and (step + 1) % every == 0


def check_interval(name: str, value: Optional[int], allow_none: bool = True,
                   hint: str = "") -> Optional[int]:
    """``value`` (a positive int, or None if ``allow_none``) unchanged.

    Raises:
        ValueError: anything else (names the argument and the value; ``hint`` appended).
    """
    if (value is None and not allow_none) or (value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1)):
        valid = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{name} must be {valid}, got {value!r}.{hint}")
    return value
