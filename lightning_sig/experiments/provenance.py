"""Provenance of a sweep run: which code, which libraries, which CPU and arithmetic made it.

Why: a study compares arms of a figure; it may only do so when they ran on one code version in
one denormal mode (issue: Figure 4's arms ran on different kernels). Every run summary of schema
``lightning_sig.run_summary/2`` holds a ``provenance`` object (:data:`FIELDS`), put together from
two sources:

* the sweep, when it starts a task: ``commit`` (full hash of the package's git checkout),
  ``dirty`` (tracked files modified, untracked ones ignored), ``started_at`` (ISO 8601 UTC; a
  resumed task keeps its first start);
* the training process, after ``fit`` (:func:`child_main` writes ``provenance.json`` into its
  log dir): ``torch``, ``lightning`` (versions), ``cpu`` (model string), ``isa`` (ATen's CPU
  capability), ``denormals``, ``threads`` (intra-op), ``backend``, ``finished_at``.

``denormals`` is the arithmetic of the network's kernels: ``"ftz"`` when the fused C++ kernels
ran on x86 (they set FTZ/DAZ inside each call, :mod:`lightning_sig.nn.fused`), else what the
process's own float unit does with a denormal (``"ftz"`` if it flushes, ``"ieee"`` if not).
"""
from __future__ import annotations

import datetime
import json
import platform
import subprocess
from pathlib import Path
from typing import Dict, Optional

__all__ = ["FIELDS", "PROVENANCE_NAME", "utc_now", "git_state", "short_version", "runtime_provenance",
           "read_provenance", "child_main"]

PROVENANCE_NAME = "provenance.json"
FIELDS = ("commit", "dirty", "torch", "lightning", "cpu", "isa", "denormals", "threads",
          "backend", "started_at", "finished_at")
_X86 = ("x86_64", "amd64", "i386", "i686")


def utc_now() -> str:
    """Now as ISO 8601 UTC to the second, e.g. ``2026-12-04T15:02:11Z``."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_state(path: Optional[Path] = None) -> Dict[str, object]:
    """``{"commit": <40 hex> or "unknown", "dirty": bool or None}`` of the git checkout holding
    ``path`` (default: this package). Dirty = a tracked file differs from HEAD."""
    here = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=here,
                              capture_output=True, timeout=30)
        return {"commit": head.stdout.strip(), "dirty": diff.returncode != 0}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def short_version(state: Dict[str, object]) -> str:
    """``code_version`` of a summary from :func:`git_state`: 7 hex digits, ``-dirty`` if so."""
    commit = str(state.get("commit", "unknown"))
    short = commit[:7] if commit != "unknown" else commit
    return short + ("-dirty" if state.get("dirty") else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _process_flushes_denormals() -> bool:
    import torch

    tiny = torch.tensor([2.0 ** -140], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)


def runtime_provenance(backend: str, lightning_version: str) -> Dict[str, object]:
    """The training process's part of the provenance (module docstring), for ``backend``
    (``"fused"`` or ``"torch"``, the module's resolved one)."""
    import torch

    fused_ftz = backend == "fused" and platform.machine().lower() in _X86
    return {"torch": torch.__version__, "lightning": lightning_version, "cpu": _cpu_model(),
            "isa": torch.backends.cpu.get_cpu_capability(),
            "denormals": "ftz" if fused_ftz or _process_flushes_denormals() else "ieee",
            "threads": torch.get_num_threads(), "backend": backend, "finished_at": utc_now()}


def read_provenance(directory: Path) -> Dict[str, object]:
    """``provenance.json`` of a run or group directory, or {} if it has none."""
    path = Path(directory) / PROVENANCE_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def child_main(log_dir: str) -> None:
    """A sweep task's process: the LightningCLI run (``python train.py`` with this process's
    arguments), then ``provenance.json`` into ``log_dir`` if ``fit`` returned normally."""
    import pytorch_lightning

    from lightning_sig.lightning.cli import main

    cli = main()
    backend = getattr(cli.model, "backend", None) or "torch"
    record = runtime_provenance(backend, pytorch_lightning.__version__)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    (Path(log_dir) / PROVENANCE_NAME).write_text(json.dumps(record, indent=1, sort_keys=True))
