"""The sweep's unit is the run (issue 20, part 2): finished cells are never rerun whatever
``--members`` is, and a killed member group resumes from its last end-of-epoch checkpoint,
bitwise equal to an uninterrupted group; summaries carry the run's provenance (part 3)."""
import json
import re
import sys

import pytest
import torch

from lightning_sig.experiments import summary, sweep_cli, sweep_process
from lightning_sig.experiments.sweep_layout import group_dir
from lightning_sig.experiments.sweep_plan import plan_runs, plan_sweep
from lightning_sig.experiments.sweep_resume import resume_checkpoint, write_task

ARMS = ("a", "b")


@pytest.fixture()
def configs(tmp_path):
    (tmp_path / "configs" / "figA").mkdir(parents=True)
    for arm in ARMS:
        (tmp_path / "configs" / "figA" / f"{arm}.yaml").write_text("{}\n")
    return tmp_path / "configs"


def _summaries_for(sums, seeds, epochs):
    for arm in ARMS:
        for seed in seeds:
            path = summary.summary_path(sums, "figA", arm, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"schema": summary.SCHEMA, "figure": "figA", "arm": arm,
                                        "seed": seed, "marker": {"epochs": epochs,
                                                                 "overrides": []}}))


def test_10_of_25_summarised_members_25_plans_exactly_the_other_15(configs, tmp_path, capsys):
    sums, out = tmp_path / "sums", tmp_path / "out"
    _summaries_for(sums, range(10), 30)
    argv = ["figA", "--seeds", "0-24", "--epochs", "30", "--members", "25", "--config-dir",
            str(configs), "--out", str(out), "--summaries", str(sums), "--dry-run"]
    assert sweep_cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["20 of 50 runs done, 30 to run in 2 process(es)",
                         "figA/a: 10 done, 15 to do", "figA/b: 10 done, 15 to do"]
    assert len(lines) == 5 and all("--model.init_args.member_seeds '[10, 11, 12" in line
                                   and "24]'" in line for line in lines[3:])
    specs = plan_runs(["figA"], range(25), configs)
    todo = plan_sweep(specs, out, 30, [], 25, sums).groups
    assert [(g[0].arm, [s.seed for s in g]) for g in todo] == [(a, list(range(10, 25)))
                                                               for a in ARMS]
    _summaries_for(sums, range(10, 25), 30)
    assert sweep_cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == "50 of 50 runs done, 0 to run in 0 process(es)"


def test_resume_checkpoint_needs_same_task_and_a_whole_earlier_epoch(tmp_path):
    write_task(tmp_path, [3, 4], ["--x", "1"], "2026-01-01T00:00:00Z")
    (tmp_path / "checkpoints").mkdir()
    torch.save({"k": 1}, tmp_path / "checkpoints" / "epoch=1-step=8.ckpt")
    (tmp_path / "checkpoints" / "epoch=2-step=12.ckpt").write_bytes(b"PK\x03\x04cut")  # killed
    assert resume_checkpoint(tmp_path, [3, 4], ["--x", "1"], 5).name == "epoch=1-step=8.ckpt"
    assert resume_checkpoint(tmp_path, [3, 4], ["--x", "1"], 2) is None  # epoch 1 was the last
    assert resume_checkpoint(tmp_path, [3, 5], ["--x", "1"], 5) is None  # other seeds
    assert resume_checkpoint(tmp_path, [3, 4], [], 5) is None  # other overrides
    assert resume_checkpoint(tmp_path / "nowhere", [3, 4], ["--x", "1"], 5) is None


def _killed_after_two_epochs(real):
    """run_process that trains 2 epochs, logs stray values after the checkpoint (as a kill
    mid-epoch leaves: steps of the next epoch, here 5 of 4-5) and reports the exit status of a
    killed process."""
    def run(command, log_path, threads, append=False):
        real([*command, "--trainer.max_epochs", "2"], log_path, threads, append)
        from torch.utils.tensorboard import SummaryWriter
        for seed in (0, 1):
            with SummaryWriter(str(log_path.parents[1] / f"seed_{seed}")) as writer:
                writer.add_scalar("val/acc", 99.0, 5)
                writer.add_scalar("train/loss", 99.0, 5)
        return -9, 1.0
    return run


def test_killed_group_resumes_bitwise_and_summaries_hold_provenance(fake_cifar, tmp_path,
                                                                    monkeypatch):
    common = ["fig1_large_params", "--arms", "regularized", "--seeds", "0-1", "--epochs", "3",
              "--members", "2", "--threads", "1", "--data.data_dir", str(fake_cifar),
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
              "--trainer.log_every_n_steps", "1"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert sweep_cli.main(common + ["--out", str(whole), "--summaries", str(whole / "s")]) == 0
    monkeypatch.setattr(sweep_process, "run_process", _killed_after_two_epochs(sweep_process.run_process))
    assert sweep_cli.main(common + ["--out", str(resumed), "--summaries", str(resumed / "s")]) == 1
    monkeypatch.undo()
    assert sweep_cli.main(common + ["--out", str(resumed), "--summaries", str(resumed / "s")]) == 0
    group = plan_runs(["fig1_large_params"], [0, 1], arms=["regularized"])
    ckpts = [torch.load(group_dir(o, group) / "checkpoints" / "epoch=2-step=6.ckpt",
                        weights_only=False) for o in (whole, resumed)]
    for name, value in ckpts[0]["state_dict"].items():
        assert torch.equal(value, ckpts[1]["state_dict"][name]), name
    for spec in group:
        a, b = (summary.read_summary(summary.summary_path(o / "s", spec.figure, spec.arm,
                                                          spec.seed)) for o in (whole, resumed))
        assert a["series"].keys() == b["series"].keys() and len(a["series"]["val/acc"]["value"]) == 3
        for tag in a["series"]:  # the stray 99.0 was purged by the resumed run's events
            assert a["series"][tag]["value"] == b["series"][tag]["value"], tag
        assert b["marker"]["resumed_from"] == "epoch=1-step=4.ckpt" and a["marker"]["resumed_from"] is None
        prov = b["provenance"]
        assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]) and prov["threads"] == 1
        assert prov["torch"] == torch.__version__ and prov["isa"] == torch.backends.cpu.get_cpu_capability()
        assert prov["denormals"] == ("ftz" if prov["backend"] == "fused" else "ieee")
        assert prov["started_at"] < prov["finished_at"]
        assert not re.search(r'"/(tmp|work|root|home)', json.dumps(b))
