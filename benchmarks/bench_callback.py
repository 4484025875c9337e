"""Benchmark: the GradientQuantileCallback's cost per training step in a real ``Trainer.fit``.

Network of Figure 2 (Table 2, ``ManyLayersNet``, tanh, α=2, the paper's N(0, 0.05²) init; with
``--net combined`` Figure 3's Table 3 net, tanh, α=2, r=0.01), batch 32, our DataModule,
TensorBoardLogger, ``log_every_n_steps=50`` as in the paper configs, no progress bar. Time
per step from step ``--warmup`` to the last (setup excluded). With ``--net resnet18``: torchvision's
``resnet18(weights=None, num_classes=10)`` (11.2 M coordinates) in a minimal LightningModule
(cross-entropy, Adam 1e-3), a user's large model. Variants:

- no callback (reference);
- the callback as the paper configs use it (scalars every 50 steps, histograms every 500,
  epoch means, which need the statistics of every step);
- the same without epoch means (``epoch_aggregates=False``: statistics only on logging steps);
- scalars every step (``log_every_n_steps=1``, histograms every 10 steps);
- the SaturationMonitor alone (logging steps only; not for resnet18, which has no sigmoid-type
  activation).

Goal: ≤ 1.05 at the default interval. Run:
``python benchmarks/bench_callback.py [--reps 5] [--steps 120] [--threads 1]
[--net many|combined|resnet18]``.
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from _common import add_common_arguments, cifar_datamodule, \
    collect_interleaved, fit_seconds_per_step, format_table, start_fit_benchmark

from lightning_sig import CombinedNet, ManyLayersNet
from lightning_sig import GradientQuantileCallback



def resnet18_module():
    """A minimal user's LightningModule around torchvision's ResNet-18 (10 classes)."""
    import pytorch_lightning as pl
    import torch.nn.functional as F
    import torchvision

    class ResNet18Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torchvision.models.resnet18(weights=None, num_classes=10)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)
    return ResNet18Module()


NETS = {"many": (ManyLayersNet, dict(activation="tanh", alpha=2.0)),
        "combined": (CombinedNet, dict(activation="tanh", alpha=2.0, l2_strength=0.01)),
        "resnet18": (lambda: resnet18_module(), {})}


def run(args, dm, callback_kwargs=None, saturation: bool = False) -> float:
    from pytorch_lightning.loggers import TensorBoardLogger
    cls, hparams = NETS[args.net]
    torch.manual_seed(0)
    module = cls(**hparams)
    callbacks = [] if callback_kwargs is None else [GradientQuantileCallback(**callback_kwargs)]
    if saturation:
        from lightning_sig import SaturationMonitor
        callbacks.append(SaturationMonitor())
    with tempfile.TemporaryDirectory() as logs:
        return fit_seconds_per_step(module, dm, args.steps, args.warmup, callbacks, args.device,
                                    logger=TensorBoardLogger(logs, name="bench"),
                                    log_every_n_steps=50)


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=5, data_dir=True)
    parser.add_argument("--steps", type=int, default=120, help="steps per run (default 120)")
    parser.add_argument("--net", choices=sorted(NETS), default="many")
    args = parser.parse_args(argv)
    start_fit_benchmark(args, "GradientQuantileCallback overhead", "bench_callback.py")
    dm, what = cifar_datamodule(args.data_dir, 32, shuffle_seed=0)
    print(f"data: {what}; net: {args.net} {NETS[args.net][1]}; batch 32; "
          f"{args.steps} steps per run, timed from step {args.warmup}\n")
    base = "no callback"
    variants = {
        base: lambda: run(args, dm),
        "callback, paper configs (every 50 + epoch means)": lambda: run(args, dm, {}),
        "callback, every 50, no epoch means": lambda: run(args, dm, {"epoch_aggregates": False}),
        "callback, every step": lambda: run(args, dm, {"log_every_n_steps": 1}),
    }
    if args.net != "resnet18":  # resnet18 has no sigmoid-type activation
        variants["SaturationMonitor alone (every 50)"] = lambda: run(args, dm, saturation=True)
    times = collect_interleaved(variants, args.reps)
    print(format_table(times, {k: base for k in variants if k != base}, unit="ms/step"))


if __name__ == "__main__":
    main()
