"""Statistics over seeds behind the reproduction's tables: per arm and epoch the median and
interquartile range of a tag, how many seeds left chance, and the paired difference between two
arms (mean over the seeds both arms have, paired BCa bootstrap 95 % CI, sign-flip p;
:mod:`lightning_sig.experiments.paired_stats`). The pre-registered verdicts are
:mod:`lightning_sig.experiments.verdict_report`.

``python -m lightning_sig.experiments.arm_stats reproduction/full fig1_large_params --arms
regularized unregularized --epochs 10 20 30`` prints the Markdown tables REPRODUCTION.md quotes.
Inputs are a sweep folder or a summaries folder (:mod:`lightning_sig.experiments.summary`).

Choices the paper does not make (assumptions): "left chance" means val/acc > 0.15 (chance is
0.10 for CIFAR-10's ten balanced classes). Both arms of a figure share each seed's
initialisation and data order, so differences are paired by seed (an unpaired bootstrap, used
here before issue 20, can both hide and invent differences).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lightning_sig.experiments import paired_stats as ps

__all__ = ["CHANCE_THRESHOLD", "values_by_epoch", "epoch_table", "left_chance",
           "paired_difference", "main"]

#: val/acc above this counts as "left chance" (fraction; chance is 0.10).
CHANCE_THRESHOLD = 0.15


def values_by_epoch(runs: Sequence, arm: str, tag: str = "val/acc") -> Dict[int, Dict[int, float]]:
    """epoch → seed → value of ``tag`` for the runs (``RunLog``) of ``arm``."""
    table: Dict[int, Dict[int, float]] = {}
    for run in runs:
        if run.arm == arm:
            for point in run.series.get(tag, []):
                table.setdefault(point.epoch, {})[run.seed] = point.value
    return table


def epoch_table(values: Dict[int, Dict[int, float]]) -> List[Tuple[int, int, float, float, float]]:
    """(epoch, n seeds, median, q25, q75) per epoch (numpy "linear" quantiles over seeds)."""
    rows = []
    for epoch in sorted(values):
        v = np.asarray(list(values[epoch].values()), dtype=np.float64)
        q25, median, q75 = np.quantile(v, [0.25, 0.5, 0.75])
        rows.append((epoch, len(v), float(median), float(q25), float(q75)))
    return rows


def left_chance(values: Dict[int, Dict[int, float]], epoch: int,
                threshold: float = CHANCE_THRESHOLD) -> Tuple[int, int]:
    """(seeds whose value exceeded ``threshold`` at some epoch ≤ ``epoch``, seeds at ``epoch``)."""
    seeds = set(values.get(epoch, {}))
    left = {s for e, by_seed in values.items() if e <= epoch
            for s, v in by_seed.items() if v > threshold and s in seeds}
    return len(left), len(seeds)


def paired_difference(a: Dict[int, float], b: Dict[int, float]) -> Tuple[int, float, float, float,
                                                                    float, Tuple[int, ...]]:
    """(n pairs, mean of a_s − b_s, BCa 95 % CI low, high, two-sided sign-flip p, seeds dropped)
    over the seeds both arms have (``a``, ``b``: seed → value).

    Raises:
        ValueError: fewer than 2 common seeds.
    """
    pairs = ps.pair_by_seed(a, b)
    ci = ps.bootstrap_mean_difference(pairs.a, pairs.b)
    p = ps.sign_flip_test(pairs.a - pairs.b).pvalue
    return len(pairs.seeds), ci.estimate, ci.low, ci.high, p, pairs.only_a + pairs.only_b


def _markdown(runs: Sequence, arms: Sequence[str], epochs: Sequence[int]) -> List[str]:
    lines = ["| arm | epoch | seeds | median val/acc | IQR | seeds left chance by then |",
             "|---|---|---|---|---|---|"]
    tables = {arm: values_by_epoch(runs, arm) for arm in arms}
    for arm in arms:
        for epoch, n, median, q25, q75 in epoch_table(tables[arm]):
            if epoch in epochs:
                left, total = left_chance(tables[arm], epoch)
                lines.append(f"| {arm} | {epoch} | {n} | {median:.4f} | {q25:.4f}–{q75:.4f} | "
                             f"{left}/{total} |")
    if len(arms) == 2:
        lines += ["", f"| epoch | pairs | mean paired val/acc {arms[0]} − {arms[1]} | paired BCa "
                  "95 % CI | sign-flip p |", "|---|---|---|---|---|"]
        for epoch in epochs:
            a, b = tables[arms[0]].get(epoch, {}), tables[arms[1]].get(epoch, {})
            if len(set(a) & set(b)) >= 2:
                n, diff, low, high, p, dropped = paired_difference(a, b)
                extra = f" (seeds {list(dropped)} unpaired)" if dropped else ""
                lines.append(f"| {epoch} | {n}{extra} | {diff:+.4f} | [{low:+.4f}, {high:+.4f}] | "
                             f"{p:.3g} |")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the tables for one figure's arms at the given epochs; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m lightning_sig.experiments.arm_stats",
                                     allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a summaries folder (or a sweep's --out)")
    parser.add_argument("figure")
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--epochs", nargs="+", type=int, required=True)
    args = parser.parse_args(argv)
    from lightning_sig.experiments import summary
    from lightning_sig.experiments.figure_data import load_figure
    if any(args.folder.rglob("seed_*.json")):
        runs = summary.load_summaries(args.folder, args.figure, ["val/acc"])
    else:
        runs = load_figure(args.folder, args.figure, ["val/acc"])
    print("\n".join(_markdown(runs, args.arms, args.epochs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
