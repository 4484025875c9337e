"""Assumption runs against the main study, seed by seed (REPRODUCTION.md, "Assumptions").

Each assumption run repeats one arm of the main study with one setting changed, for a few seeds
(3 seeds x 30 epochs). Same seed means same initialisation and data order as the main arm, so
the comparison is paired by seed; with 3 seeds no CI is printed, only per-seed values and the
mean paired difference.

Usage (from the repository root; nothing is written)::

    python reproduction/alt_numbers.py reproduction/alternatives/keras_l2 reproduction/full \\
        fig1_large_params/regularized --epochs 1 5 8 10 12 20 30
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

CHANCE = 0.15  # arm_stats.CHANCE_THRESHOLD
GRAD_STATS = (("total g", "grad_epoch/global/abs_q50"),
              ("data-loss g − r·θ", "grad_data_epoch/global/abs_q50"),
              ("fraction ≤ 1e-8, total g", "grad_epoch/global/vanishing_frac"),
              ("fraction ≤ 1e-8, data-loss g", "grad_data_epoch/global/vanishing_frac"))


def load(folder: Path, spec: str) -> Dict[int, dict]:
    return {json.loads(p.read_text())["seed"]: json.loads(p.read_text())
            for p in sorted((folder / spec).glob("seed_*.json"))}


def series(run: dict, tag: str) -> Optional[List[float]]:
    entry = run["series"].get(tag)
    return entry["value"] if entry else None


def takeoff(run: dict) -> str:
    acc = series(run, "val/acc")
    return next((str(i + 1) for i, v in enumerate(acc) if v > CHANCE), "–")


def fmt(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alt", type=Path, help="summaries folder of the assumption run")
    parser.add_argument("main", type=Path, help="summaries folder of the main study")
    parser.add_argument("spec", help="<figure>/<arm>")
    parser.add_argument("--epochs", nargs="+", type=int, required=True)
    args = parser.parse_args()
    alt, ref = load(args.alt, args.spec), load(args.main, args.spec)
    seeds = sorted(s for s in alt if s in ref)
    first = alt[seeds[0]]
    hp = {k: first["hparams"].get(k) for k in ("l2_strength", "adam_eps")}
    print(f"{args.spec}: {args.alt} ({', '.join(f'{k} {v}' for k, v in hp.items())}; "
          f"code {first['code_version']}) against {args.main}, seeds {seeds}\n")
    eps = args.epochs
    print("| val/acc | seed | take-off | " + " | ".join(f"epoch {e}" for e in eps) + " |")
    print("|---|---|---|" + "---|" * len(eps))
    for s in seeds:
        for name, run in (("assumption", alt[s]), ("main", ref[s])):
            acc = series(run, "val/acc")
            print(f"| {name} | {s} | {takeoff(run)} | "
                  + " | ".join(f"{acc[e - 1]:.3f}" for e in eps) + " |")
    diffs = [[series(alt[s], "val/acc")[e - 1] - series(ref[s], "val/acc")[e - 1] for s in seeds]
             for e in eps]
    print(f"| mean paired difference, assumption − main | {len(seeds)} seeds | | "
          + " | ".join(f"{sum(d) / len(d):+.3f}" for d in diffs) + " |")
    print(f"| per-seed differences: min, max | | | "
          + " | ".join(f"{min(d):+.3f}, {max(d):+.3f}" for d in diffs) + " |")
    print()
    print("| gradient (epoch mean of the per-step statistic) | run | "
          + " | ".join(f"epoch {e}" for e in eps) + " |")
    print("|---|---|" + "---|" * len(eps))
    for label, tag in GRAD_STATS:
        for name, runs in (("assumption", alt), ("main", ref)):
            vals = [series(runs[s], tag) for s in seeds]
            if any(v is None for v in vals):
                continue
            cells = []
            for e in eps:
                per_seed = sorted(v[e - 1] for v in vals)
                cells.append(f"{fmt(per_seed[len(per_seed) // 2])} "
                             f"({fmt(per_seed[0])}–{fmt(per_seed[-1])})")
            print(f"| {label}: median (min–max) over seeds | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
