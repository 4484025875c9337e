"""Benchmark: the GradientQuantileCallback's cost per training step in a real ``Trainer.fit``,
over whole logging intervals.

Nets (``--net``):

- ``mlp20m``: 20 tanh layers of width 1024 (``nn.Linear``, 20.99 M parameters), batch 64,
  cross-entropy over 1024 classes, Adam (the issue's user MLP); random data;
- ``mlp100m``: 24 tanh layers of width 2048 (100.7 M parameters), likewise;
- ``resnet18``: torchvision's ``resnet18(num_classes=10)`` (11.2 M), batch 32, Adam, CIFAR-shaped;
- ``combined``: the paper's Table 3 net (``CombinedNet``, tanh, α = 2, r = 0.01), batch 32, our
  DataModule (synthetic CIFAR-format data unless ``--data-dir`` holds CIFAR-10): the paper
  configs, also with the SaturationMonitor.

TensorBoardLogger, ``log_every_n_steps=50`` (the paper configs'), no progress bar. Each fit
runs ``--warmup`` untimed steps, then times ``--intervals`` whole logging intervals starting
half an interval after a logged step (so the last logged step's statistics, computed in the
background, are inside the window). Variants: no callback (reference); the callback at
defaults with ``async_stats`` on (default) and off; logging every step (histograms every 10),
async and sync; for ``combined`` ``buffer_steps`` 32 and 128 (the default), the
SaturationMonitor alone and with the callback (what the paper configs run); named with ``--only``
only, the callback with ``histograms=False``, ``epoch_aggregates=False`` or
``data_gradient=False`` (where a long window's cost goes). Compare buffer sizes
over a window that holds whole buffers (e.g. ``--intervals 64``: 3,200 steps). Interleaved
repetitions, ratios = medians of paired ratios.

``--speedups``: the process-wide speed-ups the CLI turns on (C CRC-32C of event records).

Run: ``python benchmarks/bench_callback.py --net mlp20m [--reps 3] [--intervals 1]
[--threads 1] [--speedups]``.
"""
from __future__ import annotations

import argparse
import tempfile
from typing import Dict

import torch

from _common import add_common_arguments, cifar_datamodule, collect_interleaved, \
    fit_seconds_per_step, print_ratios_over, start_fit_benchmark

from lightning_sig import CombinedNet, GradientQuantileCallback, SaturationMonitor

INTERVAL = 50  # log_every_n_steps of the paper configs


def mlp_module(depth: int, width: int):
    """A user's LightningModule: ``depth`` × (Linear(width, width), Tanh), cross-entropy."""
    import pytorch_lightning as pl
    import torch.nn.functional as F
    from torch import nn

    class MLP(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(*[m for _ in range(depth)
                                       for m in (nn.Linear(width, width), nn.Tanh())][:-1])

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-4)
    return MLP()


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


def random_loader(shape, classes: int, batch: int, batches: int):
    """A DataModule of ``batches`` fixed random batches (no data pipeline cost)."""
    import pytorch_lightning as pl
    from torch.utils.data import TensorDataset
    g = torch.Generator().manual_seed(0)
    n = batch * batches
    data = TensorDataset(torch.randn(n, *shape, generator=g),
                         torch.randint(0, classes, (n,), generator=g))
    return pl.LightningDataModule.from_datasets(train_dataset=data, batch_size=batch)


NETS = {
    "mlp20m": (lambda: mlp_module(20, 1024), lambda a: random_loader((1024,), 1024, 64, 400)),
    "mlp100m": (lambda: mlp_module(24, 2048), lambda a: random_loader((2048,), 2048, 64, 200)),
    "resnet18": (resnet18_module, lambda a: random_loader((3, 32, 32), 10, 32, 400)),
    "combined": (lambda: CombinedNet(activation="tanh", alpha=2.0, l2_strength=0.01),
                 lambda a: cifar_datamodule(a.data_dir, 32, shuffle_seed=0)[0]),
}


def run(args, data, callbacks) -> float:
    """Seconds per step of one fit over the timed window."""
    from pytorch_lightning.loggers import TensorBoardLogger
    make_module, _ = NETS[args.net]
    torch.manual_seed(0)
    module = make_module()
    steps = args.start + args.intervals * INTERVAL
    with tempfile.TemporaryDirectory() as logs:
        return fit_seconds_per_step(module, data, steps, args.start, callbacks(), args.device,
                                    logger=TensorBoardLogger(logs, name="bench"),
                                    log_every_n_steps=INTERVAL)


def variants(args, data) -> Dict[str, object]:
    def callback(**kwargs):
        return lambda: [GradientQuantileCallback(**kwargs)]
    out = {"no callback": lambda: run(args, data, list),
           "callback, defaults (async)": lambda: run(args, data, callback()),
           "callback, defaults, async_stats=False": lambda: run(args, data, callback(
               async_stats=False)),
           "callback, every step (async)": lambda: run(args, data, callback(
               log_every_n_steps=1)),
           "callback, every step, async_stats=False": lambda: run(args, data, callback(
               log_every_n_steps=1, async_stats=False))}
    if args.net == "combined":  # the buffer's size, the paper configs' callbacks
        out["callback, buffer_steps=32"] = lambda: run(args, data, callback(buffer_steps=32))
        out["callback, buffer_steps=128"] = lambda: run(args, data, callback(buffer_steps=128))
    if args.net == "combined":  # the paper configs: the callback and the SaturationMonitor
        out["SaturationMonitor alone"] = lambda: run(args, data, lambda: [SaturationMonitor()])
        out["paper configs (callback + SaturationMonitor)"] = lambda: run(
            args, data, lambda: [GradientQuantileCallback(), SaturationMonitor()])
    # where a long window's cost goes (run only when named in --only)
    extra = {f"callback, {k}=False": callback(**{k: False}) for k in (
        "histograms", "epoch_aggregates", "data_gradient")}
    out.update({k: v for k, v in extra.items() if args.only and k in args.only})
    return {k: v for k, v in out.items() if args.only is None or k in args.only
            or k == "no callback"}


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=3, data_dir=True)
    parser.add_argument("--net", choices=sorted(NETS), default="mlp20m")
    parser.add_argument("--intervals", type=int, default=1,
                        help=f"timed logging intervals of {INTERVAL} steps (default 1)")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    parser.add_argument("--speedups", action="store_true",
                        help="lightning_sig.enable_speedups() first, as train.py does (C CRC-32C "
                             "of the TensorBoard events)")
    args = parser.parse_args(argv)
    if args.speedups:
        from lightning_sig import enable_speedups
        print(enable_speedups())
    start_fit_benchmark(args, "GradientQuantileCallback overhead", "bench_callback.py")
    # the window starts half an interval after a logged step, at or after the warm-up
    half = INTERVAL // 2
    args.start = half + INTERVAL * max(0, -(-(args.warmup - half) // INTERVAL))
    data = NETS[args.net][1](args)
    n = sum(p.numel() for p in NETS[args.net][0]().parameters())
    window = range(args.start, args.start + args.intervals * INTERVAL)
    size = f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,}"  # the paper nets: ~1,130
    print(f"net: {args.net} ({size} parameters); timed steps {window[0]}–{window[-1]} "
          f"(logged steps inside: {[s for s in window if (s + 1) % INTERVAL == 0]})\n")
    times = collect_interleaved(variants(args, data), args.reps)
    print_ratios_over(times, "no callback")


if __name__ == "__main__":
    main()
