"""Resuming a killed sweep task from its last end-of-epoch checkpoint.

Why: the study's tasks (a member group of up to 25 seeds, 30 epochs, ~1 h on one core) are
stopped and restarted many times. Lightning's ``ModelCheckpoint`` (on by default) keeps the
latest end-of-epoch checkpoint in ``<task dir>/checkpoints/epoch=E-step=S.ckpt``; resuming from
it with ``--ckpt_path`` continues the run bitwise as an uninterrupted ``max_epochs`` run would
(tests/test_resume.py, tests/test_sweep_resume.py).

A task directory records what it trains in ``task.json`` (seeds, overrides); it is resumed only
when a new task trains exactly the same seeds with the same overrides and its checkpoint is a
whole zip archive (a checkpoint cut off by a kill is not resumed: the task restarts clean).
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["TASK_NAME", "write_task", "read_started_at", "resume_checkpoint"]

TASK_NAME = "task.json"
_CKPT = re.compile(r"^epoch=(\d+)-step=(\d+)\.ckpt$")


def _identity(seeds: Sequence[int], overrides: Sequence[str]) -> dict:
    return {"seeds": [int(s) for s in seeds], "overrides": list(overrides)}


def write_task(directory: Path, seeds: Sequence[int], overrides: Sequence[str],
               started_at: str) -> None:
    """Record in ``directory/task.json`` which seeds and overrides its process trains, and when
    the task first started (ISO 8601 UTC, kept across resumes)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    record = dict(_identity(seeds, overrides), started_at=started_at)
    (Path(directory) / TASK_NAME).write_text(json.dumps(record))


def _read(directory: Path) -> Optional[dict]:
    try:
        record = json.loads((Path(directory) / TASK_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_started_at(directory: Path) -> Optional[str]:
    """The first start recorded in ``directory/task.json``, or None."""
    record = _read(directory)
    return None if record is None else record.get("started_at")


def _whole_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def resume_checkpoint(directory: Path, seeds: Sequence[int], overrides: Sequence[str],
                      epochs: int) -> Optional[Path]:
    """The checkpoint to resume the task in ``directory`` from, or None (start clean).

    Args:
        directory: the task's Lightning log dir (a run or member-group directory).
        seeds, overrides: what the new task trains; must equal the recorded ``task.json``.
        epochs: the new task's epoch budget; a checkpoint at or past it is not resumed.

    Returns:
        The latest ``checkpoints/epoch=E-step=S.ckpt`` (largest E, then S) that is a whole zip
        archive, when ``task.json`` matches and E + 1 < ``epochs``; else None.
    """
    record = _read(directory)
    if record is None or {k: record.get(k) for k in ("seeds", "overrides")} != \
            _identity(seeds, overrides):
        return None
    found = [(int(m.group(1)), int(m.group(2)), p)
             for p in (Path(directory) / "checkpoints").glob("*.ckpt")
             if (m := _CKPT.match(p.name))]
    for epoch, _, path in sorted(found, reverse=True):
        if epoch + 1 < epochs and _whole_zip(path):
            return path
    return None
