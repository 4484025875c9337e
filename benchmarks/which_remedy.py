"""The two signals of README's "Which remedy do I need?" on the paper's Figure 1 and Figure 2 arms.

Trains each arm of ``configs/fig1_large_params`` and ``configs/fig2_many_layers`` (the configs'
model arguments, real CIFAR-10 when present, batch 32, seed 0) for ``--steps`` optimizer steps
with the GradientQuantileCallback and the SaturationMonitor (logging every 50 steps), and prints
at the last logged step: the saturated fraction of all tanh pre-activations, the median |g|
(total and, with r > 0, data-loss), and the first and last layers' median |g| (the depth slope).
A short indicative run (one seed, a few hundred steps), not the paper's 30 epochs × 25 seeds.

Run: ``python benchmarks/which_remedy.py [--steps 200] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import tempfile

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers.logger import Logger

from _common import DEFAULT_DATA_DIR, apply_threads, cifar_datamodule, quiet_lightning

from lightning_sig import GradientQuantileCallback, LargeParamsNet, ManyLayersNet, \
    SaturationMonitor

ARMS = {
    "fig1 unregularized": (LargeParamsNet, dict(init="uniform", init_scale=10.0)),
    "fig1 regularized r=0.01": (LargeParamsNet, dict(init="uniform", init_scale=10.0,
                                                     l2_strength=0.01)),
    "fig2 unscaled": (ManyLayersNet, dict(init="normal", init_scale=0.05)),
    "fig2 scaled α=2": (ManyLayersNet, dict(init="normal", init_scale=0.05, alpha=2.0)),
}


class LastMetrics(Logger):
    """Keeps the latest value of every metric."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict = {}

    name, version = "last", 0

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.update(metrics)

    def log_hyperparams(self, *args, **kwargs) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    apply_threads(args.threads)
    quiet_lightning()
    dm, what = cifar_datamodule(args.data_dir, 32, shuffle_seed=0)
    print(f"data: {what}; {args.steps} steps, seed 0, tanh, logging every 50 steps\n")
    print("| arm | saturated frac | median \\|g\\| | median \\|g − rθ\\| | first layer | "
          "last layer | first / last |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for arm, (cls, kwargs) in ARMS.items():
        pl.seed_everything(0, verbose=False)
        module, logger = cls(activation="tanh", **kwargs), LastMetrics()
        with tempfile.TemporaryDirectory() as root:
            pl.Trainer(max_steps=args.steps, log_every_n_steps=50, logger=logger,
                       callbacks=[GradientQuantileCallback(histograms=False), SaturationMonitor()],
                       enable_checkpointing=False, enable_progress_bar=False,
                       enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                       default_root_dir=root).fit(module, datamodule=dm)
        m = logger.metrics
        layers = [k for k in m if k.startswith("grad/") and k.endswith("/abs_q50")
                  and "/global/" not in k]
        first, last = m[layers[0]], m[layers[-1]]
        data = m.get("grad_data/global/abs_q50", float("nan"))
        print(f"| {arm} | {m['act/global/saturated_frac']:.3f} | {m['grad/global/abs_q50']:.2e} "
              f"| {data:.2e} | {first:.2e} | {last:.2e} | {first / last:.2e} |")


if __name__ == "__main__":
    main()
