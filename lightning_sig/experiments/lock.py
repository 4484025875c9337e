"""One sweep per output folder: an exclusive lock on ``<out>/.sweep.lock`` while a sweep runs.

Why: two sweeps writing the same ``--out`` would delete each other's unfinished runs (a restart
deletes the run's folder) and race on the ``DONE`` markers. The lock is an OS file lock
(``filelock.FileLock``: ``fcntl.flock`` on POSIX, ``msvcrt`` on Windows), so the kernel frees it
when its process dies, however it dies. Who holds it (pid, host, start time, command) is written
next to it in ``<out>/.sweep.lock.json``; a second sweep is refused at once with that record.
A record left by a dead process (the lock itself is then free) is taken over with a warning.
On network file systems without working locks, run one sweep per folder by hand.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import warnings
from pathlib import Path
from typing import Optional

import filelock

__all__ = ["SweepLock", "SweepLockedError", "LOCK_NAME", "HOLDER_NAME"]

LOCK_NAME = ".sweep.lock"
HOLDER_NAME = ".sweep.lock.json"


class SweepLockedError(RuntimeError):
    """Another live sweep holds the lock of this output folder."""


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class SweepLock:
    """Exclusive lock of a sweep's output folder, as a context manager.

    Args:
        out: the sweep's ``--out`` folder (created if missing).

    Raises (on entering):
        SweepLockedError: another process holds the lock; the message names its pid, host,
            start time and command, and how to proceed.

    Warns:
        UserWarning: the holder record names a process that no longer runs (same host) or
            another host whose lock is free: the lock is taken over.

    Example::

        with SweepLock(Path("sweeps/cifar")):
            sweep_local.run(plan_sweep(...))
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.lock_path, self.holder_path = self.out / LOCK_NAME, self.out / HOLDER_NAME
        self._lock: Optional[filelock.BaseFileLock] = None

    def holder(self) -> Optional[dict]:
        """The holder record (pid, host, started, command), or None if absent/unreadable."""
        try:
            return json.loads(self.holder_path.read_text())
        except (OSError, ValueError):
            return None

    def _describe(self, record: Optional[dict]) -> str:
        if not record:
            return "a process whose record is not written yet"
        return (f"pid {record.get('pid')} on host {record.get('host')}, started "
                f"{record.get('started')} ({record.get('command')})")

    def __enter__(self) -> "SweepLock":
        self.out.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(self.lock_path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise SweepLockedError(
                f"{self.out} is in use by another sweep: {self._describe(self.holder())}. Wait "
                f"for it to finish (or stop it), or use another --out.") from None
        self._lock = lock
        old = self.holder()
        if old and (old.get("pid"), old.get("host")) != (os.getpid(), socket.gethostname()):
            same_host = old.get("host") == socket.gethostname()
            state = ("no longer runs" if same_host and not _pid_alive(int(old.get("pid", -1)))
                     else "left its record but not its lock")
            warnings.warn(f"taking over the stale lock of {self.out}: {self._describe(old)} "
                          f"{state}", UserWarning, stacklevel=2)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().isoformat(timespec="seconds"),
                  "command": " ".join(sys.argv)}
        tmp = self.holder_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, self.holder_path)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            try:
                self.holder_path.unlink()
            except OSError:
                pass
            self._lock.release()
            self._lock = None
