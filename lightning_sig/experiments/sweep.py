"""Run every arm of the paper's figures for a list of seeds: ``python -m lightning_sig.sweep``.

The paper (Ven & Lederer, arXiv 2106.02260, Sec. 3) reports each arm of Figures 1-4 over 25
seeds. This command runs each (figure, arm, seed) as a normal LightningCLI run in its own
process (``python train.py fit --config configs/<figure>/<arm>.yaml --seed_everything s``), its
TensorBoard files in ``<out>/<figure>/<arm>/seed_<s>/`` (layout: :mod:`lightning_sig.experiments.sweep_plan`).
A run that exited 0 gets a ``DONE`` marker holding its wall time; finished runs are skipped, so
an interrupted sweep resumes where it stopped; an unfinished run's directory is deleted and the
run restarted from scratch (runs are short; resuming mid-run from a checkpoint is not attempted).

``--members K`` (default 1: one process per seed, as above) trains up to K unfinished seeds of
an arm in ONE process (the module's ``num_members``; member s is a separate run with seed s up
to float rounding). Each member still writes its TensorBoard files into ``seed_<s>/`` and gets
its ``DONE`` and ``hparams.yaml`` there; the group's own Lightning run (checkpoints, config.yaml,
train.log) goes to ``members_<a>-<b>/``, which the figures ignore. Groups are formed from the
unfinished runs only (:mod:`lightning_sig.experiments.sweep_members`). It pays
off for these tiny networks when a single run leaves the device underused: measured on this
2-core CPU at the ``Trainer.fit`` level with the fused kernels, 10 members 4.2-5.1x and 25
members 4.6-5.3x the throughput of sequential torch runs (benchmarks/RESULTS.md); GPU not
measured. ``--jobs`` then counts
group processes: choose K so that there are at least ``--jobs`` groups.

Example (3 seeds, 5 epochs, real CIFAR-10; by default one process per CPU)::

    python -m lightning_sig.sweep fig1_large_params fig2_many_layers --seeds 0-2 --epochs 5 \\
        --out sweeps/cifar --data.data_dir ../shared/cifar10

Options with a dot in their name (``--data.data_dir``, ``--trainer.limit_train_batches``) and
everything after a bare ``--`` are passed to every run unchanged (but ``--submitit.*``). Then
draw the figures with ``python -m lightning_sig.figures sweeps/cifar``.

``--launcher submitit`` runs the same tasks as one SLURM job array instead of this machine's
process pool (:mod:`lightning_sig.experiments.launch_submitit`). Either way one sweep at a time
may use an ``--out`` folder (:class:`~lightning_sig.experiments.lock.SweepLock`).
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from lightning_sig.experiments import launch_submitit, launchers
from lightning_sig.experiments import summary_sweep as run_summary
from lightning_sig.experiments.lock import SweepLockedError
from lightning_sig.experiments.sweep_members import run_group, run_task_process, task_label, task_log
from lightning_sig.experiments.sweep_plan import (DEFAULT_CONFIG_DIR, LOG_NAME, RunSpec,
                                      check_member_overrides, check_overrides,
                                      list_figures, parse_seeds, plan_groups, plan_runs,
                                      read_marker, run_dir, split_overrides, train_command,
                                      update_manifest, write_marker)

__all__ = ["main", "run_sweep", "run_one", "run_task", "default_jobs", "check_finished",
           "format_duration", "plan_todo", "LAUNCHERS"]

PAPER_SEEDS = "0-24"  # the paper's 25 seeds
PAPER_EPOCHS = 30     # the configs' max_epochs: an assumption, not confirmed from the paper
LAUNCHERS = ("local", "submitit")


def usable_cpus() -> int:
    """CPUs this process may run on (affinity/cgroup aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_jobs() -> int:
    """One single-threaded process per usable CPU (measured faster than 1 process × all threads
    for these tiny networks; see the sweep section of the README)."""
    return usable_cpus()


def build_parser() -> argparse.ArgumentParser:
    """The sweep's own options (LightningCLI overrides are split off by :func:`split_overrides`)."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_sig.sweep", allow_abbrev=False,
        description="Run every arm of one or more paper figures for a list of seeds. Options "
                    "with a dot (--data.data_dir X) and everything after -- go to every run.")
    parser.add_argument("figures", nargs="+", help="figure folders of --config-dir, e.g. "
                        "fig1_large_params; 'all' for every figure")
    parser.add_argument("--seeds", nargs="+", default=[PAPER_SEEDS],
                        help=f"seeds or ranges, e.g. 0 1 2 or 0-24 (default {PAPER_SEEDS}, the "
                             f"paper's 25)")
    parser.add_argument("--epochs", type=int, default=PAPER_EPOCHS,
                        help=f"epochs per run, >= 1 (default {PAPER_EPOCHS}, the configs' assumed budget)")
    parser.add_argument("--out", type=Path, default=Path("sweeps"),
                        help="sweep directory (default: sweeps)")
    parser.add_argument("--arms", nargs="+", default=None, help="only these arms")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at once, >= 1 (default: one per usable CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run, >= 1 (default: usable CPUs // jobs)")
    parser.add_argument("--members", default="1", metavar="K",
                        help="seeds of an arm trained at once in one process (num_members), "
                             ">= 1 (default 1: one process per seed). Pays off for these tiny "
                             "nets: on a 2-core CPU with the fused kernels 10 members gave "
                             "4.2-5.1x, 25 members 4.6-5.3x the throughput of sequential runs "
                             "(Trainer.fit); GPU not measured. "
                             "--jobs then counts processes of up to K seeds")
    parser.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR,
                        help="folder of <figure>/<arm>.yaml configs (default: the repo's configs/)")
    parser.add_argument("--summaries", type=Path, default=None, metavar="DIR",
                        help="write a run summary (a few KB of JSON, lightning_sig.experiments."
                             "summary) per finished run into DIR/<figure>/<arm>/seed_<s>.json and "
                             "treat a run with a summary there as done (default: none)")
    parser.add_argument("--launcher", default="local", choices=LAUNCHERS,
                        help="local: a process pool on this machine (default); submitit: one job "
                             "array (SLURM, or --submitit.cluster local|debug), with submitit's "
                             "parameters as --submitit.<name> <value> (e.g. --submitit.timeout_min "
                             "60 --submitit.slurm_partition gpu)")
    parser.add_argument("--no-wait", action="store_true",
                        help="submitit on SLURM: submit, print the job id and return; rerun the "
                             "command with --dry-run to see which runs are done")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (done/todo per task) and commands only")
    return parser


def parse_arguments(argv: Sequence[str]) -> tuple:
    """Parse and validate; returns ``(namespace, specs, overrides)`` before anything runs.

    Raises:
        ValueError: unknown figure or arm (the valid ones listed), a bad seed, epochs < 1,
            jobs < 1, threads < 1, members not an integer >= 1, an override of a key the sweep
            sets itself, or with members > 1 an override of num_members/member_seeds/
            member_log_dir; ``--submitit.*`` without ``--launcher submitit``, an unknown
            cluster or submitit parameter, ``--no-wait`` but with a SLURM cluster.
    """
    argv, submitit_raw = launch_submitit.split_submitit_options(argv)
    own, overrides = split_overrides(argv)
    args = build_parser().parse_args(own)
    if args.launcher != "submitit" and (submitit_raw or args.no_wait):
        option = f"--submitit.{next(iter(submitit_raw))}" if submitit_raw else "--no-wait"
        raise ValueError(f"{option} needs --launcher submitit")
    if args.launcher == "submitit":
        args.cluster, args.submitit = launch_submitit.parse_submitit_options(submitit_raw)
        if args.no_wait and args.cluster != "slurm":
            raise ValueError(f"--no-wait needs --submitit.cluster slurm ({args.cluster} tasks "
                             f"run in or under this process)")
        launch_submitit.check_executor(args.cluster, args.submitit)  # bad parameters: now
    if args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs} must be an integer >= 1")
    for name in ("jobs", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} {getattr(args, name)} must be an integer >= 1")
    if not re.fullmatch(r"\s*\d+\s*", args.members) or int(args.members) < 1:
        raise ValueError(f"--members {args.members!r} must be an integer >= 1 (1 = one process "
                         f"per seed, K > 1 = up to K seeds of an arm per process)")
    args.members = int(args.members)
    check_overrides(overrides)
    check_member_overrides(overrides, args.members)
    figures = list(list_figures(args.config_dir)) if args.figures == ["all"] else args.figures
    specs = plan_runs(figures, parse_seeds(args.seeds), args.config_dir, args.arms)
    args.jobs = args.jobs or default_jobs()
    per_task = getattr(args, "submitit", {}).get("cpus_per_task", 1)  # a submitit task's CPUs
    args.threads = args.threads or (per_task if args.launcher == "submitit" else
                                    max(1, usable_cpus() // args.jobs))
    return args, specs, overrides


def check_finished(specs: Sequence[RunSpec], out: Path, epochs: int,
                   overrides: Sequence[str]) -> List[RunSpec]:
    """The finished runs of ``specs``; their markers must match ``epochs`` and ``overrides``.

    Raises:
        ValueError: a finished run was made with another epoch budget or other overrides (mixing
            them would silently mix experiments); names the run and both settings.
    """
    finished = []
    for spec in specs:
        marker = read_marker(run_dir(out, spec.figure, spec.arm, spec.seed))
        if marker is None:
            continue
        old = (marker.get("epochs", epochs), marker.get("overrides", list(overrides)))
        if old != (epochs, list(overrides)):
            raise ValueError(f"{spec.label} in {out} finished with epochs={old[0]}, overrides="
                             f"{old[1]}; this sweep asks epochs={epochs}, overrides="
                             f"{list(overrides)}. Use another --out (finished runs are never "
                             f"deleted).")
        finished.append(spec)
    return finished


def run_one(spec: RunSpec, out: Path, epochs: int, overrides: Sequence[str], threads: int,
            jobs: int = 1) -> dict:
    """Train one run in a subprocess; write its DONE marker if it exits 0.

    An unfinished directory of the run is resumed from its last end-of-epoch checkpoint when it
    trained the same seed and overrides (:func:`~lightning_sig.experiments.sweep_resume.resume_checkpoint`),
    kept as it is when it holds Lightning's ``hpc_ckpt`` (a SLURM requeue: Lightning resumes
    from it), else deleted first (a clean restart). The child gets ``OMP_NUM_THREADS =
    MKL_NUM_THREADS = threads``. Returns the marker record (with ``returncode``;
    ``wall_time_s`` in seconds of this process, start-up included).
    """
    directory = run_dir(out, spec.figure, spec.arm, spec.seed)
    if read_marker(directory) is not None:
        raise RuntimeError(f"refusing to restart finished run {directory}")
    record = run_task_process([spec], directory, [directory],
                              train_command(spec, out, epochs, overrides), epochs, overrides,
                              threads, jobs)
    if record["returncode"] == 0:
        write_marker(directory, record)
    return record


def format_duration(seconds: Optional[float]) -> str:
    """``h:mm:ss`` (``?`` for None)."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join("    " + line for line in text[-lines:])


def run_task(group: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str],
             threads: int, jobs: int, summaries: Optional[Path] = None) -> dict:
    """One task, i.e. one process: a plain run (:func:`run_one`) or a member group
    (``run_group``); then, with ``summaries``, the runs' summaries (a failure to summarize is
    recorded as ``summary_error``, not raised). Returns its record (``returncode``,
    ``wall_time_s``, ...)."""
    if len(group) == 1:
        record = run_one(group[0], out, epochs, overrides, threads, jobs)
    else:
        record = run_group(group, out, epochs, overrides, threads, jobs)
    if summaries is not None and record["returncode"] == 0:
        try:
            run_summary.summarize_runs(group, out, summaries)
        except ValueError as err:
            record["summary_error"] = str(err)
    return record


def _header(out: Path, n_runs: int, todo: Sequence[Sequence[RunSpec]], jobs: int,
            threads: int, epochs: int, members: int) -> str:
    n_todo = sum(len(g) for g in todo)
    how = (f"with {jobs} job(s)" if jobs else f"as {len(todo)} array task(s)")  # 0: submitit
    return (f"sweep {out}: {n_runs} runs, {n_runs - n_todo} already finished, {n_todo} to run "
            f"{how} x {threads} thread(s), {epochs} epoch(s) each"
            + (f", in {len(todo)} process(es) of <= {members} seeds" if members > 1 else ""))


def plan_todo(specs: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str],
              members: int, jobs: int, threads: int,
              echo: Callable[[str], None], summaries: Optional[Path] = None) -> List[tuple]:
    """The tasks to run: the unfinished runs (cells) of ``specs``, cut into groups of at most
    ``members`` seeds of one arm (a run with a DONE marker in ``out`` or a summary in
    ``summaries`` is finished and never rerun, whatever ``members`` is); updates the figures'
    manifests and prints the sweep's header line. Raises ValueError as :func:`check_finished`."""
    finished = set(check_finished(specs, out, epochs, overrides))
    if summaries is not None:
        finished |= run_summary.prepare_summaries(specs, out, summaries, epochs, overrides)
    todo = plan_groups([s for s in specs if s not in finished], members)
    for figure in dict.fromkeys(s.figure for s in specs):
        mine = [s for s in specs if s.figure == figure]
        update_manifest(out, figure, [s.arm for s in mine], [s.seed for s in mine], epochs)
    echo(_header(out, len(specs), todo, jobs, threads, epochs, members))
    return todo


def run_sweep(specs: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str] = (),
              jobs: int = 1, threads: int = 1,
              echo: Callable[[str], None] = lambda s: print(s, flush=True),
              members: int = 1, summaries: Optional[Path] = None) -> List[RunSpec]:
    """Run the unfinished ``specs`` with ``jobs`` processes at once; returns the failed runs.

    ``members`` K > 1: up to K unfinished seeds of an arm per process (:func:`plan_todo`). Prints one line per finished process:
    runs done / total, its wall time, and the ETA (mean wall time of this session's processes
    × remaining processes / jobs).

    Raises:
        ValueError: as :func:`check_finished`, before anything runs; members < 1.
    """
    out = Path(out)
    todo = plan_todo(specs, out, epochs, overrides, members, jobs, threads, echo, summaries)
    n_todo = sum(len(g) for g in todo)
    done, failed, walls, start = len(specs) - n_todo, [], [], time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(run_task, g, out, epochs, overrides, threads, jobs, summaries): g
                   for g in todo}
        for future in as_completed(futures):
            group, record = futures[future], future.result()
            done += len(group)
            walls.append(record["wall_time_s"])
            eta = sum(walls) / len(walls) * (len(todo) - len(walls)) / jobs
            status = "ok" if record["returncode"] == 0 else f"FAILED (exit {record['returncode']})"
            echo(f"[{done}/{len(specs)}] {task_label(group)} {status} in "
                 f"{format_duration(record['wall_time_s'])}; elapsed "
                 f"{format_duration(time.perf_counter() - start)}, ETA {format_duration(eta)}")
            if record["returncode"] != 0:
                failed.extend(group)
                echo(_log_tail(task_log(group, out)))
    except KeyboardInterrupt:  # start no queued run; running children got the SIGINT too
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return failed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 all finished, 1 failures, 2 bad use
    or ``--out`` in use by another sweep)."""
    try:
        args, specs, overrides = parse_arguments(sys.argv[1:] if argv is None else argv)
        if args.dry_run:
            launchers.dry_run(args, specs, overrides)
            return 0
        failed = launchers.launch(args, specs, overrides)
    except (ValueError, SweepLockedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume (finished runs are kept)",
              file=sys.stderr)
        return 130
    if failed:
        print(f"{len(failed)} run(s) failed (logs: <run dir>/{LOG_NAME}): "
              f"{', '.join(s.label for s in failed)}; rerun the same command to retry them",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
