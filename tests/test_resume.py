"""Determinism and resume through the CLI, bitwise on CPU.

Runs (CombinedNet from the Figure-3 config, with non-default arctan, α = 3 learnable, r = 0.02,
N(0, 0.5²) init; 100 synthetic images, batch 20 → 5 steps per epoch; the config's
GradientQuantileCallback logging every step):
  A: an uninterrupted 2-epoch run;  B and B2: two identical 1-epoch runs;  C: B resumed with
  ``--ckpt_path`` for a second epoch into B's TensorBoard version
  (``--trainer.logger.init_args.version 0``);  S: a run stopped mid-epoch by
  ``--trainer.max_steps 7`` and continued to ``--trainer.max_steps 10`` (issue 18's report; every
  other kind of checkpoint: tests/test_resume_anywhere.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig.lightning.namespace import lightning_classes
from lightning_sig.lightning.cli import main
from lightning_sig.lightning.data_files import write_batches
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"
HPARAMS = {"activation": "arctan", "alpha": 3.0, "learnable_alpha": True, "l2_strength": 0.02,
           "init": "normal", "init_scale": 0.5}
STEPS_PER_EPOCH = 5


def _fit(namespace: str, data: Path, save_dir: Path, epochs: int, *extra: str):
    args = ["fit", "--config", str(CONFIG), "--data.data_dir", str(data), "--data.batch_size", "20",
            "--trainer.logger.init_args.save_dir", str(save_dir), "--trainer.max_epochs", str(epochs),
            "--trainer.deterministic", "true", "--trainer.log_every_n_steps", "1",
            "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false"]
    for key, value in HPARAMS.items():
        args += [f"--model.init_args.{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return main(args + list(extra), namespace=namespace)


def _events(log_dir: Path) -> dict:
    """Every scalar event, duplicates and all (no purging of 'orphaned' steps on restarts)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    acc.Reload()
    return {canonical_tag(t): [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.fixture(scope="module", params=["pytorch_lightning", "lightning.pytorch"])
def runs(tmp_path_factory, request):
    """The runs A, B, B2, C of the module docstring, once per Lightning namespace."""
    ns = request.param
    root = tmp_path_factory.mktemp("resume")
    write_batches(str(root / "data"), n_per_batch=20, seed=0)
    out = {"root": root, "namespace": ns, "a": _fit(ns, root / "data", root / "a", 2),
           "b": _fit(ns, root / "data", root / "b", 1),
           "b2": _fit(ns, root / "data", root / "b2", 1)}
    b_dir = Path(out["b"].trainer.log_dir)
    out["b_config"] = (b_dir / "config.yaml").read_bytes()
    out["b_events"] = _events(b_dir)  # before C appends to B's log
    out["b_ckpt"] = b_dir / "checkpoints" / f"epoch=0-step={STEPS_PER_EPOCH}.ckpt"
    out["b_ckpt_bytes"] = out["b_ckpt"].read_bytes()
    out["c"] = _fit(ns, root / "data", root / "b", 2, "--ckpt_path", str(out["b_ckpt"]),
                    "--trainer.logger.init_args.version", "0")
    stopped = _fit(ns, root / "data", root / "s", -1, "--trainer.max_steps", "7")
    out["s_ckpt"] = Path(stopped.trainer.log_dir) / "checkpoints" / "epoch=1-step=7.ckpt"
    out["s"] = _fit(ns, root / "data", root / "s", -1, "--trainer.max_steps", "10",
                    "--ckpt_path", str(out["s_ckpt"]), "--trainer.logger.init_args.version", "0")
    return out


def _assert_same_parameters(m1, m2):
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for name in s1:
        assert torch.equal(s1[name], s2[name]), name


def test_identical_runs_are_bitwise_equal(runs):
    b2 = runs["b2"]
    b_events = runs["b_events"]
    assert runs["b"].trainer.log_dir != b2.trainer.log_dir
    assert b_events == _events(Path(b2.trainer.log_dir))
    assert len(b_events["train/loss"]) == STEPS_PER_EPOCH
    b_state = torch.load(runs["b_ckpt"], weights_only=False)["state_dict"]
    b2_state = b2.model.state_dict()
    assert b_state.keys() == b2_state.keys()
    assert all(torch.equal(b_state[k], b2_state[k]) for k in b_state)


def test_resumed_run_equals_uninterrupted(runs):
    a, c = runs["a"], runs["c"]
    assert c.trainer.global_step == a.trainer.global_step == 2 * STEPS_PER_EPOCH
    _assert_same_parameters(a.model, c.model)  # learnable α (log_alpha) included
    log_alpha = a.model.state_dict()["net.features.1.log_alpha"]
    assert abs(float(log_alpha) - math.log(3.0)) > 1e-4  # α was trained, not left at 3
    # the second epoch saw the same order: same sampler seed and epoch
    sa, sc = a.trainer.train_dataloader.sampler, c.trainer.train_dataloader.sampler
    assert (sa.seed, sa.epoch) == (sc.seed, sc.epoch) == (0, 1) and list(sa) == list(sc)
    assert a.trainer.callback_metrics.keys() == c.trainer.callback_metrics.keys()
    for key, value in a.trainer.callback_metrics.items():
        assert torch.equal(value, c.trainer.callback_metrics[key]), key


def test_run_stopped_mid_epoch_by_max_steps_continues_bitwise(runs):
    a, s = runs["a"], runs["s"]
    assert s.trainer.global_step == a.trainer.global_step == 2 * STEPS_PER_EPOCH
    _assert_same_parameters(a.model, s.model)  # batches 2-4 of epoch 1, not 0-2 of epoch 2
    a_loss = _events(Path(a.trainer.log_dir))["train/loss"]
    assert _events(Path(s.trainer.log_dir))["train/loss"] == a_loss  # same steps, same values


def test_resumed_tensorboard_log_continues_step_axis(runs):
    a_events = _events(Path(runs["a"].trainer.log_dir))
    b_dir = Path(runs["c"].trainer.log_dir)
    assert b_dir == Path(runs["b"].trainer.log_dir)
    assert len(list(b_dir.glob("events.out.tfevents.*"))) == 2  # one file per process
    bc_events = _events(b_dir)
    assert bc_events.keys() == a_events.keys()
    steps = list(range(2 * STEPS_PER_EPOCH))
    for tag in ("train/loss", "grad/global/nonfinite_count", "grad/net.features.0/abs_q75"):
        assert [s for s, _ in bc_events[tag]] == steps, tag  # no gap, no duplicate
    assert [s for s, _ in bc_events["val/acc"]] == [STEPS_PER_EPOCH - 1, 2 * STEPS_PER_EPOCH - 1]
    assert [s for s, _ in bc_events["grad_epoch/global/abs_q50"]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    for tag, series in a_events.items():
        assert bc_events[tag] == series, tag  # same steps, bitwise same values


def test_checkpoint_holds_callback_state_and_resume_keeps_files(runs):
    ckpt = torch.load(runs["b_ckpt"], weights_only=False)
    (state,) = [v for k, v in ckpt["callbacks"].items() if "GradientQuantileCallback" in k]
    groups, sums, counts = state["epoch"][0]  # member 0 (a single network)
    assert groups[0] == "global" and "net.features.0" in groups
    assert counts.shape == sums.shape
    assert counts[0].max() == STEPS_PER_EPOCH  # 5 steps of epoch 1 accumulated
    b_dir = Path(runs["c"].trainer.log_dir)
    assert runs["b_ckpt"].read_bytes() == runs["b_ckpt_bytes"]  # resuming did not rewrite it
    assert (b_dir / "config.yaml").read_bytes() == runs["b_config"]
    resumed = yaml.safe_load((b_dir / "config_resumed.yaml").read_text())
    assert resumed["ckpt_path"] == str(runs["b_ckpt"]) and resumed["trainer"]["max_epochs"] == 2


def _last_ckpt(cli) -> Path:
    return Path(cli.trainer.log_dir) / "checkpoints" / f"epoch=1-step={2 * STEPS_PER_EPOCH}.ckpt"


def test_load_from_checkpoint_restores_every_hyperparameter(runs):
    combined_net = lightning_classes(runs["namespace"])["CombinedNet"]
    loaded = combined_net.load_from_checkpoint(_last_ckpt(runs["a"]))
    assert {k: loaded.hparams[k] for k in HPARAMS} == HPARAMS
    assert loaded.hparams.lr == 1e-3 and loaded.l2_strength == 0.02
    acts = [m for m in loaded.net.modules() if type(m).__name__ == "ScaledActivation"]
    assert acts and all(m.family == "arctan" and m.learnable_alpha for m in acts)
    _assert_same_parameters(loaded, runs["a"].model)


@pytest.mark.parametrize("subcommand,stage", [("validate", "val"), ("test", "test")])
def test_evaluate_with_ckpt_path_uses_trained_model_without_config(runs, subcommand, stage):
    a, root = runs["a"], runs["root"]
    cli = main([subcommand, "--model", "lightning_sig.CombinedNet",  # the class only: defaults
                "--data.data_dir", str(root / "data"), "--data.batch_size", "20",
                "--ckpt_path", str(_last_ckpt(a)), "--trainer.logger", "false",
                "--trainer.default_root_dir", str(root / subcommand),
                "--trainer.enable_progress_bar", "false", "--trainer.deterministic", "true"],
               namespace=runs["namespace"])
    assert type(cli.model) is lightning_classes(runs["namespace"])["CombinedNet"]
    assert {k: cli.model.hparams[k] for k in HPARAMS} == HPARAMS  # not the defaults (tanh, 1, 0)
    _assert_same_parameters(cli.model, a.model)  # trained α included
    final = _events(Path(a.trainer.log_dir))
    assert float(cli.trainer.callback_metrics[f"{stage}/acc"]) == final["val/acc"][-1][1]
    torch.testing.assert_close(float(cli.trainer.callback_metrics[f"{stage}/loss"]),
                               final["val/loss"][-1][1], rtol=0, atol=0)
