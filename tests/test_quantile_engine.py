"""The statistics engine (lightning_sig.gradients.quantile_engine) on adversarial inputs: every
quantile of every layer and of the whole gradient equals numpy.quantile (method "linear") bit
for bit, for the compiled kernel, its numpy twin and the torch path; the kernel and the twin
agree on every output bit (sums included)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_sig.gradients.quantile_engine import table_statistics, threshold_key
from lightning_sig.gradients.radix_build import load_radix_kernel
from lightning_sig.gradients.radix_numpy import radix_table_numpy
from lightning_sig.gradients.stat_keys import statistic_names

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

LEVELS = (0.0, 0.001, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 0.999, 1.0)
THRESHOLD = 1e-8
SORT_MAX = 2048  # the kernel's sort/radix switch (radix_kernel.cpp: kSortMax)
BACKENDS = ["compiled", "numpy", "torch"]
TINY = np.float32(1e-45)  # the smallest subnormal float32


def _kernel_or_skip(backend):
    if backend == "compiled" and load_radix_kernel() is None:
        pytest.skip("the compiled kernel could not be built here")


def _reference(values: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """numpy in float64 over the finite values: the definition the engine must meet."""
    v = values.astype(np.float64)
    finite = v[np.isfinite(v)]
    out = {"nonfinite_count": float(v.size - finite.size), "numel": float(v.size)}
    if finite.size == 0:
        return out
    a = np.abs(finite)
    for q in LEVELS:
        out[statistic_names((q,))[0]] = float(np.quantile(a, q))
        out[statistic_names((q,), signed=True)[-1]] = float(np.quantile(finite, q))
    out.update(abs_mean=a.mean(), rms=math.sqrt(np.mean(a * a)), l2_norm=math.sqrt(np.sum(a * a)),
               vanishing_frac=float(np.mean(a <= threshold)))
    return out


def _check(values: np.ndarray, sizes, backend: str, rows: int = 1):
    _kernel_or_skip(backend)
    tensor = torch.from_numpy(values)
    table = table_statistics(tensor, sizes, LEVELS, THRESHOLD, rows=rows, signed=True,
                             with_total=True, backend=backend)
    names = statistic_names(LEVELS, signed=True)
    n = sum(sizes)
    for r in range(rows):
        row = values[r * n:(r + 1) * n]
        bounds = np.cumsum([0] + list(sizes))
        groups = [row] + [row[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
        for g, (got_row, group) in enumerate(zip(table[r].tolist(), groups)):
            got, want = dict(zip(names, got_row)), _reference(group)
            for key in names:
                if key not in want:
                    assert math.isnan(got[key]), (backend, r, g, key)
                elif key in ("abs_mean", "rms", "l2_norm"):
                    assert got[key] == pytest.approx(want[key], rel=1e-12, abs=0), (g, key)
                else:  # quantiles and counts: exact
                    assert got[key] == want[key], (backend, r, g, key, got[key], want[key])


def _mixed(rng, n):
    """Magnitudes over the whole float32 range, with zeros of both signs and subnormals."""
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-100, 87, n))).astype(np.float32)
    x[::7] = 0.0
    x[1::7] = -0.0
    x[2::11] = TINY * rng.integers(1, 1000, x[2::11].size)
    return x


CASES = {
    "all_equal": lambda rng: np.full(12000, -0.125, np.float32),
    "many_ties": lambda rng: rng.integers(-3, 4, 12000).astype(np.float32),
    "signed_zeros": lambda rng: np.where(rng.random(12001) < 0.5, -0.0, 0.0).astype(np.float32),
    "subnormals": lambda rng: (TINY * rng.integers(-50, 50, 12000)).astype(np.float32),
    "mixed_range": lambda rng: _mixed(rng, 20000),
    "nonfinite": lambda rng: np.where(rng.random(12000) < 0.1, np.nan,
                                      np.where(rng.random(12000) < 0.05, -np.inf,
                                               rng.standard_normal(12000))).astype(np.float32),
    # keys sharing the top 16 bits (one histogram bucket) and neighbouring buckets
    "one_bucket": lambda rng: (np.float32(1.0) + np.float32(2 ** -23)
                               * rng.integers(0, 1 << 9, 12000)).astype(np.float32)
                              * np.where(rng.random(12000) < 0.5, -1, 1).astype(np.float32),
    # keys on both sides of bucket edges (multiples of 2^15 of the |x| bits)
    "bucket_edges": lambda rng: ((rng.integers(0x3F00, 0x3F10, 12000).astype(np.uint32) << 15)
                                 + rng.integers(-2, 3, 12000).astype(np.uint32)
                                 ).view(np.float32),
    "extremes": lambda rng: np.array([3.4028235e38, -3.4028235e38, TINY, -TINY, 0.0,
                                      1.0, np.inf, -np.inf] * 1500, np.float32),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_adversarial_inputs_equal_numpy_per_layer_and_global(case, backend):
    values = CASES[case](np.random.default_rng(len(case)))
    n = values.size
    sizes = [1, 15, 16, 17, SORT_MAX - 1, SORT_MAX, SORT_MAX + 1, 0]
    sizes.append(n - sum(sizes))  # a large segment (radix selection)
    _check(values, sizes, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_small_rows_equal_numpy_per_layer_and_global(case, backend):
    """Rows of at most SORT_MAX values (the paper nets' 1,130) are sorted once with all their
    layers (the kernel's small_row): three buffered rows, one of exactly SORT_MAX values."""
    values = CASES[case](np.random.default_rng(len(case) + 1))
    _check(values[:3 * 1900], [1, 15, 16, 17, 0, 600, 1251], backend, rows=3)
    _check(values[:2 * SORT_MAX], [SORT_MAX - 1000, 0, 1000], backend, rows=2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [1, 2, 16, SORT_MAX, SORT_MAX + 1, 1 << 16, (1 << 16) + 5])
def test_one_segment_sizes_around_the_boundaries(size, backend):
    rng = np.random.default_rng(size)
    _check(_mixed(rng, size), [size], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_of_buffered_steps(backend):
    rng = np.random.default_rng(7)
    values = np.concatenate([_mixed(rng, 3000) * np.float32(10.0 ** -k) for k in range(4)])
    _check(values, [1000, 0, 1700, 300], backend, rows=4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_half_and_double_precision(dtype, backend):
    if backend == "compiled" and dtype == torch.float64:
        with pytest.raises(ValueError, match="float32 input"):
            table_statistics(torch.ones(3, dtype=dtype), [3], backend="compiled")
        return
    _kernel_or_skip(backend)
    rng = np.random.default_rng(3)
    x = torch.from_numpy(_mixed(rng, 5000)).to(dtype)
    if dtype == torch.float64:  # differences below float32's resolution
        x = x * (1 + 1e-12 * torch.arange(5000, dtype=dtype))
    x[::97] = float("nan")
    table = table_statistics([x[:3000], x[3000:]], [2500, 2500], LEVELS, 1e-4, signed=True,
                             with_total=True, backend=backend)
    exact = x.double().numpy()  # fp16/bf16 upcast exactly
    names = statistic_names(LEVELS, signed=True)
    for got_row, group in zip(table[0].tolist(), [exact, exact[:2500], exact[2500:]]):
        want = _reference(group, 1e-4)
        got = dict(zip(names, got_row))
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=0) if key in (
                "abs_mean", "rms", "l2_norm") else got[key] == value, key


def _kernel_outputs(parts, sizes, rows, tkey):
    kernel = load_radix_kernel()
    if kernel is None:
        pytest.skip("the compiled kernel could not be built here")
    out = kernel.radix_table([torch.from_numpy(p) for p in parts], torch.tensor(sizes), rows,
                             torch.tensor(LEVELS, dtype=torch.float64), tkey, True, True)
    return [t.numpy() for t in out]


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_kernel_and_numpy_twin_agree_bit_for_bit(case):
    """Same counts, same order statistics and the same float64 sums (16 fixed lanes)."""
    values = CASES[case](np.random.default_rng(1))
    n = values.size
    sizes = [17, SORT_MAX + 1, 0, n - 17 - SORT_MAX - 1]
    tkey = threshold_key(THRESHOLD, torch.float32)
    cuts = [0, 5, 5, 2500, n]  # parts that cut through segments and lanes
    parts = [values[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    compiled = _kernel_outputs(parts, sizes, 1, tkey)
    twin = radix_table_numpy([values], sizes, 1, LEVELS, tkey, True, True)
    for name, a, b in zip(("counts", "sums", "abs order", "signed order"), compiled, twin):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_small_rows_and_numpy_twin_agree_bit_for_bit(case):
    """Small rows (one radix sort per row in the kernel), parts cutting through segments."""
    values = CASES[case](np.random.default_rng(2))[:3 * 1130]
    sizes = [84, 84, 0, 1, 392, 72, 497]  # 1,130 values a row, as the paper nets'
    tkey = threshold_key(THRESHOLD, torch.float32)
    cuts = [0, 5, 5, 1200, 2261, values.size]
    parts = [values[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    compiled = _kernel_outputs(parts, sizes, 3, tkey)
    twin = radix_table_numpy([values], sizes, 3, LEVELS, tkey, True, True)
    for name, a, b in zip(("counts", "sums", "abs order", "signed order"), compiled, twin):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_threshold_key_is_the_exact_comparison():
    # float32(0.1) > 0.1: the largest float32 <= 0.1 is the one below
    key = threshold_key(0.1, torch.float32)
    below = np.array(key, np.uint32).view(np.float32)
    assert float(below) <= 0.1 < float(np.nextafter(below, np.float32(1)))
    assert threshold_key(0.5, torch.float32) == int(np.array(0.5, np.float32).view(np.uint32))
    assert threshold_key(0.1, torch.float64) == int(np.array(0.1).view(np.uint64))


def test_bad_sizes_and_backend():
    with pytest.raises(ValueError, match=r"sizes \[2, 2\] must be >= 0 and sum to the 3"):
        table_statistics(torch.zeros(3), [2, 2])
    with pytest.raises(ValueError, match="backend 'gpu' is not one of"):
        table_statistics(torch.zeros(3), [3], backend="gpu")
    with pytest.raises(ValueError, match="needs CPU tensors"):
        table_statistics(torch.zeros(3, device="meta"), [3], backend="compiled")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_radix_equals_the_cpu_kernel_without_synchronising():
    """The device path (radix_torch.py) on a GPU: the same quantiles as on the CPU, and no
    synchronising CUDA call until the values are read."""
    values = _mixed(np.random.default_rng(11), 70000)
    sizes = [17, SORT_MAX + 1, 0, 70000 - 17 - SORT_MAX - 1]
    cpu = table_statistics(torch.from_numpy(values), sizes, LEVELS, THRESHOLD, signed=True,
                           with_total=True)
    x = torch.from_numpy(values).cuda()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising CUDA call raises
    try:
        gpu = table_statistics(x, sizes, LEVELS, THRESHOLD, signed=True, with_total=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    q = len(LEVELS)
    got = gpu.cpu()
    assert torch.equal(got[..., :q].nan_to_num(7.0), cpu[..., :q].nan_to_num(7.0))
    assert torch.equal(got[..., -q:].nan_to_num(7.0), cpu[..., -q:].nan_to_num(7.0))
    torch.testing.assert_close(got, cpu, rtol=1e-12, atol=0, equal_nan=True)
