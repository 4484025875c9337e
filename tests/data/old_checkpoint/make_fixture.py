"""Writes the old-checkpoint fixture (issue 19: checkpoints and pickles made before the
restructure must still load). Run once, from the repository root, on the commit named in
README.md beside this file: ``python tests/data/old_checkpoint/make_fixture.py``.

Files (each a few KB): ``combined_net.ckpt`` (a 1-epoch Lightning checkpoint of the Figure 3
config's CombinedNet with its GradientQuantileCallback state, 5 steps on synthetic data),
``combined_net_members.ckpt`` (the same with num_members = 2),
``combined_net_lightning_pytorch.ckpt`` (the single net through the ``lightning.pytorch`` CLI),
``combined_net_module.pt``
(``torch.save`` of the whole LightningModule: a pickle naming its classes by import path).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from lightning_sig.lightning.cli import main
from lightning_sig.lightning.data_files import write_batches

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parents[2] / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"
ARGS = ["--data.batch_size", "20", "--trainer.max_epochs", "1", "--trainer.deterministic", "true",
        "--trainer.log_every_n_steps", "1", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--model.init_args.init", "normal", "--model.init_args.init_scale", "0.5",
        "--seed_everything", "3"]


def _fit(root: Path, name: str, *extra: str, namespace: str = "pytorch_lightning") -> Path:
    cli = main(["fit", "--config", str(CONFIG), "--data.data_dir", str(root / "data"),
                "--trainer.logger.init_args.save_dir", str(root / name), *ARGS, *extra],
               namespace=namespace)
    (ckpt,) = Path(cli.trainer.log_dir, "checkpoints").glob("*.ckpt")
    return ckpt


def main_() -> None:
    root = Path(tempfile.mkdtemp())
    try:
        write_batches(str(root / "data"), n_per_batch=20, seed=0)
        shutil.copy(_fit(root, "single"), HERE / "combined_net.ckpt")
        shutil.copy(_fit(root, "members", "--model.init_args.num_members", "2"),
                    HERE / "combined_net_members.ckpt")
        shutil.copy(_fit(root, "lp", namespace="lightning.pytorch"),
                    HERE / "combined_net_lightning_pytorch.ckpt")
        from lightning_sig import CombinedNet
        module = CombinedNet.load_from_checkpoint(HERE / "combined_net.ckpt")
        torch.save(module, HERE / "combined_net_module.pt")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main_()
