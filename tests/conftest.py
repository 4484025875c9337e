"""Shared fixtures: tiny synthetic CIFAR-10 batches in the official format, the real copy's path."""
from __future__ import annotations

from pathlib import Path

import pytest

from lightning_sig.lightning.data_files import write_batches

REAL_CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "cifar10"


@pytest.fixture()
def fake_cifar(tmp_path: Path) -> Path:
    """A data_dir holding cifar-10-batches-py/ with 5 × 20 training and 20 test images."""
    write_batches(str(tmp_path / "cifar"), n_per_batch=20, seed=0)
    return tmp_path / "cifar"


@pytest.fixture()
def fused_kernels_built() -> None:
    """Fails the test when the fused kernels cannot be built (see tests/kernel_gate.py)."""
    from tests.kernel_gate import require_kernels
    require_kernels()


@pytest.fixture()
def configs(tmp_path):
    """A config dir with figure 'figA' holding arms a and b ("{}": contents unused by the fake
    sweep children of the tests that take it)."""
    (tmp_path / "configs" / "figA").mkdir(parents=True)
    for arm in ("a", "b"):
        (tmp_path / "configs" / "figA" / f"{arm}.yaml").write_text("{}\n")
    return tmp_path / "configs"
