"""Intra-op threads for the paper nets: chosen explicitly, reversibly, and reported.

Why: the paper's networks are tiny (1.1 K parameters, batch 32), so a training step is a chain of
short parallel regions; torch's OpenMP threads meet at the end of each. On an idle 2-core machine
the second thread gains nothing (the README's main command, one epoch: 10.0 / 8.7 s at torch's
default of 2 threads, 9.3 / 9.2 s at 1); with another process busy on one core, every region
waits for the thread that lost its core, and the same epoch took 8.1–84.8 s over five runs at 2
threads against 10.2–11.0 s at 1 (issue 18; ``benchmarks/bench_threads.py`` measures it, results
in benchmarks/RESULTS.md). So one thread per process is the choice for these nets; the sweep
already runs one single-threaded process per core.

:func:`choose_threads` sets torch's intra-op threads to :data:`PAPER_NET_THREADS` unless the user
chose a count: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the environment, or a
``torch.set_num_threads(n)`` call made before (seen as a count other than torch's default, the
physical cores, which torch also reports as its inter-op default). :func:`restore_threads` puts
back what it replaced; :func:`thread_report` says what is in force and why (our modules append it
to their ``backend=...`` line). Our CLI (``python train.py``, the sweep's runs) calls
:func:`choose_threads`; nothing else in lightning_sig changes the thread count.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

__all__ = ["PAPER_NET_THREADS", "THREAD_VARIABLES", "user_threads", "choose_threads",
           "restore_threads", "thread_report"]

#: Intra-op threads :func:`choose_threads` sets for the paper nets.
PAPER_NET_THREADS = 1
#: Environment variables that set torch's intra-op threads at its start (the user's choice).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_saved: Dict[str, int] = {}  # "previous": the count choose_threads replaced; "chosen": ours


def user_threads() -> Optional[str]:
    """How the user chose the current thread count (``"OMP_NUM_THREADS=2"``,
    ``"torch.set_num_threads(3)"``), or None when it is torch's default (or our choice)."""
    import torch

    for variable in THREAD_VARIABLES:
        if os.environ.get(variable, "").strip():
            return f"{variable}={os.environ[variable].strip()}"
    threads = torch.get_num_threads()
    if _saved.get("chosen") == threads:
        return None
    # torch's default intra-op count is the physical cores, its inter-op default too
    if threads != torch.get_num_interop_threads():
        return f"torch.set_num_threads({threads})"
    return None


def choose_threads(threads: int = PAPER_NET_THREADS) -> str:
    """Set torch's intra-op threads to ``threads`` unless :func:`user_threads` says the user
    chose them. Idempotent; :func:`restore_threads` undoes it.

    Args:
        threads: the count to set, an integer >= 1 (default :data:`PAPER_NET_THREADS` = 1).

    Returns:
        :func:`thread_report` after the choice.

    Raises:
        ValueError: ``threads`` not an integer >= 1 (names it).
    """
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}.")
    if user_threads() is None and torch.get_num_threads() != threads:
        _saved.setdefault("previous", torch.get_num_threads())
        torch.set_num_threads(threads)
        _saved["chosen"] = threads
    return thread_report()


def restore_threads() -> bool:
    """Give torch back the thread count :func:`choose_threads` replaced; True if it did."""
    import torch

    previous = _saved.pop("previous", None)
    chosen = _saved.pop("chosen", None)
    if previous is None or torch.get_num_threads() != chosen:
        return False  # nothing replaced, or the user changed it since: theirs stays
    torch.set_num_threads(previous)
    return True


def thread_report() -> str:
    """One clause for logs, e.g. ``threads=1 (lightning_sig's choice for the paper nets; ...)``."""
    import torch

    threads = torch.get_num_threads()
    why = user_threads()
    if why is not None:
        return f"threads={threads} ({why})"
    if _saved.get("chosen") == threads:
        return (f"threads={threads} (lightning_sig's choice for the paper nets: no gain from "
                f"more, no slowdown when another process shares a core; OMP_NUM_THREADS or "
                f"torch.set_num_threads overrides)")
    return (f"threads={threads} (torch's default; lightning_sig.choose_threads() sets "
            f"{PAPER_NET_THREADS}, the paper nets' best on a shared machine)")
