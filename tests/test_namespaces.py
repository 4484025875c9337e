"""Both Lightning namespaces, what a user sees on the console, and the lazy top-level package.

Resume (tests/test_resume.py) and 2-process DDP (tests/test_ddp.py) run under both namespaces
through their parametrized fixtures; here: a plain ``lightning.pytorch`` fit with the callback
and TensorBoardLogger (the README's command), the CLI's ``--print_config`` round trip on
``lightning.pytorch``, mixing namespaces, ``log_every_n_steps=0``, progress-bar metrics, the
end-of-fit summary line.
"""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig.lightning.namespace import lightning_classes, check_namespace
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = ["pytorch_lightning", "lightning.pytorch"]


def _fit(namespace: str, data: Path, save_dir: Path, **trainer_kwargs):
    import importlib
    pl = importlib.import_module(namespace)
    ours = lightning_classes(namespace)
    model = ours["CombinedNet"](activation="tanh", alpha=2.0, l2_strength=0.01)
    dm = ours["CIFAR10DataModule"](str(data), batch_size=20)
    logger = pl.loggers.TensorBoardLogger(str(save_dir), name="run", version=0)
    settings = dict(max_epochs=1, log_every_n_steps=1, enable_checkpointing=False,
                    enable_model_summary=False, num_sanity_val_steps=0, logger=logger,
                    callbacks=[ours["GradientQuantileCallback"](histogram_every_n_steps=1)])
    settings.update(trainer_kwargs)
    trainer = pl.Trainer(**settings)
    trainer.fit(model, dm)
    return trainer


def _tags(log_dir: Path):
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_fit_writes_scalars_and_histograms_in_either_namespace(namespace, fake_cifar, tmp_path):
    trainer = _fit(namespace, fake_cifar, tmp_path)
    assert type(trainer).__module__.startswith(namespace)
    acc = _tags(Path(trainer.log_dir))
    scalars, histograms = acc.Tags()["scalars"], acc.Tags()["histograms"]
    assert {"train/loss", "val/acc", "grad/global/abs_q50", "grad_epoch/global/abs_q50"} <= \
        {canonical_tag(t) for t in scalars}
    assert [e.step for e in acc.Scalars(tensorboard_tag("grad/global/abs_q50"))] == list(range(5))  # 100 / 20
    assert tensorboard_tag("grad_hist/global/log10_abs") in histograms  # either namespace's
    assert len(acc.Histograms(tensorboard_tag("grad_hist/global/log10_abs"))) == 5


def test_readme_command_with_lightning_pytorch(fake_cifar, tmp_path):
    # The README's one-liner, on synthetic data: lightning.pytorch Trainer and TensorBoardLogger.
    code = (
        "import lightning.pytorch as L, lightning_sig.lightning.pytorch as ls; "
        f"t = L.Trainer(max_steps=3, logger=L.loggers.TensorBoardLogger({str(tmp_path)!r}), "
        "callbacks=[ls.GradientQuantileCallback(log_every_n_steps=1, histogram_every_n_steps=1)],"
        " enable_progress_bar=False, limit_val_batches=1); "
        f"t.fit(ls.CombinedNet(), ls.CIFAR10DataModule({str(fake_cifar)!r}, batch_size=20)); "
        "print('LOGDIR', t.log_dir)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log_dir = out.stdout.split("LOGDIR ")[-1].strip()
    acc = _tags(Path(log_dir))
    assert [e.step for e in acc.Scalars(tensorboard_tag("grad/global/abs_q50"))] == [0, 1, 2]
    assert len(acc.Histograms(tensorboard_tag("grad_hist/net.features.0/log10_abs"))) == 3


def test_mixing_namespaces_is_refused_with_both_names(fake_cifar, tmp_path):
    import lightning.pytorch as L
    callback = lightning_classes("pytorch_lightning")["GradientQuantileCallback"]()
    with pytest.raises(TypeError, match=r"lightning_sig\.GradientQuantileCallback is built on "
                                        r"pytorch_lightning.*lightning\.pytorch\.Trainer.*"
                                        r"lightning_sig\.lightning\.pytorch\.GradientQuantileCallback"):
        check_namespace(callback, L.Trainer(logger=False, enable_progress_bar=False))
    with pytest.raises(TypeError, match="built on pytorch_lightning"):
        _fit("lightning.pytorch", fake_cifar, tmp_path,
             callbacks=[lightning_classes("pytorch_lightning")["NonFiniteLossGuard"]()])


def test_lightning_pytorch_cli_print_config_round_trip(fake_cifar, tmp_path, capsys):
    from lightning_sig.lightning.pytorch import CombinedNet, GradientQuantileCallback, main
    config = ROOT / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"
    args = ["--config", str(config), "--data.data_dir", str(fake_cifar),
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "lightning_sig.lightning.pytorch.CombinedNet"
    assert printed["trainer"]["logger"]["class_path"] == "lightning.pytorch.loggers.TensorBoardLogger"
    assert printed["data"]["data_dir"] == str(fake_cifar)  # --print_config shows the data path
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump(printed))
    cli = main(["fit", "--config", str(dumped), "--trainer.fast_dev_run", "1"])
    assert type(cli.model) is CombinedNet and cli.model.hparams.alpha == 2.0
    assert any(isinstance(cb, GradientQuantileCallback) for cb in cli.trainer.callbacks)


def test_log_every_n_steps_zero_logs_no_step_but_epoch_means(fake_cifar, tmp_path):
    trainer = _fit("pytorch_lightning", fake_cifar, tmp_path, log_every_n_steps=0)
    scalars = [canonical_tag(t) for t in _tags(Path(trainer.log_dir)).Tags()["scalars"]]
    assert "grad_epoch/global/abs_q50" in scalars and "val/acc" in scalars
    assert not any(tag.startswith(("grad/", "train/")) for tag in scalars)


def test_progress_bar_shows_loss_and_accuracy_and_fit_prints_a_summary(fake_cifar, tmp_path,
                                                                        caplog):
    with caplog.at_level("INFO"):
        trainer = _fit("pytorch_lightning", fake_cifar, tmp_path)
    assert {"train/loss", "train/acc", "val/acc"} <= set(trainer.progress_bar_metrics)
    val_acc = float(trainer.callback_metrics["val/acc"])
    line = next(r.getMessage() for r in caplog.records if "fit done" in r.getMessage())
    assert f"val/acc last {val_acc:.4f}, best {val_acc:.4f}" in line
    assert "1 epoch(s)" in line and str(trainer.log_dir) in line
    assert "fit done: 1 epoch(s), 5 step(s) in " in line  # 100 images / 20 per batch
    assert line.endswith(f"; logs in {trainer.log_dir}")


def test_repr_of_learnable_activation_warns_nothing():
    from lightning_sig import CombinedNet, ScaledActivation
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "alpha=2" in repr(ScaledActivation("tanh", 2.0, learnable_alpha=True))
        repr(CombinedNet(alpha=2.0, learnable_alpha=True))


def test_import_lightning_sig_imports_no_torch_or_lightning():
    code = ("import sys, lightning_sig, lightning_sig.sweep, lightning_sig.figures; "
            "print(sorted(m for m in ('torch', 'pytorch_lightning', 'lightning', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
