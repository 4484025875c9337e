"""The wheel ships the paper configs as package data ``lightning_sig.configs``, and the sweep of an
installed (non-editable) copy finds them there, not in a source checkout.

Builds offline (``--no-build-isolation --no-index``: the installed setuptools) from a copy of the
files the build reads, so no ``build/`` folder in the checkout (stale files included) is used or
left behind. ~10 s: marked ``slow`` (``-m "not slow"`` deselects it); it runs by default.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT / "configs").as_posix()
                 for p in (ROOT / "configs").glob("*/*.yaml"))  # <figure>/<arm>.yaml
BEYOND = sorted(p.relative_to(ROOT / "configs").as_posix()
                for p in (ROOT / "configs").glob("beyond/*/*.yaml"))  # beyond/<figure>/<arm>.yaml
BUILD_INPUTS = ("pyproject.toml", "README.md", "lightning_sig", "configs")


def _run(args, cwd, env=None):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    (found,) = (tmp / "dist").glob("lightning_sig-*.whl")
    return found


def test_repository_has_the_ten_paper_configs_and_eight_beyond():
    assert len(CONFIGS) == 10, CONFIGS  # Figures 1–4: 2 + 2 + 4 + 2 arms
    assert len(BEYOND) == 8, BEYOND  # α 4, 8; σ + r, σ + α; relu He ± r, tanh Glorot, + r + α


def test_wheel_contains_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"lightning_sig/configs/{c}" for c in CONFIGS + BEYOND} <= names
    assert "lightning_sig/configs/__init__.py" in names


def test_wheel_contains_every_module_of_the_package(wheel):
    """Every subpackage (a folder with ``__init__.py``, e.g. lightning_sig/members/) is listed in
    pyproject.toml's ``packages``, and the C++ sources and headers compiled at first use are
    package data: one left out would be missing from installed copies."""
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "lightning_sig"
    sources = {p.relative_to(ROOT).as_posix() for pattern in ("*.py", "*.cpp", "*.h")
               for p in package.rglob(pattern) if "__pycache__" not in p.parts}
    assert "lightning_sig/members/interface.py" in sources
    assert "lightning_sig/gradients/row_copy.h" in sources  # the compiled kernels' sources too
    assert sources <= names, sorted(sources - names)


def test_wheel_declares_the_console_script(wheel):
    """pip makes ``lightning-sig`` (lightning_sig/commands.py) from the wheel's entry points."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        lines = archive.read(name).decode().split("\n")
    assert "[console_scripts]" in lines
    assert "lightning-sig = lightning_sig.commands:main" in lines


def test_installed_sweep_resolves_configs_from_package_data(wheel, tmp_path):
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
          str(site), str(wheel)], cwd=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site))
    cwd = tmp_path / "elsewhere"  # outside the checkout: a relative configs/ cannot be found
    cwd.mkdir()
    where = _run([sys.executable, "-c", "import lightning_sig.configs as c; print(c.__file__)"],
                 cwd=cwd, env=env).strip()
    assert Path(where).parent == site / "lightning_sig" / "configs"
    out = _run([sys.executable, "-m", "lightning_sig.sweep", "all", "--seeds", "0", "--dry-run",
                "--out", str(tmp_path / "out")], cwd=cwd, env=env)
    used = [line.split("--config ", 1)[1].split(" ", 1)[0] for line in out.splitlines()
            if "--config " in line]
    assert sorted(used) == [str(site / "lightning_sig" / "configs" / c) for c in CONFIGS]
