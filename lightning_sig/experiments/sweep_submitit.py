"""``--launcher submitit``: a plan's tasks as one SLURM job array (or local processes /
in-process).

Stage 3 of ``python -m lightning_sig.sweep`` (parse → plan → **launch** → summarise), beside
:mod:`lightning_sig.experiments.sweep_local`. Why: 25 seeds × 10 arms outgrow one machine; on
SLURM the convention is a job array, and submitit (``AutoExecutor.map_array``) submits one from
Python. Each array task is one task of the local launcher
(:func:`lightning_sig.experiments.sweep_task.run_task`: one run, or one ``--members`` group),
with the same run folders, ``DONE`` markers and resume rule; only the plan's tasks (its
unfinished runs) are submitted. ``--submitit.cluster local`` runs the tasks as local processes
and ``debug`` in this process (submitit's executors for tests and debugging).

Options: ``--submitit.<name> <value>`` are submitit's ``update_parameters`` (``timeout_min``,
``gpus_per_node``, ``cpus_per_task``, ``mem_gb``, ``slurm_partition``,
``slurm_array_parallelism``, ``slurm_additional_parameters``, ...); values are read as YAML
(``60`` an int, ``'{signal: USR1@90}'`` a dict). Unknown names are refused with submitit's list
before anything is submitted. submitit's logs go to ``<out>/.submitit/``.

SLURM requeue: submitit asks SLURM for ``USR2`` 90 s before the time limit and, since these
tasks are not checkpointable, ends the task (a rerun restarts its unfinished runs from
scratch). For Lightning's own auto-requeue (its ``SLURMEnvironment`` saves
``hpc_ckpt_<n>.ckpt`` and requeues on ``SIGUSR1``) pass
``--submitit.slurm_additional_parameters '{signal: USR1@90}'`` (replaces submitit's signal):
every run has ``default_root_dir`` = its run folder, so its ``hpc_ckpt`` lands there, the task
process ignores the signal that reaches it, and the requeued task keeps a folder holding an
``hpc_ckpt`` so that Lightning resumes from it.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from lightning_sig.experiments import sweep_task
from lightning_sig.experiments.sweep_layout import RunSpec, task_label, task_log
from lightning_sig.experiments.sweep_plan import Plan

__all__ = ["CLUSTERS", "SUBMITIT_FOLDER", "split_submitit_options", "parse_submitit_options",
           "check_executor", "make_executor", "run_task", "submit", "wait_for",
           "describe_submission", "check_no_array_running", "run"]

CLUSTERS = ("slurm", "local", "debug")
SUBMITIT_FOLDER = ".submitit"  # inside --out: submitit's pickles and the tasks' stdout/stderr
ARRAY_RECORD = "last_array.json"  # in SUBMITIT_FOLDER: the last SLURM array submitted
_PREFIX = "--submitit."
Group = Tuple[RunSpec, ...]


def split_submitit_options(argv: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """Take ``--submitit.<name> V`` / ``--submitit.<name>=V`` out of ``argv`` (before ``--``).

    Returns ``(the other tokens, {name: raw value})``.

    Raises:
        ValueError: an option without a value or without a name.
    """
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    rest, raw, i = [], {}, 0
    while i < end:
        token = argv[i]
        if not token.startswith(_PREFIX):
            rest.append(token)
            i += 1
            continue
        name, eq, value = token[len(_PREFIX):].partition("=")
        if not eq:
            if i + 1 >= end or argv[i + 1].startswith("--"):
                raise ValueError(f"{token} needs a value, e.g. {_PREFIX}timeout_min 60")
            value, i = argv[i + 1], i + 1
        if not name:
            raise ValueError(f"{token!r} names no submitit parameter")
        raw[name] = value
        i += 1
    return rest + argv[end:], raw


def parse_submitit_options(raw: Dict[str, str]) -> Tuple[str, Dict[str, object]]:
    """``(cluster, parameters)`` from raw option values (YAML-typed: ``60`` → int).

    The cluster defaults to ``slurm`` where ``sbatch`` is on the PATH.

    Raises:
        ValueError: an unknown cluster (lists the valid ones); no cluster given and no
            ``sbatch`` (says how to choose).
    """
    params = {name: yaml.safe_load(value) for name, value in raw.items()}
    cluster = params.pop("cluster", None)
    if cluster is None:
        if shutil.which("sbatch") is None:
            raise ValueError("--launcher submitit: no sbatch on this machine (not a SLURM login "
                             "node); choose --submitit.cluster slurm|local|debug (local: tasks as "
                             "local processes, debug: in this process)")
        cluster = "slurm"
    if cluster not in CLUSTERS:
        raise ValueError(f"--submitit.cluster {cluster!r} is not one of {', '.join(CLUSTERS)}")
    return str(cluster), params


def check_executor(cluster: str, params: Dict[str, object]) -> None:
    """:func:`make_executor` in a scratch folder: refuses what it refuses, writes nothing else
    (submitit creates its folder at once)."""
    with tempfile.TemporaryDirectory() as scratch:
        make_executor(Path(scratch), cluster, params)


def make_executor(folder: Path, cluster: str, params: Dict[str, object]):
    """A ``submitit.AutoExecutor`` for ``cluster`` with ``params`` (creates ``folder``).

    Raises:
        ValueError: submitit is not installed; submitit refuses the cluster (e.g. slurm
            without ``srun``) or a parameter (unknown name: submitit's message lists the valid
            ones; a wrong type).
    """
    try:
        import submitit
    except ImportError:
        raise ValueError("--launcher submitit needs the submitit package: pip install "
                         "'lightning-sig[slurm]' (or pip install submitit)") from None
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    except RuntimeError as err:
        raise ValueError(f"--submitit.cluster {cluster}: {err}") from None
    try:
        executor.update_parameters(**{"name": "lightning_sig_sweep", **params})
    except (NameError, AssertionError, TypeError) as err:
        names = ", ".join(f"{_PREFIX}{k}" for k in params)
        raise ValueError(f"submitit refused {names or 'the parameters'}: {err}") from None
    return executor


def _ignore_signal(signum, frame) -> None:  # the training process handles it (Lightning)
    pass


def run_task(group: Group, out: Path, epochs: int, overrides: Sequence[str], threads: int,
             jobs: int, summaries: Optional[Path] = None) -> dict:
    """One array task: :func:`lightning_sig.experiments.sweep_task.run_task` (its record
    returned).

    In a SLURM job the task process ignores ``SIGUSR1`` (SLURM signals every process of the
    step; Lightning's handler in the training process does the requeue).
    """
    if "SLURM_JOB_ID" in os.environ and hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, _ignore_signal)
    return sweep_task.run_task(group, out, epochs, overrides, threads, jobs, summaries)


def describe_submission(plan: Plan, cluster: str, params: Dict[str, object]) -> List[str]:
    """Lines of ``--dry-run``: the array's size, cluster and parameters, each task's command."""
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "submitit's defaults"
    if not plan.groups:
        return [f"nothing to submit to cluster {cluster!r}: every run is done"]
    lines = [f"would submit 1 array job of {len(plan.groups)} task(s) to cluster {cluster!r} "
             f"({shown})"]
    lines += [f"  task {i}: {shlex.join(command)}" for i, command in enumerate(plan.commands())]
    return lines


def submit(executor, todo: Sequence[Group], out: Path, epochs: int, overrides: Sequence[str],
           threads: int, jobs: int, summaries: Optional[Path] = None) -> list:
    """Submit ``todo`` as one array (``map_array``); returns submitit's jobs, in order."""
    n = len(todo)
    return executor.map_array(run_task, list(todo), [out] * n, [epochs] * n,
                              [list(overrides)] * n, [threads] * n, [jobs] * n,
                              [summaries] * n)


def _outcome(job, group: Group, out: Path) -> Tuple[bool, str]:
    """(ok, status text) of a finished job; a task that raised names submitit's stderr log."""
    try:
        record = job.result()
    except Exception as err:  # submitit's FailedJobError / UncompletedJobError, or the task's
        last = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        return False, f"FAILED in job {job.job_id} ({last}); log: {job.paths.stderr}"
    if record["returncode"] != 0:
        return False, (f"FAILED (exit {record['returncode']}) in job {job.job_id}; log: "
                       f"{task_log(group, out)}")
    return True, f"ok in job {job.job_id}"


def wait_for(jobs: list, todo: Sequence[Group], out: Path, echo: Callable[[str], None],
             poll_s: float = 10.0) -> List[RunSpec]:
    """Wait for ``jobs``; print each task's outcome and the done / failed / pending counts
    (polling every ``poll_s`` seconds; submitit rate-limits its ``sacct`` calls itself).

    Returns the runs of the failed tasks.
    """
    pending, failed, n_ok = list(range(len(jobs))), [], 0
    while pending:
        for i in list(pending):
            if not jobs[i].done():
                continue
            pending.remove(i)
            ok, text = _outcome(jobs[i], todo[i], out)
            n_ok += ok
            failed.extend(() if ok else todo[i])
            echo(f"{task_label(todo[i])} {text}")
            echo(f"[submitit] tasks: {n_ok} done, {len(jobs) - n_ok - len(pending)} failed, "
                 f"{len(pending)} pending")
        if pending:
            time.sleep(poll_s)
    return failed


def check_no_array_running(out: Path) -> None:
    """Refuse to submit while the last SLURM array of ``out`` (``--no-wait`` returns before it
    ends and frees the ``--out`` lock) still has tasks in ``squeue``: a new array would restart
    their unfinished, i.e. running, runs.

    Raises:
        ValueError: ``squeue`` lists tasks of that job (names it and how to stop it).
    """
    record = Path(out) / SUBMITIT_FOLDER / ARRAY_RECORD
    if not record.is_file() or shutil.which("squeue") is None:
        return
    job_id = str(json.loads(record.read_text()).get("job_id", ""))
    listed = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True)
    if job_id and listed.returncode == 0 and listed.stdout.strip():
        raise ValueError(f"SLURM job {job_id} of {out} still has "
                         f"{len(listed.stdout.strip().splitlines())} task(s) queued or running "
                         f"(squeue -j {job_id}); rerun after it ended, or stop it with scancel "
                         f"{job_id}")


def _submit(plan: Plan, cluster: str, params: Dict[str, object], threads: int,
            echo: Callable[[str], None]) -> Tuple[list, str]:
    """Submit the plan's tasks; returns submitit's jobs and the array's job id (recorded in
    ``<out>/.submitit/last_array.json`` on SLURM)."""
    executor = make_executor(plan.out / SUBMITIT_FOLDER, cluster, params)
    jobs = submit(executor, plan.groups, plan.out, plan.epochs, plan.overrides, threads, 1,
                  plan.summaries)
    ids = ", ".join(dict.fromkeys(str(j.job_id).split("_")[0] for j in jobs))  # SLURM: one
    echo(f"submitted {len(jobs)} task(s) to {cluster} as job {ids}; submitit logs: "
         f"{plan.out / SUBMITIT_FOLDER}")
    array_id = ids.split(", ")[0]
    if cluster == "slurm":
        (plan.out / SUBMITIT_FOLDER / ARRAY_RECORD).write_text(json.dumps({"job_id": array_id}))
    return jobs, array_id


def run(plan: Plan, cluster: str, params: Dict[str, object], threads: int = 1,
        no_wait: bool = False, echo: Callable[[str], None] = print) -> List[RunSpec]:
    """Submit the tasks of ``plan`` as one array to ``cluster`` with submitit's ``params``
    (checked by :func:`check_executor`), ``threads`` torch threads per task, and wait for them
    unless ``no_wait``. Prints the plan's header first. Returns the runs of the failed tasks
    (none with ``no_wait``). On SLURM, run :func:`check_no_array_running` first (the command
    does, under its ``--out`` lock).

    Ctrl-C while waiting: a SLURM array keeps running (the message says how to stop it), local
    tasks are cancelled; the KeyboardInterrupt is raised again.
    """
    echo(plan.header(f"as {len(plan.groups)} array task(s)", threads))
    if not plan.groups:
        return []
    jobs, array_id = _submit(plan, cluster, params, threads, echo)
    if no_wait:
        echo(f"not waiting (--no-wait). Progress from the run folders: the same command with "
             f"--dry-run; or squeue -j {array_id}. Rerun the command after the job ended to "
             f"resubmit unfinished runs.")
        return []
    try:
        return wait_for(jobs, plan.groups, plan.out, echo,
                        poll_s=10.0 if cluster == "slurm" else 0.2)
    except KeyboardInterrupt:
        if cluster == "slurm":  # the array is the cluster's: it keeps running
            echo(f"stopped waiting; job {array_id} keeps running (scancel {array_id} stops it). "
                 f"Rerun the command after it ended to resubmit unfinished runs.")
        else:
            for job in jobs:
                job.cancel(check=False)
        raise
