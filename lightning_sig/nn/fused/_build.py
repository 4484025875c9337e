"""Build (at first use) and load the C++ kernels of :mod:`lightning_sig.nn.fused`.

The sources ship as package data next to this file; ``torch.utils.cpp_extension.load`` compiles
them with ninja into torch's extension cache (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``), outside the repository, once per source change and Python/torch
version; later processes load the cached library in well under a second. A build says so on
stderr: one line when loading has taken :data:`ANNOUNCE_AFTER_S` (it is compiling), one with the
seconds it took at the end. Needs a C++20
compiler (what torch's headers need: g++ >= 10 or clang++) and ``ninja``; the first build takes
40–80 s on this project's 2-core machine (benchmarks/bench_throughput.py times it). Without
them, :func:`load_kernels` warns once and the modules' ``backend="auto"`` uses torch.
Compiled with ``-O3 -march=native`` (the build runs on the user's machine; float results can
differ in the last bits from CPU to CPU), ``-fno-trapping-math`` (lets the compiler vectorise the
branch-free activations; no value changes) and OpenMP, so ``at::parallel_for`` splits the work
over torch's intra-op threads (``torch.set_num_threads``).
"""
from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from typing import Optional

__all__ = ["load_kernels", "kernels_available", "build_seconds", "build_error",
           "ANNOUNCE_AFTER_S"]

#: Seconds after which a first load counts as a build and is announced (a cached load: < 1 s).
ANNOUNCE_AFTER_S = 2.0

_SOURCES = ("conv3x3.cpp",)
_NAME = "lightning_sig_fused"  # + a hash of the sources' folder, see _extension_name
_lock = threading.Lock()
_state = {"module": None, "error": None, "seconds": None, "tried": False}


def _extension_name(folder: str) -> str:
    """``lightning_sig_fused_<8 hex>``: one build folder in torch's cache per source folder.

    torch caches an extension by name; two checkouts (worktrees, CI and a local clone, an
    installed copy and a repository) under one name rebuilt it each time the other loaded it
    (the build files name the sources' absolute paths), ~40 s per switch. A source change in one
    checkout still rebuilds that checkout's copy (torch compares the sources' contents)."""
    import hashlib
    return f"{_NAME}_{hashlib.sha1(os.path.realpath(folder).encode()).hexdigest()[:8]}"


def _build():
    from torch.utils.cpp_extension import load
    here = os.path.dirname(os.path.abspath(__file__))
    flags = ["-O3", "-march=native", "-fno-trapping-math", "-fopenmp"]  # see conv3x3.cpp
    return load(_extension_name(here), [os.path.join(here, s) for s in _SOURCES],
                extra_cflags=flags, extra_ldflags=["-fopenmp"], verbose=False)


def load_kernels(required: bool = False):
    """The compiled extension module, building it on the first call of the process.

    Args:
        required: raise instead of returning None when the build fails.

    Returns:
        The module (functions ``conv3x3_forward``, ``conv3x3_backward``), or None when it cannot
        be built (no compiler, no ninja, ...); then one warning names the reason, once per process.

    Raises:
        RuntimeError: ``required`` and the build failed (the compiler's message attached).
    """
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _announced_build()
            except Exception as err:  # compiler missing, ninja missing, compile error
                _state["error"] = f"{type(err).__name__}: {err}"
                warnings.warn("lightning_sig: the fused CPU kernels could not be built; using "
                              f"the torch path (backend='torch'). Reason: {_state['error'][:500]}",
                              RuntimeWarning, stacklevel=2)
    if _state["module"] is None and required:
        raise RuntimeError(f"backend='fused' needs the C++ kernels, which could not be built "
                           f"(needs a C++20 compiler and ninja): {_state['error']}")
    return _state["module"]


def _say(message: str) -> None:
    print(f"lightning_sig: {message}", file=sys.stderr, flush=True)


def _announced_build() -> None:
    """``_build()`` into ``_state``, timed; a load still running after ANNOUNCE_AFTER_S is a
    compilation: say so then, and say how long it took at the end."""
    announced = threading.Event()

    def announce() -> None:
        announced.set()
        cache = os.environ.get("TORCH_EXTENSIONS_DIR", "~/.cache/torch_extensions")
        _say("compiling the fused C++ CPU kernels (first use with this torch and these sources; "
             f"30-80 s; cached in {cache}) ...")

    timer = threading.Timer(ANNOUNCE_AFTER_S, announce)
    timer.daemon = True
    start = time.perf_counter()
    timer.start()
    try:
        _state["module"] = _build()
    finally:
        timer.cancel()
        _state["seconds"] = time.perf_counter() - start
        if announced.is_set():
            outcome = "compiled in" if _state["module"] is not None else "build failed after"
            _say(f"fused C++ CPU kernels {outcome} {_state['seconds']:.1f} s")


def kernels_available() -> bool:
    """True when the kernels are (or can now be) built and loaded in this process."""
    return load_kernels() is not None


def build_seconds() -> Optional[float]:
    """Seconds the first :func:`load_kernels` call of this process took (build or cache load)."""
    return _state["seconds"]


def build_error() -> Optional[str]:
    """Why the build failed, or None."""
    return _state["error"]
