"""The sweep's launchers: ``--dry-run`` and running under the ``--out`` lock, locally
(:func:`lightning_sig.experiments.sweep.run_sweep`, a process pool) or as a submitit job array
(:mod:`lightning_sig.experiments.launch_submitit`). ``args`` are the parsed options of
:func:`lightning_sig.experiments.sweep.parse_arguments`.
"""
from __future__ import annotations

import shlex
from typing import List, Sequence

from lightning_sig.experiments import launch_submitit
from lightning_sig.experiments import summary_sweep as run_summary
from lightning_sig.experiments.lock import SweepLock
from lightning_sig.experiments.sweep_plan import (RunSpec, group_command, plan_groups, read_marker,
                                                  run_dir)

__all__ = ["dry_run", "launch"]


def dry_run(args, specs: Sequence[RunSpec], overrides: Sequence[str]) -> None:
    """Print each task's state (done/todo) and command; with submitit, what would be submitted.
    Reads the run folders only (also the way to watch a ``--no-wait`` array's progress)."""
    groups = plan_groups(specs, args.members)
    done = [all(read_marker(run_dir(args.out, s.figure, s.arm, s.seed)) is not None
                or (args.summaries is not None and run_summary.summary_path(
                    args.summaries, s.figure, s.arm, s.seed).is_file()) for s in g)
            for g in groups]
    print(f"{sum(len(g) for g, d in zip(groups, done) if d)} of {len(specs)} runs done")
    if args.launcher == "submitit":
        todo = [g for g, d in zip(groups, done) if not d]
        print("\n".join(launch_submitit.describe_submission(
            todo, args.out, args.epochs, overrides, args.cluster, args.submitit)))
        return
    for group, finished in zip(groups, done):
        print("done" if finished else "todo",
              shlex.join(group_command(group, args.out, args.epochs, overrides)))


def launch(args, specs: Sequence[RunSpec], overrides: Sequence[str]) -> List[RunSpec]:
    """Run the sweep with the chosen launcher under the ``--out`` lock; returns failed runs."""
    from lightning_sig.experiments import sweep  # its run_sweep/plan_todo (sweep imports us)

    echo = lambda line: print(line, flush=True)  # noqa: E731
    with SweepLock(args.out):
        if args.launcher == "submitit":
            return launch_submitit.run_sweep(args, specs, overrides, sweep.plan_todo, echo)
        return sweep.run_sweep(specs, args.out, args.epochs, overrides, args.jobs, args.threads,
                               echo=echo, members=args.members, summaries=args.summaries)
