"""The time the study took, from the run summaries' markers alone (REPRODUCTION.md, "What was run").

A member group (one process training several seeds of one arm) writes one summary per seed;
each carries the group's marker: ``members``, ``group_wall_time_s`` (the process's wall time),
``finished_at`` and ``jobs`` (processes the sweep ran at once). Here every group is counted once,
keyed by (figure, arm, members). Process-hours are the sum of the groups' wall times; since
``jobs`` processes ran side by side, the wall-clock is about process-hours / jobs.

``code_version`` is the checkout's ``git describe`` when the sweep wrote the summaries (the end
of the group), which is not necessarily the code the process loaded at its start when the
checkout moved during the run.

Usage (from the repository root; nothing is written)::

    python reproduction/study_time.py reproduction/full [--since 2026-12-01T22:15] \\
        [--project 4500 --procs 2]

``--since``: the groups started at or after this time (UTC, ISO) give the per-seed-epoch rate
for ``--project`` seed-epochs at ``--procs`` processes at once.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path


def groups(folder: Path) -> list:
    found = {}
    for path in sorted(folder.glob("*/*/seed_*.json")):
        run = json.loads(path.read_text())
        marker = run["marker"]
        key = (run["figure"], run["arm"], tuple(marker["members"]))
        wall = marker.get("group_wall_time_s", marker.get("wall_time_s"))
        end = dt.datetime.fromisoformat(marker["finished_at"])
        entry = found.setdefault(key, {"figure": run["figure"], "arm": run["arm"],
                                       "members": marker["members"], "wall_s": wall,
                                       "epochs": run["n_epochs"], "jobs": marker.get("jobs"),
                                       "end": end, "start": end - dt.timedelta(seconds=wall),
                                       "codes": set()})
        entry["codes"].add(run["code_version"])
    return sorted(found.values(), key=lambda g: g["start"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--since", default=None, help="UTC ISO time, e.g. 2026-12-01T22:15")
    parser.add_argument("--project", type=int, default=0, help="seed-epochs to project")
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    rows = groups(args.folder)
    print("| figure/arm | seeds | started – finished (UTC) | process-hours | s per seed-epoch "
          "| jobs | code_version (at the summaries' writing) |")
    print("|---|---|---|---|---|---|---|")
    for g in rows:
        seeds = g["members"]
        span = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
        rate = g["wall_s"] / (len(seeds) * g["epochs"])
        print(f"| {g['figure']}/{g['arm']} | {span} | {g['start']:%H:%M} – {g['end']:%H:%M} | "
              f"{g['wall_s'] / 3600:.2f} | {rate:.2f} | {g['jobs']} | "
              f"{', '.join(sorted(g['codes']))} |")
    total = sum(g["wall_s"] for g in rows)
    seed_epochs = sum(len(g["members"]) * g["epochs"] for g in rows)
    runs = sum(len(g["members"]) for g in rows)
    print(f"\nTotal: {len(rows)} groups, {runs} runs, {seed_epochs} seed-epochs, "
          f"{total / 3600:.2f} process-hours ({total / seed_epochs:.2f} s per seed-epoch); "
          f"first start {rows[0]['start']:%F %H:%M}, last finish {rows[-1]['end']:%F %H:%M} UTC.")
    if args.since:
        since = dt.datetime.fromisoformat(args.since)
        recent = [g for g in rows if g["start"] >= since]
        if recent:
            wall = sum(g["wall_s"] for g in recent)
            se = sum(len(g["members"]) * g["epochs"] for g in recent)
            rates = [g["wall_s"] / (len(g["members"]) * g["epochs"]) for g in recent]
            print(f"Groups started since {args.since}: {len(recent)}, {se} seed-epochs, "
                  f"{wall / 3600:.2f} process-hours; {wall / se:.2f} s per seed-epoch "
                  f"(groups: {min(rates):.2f}–{max(rates):.2f}).")
            if args.project:
                hours = args.project * wall / se / 3600
                print(f"Projection: {args.project} seed-epochs x {wall / se:.2f} s = "
                      f"{hours:.1f} process-hours, {hours / args.procs:.1f} h wall-clock at "
                      f"{args.procs} processes (range {args.project * min(rates) / 3600 / args.procs:.1f}"
                      f"–{args.project * max(rates) / 3600 / args.procs:.1f} h).")


if __name__ == "__main__":
    main()
