"""Benchmark: the parts of the GradientQuantileCallback's cost, each against what it replaced.

On the gradient of the Table 2 network (``ManyLayersNet``, 28 tensors in 15 layers, 1,454
coordinates; random values), outside a Trainer (hot caches, so smaller than inside ``fit``):

- statistics of one step, global and per layer: one call per step
  (:func:`~lightning_sig.gradients.stats.layer_statistics`) against 32 buffered steps in one call
  (:func:`~lightning_sig.gradients.quantile_engine.table_statistics` with ``rows=32``), per step;
- the CRC-32C checksum of one 5 KB event record (the scalars of one step): TensorBoard's
  pure-Python one against google-crc32c's C one (:mod:`lightning_sig.speedups`);
- log10|g| histograms of the global gradient and the 15 layers: ``np.histogram`` per layer as
  ``SummaryWriter.add_histogram`` does (``make_histogram``) against one batched binning
  (:func:`~lightning_sig.gradients.histograms.segment_log10_histograms`);
- gathering one step's gradients of a 25-members module (``ManyLayersNet``, r = 0.01, after one
  backward; the callback's ``GradientReader.read``: each member's flat total and data-loss
  gradient): per
  member and parameter slices against one (S, N) row tensor each
  (:func:`~lightning_sig.members.gradients.member_gradient_rows`).

Run: ``python benchmarks/bench_callback_parts.py [--reps 7] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile

import numpy as np
import torch

from _common import add_common_arguments, apply_threads, format_table, print_header, \
    time_interleaved

from lightning_sig import ManyLayersNet
from lightning_sig.speedups import fast_masked_crc32c
from lightning_sig.gradients.histograms import log10_abs_for_histogram, segment_log10_histograms
from lightning_sig.gradients.quantile_engine import table_statistics
from lightning_sig.gradients.stats import layer_statistics

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
STEPS = 32  # buffer_steps (the callback's default was 32; it is 128 now)
MEMBERS = 25  # the paper's seeds per configuration


def layer_sizes() -> list:
    """Coordinates per layer of the Table 2 network."""
    sizes: dict = {}
    for name, p in ManyLayersNet().named_parameters():
        layer = name.rpartition(".")[0]
        sizes[layer] = sizes.get(layer, 0) + p.numel()
    return list(sizes.values())


def member_gathering(reps: int, warmup: int) -> dict:
    """Seconds per call of the callback's gathering, per-member path and rows, each on its own
    module and callback (the parameter cache is per module), after the same backward."""
    from lightning_sig.lightning.grad_sources import GradientReader
    x, y = torch.rand(MEMBERS, 4, 3, 32, 32), torch.randint(0, 10, (MEMBERS, 4))
    rows, per_member = (ManyLayersNet(activation="tanh", alpha=2.0, l2_strength=0.01,
                                      num_members=MEMBERS, member_seeds=range(MEMBERS))
                        for _ in range(2))
    for module in (rows, per_member):
        module.training_step((x, y), 0).backward()
    per_member.member_gradient_rows = None  # a module without the optional method
    old, new = GradientReader(True, True), GradientReader(True, True)
    return time_interleaved({"per member (member_gradients)": lambda: old.read(per_member, False),
                             "rows (member_gradient_rows)": lambda: new.read(rows, False)},
                            reps, warmup, 5)


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=7)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    print_header("GradientQuantileCallback parts",
                 "python benchmarks/bench_callback_parts.py " + shlex.join(sys.argv[1:]), "cpu")
    sizes = layer_sizes()
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(STEPS, sum(sizes), generator=g) * 1e-3  # (S, N)
    print(f"gradient: {sum(sizes)} coordinates in {len(sizes)} layers; {STEPS} steps buffered\n")

    def one_by_one():
        for row in rows:
            layer_statistics(row, sizes, LEVELS, 1e-8, with_total=True)

    def batched():
        table_statistics(rows, sizes, LEVELS, 1e-8, rows=STEPS, with_total=True)
    stats = time_interleaved({"one call per step": one_by_one, f"{STEPS} steps in one call": batched},
                             args.reps, args.warmup, 5)
    stats = {k: [t / STEPS for t in v] for k, v in stats.items()}
    print(f"## Statistics per step (global + {len(sizes)} layers)\n")
    print(format_table(stats, {f"{STEPS} steps in one call": "one call per step"}, unit="µs",
                       scale=1e6))

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    record = os.urandom(5000)
    crc = time_interleaved({"TensorBoard's Python CRC-32C": lambda: masked_crc32c(record),
                            "google-crc32c (C)": lambda: fast_masked_crc32c(record)},
                           args.reps, args.warmup, 20)
    print("\n## Checksum of one 5 KB event record\n")
    print(format_table(crc, {"google-crc32c (C)": "TensorBoard's Python CRC-32C"}, unit="µs",
                       scale=1e6))

    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import make_histogram
    with tempfile.TemporaryDirectory() as logs:
        writer = SummaryWriter(logs)
        bins, limits = writer.default_bins, np.asarray(writer.default_bins)
        writer.close()
    flat = rows[0]
    bounds = np.cumsum([0] + sizes)
    groups = [flat] + [flat[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]

    def per_layer():
        for group in groups:
            make_histogram(log10_abs_for_histogram(group).numpy().astype(float), bins)
    hist = time_interleaved({"np.histogram per layer (add_histogram)": per_layer,
                             "one batched binning": lambda: segment_log10_histograms(
                                 flat, sizes, limits)}, args.reps, args.warmup, 3)
    print(f"\n## log10|g| histograms of one step (global + {len(sizes)} layers)\n")
    print(format_table(hist, {"one batched binning": "np.histogram per layer (add_histogram)"},
                       unit="µs", scale=1e6))

    gather = member_gathering(args.reps, args.warmup)
    print(f"\n## Gathering one step's gradients of {MEMBERS} members (ManyLayersNet, r = 0.01)\n")
    print(format_table(gather, {"rows (member_gradient_rows)": "per member (member_gradients)"},
                       unit="µs", scale=1e6))


if __name__ == "__main__":
    main()
