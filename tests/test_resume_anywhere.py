"""Resume equals the uninterrupted run from any checkpoint, bitwise (issue 18).

Reference A (per Lightning namespace, one network and 2 members; and one network with 2
DataLoader workers and the loader rebuilt every epoch): CombinedNet on 100 synthetic
images, batch 20 = 5 steps per epoch, 20 steps = 4 epochs, saving a checkpoint after every step
and at every epoch's end, and receiving SLURM's requeue signal (SIGUSR1, Lightning's
auto-requeue handler writes ``hpc_ckpt_1.ckpt``) at the start of step 8, before its optimizer
step. Two more runs stop by ``max_steps`` (7: mid-epoch; 10: at an epoch's end) as a run that a
later command continues. Each checkpoint is resumed to the same end, under ``max_steps=20`` and
under ``max_epochs=4`` (a run stopped by ``max_steps`` is continued under ``max_steps``), and
must give A's parameters and Adam state bit for bit, A's batch at every step, A's step and
epoch counts, and no "not resumable" warning.
"""
from __future__ import annotations

import importlib
import os
import signal
import warnings
from pathlib import Path

import pytest
import torch

from lightning_sig.lightning.data_files import write_batches
from lightning_sig.lightning.namespace import lightning_classes, import_namespace

STEPS, EPOCHS, STEPS_PER_EPOCH, HPC_STEP = 20, 4, 5, 8
CASES = {  # case -> what the checkpoint is
    "mid_epoch_step_7": "every_n_train_steps checkpoint after step 7 (epoch 1, batch 2)",
    "last_batch_step_5": "every_n_train_steps checkpoint after epoch 0's last batch, before "
                         "its end-of-epoch hooks",
    "epoch_end_step_10": "ModelCheckpoint's end-of-epoch checkpoint of epoch 1",
    "slurm_hpc_step_8": "hpc_ckpt written by SLURM auto-requeue inside step 8",
    "stopped_max_steps_7": "a run with max_steps=7 (stops mid-epoch)",
    "stopped_max_steps_10": "a run with max_steps=10 (stops at an epoch's end)",
}
SLURM_ENV = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1",
             "SLURM_JOB_NAME": "resume_test", "SLURM_NODELIST": "node0", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}


def _recorder(pl, sigusr1_at=None):
    class Recorder(pl.Callback):
        """Each step's label sum by global step; SIGUSR1 to this process at ``sigusr1_at``."""

        def __init__(self):
            self.batches = {}

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.batches[trainer.global_step] = int(batch[1].sum())
            if trainer.global_step == sigusr1_at:
                os.kill(os.getpid(), signal.SIGUSR1)  # handled before the next bytecode

    return Recorder()


def _fit(ns, data, root, setup, ckpt_path=None, callbacks=(), sigusr1_at=None, **limits):
    """Fit with ``setup`` = (members, DataLoader workers); with workers, the train loader is also
    rebuilt every epoch (then Lightning creates iterators before restoring its counters)."""
    members, workers = setup
    pl = import_namespace(ns)
    classes = lightning_classes(ns)
    pl.seed_everything(0)
    model = classes["CombinedNet"](activation="tanh", alpha=2.0, l2_strength=0.01,
                                   num_members=members)
    recorder = _recorder(pl, sigusr1_at)
    plugins = []
    if sigusr1_at is not None:
        environments = importlib.import_module(f"{ns}.plugins.environments")
        plugins = [environments.SLURMEnvironment(auto_requeue=True)]
    trainer = pl.Trainer(default_root_dir=str(root), logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1,
                         callbacks=[recorder, *callbacks], plugins=plugins,
                         reload_dataloaders_every_n_epochs=int(workers > 0), **limits)
    data_module = classes["CIFAR10DataModule"](str(data), batch_size=20, num_workers=workers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, data_module, ckpt_path=ckpt_path)
    unresumable = [str(w.message) for w in caught if "not resumable" in str(w.message)]
    return {"trainer": trainer, "model": model, "batches": recorder.batches,
            "warnings": unresumable}


# lightning.pytorch runs the same loop code under its other name, and worker processes cost
# seconds per fit: marked slow (CI runs them; the quick `-m "not slow"` loop keeps
# pytorch_lightning's 22 cases, ~20 s on 2 busy cores)
_SLOW = pytest.mark.slow
PARAMS = [pytest.param((ns, (s, 0)), id=f"{ns}-members{s}",
                       marks=[_SLOW] if ns != "pytorch_lightning" else [])
          for ns in ("pytorch_lightning", "lightning.pytorch") for s in (1, 2)] + [
    pytest.param(("pytorch_lightning", (1, 2)), id="pytorch_lightning-members1-workers2",
                 marks=[_SLOW])]
RESUMES = [(case, limit) for case in CASES for limit in ("max_steps", "max_epochs")
           if limit == "max_steps" or not case.startswith("stopped")]


@pytest.fixture(scope="module", params=PARAMS)
def reference(request, tmp_path_factory):
    """A and the checkpoints of :data:`CASES` for one namespace and member count."""
    ns, setup = request.param
    pl = import_namespace(ns)
    root = tmp_path_factory.mktemp("anywhere")
    write_batches(str(root / "data"), n_per_batch=20, seed=0)
    (root / "bin").mkdir()
    (root / "bin" / "scontrol").write_text("#!/bin/sh\nexit 0\n")  # the requeue call succeeds
    (root / "bin" / "scontrol").chmod(0o755)
    patch = pytest.MonkeyPatch()
    for key, value in SLURM_ENV.items():
        patch.setenv(key, value)
    patch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    every_step = pl.callbacks.ModelCheckpoint(dirpath=str(root / "steps"), every_n_train_steps=1,
                                              save_top_k=-1, filename="{step}")
    epoch_end = pl.callbacks.ModelCheckpoint(dirpath=str(root / "epochs"), save_top_k=-1)
    a = _fit(ns, root / "data", root / "a", setup, callbacks=[every_step, epoch_end],
             sigusr1_at=HPC_STEP, max_steps=STEPS)
    patch.undo()
    stopped = {n: _fit(ns, root / "data", root / f"stop{n}", setup, max_steps=n)
               for n in (7, 10)}
    ckpts = {"mid_epoch_step_7": root / "steps" / "step=7.ckpt",
             "last_batch_step_5": root / "steps" / "step=5.ckpt",
             "epoch_end_step_10": root / "epochs" / "epoch=1-step=10.ckpt",
             "slurm_hpc_step_8": root / "a" / "hpc_ckpt_1.ckpt",
             **{f"stopped_max_steps_{n}": root / f"stop{n}" / "checkpoints" /
                f"epoch={(n - 1) // STEPS_PER_EPOCH}-step={n}.ckpt" for n in (7, 10)}}
    return {"ns": ns, "setup": setup, "root": root, "a": a, "ckpts": ckpts,
            "stopped": stopped}


def test_reference_is_what_the_cases_claim(reference):
    a, ckpts = reference["a"], reference["ckpts"]
    assert a["trainer"].global_step == STEPS and a["trainer"].current_epoch == EPOCHS
    assert sorted(a["batches"]) == list(range(STEPS)) and not a["warnings"]
    assert all(path.is_file() for path in ckpts.values()), ckpts
    hpc = torch.load(ckpts["slurm_hpc_step_8"], weights_only=False)
    progress = hpc["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert hpc["global_step"] == HPC_STEP and (progress["ready"], progress["processed"]) == (4, 3)
    for n, run in reference["stopped"].items():  # the stopped runs trained A's first n steps
        assert run["batches"] == {s: a["batches"][s] for s in range(n)}


@pytest.mark.parametrize("case,limit", RESUMES)
def test_resume_equals_uninterrupted(reference, case, limit):
    a, ckpt = reference["a"], reference["ckpts"][case]
    start = torch.load(ckpt, weights_only=False)["global_step"]
    limits = {"max_steps": STEPS} if limit == "max_steps" else {"max_epochs": EPOCHS}
    resumed = _fit(reference["ns"], reference["root"] / "data",
                   reference["root"] / f"resume_{case}_{limit}", reference["setup"],
                   ckpt_path=str(ckpt), **limits)
    assert resumed["batches"] == {s: a["batches"][s] for s in range(start, STEPS)}, CASES[case]
    assert resumed["trainer"].global_step == STEPS
    assert resumed["trainer"].current_epoch == EPOCHS
    ours, theirs = resumed["model"].state_dict(), a["model"].state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    for mine, ref in zip(resumed["trainer"].optimizers, a["trainer"].optimizers):
        for p_mine, p_ref in zip(mine.state.values(), ref.state.values()):
            assert all(torch.equal(p_mine[k], p_ref[k]) for k in p_ref)
    assert not resumed["warnings"]
