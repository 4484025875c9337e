"""A checkpoint whose Adam ran fused (torch >= 2.4 has fused CPU Adam) resumes on a torch without
fused kernels for the device (torch 2.2-2.3 on CPU: the dependency floor, docs/floors.md): the
restored optimizer falls back to torch's default implementation instead of failing at the
first step. Here the missing kernels are simulated; .ci/floors runs the real case
(tests/test_old_checkpoint.py on torch 2.2.0)."""
import shutil
from pathlib import Path

import pytest
import torch

import lightning_sig.nn.optim as optim
from lightning_sig.lightning.cli import main
from lightning_sig.lightning.data_files import write_batches
from lightning_sig.nn.optim import portable_adam_state

OLD = Path(__file__).resolve().parent / "data" / "old_checkpoint" / "combined_net.ckpt"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"


def test_fused_flag_kept_only_where_this_torch_has_the_kernels(monkeypatch):
    monkeypatch.setattr(optim, "fused_adam_devices", lambda: ["cuda"])
    state = {"param_groups": [{"fused": True, "lr": 1e-3}, {"fused": None}], "state": {}}
    assert portable_adam_state(state, "cpu")["param_groups"] == [{"fused": None, "lr": 1e-3},
                                                                 {"fused": None}]
    state = {"param_groups": [{"fused": True}]}
    assert portable_adam_state(state, "cuda")["param_groups"] == [{"fused": True}]
    assert portable_adam_state({}, "cpu") == {}


def test_fused_checkpoint_resumes_without_fused_kernels(tmp_path, monkeypatch):
    saved = torch.load(OLD, weights_only=False)["optimizer_states"][0]["param_groups"][0]
    if not saved.get("fused"):
        pytest.skip("the old-checkpoint fixture was not written with fused Adam")
    monkeypatch.setattr(optim, "fused_adam_devices", lambda: ["cuda"])  # as torch 2.2 on a CPU
    write_batches(str(tmp_path / "data"), n_per_batch=20, seed=0)
    shutil.copy(OLD, tmp_path / "old.ckpt")
    cli = main(["fit", "--config", str(CONFIG), "--data.data_dir", str(tmp_path / "data"),
                "--data.batch_size", "20", "--trainer.max_epochs", "2",
                "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
                "--trainer.enable_progress_bar", "false", "--trainer.num_sanity_val_steps", "0",
                "--model.init_args.init", "normal", "--model.init_args.init_scale", "0.5",
                "--ckpt_path", str(tmp_path / "old.ckpt")])
    assert cli.trainer.global_step == 10
    assert cli.trainer.optimizers[0].param_groups[0]["fused"] is None
