"""The pre-registered claims of ``reproduction/PREREGISTRATION.md`` (Ven & Lederer, arXiv
2106.02260, Sec. 3 and Appendices B–C; secondary claims of issue 20, part 5), each built from
the run summaries: its tests (P1–P16 primary, S1, S3–S5 secondary), conditions and rule.

Every function here follows the pre-registration's section of the same name; the statistics are
:mod:`lightning_sig.experiments.paired_stats`, the machinery
:mod:`lightning_sig.experiments.verdict_parts`, the report and command line
:mod:`lightning_sig.experiments.verdict_report` (``python -m lightning_sig.experiments.verdict_report``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from lightning_sig.experiments.figure_table import seed_wall_time
from lightning_sig.experiments.verdict_parts import (ACC, GRAD, LAST_EPOCH, Arm, Hypothesis,
                                                     diff_part, explodes, log_ratio_part, make_test,
                                                     one_sided_part, paired_diffs, takeoff_part,
                                                     tost_part)

__all__ = ["CONSIDERABLE", "MIN_PAIRS", "Claim", "primary_claims", "secondary_claims",
           "descriptive_claims", "ALL_ARMS", "GROUPS"]

CONSIDERABLE = 0.05  # mean val/acc difference called "considerable" (assumption, Sec. 2)
MIN_PAIRS = {"primary": 20, "secondary": 8}
F1A, F1B = "fig1_large_params/regularized", "fig1_large_params/unregularized"
F2A, F2B = "fig2_many_layers/scaled", "fig2_many_layers/unscaled"
F3A, F3B = "fig3_combined/tanh_reg_scaled", "fig3_combined/tanh"
F3R, F3RR = "fig3_combined/relu", "fig3_combined/relu_reg"
F4A, F4B = "fig4_logistic/sigmoid_reg_scaled", "fig4_logistic/sigmoid"
# the arms beyond the paper (PREREGISTRATION.md Sec. 10): <summaries>/beyond/<figure>/<arm>/
A4, A8 = "beyond/fig2_alpha/alpha4", "beyond/fig2_alpha/alpha8"
S_REG, S_SCALED = "beyond/fig4_remedies/sigmoid_reg", "beyond/fig4_remedies/sigmoid_scaled"
RELU_HE, TANH_GRS = "beyond/fig3_usual_init/relu_he", "beyond/fig3_usual_init/tanh_glorot_reg_scaled"
RELU_HE_REG, TANH_G = "beyond/fig3_usual_init/relu_he_reg", "beyond/fig3_usual_init/tanh_glorot"
ALL_ARMS = (F1A, F1B, F2A, F2B, F3A, F3B, F3R, F3RR, F4A, F4B, A4, A8, S_REG, S_SCALED,
            RELU_HE, RELU_HE_REG, TANH_G, TANH_GRS)

#: the groups of arms compared by the claims (each must be one code: provenance check)
GROUPS = ((F1A, F1B), (F2A, F2B), (F3A, F3B), (F3A, F3R, F3RR), (F4A, F4B, F3A, F3B),
          (A4, A8, F2A), (S_REG, F4B), (S_SCALED, F4B), (TANH_GRS, RELU_HE))

Get = Callable[[str], Arm]
Condition = Tuple[str, Optional[bool]]


@dataclass
class Claim:
    """One claim: its tests, conditions and rule ("main", "parts" or "descriptive")."""
    cid: str
    family: str  # "primary" | "secondary" | "descriptive"
    quote: str
    rule: str
    arms: Tuple[str, ...]
    tests: List[Hypothesis] = field(default_factory=list)
    conditions: List[Condition] = field(default_factory=list)
    outcome: str = ""  # the verdict of a descriptive criterion, else set after Holm


def _name(spec: str) -> str:
    return spec.rsplit("/", 1)[1]


def _cond(text: str, compute: Callable[[], Tuple[bool, str]]) -> Condition:
    """(text with the computed detail, truth); None where the data do not allow it."""
    try:
        value, detail = compute()
    except (ValueError, KeyError, IndexError, ZeroDivisionError) as err:
        return f"{text} (not computable: {err})", None
    return f"{text} ({detail})", bool(value)


def acc_part(a: Arm, b: Arm, epoch: int, sign: int = +1):
    return diff_part(f"acc({epoch}) {_name(a.spec)} − {_name(b.spec)}", a.at(ACC, epoch),
                     b.at(ACC, epoch), sign)


def g50_part(a: Arm, b: Arm, epoch: int, data: bool):
    ta = a.data_tag("abs_q50") if data else GRAD + "abs_q50"
    tb = b.data_tag("abs_q50") if data else GRAD + "abs_q50"
    which = "g50data" if data else "g50"
    return log_ratio_part(f"{which}({epoch}) {_name(a.spec)} / {_name(b.spec)}", a.at(ta, epoch),
                          b.at(tb, epoch), +1)


def curve_mean(arm: Arm, tag: str, first: int = 1) -> Dict[int, float]:
    """seed → mean of ``tag`` over epochs first..30 (runs with all 30 epochs only)."""
    return {s: float(np.mean(v[first - 1:LAST_EPOCH])) for s, v in arm.curves(tag).items()
            if len(v) >= LAST_EPOCH}


def _share(values: List[bool]) -> Tuple[float, str]:
    if not values:
        raise ValueError("no seeds")
    return sum(values) / len(values), f"{sum(values)}/{len(values)} seeds"


def _vanishing_condition(arm: Arm) -> Condition:
    """≥ 90 % of the arm's seeds have vanishing_frac ≤ 0.01 at every epoch 5–30 (total and
    data-loss gradient)."""
    def compute():
        tags = dict.fromkeys([GRAD + "vanishing_frac", arm.data_tag("vanishing_frac")])
        curves = [arm.curves(t) for t in tags]
        ok = [all(len(c[s]) >= LAST_EPOCH and np.all(c[s][4:LAST_EPOCH] <= 0.01) for c in curves)
              for s in curves[0]]
        share, text = _share(ok)
        return share >= 0.9, text
    return _cond("≥ 90 % of A's seeds with vanishing_frac ≤ 0.01 at every epoch 5–30", compute)


def _considerable(test: Hypothesis) -> Condition:
    def compute():
        if not test.parts:
            raise ValueError("no data")
        return (all(p.effect >= CONSIDERABLE for p in test.parts),
                ", ".join(f"{p.effect:+.3f}" for p in test.parts))
    return _cond(f"mean difference ≥ {CONSIDERABLE:g} in every part", compute)


def figure1(get: Get, m: int) -> List[Claim]:
    a, b = get(F1A), get(F1B)
    p1 = make_test("P1", lambda: [tost_part(f"acc({e}) regularized − unregularized", paired_diffs(
        a.at(ACC, e), b.at(ACC, e)), 0.02) for e in range(1, 6)], m, (a, b))
    p2 = make_test("P2", lambda: [acc_part(a, b, e) for e in (10, 20, 30)], m, (a, b))

    def med() -> float:
        t = list(a.takeoffs().values())
        if not t:
            raise ValueError("no take-off times")
        return float(np.median(t))
    p3 = make_test("P3", lambda: [g50_part(a, b, 1, False)], m, (a, b))
    p4 = make_test("P4", lambda: [g50_part(a, b, 1, True)], m, (a, b))
    g = GRAD + "abs_q50"
    p5 = make_test("P5", lambda: [log_ratio_part("g50(30) / g50(1) within regularized",
                                                 a.at(g, 30), a.at(g, 1), -1)], m, (a,))

    def smaller_after_takeoff():
        curves, t = a.curves(g), a.takeoffs()
        ok = [curves[s][29] < curves[s][t[s] - 1] for s in t if t[s] <= LAST_EPOCH]
        return 2 * sum(ok) > len(ok) > 0, f"{sum(ok)}/{len(ok)} taken-off seeds"
    vf = GRAD + "vanishing_frac"
    p6 = make_test("P6", lambda: [diff_part("mean vf(1..30) regularized − unregularized",
                                            curve_mean(a, vf), curve_mean(b, vf), -1)], m, (a, b))
    arms = (F1A, F1B)
    return [
        Claim("F1.1", "primary", "perform very similarly initially", "main", arms, [p1]),
        Claim("F1.2", "primary", "after about ten epochs, the regularization improves the "
              "accuracies considerably", "main", arms, [p2], [_considerable(p2), _cond(
                  "median take-off epoch of A in 6..15", lambda: (6 <= med() <= 15, f"{med():g}"))]),
        Claim("F1.3", "primary", "regularization leads to larger gradients in the beginning",
              "parts", arms, [p3, p4]),
        Claim("F1.5", "primary", "the gradients become smaller as the training algorithm "
              "reaches more favorable regions", "main", arms, [p5], [_cond(
                  "g50(30) < g50(take-off) in more than half of A's taken-off seeds",
                  smaller_after_takeoff)]),
        Claim("F1.6", "primary", "regularization can indeed avoid the vanishing-gradient "
              "problem", "main", arms, [p6], [_vanishing_condition(a)])]


def figure2(get: Get, m: int) -> List[Claim]:
    a, b = get(F2A), get(F2B)
    p7 = make_test("P7", lambda: [g50_part(a, b, 1, False)], m, (a, b))
    p8 = make_test("P8", lambda: [takeoff_part("take-off: unscaled − scaled (epochs)",
                                               a.takeoffs(), b.takeoffs())], m, (a, b))

    def lc_gain() -> Tuple[bool, str]:
        d = list(paired_diffs(curve_mean(a, ACC), curve_mean(b, ACC)).values())
        if not d:
            raise ValueError("no paired 30-epoch runs")
        return float(np.mean(d)) >= CONSIDERABLE, f"{np.mean(d):+.3f}"
    p9 = make_test("P9", lambda: [acc_part(a, b, 1)], m, (a, b))
    vf = GRAD + "vanishing_frac"
    p10 = make_test("P10", lambda: [diff_part("mean vf(1..30) scaled − unscaled",
                                              curve_mean(a, vf), curve_mean(b, vf), -1)], m, (a, b))
    arms = (F2A, F2B)
    return [
        Claim("F2.1", "primary", "the larger gradients in the beginning", "main", arms, [p7]),
        Claim("F2.2", "primary", "speed up parameter training considerably", "main", arms, [p8],
              [_cond(f"mean paired difference of learning-curve means ≥ {CONSIDERABLE:g}",
                     lc_gain)]),
        Claim("F2.3", "primary", "the improvements kick in immediately (indicating that there "
              "are no plateaux …)", "parts", arms, [p9], [_cond(
                  "≥ 80 % of A's seeds left chance by epoch 2", lambda: (lambda s: (
                      s[0] >= 0.8, s[1]))(_share([t <= 2 for t in a.takeoffs().values()])))]),
        Claim("F2.4", "primary", "the scaling trick can avoid the vanishing-gradient problem",
              "main", arms, [p10], [_vanishing_condition(a)])]


def figure3_4(get: Get, m: int) -> List[Claim]:
    a, b, relu, relu_reg = get(F3A), get(F3B), get(F3R), get(F3RR)
    s_a, s_b = get(F4A), get(F4B)
    p11 = make_test("P11", lambda: [acc_part(a, b, 30)], m, (a, b))
    p12 = make_test("P12", lambda: [g50_part(a, b, 1, False)], m, (a, b))
    p13 = make_test("P13", lambda: [g50_part(a, b, 1, True)], m, (a, b))
    p14 = make_test("P14", lambda: [acc_part(a, relu, 30), acc_part(a, relu_reg, 30)], m,
                    (a, relu, relu_reg))
    p15 = make_test("P15", lambda: [acc_part(s_a, s_b, 30)], m, (s_a, s_b))
    did = lambda: paired_diffs(paired_diffs(s_a.at(ACC, 30), s_b.at(ACC, 30)),  # noqa: E731
                               paired_diffs(a.at(ACC, 30), b.at(ACC, 30)))
    p16 = make_test("P16", lambda: [tost_part("acc(30) remedy effect σ − remedy effect tanh",
                                              did(), CONSIDERABLE)], m, (s_a, s_b, a, b))
    return [
        Claim("F3.1", "primary", "the two remedies can indeed be combined", "main", (F3A, F3B),
              [p11], [_considerable(p11)]),
        Claim("F3.2", "primary", "The results here corroborate the results above (gradients)",
              "parts", (F3A, F3B), [p12, p13]),
        Claim("F3.3", "primary", "relu, in this specific example, is not performing well", "main",
              (F3A, F3R, F3RR), [p14], [_considerable(p14)]),
        Claim("F4", "primary", "We obtain virtually the same results as before.", "main",
              (F4A, F4B, F3A, F3B), [p15, p16])]


def primary_claims(get: Get, min_pairs: int = MIN_PAIRS["primary"]) -> List[Claim]:
    """Claims F1.1–F4 with tests P1–P16 (PREREGISTRATION.md Sec. 5–8), before Holm."""
    return figure1(get, min_pairs) + figure2(get, min_pairs) + figure3_4(get, min_pairs)


def secondary_claims(get: Get, min_pairs: int = MIN_PAIRS["secondary"]) -> List[Claim]:
    """S1, S3, S4, S5 (PREREGISTRATION.md Sec. 10), before Holm."""
    sigmoid = get(F4B)
    lc = {spec: (lambda s=spec: curve_mean(get(s), ACC)) for spec in (A4, A8, F2A)}
    s1 = make_test("S1", lambda: [one_sided_part(f"learning-curve mean {_name(k)} − scaled",
                                                 paired_diffs(lc[k](), lc[F2A]()), CONSIDERABLE,
                                                 "less") for k in (A4, A8)], min_pairs,
                   [get(k) for k in (A4, A8, F2A)])
    s3 = make_test("S3", lambda: [acc_part(get(S_REG), sigmoid, 30)], min_pairs,
                   (get(S_REG), sigmoid))
    s4 = make_test("S4", lambda: [acc_part(get(S_SCALED), sigmoid, 30)], min_pairs,
                   (get(S_SCALED), sigmoid))
    s5 = make_test("S5", lambda: [one_sided_part(
        "acc(30) tanh_glorot_reg_scaled − relu_he", paired_diffs(
            get(TANH_GRS).at(ACC, 30), get(RELU_HE).at(ACC, 30)), -CONSIDERABLE, "greater")],
        min_pairs, (get(TANH_GRS), get(RELU_HE)))
    return [
        Claim("S1", "secondary", "the fixed choice α = 2 is sufficient in practice", "main",
              (A4, A8, F2A), [s1]),
        Claim("S3", "secondary", "σ + r alone carries Figure 4's result", "main", (S_REG, F4B),
              [s3], [_considerable(s3)]),
        Claim("S4", "secondary", "σ + α alone carries Figure 4's result", "main",
              (S_SCALED, F4B), [s4], [_considerable(s4)]),
        Claim("S5", "secondary", "sigmoid-type activation is a serious contender", "main",
              (TANH_GRS, RELU_HE), [s5])]


def _explosion(cid: str, quote: str, get: Get, specs: Tuple[str, ...], others: Tuple[str, ...]
               ) -> Claim:
    arms = [get(s) for s in specs]
    runs = [(arm, s) for arm in arms for s in arm.records]
    n = sum(explodes(arm, s) for arm, s in runs)
    extra = "; ".join(f"{_name(o)}: {sum(explodes(get(o), s) for s in get(o).records)}/"
                      f"{len(get(o).records)}" for o in others)
    outcome = ("not testable" if not runs else "reproduced" if n == 0 else
               "mixed" if n <= 2 else "not reproduced")
    text = f"seeds exploding: {n}/{len(runs)}" + (f" (for comparison {extra})" if extra else "")
    return Claim(cid, "descriptive", quote, "descriptive", specs, [], [(text, n == 0)], outcome)


def _table4(get: Get) -> Claim:
    def ratio(a: str, b: str) -> float:
        wa, wb = ([seed_wall_time(r["marker"]) for r in get(s).records.values()
                   if (r.get("marker") or {}).get("wall_time_s")] for s in (a, b))
        if not wa or not wb:
            raise ValueError(f"no wall times for {a if not wa else b}")
        return float(np.mean(wa) / np.mean(wb))
    try:
        ratios = [ratio(F3A, F3B), ratio(F3RR, F3R)]
        outcome = "consistent with" if max(ratios) <= 1.36 else "not consistent with"
        text = (f"wall-time ratio tanh_reg_scaled/tanh {ratios[0]:.3f}, relu_reg/relu "
                f"{ratios[1]:.3f} (paper: 1.31, 1.36)")
    except ValueError as err:
        outcome, text = "not testable", str(err)
    return Claim("D3", "descriptive", "our two remedies do not involve significant computational "
                 "overhead", "descriptive", (F3A, F3B, F3R, F3RR), [], [(text, None)], outcome)


def descriptive_claims(get: Get) -> List[Claim]:
    """D1 (F1.4), D2 (F2.5), S2 and D3 (Table 4): criteria without a p-value."""
    return [
        _explosion("D1 (F1.4)", "regularization does not lead to exploding gradients either", get,
                   (F1A,), (F1B,)),
        _explosion("D2 (F2.5)", "again without leading to an exploding-gradient problem", get,
                   (F2A,), (F2B,)),
        _explosion("S2", "does not lead to exploding for any practical choice of α", get,
                   (A4, A8), (F2A,)),
        _table4(get)]
