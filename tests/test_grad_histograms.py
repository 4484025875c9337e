"""Batched log10|g| histograms equal TensorBoard's own binning (make_histogram) per layer."""
import math

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import make_histogram

from lightning_sig.gradients.histograms import histogram_support, segment_log10_histograms
from lightning_sig.gradients.histograms import log10_abs_for_histogram

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY


def _tensorflow_limits(directory) -> np.ndarray:
    """TensorBoard's default buckets, from the writer that the callback uses."""
    writer = SummaryWriter(str(directory))
    writer.close()
    return np.asarray(writer.default_bins)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_equals_make_histogram_per_segment_and_total(dtype, tmp_path):
    g = torch.Generator().manual_seed(0)
    sizes = [81, 3, 0, 384, 8, 5, 64]
    n = sum(sizes)
    x = torch.randn(n, generator=g, dtype=torch.float64) * torch.logspace(-30, 2, n,
                                                                          dtype=torch.float64)
    x[5], x[6] = 0.0, -0.0  # zeros go to the floor bucket
    x[100], x[101] = math.nan, -math.inf  # left out
    x[84 + 384 + 8:84 + 384 + 8 + 5] = math.nan  # a segment with nothing finite
    x = x.to(dtype)
    limits = _tensorflow_limits(tmp_path)
    out = segment_log10_histograms(x, sizes, limits)
    bounds = np.cumsum([0] + sizes)
    references = [x] + [x[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    assert len(out) == len(references)
    for got, ref in zip(out, references):
        values = log10_abs_for_histogram(ref)
        if values.numel() == 0:  # the empty segment and the all-NaN one
            assert got is None
            continue
        want = make_histogram(values.numpy().astype(float), limits.tolist())
        assert got["bucket_counts"] == list(want.bucket)
        assert got["bucket_limits"] == list(want.bucket_limit)
        assert (got["min"], got["max"], got["num"]) == (want.min, want.max, want.num)
        assert got["sum"] == pytest.approx(want.sum, rel=1e-12)
        assert got["sum_squares"] == pytest.approx(want.sum_squares, rel=1e-12)
    assert sum(h is None for h in out) == 2


def test_without_total_and_hand_counts():
    # |g| = 1e-2, 1e-2, 10 → log10 = -2, -2, 1; edges [-3, -1, 0, 2]: buckets [2, 0, 1]
    out = segment_log10_histograms(torch.tensor([0.01, -0.01, 10.0]), [3],
                                   np.array([-3.0, -1.0, 0.0, 2.0]), with_total=False)
    assert len(out) == 1
    h = out[0]
    assert (h["num"], h["min"], h["max"]) == (3, -2.0, 1.0)
    assert h["sum"] == pytest.approx(-3.0) and h["sum_squares"] == pytest.approx(9.0)
    # TensorBoard keeps one empty bucket left of the first non-empty one (here: a leading 0)
    assert h["bucket_counts"] == [0, 2, 0, 1] and h["bucket_limits"] == [-3.0, -1.0, 0.0, 2.0]


def test_histogram_support_hand_made():
    start, end = histogram_support(np.array([[0, 0, 3, 0, 1, 0], [5, 0, 0, 0, 0, 2]]))
    assert start.tolist() == [2, 0] and end.tolist() == [5, 6]


def test_compiled_and_numpy_paths_agree(tmp_path, monkeypatch):
    """The compiled binning (log10_histogram.cpp) and the numpy fallback: the same buckets,
    counts, min and max; sums up to summation order."""
    from lightning_sig.gradients import histograms
    if histograms.load_radix_kernel() is None:
        pytest.skip("the compiled kernel could not be built here")
    g = torch.Generator().manual_seed(4)
    sizes = [5000, 0, 3, 20000]
    x = torch.randn(sum(sizes), generator=g) * torch.logspace(-40, 5, sum(sizes))
    x[::7] = 0.0
    x[10:20] = torch.tensor([math.nan, math.inf, -math.inf] * 3 + [0.0])
    limits = _tensorflow_limits(tmp_path)
    compiled = segment_log10_histograms(x, sizes, limits)
    monkeypatch.setattr(histograms, "load_radix_kernel", lambda: None)
    fallback = segment_log10_histograms(x, sizes, limits)
    assert [h is None for h in compiled] == [h is None for h in fallback] == [
        False, False, True, False, False]
    for a, b in zip(compiled, fallback):
        if a is None:
            continue
        for key in ("bucket_counts", "bucket_limits", "min", "max", "num"):
            assert a[key] == b[key], key
        assert a["sum"] == pytest.approx(b["sum"], rel=1e-12)
        assert a["sum_squares"] == pytest.approx(b["sum_squares"], rel=1e-12)
