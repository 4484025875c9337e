"""Run summaries (lightning_sig/experiments/summary.py, summary_build.py): built from a tiny
synthetic sweep (event files with known values, tests/summary_fakes.py), they hold exactly those
values, read back into the RunLogs the event reader gives, make a sweep on a clean checkout skip
the summarized runs, and the figure command draws from committed-format summaries alone
(tests/data/summaries)."""
import csv
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_sig.experiments import figure_cli as figures
from lightning_sig.experiments import (summary, summary_build, sweep_local, sweep_plan,
                                       sweep_process, sweep_task)
from lightning_sig.experiments.provenance import FIELDS
from lightning_sig.experiments.figure_data import aggregate, load_figure
from lightning_sig.experiments.sweep_layout import run_dir
from lightning_sig.experiments.sweep_plan import plan_runs

from tests import summary_fakes as fakes

DATA = Path(__file__).resolve().parent / "data" / "summaries"
EPOCHS = 2
QUIET = pytest.mark.filterwarnings("ignore::lightning_sig.experiments.figure_data.SweepDataWarning")


def _fake_command(spec, out, epochs, overrides=()):
    """Stand-in training child: writes a synthetic finished run (arm b has r = 0.01)."""
    return [sys.executable, fakes.__file__, str(run_dir(out, spec.figure, spec.arm, spec.seed)),
            str(spec.seed), str(epochs), "0.01" if spec.arm == "b" else "0.0"]


def _failing_command(spec, out, epochs, overrides=()):
    return [sys.executable, "-c", "import sys; sys.exit(3)"]


def _f32(x):
    return float(np.float32(x))


@QUIET
def test_sweep_writes_summaries_and_clean_checkout_resumes(configs, tmp_path, monkeypatch):
    """Each finished run gets <summaries>/<fig>/<arm>/seed_<s>.json holding the closed-form values
    (train/loss = mean of the epoch's 3 steps; per-layer tags other than global left out); a
    second sweep into an EMPTY --out with the same summaries runs nothing; a new seed runs only
    its own runs; another epoch budget is refused before anything runs."""
    monkeypatch.setattr(sweep_task, "train_command", _fake_command)
    # the checkout when the run started (the sweep's marker), not when the summary is written
    commit = "abc1234" + "5" * 33
    monkeypatch.setattr(sweep_process, "git_state", lambda: {"commit": commit, "dirty": True})
    sums, lines = tmp_path / "summaries", []
    specs = plan_runs(["figA"], [0], configs)
    assert sweep_local.run_sweep(specs, tmp_path / "out1", EPOCHS, [], jobs=2, summaries=sums,
                           echo=lines.append) == []
    for arm in ("a", "b"):
        path = summary.summary_path(sums, "figA", arm, 0)
        assert path.stat().st_size < 4000
        record = summary.read_summary(path)
        assert (record["figure"], record["arm"], record["seed"], record["n_epochs"]) == ("figA", arm, 0, 2)
        assert record["marker"]["epochs"] == EPOCHS and record["marker"]["wall_time_s"] > 0
        assert "command" not in record["marker"] and record["code_version"] == "abc1234-dirty"
        assert record["marker"]["code_version"] == "abc1234-dirty" != summary.code_version()
        prov = record["provenance"]
        assert record["schema"] == "lightning_sig.run_summary/2" and sorted(prov) == sorted(FIELDS)
        assert (prov["commit"], prov["dirty"]) == (commit, True)
        assert prov["torch"] == prov["denormals"] == "unknown"  # the fake child writes no provenance.json
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["started_at"])
        assert prov["started_at"] <= prov["finished_at"]
        assert record["config"]["trainer"]["default_root_dir"] == f"<out>/figA/{arm}/seed_0"
        assert record["config"]["data"]["data_dir"] == "<abs>/cifar10"  # no path of this machine
        assert record["hparams"]["l2_strength"] == (0.01 if arm == "b" else 0.0)
        assert record["config"]["model"]["init_args"] == record["hparams"]
        series = record["series"]
        assert "grad_epoch/net.0/abs_q50" not in series and "train/data_loss" not in series
        for tag in fakes.epoch_values(0, 0):
            if tag != "grad_epoch/net.0/abs_q50":
                assert series[tag]["value"] == [fakes.epoch_values(0, e)[tag] for e in range(EPOCHS)]
        means = [np.mean([_f32(fakes.train_loss(0, e, i)) for i in range(3)]) for e in range(EPOCHS)]
        assert series["train/loss"] == {"step": [2, 5], "value": [_f32(m) for m in means]}
        assert series["val/acc"]["step"] == [2, 5] and series["grad_epoch/global/abs_q50"]["step"] == [3, 6]
    assert json.loads((sums / "figA" / "sweep.json").read_text())["seeds"] == [0]

    monkeypatch.setattr(sweep_task, "train_command", _failing_command)  # nothing may run now
    lines.clear()
    assert sweep_local.run_sweep(specs, tmp_path / "clean", EPOCHS, [], summaries=sums,
                           echo=lines.append) == []
    assert "2 runs, 2 already finished, 0 to run" in lines[0]
    monkeypatch.setattr(sweep_task, "train_command", _fake_command)
    lines.clear()
    sweep_local.run_sweep(plan_runs(["figA"], [0, 1], configs), tmp_path / "clean", EPOCHS, [],
                    jobs=2, summaries=sums, echo=lines.append)
    assert "4 runs, 2 already finished, 2 to run" in lines[0]
    assert sorted(summary.find_summaries(sums)["figA"]["b"]) == [0, 1]
    assert not run_dir(tmp_path / "clean", "figA", "a", 0).exists()  # never re-trained
    with pytest.raises(ValueError, match=r"figA/a/seed_0 has a summary .*epochs=2.*asks epochs=3"):
        sweep_local.run_sweep(specs, tmp_path / "other", 3, [], summaries=sums, echo=lines.append)
    assert not (tmp_path / "other").exists()


@QUIET
def test_summaries_read_back_as_the_event_files_runlogs(tmp_path):
    """load_summaries gives the RunLogs of figure_data.load_figure: same (epoch, step, value) for
    every per-epoch tag (float32 values bit-exact), val/acc wall times to 1 ms, same hparams and
    marker wall time, so aggregate() is identical; train/loss is the per-epoch mean instead of
    the per-step events."""
    out, sums = tmp_path / "out", tmp_path / "sums"
    for seed in (0, 1, 2):
        directory = run_dir(out, "figA", "a", seed)
        fakes.write_run(directory, seed, 3, {"activation": "tanh", "alpha": 2.0, "l2_strength": 0.01})
        (directory / "DONE").write_text(json.dumps({"epochs": 3, "wall_time_s": 4.5 + seed,
                                                    "command": ["python", "/abs/path"]}))
        summary.write_summary(sums, summary_build.build_summary(directory, "figA", "a", seed))
    tags = sorted(fakes.epoch_values(0, 0))
    events = {r.seed: r for r in load_figure(out, "figA", tags + ["train/loss"])}
    summed = {r.seed: r for r in summary.load_summaries(sums, "figA")}
    assert sorted(summed) == [0, 1, 2]
    for seed, run in summed.items():
        ref = events[seed]
        assert run.hparams == ref.hparams and run.marker["wall_time_s"] == ref.marker["wall_time_s"]
        assert run.start_wall_time == ref.start_wall_time
        for tag in [t for t in tags if t != "grad_epoch/net.0/abs_q50"]:
            assert [(p.epoch, p.step, p.value) for p in run.series[tag]] == \
                [(p.epoch, p.step, p.value) for p in ref.series[tag]]
        np.testing.assert_allclose([p.wall_time for p in run.series["val/acc"]],
                                   [p.wall_time for p in ref.series["val/acc"]], rtol=0, atol=1e-3)
        assert len(ref.series["train/loss"]) == 9 and len(run.series["train/loss"]) == 3
    for tag in ("val/acc", "grad_data_epoch/global/abs_q50"):
        assert aggregate(list(summed.values()), tag) == aggregate(list(events.values()), tag)


def test_figures_from_committed_summaries_alone(tmp_path, capsys):
    """A clean folder with only the committed fixture summaries (tests/data/summaries: fig1, two
    arms, 3 epochs, no event files) gives the PNG, the CSV (mean over seeds = the JSON values'
    mean, computed here with json) and the runtime table."""
    src = tmp_path / "clean"
    shutil.copytree(DATA, src)
    assert not list(src.rglob("events.out.tfevents*"))
    assert figures.main([str(src), "--out", str(tmp_path / "figs")]) == 0
    png = tmp_path / "figs" / "fig1_large_params.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "figs" / "fig1_large_params.csv") as f:
        rows = {(r["arm"], r["tag"], int(r["epoch"])): r for r in csv.DictReader(f)}
    for arm in ("regularized", "unregularized"):
        files = sorted((src / "fig1_large_params" / arm).glob("seed_*.json"))
        values = [json.loads(p.read_text())["series"] for p in files]
        for tag in ("val/acc", "grad_epoch/global/abs_q50"):
            for epoch in (1, 2, 3):
                per_seed = [_f32(v[tag]["value"][epoch - 1]) for v in values]
                row = rows[(arm, tag, epoch)]
                assert int(row["n_seeds"]) == len(files)
                assert float(row["mean"]) == pytest.approx(np.mean(per_seed), rel=1e-15)
                assert float(row["q75"]) == pytest.approx(np.quantile(per_seed, 0.75), rel=1e-15)
    table = (tmp_path / "figs" / "runtime.md").read_text()
    assert "| fig1_large_params | regularized | tanh |" in table and "(vs unregularized)" in table
    assert "1 run(s) without a summary: unregularized/seed_1" in capsys.readouterr().err


def test_bad_summaries_and_unfinished_runs(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ValueError, match=r"x.json is not a run summary.*'other'"):
        summary.read_summary(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(ValueError, match="y.json is not a JSON run summary"):
        summary.read_summary(tmp_path / "y.json")
    fakes.write_run(tmp_path / "run", 0, 1, {})
    with pytest.raises(ValueError, match="no DONE marker"):
        summary_build.build_summary(tmp_path / "run", "f", "a", 0)
    with pytest.raises(ValueError, match=r"'figZ' has no summaries.*found: fig1_large_params"):
        summary.load_summaries(DATA, "figZ")
    assert summary.is_summary_dir(DATA) and not summary.is_summary_dir(tmp_path)


def test_member_run_summary_takes_the_group_config(tmp_path):
    """A --members seed directory has no config.yaml of its own: the summary takes the group's
    (marker field group_dir); machine paths of the marker (command, group_dir, log) are dropped."""
    group = tmp_path / "figA" / "a" / "members_0-1"
    group.mkdir(parents=True)
    (group / "config.yaml").write_text("model:\n  init_args:\n    num_members: 2\n")
    member = tmp_path / "figA" / "a" / "seed_1"
    fakes.write_run(member, 1, 1, {"activation": "tanh"})
    (member / "config.yaml").unlink()
    (member / "DONE").write_text(json.dumps({"epochs": 1, "wall_time_s": 8.0, "members": [0, 1],
                                             "group_dir": str(group), "log": "/x/train.log"}))
    record = summary_build.build_summary(member, "figA", "a", 1)
    assert record["config"] == {"model": {"init_args": {"num_members": 2}}}
    assert record["marker"] == {"epochs": 1, "wall_time_s": 8.0, "members": [0, 1]}


def test_summary_made_elsewhere_matches_despite_machine_overrides(tmp_path):
    """A summary made on another machine (other --data.data_dir, --trainer.accelerator) counts as
    done; another training override (--trainer.limit_train_batches) is refused, naming both."""
    configs = tmp_path / "configs"
    (configs / "figA").mkdir(parents=True)
    (configs / "figA" / "a.yaml").write_text("{}\n")
    spec = plan_runs(["figA"], [0], configs)
    made = ["--data.data_dir", "/elsewhere/cifar", "--trainer.accelerator=gpu",
            "--trainer.limit_train_batches", "5"]
    record = {"schema": summary.SCHEMA, "figure": "figA", "arm": "a", "seed": 0,
              "marker": {"epochs": 2, "overrides": made}, "series": {}}
    summary.write_summary(tmp_path / "s", record)
    here = ["--data.data_dir", "../shared/cifar10", "--trainer.limit_train_batches", "5"]
    assert sweep_plan.portable_overrides(made) == ["--trainer.limit_train_batches", "5"]
    assert sweep_plan.summarized(spec, tmp_path / "s", 2, here) == spec
    with pytest.raises(ValueError, match=r"overrides=.*limit_train_batches', '5'.*asks.*'7'"):
        sweep_plan.summarized(spec, tmp_path / "s", 2, ["--trainer.limit_train_batches", "7"])
