"""Exploratory tables of the verdict report (``reproduction/PREREGISTRATION.md`` Sec. 11): raw
p-values and paired BCa CIs per epoch and pair of arms, take-off epochs, gradient quartiles over
seeds, McNemar counts, and the primary tests on seeds 10–24 alone. No verdicts."""
from __future__ import annotations

from typing import List

import numpy as np

from lightning_sig.experiments import paired_stats as ps
from lightning_sig.experiments.verdict_parts import (ACC, CHANCE, GRAD, Arm, apply_holm,
                                                     diff_part, log_ratio_part)
from lightning_sig.experiments import verdicts as v
from lightning_sig.experiments.verdict_tables import Arms, fmt_effect, fmt_p, test_lines

__all__ = ["EPOCHS", "PAIRS", "pair_lines", "takeoff_lines", "quartile_lines",
           "exploratory_lines", "EXPLORATORY_RESAMPLES"]

EPOCHS = (1, 2, 3, 5, 10, 15, 20, 30)
PAIRS = ((v.F1A, v.F1B), (v.F2A, v.F2B), (v.F3A, v.F3B), (v.F3A, v.F3R), (v.F3A, v.F3RR),
         (v.F3RR, v.F3R), (v.F4A, v.F4B), (v.F4A, v.F3A), (v.F4B, v.F3B), (v.A4, v.F2A),
         (v.A8, v.F2A), (v.S_REG, v.F4B), (v.S_SCALED, v.F4B), (v.S_REG, v.F4A),
         (v.S_SCALED, v.F4A), (v.TANH_GRS, v.RELU_HE), (v.TANH_G, v.RELU_HE),
         (v.RELU_HE_REG, v.RELU_HE), (v.TANH_GRS, v.TANH_G))
STATS = ("abs_q50", "abs_q100", "vanishing_frac")
#: Monte Carlo sign vectors of the exploratory p-values (raw, descriptive; the pre-registered
#: tests use paired_stats.MC_RESAMPLES = 100,000): p resolution 1e-4, 10× faster.
EXPLORATORY_RESAMPLES = 10_000


def _left(arm: Arm, epoch: int) -> dict:
    return {s: t <= epoch for s, t in arm.takeoffs().items()}


def pair_lines(a: Arm, b: Arm, epochs=EPOCHS) -> List[str]:
    """Per epoch: paired acc difference and g50 ratio(s) with BCa CIs and raw sign-flip p,
    seeds left chance by then (A/B) and the exact McNemar p of those counts."""
    data = a.has("grad_data_epoch/global/abs_q50") or b.has("grad_data_epoch/global/abs_q50")
    head = ("| epoch | n | acc A − B [CI] | p | A>B/A<B/= | g50 A/B [CI] | p |"
            + (" g50data A/B [CI] | p |" if data else "") + " left chance A, B | McNemar p |")
    lines = ["", f"### {a.spec} (A) vs {b.spec} (B)", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for e in epochs:
        try:
            acc = diff_part("", a.at(ACC, e), b.at(ACC, e), 0, EXPLORATORY_RESAMPLES)
        except ValueError:
            continue
        cells = [str(e), str(acc.n), v_fmt(acc), _p(acc.p), "/".join(map(str, acc.counts))]
        tags = [(GRAD + "abs_q50", GRAD + "abs_q50")]
        if data:
            tags.append((a.data_tag("abs_q50"), b.data_tag("abs_q50")))
        for ta, tb in tags:
            try:
                g = log_ratio_part("", a.at(ta, e), b.at(tb, e), 0, EXPLORATORY_RESAMPLES)
                cells += [v_fmt(g), _p(g.p)]
            except ValueError:
                cells += ["–", "–"]
        la, lb = _left(a, e), _left(b, e)
        common = sorted(set(la) & set(lb))
        if common:
            mc = ps.mcnemar_exact([la[s] for s in common], [lb[s] for s in common])
            cells += [f"{sum(la[s] for s in common)}, {sum(lb[s] for s in common)} of "
                      f"{len(common)}", _p(mc.pvalue)]
        else:
            cells += ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def v_fmt(part) -> str:
    return fmt_effect(part)


def _p(p: float) -> str:
    return fmt_p(p)


def takeoff_lines(arms: List[Arm]) -> List[str]:
    lines = ["", f"Take-off epoch per seed (first epoch with val/acc > {CHANCE:g}; – = not by "
             "epoch 30):", "", "| arm | seeds | seed:epoch |", "|---|---|---|"]
    for arm in arms:
        t = arm.takeoffs()
        cells = " ".join(f"{s}:{e if e <= 30 else '–'}" for s, e in t.items())
        lines.append(f"| {arm.spec} | {len(t)} | {cells} |")
    return lines


def quartile_lines(arms: List[Arm], epochs=EPOCHS) -> List[str]:
    """Median [q25, q75] over seeds of the gradient statistics (total; data-loss for r > 0)."""
    lines = ["", "Gradient statistics, median [q25, q75] over seeds:", "",
             "| arm | statistic | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
             "|---|---|" + "---|" * len(epochs)]
    for arm in arms:
        tags = [GRAD + s for s in STATS]
        if arm.has("grad_data_epoch/global/abs_q50"):
            tags += ["grad_data_epoch/global/" + s for s in STATS]
        for tag in tags:
            cells = []
            for e in epochs:
                x = np.asarray(list(arm.at(tag, e).values()))
                cells.append("–" if x.size == 0 else "{1:.3g} [{0:.3g}, {2:.3g}]".format(
                    *np.quantile(x, [0.25, 0.5, 0.75])))
            lines.append(f"| {arm.spec} | {tag} | " + " | ".join(cells) + " |")
    return lines


def late_seed_lines(folder) -> List[str]:
    """The primary tests on seeds 10–24 only (the seeds the pilot did not have)."""
    arms = Arms(folder, min_seed=10)
    claims = v.primary_claims(arms.get, min_pairs=2)
    apply_holm([t for c in claims for t in c.tests])
    return ["", "### Primary tests on seeds 10–24 alone (Holm over these 16; no verdicts)", ""] \
        + test_lines(claims)


def exploratory_lines(arms) -> List[str]:
    """Every exploratory table for the arms present (``arms``: verdict_tables.Arms)."""
    lines: List[str] = []
    for a, b in PAIRS:
        if arms.get(a) and arms.get(b):
            lines += pair_lines(arms.get(a), arms.get(b))
    present = [arms.get(s) for s in v.ALL_ARMS if arms.get(s)]
    lines += takeoff_lines(present) + quartile_lines(present)
    if any(s >= 10 for arm in present for s in arm.records):
        lines += late_seed_lines(arms.folder)
    return lines
