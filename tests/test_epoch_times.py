"""reproduction/epoch_times.py: per-epoch wall times from event files (two processes of one run,
the second resumed), against hand-set event wall times."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("epoch_times",
                                                  ROOT / "reproduction" / "epoch_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _process(folder: Path, suffix: str, epochs, offsets) -> float:
    """One process's event file: val/acc of ``epochs`` at file start + ``offsets`` (s)."""
    writer = SummaryWriter(str(folder), filename_suffix=suffix)
    path, = folder.glob(f"events.out.tfevents.*{suffix}")  # the creation time is in the name
    start = float(path.name.split(".")[3])
    for epoch, offset in zip(epochs, offsets):
        writer.add_scalar("val/acc", 0.1, epoch * 10 - 1, walltime=start + offset)
    writer.close()
    return start


def test_epoch_times_of_a_resumed_run(tmp_path, capsys, monkeypatch):
    et = _module()
    seed = tmp_path / "fig3_combined" / "relu" / "seed_3"
    _process(seed, ".a", [1, 2, 3], [5.0, 12.0, 20.0])  # epochs of 5, 7, 8 s
    _process(seed, ".b", [4, 5], [9.0, 13.0])  # resumed: 9 s (start-up included), 4 s
    assert et.epoch_seconds(seed) == pytest.approx([5.0, 7.0, 8.0, 9.0, 4.0])
    plain = tmp_path / "fig3_combined" / "relu" / "seed_0"  # the lowest seed times the group
    _process(plain, ".c", [1, 2], [10.0, 20.0])
    reg = tmp_path / "fig3_combined" / "relu_reg" / "seed_0"
    _process(reg, ".d", [1, 2], [12.0, 24.0])
    assert et.arm_times(tmp_path, "fig3_combined", "relu") == pytest.approx([10.0, 10.0])
    monkeypatch.setattr("sys.argv", ["epoch_times.py", str(tmp_path)])
    et.main()
    out = capsys.readouterr().out
    assert "| fig3_combined/relu_reg | 2 | 12.0 [12.0, 12.0] | 0.01 |" in out
    assert "| fig3_combined: relu_reg / relu | 1.200 |" in out
