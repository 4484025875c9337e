"""The local launcher (``--launcher local``, the default): a plan's tasks as processes on this
machine, ``--jobs`` at a time, with a progress line per finished task.

Stage 3 of ``python -m lightning_sig.sweep`` (parse → plan → **launch** → summarise). Each task
(:func:`lightning_sig.experiments.sweep_task.run_task`: a run or a ``--members`` group, then
its summaries) runs in a thread of a pool that waits on its child process, so ``--jobs``
processes train at once. The other launcher is :mod:`lightning_sig.experiments.sweep_submitit`.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from lightning_sig.experiments import summary_sweep
from lightning_sig.experiments.sweep_layout import RunSpec, task_label, task_log
from lightning_sig.experiments.sweep_plan import Plan, plan_sweep
from lightning_sig.experiments.sweep_task import run_task

__all__ = ["run", "run_sweep", "format_duration"]

Echo = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def format_duration(seconds: Optional[float]) -> str:
    """``h:mm:ss`` (``?`` for None)."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join("    " + line for line in text[-lines:])


def _progress(done: int, total: int, group: Sequence[RunSpec], record: dict, elapsed: float,
              eta: float) -> str:
    status = "ok" if record["returncode"] == 0 else f"FAILED (exit {record['returncode']})"
    return (f"[{done}/{total}] {task_label(group)} {status} in "
            f"{format_duration(record['wall_time_s'])}; elapsed {format_duration(elapsed)}, "
            f"ETA {format_duration(eta)}")


def run(plan: Plan, jobs: int = 1, threads: int = 1, echo: Echo = _print) -> List[RunSpec]:
    """Run the tasks of ``plan`` with ``jobs`` processes at once (``threads`` torch threads
    each); returns the runs of the failed tasks.

    Prints the plan's header, then one line per finished task: runs done / total, its wall
    time, and the ETA (mean wall time of this session's tasks × remaining tasks / jobs); a
    failed task's last log lines follow its line. Ctrl-C starts no queued task (the running
    children get the SIGINT too) and is raised again.
    """
    echo(plan.header(f"with {jobs} job(s)", threads))
    done, failed, walls, start = len(plan.cells) - plan.n_todo, [], [], time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(run_task, g, plan.out, plan.epochs, list(plan.overrides),
                               threads, jobs, plan.summaries): g for g in plan.groups}
        for future in as_completed(futures):
            group, record = futures[future], future.result()
            done += len(group)
            walls.append(record["wall_time_s"])
            eta = sum(walls) / len(walls) * (len(plan.groups) - len(walls)) / jobs
            echo(_progress(done, len(plan.cells), group, record, time.perf_counter() - start,
                           eta))
            if record["returncode"] != 0:
                failed.extend(group)
                echo(_log_tail(task_log(group, plan.out)))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return failed


def run_sweep(specs: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str] = (),
              jobs: int = 1, threads: int = 1, echo: Echo = _print, members: int = 1,
              summaries: Optional[Path] = None) -> List[RunSpec]:
    """The local sweep as one Python call, without the ``--out`` lock the command takes: plan
    (:func:`~lightning_sig.experiments.sweep_plan.plan_sweep`), the records before the first
    task (:func:`~lightning_sig.experiments.summary_sweep.prepare`), then :func:`run`.
    Returns the failed runs.

    Raises:
        ValueError: as :func:`~lightning_sig.experiments.sweep_plan.plan_sweep`, before
            anything runs or is written.
    """
    plan = plan_sweep(specs, out, epochs, overrides, members, summaries)
    summary_sweep.prepare(plan)
    return run(plan, jobs, threads, echo)
