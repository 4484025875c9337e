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
    """Print the plan: runs done / to run in all and per arm, then each task's command (with
    submitit, what would be submitted). A run is done when it has a DONE marker in ``--out``
    or a summary in ``--summaries``; the tasks are the unfinished runs cut into groups of
    ``--members`` (as the sweep plans them). Reads the folders only (also the way to watch a
    ``--no-wait`` array's progress)."""
    done = {s for s in specs if read_marker(run_dir(args.out, s.figure, s.arm, s.seed)) is not None
            or (args.summaries is not None and run_summary.summary_path(
                args.summaries, s.figure, s.arm, s.seed).is_file())}
    todo = plan_groups([s for s in specs if s not in done], args.members)
    print(f"{len(done)} of {len(specs)} runs done, {len(specs) - len(done)} to run in "
          f"{len(todo)} process(es)")
    for figure, arm in dict.fromkeys((s.figure, s.arm) for s in specs):
        mine = [s for s in specs if (s.figure, s.arm) == (figure, arm)]
        n_done = sum(s in done for s in mine)
        print(f"{figure}/{arm}: {n_done} done, {len(mine) - n_done} to do")
    if args.launcher == "submitit":
        print("\n".join(launch_submitit.describe_submission(
            todo, args.out, args.epochs, overrides, args.cluster, args.submitit)))
        return
    for group in todo:
        print("todo", shlex.join(group_command(group, args.out, args.epochs, overrides)))


def launch(args, specs: Sequence[RunSpec], overrides: Sequence[str]) -> List[RunSpec]:
    """Run the sweep with the chosen launcher under the ``--out`` lock; returns failed runs."""
    from lightning_sig.experiments import sweep  # its run_sweep/plan_todo (sweep imports us)

    echo = lambda line: print(line, flush=True)  # noqa: E731
    with SweepLock(args.out):
        if args.launcher == "submitit":
            return launch_submitit.run_sweep(args, specs, overrides, sweep.plan_todo, echo)
        return sweep.run_sweep(specs, args.out, args.epochs, overrides, args.jobs, args.threads,
                               echo=echo, members=args.members, summaries=args.summaries)
