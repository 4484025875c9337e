"""Run every arm of the paper's figures for a list of seeds: ``python -m lightning_sig.sweep``
(or ``lightning-sig sweep``).

The paper (Ven & Lederer, arXiv 2106.02260, Sec. 3) reports each arm of Figures 1-4 over 25
seeds. This command runs each (figure, arm, seed) as a normal LightningCLI run in its own
process (``python train.py fit --config configs/<figure>/<arm>.yaml --seed_everything s``), its
TensorBoard files in ``<out>/<figure>/<arm>/seed_<s>/`` (layout:
:mod:`lightning_sig.experiments.sweep_layout`). A run that exited 0 gets a ``DONE`` marker
holding its wall time; finished runs are skipped, so an interrupted sweep resumes where it
stopped; an unfinished run resumes from its last end-of-epoch checkpoint when it trained the
same seeds and overrides, else its directory is deleted and the run restarted from scratch
(:mod:`lightning_sig.experiments.sweep_process`).

The flow, one way: **parse** (this module: options, checks, the list of runs) → **plan**
(:mod:`~lightning_sig.experiments.sweep_plan`: the table of runs, done or to do, and the
tasks) → **launch** (:mod:`~lightning_sig.experiments.sweep_local`, a process pool, or
:mod:`~lightning_sig.experiments.sweep_submitit`, a job array; each task:
:mod:`~lightning_sig.experiments.sweep_task`) → **summarise**
(:mod:`~lightning_sig.experiments.summary_sweep`, before the first task and after each).

``--members K`` (default 1: one process per seed, as above) trains up to K unfinished seeds of
an arm in ONE process (the module's ``num_members``; member s is a separate run with seed s up
to float rounding). Each member still writes its TensorBoard files into ``seed_<s>/`` and gets
its ``DONE`` and ``hparams.yaml`` there; the group's own Lightning run (checkpoints, config.yaml,
train.log) goes to ``members_<a>-<b>/``, which the figures ignore. Groups are formed from the
unfinished runs only (:mod:`lightning_sig.experiments.sweep_members`). It pays
off for these tiny networks when a single run leaves the device underused: measured on this
2-core CPU at the ``Trainer.fit`` level with the fused kernels, 10 members 4.2-5.1x and 25
members 4.6-5.3x the throughput of sequential torch runs (benchmarks/RESULTS.md); GPU not
measured. ``--jobs`` then counts group processes: choose K so that there are at least
``--jobs`` groups.

Example (3 seeds, 5 epochs, real CIFAR-10; by default one process per CPU)::

    python -m lightning_sig.sweep fig1_large_params fig2_many_layers --seeds 0-2 --epochs 5 \\
        --out sweeps/cifar --data.data_dir ../shared/cifar10

Options with a dot in their name (``--data.data_dir``, ``--trainer.limit_train_batches``) and
everything after a bare ``--`` are passed to every run unchanged (but ``--submitit.*``). Then
draw the figures with ``python -m lightning_sig.figures sweeps/cifar``.

``--launcher submitit`` runs the same tasks as one SLURM job array instead of this machine's
process pool. Either way one sweep at a time may use an ``--out`` folder
(:class:`~lightning_sig.experiments.lock.SweepLock`).
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from lightning_sig.experiments import summary_sweep, sweep_local, sweep_submitit
from lightning_sig.experiments.lock import SweepLock, SweepLockedError
from lightning_sig.experiments.sweep_commands import check_member_overrides, check_overrides
from lightning_sig.experiments.sweep_layout import LOG_NAME, RunSpec
from lightning_sig.experiments.sweep_plan import (DEFAULT_CONFIG_DIR, list_figures, plan_runs,
                                                  plan_sweep)

__all__ = ["main", "build_parser", "parse_arguments", "split_overrides", "parse_seeds",
           "usable_cpus", "default_jobs", "dry_run", "launch", "LAUNCHERS"]

PAPER_SEEDS = "0-24"  # the paper's 25 seeds
PAPER_EPOCHS = 30     # the configs' max_epochs: an assumption, not confirmed from the paper
LAUNCHERS = ("local", "submitit")
Request = Tuple[argparse.Namespace, List[RunSpec], List[str]]


def _echo(line: str) -> None:
    print(line, flush=True)


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
    add = parser.add_argument
    add("figures", nargs="+", help="figure folders of --config-dir, e.g. fig1_large_params; "
        "'all' for every figure")
    add("--seeds", nargs="+", default=[PAPER_SEEDS], help=f"seeds or ranges, e.g. 0 1 2 or 0-24 "
        f"(default {PAPER_SEEDS}, the paper's 25)")
    add("--epochs", type=int, default=PAPER_EPOCHS,
        help=f"epochs per run, >= 1 (default {PAPER_EPOCHS}, the configs' assumed budget)")
    add("--out", type=Path, default=Path("sweeps"), help="sweep directory (default: sweeps)")
    add("--arms", nargs="+", default=None, help="only these arms")
    add("--jobs", type=int, default=None, help="runs at once, >= 1 (default: one per usable CPU)")
    add("--threads", type=int, default=None,
        help="torch threads per run, >= 1 (default: usable CPUs // jobs)")
    add("--members", default="1", metavar="K",
        help="seeds of an arm trained at once in one process (num_members), >= 1 (default 1: "
             "one process per seed). Pays off for these tiny nets: on a 2-core CPU with the "
             "fused kernels 10 members gave 4.2-5.1x, 25 members 4.6-5.3x the throughput of "
             "sequential runs (Trainer.fit); GPU not measured. --jobs then counts processes of "
             "up to K seeds")
    add("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR,
        help="folder of <figure>/<arm>.yaml configs (default: the repo's configs/)")
    add("--summaries", type=Path, default=None, metavar="DIR",
        help="write a run summary (a few KB of JSON, lightning_sig.experiments.summary) per "
             "finished run into DIR/<figure>/<arm>/seed_<s>.json and treat a run with a summary "
             "there as done (default: none)")
    add("--launcher", default="local", choices=LAUNCHERS,
        help="local: a process pool on this machine (default); submitit: one job array (SLURM, "
             "or --submitit.cluster local|debug), with submitit's parameters as "
             "--submitit.<name> <value> (e.g. --submitit.timeout_min 60 "
             "--submitit.slurm_partition gpu)")
    add("--no-wait", action="store_true",
        help="submitit on SLURM: submit, print the job id and return; rerun the command with "
             "--dry-run to see which runs are done")
    add("--dry-run", action="store_true", help="print the plan (done/todo per task) and commands only")
    return parser


def split_overrides(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split ``argv`` into the sweep's own arguments and LightningCLI overrides passed through.

    Passed through: everything after a bare ``--``, and before it every option whose name holds a
    dot (``--data.data_dir X``, ``--trainer.limit_train_batches=5``), with its value when the next
    token does not start with ``--``. The sweep's own options have no dots.
    """
    argv = list(argv)
    tail = argv[argv.index("--") + 1:] if "--" in argv else []
    head = argv[:argv.index("--")] if "--" in argv else argv
    own: List[str] = []
    passed: List[str] = []
    i = 0
    while i < len(head):
        token = head[i]
        if token.startswith("--") and "." in token.split("=", 1)[0]:
            takes_value = "=" not in token and i + 1 < len(head) and not head[i + 1].startswith("--")
            passed.extend(head[i:i + 1 + takes_value])
            i += 1 + takes_value
        else:
            own.append(token)
            i += 1
    return own, passed + tail


def parse_seeds(tokens: Sequence[str]) -> List[int]:
    """Seeds from tokens ``"3"`` or ranges ``"0-24"`` (inclusive); sorted, duplicates removed.

    Raises:
        ValueError: a token that is not a non-negative integer or a range ``a-b`` with a <= b.
    """
    seeds = set()
    for token in tokens:
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(token))
        if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise ValueError(f"seed {token!r} is not a non-negative integer or a range a-b with "
                             f"0 <= a <= b (valid e.g.: 0 1 2, 0-24)")
        low = int(match.group(1))
        seeds.update(range(low, int(match.group(2) or low) + 1))
    if not seeds:
        raise ValueError("no seeds given (valid e.g.: --seeds 0 1 2 or --seeds 0-24)")
    return sorted(seeds)


def _check_launcher(args: argparse.Namespace, submitit_raw: dict) -> None:
    """``--submitit.*`` and ``--no-wait`` against ``--launcher``; sets ``args.cluster`` and
    ``args.submitit`` (submitit's parameters, checked by submitit now) for submitit."""
    if args.launcher != "submitit" and (submitit_raw or args.no_wait):
        option = f"--submitit.{next(iter(submitit_raw))}" if submitit_raw else "--no-wait"
        raise ValueError(f"{option} needs --launcher submitit")
    if args.launcher == "submitit":
        args.cluster, args.submitit = sweep_submitit.parse_submitit_options(submitit_raw)
        if args.no_wait and args.cluster != "slurm":
            raise ValueError(f"--no-wait needs --submitit.cluster slurm ({args.cluster} tasks "
                             f"run in or under this process)")
        sweep_submitit.check_executor(args.cluster, args.submitit)  # bad parameters: now


def _check_counts(args: argparse.Namespace) -> None:
    """``--epochs``, ``--jobs``, ``--threads`` >= 1 and ``--members`` an integer >= 1."""
    if args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs} must be an integer >= 1")
    for name in ("jobs", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} {getattr(args, name)} must be an integer >= 1")
    if not re.fullmatch(r"\s*\d+\s*", args.members) or int(args.members) < 1:
        raise ValueError(f"--members {args.members!r} must be an integer >= 1 (1 = one process "
                         f"per seed, K > 1 = up to K seeds of an arm per process)")
    args.members = int(args.members)


def parse_arguments(argv: Sequence[str]) -> Request:
    """Parse and validate; returns ``(namespace, specs, overrides)`` before anything runs.

    Raises:
        ValueError: unknown figure or arm (the valid ones listed), a bad seed, epochs < 1,
            jobs < 1, threads < 1, members not an integer >= 1, an override of a key the sweep
            sets itself, or with members > 1 an override of num_members/member_seeds/
            member_log_dir; ``--submitit.*`` without ``--launcher submitit``, an unknown
            cluster or submitit parameter, ``--no-wait`` but with a SLURM cluster.
    """
    argv, submitit_raw = sweep_submitit.split_submitit_options(argv)
    own, overrides = split_overrides(argv)
    args = build_parser().parse_args(own)
    _check_launcher(args, submitit_raw)
    _check_counts(args)
    check_overrides(overrides)
    check_member_overrides(overrides, args.members)
    figures = list(list_figures(args.config_dir)) if args.figures == ["all"] else args.figures
    specs = plan_runs(figures, parse_seeds(args.seeds), args.config_dir, args.arms)
    args.jobs = args.jobs or default_jobs()
    per_task = getattr(args, "submitit", {}).get("cpus_per_task", 1)  # a submitit task's CPUs
    args.threads = args.threads or (per_task if args.launcher == "submitit" else
                                    max(1, usable_cpus() // args.jobs))
    return args, specs, overrides


def dry_run(args: argparse.Namespace, specs: Sequence[RunSpec], overrides: Sequence[str]) -> None:
    """Print the plan: runs done / to run in all and per arm, then each task's command (with
    submitit, what would be submitted). A run is done when it has a DONE marker in ``--out``
    or a summary in ``--summaries`` (their settings not compared); the tasks are the unfinished
    runs cut into groups of ``--members``. Reads the folders only (also the way to watch a
    ``--no-wait`` array's progress)."""
    plan = plan_sweep(specs, args.out, args.epochs, overrides, args.members, args.summaries,
                      check=False)
    print("\n".join(plan.status_lines()))
    if args.launcher == "submitit":
        print("\n".join(sweep_submitit.describe_submission(plan, args.cluster, args.submitit)))
        return
    for command in plan.commands():
        print("todo", shlex.join(command))


def launch(args: argparse.Namespace, specs: Sequence[RunSpec],
           overrides: Sequence[str]) -> List[RunSpec]:
    """Under the ``--out`` lock: plan (settings of finished runs checked), the records before
    the first task, then the chosen launcher; returns the failed runs.

    Raises:
        SweepLockedError: another sweep holds ``--out``.
        ValueError: as :func:`~lightning_sig.experiments.sweep_plan.plan_sweep`; on SLURM, the
            last array of ``--out`` still runs.
    """
    with SweepLock(args.out):
        if args.launcher == "submitit" and args.cluster == "slurm":
            sweep_submitit.check_no_array_running(args.out)
        plan = plan_sweep(specs, args.out, args.epochs, overrides, args.members, args.summaries)
        summary_sweep.prepare(plan)
        if args.launcher == "submitit":
            return sweep_submitit.run(plan, args.cluster, args.submitit, args.threads,
                                      args.no_wait, _echo)
        return sweep_local.run(plan, args.jobs, args.threads, _echo)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 all finished, 1 failures, 2 bad use
    or ``--out`` in use by another sweep, 130 interrupted)."""
    try:
        args, specs, overrides = parse_arguments(sys.argv[1:] if argv is None else argv)
        if args.dry_run:
            dry_run(args, specs, overrides)
            return 0
        failed = launch(args, specs, overrides)
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
