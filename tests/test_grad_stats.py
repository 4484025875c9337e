"""Tests of lightning_sig.gradients.stats against numpy float64 references and hand-computed values.

Quantiles must equal ``numpy.quantile`` (method "linear") bit for bit: both pick the same order
statistics and interpolate with the same float64 formula. Moments are compared with rtol 1e-12:
float64 accumulation over <= 2^24 terms errs by far less, while float32 accumulation (~1e-7)
would fail, so the tolerance checks the float64 claim.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_sig.gradients.stats import (
    DEFAULT_VANISHING_THRESHOLD, batched_gradient_statistics,
    check_quantile_levels, check_vanishing_threshold, gradient_statistics,
    gradient_statistics_tensor, quantile_key, statistic_names)
from lightning_sig.gradients.histograms import HISTOGRAM_FLOOR_LOG10, log10_abs_for_histogram
from tests.tolerances import assert_close_scaled

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

BACKENDS = ("numpy", "torch")
LEVELS = (0.0, 0.1, 0.125, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0)
MOMENTS = ("abs_mean", "rms", "l2_norm")


def reference(values: np.ndarray, levels=LEVELS, threshold=DEFAULT_VANISHING_THRESHOLD,
              signed=True) -> dict[str, float]:
    """The statistics computed directly with numpy in float64 over the finite coordinates."""
    v = np.asarray(values, dtype=np.float64).ravel()
    fin = v[np.isfinite(v)]
    a = np.abs(fin)
    ref = {quantile_key(q): float(np.quantile(a, q)) for q in levels}
    ref.update(abs_mean=a.mean(), rms=np.sqrt(np.mean(a ** 2)), l2_norm=np.sqrt(np.sum(a ** 2)),
               vanishing_frac=np.mean(a <= threshold), nonfinite_count=float(v.size - fin.size),
               numel=float(v.size))
    if signed:
        ref.update({quantile_key(q, "q"): float(np.quantile(fin, q)) for q in levels})
    return {k: float(x) for k, x in ref.items()}


def assert_matches(got: dict[str, float], ref: dict[str, float]) -> None:
    assert list(got) == list(ref)
    for key, value in ref.items():
        if key in MOMENTS:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=0.0), key
        else:  # quantiles, vanishing_frac (a ratio of exact counts), counts: exact
            assert got[key] == value, (key, got[key], value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_made_vector(backend):
    got = gradient_statistics(torch.tensor([0.0, -1.0, 2.0, -3.0, 4.0]), signed=True,
                              backend=backend)
    assert got == pytest.approx({
        "abs_q0": 0.0, "abs_q25": 1.0, "abs_q50": 2.0, "abs_q75": 3.0, "abs_q100": 4.0,
        "abs_mean": 2.0, "rms": math.sqrt(6.0), "l2_norm": math.sqrt(30.0),
        "vanishing_frac": 0.2, "nonfinite_count": 0.0, "numel": 5.0,
        "q0": -3.0, "q25": -1.0, "q50": 0.0, "q75": 2.0, "q100": 4.0}, rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_interpolation_and_non_integer_levels(backend):
    # sorted |g| = 1, 2, 3, 4: level q sits at virtual index 3q between neighbours.
    got = gradient_statistics(torch.tensor([[4.0, -1.0], [3.0, -2.0]]), (0.125, 0.25, 0.5, 1 / 3),
                              vanishing_threshold=2.0, backend=backend)
    assert got["abs_q12.5"] == 1.375 and got["abs_q25"] == 1.75 and got["abs_q50"] == 2.5
    assert got["abs_q33.333333333"] == pytest.approx(2.0, rel=1e-15)
    assert got["vanishing_frac"] == 0.5  # |g| <= t includes t itself


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [1, 2, 7, 1000, 100_003])
def test_random_vectors_match_numpy(backend, size):
    g = torch.from_numpy(np.random.default_rng(size).standard_normal(size) * 1e-6).float()
    got = gradient_statistics(g, LEVELS, 5e-7, signed=True, backend=backend)
    assert_matches(got, reference(g.numpy(), threshold=5e-7))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequence_of_tensors_is_their_concatenation(backend):
    gen = torch.Generator().manual_seed(0)
    parts = [torch.randn(3, 4, generator=gen).t(), torch.randn(5, generator=gen),
             torch.randn(0), torch.randn(2, 2, generator=gen, dtype=torch.float16)]
    flat = torch.cat([p.float().reshape(-1) for p in parts])
    got = gradient_statistics(parts, LEVELS, 0.3, signed=True, backend=backend)
    assert_matches(got, reference(flat.numpy(), threshold=0.3))


def test_float64_input_keeps_float64():
    g = 1.0 + torch.arange(11, dtype=torch.float64) * 1e-12  # differences invisible in float32
    got = gradient_statistics(g, LEVELS, signed=True)
    assert_matches(got, reference(g.numpy()))
    assert got["abs_q50"] == 1.0 + 5e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast_exactly(backend, dtype):
    g = (torch.randn(4097, generator=torch.Generator().manual_seed(1)) * 1e-3).to(dtype)
    with pytest.raises(RuntimeError, match="float or double"):
        torch.quantile(g, 0.5)  # why the upcast is needed
    got = gradient_statistics(g, LEVELS, 1e-4, signed=True, backend=backend)
    assert_matches(got, reference(g.float().numpy(), threshold=1e-4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_coordinates_are_counted_and_excluded(backend):
    g = torch.randn(1001, generator=torch.Generator().manual_seed(2))
    g[[3, 500, 999]] = torch.tensor([math.nan, math.inf, -math.inf])
    before = g.clone()
    got = gradient_statistics(g, LEVELS, 0.01, signed=True, backend=backend)
    assert_matches(got, reference(g.numpy(), threshold=0.01))
    assert got["nonfinite_count"] == 3.0 and got["numel"] == 1001.0
    assert torch.equal(g.nan_to_num(), before.nan_to_num())  # input left untouched


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("values, nonfinite", [([math.nan] * 4, 4.0), ([math.inf, -math.inf], 2.0),
                                               ([], 0.0)])
def test_no_finite_coordinate_gives_nan_statistics(backend, values, nonfinite):
    got = gradient_statistics(torch.tensor(values), signed=True, backend=backend)
    assert got.pop("nonfinite_count") == nonfinite and got.pop("numel") == len(values)
    assert len(got) == 14 and all(math.isnan(v) for v in got.values())


def test_empty_sequence_gives_nan_statistics():
    got = gradient_statistics([])
    assert got["numel"] == 0.0 and math.isnan(got["abs_q50"]) and math.isnan(got["rms"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_compared_exactly_not_in_float32(backend):
    # float32(0.1) = 0.100000001490116... > 0.1: not vanished, although float32(0.1) <= float32(0.1).
    got = gradient_statistics(torch.tensor([0.1, 0.05, 0.2]), vanishing_threshold=0.1,
                              backend=backend)
    assert got["vanishing_frac"] == pytest.approx(1 / 3, rel=1e-15)


@pytest.fixture(scope="module")
def big_gradient():
    """2^24 + 3 float32 coordinates and its numpy reference (computed once for both backends)."""
    g = torch.randn(2 ** 24 + 3, generator=torch.Generator().manual_seed(3))
    return g, reference(g.numpy(), BIG_LEVELS, threshold=0.5, signed=False)


BIG_LEVELS = (0.0, 0.3, 0.5, 0.999999, 1.0)  # 0.3, 0.999999: interpolated between neighbours


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_than_2_pow_24_coordinates_exact(backend, big_gradient):
    g, ref = big_gradient
    assert_matches(gradient_statistics(g, BIG_LEVELS, 0.5, backend=backend), ref)


def test_torch_backend_never_synchronises():
    # Meta tensors hold no data: any host read (.item(), .tolist(), data-dependent shapes) fails.
    out = gradient_statistics_tensor(torch.empty(10, 3, device="meta"), LEVELS, signed=True,
                                     backend="torch")
    assert out.device.type == "meta" and out.shape == (len(LEVELS) * 2 + 6,)
    assert out.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_numpy_without_synchronising():
    g = torch.randn(100_003, generator=torch.Generator().manual_seed(5))
    g[7] = math.nan
    torch.cuda.set_sync_debug_mode("error")  # any synchronising CUDA call raises
    try:
        out = gradient_statistics_tensor(g.cuda(), LEVELS, 0.5, signed=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    got = dict(zip(statistic_names(LEVELS, signed=True), out.tolist()))
    assert_matches(got, reference(g.numpy(), threshold=0.5))


def test_batched_equals_single_calls():
    gen = torch.Generator().manual_seed(4)
    w, b = torch.randn(20, 5, generator=gen), torch.randn(20, generator=gen)
    b[0] = math.nan
    groups = {"global": [w, b], "layer.weight": w, "layer.bias": [b]}
    got = batched_gradient_statistics(groups, LEVELS, 0.1, signed=True)
    assert list(got) == list(groups)
    for name, grads in groups.items():
        assert got[name] == gradient_statistics(grads, LEVELS, 0.1, signed=True)
    assert batched_gradient_statistics({}) == {}


def test_statistic_names_layout():
    assert statistic_names() == ["abs_q0", "abs_q25", "abs_q50", "abs_q75", "abs_q100",
                                 "abs_mean", "rms", "l2_norm", "vanishing_frac",
                                 "nonfinite_count", "numel"]
    assert statistic_names((0.001, 0.5), signed=True)[-2:] == ["q0.1", "q50"]
    assert gradient_statistics_tensor(torch.ones(3), (0.5,), signed=True).shape == (8,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_levels_gives_moments_only(backend):
    got = gradient_statistics(torch.tensor([3.0, -4.0]), (), signed=True, backend=backend)
    assert got == {"abs_mean": 3.5, "rms": math.sqrt(12.5), "l2_norm": 5.0,
                   "vanishing_frac": 0.0, "nonfinite_count": 0.0, "numel": 2.0}


def test_histogram_values():
    g = torch.tensor([0.0, -1.0, 100.0, math.nan, math.inf, 1e-3], dtype=torch.float64)
    got = log10_abs_for_histogram(g)
    assert got.dtype == torch.float32
    expected = [HISTOGRAM_FLOOR_LOG10, 0.0, 2.0, -3.0]
    # float32 results: one log10 (≤ 1 ulp) and one cast (½ ulp) of each value, relative to the
    # value (the floor, ≈ −37.9, has an ulp of 3.8e-6: a bare abs 1e-6 was below it); scale 1
    # covers log10(1) = 0
    assert_close_scaled(got, expected, ulps=2, scale=1.0, msg="log10 |g|")
    assert HISTOGRAM_FLOOR_LOG10 == pytest.approx(math.log10(1.1754943508222875e-38), rel=1e-15)
    assert log10_abs_for_histogram(g, floor=None).tolist() == pytest.approx([0.0, 2.0, -3.0])
    assert log10_abs_for_histogram([g[:1].half(), g[1:3].float()], floor=-5.0).tolist() == [
        -5.0, 0.0, 2.0]


def test_histogram_of_nothing_is_empty():
    assert log10_abs_for_histogram(torch.tensor([math.nan, -math.inf])).numel() == 0
    assert log10_abs_for_histogram(torch.zeros(3), floor=None).numel() == 0
    assert log10_abs_for_histogram([]).numel() == 0


@pytest.mark.parametrize("levels, bad", [((0.5, 1.5), "1.5"), ((-0.1,), "-0.1"),
                                         ((math.nan,), "nan"), (("a",), "'a'"),
                                         ((True,), "True"), ((0.5, 0.5), "repeat"),
                                         ("0.5", "'0.5'"), (0.5, "0.5")])
def test_bad_quantile_levels_raise(levels, bad):
    with pytest.raises(ValueError, match=bad):
        check_quantile_levels(levels)
    with pytest.raises(ValueError, match=bad):
        gradient_statistics(torch.ones(3), levels)


@pytest.mark.parametrize("threshold, bad", [(-1e-9, "-1e-09"), (math.nan, "nan"),
                                            (math.inf, "inf"), ("1", "'1'")])
def test_bad_threshold_raises(threshold, bad):
    with pytest.raises(ValueError, match=f"vanishing_threshold {bad}"):
        check_vanishing_threshold(threshold)
    with pytest.raises(ValueError, match=bad):
        gradient_statistics(torch.ones(3), vanishing_threshold=threshold)
    assert check_vanishing_threshold(0) == 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="torch.int64"):
        gradient_statistics(torch.arange(3))
    with pytest.raises(ValueError, match="list"):
        gradient_statistics([[1.0, 2.0]])
    with pytest.raises(ValueError, match="'gpu'.*'auto', 'numpy', 'torch'"):
        gradient_statistics(torch.ones(3), backend="gpu")
    with pytest.raises(ValueError, match="meta"):
        gradient_statistics(torch.ones(3, device="meta"), backend="numpy")
    with pytest.raises(ValueError, match="one device"):
        gradient_statistics([torch.ones(3), torch.ones(3, device="meta")])
    with pytest.raises(ValueError, match="floor inf"):
        log10_abs_for_histogram(torch.ones(3), floor=math.inf)
