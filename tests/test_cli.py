"""Every paper config parses, round-trips through --print_config and runs fast_dev_run."""
from pathlib import Path

import pytest
import yaml

from lightning_sig import CombinedNet, GradientQuantileCallback, LargeParamsNet, ManyLayersNet
from lightning_sig.lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
REQUIRED = {
    "fig1_large_params/unregularized.yaml": (LargeParamsNet, "tanh", 1.0, 0.0, "uniform", 10.0),
    "fig1_large_params/regularized.yaml": (LargeParamsNet, "tanh", 1.0, 0.01, "uniform", 10.0),
    "fig2_many_layers/unscaled.yaml": (ManyLayersNet, "tanh", 1.0, 0.0, "normal", 0.05),
    "fig2_many_layers/scaled.yaml": (ManyLayersNet, "tanh", 2.0, 0.0, "normal", 0.05),
    "fig3_combined/tanh.yaml": (CombinedNet, "tanh", 1.0, 0.0, "uniform", 10.0),
    "fig3_combined/tanh_reg_scaled.yaml": (CombinedNet, "tanh", 2.0, 0.01, "uniform", 10.0),
    "fig3_combined/relu.yaml": (CombinedNet, "relu", 1.0, 0.0, "uniform", 10.0),
    "fig3_combined/relu_reg.yaml": (CombinedNet, "relu", 1.0, 0.01, "uniform", 10.0),
    "fig4_logistic/sigmoid.yaml": (CombinedNet, "sigmoid", 1.0, 0.0, "uniform", 10.0),
    "fig4_logistic/sigmoid_reg_scaled.yaml": (CombinedNet, "sigmoid", 2.0, 0.01, "uniform", 10.0),
    # beyond the paper (issue 20, part 5): untested claims
    "beyond/fig2_alpha/alpha4.yaml": (ManyLayersNet, "tanh", 4.0, 0.0, "normal", 0.05),
    "beyond/fig2_alpha/alpha8.yaml": (ManyLayersNet, "tanh", 8.0, 0.0, "normal", 0.05),
    "beyond/fig4_remedies/sigmoid_reg.yaml": (CombinedNet, "sigmoid", 1.0, 0.01, "uniform", 10.0),
    "beyond/fig4_remedies/sigmoid_scaled.yaml": (CombinedNet, "sigmoid", 2.0, 0.0, "uniform", 10.0),
    "beyond/fig3_usual_init/relu_he.yaml": (CombinedNet, "relu", 1.0, 0.0, "he_normal", 1.0),
    "beyond/fig3_usual_init/relu_he_reg.yaml": (CombinedNet, "relu", 1.0, 0.01, "he_normal", 1.0),
    "beyond/fig3_usual_init/tanh_glorot.yaml": (CombinedNet, "tanh", 1.0, 0.0, "glorot_uniform", 1.0),
    "beyond/fig3_usual_init/tanh_glorot_reg_scaled.yaml": (CombinedNet, "tanh", 2.0, 0.01,
                                                           "glorot_uniform", 1.0),
}


def _args(config, data_dir, tmp_path):
    return ["--config", str(ROOT / "configs" / config), "--data.data_dir", str(data_dir),
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]


def test_required_configs_exist():
    assert set(REQUIRED) == set(CONFIGS)


@pytest.mark.parametrize("config", sorted(REQUIRED))
def test_config_has_paper_settings(config, fake_cifar, tmp_path):
    cli = main(_args(config, fake_cifar, tmp_path), run=False)
    cls, act, alpha, r, init, scale = REQUIRED[config]
    h = cli.model.hparams
    assert type(cli.model) is cls
    assert (h.activation, h.alpha, h.l2_strength, h.init, h.init_scale, h.lr) == \
        (act, alpha, r, init, scale, 1e-3)
    assert cli.datamodule.batch_size == 32


@pytest.mark.parametrize("config", CONFIGS)
def test_config_runs_fast_dev_run(config, fake_cifar, tmp_path):
    cli = main(["fit", *_args(config, fake_cifar, tmp_path), "--trainer.fast_dev_run", "2",
                "--trainer.enable_progress_bar", "false"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 2
    assert cli.trainer.callback_metrics["train/loss"].isfinite()
    assert any(isinstance(c, GradientQuantileCallback) for c in cli.trainer.callbacks)


def test_print_config_round_trips(fake_cifar, tmp_path, capsys):
    args = _args("fig3_combined/tanh_reg_scaled.yaml", fake_cifar, tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", *args, "--model.init_args.alpha", "3.5", "--print_config"])
    printed = capsys.readouterr().out
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(dumped), "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(printed)
    callbacks = yaml.safe_load(printed)["trainer"]["callbacks"]
    assert [c["class_path"] for c in callbacks] == ["lightning_sig.SaturationMonitor",
                                                    "lightning_sig.GradientQuantileCallback"]
    assert callbacks[0]["init_args"]["eps"] == 0.01
    assert callbacks[1]["init_args"]["quantiles"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert callbacks[1]["init_args"]["layer_statistics"] == "default"
    cli = main(["fit", "--config", str(dumped), "--trainer.fast_dev_run", "1"])
    assert cli.model.hparams.alpha == 3.5 and type(cli.model) is CombinedNet
    assert cli.trainer.global_step == 1


def test_saved_run_config_reruns_same_experiment(fake_cifar, tmp_path):
    cli = main(["fit", *_args("fig2_many_layers/scaled.yaml", fake_cifar, tmp_path),
                "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                "--trainer.enable_progress_bar", "false"])
    saved = Path(cli.trainer.log_dir) / "config.yaml"
    assert saved.is_file()
    again = main(["fit", "--config", str(saved), "--trainer.fast_dev_run", "1"])
    assert dict(again.model.hparams) == dict(cli.model.hparams)
    assert again.datamodule.data_dir == str(fake_cifar)


def test_misspelt_key_is_named(fake_cifar, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", *_args("fig3_combined/tanh.yaml", fake_cifar, tmp_path),
              "--model.init_args.l2_strenght", "0.1"])
    assert "l2_strenght" in capsys.readouterr().err


def test_abbreviated_option_is_refused_not_prefix_matched(fake_cifar, tmp_path, capsys):
    """argparse would read --trainer.max_step as --trainer.max_steps (allow_abbrev is off)."""
    with pytest.raises(SystemExit) as info:
        main(["fit", *_args("fig3_combined/tanh.yaml", fake_cifar, tmp_path),
              "--trainer.max_step", "50"])
    assert info.value.code == 2
    assert "unrecognized arguments: --trainer.max_step 50" in capsys.readouterr().err


def test_a_fit_stopped_by_sigterm_exits_143_not_0():
    """Lightning ends a fit on SIGTERM and returns normally; the CLI then exits 143 so a sweep
    does not file the shortened run as finished (observed: a killed study group exited 0)."""
    from types import SimpleNamespace

    from lightning_sig.lightning.cli import exit_if_terminated
    with pytest.raises(SystemExit) as info:
        exit_if_terminated(SimpleNamespace(received_sigterm=True))
    assert info.value.code == 143
    assert exit_if_terminated(SimpleNamespace(received_sigterm=False)) is None
    assert exit_if_terminated(None) is None  # run=False: no fit
