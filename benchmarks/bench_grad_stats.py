"""Benchmark: one exact global + per-layer statistics call on a large float32 gradient.

The gradient is a 100 M-parameter model's (``--layers`` × a 2048 × 2048 weight and a 2048 bias,
default 24: 100.7 M coordinates; ``--zeros`` sets a fraction of exact zeros, as ReLU nets have),
each layer its own torch tensor. One thread (``torch.set_num_threads(1)``). Timed, median of
``--reps`` calls after a warm-up, with the peak resident memory each call adds (Linux VmHWM), in
gradient copies:

- the engine (:func:`~lightning_sig.gradients.quantile_engine.table_statistics`, compiled
  kernel) on the layer tensors as they are (no copy), and with the callback's copy into a
  reused float32 buffer first (what a logged step costs in all);
- its numpy twin (the fallback without a compiler; identical values);
- the previous engine's two algorithms (re-implemented here, the code is gone): its default
  one-vector call, numpy partition of one working copy (global only), and its large-model path,
  sorting the int32 bits of |g| per layer and then of the whole vector (global + per layer);
- the order statistics alone by ``np.partition`` of a copy of |g| at the ranks of 3 levels
  (0.25, 0.5, 0.75), the issue's yardstick.

All quantiles are checked equal. Run: ``python benchmarks/bench_grad_stats.py [--layers 24]
[--zeros 0.0] [--reps 3]``.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from typing import Callable, List

import numpy as np
import torch

from lightning_sig.gradients.quantile_engine import table_statistics
from lightning_sig.gradients.radix_build import load_radix_kernel
from lightning_sig.gradients.stat_keys import DEFAULT_QUANTILES

LEVELS = DEFAULT_QUANTILES


def peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def extra_copies(fn: Callable[[], object], nbytes: int) -> float:
    """Peak RSS added by one call, in units of ``nbytes`` (NaN if it cannot be reset)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return math.nan
    base = peak_rss()
    fn()
    return (peak_rss() - base) / nbytes


def timed(fn: Callable[[], object], reps: int) -> List[float]:
    fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def rank_plan(n: int, q: float):
    v = (n - 1) * q
    if v >= n - 1:
        return n - 1, n - 1, 0.0
    lo = math.floor(v)
    return lo, lo + 1, v - lo


def lerp(a: float, b: float, t: float) -> float:
    d = b - a
    return b - d * (1.0 - t) if t >= 0.5 else a + d * t


def quantiles_of(sorted_or_partitioned: np.ndarray, n: int) -> List[float]:
    plans = [rank_plan(n, q) for q in LEVELS]
    return [lerp(float(sorted_or_partitioned[lo]), float(sorted_or_partitioned[hi]), t)
            for lo, hi, t in plans]


def previous_one_vector(layers: List[torch.Tensor]) -> List[float]:
    """The previous default (numpy backend): one float32 working copy, float64 moments in
    chunks, one ``partition`` at the needed ranks of |g| (global only)."""
    work = np.empty(sum(t.numel() for t in layers), np.float32)
    offset = 0
    for t in layers:
        np.copyto(work[offset:offset + t.numel()], t.numpy().reshape(-1))
        offset += t.numel()
    for start in range(0, work.size, 1 << 20):  # moments as it computed them
        chunk = np.abs(work[start:start + (1 << 20)], dtype=np.float64)
        chunk.sum(), np.count_nonzero(chunk <= 1e-8), np.square(chunk, out=chunk).sum()
    np.abs(work, out=work)
    n = work.size
    ranks = sorted({r for q in LEVELS for r in rank_plan(n, q)[:2]} - {0, n - 1})
    work.partition(ranks)
    work[0], work[n - 1] = work.min(), work.max()
    return quantiles_of(work, n)


def previous_sorted_bits(layers: List[torch.Tensor]) -> List[float]:
    """The previous large-model path: one float32 copy, |g|, each layer's int32 bits sorted
    (its quantiles and sums), then the whole vector's (global)."""
    work = np.empty(sum(t.numel() for t in layers), np.float32)
    offset = 0
    for t in layers:
        seg = work[offset:offset + t.numel()]
        np.copyto(seg, t.numpy().reshape(-1))
        np.abs(seg, out=seg)
        seg.view(np.int32).sort()
        seg.sum(dtype=np.float64)
        offset += t.numel()
    work.view(np.int32).sort()
    return quantiles_of(work, work.size)


def partition_only(layers: List[torch.Tensor]) -> None:
    """np.partition of a copy of |g| at the ranks of 0.25, 0.5, 0.75."""
    a = np.abs(np.concatenate([t.numpy().reshape(-1) for t in layers]))
    n = a.size
    a.partition(sorted({r for q in (0.25, 0.5, 0.75) for r in rank_plan(n, q)[:2]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--zeros", type=float, default=0.0, help="fraction of exact zeros")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(args.layers):
        for shape in ((2048, 2048), (2048,)):
            t = torch.randn(shape, generator=g) * 1e-3
            if args.zeros:
                t[torch.rand(shape, generator=g) < args.zeros] = 0.0
            layers.append(t)
    sizes = [t.numel() + b.numel() for t, b in zip(layers[::2], layers[1::2])]
    n = sum(sizes)
    nbytes = 4 * n
    kernel = load_radix_kernel()
    print(f"gradient: {n:,} float32 coordinates in {len(sizes)} layers ({nbytes / 2**20:.0f} "
          f"MiB), exact zeros {args.zeros:.0%}; torch {torch.__version__}, numpy "
          f"{np.__version__}, torch threads {torch.get_num_threads()}; compiled kernel "
          f"{'yes' if kernel is not None else 'NO'}; load average at start "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    buffer = torch.empty(n)

    def engine(backend="compiled"):
        return table_statistics(layers, sizes, LEVELS, 1e-8, with_total=True, backend=backend)

    def copy_then_engine():
        offset = 0
        for t in layers:
            np.copyto(buffer[offset:offset + t.numel()].numpy(), t.numpy().reshape(-1))
            offset += t.numel()
        return table_statistics(buffer, sizes, LEVELS, 1e-8, with_total=True)

    rows = [("engine, compiled, on the layer tensors (global + per layer)", engine),
            ("engine: copy into the reused buffer + compiled (global + per layer)",
             copy_then_engine),
            ("engine, numpy twin (global + per layer)", lambda: engine("numpy")),
            ("previous engine, default one-vector call (global only)",
             lambda: previous_one_vector(layers)),
            ("previous engine, sorted float bits (global + per layer)",
             lambda: previous_sorted_bits(layers)),
            ("np.partition of a copy of |g| at 3 levels (global only, no moments)",
             lambda: partition_only(layers))]
    base = None
    print("\n| method | median s | all s | extra memory (gradient copies) | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, fn in rows:
        reps = args.reps if "numpy twin" not in name else 1
        times = timed(fn, reps)
        median = statistics.median(times)
        base = base or median
        memory = extra_copies(fn, nbytes)
        print(f"| {name} | {median:.3f} | {', '.join(f'{t:.3f}' for t in times)} | "
              f"{memory:.2f} | {median / base:.2f} |")
    got = engine()[0, 0, :len(LEVELS)].tolist()
    same = got == previous_one_vector(layers) == previous_sorted_bits(layers) \
        == engine("numpy")[0, 0, :len(LEVELS)].tolist()
    print(f"\nglobal quantiles {LEVELS} identical across the methods: {same}")
    print("load average at the end " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
