"""Build (at first use) and load the compiled statistics kernels: ``radix_kernel.cpp`` (the
engine's selection and moments), ``log10_histogram.cpp`` (the TensorBoard histograms),
``row_copy.cpp`` (the callback's per-step copies into its buffer rows), ``saturation_sums.cpp``
(the SaturationMonitor's sums from the fused kernels' outputs) and their bindings
``kernel_bindings.cpp``.

As :mod:`lightning_sig.nn.fused._build`: ``torch.utils.cpp_extension.load`` compiles the
package-data source with ninja into torch's extension cache (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) once per source change and Python/torch version, in about 30 s
here; later processes load the cached library in well under a second. Flags: ``-O3
-march=native`` (the build runs on the user's machine) and ``-ffp-contract=off`` (no fused
multiply-adds: the float64 sums are the same on every CPU and equal to the numpy twin's). When
the build fails (no C++ compiler, no ninja), :func:`load_radix_kernel` warns once and the engine
uses its numpy twin, which gives the same values, slower. ``LIGHTNING_SIG_RADIX=numpy`` in the
environment skips the kernel (a process-wide switch read once, for comparisons).
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Optional

__all__ = ["load_radix_kernel", "radix_build_error"]

_NAME = "lightning_sig_radix"
_SOURCES = ("radix_kernel.cpp", "log10_histogram.cpp", "row_copy.cpp", "saturation_sums.cpp",
            "kernel_bindings.cpp")
_lock = threading.Lock()
_state: dict = {"module": None, "error": None, "tried": False}


def _build() -> Any:
    from torch.utils.cpp_extension import load
    here = os.path.dirname(os.path.abspath(__file__))
    sources = [os.path.join(here, name) for name in _SOURCES]
    return load(_NAME, sources, extra_cflags=["-O3", "-march=native", "-ffp-contract=off"],
                verbose=False)


def load_radix_kernel() -> Optional[Any]:
    """The compiled module (``radix_table``, ``log10_histograms``), built on the first call of
    the process;
    None when it cannot be built or ``LIGHTNING_SIG_RADIX=numpy`` (one warning on failure)."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            if os.environ.get("LIGHTNING_SIG_RADIX", "") == "numpy":
                _state["error"] = "LIGHTNING_SIG_RADIX=numpy"
                return None
            try:
                _state["module"] = _build()
            except Exception as err:  # compiler or ninja missing, compile error
                _state["error"] = f"{type(err).__name__}: {err}"
                warnings.warn("lightning_sig: the compiled gradient-statistics kernel could not "
                              "be built; using its numpy twin (same values, slower). Reason: "
                              f"{_state['error'][:500]}", RuntimeWarning, stacklevel=2)
    return _state["module"]


def radix_build_error() -> Optional[str]:
    """Why the kernel is not used (None when it is, or before the first load)."""
    return _state["error"]
