"""Benchmark: one global-statistics call on a large float32 gradient, time and peak memory.

Issue 3 asks for the time of one exact global-statistics call on a 100M-coordinate gradient on
this CPU and that it holds no more than a few gradient copies. This script prints
- the median time of ``gradient_statistics`` (default CPU backend: numpy partition) after a
  warm-up, and of the sort-based "torch" backend (the one used off CPU);
- the peak resident memory added by each call, in units of the gradient's size (Linux VmHWM,
  reset through /proc/self/clear_refs before each measurement);
- the order-statistic step alone with three exact methods on the same |g| buffer: numpy
  partition (used), torch.sort, torch.kthvalue (one call per needed rank), with ratios.

Run: ``python benchmarks/bench_grad_stats.py [--numel 100000000] [--reps 3]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from lightning_sig.gradients.stats import (
    DEFAULT_QUANTILES, _lerp, _rank_plan, _select_quantiles, gradient_statistics)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def timed(fn: Callable[[], object], reps: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time in seconds of ``reps`` calls after ``warmup`` calls, and all times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def extra_copies(fn: Callable[[], object], nbytes: int) -> float:
    """Peak RSS added by one call of ``fn``, in units of ``nbytes``; NaN if unmeasurable."""
    if not reset_peak_rss():
        return float("nan")
    base = peak_rss_bytes()
    fn()
    return (peak_rss_bytes() - base) / nbytes


def quantiles_from_ranks(n: int, value_of_rank: Callable[[int], float]) -> list[float]:
    """Default quantile levels from order statistics, with grad_stats' rank plan and lerp."""
    plans = [_rank_plan(n, q) for q in DEFAULT_QUANTILES]
    values = {r: value_of_rank(r) for plan in plans for r in plan[:2]}
    return [_lerp(values[low], values[high], t) for low, high, t in plans]


def select_partition(a: torch.Tensor) -> list[float]:
    """The method used: in-place numpy partition of a copy (what grad_stats does on CPU)."""
    return _select_quantiles(a.numpy().copy(), DEFAULT_QUANTILES)


def select_sort(a: torch.Tensor) -> list[float]:
    ordered = torch.sort(a).values
    return quantiles_from_ranks(a.numel(), lambda r: float(ordered[r]))


def select_kthvalue(a: torch.Tensor) -> list[float]:
    """One torch.kthvalue call per needed rank (min/max for the end ranks)."""
    n = a.numel()
    return quantiles_from_ranks(n, lambda r: float(
        a.min() if r == 0 else a.max() if r == n - 1 else torch.kthvalue(a, r + 1).values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=100_000_000)
    parser.add_argument("--reps", type=int, default=3, help="timed calls of the default backend")
    args = parser.parse_args()
    g = torch.randn(args.numel, generator=torch.Generator().manual_seed(0)) * 1e-3
    nbytes = g.numel() * g.element_size()
    print(f"gradient: {args.numel:,} float32 coordinates ({nbytes / 2**20:.0f} MiB); "
          f"torch {torch.__version__}, numpy {np.__version__}, torch threads "
          f"{torch.get_num_threads()}, interop threads {torch.get_num_interop_threads()}, "
          f"CPUs {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (other processes)")

    t_np, all_np = timed(lambda: gradient_statistics(g), args.reps)
    m_np = extra_copies(lambda: gradient_statistics(g), nbytes)
    print(f"gradient_statistics, backend numpy (default on CPU): median {t_np:.3f} s of "
          f"{[round(t, 3) for t in all_np]}, peak extra memory {m_np:.2f} gradient copies")
    from lightning_sig.gradients.sorted_stats import layered_statistics
    def sorted_bits():  # the callback's path for large models (global only here)
        return layered_statistics([[g]], DEFAULT_QUANTILES, 1e-8, False, False)[0][0]
    t_sb, all_sb = timed(sorted_bits, args.reps)
    m_sb = extra_copies(sorted_bits, nbytes)
    same = sorted_bits()[:len(DEFAULT_QUANTILES)].tolist() == [
        gradient_statistics(g)[k] for k in list(gradient_statistics(g))[:len(DEFAULT_QUANTILES)]]
    print(f"sorted_stats.layered_statistics (sorted float bits, the callback's large-model "
          f"path): median {t_sb:.3f} s of {[round(t, 3) for t in all_sb]}, peak extra memory "
          f"{m_sb:.2f} gradient copies; ratio to numpy backend {t_sb / t_np:.2f}; identical "
          f"quantiles {same}")
    t_th, _ = timed(lambda: gradient_statistics(g, backend="torch"), 1, warmup=0)
    m_th = extra_copies(lambda: gradient_statistics(g, backend="torch"), nbytes)
    print(f"gradient_statistics, backend torch (sort, used off CPU): {t_th:.3f} s (1 call), "
          f"peak extra memory {m_th:.2f} gradient copies; ratio torch/numpy {t_th / t_np:.2f}")
    ref, other = gradient_statistics(g), gradient_statistics(g, backend="torch")
    worst = max(abs(other[k] - v) / abs(v) for k, v in ref.items() if v)
    print(f"backends: identical quantiles {all(ref[k] == other[k] for k in ref if '_q' in k)}, "
          f"max relative difference over all keys {worst:.1e} (summation order)")

    a = g.abs()
    results, answers = {}, []
    for name, fn in [("numpy partition", select_partition), ("torch.sort", select_sort),
                     ("torch.kthvalue", select_kthvalue)]:
        results[name], _ = timed(lambda: answers.append(fn(a)), 1, warmup=0)
    assert answers[0] == answers[1] == answers[2], "selection methods disagree"
    base = results["numpy partition"]
    print(f"quantiles {DEFAULT_QUANTILES} of |g| only (the three methods agree exactly):")
    for name, seconds in results.items():
        print(f"  {name:16s} {seconds:7.3f} s   ratio to numpy partition {seconds / base:5.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
