"""Benchmark: batches per second of our CIFAR-10 loaders against plain tensor indexing.

All variants walk the same epoch-0 order (``EpochSeededSampler``, seed 0) of the training set
in batches of 32 and produce float32 images in [0, 1] and int64 labels:

- plain tensor indexing: ``images[perm[i:i+32]].float().div_(255)`` — the reference;
- our ``CIFAR10DataModule.train_dataloader()`` (DataLoader + sampler + one ``__getitems__``
  indexing per batch);
- a per-image ``TensorDataset`` with torch's default collate (what a naive loader does);
- our member loader for S = 25 members (``member_seeds``): one batch holds 25 × 32 images;
  its rate is also given in member-batches (S × batches) per second.

Run: ``python benchmarks/bench_data.py [--reps 5] [--batches 300] [--threads 1] [--data-dir D]``.
"""
from __future__ import annotations

import argparse
import itertools
import shlex
import statistics
import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

from _common import add_common_arguments, apply_threads, cifar_datamodule, \
    format_table, print_header, time_interleaved

from lightning_sig.lightning.data import EpochSeededSampler

MEMBERS = 25


def consume(make_iterator, batches: int):
    """A callable that draws ``batches`` batches from a fresh iterator (one timed unit)."""
    def run():
        for _ in itertools.islice(make_iterator(), batches):
            pass
    return run


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=5, warmup=1, data_dir=True)
    parser.add_argument("--batches", type=int, default=300, help="batches per timed unit")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    print_header("Data pipeline throughput",
                 "python benchmarks/bench_data.py " + shlex.join(sys.argv[1:]), args.device)
    dm, what = cifar_datamodule(args.data_dir, 32, shuffle_seed=0)
    members, _ = cifar_datamodule(args.data_dir, 32, member_seeds=list(range(MEMBERS)))
    data = dm.train_set
    perm = torch.tensor(list(EpochSeededSampler(len(data), 0)))
    print(f"data: {what}; {len(data)} training images; {args.batches} batches of 32 per unit\n")

    def indexing():
        for i in range(0, len(perm), 32):
            idx = perm[i:i + 32]
            yield data.images[idx].float().div_(255.0), data.labels[idx]

    naive = TensorDataset(data.images, data.labels)
    base = "plain tensor indexing"
    variants = {
        base: consume(indexing, args.batches),
        "our train_dataloader()": consume(lambda: iter(dm.train_dataloader()), args.batches),
        "TensorDataset + default collate": consume(
            lambda: (((x.float().div_(255.0)), y) for x, y in DataLoader(
                naive, batch_size=32, sampler=EpochSeededSampler(len(data), 0))), args.batches),
        f"member loader, S={MEMBERS}": consume(lambda: iter(members.train_dataloader()),
                                               args.batches),
    }
    times = time_interleaved(variants, args.reps, args.warmup, device=args.device)
    rates = {k: f"{args.batches / statistics.median(v):,.0f}" for k, v in times.items()}
    member_rate = MEMBERS * args.batches / statistics.median(times[f"member loader, S={MEMBERS}"])
    rates[f"member loader, S={MEMBERS}"] += f" ({member_rate:,.0f} member-batches/s)"
    print(format_table(times, {k: base for k in variants if k != base}, unit="ms/unit",
                       extra=rates, extra_name="batches/s"))
    print("\nratio = time per unit over plain indexing (higher is slower).")


if __name__ == "__main__":
    main()
