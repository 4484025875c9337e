"""NonFiniteLossGuard under 2-process DDP (gloo on CPU): rank 1's loss alone becomes NaN.

Run by ``tests/test_nonfinite_ddp.py``: ``python tests/scripts/ddp_nonfinite.py --out DIR
--action stop|continue``. A linear regression on fixed random data trains 1 epoch of 8 steps
with a checkpoint after every step (``{step}.ckpt``, all kept). At global step ``NAN_STEP``
(counted before the update) rank 1 adds a constant NaN to its loss: its gradient, and so the
all-reduced update, stays finite, so only rank 1 can see the non-finite step, and only the
guard's reduction over ranks tells rank 0. ``check_parameters=False`` for the same reason.
Each rank writes ``<out>/rank<r>.json`` (steps trained, the guard's non-finite steps, whether
checkpointing was off at the end of training).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig import NonFiniteLossGuard

NAN_STEP, STEPS = 3, 8


class Regression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        if self.global_rank == 1 and self.global_step == NAN_STEP:
            loss = loss + float("nan")  # d(loss + c)/dθ = dloss/dθ: the update stays finite
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Probe(pl.Callback):
    """Records checkpointing state at the end of training (before the guard's teardown)."""

    def on_train_end(self, trainer, pl_module) -> None:
        cb = trainer.checkpoint_callback
        self.off_at_end = (cb.save_top_k, cb.save_last) == (0, False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--action", default="stop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = TensorDataset(torch.randn(2 * 4 * STEPS, 4), torch.randn(2 * 4 * STEPS, 1))
    guard, probe = NonFiniteLossGuard(args.action, check_parameters=False), Probe()
    checkpoints = ModelCheckpoint(dirpath=args.out / "ckpt", filename="{step}",
                                  every_n_train_steps=1, save_top_k=-1)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[guard, probe, checkpoints])
    trainer.fit(Regression(), DataLoader(data, batch_size=4))
    record = {"global_step": trainer.global_step, "nonfinite_steps": guard.nonfinite_steps,
              "tripped_step": guard.tripped_step, "checkpointing_off": probe.off_at_end}
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
    # Close gloo's process group before interpreter exit: its background threads, left running,
    # once aborted a rank at exit ("terminate called without an active exception", CI run of
    # a367c0f) after training had finished correctly.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
