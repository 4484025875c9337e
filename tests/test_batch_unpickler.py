"""CIFAR-10 batches are read with a restricted unpickler: numpy arrays yes, code execution no."""
import os
import pickle

import numpy as np
import pytest

from lightning_sig import CIFAR10DataModule
from lightning_sig.lightning.data_files import BASE_FOLDER, TEST_FILES, load_batches

from tests.conftest import REAL_CIFAR10


class _RunsCommand:
    """Pickles as a call of ``os.system(command)``: what a crafted batch file can hold."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_crafted_batch_is_refused_before_anything_runs(fake_cifar, tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = fake_cifar / BASE_FOLDER / "data_batch_2"
    with open(path, "wb") as f:  # the payload comes first: a plain pickle.load would run it
        pickle.dump({"x": _RunsCommand(f"touch {marker}"), "data": np.zeros((1, 3072), np.uint8),
                     "labels": [0]}, f, protocol=protocol)
    refused = f"{os.system.__module__}.system"  # posix.system on Linux/macOS
    with pytest.raises(ValueError, match=rf"data_batch_2 is not a CIFAR-10 batch: refused global "
                                         rf"{refused} .*nothing it asks for was run"):
        CIFAR10DataModule(str(fake_cifar)).setup()
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_batches_load_under_every_protocol(tmp_path, protocol):
    folder = tmp_path / BASE_FOLDER
    folder.mkdir()
    data = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": np.array([3, 9]), "batch_label": b"testing batch 1",
                     "filenames": ["a.png", "b.png"]}, f, protocol=protocol)
    images, labels = load_batches(str(tmp_path), TEST_FILES)
    np.testing.assert_array_equal(images.numpy(), data.reshape(2, 3, 32, 32))
    assert labels.tolist() == [3, 9]


@pytest.mark.skipif(not (REAL_CIFAR10 / BASE_FOLDER).is_dir(), reason="real CIFAR-10 not present")
def test_real_test_batch_loads():
    images, labels = load_batches(str(REAL_CIFAR10), TEST_FILES)
    assert images.shape == (10000, 3, 32, 32) and labels.bincount().tolist() == [1000] * 10
