"""Train CombinedNet for a few steps with Lightning's DDP (gloo on CPU) or in one process.

Run by ``tests/test_ddp.py``: ``python tests/scripts/ddp_run.py --out DIR --data DIR --devices 2
--batch-size 10``. Lightning's ``strategy="ddp"`` re-launches this script (same arguments) for
every further rank, so everything happens under ``__main__``/:func:`run`, which the test also
calls in-process for the single-process reference. Each rank writes ``<out>/rank<r>.json``
(its rank, pid, and the training-image indices of every batch it saw); rank 0 also writes
``<out>/final.pt`` (the final state_dict). With ``--download`` the data folder starts empty and
the DataModule's download is replaced by one that records which rank called it and then writes
the same synthetic batches as the tests' ``fake_cifar`` fixture (no network involved).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path

import torch

import lightning_sig.lightning.data as data_module
from lightning_sig.lightning.data_files import write_batches
from lightning_sig.lightning.namespace import lightning_classes

SEED, N_PER_BATCH = 0, 20


class BatchRecorderMixin:
    """Record the dataset indices of every training batch (images are unique in the data)."""

    def __init__(self) -> None:
        self.steps: list = []  # [(epoch, [index, ...]), ...] in step order
        self._index: dict = {}

    def on_train_start(self, trainer, pl_module) -> None:
        images = trainer.datamodule.train_set.images  # (N, 3, 32, 32) uint8
        self._index = {img.numpy().tobytes(): i for i, img in enumerate(images)}
        assert len(self._index) == len(images), "synthetic images must be unique"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x = (batch[0] * 255).round().to(torch.uint8)  # exact inverse of the /255 scaling
        self.steps.append((trainer.current_epoch, [self._index[img.numpy().tobytes()] for img in x]))


def _fake_download(out: Path):
    def download(data_dir: str) -> None:
        rank = os.environ.get("LOCAL_RANK", "0")
        (out / f"download_rank{rank}_pid{os.getpid()}").write_text(data_dir)
        write_batches(data_dir, n_per_batch=N_PER_BATCH, seed=SEED)
    return download


def run(out: Path, data: Path, devices: int, batch_size: int, epochs: int,
        download: bool = False, namespace: str = "pytorch_lightning"):
    """Fit ``epochs`` epochs; ``devices`` > 1 uses strategy="ddp" on CPU (gloo); Trainer,
    logger and our classes from the Lightning ``namespace``."""
    pl = importlib.import_module(namespace)
    ours = lightning_classes(namespace)
    CombinedNet, CIFAR10DataModule = ours["CombinedNet"], ours["CIFAR10DataModule"]
    BatchRecorder = type("BatchRecorder", (BatchRecorderMixin, pl.Callback), {})
    out.mkdir(parents=True, exist_ok=True)
    if download:
        data_module.download_cifar10 = _fake_download(out)
    pl.seed_everything(SEED)
    model = CombinedNet(activation="tanh", alpha=2.0, learnable_alpha=True, l2_strength=0.01,
                        init="default")  # PyTorch init: few gradient coordinates near 0
    dm = CIFAR10DataModule(str(data), batch_size=batch_size, download=download)
    recorder = BatchRecorder()
    trainer = pl.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
        max_epochs=epochs, deterministic=True, log_every_n_steps=1, num_sanity_val_steps=0,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        logger=pl.loggers.TensorBoardLogger(str(out / "tb"), name="run", version=0,
                                            default_hp_metric=False),
        callbacks=[ours["GradientQuantileCallback"](log_every_n_steps=1, histograms=False),
                   recorder])
    trainer.fit(model, dm)
    record = {"global_rank": trainer.global_rank, "world_size": trainer.world_size,
              "pid": os.getpid(), "global_step": trainer.global_step, "steps": recorder.steps}
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
    if trainer.is_global_zero:
        torch.save(model.state_dict(), out / "final.pt")
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--namespace", default="pytorch_lightning",
                        choices=["pytorch_lightning", "lightning.pytorch"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per rank on small machines
    run(args.out, args.data, args.devices, args.batch_size, args.epochs, args.download,
        args.namespace)
    # Close gloo's process group before interpreter exit: its background threads, left running,
    # once aborted a rank at exit ("terminate called without an active exception", CI run of
    # a367c0f) after training had finished correctly.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
