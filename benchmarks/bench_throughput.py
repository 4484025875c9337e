"""Benchmark: seed-epochs per hour at ``Trainer.fit`` level, torch vs fused path, 1 vs K members.

For each paper net (Table 1: LargeParamsNet, 2: ManyLayersNet, 3: CombinedNet; tanh, α=2,
r=0.01, the paper's init, batch 32 per member) and each variant — torch path × 1 member (the
reference: today's sequential runs), torch × K, fused × 1, fused × K — it measures, interleaved:

- training: seconds per optimizer step of ``Trainer.fit`` (our CIFAR10DataModule, member batches
  for K > 1, TensorBoardLogger, log every 50 steps, the paper configs' GradientQuantileCallback,
  no progress bar), timed from step ``--warmup`` to ``--steps``, i.e. a fraction of an epoch;
- validation: seconds of ``Trainer.validate`` over ``--val-batches`` batches of 32 images.

One seed-epoch = 1563 steps + one pass over the 10,000 validation images, extrapolated from these
fractions (said in the output): seed-epochs/hour = 3600·K / (1563·t_step + 10000/n_val·t_val).
The projected study time is 7,500 seed-epochs (10 arms × 25 seeds × 30 epochs) at the best
variant's throughput, one process per core (``--processes``, default 2 = this machine's cores,
assuming the two processes do not slow each other, which a shared machine cannot check).
The first build of the C++ kernels is timed in a fresh subprocess with an empty build folder.

Run: ``python benchmarks/bench_throughput.py --threads 1`` (a few minutes; ``--nets 3``,
``--members 5 10 25``, ``--reps``, ``--steps``; ``--remedies`` adds plain tanh at fused × the
largest K and prints the remedies ratio there). With ``--device cuda`` only the torch path runs
(on a GPU it is the fast path: one grouped convolution over the members).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from _common import add_common_arguments, cifar_datamodule, collect_interleaved, \
    fit_seconds_per_step, start_fit_benchmark, synchronize

from lightning_sig import CombinedNet, GradientQuantileCallback, LargeParamsNet, ManyLayersNet

NETS = {1: LargeParamsNet, 2: ManyLayersNet, 3: CombinedNet}
HPARAMS = dict(activation="tanh", alpha=2.0, l2_strength=0.01)
STEPS_PER_EPOCH, VAL_IMAGES, STUDY_SEED_EPOCHS = 1563, 10_000, 7_500
#: Table 4's relu pair on the Table 3 net, as configs/fig3_combined/relu{,_reg}.yaml.
_RELU = dict(activation="relu", alpha=1.0, init="uniform", init_scale=10.0)
RELU_ARMS = {"fused × {k}, relu": _RELU, "fused × {k}, relu + r": dict(_RELU, l2_strength=0.01)}


def first_build_seconds() -> float:
    """Seconds to build the kernels from scratch in a fresh process (empty extension folder)."""
    with tempfile.TemporaryDirectory() as build:
        env = dict(os.environ, TORCH_EXTENSIONS_DIR=build)
        code = ("import time; t = time.perf_counter(); from lightning_sig.nn.fused import "
                "load_kernels; load_kernels(required=True); print(time.perf_counter() - t)")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def variant(args, cls, backend: str, members: int, dm_single, dm_members, parts: dict,
            hparams: dict = HPARAMS, label: str = ""):
    """Zero-argument callable → seconds per seed-epoch (extrapolated), one measurement; appends
    (training seconds per step, validation seconds per epoch) to ``parts[label]``."""
    from pytorch_lightning.loggers import TensorBoardLogger
    import pytorch_lightning as pl

    cuda = str(args.device).startswith("cuda")

    def run() -> float:
        torch.manual_seed(0)
        dm = dm_members if members > 1 else dm_single
        module = cls(**hparams, num_members=members, backend=backend)
        callback = GradientQuantileCallback(quantiles=[0.0, 0.25, 0.5, 0.75, 1.0],
                                            vanishing_threshold=1e-8, per_layer=True)
        with tempfile.TemporaryDirectory() as logs:
            step = fit_seconds_per_step(module, dm, args.steps, args.warmup, [callback],
                                        args.device, logger=TensorBoardLogger(logs, name="bench"),
                                        log_every_n_steps=50)
            assert module.backend == backend, (module.backend, backend)
            trainer = pl.Trainer(limit_val_batches=args.val_batches, logger=False,
                                 enable_progress_bar=False, enable_model_summary=False,
                                 accelerator="gpu" if cuda else "cpu", devices=1)
            start = time.perf_counter()
            trainer.validate(module, dm, verbose=False)
            synchronize(args.device)
            val = time.perf_counter() - start
        val_epoch = VAL_IMAGES / (32 * args.val_batches) * val
        parts.setdefault(label, []).append((step, val_epoch))
        return (STEPS_PER_EPOCH * step + val_epoch) / members  # seconds per seed-epoch
    return run


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=3, warmup=10, data_dir=True)
    parser.add_argument("--nets", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--members", type=int, nargs="+", default=[5, 25])
    parser.add_argument("--steps", type=int, default=40, help="training steps per fit")
    parser.add_argument("--val-batches", type=int, default=20, help="validation batches of 32")
    parser.add_argument("--processes", type=int, default=2, help="one per core for the projection")
    parser.add_argument("--skip-build", action="store_true", help="do not time the first build")
    parser.add_argument("--remedies", action="store_true",
                        help="also time plain tanh (α=1, r=0) at fused × the largest K, and on "
                             "the Table 3 net relu and relu + r=0.01 (U[-10, 10) init, as "
                             "configs/fig3_combined): Table 4's two pairs at the study's "
                             "configuration")
    args = parser.parse_args(argv)
    start_fit_benchmark(args, "Seed-epochs per hour at Trainer.fit level (torch vs fused)",
                        "bench_throughput.py", min_warmup=5)
    cuda = str(args.device).startswith("cuda")
    backends = ("torch",) if cuda else ("torch", "fused")  # the fused kernels are CPU kernels
    if not args.skip_build and not cuda:
        print(f"first build of the fused kernels (fresh process, empty cache): "
              f"{first_build_seconds():.1f} s\n")
    dm_single, what = cifar_datamodule(args.data_dir, 32, shuffle_seed=0)
    print(f"data: {what}; per fit {args.steps} steps, timed from step {args.warmup}; validation "
          f"{args.val_batches} batches of 32; extrapolated to {STEPS_PER_EPOCH} steps + "
          f"{VAL_IMAGES} validation images per epoch\n")
    best = 0.0
    for net in args.nets:
        cls = NETS[net]
        variants, parts = {}, {}
        for members in [1, *args.members]:
            dm_members = cifar_datamodule(args.data_dir, 32)[0] if members > 1 else None
            for backend in backends:
                name = f"{backend} × {members}"
                variants[name] = variant(args, cls, backend, members, dm_single, dm_members,
                                         parts, label=name)
        if args.remedies and not cuda:
            k = max(args.members)
            plain = f"fused × {k}, plain tanh"
            variants[plain] = variant(args, cls, "fused", k, dm_single,
                                      cifar_datamodule(args.data_dir, 32)[0], parts,
                                      hparams=dict(activation="tanh"), label=plain)
            if net == 3:  # Table 4's second pair: relu + r over relu (the paper: 1.36)
                for name, hp in RELU_ARMS.items():
                    variants[name.format(k=k)] = variant(
                        args, cls, "fused", k, dm_single, cifar_datamodule(args.data_dir, 32)[0],
                        parts, hparams=hp, label=name.format(k=k))
        times = collect_interleaved(variants, args.reps)
        ref = times["torch × 1"]
        print(f"## Table {net} net ({cls.__name__}), tanh α=2 r=0.01\n")
        print("| variant | s per seed-epoch | seed-epochs/h (one process) | ratio vs torch × 1 "
              "| training ms/step (all members) | validation s/epoch (all members) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, values in times.items():
            ratio = statistics.median(r / v for r, v in zip(ref, values))
            rate = 3600 / statistics.median(values)
            if (net == 3 or len(args.nets) == 1) and name.startswith(("torch", "fused")) \
                    and name.endswith(tuple("0123456789")):
                best = max(best, rate)  # the study's arms with remedies
            step_val = parts[name]
            step = statistics.median(p[0] for p in step_val) * 1e3
            val = statistics.median(p[1] for p in step_val)
            print(f"| {name} | {statistics.median(values):.1f} | {rate:.1f} | {ratio:.2f} | "
                  f"{step:.1f} | {val:.1f} |")
        print()
        plain = next((n for n in times if n.endswith("plain tanh")), None)
        if plain:
            with_remedies = plain.split(",")[0]
            ratio = statistics.median(a / b for a, b in zip(times[with_remedies], times[plain]))
            print(f"remedies ratio (tanh α=2 r=0.01 over plain tanh, {with_remedies}, per "
                  f"seed-epoch; paper Table 4: 1.31): {ratio:.3f}\n")
        relu, relu_reg = (n.format(k=max(args.members)) for n in RELU_ARMS)
        if relu in times and relu_reg in times:
            ratio = statistics.median(a / b for a, b in zip(times[relu_reg], times[relu]))
            print(f"remedies ratio (relu r=0.01 over relu, fused × {max(args.members)}, per "
                  f"seed-epoch; paper Table 4: 1.36): {ratio:.3f}\n")
    if best:
        hours = STUDY_SEED_EPOCHS / (best * args.processes)
        print(f"projected full study ({STUDY_SEED_EPOCHS} seed-epochs) at the best Table 3 "
              f"variant, {args.processes} processes: {hours:.1f} h (machine load above)")


if __name__ == "__main__":
    main()
