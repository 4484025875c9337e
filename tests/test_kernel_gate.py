"""The CI rule for the fused kernels (issue 18), end to end: with a broken C++ compiler
(``CXX=false``, an empty extension cache), a kernel test fails under ``CI=true`` and is skipped,
naming the build error, without CI. The rule itself: tests/kernel_gate.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel_gate import in_ci

ROOT = Path(__file__).resolve().parents[1]
KERNEL_TEST = "tests/test_fused_modules.py::test_backend_resolution"  # marked needs_kernels
BUILD_ERROR = "the fused C++ kernels could not be built: CalledProcessError"


def _pytest_with_broken_compiler(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(CXX="false", TORCH_EXTENSIONS_DIR=str(tmp_path / "extensions"))
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           KERNEL_TEST], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_ci_values():
    assert all(in_ci({"CI": v}) for v in ("true", "TRUE", "1", "yes", " true "))
    assert not any(in_ci(e) for e in ({}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}))


@pytest.mark.parametrize("ci", ["true", None])
def test_broken_build_fails_under_ci_and_skips_with_reason_elsewhere(tmp_path, ci):
    status, output = _pytest_with_broken_compiler(tmp_path, ci)
    assert BUILD_ERROR in output, output
    if ci:
        assert status == 1 and "1 error" in output and "CI='true'" in output, output
    else:
        assert status == 0 and "1 skipped" in output and "SKIPPED" in output, output


@pytest.mark.parametrize("build_s,announced", [(0.4, True), (0.0, False)])
def test_a_build_says_it_is_compiling_and_how_long_it_took(monkeypatch, capsys, build_s,
                                                           announced):
    import time

    from lightning_sig.nn.fused import _build
    monkeypatch.setattr(_build, "ANNOUNCE_AFTER_S", 0.1)
    monkeypatch.setattr(_build, "_build", lambda: time.sleep(build_s) or object())
    for key, value in {"module": None, "error": None, "seconds": None, "tried": False}.items():
        monkeypatch.setitem(_build._state, key, value)  # a fresh process's state, restored after
    assert _build.load_kernels() is not None
    err = capsys.readouterr().err
    if announced:  # a slow first load is a compilation: announced, then timed
        lines = err.splitlines()
        assert lines[0].startswith("lightning_sig: compiling the fused C++ CPU kernels")
        seconds = _build.build_seconds()
        assert lines[1] == f"lightning_sig: fused C++ CPU kernels compiled in {seconds:.1f} s"
        assert len(lines) == 2 and 0.4 <= _build.build_seconds() < 5
    else:  # a cached load says nothing
        assert err == ""
