"""Benchmark: the floor under the GradientQuantileCallback's cost on the paper nets.

The epoch means of every step need, at every optimizer step, a copy of the total gradient g
and of the data-loss gradient g − r·θ (Table 3 net: 1,130 coordinates each), and every 32 steps
the exact statistics of the buffered rows. ``FloorRecorder`` below does only that, with the
same compiled calls as the callback (``copy_into_row``, ``data_gradient_into_row``,
``radix_table``), and logs nothing. The gap between it and the callback at defaults is the
callback's bookkeeping: layouts, buffers, jobs, epoch sums and the writes of the logged steps.

Interleaved repetitions of ``Trainer.fit`` (TensorBoardLogger, ``log_every_n_steps=50``), timed
over ``--intervals`` whole logging intervals after 25 warm-up steps; ratios over no callback.

Run: ``python benchmarks/bench_callback_floor.py [--reps 9] [--intervals 4] [--threads 1]
[--data-dir ../shared/cifar10]``.
"""
from __future__ import annotations

import argparse
import tempfile

import pytorch_lightning as pl
import torch

from _common import add_common_arguments, cifar_datamodule, collect_interleaved, \
    fit_seconds_per_step, print_ratios_over, start_fit_benchmark

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.gradients.radix_build import load_radix_kernel

INTERVAL = 50  # log_every_n_steps of the paper configs
ROWS = 32  # buffer_steps (the callback's default was 32; it is 128 now)


class FloorRecorder(pl.Callback):
    """Copies g and g − r·θ into (2, 32, N) rows each step, computes their exact statistics
    every 32 steps, logs nothing (a measurement device, not a callback for users)."""

    def __init__(self) -> None:
        self.kernel = load_radix_kernel()
        self.levels = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
        self.rows, self.index = None, 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.rows is None:
            self.params = [p for p in pl_module.parameters() if p.requires_grad]
            self.sizes = torch.tensor([p.numel() for p in self.params])
            self.rows = torch.empty(2, ROWS, int(self.sizes.sum()))  # (key, step, N)
            self.r, self.thetas = pl_module.penalty_l2()
        grads = [p.grad for p in self.params]
        self.kernel.copy_into_row(grads, self.rows[0, self.index])
        self.kernel.data_gradient_into_row(grads, self.thetas, self.r, self.rows[1, self.index])
        self.index += 1
        if self.index == ROWS:
            self.index = 0
            for key in range(2):
                self.kernel.radix_table([self.rows[key].reshape(-1)], self.sizes, ROWS,
                                        self.levels, 0, True, False)


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=9, data_dir=True)
    parser.add_argument("--intervals", type=int, default=4,
                        help=f"timed logging intervals of {INTERVAL} steps (default 4)")
    args = parser.parse_args(argv)
    start_fit_benchmark(args, "GradientQuantileCallback: the floor of its cost",
                        "bench_callback_floor.py")
    if load_radix_kernel() is None:
        raise SystemExit("the compiled kernel could not be built here")
    data = cifar_datamodule(args.data_dir, 32, shuffle_seed=0)[0]
    start, steps = 25, 25 + args.intervals * INTERVAL

    def run(callbacks) -> float:
        from pytorch_lightning.loggers import TensorBoardLogger
        torch.manual_seed(0)
        module = CombinedNet(activation="tanh", alpha=2.0, l2_strength=0.01)
        with tempfile.TemporaryDirectory() as logs:
            return fit_seconds_per_step(module, data, steps, start, callbacks(), args.device,
                                        logger=TensorBoardLogger(logs, name="bench"),
                                        log_every_n_steps=INTERVAL)

    times = collect_interleaved({
        "no callback": lambda: run(list),
        "floor: copies + statistics only": lambda: run(lambda: [FloorRecorder()]),
        "GradientQuantileCallback, defaults": lambda: run(lambda: [GradientQuantileCallback()]),
    }, args.reps)
    print_ratios_over(times, "no callback")


if __name__ == "__main__":
    main()
