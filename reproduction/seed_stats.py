"""Per-seed numbers behind REPRODUCTION.md that `lightning_sig.experiments.arm_stats` does not print.

For arms given as ``<figure>/<arm>`` (arms of different figures may be compared), from a folder
of run summaries (``reproduction/full``):

* take-off: per seed, the first epoch whose val/acc exceeds arm_stats' CHANCE_THRESHOLD (0.15);
* gradient statistics: per arm, epoch and statistic, the median [q25, q75] over seeds of the
  epoch mean, for the total gradient (``grad_epoch/global/*``) and, where the arm has r > 0,
  the data-loss gradient (``grad_data_epoch/global/*``; for r = 0 the two are the same);
* ``--log-ratio STAT`` (two arms): per epoch and gradient source, the ratio of the two arms'
  geometric means over the seeds both have, 10^mean(log10 A_s − log10 B_s), with its paired
  BCa bootstrap 95 % CI and sign-flip p (``lightning_sig.experiments.paired_stats``; values
  below 1e-38 floored there, with a note);
* ``--acc-diff`` (two arms): the mean paired val/acc difference A − B with its paired BCa CI
  and sign-flip p (as arm_stats, also across figures).

Exploratory numbers; the pre-registered verdicts are ``reproduction/verdicts.py``.

Usage (from the repository root; nothing is written)::

    python reproduction/seed_stats.py reproduction/full --arms fig1_large_params/regularized \\
        fig1_large_params/unregularized --epochs 1 5 10 30 --stats abs_q50 vanishing_frac \\
        --log-ratio abs_q50
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from lightning_sig.experiments import paired_stats as ps
from lightning_sig.experiments import summary
from lightning_sig.experiments.arm_stats import CHANCE_THRESHOLD, paired_difference, \
    values_by_epoch

SOURCES = (("total g", "grad_epoch/global/"), ("data-loss g − r·θ", "grad_data_epoch/global/"))


def _load(folder: Path, spec: str) -> List:
    figure, _, arm = spec.partition("/")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing seeds of a running study: counted below
        try:
            runs = summary.load_summaries(folder, figure)
        except ValueError:  # the figure has no summaries yet
            return []
    return [r for r in runs if r.arm == arm]


def _fmt(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def _has(runs: Sequence, tag: str) -> bool:
    return any(r.series.get(tag) for r in runs)


def takeoff_lines(arms: Dict[str, List]) -> List[str]:
    lines = [f"| arm | seeds | first epoch with val/acc > {CHANCE_THRESHOLD:g}, per seed "
             "(seed:epoch; – = never) | epochs run |", "|---|---|---|---|"]
    for spec, runs in arms.items():
        cells, lengths = [], set()
        for run in sorted(runs, key=lambda r: r.seed):
            points = run.series.get("val/acc", [])
            lengths.add(len(points))
            first = next((p.epoch for p in points if p.value > CHANCE_THRESHOLD), None)
            cells.append(f"{run.seed}:{first if first is not None else '–'}")
        lines.append(f"| {spec} | {len(runs)} | {' '.join(cells)} | "
                     f"{'/'.join(str(n) for n in sorted(lengths))} |")
    return lines


def gradient_lines(arms: Dict[str, List], stats: Sequence[str], epochs: Sequence[int]) -> List[str]:
    lines = ["| arm | gradient | statistic | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
             "|---|---|---|" + "---|" * len(epochs)]
    for spec, runs in arms.items():
        for source, prefix in SOURCES:
            if prefix.startswith("grad_data") and not _has(runs, prefix + stats[0]):
                continue  # r = 0: the data-loss gradient is the total one
            for stat in stats:
                table = values_by_epoch(runs, runs[0].arm if runs else "", prefix + stat)
                cells = []
                for epoch in epochs:
                    v = np.asarray(list(table.get(epoch, {}).values()), dtype=np.float64)
                    if v.size == 0:
                        cells.append("–")
                        continue
                    q25, med, q75 = np.quantile(v, [0.25, 0.5, 0.75])
                    cells.append(f"{_fmt(med)} [{_fmt(q25)}, {_fmt(q75)}]")
                lines.append(f"| {spec} | {source} | {stat} | " + " | ".join(cells) + " |")
    n = {spec: len(runs) for spec, runs in arms.items()}
    lines.append("")
    lines.append("Cells: median [q25, q75] over seeds of each run's epoch mean; seeds: "
                 + ", ".join(f"{s} {k}" for s, k in n.items()) + ".")
    return lines


def _values(runs: Sequence, tag: str, epoch: int) -> Dict[int, float]:
    """seed → value of ``tag`` at ``epoch``."""
    arm = runs[0].arm if runs else ""
    return dict(values_by_epoch(runs, arm, tag).get(epoch, {}))


def log_ratio_lines(arms: Dict[str, List], stat: str, epochs: Sequence[int]) -> List[str]:
    (name_a, a), (name_b, b) = arms.items()
    lines = [f"| gradient | epoch | pairs | {stat}: geometric-mean ratio {name_a} / {name_b} | "
             "paired BCa 95 % CI | sign-flip p |", "|---|---|---|---|---|---|"]
    for source, prefix in SOURCES:
        tag_a = prefix + stat if _has(a, prefix + stat) else "grad_epoch/global/" + stat
        tag_b = prefix + stat if _has(b, prefix + stat) else "grad_epoch/global/" + stat
        if prefix.startswith("grad_data") and tag_a == tag_b == "grad_epoch/global/" + stat:
            continue
        for epoch in epochs:
            va, vb = _values(a, tag_a, epoch), _values(b, tag_b, epoch)
            if len(set(va) & set(vb)) < 2:
                continue
            pairs = ps.pair_by_seed(va, vb)
            (fa, na), (fb, nb) = ps.floor_positive(pairs.a), ps.floor_positive(pairs.b)
            ci = ps.bootstrap_log_ratio(fa, fb)
            p = ps.sign_flip_test(np.log10(fa) - np.log10(fb)).pvalue
            note = f" ({na + nb} value(s) floored at 1e-38)" if na + nb else ""
            lines.append(f"| {source} | {epoch} | {len(pairs.seeds)} | {ci.estimate:.3g}{note} | "
                         f"[{ci.low:.3g}, {ci.high:.3g}] | {p:.3g} |")
    return lines


def acc_diff_lines(arms: Dict[str, List], epochs: Sequence[int]) -> List[str]:
    (name_a, a), (name_b, b) = arms.items()
    lines = [f"| epoch | pairs | mean paired val/acc {name_a} − {name_b} | paired BCa 95 % CI | "
             "sign-flip p |", "|---|---|---|---|---|"]
    for epoch in epochs:
        va, vb = _values(a, "val/acc", epoch), _values(b, "val/acc", epoch)
        if len(set(va) & set(vb)) >= 2:
            n, diff, low, high, p, _ = paired_difference(va, vb)
            lines.append(f"| {epoch} | {n} | {diff:+.4f} | [{low:+.4f}, {high:+.4f}] | {p:.3g} |")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--arms", nargs="+", required=True, help="<figure>/<arm> ...")
    parser.add_argument("--epochs", nargs="+", type=int, required=True)
    parser.add_argument("--stats", nargs="*", default=["abs_q50", "vanishing_frac"])
    parser.add_argument("--log-ratio", default=None, metavar="STAT")
    parser.add_argument("--acc-diff", action="store_true")
    args = parser.parse_args(argv)
    arms = {spec: _load(args.folder, spec) for spec in args.arms}
    missing = [spec for spec, runs in arms.items() if not runs]
    if missing:
        print(f"no summaries yet for: {', '.join(missing)}")
        arms = {s: r for s, r in arms.items() if r}
        if not arms:
            return 0
    out = takeoff_lines(arms)
    if args.stats:
        out += [""] + gradient_lines(arms, args.stats, args.epochs)
    if len(arms) == 2 and args.log_ratio:
        out += [""] + log_ratio_lines(arms, args.log_ratio, args.epochs)
    if len(arms) == 2 and args.acc_diff:
        out += [""] + acc_diff_lines(arms, args.epochs)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
