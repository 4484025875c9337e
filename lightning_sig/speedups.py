"""The process-wide speed-ups, explicit: :func:`enable_speedups` turns them on and reports,
:func:`disable_speedups` restores what was there. Nothing else in lightning_sig switches them:
building a model, an optimizer or a callback changes no global state. ``python train.py`` (our
LightningCLI) calls :func:`enable_speedups` and prints the report; in your own script call it
once, e.g. ``lightning_sig.enable_speedups()``. Both give the same results, only faster.

``event_crc``
    Without TensorFlow installed, TensorBoard (and so torch's ``SummaryWriter`` and Lightning's
    ``TensorBoardLogger``) checksums every record of an event file with a pure-Python CRC-32C:
    measured here, 600 µs for the 5 KB record of one step of the GradientQuantileCallback's ~160
    scalars, in the writer's background thread, holding the GIL against the training loop (a
    known problem: lanpa/tensorboardX#428, which switched to a C library). This points
    TensorBoard's record writer at the C CRC-32C of ``google-crc32c`` (0.5 µs for the same
    record). The files are byte-for-byte the same: the switch is refused (with a warning)
    unless both checksums agree on a probe. Affects every TensorBoard writer of the process.
``nvml_check``
    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``. Then every
    ``Optimizer.step()`` of a CUDA build of torch asks NVML for the device count; without NVML
    (a CPU machine) the failing ``dlopen`` is retried at every call (measured: +0.12–0.22 ms
    per Adam step here) and torch falls back to the call it makes once the variable is unset.
    This unsets the variable only where NVML cannot be loaded.
"""
from __future__ import annotations

import ctypes
import functools
import os
import warnings
from typing import Any, Dict, Optional

from lightning_sig._compat import tensorboard_record_writer

__all__ = ["enable_speedups", "disable_speedups", "speedup_report", "use_fast_event_crc",
           "restore_event_crc", "event_crc_is_slow", "fast_masked_crc32c",
           "skip_failing_nvml_check", "restore_nvml_check"]

_MASK_DELTA = 0xA282EAD8  # TFRecord's checksum mask (tensorflow/core/lib/hash/crc32c.h)
_NVML_VARIABLE = "PYTORCH_NVML_BASED_CUDA_CHECK"
_saved: Dict[str, Any] = {}  # what each speed-up replaced, for disable_speedups


def fast_masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data`` (an unsigned 32-bit int), computed in C.

    Raises:
        ImportError: ``google-crc32c`` is not installed.
    """
    import google_crc32c

    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def use_fast_event_crc() -> bool:
    """Make TensorBoard's event writer checksum records with :func:`fast_masked_crc32c`.

    Idempotent. Returns True when the C checksum is in use, False (TensorBoard left as it was)
    when ``google-crc32c`` is missing or only has its pure-Python fallback, or when the two
    checksums disagree on a probe (then also warns). :func:`restore_event_crc` undoes it.
    """
    if not _c_crc32c_installed():
        return False
    record_writer = tensorboard_record_writer()
    if record_writer.masked_crc32c is fast_masked_crc32c:
        return True
    probe = bytes(range(256)) * 5 + b"lightning_sig"
    if fast_masked_crc32c(probe) != record_writer.masked_crc32c(probe):
        warnings.warn("google-crc32c disagrees with TensorBoard's CRC-32C; keeping TensorBoard's "
                      "own (slower) checksum.", RuntimeWarning)
        return False
    _saved["event_crc"] = record_writer.masked_crc32c
    record_writer.masked_crc32c = fast_masked_crc32c
    return True


def event_crc_is_slow() -> bool:
    """Whether TensorBoard checksums event records with its pure-Python CRC-32C although the C
    one of ``google-crc32c`` is installed, i.e. whether :func:`use_fast_event_crc` would speed
    up every TensorBoard writer of the process (False without ``google-crc32c``'s C build)."""
    return _c_crc32c_installed() and \
        tensorboard_record_writer().masked_crc32c is not fast_masked_crc32c


def _c_crc32c_installed() -> bool:
    """Whether ``google-crc32c`` is installed with its C implementation (not the pure-Python
    fallback)."""
    try:
        import google_crc32c
    except ImportError:
        return False
    return getattr(google_crc32c, "implementation", "c") == "c"


def restore_event_crc() -> bool:
    """Give TensorBoard back the checksum :func:`use_fast_event_crc` replaced; True if it did."""
    original = _saved.pop("event_crc", None)
    if original is None:
        return False
    tensorboard_record_writer().masked_crc32c = original
    return True


@functools.lru_cache(maxsize=None)
def _nvml_loadable() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the library torch.cuda's NVML check opens
        return True
    except OSError:
        return False


def skip_failing_nvml_check() -> bool:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` when NVML cannot be loaded; True if unset.
    :func:`restore_nvml_check` sets it back."""
    if os.environ.get(_NVML_VARIABLE) == "1" and not _nvml_loadable():
        del os.environ[_NVML_VARIABLE]
        _saved["nvml_check"] = "1"
        return True
    return False


def restore_nvml_check() -> bool:
    """Set ``PYTORCH_NVML_BASED_CUDA_CHECK`` back if :func:`skip_failing_nvml_check` unset it."""
    value = _saved.pop("nvml_check", None)
    if value is None:
        return False
    os.environ[_NVML_VARIABLE] = value
    return True


_SPEEDUPS: Dict[str, tuple] = {  # name -> (enable, disable)
    "event_crc": (use_fast_event_crc, restore_event_crc),
    "nvml_check": (skip_failing_nvml_check, restore_nvml_check),
}


def _apply(which: Optional[Dict[str, bool]], index: int) -> Dict[str, bool]:
    names = list(_SPEEDUPS) if which is None else list(which)
    unknown = [n for n in names if n not in _SPEEDUPS]
    if unknown:
        raise ValueError(f"unknown speed-up(s) {unknown}; valid: {sorted(_SPEEDUPS)}")
    return {n: _SPEEDUPS[n][index]() for n in names if which is None or which[n]}


def enable_speedups(event_crc: bool = True, nvml_check: bool = True) -> Dict[str, bool]:
    """Turn on the process-wide speed-ups of this module's docstring (idempotent).

    Returns:
        ``{name: True if that speed-up now acts}`` for each one asked for (``event_crc``
        False without ``google-crc32c``; ``nvml_check`` False where NVML loads or Lightning was
        not imported). :func:`speedup_report` formats it.
    """
    result = _apply({"event_crc": event_crc, "nvml_check": nvml_check}, 0)
    return {name: name in _saved or result[name] for name in result}


def disable_speedups() -> Dict[str, bool]:
    """Undo :func:`enable_speedups`; returns ``{name: True if something was restored}``."""
    return _apply(None, 1)


def speedup_report(state: Dict[str, bool]) -> str:
    """One line for logs, e.g. ``lightning_sig speed-ups: event_crc on, nvml_check off ...``."""
    parts = ", ".join(f"{name} {'on' if on else 'off'}" for name, on in state.items())
    return (f"lightning_sig speed-ups (process-wide, same results): {parts}; "
            f"lightning_sig.disable_speedups() undoes them")
