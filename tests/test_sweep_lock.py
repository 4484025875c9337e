"""One sweep per --out folder: a live holder refuses a second sweep; a dead one's lock is taken over."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_sig.experiments import sweep_cli, sweep_local
from lightning_sig.experiments.lock import HOLDER_NAME, SweepLock, SweepLockedError

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from lightning_sig.experiments.lock import SweepLock; "
        "lock = SweepLock(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(120)")


@pytest.fixture()
def configs(tmp_path):
    (tmp_path / "configs" / "figA").mkdir(parents=True)
    (tmp_path / "configs" / "figA" / "a.yaml").write_text("{}\n")
    return tmp_path / "configs"


def _holder(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_sweep_is_refused_naming_the_holder(configs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_local, "run", lambda *a, **k: pytest.fail("ran under a held lock"))
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        before = sorted(p.name for p in out.iterdir())
        argv = ["figA", "--seeds", "0", "--config-dir", str(configs), "--out", str(out)]
        assert sweep_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another sweep: pid {holder.pid} on host " \
               f"{socket.gethostname()}, started 20" in err and "use another --out" in err
        with pytest.raises(SweepLockedError, match=f"pid {holder.pid}"):
            SweepLock(out).__enter__()
        assert sorted(p.name for p in out.iterdir()) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match=f"stale lock .*pid {holder.pid} .*no longer runs"):
        with SweepLock(out) as lock:  # the kernel freed the killed holder's lock: taken over
            assert lock.holder()["pid"] == os.getpid()
    assert not (out / HOLDER_NAME).exists()


def test_stale_record_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / HOLDER_NAME).write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00",
         "command": "old sweep"}))
    with pytest.warns(UserWarning, match=rf"taking over the stale lock of .*pid {dead.pid} on "
                                         rf"host .*old sweep\) no longer runs"):
        with SweepLock(tmp_path) as lock:
            assert lock.holder()["pid"] == os.getpid()
