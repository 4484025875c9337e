"""One short training on the real CIFAR-10 copy in ../shared/cifar10 (skipped when absent)."""
import pytest
import pytorch_lightning as pl

from lightning_sig import CIFAR10DataModule, LargeParamsNet
from tests.conftest import REAL_CIFAR10


@pytest.mark.skipif(not (REAL_CIFAR10 / "cifar-10-batches-py").is_dir(), reason="no ../shared/cifar10")
def test_short_training_on_real_cifar10_beats_chance(tmp_path):
    pl.seed_everything(0)
    # PyTorch's default init (not the paper's U[-10, 10)), so that 400 steps suffice to learn.
    model = LargeParamsNet(activation="tanh", alpha=2.0, l2_strength=0.001, init="default", lr=3e-3)
    dm = CIFAR10DataModule(str(REAL_CIFAR10), batch_size=64)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=400, limit_val_batches=32, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=tmp_path)
    trainer.fit(model, dm)
    acc = trainer.callback_metrics["val/acc"].item()  # 2048 test images
    # chance is 0.10; the binomial std of 2048 guesses is 0.0066, so 0.2 is > 15 std above it
    assert acc > 0.2, acc
