"""Checkpoints and pickles made before the package restructure (issue 19) still load.

The fixture (tests/data/old_checkpoint, written by its make_fixture.py on commit 547bc16) holds a
1-epoch checkpoint of the Figure 3 config's CombinedNet, one with two members, and a whole-module
pickle. Loaded with today's code: same classes by their public paths, same hyperparameters and
tensors, a resumed fit continues from the checkpoint's step, and the pickled module computes what
the checkpointed one does. A members module pickled before lightning_sig/members/ existed
(a fresh pickle with its classes' old module paths written in) loads too.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lightning_sig.lightning.cli import main
from lightning_sig.lightning.data_files import write_batches

HERE = Path(__file__).resolve().parent / "data" / "old_checkpoint"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"


def _classes(namespace):
    if namespace == "pytorch_lightning":
        import lightning_sig
        return lightning_sig
    import lightning_sig.lightning.pytorch as ns
    return ns


@pytest.mark.parametrize("namespace,name,members", [
    ("pytorch_lightning", "combined_net.ckpt", None),
    ("pytorch_lightning", "combined_net_members.ckpt", [3, 4]),
    ("lightning.pytorch", "combined_net_lightning_pytorch.ckpt", None)])
def test_old_checkpoint_loads_with_its_hparams_and_tensors(namespace, name, members):
    raw = torch.load(HERE / name, weights_only=False, map_location="cpu")
    model = _classes(namespace).CombinedNet.load_from_checkpoint(HERE / name)
    assert type(model).__name__ == "CombinedNet"
    h = model.hparams
    assert (h.activation, h.alpha, h.l2_strength, h.init, h.init_scale) == ("tanh", 2.0, 0.01, "normal", 0.5)
    assert h.member_seeds == members and raw["global_step"] == 5
    state = model.state_dict()
    assert state.keys() == raw["state_dict"].keys()
    for key, value in raw["state_dict"].items():
        assert torch.equal(state[key], value), key
    assert any(k.startswith("GradientQuantileCallback") for k in raw["callbacks"])


def test_old_module_pickle_loads_and_computes_as_the_checkpoint():
    import lightning_sig
    pickled = torch.load(HERE / "combined_net_module.pt", weights_only=False)
    assert isinstance(pickled, lightning_sig.CombinedNet)
    fresh = lightning_sig.CombinedNet.load_from_checkpoint(HERE / "combined_net.ckpt")
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    pickled.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(pickled(x), fresh(x), rtol=0, atol=0)



def _with_module_paths(saved: bytes, renames: dict) -> bytes:
    """A ``torch.save`` zip whose pickle names each class's module by ``renames`` (new → old):
    what the same save made before the module moved holds."""
    import io
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(saved)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                for new, old in renames.items():
                    assert new.encode() + b"\n" in data, new
                    data = data.replace(new.encode() + b"\n", old.encode() + b"\n")
            zout.writestr(info, data)
    return out.getvalue()


def test_a_members_module_pickled_before_the_members_package_loads():
    """Classes pickled as lightning_sig.nn.members.* and lightning_sig.lightning.member_logging.*
    (their modules before lightning_sig/members/) are found at those old paths."""
    import io
    import lightning_sig
    module = lightning_sig.CombinedNet(num_members=2, member_seeds=[3, 4]).eval()
    buf = io.BytesIO()
    torch.save(module, buf)
    old = _with_module_paths(buf.getvalue(), {
        "lightning_sig.members.networks": "lightning_sig.nn.members",
        "lightning_sig.members.loggers": "lightning_sig.lightning.member_logging"})
    loaded = torch.load(io.BytesIO(old), weights_only=False)
    x = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x), rtol=0, atol=0)
    assert loaded.member_seeds == [3, 4] and type(loaded.net).__name__ == "MemberConvNet"


def test_fit_resumes_from_the_old_checkpoint(tmp_path):
    write_batches(str(tmp_path / "data"), n_per_batch=20, seed=0)
    ckpt = tmp_path / "old.ckpt"
    shutil.copy(HERE / "combined_net.ckpt", ckpt)
    cli = main(["fit", "--config", str(CONFIG), "--data.data_dir", str(tmp_path / "data"),
                "--data.batch_size", "20", "--trainer.max_epochs", "2",
                "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
                "--trainer.enable_progress_bar", "false", "--trainer.num_sanity_val_steps", "0",
                "--trainer.log_every_n_steps", "1",
                "--model.init_args.init", "normal", "--model.init_args.init_scale", "0.5",
                "--ckpt_path", str(ckpt)])
    assert cli.trainer.global_step == 10 and cli.trainer.current_epoch == 2
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
