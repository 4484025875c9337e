"""The sweep command (lightning_sig/sweep.py; experiments/sweep_cli.py, sweep_plan.py,
sweep_local.py): argument checks, run naming, the resume rule (finished runs skipped and never
deleted, unfinished ones restarted cleanly), failure handling, and one real end-to-end sweep on
synthetic CIFAR-10 followed by the figure command, whose CSV must hold the mean over seeds of
what the event files hold (and the same numbers when drawn from the sweep's run summaries)."""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_sig.experiments import sweep_cli, sweep_local, sweep_task
from lightning_sig.experiments.sweep_cli import parse_seeds, split_overrides
from lightning_sig.experiments.sweep_commands import train_command
from lightning_sig.experiments.sweep_layout import DONE_NAME, RunSpec, read_marker, run_dir
from lightning_sig.experiments.sweep_plan import list_figures, plan_runs
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def configs(tmp_path):
    """A config dir with figure 'figA' (arms a, b) and 'figB' (arm c); contents unused."""
    for figure, arms in {"figA": ["a", "b"], "figB": ["c"]}.items():
        (tmp_path / "configs" / figure).mkdir(parents=True)
        for arm in arms:
            (tmp_path / "configs" / figure / f"{arm}.yaml").write_text("{}\n")
    (tmp_path / "configs" / "empty").mkdir()
    return tmp_path / "configs"


def test_parse_seeds_ranges_and_lists():
    assert parse_seeds(["0-2", "5", "2", "4-4"]) == [0, 1, 2, 4, 5]
    assert parse_seeds(["0-24"]) == list(range(25))


@pytest.mark.parametrize("token", ["-1", "3-1", "x", "1.5", ""])
def test_parse_seeds_rejects(token):
    with pytest.raises(ValueError, match="non-negative integer"):
        parse_seeds([token])


def test_list_figures_of_the_repo_configs():
    figures = list_figures(ROOT / "configs")
    assert figures["fig1_large_params"] == ["regularized", "unregularized"]
    assert figures["fig3_combined"] == ["relu", "relu_reg", "tanh", "tanh_reg_scaled"]


def test_plan_runs_order_filter_and_errors(configs):
    plan = plan_runs(["figA", "figB"], [0, 3], configs)
    assert [(s.figure, s.arm, s.seed) for s in plan] == [
        ("figA", "a", 0), ("figA", "a", 3), ("figA", "b", 0), ("figA", "b", 3),
        ("figB", "c", 0), ("figB", "c", 3)]
    assert plan[0].config == configs / "figA" / "a.yaml"
    assert [s.arm for s in plan_runs(["figA"], [1], configs, arms=["b"])] == ["b"]
    with pytest.raises(ValueError, match=r"figX.*valid figures.*figA, figB"):
        plan_runs(["figX"], [0], configs)
    with pytest.raises(ValueError, match=r"'z'.*valid arms of figA: a, b"):
        plan_runs(["figA"], [0], configs, arms=["z"])
    with pytest.raises(ValueError, match="seeds"):
        plan_runs(["figA"], [-1], configs)


def test_split_overrides_passes_dotted_options_and_tail():
    own, passed = split_overrides(
        ["fig1", "--seeds", "0-2", "--data.data_dir", "../d", "--trainer.limit_train_batches=5",
         "--epochs", "3", "--model.init_args.alpha", "-1", "--", "--foo", "bar"])
    assert own == ["fig1", "--seeds", "0-2", "--epochs", "3"]
    assert passed == ["--data.data_dir", "../d", "--trainer.limit_train_batches=5",
                      "--model.init_args.alpha", "-1", "--foo", "bar"]


@pytest.mark.parametrize("argv, match", [
    (["figA", "--epochs", "0"], "--epochs 0"),
    (["figA", "--jobs", "0"], "--jobs 0"),
    (["figA", "--threads", "0"], "--threads 0"),
    (["figA", "--seeds", "2-1"], "2-1"),
    (["nope"], "valid figures"),
    (["figA", "--trainer.max_epochs", "3"], "set by the sweep"),
    (["figA", "--", "--seed_everything=3"], "set by the sweep"),
])
def test_bad_arguments_rejected_before_running(configs, argv, match, tmp_path, capsys):
    argv = ["--config-dir", str(configs), "--out", str(tmp_path / "o"), *argv]
    with pytest.raises(ValueError, match=match):
        sweep_cli.parse_arguments(argv)
    assert sweep_cli.main(argv) == 2
    assert match.split()[0] in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_defaults_jobs_threads_and_all(configs, monkeypatch):
    monkeypatch.setattr(sweep_cli, "usable_cpus", lambda: 4)
    args, specs, overrides = sweep_cli.parse_arguments(["all", "--config-dir", str(configs)])
    assert (args.jobs, args.threads, args.epochs) == (4, 1, 30)
    assert len(specs) == 3 * 25 and overrides == []
    args, _, _ = sweep_cli.parse_arguments(["figA", "--jobs", "2", "--config-dir", str(configs)])
    assert (args.jobs, args.threads) == (2, 2)


def test_train_command_puts_logs_in_run_dir(tmp_path):
    spec = RunSpec("fig1_large_params", "regularized",
                   ROOT / "configs/fig1_large_params/regularized.yaml", 7)
    cmd = train_command(spec, tmp_path, 3, ["--data.data_dir", "d"])
    assert cmd[0] == sys.executable and cmd[4] == "fit"  # cmd[3]: the log dir, for provenance.json
    pairs = dict(zip(cmd[5::2], cmd[6::2]))
    assert pairs["--seed_everything"] == "7" and pairs["--trainer.max_epochs"] == "3"
    log_dir = Path(pairs["--trainer.logger.init_args.save_dir"]) / \
        pairs["--trainer.logger.init_args.name"] / pairs["--trainer.logger.init_args.version"]
    assert log_dir == run_dir(tmp_path.resolve(), spec.figure, spec.arm, 7) \
        == tmp_path.resolve() / "fig1_large_params/regularized/seed_7" == Path(cmd[3])
    assert cmd[-2:] == ["--data.data_dir", "d"]


def _fake_train_command(spec, out, epochs, overrides=()):
    """A stand-in for the LightningCLI child: writes 'trained' into the run dir; seed 13 fails."""
    code = (f"import pathlib, sys; d = pathlib.Path({str(run_dir(out, spec.figure, spec.arm, spec.seed))!r});"
            f" (d / 'trained').write_text('x'); print('boom'); sys.exit({int(spec.seed == 13)})")
    return [sys.executable, "-c", code]


def test_resume_skips_finished_restarts_unfinished_and_reports_failures(configs, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(sweep_task, "train_command", _fake_train_command)
    out = tmp_path / "out"
    specs = plan_runs(["figA"], [0, 1, 13], configs)
    finished = run_dir(out, "figA", "a", 0)
    finished.mkdir(parents=True)
    (finished / "events.keep").write_text("old")
    (finished / DONE_NAME).write_text(json.dumps({"epochs": 2, "overrides": [], "wall_time_s": 9}))
    stale = run_dir(out, "figA", "a", 1)
    stale.mkdir(parents=True)
    (stale / "events.stale").write_text("half a run")
    lines = []
    failed = sweep_local.run_sweep(specs, out, 2, [], jobs=2, threads=1, echo=lines.append)
    assert sorted(s.label for s in failed) == ["figA/a/seed_13", "figA/b/seed_13"]
    assert (finished / "events.keep").read_text() == "old" and not (finished / "trained").exists()
    assert not (stale / "events.stale").exists() and (stale / "trained").exists()
    marker = read_marker(stale)
    assert marker["returncode"] == 0 and marker["epochs"] == 2 and marker["wall_time_s"] > 0
    assert read_marker(run_dir(out, "figA", "a", 13)) is None
    assert lines[0].startswith("sweep ") and "6 runs, 1 already finished, 5 to run" in lines[0]
    progress = [l for l in lines if l.startswith("[")]
    assert [l.split("]")[0] for l in progress] == ["[2/6", "[3/6", "[4/6", "[5/6", "[6/6"]
    assert all("ETA" in l for l in progress) and progress[-1].endswith("ETA 0:00:00")
    assert sum("FAILED (exit 1)" in l for l in progress) == 2 and any("boom" in l for l in lines)
    manifest = json.loads((out / "figA" / "sweep.json").read_text())
    assert manifest == {"arms": ["a", "b"], "seeds": [0, 1, 13], "epochs": 2}
    lines.clear()  # second pass: only the two failed runs run again
    sweep_local.run_sweep(specs, out, 2, [], jobs=1, threads=1, echo=lines.append)
    assert "4 already finished, 2 to run" in lines[0]


def test_finished_run_with_other_budget_is_an_error(configs, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_task, "train_command", _fake_train_command)
    out = tmp_path / "out"
    specs = plan_runs(["figB"], [0], configs)
    sweep_local.run_sweep(specs, out, 2, [], echo=lambda s: None)
    with pytest.raises(ValueError, match=r"figB/c/seed_0 .*epochs=2.*asks epochs=5"):
        sweep_local.run_sweep(specs, out, 5, [], echo=lambda s: None)
    with pytest.raises(RuntimeError, match="refusing"):
        sweep_task.run_one(specs[0], out, 2, [], threads=1)
    assert read_marker(run_dir(out, "figB", "c", 0))["epochs"] == 2


def _scalars(path, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    tag = tensorboard_tag(tag)  # the callback's tags in their TensorBoard group
    if tag not in acc.Tags()["scalars"]:
        return None
    return [e.value for e in sorted(acc.Scalars(tag), key=lambda e: e.step)]


def test_end_to_end_sweep_then_figures(fake_cifar, tmp_path, capsys):
    """2 seeds × 2 arms × 2 epochs of 2 steps of the real fig1 configs, then the figure command.

    The CSV's mean over seeds must equal the hand-computed mean of the values in the event files
    (read here independently), for val/acc and, when the configs log them, the gradient medians.
    """
    out = tmp_path / "sweep"
    argv = ["fig1_large_params", "--seeds", "0", "1", "--epochs", "2", "--out", str(out),
            "--jobs", "2", "--data.data_dir", str(fake_cifar), "--trainer.limit_train_batches",
            "2", "--trainer.limit_val_batches", "1", "--summaries", str(tmp_path / "sums")]
    assert sweep_cli.main(argv) == 0
    assert "[4/4]" in capsys.readouterr().out
    from lightning_sig.experiments import figure_cli as figures
    assert figures.main([str(out)]) == 0
    err = capsys.readouterr().err
    with open(out / "figures" / "fig1_large_params.csv") as f:
        rows = {(r["arm"], r["tag"], int(r["epoch"])): r for r in csv.DictReader(f)}
    for tag in ["val/acc", "grad_epoch/global/abs_q50"]:
        for arm in ["regularized", "unregularized"]:
            per_seed = [_scalars(run_dir(out, "fig1_large_params", arm, s), tag) for s in (0, 1)]
            if tag != "val/acc" and per_seed[0] is None:  # callback not in the configs (yet)
                assert "no run logged grad_epoch/global/abs_q50" in err
                continue
            assert all(len(v) == 2 for v in per_seed)
            for epoch in (1, 2):
                row = rows[(arm, tag, epoch)]
                values = [v[epoch - 1] for v in per_seed]
                assert int(row["n_seeds"]) == 2
                assert float(row["mean"]) == pytest.approx((values[0] + values[1]) / 2, rel=1e-12)
                assert float(row["q25"]) == pytest.approx(np.quantile(values, 0.25), rel=1e-12)
    table = (out / "figures" / "runtime.md").read_text()
    assert "| fig1_large_params | regularized | tanh |" in table and "(vs unregularized)" in table
    assert sweep_cli.main(argv) == 0  # resume: everything is finished, nothing runs
    assert "4 runs, 4 already finished, 0 to run" in capsys.readouterr().out
    # the run summaries (--summaries) draw the same numbers without the event files
    assert figures.main([str(tmp_path / "sums"), "--out", str(tmp_path / "from_sums")]) == 0
    with open(tmp_path / "from_sums" / "fig1_large_params.csv") as f:
        summed = {(r["arm"], r["tag"], int(r["epoch"])): r for r in csv.DictReader(f)}
    assert summed == rows and len(summed) >= 4
