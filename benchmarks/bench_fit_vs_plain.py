"""Benchmark: Lightning ``Trainer.fit`` with our DataModule against a bare PyTorch loop.

Same model (Table 3 network, tanh, α=2, r=0.01, the paper's init), same data and order (epoch 0
of ``EpochSeededSampler``, batch 32), same optimizer (the module's Adam), same loss (CE +
r/2·Σθ², the module's ``training_step`` in the fits, the same maths written out in the loops).
Time per step from the start of step ``--warmup`` to the end of step ``--steps`` (setup
excluded). Variants:

- bare loop, plain tensor indexing: ``images[perm[i:i+B]].float() / 255`` — the reference;
- bare loop over our DataModule's ``train_dataloader()``;
- ``Trainer.fit`` as the paper configs run it (TensorBoardLogger, ``log_every_n_steps=50``)
  without and with the progress bar;
- the same with ``log_every_n_steps=1`` (every step written to TensorBoard);
- the same with our module calling ``self.log`` on every step (the previous code; Lightning
  still writes every 50 steps).

Then, on CPU, Lightning's own per-step cost: ``Trainer.fit`` minus a bare loop for a trivial
model (one 10×10 linear layer) over the same DataLoader.

Goal: fit / bare loop ≤ 1.10. Run:
``python benchmarks/bench_fit_vs_plain.py [--reps 5] [--steps 150] [--threads 1] [--data-dir D]``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

import torch
import torch.nn.functional as F

from _common import add_common_arguments, cifar_datamodule, \
    collect_interleaved, fit_seconds_per_step, format_table, start_fit_benchmark, \
    synchronize

import lightning_sig.lightning.modules as modules
from lightning_sig import CombinedNet
from lightning_sig.nn.optim import adam
from lightning_sig.lightning.data import EpochSeededSampler

HPARAMS = dict(activation="tanh", alpha=2.0, l2_strength=0.01)


def bare_loop(args, dm, use_loader: bool) -> float:
    """Seconds per step of a plain PyTorch loop (no Lightning)."""
    torch.manual_seed(0)
    module = CombinedNet(**HPARAMS).to(args.device)
    net, r = module.net, module.l2_strength
    optimizer = adam(module.parameters(), module.lr)
    data = dm.train_set
    if use_loader:
        batches = iter(dm.train_dataloader())
    else:
        perm = torch.tensor(list(EpochSeededSampler(len(data), 0)))
        b = args.batch_size
        batches = ((data.images[perm[i:i + b]].float().div_(255.0), data.labels[perm[i:i + b]])
                   for i in range(0, len(perm), b))
    start = None
    for step in range(args.steps):
        if step == args.warmup:
            synchronize(args.device)
            start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
        optimizer.zero_grad()
        logits, penalty = net.forward_penalized(x, r)  # as the module's training_step
        loss = F.cross_entropy(logits, y) + penalty
        loss.backward()
        optimizer.step()
    synchronize(args.device)
    return (time.perf_counter() - start) / (args.steps - args.warmup)


def lightning_fit(args, dm, log_every: int = 50, progress_bar: bool = False,
                  log_calls_every_step: bool = False) -> float:
    from pytorch_lightning.loggers import TensorBoardLogger
    torch.manual_seed(0)
    module = CombinedNet(**HPARAMS)
    original = modules.training_batch_logs_now
    if log_calls_every_step:  # the previous code: self.log_dict(...) on every training step
        modules.training_batch_logs_now = lambda trainer: True
    try:  # the progress bar draws into /dev/null (its cost is measured, not its output)
        with tempfile.TemporaryDirectory() as logs, open(os.devnull, "w") as null, \
                contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            return fit_seconds_per_step(
                module, dm, args.steps, args.warmup, device=args.device,
                logger=TensorBoardLogger(logs, name="bench"), log_every_n_steps=log_every,
                enable_progress_bar=progress_bar)
    finally:
        modules.training_batch_logs_now = original


def trivial_pair(args, dm):
    """(bare loop, fit) seconds per step of a trivial model (one 10×10 linear layer on 10 pixels)
    over our DataLoader: the difference is Lightning's own per-step cost."""
    import pytorch_lightning as pl
    from torch import nn

    class Trivial(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(10, 10)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.lin(x[:, 0, 0, :10]), y)

        def configure_optimizers(self):
            return adam(self.parameters(), 1e-3)

    def bare() -> float:
        module = Trivial()
        optimizer, batches = module.configure_optimizers(), iter(dm.train_dataloader())
        for step in range(args.steps):
            if step == args.warmup:
                start = time.perf_counter()
            optimizer.zero_grad()
            module.training_step(next(batches), step).backward()
            optimizer.step()
        return (time.perf_counter() - start) / (args.steps - args.warmup)

    def fit() -> float:
        from pytorch_lightning.loggers import TensorBoardLogger
        with tempfile.TemporaryDirectory() as logs:
            return fit_seconds_per_step(Trivial(), dm, args.steps, args.warmup,
                                        logger=TensorBoardLogger(logs, name="bench"),
                                        log_every_n_steps=50)
    return {"trivial model, bare loop": bare, "trivial model, fit (log every 50)": fit}


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=5, data_dir=True)
    parser.add_argument("--steps", type=int, default=150, help="steps per run (default 150)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    start_fit_benchmark(args, "Lightning fit vs a bare PyTorch loop", "bench_fit_vs_plain.py")
    dm, what = cifar_datamodule(args.data_dir, args.batch_size, shuffle_seed=0)
    print(f"data: {what}; batch {args.batch_size}; {args.steps} steps per run, timed from step "
          f"{args.warmup}\n")
    base = "bare loop, tensor indexing"
    variants = {
        base: lambda: bare_loop(args, dm, use_loader=False),
        "bare loop, our DataLoader": lambda: bare_loop(args, dm, use_loader=True),
        "fit (log every 50, no progress bar)": lambda: lightning_fit(args, dm),
        "fit (log every 50, progress bar)": lambda: lightning_fit(args, dm, progress_bar=True),
        "fit (log every step)": lambda: lightning_fit(args, dm, log_every=1),
        "fit, self.log every step (before)": lambda: lightning_fit(args, dm,
                                                                   log_calls_every_step=True),
    }
    times = collect_interleaved(variants, args.reps)
    print(format_table(times, {k: base for k in variants if k != base}, unit="ms/step"))
    if args.device == "cpu":
        trivial = collect_interleaved(trivial_pair(args, dm), args.reps)
        bare, fit = (sorted(v)[len(v) // 2] for v in trivial.values())
        print(f"\nLightning's own cost per step (trivial model, our DataLoader, CPU): fit "
              f"{fit * 1e6:.0f} µs − bare loop {bare * 1e6:.0f} µs = {(fit - bare) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
