"""Benchmark: many seeds in one process (``num_members = S``) against S sequential runs.

Table 3 network, tanh, α=2, r=0.01, the paper's init, batch 32 per member. Throughput in
seed·steps per second (one optimizer step of one seed = 1):

- step level (no Lightning): S single modules stepped one after the other vs one module with
  ``num_members=S`` (its own ``training_step``, non-logging steps, the module's Adam);
- ``Trainer.fit`` level (``--fit``): one run's time per step × S vs one member run (our
  DataModule with member batches, TensorBoardLogger, log every 50 steps, no progress bar);
  this includes Lightning's per-step overhead, which members share.

S = 1 is the plain path (``num_members=1``): its row is the reference single run. Goal on a GPU:
25 members ≥ 10× the throughput of 25 sequential runs. Run:
``python benchmarks/bench_members.py [--members 1 5 25] [--reps 5] [--threads 1] [--fit]``
(``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile

import torch

from _common import add_common_arguments, apply_threads, cifar_datamodule, \
    collect_interleaved, fit_seconds_per_step, print_header, quiet_lightning, quiet_steps, \
    random_batches, time_interleaved, training_step_fn

from lightning_sig import CombinedNet

HPARAMS = dict(activation="tanh", alpha=2.0, l2_strength=0.01)


def step_variants(args, members: int) -> dict:
    """name → one call = S seed-steps."""
    singles = []
    for s in range(members):
        torch.manual_seed(s)
        module = CombinedNet(**HPARAMS).to(args.device)
        singles.append(training_step_fn(module, random_batches(4, seed=s, device=args.device)))

    def sequential():
        for step in singles:
            step()
    variants = {"sequential": sequential}
    if members > 1:
        torch.manual_seed(0)
        module = CombinedNet(**HPARAMS, num_members=members).to(args.device)
        variants["members"] = training_step_fn(
            module, random_batches(4, members=members, device=args.device))
    return variants


def fit_variants(args, members: int, dm_single) -> dict:
    from pytorch_lightning.loggers import TensorBoardLogger

    dm_members = cifar_datamodule(args.data_dir, 32)[0] if members > 1 else None

    def fit(num_members: int) -> float:
        torch.manual_seed(0)  # member seeds 0..S-1: the module gives them to dm_members
        dm = dm_members if num_members > 1 else dm_single
        module = CombinedNet(**HPARAMS, num_members=num_members)
        with tempfile.TemporaryDirectory() as logs:
            return fit_seconds_per_step(module, dm, args.steps, args.fit_warmup, device=args.device,
                                        logger=TensorBoardLogger(logs, name="bench"),
                                        log_every_n_steps=50)
    variants = {"sequential": lambda: members * fit(1)}
    if members > 1:
        variants["members"] = lambda: fit(members)
    return variants


def table(rows) -> str:
    out = ["| S | sequential s/call | members s/call | sequential seed·steps/s | "
           "members seed·steps/s | speed-up (members / sequential throughput) |",
           "|---:|---:|---:|---:|---:|---:|"]
    for members, times in rows:
        seq = statistics.median(times["sequential"])
        if "members" in times:
            mem = statistics.median(times["members"])
            speedup = statistics.median(
                a / b for a, b in zip(times["sequential"], times["members"]))
            out.append(f"| {members} | {seq:.4f} | {mem:.4f} | {members / seq:,.1f} | "
                       f"{members / mem:,.1f} | {speedup:.2f} |")
        else:
            out.append(f"| {members} | {seq:.4f} | (plain path) | {members / seq:,.1f} | "
                       f"{members / seq:,.1f} | 1.00 |")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=5, data_dir=True)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 5, 25])
    parser.add_argument("--calls", type=int, default=3, help="calls per timed block (step level)")
    parser.add_argument("--fit", action="store_true", help="also compare Trainer.fit runs")
    parser.add_argument("--steps", type=int, default=40, help="steps per fit (with --fit)")
    args = parser.parse_args(argv)
    args.warmup, args.fit_warmup = max(args.warmup, 2), max(args.warmup, 10)
    apply_threads(args.threads)
    quiet_steps()
    quiet_lightning()
    print_header("Many seeds at once (num_members) vs sequential runs",
                 "python benchmarks/bench_members.py " + shlex.join(sys.argv[1:]), args.device)
    rows = []
    for members in args.members:
        variants = step_variants(args, members)
        rows.append((members, time_interleaved(variants, args.reps, args.warmup, args.calls,
                                               args.device)))
    print("## Step level (one call = one optimizer step of each of the S seeds)\n")
    print(table(rows))
    if args.fit:
        dm, what = cifar_datamodule(args.data_dir, 32, shuffle_seed=0)
        fit_rows = [(m, collect_interleaved(fit_variants(args, m, dm), args.reps))
                    for m in args.members]
        print(f"\n## Trainer.fit level ({what}; {args.steps} steps per fit, timed from step "
              f"{args.fit_warmup}; sequential = S × one run)\n")
        print(table(fit_rows))


if __name__ == "__main__":
    main()
