"""--launcher submitit: bad parameters refused before submitting, the debug executor in-process,
the local executor's sweep identical to the local launcher's (folders and scalars)."""
import os
import sys
from pathlib import Path

import pytest

from lightning_sig.experiments import sweep_cli, sweep_commands, sweep_submitit, sweep_task
from lightning_sig.experiments.sweep_layout import DONE_NAME, read_marker, run_dir
from lightning_sig.experiments.sweep_plan import plan_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def configs(tmp_path):
    for arm in ("a", "b"):
        (tmp_path / "configs" / "figA").mkdir(parents=True, exist_ok=True)
        (tmp_path / "configs" / "figA" / f"{arm}.yaml").write_text("{}\n")
    return tmp_path / "configs"


@pytest.mark.parametrize("extra, match", [
    (["--submitit.cluster", "local", "--submitit.slurm_partitoin", "gpu"],
     r"submitit refused --submitit.slurm_partitoin: Unknown argument 'partitoin' .*Valid "
     r"arguments: .*partition"),
    (["--submitit.cluster", "local", "--submitit.timeout_min", "soon"],
     r"submitit refused --submitit.timeout_min: .*timeout_min.*soon"),
    (["--submitit.cluster", "pbs"], r"--submitit.cluster 'pbs' is not one of slurm, local, debug"),
    (["--submitit.cluster", "slurm"], r"--submitit.cluster slurm: .*srun"),
    (["--submitit.timeout_min"], r"--submitit.timeout_min needs a value"),
    ([], r"no sbatch on this machine .*choose --submitit.cluster slurm\|local\|debug"),
    (["--submitit.cluster", "local", "--no-wait"], r"--no-wait needs --submitit.cluster slurm"),
])
def test_bad_submitit_arguments_are_refused_before_submitting(configs, tmp_path, capsys, extra,
                                                              match, monkeypatch):
    monkeypatch.setattr(sweep_submitit.shutil, "which", lambda name: None)  # no SLURM here
    out = tmp_path / "out"
    argv = ["figA", "--seeds", "0", "--config-dir", str(configs), "--out", str(out),
            "--launcher", "submitit", *extra]
    assert sweep_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 or "Valid arguments" in err
    import re
    assert re.search(match, err, re.S), err
    assert not out.exists()


def test_submitit_options_need_the_submitit_launcher(configs, tmp_path, capsys):
    argv = ["figA", "--config-dir", str(configs), "--out", str(tmp_path / "o"),
            "--submitit.timeout_min", "60"]
    assert sweep_cli.main(argv) == 2
    assert "--submitit.timeout_min needs --launcher submitit" in capsys.readouterr().err


def test_split_submitit_options():
    rest, raw = sweep_submitit.split_submitit_options(
        ["figA", "--submitit.timeout_min", "60", "--data.x", "1", "--submitit.cluster=debug",
         "--", "--submitit.kept", "v"])
    assert rest == ["figA", "--data.x", "1", "--", "--submitit.kept", "v"]
    assert raw == {"timeout_min": "60", "cluster": "debug"}
    assert sweep_submitit.parse_submitit_options(
        {"cluster": "local", "timeout_min": "60", "slurm_additional_parameters": "{signal: USR1@90}"}
    ) == ("local", {"timeout_min": 60, "slurm_additional_parameters": {"signal": "USR1@90"}})


def _fake_train_command(spec, out, epochs, overrides=()):
    """A stand-in child: writes its parent's pid (the task process) into the run dir; seed 13
    fails."""
    code = (f"import os, pathlib, sys; d = pathlib.Path({str(run_dir(out, spec.figure, spec.arm, spec.seed))!r});"
            f" (d / 'task_pid').write_text(str(os.getppid())); print('boom'); "
            f"sys.exit({int(spec.seed == 13)})")
    return [sys.executable, "-c", code]


def test_debug_executor_runs_tasks_in_process_and_resumes(configs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_task, "train_command", _fake_train_command)
    out = tmp_path / "out"
    argv = ["figA", "--seeds", "0", "13", "--epochs", "2", "--config-dir", str(configs), "--out",
            str(out), "--launcher", "submitit", "--submitit.cluster", "debug"]
    assert sweep_cli.main(argv + ["--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert dry[:3] == ["0 of 4 runs done, 4 to run in 4 process(es)", "figA/a: 0 done, 2 to do",
                       "figA/b: 0 done, 2 to do"]
    assert dry[3].startswith("would submit 1 array job of 4 task(s) to cluster 'debug'")
    assert len(dry) == 8 and "--seed_everything 13" in dry[-1] and not out.exists()
    assert sweep_cli.main(argv) == 1
    captured = capsys.readouterr()
    for arm in ("a", "b"):
        assert (run_dir(out, "figA", arm, 0) / "task_pid").read_text() == str(os.getpid())
        assert read_marker(run_dir(out, "figA", arm, 0))["returncode"] == 0
        assert not (run_dir(out, "figA", arm, 13) / DONE_NAME).exists()
        log = run_dir(out, "figA", arm, 13) / "train.log"
        assert f"figA/{arm}/seed_13 FAILED (exit 1) in job DEBUG_" in captured.out
        assert f"; log: {log}" in captured.out and log.read_text().strip() == "boom"
    assert "[submitit] tasks: 2 done, 2 failed, 0 pending" in captured.out
    assert "2 run(s) failed" in captured.err
    assert sweep_cli.main(argv + ["--dry-run"]) == 0  # rerun: only the failed runs are submitted
    dry = capsys.readouterr().out.splitlines()
    assert dry[0].startswith("2 of 4 runs done") and "of 2 task(s)" in dry[3]
    assert sweep_cli.main(argv) == 1
    rerun = capsys.readouterr().out
    assert "4 runs, 2 already finished, 2 to run as 2 array task(s) x 1 thread(s)" in rerun
    assert "[submitit] tasks: 0 done, 2 failed, 0 pending" in rerun


def _tree(out: Path) -> dict:
    """Relative path → content: scalars of event files (named by folder: their names hold host,
    pid and time), texts with ``out`` as ``<out>``; logs, markers, task records, provenance,
    lock and submitit's files left out (wall times, commands, times of day)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tree = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if rel.startswith(".") or path.name in ("train.log", DONE_NAME, "task.json",
                                                "provenance.json"):  # times of day
            continue
        if path.name.startswith("events.out.tfevents."):
            acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
            acc.Reload()
            tree[f"{path.parent.relative_to(out).as_posix()}/events"] = {
                t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
        elif path.suffix == ".ckpt" or path.is_dir():
            tree[rel] = "<dir>" if path.is_dir() else "<ckpt>"
        else:
            tree[rel] = path.read_text().replace(str(out.resolve()), "<out>")
    return tree


def test_local_executor_sweep_equals_local_launcher(fake_cifar, tmp_path, capsys, monkeypatch):
    """2 seeds × 2 arms of the real fig1 configs (2 epochs × 2 steps), --members 2: the same
    run folders, hparams and scalars (bit for bit: same kernels, one thread) either way."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    common = ["fig1_large_params", "--seeds", "0", "1", "--epochs", "2", "--members", "2",
              "--threads", "1", "--data.data_dir", str(fake_cifar),
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    local, remote = tmp_path / "local", tmp_path / "submitit"
    assert sweep_cli.main(common + ["--out", str(local), "--jobs", "2"]) == 0
    capsys.readouterr()
    assert sweep_cli.main(common + ["--out", str(remote), "--launcher", "submitit",
                                "--submitit.cluster", "local", "--submitit.timeout_min", "10"]) == 0
    out = capsys.readouterr().out
    assert "submitted 2 task(s) to local as job" in out
    assert "[submitit] tasks: 2 done, 0 failed, 0 pending" in out
    a, b = _tree(local), _tree(remote)
    assert a.keys() == b.keys() and a == b
    runs = [k for k in a if k.endswith("/events") and "/seed_" in k]
    assert len(runs) == 4 and all(a[k]["val/acc"] for k in runs)
    for spec in plan_runs(["fig1_large_params"], [0, 1]):
        m1, m2 = (read_marker(run_dir(o, spec.figure, spec.arm, spec.seed)) for o in (local, remote))
        assert m1.keys() == m2.keys() and m1["returncode"] == m2["returncode"] == 0
    assert sweep_cli.main(common + ["--out", str(remote), "--launcher", "submitit",
                                "--submitit.cluster", "local"]) == 0  # all done: nothing submitted
    assert "submitted" not in capsys.readouterr().out


def test_slurm_requeue_keeps_a_run_with_lightnings_hpc_checkpoint(configs, tmp_path, monkeypatch):
    """A requeued task finds Lightning's hpc_ckpt in the run folder (its default_root_dir) and
    restarts the run in place; a folder without one is restarted from scratch."""
    monkeypatch.setattr(sweep_task, "train_command", _fake_train_command)
    out = tmp_path / "out"
    spec_a, spec_b = plan_runs(["figA"], [0], configs)
    requeued, plain = (run_dir(out, s.figure, s.arm, s.seed) for s in (spec_a, spec_b))
    for directory in (requeued, plain):
        directory.mkdir(parents=True)
        (directory / "events.out.tfevents.old").write_text("earlier part")
        (directory / "train.log").write_text("first attempt\n")
    (requeued / "hpc_ckpt_1.ckpt").write_text("state")
    for spec in (spec_a, spec_b):
        assert sweep_task.run_one(spec, out, 2, [], threads=1)["returncode"] == 0
    assert (requeued / "events.out.tfevents.old").exists() and (requeued / "hpc_ckpt_1.ckpt").exists()
    assert (requeued / "train.log").read_text() == "first attempt\nboom\n"
    assert not (plain / "events.out.tfevents.old").exists()
    assert (plain / "train.log").read_text() == "boom\n"
    real = sweep_commands.train_command(spec_a, out, 2)
    assert real[real.index("--trainer.default_root_dir") + 1] == str(requeued.resolve())


def test_a_task_that_raised_names_submitits_log(configs, tmp_path):
    """A task that died inside submitit (e.g. killed, or an exception) is reported with the last
    line of submitit's error and the path of the task's stderr log."""
    from types import SimpleNamespace

    class Died:
        job_id, paths = "77_3", SimpleNamespace(stderr=tmp_path / "77_3_0_log.err")

        def done(self):
            return True

        def result(self):
            raise RuntimeError("Job 77_3 (task: 0) failed\nTraceback ...\nMemoryError: oom")

    group = tuple(plan_runs(["figA"], [5], configs))[:1]
    lines = []
    failed = sweep_submitit.wait_for([Died()], [group], tmp_path, lines.append, poll_s=0)
    assert failed == list(group)
    assert lines == [f"figA/a/seed_5 FAILED in job 77_3 (MemoryError: oom); log: "
                     f"{tmp_path / '77_3_0_log.err'}",
                     "[submitit] tasks: 0 done, 1 failed, 0 pending"]


def test_no_new_array_while_the_last_one_runs(tmp_path, monkeypatch):
    """After --no-wait the lock is free, so squeue decides: tasks listed → refused."""
    out, bin_dir = tmp_path / "out", tmp_path / "bin"
    (out / sweep_submitit.SUBMITIT_FOLDER).mkdir(parents=True)
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"  # a stand-in listing two tasks of job 4242 only
    squeue.write_text('#!/bin/sh\n[ "$3" = 4242 ] && printf "4242_0 R\\n4242_1 PD\\n"\nexit 0\n')
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    record = out / sweep_submitit.SUBMITIT_FOLDER / sweep_submitit.ARRAY_RECORD
    record.write_text('{"job_id": "4242"}')
    with pytest.raises(ValueError, match=r"SLURM job 4242 of .* still has 2 task\(s\) queued or "
                                         r"running .*scancel 4242"):
        sweep_submitit.check_no_array_running(out)
    record.write_text('{"job_id": "4243"}')  # ended: squeue lists nothing
    sweep_submitit.check_no_array_running(out)
