"""NonFiniteLossGuard: a run whose loss becomes NaN stops (or continues) as documented, the
gradient statistics record the non-finite counts, and the last good checkpoint stays intact.

Runs: CombinedNet on 100 synthetic images, batch 20 → 5 steps per epoch, 2 epochs; ModelCheckpoint
(one per epoch, plus last.ckpt). ``NaNAtStep`` multiplies the loss by NaN at global step 7 (epoch
1), so every gradient coordinate is NaN there and Adam then turns every parameter into NaN.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig import CIFAR10DataModule, CombinedNet
from lightning_sig import GradientQuantileCallback
from lightning_sig import NonFiniteLossGuard
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

NAN_STEP, STEPS_PER_EPOCH = 7, 5


class NaNAtStep(CombinedNet):
    """CombinedNet whose training loss is NaN at global step ``nan_step``."""

    def __init__(self, nan_step: int = NAN_STEP, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_step = nan_step

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step == self.nan_step else loss


class Recorder(pl.Callback):
    """Parameters at the end of epoch 0; the training loss of every step."""

    def __init__(self) -> None:
        self.epoch0, self.losses = None, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            self.epoch0 = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def _fit(tmp_path: Path, data: Path, model, guard=None, checkpoint=None, epochs=2):
    pl.seed_everything(0)
    checkpoint = checkpoint or ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    recorder = Recorder()
    callbacks = [GradientQuantileCallback(log_every_n_steps=1, histograms=False), recorder,
                 checkpoint] + ([guard] if guard else [])
    trainer = pl.Trainer(max_epochs=epochs, deterministic=True, log_every_n_steps=1,
                         num_sanity_val_steps=0, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks,
                         logger=TensorBoardLogger(str(tmp_path / "tb"), name="run", version=0))
    trainer.fit(model, CIFAR10DataModule(str(data), batch_size=20))
    return trainer, recorder, checkpoint


def _scalars(tmp_path: Path, tag: str):
    acc = EventAccumulator(str(tmp_path / "tb" / "run" / "version_0"), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tensorboard_tag(tag))}


def _weights(path: Path) -> dict:
    ckpt = torch.load(path, weights_only=False)
    return ckpt["global_step"], ckpt["state_dict"]


@pytest.mark.parametrize("action,bad_steps", [
    ("stop", [NAN_STEP]),
    ("continue", list(range(NAN_STEP, 2 * STEPS_PER_EPOCH))),  # NaN weights keep the loss NaN
])
def test_nan_loss_stops_or_continues_and_keeps_last_good_checkpoint(tmp_path, fake_cifar, action,
                                                                       bad_steps):
    guard = NonFiniteLossGuard(action=action)
    with pytest.warns(UserWarning, match=rf"non-finite training loss \(nan\) or parameters at "
                                         rf"global step {NAN_STEP} \(epoch 1\).*epoch=0-step=5"):
        trainer, recorder, ckpt_cb = _fit(tmp_path, fake_cifar, NaNAtStep(), guard)
    assert guard.nonfinite_steps == bad_steps and guard.tripped_step == NAN_STEP
    assert trainer.global_step == bad_steps[-1] + 1  # "stop" ends right after the NaN step
    assert np.isnan(recorder.losses[NAN_STEP]) and np.isfinite(recorder.losses[:NAN_STEP]).all()
    # only the epoch-0 checkpoint and last.ckpt, both holding exactly the end-of-epoch-0 weights
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["epoch=0-step=5.ckpt", "last.ckpt"]
    for name in files:
        step, state = _weights(tmp_path / "ckpt" / name)
        assert step == STEPS_PER_EPOCH and state.keys() == recorder.epoch0.keys()
        assert all(torch.equal(state[k], recorder.epoch0[k]) for k in state)
    assert all(torch.isfinite(v).all() for v in recorder.epoch0.values())
    # the ModelCheckpoint got its settings back after the run
    assert (ckpt_cb.save_top_k, ckpt_cb.save_last) == (1, True)
    # gradient statistics: every coordinate non-finite at the bad steps, none before
    n_params = sum(p.numel() for p in trainer.lightning_module.parameters())
    counts = _scalars(tmp_path, "grad/global/nonfinite_count")
    assert counts == {s: (n_params if s in bad_steps else 0.0) for s in range(trainer.global_step)}
    assert _scalars(tmp_path, "train/nonfinite_steps")[trainer.global_step - 1] == len(bad_steps)


def test_without_guard_nan_model_replaces_good_checkpoint(tmp_path, fake_cifar):
    """The hazard the guard removes: Lightning saves the NaN model and deletes the good one."""
    trainer, recorder, _ = _fit(tmp_path, fake_cifar, NaNAtStep())
    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["epoch=1-step=10.ckpt", "last.ckpt"]
    step, state = _weights(tmp_path / "ckpt" / "last.ckpt")
    assert step == 2 * STEPS_PER_EPOCH and all(torch.isnan(v).all() for v in state.values()
                                                if v.is_floating_point())


def test_huge_learning_rate_stops_before_a_nonfinite_checkpoint(tmp_path, fake_cifar):
    guard = NonFiniteLossGuard("stop")
    every_step = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True)
    model = CombinedNet(activation="relu", init="default", lr=1e18)
    with pytest.warns(UserWarning, match="NonFiniteLossGuard"):
        trainer, recorder, _ = _fit(tmp_path, fake_cifar, model, guard, every_step)
    first_bad = int(np.flatnonzero(~np.isfinite(recorder.losses))[0])
    assert first_bad >= 1 and guard.nonfinite_steps == [first_bad]
    assert trainer.global_step == first_bad + 1 and len(recorder.losses) == first_bad + 1
    # the checkpoints kept are the one written after step first_bad - 1, with finite weights
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == [f"epoch=0-step={first_bad}.ckpt", "last.ckpt"]
    for name in files:
        step, state = _weights(tmp_path / "ckpt" / name)
        assert step == first_bad and all(torch.isfinite(v).all() for v in state.values())


def test_bad_action_is_named():
    with pytest.raises(ValueError, match=r"action must be one of 'stop', 'continue', got 'halt'"):
        NonFiniteLossGuard(action="halt")
