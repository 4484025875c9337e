"""NonFiniteLossGuard across 2 DDP processes (gloo): one rank's NaN stops (or not) all ranks
together, and no checkpoint is written from that step on (``tests/scripts/ddp_nonfinite.py``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ddp_nonfinite.py"
NAN_STEP, STEPS = 3, 8  # as in the script


@pytest.mark.parametrize("action", ["stop", "continue"])
def test_one_ranks_nan_trips_every_rank(tmp_path, action):
    env = dict(os.environ,  # warnings on: the guard's warning is checked
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--action",
                             action], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:  # a rank waiting for the other: kill both
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-5000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = NAN_STEP + 1 if action == "stop" else STEPS
    for record in ranks:  # both ranks: the same decision at the same step
        assert record == {"global_step": steps, "nonfinite_steps": [NAN_STEP],
                          "tripped_step": NAN_STEP, "checkpointing_off": True}
    # checkpoints after steps 1..NAN_STEP (the update of step NAN_STEP is the first not saved)
    saved = sorted(int(p.stem.split("=")[1]) for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert saved == list(range(1, NAN_STEP + 1))
    assert "NonFiniteLossGuard: non-finite training loss" in output
