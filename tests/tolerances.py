"""Float tolerances for the numerics tests, derived from the computation, not from one CPU.

Why: the same float32 computation rounds differently on different x86 CPUs. ATen picks its
vectorised kernels by ISA (``ATEN_CPU_CAPABILITY=avx512|avx2|default``) and oneDNN picks its
convolution blocking by CPU, so the summation order of every reduction (dot products in conv /
linear, ``sum``, norms) changes between an AVX-512 Xeon and an AVX2 EPYC. Two implementations that
agree to the last bit on one machine can differ by a few ulps on another.

The rule used by :func:`assert_close_scaled`. A float sum of n terms t_i computed in two
different orders differs by at most ~n·eps·Σ|t_i| (worst case) and typically ~√n·eps·Σ|t_i|
(rounding errors of random sign), where eps is the machine epsilon of the dtype (float32:
2⁻²³ ≈ 1.19e-7, float64: 2⁻⁵² ≈ 2.2e-16). The error of a coordinate therefore scales with the
*magnitude of the terms that were summed*, not with the coordinate itself: a gradient entry that is
a near-zero sum of large terms (cancellation) carries an absolute error of the size of its terms,
i.e. a large relative error. A bare ``atol=1e-7`` on such an entry is a claim about the CPU, not
about the maths. So every comparison is

    |actual − expected| ≤ ulps·eps·(|expected| + scale)            (elementwise)

with ``scale`` the magnitude of the summed terms; by default ``max|expected|`` of the compared
tensor, a lower bound on that magnitude for linear maps whose outputs are of the size of their
terms (a caller that knows a better bound, e.g. the magnitude of a whole gradient, passes it).
``ulps`` is the caller's count of how many eps the computation may accumulate: roughly
(number of chained layers or rounding stages) × (a few · √(terms per reduction)); each call site
says how it got its number. A real bug (a wrong α, a missing r·θ, a wrong member) shows up as an
error of order 1 relative to the tensor, i.e. ~10⁶–10⁷ float32 ulps, far above any of these bounds.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Union

import numpy as np
import torch

__all__ = ["EPS32", "EPS64", "assert_close_scaled", "reduction_ulps"]

EPS32 = float(torch.finfo(torch.float32).eps)  # 2**-23 ≈ 1.19e-7
EPS64 = float(torch.finfo(torch.float64).eps)  # 2**-52 ≈ 2.22e-16

ArrayLike = Union[torch.Tensor, np.ndarray, float]


def reduction_ulps(n_terms: int, stages: int = 1, safety: float = 4.0) -> float:
    """ulps for ``stages`` chained reductions of ``n_terms`` terms each, in two summation orders.

    ``safety·√n_terms`` per stage (random-sign rounding, ``safety`` standard deviations) times the
    number of stages (errors of chained layers add up, each passed on with a factor of order 1 by
    the tanh-type activations, whose slopes are ≤ 1). Always at least 1 ulp per stage.
    """
    if n_terms < 1 or stages < 1:
        raise ValueError(f"n_terms and stages must be >= 1, got n_terms={n_terms}, "
                         f"stages={stages}")
    return stages * max(1.0, safety * math.sqrt(n_terms))


def assert_close_scaled(actual: ArrayLike, expected: ArrayLike, *, ulps: float,
                        scale: Optional[float] = None, eps: Optional[float] = None,
                        msg: str = "") -> None:
    """Assert ``|actual − expected| ≤ ulps·eps·(|expected| + scale)`` elementwise (module docstring).

    Args:
        actual, expected: tensors / arrays / floats of the same shape; NaNs must match.
        ulps: how many eps the computation may accumulate (justify it at the call site).
        scale: magnitude of the summed terms; default ``max|expected|`` (0 for an all-zero tensor).
        eps: machine epsilon; default that of the coarser dtype of the two (float32 → 1.19e-7;
            Python floats and float64 → 2.2e-16).
        msg: prefix for the failure message (e.g. the parameter's name).

    Raises:
        AssertionError: with the worst coordinate, its error in ulps of the scale, and the bound.
    """
    actual_t, expected_t = _as_tensor(actual), _as_tensor(expected)
    if eps is None:  # the coarser of the two dtypes (a float32 result against a float64 reference)
        eps = max(float(torch.finfo(t.dtype).eps) if t.is_floating_point() else EPS64
                  for t in (actual_t, expected_t))
    if scale is None:
        finite = expected_t[torch.isfinite(expected_t)]
        scale = float(finite.abs().max()) if finite.numel() else 0.0
    atol, rtol = ulps * eps * scale, ulps * eps

    used = _used_ulps(actual_t, expected_t, eps, scale)

    def _message(default: str) -> str:
        return (f"{msg + ': ' if msg else ''}{default}\n[assert_close_scaled] max error = "
                f"{used:.1f} ulps of scale {scale:.3g} (eps {eps:.3g}); allowed {ulps:g} ulps: "
                f"atol {atol:.3g}, rtol {rtol:.3g}")

    _log(msg, used, ulps)
    torch.testing.assert_close(actual_t, expected_t, rtol=rtol, atol=atol, equal_nan=True,
                               check_dtype=False, msg=_message)


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    """Tensors as they are; Python numbers and lists as float64 (never rounded to float32)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    array = np.asarray(x)
    return torch.from_numpy(array.astype(np.float64) if array.dtype.kind in "fiub" else array)


def _used_ulps(actual: torch.Tensor, expected: torch.Tensor, eps: float, scale: float) -> float:
    """max |actual − expected| / (eps·(|expected| + scale)): the ulps this comparison needed."""
    if actual.shape != expected.shape:
        return float("nan")  # assert_close reports the shape mismatch
    err = (actual.double() - expected.double()).abs()
    bound = eps * (expected.double().abs() + scale)
    ratio = torch.where(err == 0, torch.zeros_like(err), err / bound).nan_to_num(0.0)
    return float(ratio.max()) if ratio.numel() else 0.0


def _log(msg: str, used: float, ulps: float) -> None:
    """With LIGHTNING_SIG_TOLERANCE_LOG=FILE set, append "test, msg, used ulps, allowed ulps" to
    FILE (tab-separated): how the margins of the bounds are measured on each CPU / ISA."""
    path = os.environ.get("LIGHTNING_SIG_TOLERANCE_LOG")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        isa = os.environ.get("ATEN_CPU_CAPABILITY", "native")
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{isa}\t{test}\t{msg}\t{used:.2f}\t{ulps:g}\n")
