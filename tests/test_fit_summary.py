"""The end-of-fit line (lightning_sig/lightning/fit_summary.py): steps and epochs counted right
when a fit stops inside an epoch, and no log dir claimed without a logger (issue 19)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from lightning_sig.lightning.fit_summary import FitSummary, fit_progress


def _trainer(steps, epoch, done, per_epoch):
    progress = SimpleNamespace(current=SimpleNamespace(completed=done))
    return SimpleNamespace(global_step=steps, current_epoch=epoch, num_training_batches=per_epoch,
                           fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(
                               batch_progress=progress)))


@pytest.mark.parametrize("steps, epoch, done, per_epoch, expected", [
    (5, 1, 5, 5, "1 epoch(s), 5 step(s)"),  # max_epochs=1
    (1, 1, 1, 5, "0 epoch(s) and 1 of 5 batches, 1 step(s)"),  # max_steps=1
    (7, 2, 2, 5, "1 epoch(s) and 2 of 5 batches, 7 step(s)"),  # max_steps=7
    (4, 2, 2, 2, "2 epoch(s), 4 step(s)"),  # limit_train_batches=2, max_epochs=2
    (3, 1, 6, 6, "1 epoch(s), 3 step(s)"),  # accumulate_grad_batches=2
    (9, 3, 1, math.inf, "3 epoch(s), 9 step(s)"),  # batches per epoch unknown
    (0, 0, 0, 5, "0 epoch(s), 0 step(s)")])
def test_fit_progress_counts_finished_epochs_and_the_batches_of_a_cut_one(
        steps, epoch, done, per_epoch, expected):
    assert fit_progress(_trainer(steps, epoch, done, per_epoch)) == expected


def test_summary_line_without_a_logger_claims_no_log_dir():
    summary = FitSummary(started=0.0)
    summary.add_epoch(0.25)
    line = summary.line("0 epoch(s) and 1 of 5 batches, 1 step(s)", None)
    assert line.startswith("lightning_sig: fit done: 0 epoch(s) and 1 of 5 batches, 1 step(s) in ")
    assert line.endswith("; val/acc last 0.2500, best 0.2500 (validation 1 of 1); no logger")
    assert summary.line("1 epoch(s), 5 step(s)", "runs/x/version_0").endswith(
        "; logs in runs/x/version_0")


def test_a_one_step_fit_without_logger_says_so(fake_cifar, caplog):
    """Issue 19: a 1-step run printed "fit done: 1 epoch(s)" and, with ``logger=False``,
    "logs in <cwd>"."""
    import pytorch_lightning as pl

    from lightning_sig import CIFAR10DataModule, CombinedNet
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=1)
    with caplog.at_level("INFO"):
        trainer.fit(CombinedNet(), CIFAR10DataModule(str(fake_cifar), batch_size=20))
    line = next(r.getMessage() for r in caplog.records if "fit done" in r.getMessage())
    assert trainer.global_step == 1 and trainer.current_epoch == 1  # Lightning's count
    assert line.startswith("lightning_sig: fit done: 0 epoch(s) and 1 of 5 batches, 1 step(s) in ")
    assert line.endswith("; no logger") and "logs in" not in line
