"""Statistics of a gradient sharded over 2 processes (gloo, CPU) equal those of the gathered
gradient: each process holds an uneven part of every layer (some none), and the exact global
and per-layer quantiles come from summed histograms (lightning_sig.gradients.sharded_stats),
also through the callback's pipeline. Lightning's FSDPStrategy needs a GPU, so the shards are
explicit ``torch.distributed`` tensors, as FSDP's ``use_orig_params`` views are."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_sig.gradients.quantile_engine import table_statistics
from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.sharded_stats import sharded_table_statistics
from lightning_sig.gradients.stats_pipeline import StatisticsPipeline
from lightning_sig.gradients.step_jobs import StepFlags

pytestmark = pytest.mark.numerics

LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.999, 1.0)


def _layers(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3001, generator=g) * 1e-3
    a[::3] = 0.0
    a[5] = float("nan")
    layers = [a, torch.randint(-3, 4, (1000,), generator=g).float(),
              torch.randn(7, generator=g), torch.zeros(50), torch.randn(5000, generator=g)]
    return [t.to(dtype) for t in layers]


CUTS = [1500, 0, 7, 20, 4999]  # rank 0's share of each layer (rank 1: the rest)


def _worker(rank: int, port: int, out: str, dtype_name: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        layers = _layers(getattr(torch, dtype_name))
        mine = [t[:c] if rank == 0 else t[c:] for t, c in zip(layers, CUTS)]
        sizes = [t.numel() for t in mine]
        direct = sharded_table_statistics(mine, sizes, LEVELS, 1e-8, signed=True,
                                          with_total=True)
        pipeline = StatisticsPipeline(LEVELS, 1e-8, True, 32, threaded=False)
        pipeline.group = dist.group.WORLD
        names = ("global",) + tuple(f"layer{i}" for i in range(len(mine)))
        flags = StepFlags(True, True, False)
        for step in range(2):  # two steps: one job each, collectives in the same order
            pipeline.record(RowKey(0, "grad"), (names, tuple(sizes), True), mine, step, flags)
        tables = []
        pipeline.take(True, lambda job, table, hist: tables.append(table))
        if rank == 0:
            torch.save({"direct": direct, "pipeline": tables}, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_sharded_statistics_equal_the_gathered_gradient(tmp_path, dtype_name):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(_free_port(), out, dtype_name), nprocs=2, join=True)
    got = torch.load(out)
    layers = _layers(getattr(torch, dtype_name))
    want = table_statistics(layers, [t.numel() for t in layers], LEVELS, 1e-8, signed=True,
                            with_total=True)
    q = len(LEVELS)
    for table in [got["direct"]] + got["pipeline"]:
        assert table.shape == want.shape
        for cols in (slice(0, q), slice(-q, None)):  # |g| and signed quantiles: exact
            assert torch.equal(table[..., cols].nan_to_num(7.0), want[..., cols].nan_to_num(7.0))
        torch.testing.assert_close(table, want, rtol=1e-12, atol=0, equal_nan=True)
    reference = np.quantile(np.abs(np.concatenate([t.double().numpy() for t in layers])), 0.5)
    assert np.isnan(reference)  # a NaN coordinate: numpy's answer; ours skips it
    finite = np.concatenate([t.double().numpy() for t in layers])
    finite = finite[np.isfinite(finite)]
    assert got["direct"][0, 0, LEVELS.index(0.5)].item() == np.quantile(np.abs(finite), 0.5)
