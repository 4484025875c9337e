"""segment_statistics equals numpy per segment (and grad_stats.gradient_statistics)."""
import math

import numpy as np
import pytest
import torch

from lightning_sig.gradients.stats import layer_statistics as segment_statistics
from lightning_sig.gradients.stats import gradient_statistics, statistic_names

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def _numpy_row(seg: np.ndarray, threshold: float) -> dict:
    finite = seg[np.isfinite(seg)].astype(np.float64)
    a = np.abs(finite)
    row = {"nonfinite_count": seg.size - finite.size, "numel": seg.size}
    if finite.size == 0:
        return row
    row.update({f"abs_q{p}": v for p, v in zip(["0", "10", "25", "50", "75", "90", "100"],
                                                np.quantile(a, LEVELS))})
    row.update({f"q{p}": v for p, v in zip(["0", "10", "25", "50", "75", "90", "100"],
                                           np.quantile(finite, LEVELS))})
    row.update(abs_mean=a.mean(), rms=math.sqrt((a**2).mean()), l2_norm=math.sqrt((a**2).sum()),
               vanishing_frac=(a <= threshold).mean())
    return row


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_matches_numpy_per_segment(dtype, backend):
    g = torch.Generator().manual_seed(0)
    sizes = [84, 84, 1, 392, 0, 64, 7, 80]
    scales = [1e-9, 1e-3, 1.0, 10.0, 1.0, 1e-6, 3.0, 0.1]
    parts = [torch.randn(s, generator=g, dtype=torch.float64) * c for s, c in zip(sizes, scales)]
    parts[3][5] = 0.0
    parts[5][:10] = float("nan")
    parts[5][10] = float("-inf")
    values = torch.cat(parts).to(dtype)
    out = segment_statistics(values, sizes, LEVELS, 1e-8, signed=True, backend=backend)
    names = statistic_names(LEVELS, signed=True)
    assert out.shape == (len(sizes), len(names)) and out.dtype == torch.float64
    offset = 0
    for i, size in enumerate(sizes):
        seg = values[offset:offset + size].double().numpy()  # exact upcast of the input values
        offset += size
        want = _numpy_row(seg, 1e-8)
        got = dict(zip(names, out[i].tolist()))
        for key in names:
            if key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=0, err_msg=key)
            else:
                assert math.isnan(got[key]), key
        ref = gradient_statistics(values[offset - size:offset], LEVELS, 1e-8, signed=True)
        for key in names:
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-12, atol=0, equal_nan=True)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_hand_computed_segments(backend):
    values = torch.tensor([0.0, -1.0, 2.0, -3.0, 4.0, 5.0, -5.0])
    out = segment_statistics(values, [5, 2], (0, 0.25, 0.5, 0.75, 1), 0.5, backend=backend)
    names = statistic_names((0, 0.25, 0.5, 0.75, 1))
    first, second = dict(zip(names, out[0].tolist())), dict(zip(names, out[1].tolist()))
    assert [first[f"abs_q{p}"] for p in (0, 25, 50, 75, 100)] == [0, 1, 2, 3, 4]
    assert first["abs_mean"] == 2.0 and first["rms"] == pytest.approx(math.sqrt(6))
    assert first["l2_norm"] == pytest.approx(math.sqrt(30)) and first["vanishing_frac"] == 0.2
    assert [second[f"abs_q{p}"] for p in (0, 25, 50, 75, 100)] == [5.0] * 5
    assert (second["numel"], second["nonfinite_count"], second["vanishing_frac"]) == (2, 0, 0)


def test_bad_sizes_and_levels():
    with pytest.raises(ValueError, match=r"sizes \[2, 2\] must be >= 0 and sum to the 3 values"):
        segment_statistics(torch.zeros(3), [2, 2], (0.5,), 0.0)
    with pytest.raises(ValueError, match="1.5"):
        segment_statistics(torch.zeros(3), [3], (1.5,), 0.0)
    with pytest.raises(ValueError, match="backend 'gpu' is not one of"):
        segment_statistics(torch.zeros(3), [3], (0.5,), 0.0, backend="gpu")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("signed", [False, True])
def test_with_total_prepends_the_whole_vector(backend, signed):
    g = torch.Generator().manual_seed(3)
    sizes = [7, 0, 30, 1, 12]
    values = torch.randn(sum(sizes), generator=g) * 1e-4
    values[3] = float("nan")
    out = segment_statistics(values, sizes, LEVELS, 1e-5, signed=signed, backend=backend,
                             with_total=True)
    whole = segment_statistics(values, [sum(sizes)], LEVELS, 1e-5, signed=signed, backend=backend)
    parts = segment_statistics(values, sizes, LEVELS, 1e-5, signed=signed, backend=backend)
    assert out.shape == (1 + len(sizes), parts.shape[1])
    torch.testing.assert_close(out[:1], whole, rtol=1e-12, atol=0, equal_nan=True)
    torch.testing.assert_close(out[1:], parts, rtol=1e-12, atol=0, equal_nan=True)
