"""``_compat.training_batch_logs_now`` (the SaturationMonitor's and our modules' test of a
logging step) against Lightning's own rule, ``should_update_logs``, at every training batch of
real fits: intervals 1, 3 and 0, gradient accumulation, an early stop; with ``fast_dev_run``
every step logs (our choice, so that a smoke run goes through the logging code)."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig._compat import trainer_writes_logs_now, training_batch_logs_now


def _fit(pl, seen, stop_at=None, **trainer_kwargs):
    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            seen.append(("step", self.trainer.global_step, training_batch_logs_now(self.trainer),
                         trainer_writes_logs_now(self.trainer)))
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Check(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if stop_at is not None and trainer.global_step == stop_at:
                trainer.should_stop = True
            seen.append(("start", trainer.global_step, training_batch_logs_now(trainer),
                         trainer_writes_logs_now(trainer)))

    data = DataLoader(TensorDataset(torch.randn(24, 2)), batch_size=2)
    pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[Check()], **trainer_kwargs).fit(Probe(), data)


@pytest.mark.parametrize("namespace", ["pytorch_lightning", "lightning.pytorch"])
@pytest.mark.parametrize("kwargs, stop_at", [
    (dict(max_steps=9, log_every_n_steps=3), None),
    (dict(max_steps=5, log_every_n_steps=1), None),
    (dict(max_steps=5, log_every_n_steps=0), None),
    (dict(max_epochs=2, log_every_n_steps=2, accumulate_grad_batches=2), None),
    (dict(max_steps=20, log_every_n_steps=4), 5),
    (dict(fast_dev_run=3), None),
])
def test_training_batch_logs_now_is_lightnings_rule(namespace, kwargs, stop_at):
    seen = []
    _fit(importlib.import_module(namespace), seen, stop_at, **kwargs)
    assert len(seen) >= 6  # both hooks of at least three batches
    if kwargs.get("fast_dev_run"):  # ours: every step of a smoke run logs (Lightning's: none)
        assert all(s[2] for s in seen) and not any(s[3] for s in seen)
    else:
        assert [s[2] for s in seen] == [s[3] for s in seen]
    if kwargs.get("log_every_n_steps") == 3:  # steps 2, 5, 8 log: (step + 1) % 3 == 0
        assert [s[1] for s in seen if s[0] == "start" and s[2]] == [2, 5, 8]
    if kwargs.get("log_every_n_steps") == 0:
        assert not any(s[2] for s in seen)
    if stop_at is not None:  # the stop makes the next batch log, as Lightning
        assert any(s[2] for s in seen if s[1] == stop_at)


def test_training_batch_logs_now_without_a_trainer_is_true():
    assert training_batch_logs_now(None) is True
