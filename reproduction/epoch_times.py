"""Per-epoch wall times of the study's member groups, from their TensorBoard event files.

Why: the pre-registered Table 4 statistic (PREREGISTRATION.md, D3) is each member group's
process wall time (``marker.group_wall_time_s``). A group that was stopped and resumed from an
end-of-epoch checkpoint records only its last process's time, and a group paused (SIGSTOP) for a
benchmark records the pause too. This script measures every epoch instead: the time between one
epoch's ``val/acc`` event and the previous one written by the same process (the first epoch of a
process: from the event file's creation, i.e. the process's start, so it includes start-up).
The median over an arm's epochs is robust to a few paused epochs; the sum is the process time of
the completed epochs (a killed process's unfinished epoch is not in it).

All seeds of a member group share one process, so one seed's events (the lowest seed) time the
group. Exploratory (no verdict): PREREGISTRATION.md Sec. 9 fixes the group wall time for D3.

Usage (from the repository root; reads a sweep's run folder, writes nothing)::

    python reproduction/epoch_times.py RUNS [--figures fig3_combined ...]

``RUNS``: the sweep's ``--out`` folder (``<figure>/<arm>/seed_<s>/events.out.tfevents.*``).
Prints a Markdown table per arm (epochs timed, median and IQR of the epoch time in seconds,
the sum in process-hours) and the remedied/plain ratios of the medians for the Table 4 pairs.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Dict, List

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

#: Table 4's pairs (remedied arm, plain arm) and the other same-figure pairs, for the ratios.
PAIRS = (("fig3_combined", "tanh_reg_scaled", "tanh"), ("fig3_combined", "relu_reg", "relu"),
         ("fig1_large_params", "regularized", "unregularized"),
         ("fig2_many_layers", "scaled", "unscaled"),
         ("fig4_logistic", "sigmoid_reg_scaled", "sigmoid"))


def epoch_seconds(seed_dir: Path) -> List[float]:
    """Durations (s) of the epochs in a run folder's event files, one per ``val/acc`` event; an
    epoch logged twice (a resumed process repeats none, but be safe) counts once, the later."""
    by_step: Dict[int, float] = {}
    for path in sorted(seed_dir.glob("events.out.tfevents.*")):
        start = float(path.name.split(".")[3])  # the file's creation time (s since the epoch)
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        if "val/acc" not in accumulator.Tags().get("scalars", []):
            continue
        previous = start
        for event in sorted(accumulator.Scalars("val/acc"), key=lambda e: e.step):
            by_step[event.step] = event.wall_time - previous
            previous = event.wall_time
    return [by_step[s] for s in sorted(by_step)]


def arm_times(runs: Path, figure: str, arm: str) -> List[float]:
    seeds = sorted((runs / figure / arm).glob("seed_*"), key=lambda p: int(p.name[5:]))
    return epoch_seconds(seeds[0]) if seeds else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--figures", nargs="*", default=None)
    args = parser.parse_args()
    figures = args.figures or sorted(p.name for p in args.runs.iterdir() if p.is_dir())
    medians = {}
    print("| figure/arm | epochs timed | median s per epoch [q25, q75] | process-hours (sum) |")
    print("|---|---|---|---|")
    for figure in figures:
        for arm_dir in sorted(p for p in (args.runs / figure).iterdir() if p.is_dir()):
            times = arm_times(args.runs, figure, arm_dir.name)
            if not times:
                continue
            q25, q50, q75 = statistics.quantiles(times, n=4, method="inclusive")
            medians[(figure, arm_dir.name)] = q50
            print(f"| {figure}/{arm_dir.name} | {len(times)} | {q50:.1f} [{q25:.1f}, {q75:.1f}] "
                  f"| {sum(times) / 3600:.2f} |")
    print("\n| pair (remedied / plain) | ratio of median epoch times |\n|---|---|")
    for figure, a, b in PAIRS:
        if (figure, a) in medians and (figure, b) in medians:
            print(f"| {figure}: {a} / {b} | {medians[(figure, a)] / medians[(figure, b)]:.3f} |")


if __name__ == "__main__":
    main()
