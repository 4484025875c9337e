"""RemoveFailedStartLogs: a failure in the DataModule's setup leaves no new version folder;
another process's files and failures after setup keep their logs."""
import os

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig.lightning.pytorch_lightning import RemoveFailedStartLogs


class _Data(pl.LightningDataModule):
    def __init__(self, fail_in_setup: bool) -> None:
        super().__init__()
        self.fail_in_setup = fail_in_setup

    def setup(self, stage=None):
        if self.fail_in_setup:
            raise ValueError("val_split too large")

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)


class _Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        self.log("train/loss", 1.0)
        raise RuntimeError("diverged")  # a failure after setup

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path, fail_in_setup, version=None):
    logger = TensorBoardLogger(str(tmp_path), name="run", version=version)
    trainer = pl.Trainer(max_steps=1, logger=logger, callbacks=[RemoveFailedStartLogs()],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    with pytest.raises((ValueError, RuntimeError)):
        trainer.fit(_Net(), datamodule=_Data(fail_in_setup))
    return logger.log_dir


def test_setup_failure_leaves_no_version_folder(tmp_path):
    log_dir = _fit(tmp_path, fail_in_setup=True)
    assert log_dir.endswith("version_0") and not os.path.exists(log_dir)
    assert os.listdir(tmp_path / "run") == []


def test_failure_after_setup_keeps_its_logs(tmp_path):
    log_dir = _fit(tmp_path, fail_in_setup=False)
    assert any(name.startswith("events.out.tfevents.") for name in os.listdir(log_dir))


def test_files_of_an_earlier_run_in_the_same_version_are_kept(tmp_path):
    earlier = tmp_path / "run" / "version_3"
    earlier.mkdir(parents=True)
    (earlier / "events.out.tfevents.1.otherhost.1.0").write_bytes(b"earlier run")
    log_dir = _fit(tmp_path, fail_in_setup=True, version=3)
    assert sorted(os.listdir(log_dir)) == ["events.out.tfevents.1.otherhost.1.0"]
    assert (earlier / "events.out.tfevents.1.otherhost.1.0").read_bytes() == b"earlier run"
