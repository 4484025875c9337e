"""When tests of the fused C++ kernels may skip (issue 18).

``backend="auto"`` runs the paper nets through the kernels on every CPU by default, so a broken
C++ build must not turn the suite green: under CI (``CI`` = ``true``, ``1`` or ``yes``; ``.ci/run``
sets it) the tests marked with :func:`kernel_marks` / :func:`needs_kernels` run and each fails
with the build's error;
elsewhere (a machine without a compiler) they are skipped, with the build's error as the reason.
"""
from __future__ import annotations

import os
from typing import Callable, List, Mapping, Optional

import pytest

from lightning_sig.nn.fused import build_error, kernels_available

__all__ = ["in_ci", "kernel_marks", "needs_kernels", "require_kernels"]


def in_ci(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether ``CI`` is set to ``true``, ``1`` or ``yes`` (any case) in ``environ`` (default
    ``os.environ``)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() in ("true", "1", "yes")


def _reason() -> str:
    return f"the fused C++ kernels could not be built: {build_error()}"


def kernel_marks() -> List[pytest.MarkDecorator]:
    """The marks of a test that needs the kernels (e.g. a module's ``pytestmark``): outside CI
    skip it when they cannot be built (reason: the build error); under CI run it, and the
    ``fused_kernels_built`` fixture (conftest.py, :func:`require_kernels`) fails it then."""
    skip = not in_ci() and not kernels_available()
    return [pytest.mark.skipif(skip, reason=_reason() if skip else ""),
            pytest.mark.usefixtures("fused_kernels_built")]


def needs_kernels(test: Callable) -> Callable:
    """Decorator form of :func:`kernel_marks`."""
    for mark in kernel_marks():
        test = mark(test)
    return test


def require_kernels() -> None:
    """Fail the calling test with the build error when the kernels cannot be built."""
    if not kernels_available():
        pytest.fail(f"CI={os.environ.get('CI')!r}: {_reason()}", pytrace=False)
