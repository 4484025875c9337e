"""Lightning DDP (2 CPU processes, gloo) equals one process with the same global batch and seed.

``tests/scripts/ddp_run.py`` trains CombinedNet (tanh, α = 2 learnable, r = 0.01, PyTorch's init)
for 2 epochs of 5 steps: once with ``devices=2, strategy="ddp"`` and batch 10 per rank (a subprocess, since
Lightning re-launches the script per rank), once in this process with ``devices=1`` and batch 20.
DDP averages the ranks' gradients, (ḡ₀ + ḡ₁)/2 = the mean over the 20 samples (r·θ is the same
on both ranks), so with the same samples per step the runs agree up to float32 summation order.
PyTorch's init rather than the paper's U[-10, 10) keeps those ulp-level differences ulp-level:
with saturated tanh many gradient coordinates sit at the float noise level, and Adam, which
moves each coordinate by about lr·sign(g), amplifies a flipped sign into a 1e-3 difference.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from lightning_sig.seeds import derived_seed
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ddp_run.py"
N_TRAIN, BATCH, STEPS_PER_EPOCH, EPOCHS, SEED = 100, 10, 5, 2, 0


def _load_script():
    spec = importlib.util.spec_from_file_location("ddp_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scalars(run_dir: Path):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {canonical_tag(t): [(e.step, e.value) for e in acc.Scalars(t)]  # plain names
            for t in acc.Tags()["scalars"]}


@pytest.fixture(scope="module", params=["pytorch_lightning", "lightning.pytorch"])
def runs(tmp_path_factory, request):
    """(ddp_out, single_out): the 2-process run (data downloaded on the fly) and the reference,
    once per Lightning namespace."""
    namespace = request.param
    base = tmp_path_factory.mktemp("ddp")
    ddp_out, single_out = base / "ddp", base / "single"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(SCRIPT), "--out", str(ddp_out), "--data", str(base / "empty_data"),
           "--devices", "2", "--batch-size", str(BATCH), "--epochs", str(EPOCHS), "--download",
           "--namespace", namespace]
    # own process group, so a hang kills both ranks (Lightning launches rank 1 from rank 0)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-5000:]
    from lightning_sig.lightning.data_files import write_batches
    write_batches(str(base / "data"), n_per_batch=20, seed=SEED)  # what the fake download writes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each DDP rank: same kernels, float sums in the same order
    try:
        _load_script().run(single_out, base / "data", devices=1, batch_size=2 * BATCH,
                           epochs=EPOCHS, namespace=namespace)
    finally:
        torch.set_num_threads(threads)
    return ddp_out, single_out


def _record(out: Path, rank: int) -> dict:
    return json.loads((out / f"rank{rank}.json").read_text())


def test_data_is_downloaded_once_by_rank_zero(runs):
    ddp_out, _ = runs
    calls = sorted(p.name for p in ddp_out.glob("download_rank*"))
    assert calls == [f"download_rank0_pid{_record(ddp_out, 0)['pid']}"]


def test_ranks_see_disjoint_shards_of_the_single_process_batches(runs):
    ddp_out, single_out = runs
    r0, r1, single = _record(ddp_out, 0), _record(ddp_out, 1), _record(single_out, 0)
    assert (r0["global_rank"], r1["global_rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    assert r0["pid"] != r1["pid"]
    assert r0["global_step"] == r1["global_step"] == single["global_step"] == EPOCHS * STEPS_PER_EPOCH
    for step, ((e0, b0), (e1, b1), (es, bs)) in enumerate(zip(r0["steps"], r1["steps"], single["steps"])):
        epoch, k = divmod(step, STEPS_PER_EPOCH)
        # closed form: epoch e is randperm(N) seeded with derived_seed(seed, "data_order", e)
        # (seed_everything(SEED) → seed SEED)
        generator = torch.Generator().manual_seed(derived_seed(SEED, "data_order", epoch))
        perm = torch.randperm(N_TRAIN, generator=generator).tolist()
        chunk = perm[2 * BATCH * k: 2 * BATCH * (k + 1)]
        assert e0 == e1 == es == epoch
        assert bs == chunk  # one process, batch 2B
        assert b0 == chunk[0::2] and b1 == chunk[1::2]  # rank r: positions r, r + 2, ...
    for epoch in range(EPOCHS):
        seen = [sum((b for e, b in rec["steps"] if e == epoch), []) for rec in (r0, r1)]
        assert not set(seen[0]) & set(seen[1])
        assert sorted(seen[0] + seen[1]) == list(range(N_TRAIN))
    assert r0["steps"][0][1] != r0["steps"][STEPS_PER_EPOCH][1]  # set_epoch reached the sampler


def test_final_parameters_equal_single_process(runs):
    ddp_out, single_out = runs
    ddp, single = torch.load(ddp_out / "final.pt"), torch.load(single_out / "final.pt")
    assert ddp.keys() == single.keys() and any(k.endswith("log_alpha") for k in ddp)
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-5, atol=1e-6, msg=name)
    # and training moved them: learnable α left its initial value log 2
    alphas = torch.stack([v for k, v in single.items() if k.endswith("log_alpha")])
    assert (alphas - np.log(2.0)).abs().max() > 1e-3


def test_only_rank_zero_writes_event_files(runs):
    ddp_out, _ = runs
    events = sorted((ddp_out / "tb").rglob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].parent == ddp_out / "tb" / "run" / "version_0"
    assert events[0].name.split(".")[-2] == str(_record(ddp_out, 0)["pid"])


def test_gradient_statistics_equal_single_process(runs):
    ddp, single = (_scalars(out / "tb" / "run" / "version_0") for out in runs)
    grad_tags = sorted(t for t in single if t.startswith(("grad/", "grad_epoch/")))
    assert "grad/global/abs_q50" in grad_tags and "grad_epoch/global/abs_q50" in grad_tags
    assert grad_tags == sorted(t for t in ddp if t.startswith(("grad/", "grad_epoch/")))
    assert [s for s, _ in single["grad/global/abs_q50"]] == list(range(EPOCHS * STEPS_PER_EPOCH))
    for tag in grad_tags:
        prefix, group, stat = tag.split("/")
        steps = [s for s, _ in single[tag]]
        assert [s for s, _ in ddp[tag]] == steps, tag
        got, want = (np.array([v for _, v in run[tag]]) for run in (ddp, single))
        if stat in ("nonfinite_count", "vanishing_frac"):
            np.testing.assert_array_equal(got, want, err_msg=tag)
            continue
        # float32 sums in another order: absolute errors scale with the largest gradient
        # coordinate of the step, |g|_max (a one-coordinate α gradient can cancel to ~1e-6 |g|_max)
        g_max = np.array([v for _, v in single[f"{prefix}/global/abs_q100"]])
        assert np.all(np.abs(got - want) <= 1e-4 * np.abs(want) + 1e-6 * g_max), (tag, got, want)
    assert ddp["val/acc"] == [(s, v) for s, v in single["val/acc"]]
