"""Building blocks of the pre-registered verdicts (``reproduction/PREREGISTRATION.md``): arms read
from a summaries folder, paired comparisons ("parts") with their tests, tests made of parts
(intersection–union), Holm over a family, and the verdict rules. The claims themselves are in
:mod:`lightning_sig.experiments.verdicts`.

Conventions: epochs are 1-based (epoch e = the e-th value of a series); a comparison "A vs B"
pairs the seeds both arms have (:func:`~lightning_sig.experiments.paired_stats.pair_by_seed`);
a part's ``sign`` is the claimed sign of mean(A − B) (+1, −1, or 0 for tests whose direction is
built in: TOST, non-inferiority).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lightning_sig.experiments import paired_stats as ps
from lightning_sig.experiments import summary
from lightning_sig.experiments.provenance_check import provenance_of

__all__ = ["ALPHA", "CHANCE", "LAST_EPOCH", "ACC", "Arm", "load_arm", "Part", "Hypothesis",
           "diff_part", "log_ratio_part", "takeoff_part", "tost_part", "one_sided_part",
           "make_test", "apply_holm", "verdict", "explodes"]

ALPHA = 0.05
CHANCE = 0.15  # "left chance": val/acc above this (chance is 0.10)
LAST_EPOCH = 30  # common censoring epoch of the take-off times
ACC = "val/acc"
GRAD = "grad_epoch/global/"
GRAD_DATA = "grad_data_epoch/global/"


class Arm:
    """The runs of one ``<figure>/<arm>``: seed → parsed summary (schema /1 or /2)."""

    def __init__(self, spec: str, records: Dict[int, dict]):
        self.spec, self.records = spec, dict(sorted(records.items()))

    def __bool__(self) -> bool:
        return bool(self.records)

    def has(self, tag: str) -> bool:
        return any(tag in r["series"] for r in self.records.values())

    def curves(self, tag: str) -> Dict[int, np.ndarray]:
        """seed → the tag's values per epoch (float64 of the stored float32); seeds without it
        are left out."""
        return {s: np.asarray(r["series"][tag]["value"], dtype=np.float64)
                for s, r in self.records.items() if tag in r["series"]}

    def at(self, tag: str, epoch: int) -> Dict[int, float]:
        """seed → value of ``tag`` at ``epoch`` (1-based), for the seeds that logged it."""
        return {s: float(v[epoch - 1]) for s, v in self.curves(tag).items() if len(v) >= epoch}

    def data_tag(self, stat: str) -> str:
        """The data-loss gradient's tag of ``stat``: ``grad_data_epoch/global/<stat>``, or for an
        arm with r = 0 (which logs none: it equals the total) ``grad_epoch/global/<stat>``.

        Raises:
            ValueError: the arm has r > 0 but no data-loss series.
        """
        if self.has(GRAD_DATA + stat):
            return GRAD_DATA + stat
        r = {float(rec.get("hparams", {}).get("l2_strength", 0.0)) for rec in self.records.values()}
        if r - {0.0}:
            raise ValueError(f"{self.spec} has r = {sorted(r)} but no {GRAD_DATA}{stat} series")
        return GRAD + stat

    def takeoffs(self) -> Dict[int, int]:
        """seed → take-off epoch (censored: LAST_EPOCH + 1); runs shorter than LAST_EPOCH
        epochs are left out, with a warning."""
        out = {}
        for seed, values in self.curves(ACC).items():
            if len(values) < LAST_EPOCH:
                warnings.warn(f"{self.spec} seed {seed}: {len(values)} of {LAST_EPOCH} epochs; "
                              "left out of the take-off times")
                continue
            out[seed] = ps.takeoff_epoch(values, CHANCE, LAST_EPOCH)
        return out

    def provenances(self) -> Dict[int, Optional[dict]]:
        return {s: provenance_of(r) for s, r in self.records.items()}


def load_arm(folder: Path, spec: str) -> Arm:
    """The arm ``[<sub>/]<figure>/<arm>`` of a summaries folder (empty if it has no summaries):
    ``<folder>/<sub>/<figure>/<arm>/seed_<s>.json``; ``sub`` is ``beyond`` for the arms beyond
    the paper (``reproduction/study/beyond/``).

    Raises:
        ValueError: ``spec`` has no ``<figure>/<arm>``, or a file is not a run summary.
    """
    *sub, figure, arm = spec.split("/") if spec.count("/") else ("", "")
    if not figure or not arm:
        raise ValueError(f"arm {spec!r} is not '[<sub>/]<figure>/<arm>'")
    root = Path(folder).joinpath(*sub)
    paths = summary.find_summaries(root).get(figure, {}).get(arm, {}) if root.is_dir() else {}
    return Arm(spec, {seed: summary.read_summary(p) for seed, p in paths.items()})


@dataclass
class Part:
    """One paired comparison: effect (mean difference, ratio of geometric means or mean
    take-off difference) with its BCa CI, counts of seeds A > B / A < B / tied, p-value."""
    label: str
    n: int
    effect: float
    low: float
    high: float
    unit: str  # "diff" | "ratio" | "epochs"
    counts: Tuple[int, int, int]
    p: float
    sign: int
    dropped: Tuple[int, ...] = ()
    note: str = ""

    @property
    def sign_ok(self) -> bool:
        if self.sign == 0:
            return True
        centre = math.log10(self.effect) if self.unit == "ratio" else self.effect
        return centre * self.sign > 0


def _counts(d: np.ndarray) -> Tuple[int, int, int]:
    return int((d > 0).sum()), int((d < 0).sum()), int((d == 0).sum())


def _pairs(a: Dict[int, float], b: Dict[int, float]) -> ps.Pairs:
    return ps.pair_by_seed(a, b)


def diff_part(label: str, a: Dict[int, float], b: Dict[int, float], sign: int,
              n_resamples: int = ps.MC_RESAMPLES) -> Part:
    """Mean of a_s − b_s, paired BCa CI, sign-flip p (two-sided; ``n_resamples`` Monte Carlo
    sign vectors above 16 pairs: the pre-registered 100,000 by default, fewer for exploratory
    tables)."""
    p = _pairs(a, b)
    ci = ps.bootstrap_mean_difference(p.a, p.b)
    d = p.a - p.b
    return Part(label, len(p.seeds), ci.estimate, ci.low, ci.high, "diff", _counts(d),
                ps.sign_flip_test(d, n_resamples=n_resamples).pvalue, sign, p.only_a + p.only_b)


def log_ratio_part(label: str, a: Dict[int, float], b: Dict[int, float], sign: int,
                   n_resamples: int = ps.MC_RESAMPLES) -> Part:
    """Ratio of geometric means of a and b (values floored at 1e-38), paired BCa CI, sign-flip
    p on log10 a_s − log10 b_s (``n_resamples``: as :func:`diff_part`)."""
    p = _pairs(a, b)
    (fa, na), (fb, nb) = ps.floor_positive(p.a), ps.floor_positive(p.b)
    ci = ps.bootstrap_log_ratio(fa, fb)
    d = np.log10(fa) - np.log10(fb)
    note = f"{na + nb} value(s) floored at 1e-38" if na + nb else ""
    return Part(label, len(p.seeds), ci.estimate, ci.low, ci.high, "ratio", _counts(d),
                ps.sign_flip_test(d, n_resamples=n_resamples).pvalue, sign, p.only_a + p.only_b,
                note)


def takeoff_part(label: str, t_a: Dict[int, int], t_b: Dict[int, int]) -> Part:
    """Take-off epochs (censored 31): effect = mean of t_b − t_a (> 0: A earlier), counts of
    A earlier / later / tied, sign-flip p (:func:`paired_stats.takeoff_test`)."""
    p = _pairs(t_a, t_b)
    r = ps.takeoff_test(p.a, p.b)
    ci = ps.bootstrap_mean_difference(p.b, p.a)
    return Part(label, r.n, r.mean, ci.low, ci.high, "epochs", (r.a_earlier, r.a_later, r.tied),
                r.pvalue, +1, p.only_a + p.only_b, f"median {r.median:+g} epochs")


def tost_part(label: str, d: Dict[int, float], margin: float) -> Part:
    """TOST of |mean d| < margin on per-seed differences ``d`` (seed → value)."""
    values = np.asarray(list(d.values()), dtype=np.float64)
    r = ps.tost_paired(values, margin)
    ci = ps.bootstrap_mean_difference(values, np.zeros_like(values))
    return Part(label, r.n, r.mean, ci.low, ci.high, "diff", _counts(values), r.pvalue, 0,
                note=f"TOST ±{margin:g}")


def one_sided_part(label: str, d: Dict[int, float], null: float, alternative: str) -> Part:
    """One-sided paired t-test of mean d against ``null`` (non-inferiority)."""
    values = np.asarray(list(d.values()), dtype=np.float64)
    p = ps.one_sided_t(values, null, alternative)
    ci = ps.bootstrap_mean_difference(values, np.zeros_like(values))
    op = ">" if alternative == "greater" else "<"
    return Part(label, values.size, ci.estimate, ci.low, ci.high, "diff", _counts(values), p, 0,
                note=f"H1: mean {op} {null:+g}")


def paired_diffs(a: Dict[int, float], b: Dict[int, float]) -> Dict[int, float]:
    """seed → a_s − b_s on the common seeds."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


@dataclass
class Hypothesis:
    """A pre-registered test: its parts are combined by intersection–union (p = the largest
    part p; every part must have its claimed sign). ``testable`` False: p is set to 1."""
    pid: str
    parts: List[Part]
    testable: bool = True
    note: str = ""
    p_holm: float = float("nan")

    @property
    def p(self) -> float:
        return max(part.p for part in self.parts) if self.testable and self.parts else 1.0

    @property
    def sign_ok(self) -> bool:
        return self.testable and all(part.sign_ok for part in self.parts)

    @property
    def passed(self) -> bool:
        return self.sign_ok and self.p_holm < ALPHA

    @property
    def contradicted(self) -> bool:
        return (self.testable and self.p_holm < ALPHA and all(p.sign != 0 for p in self.parts)
                and not any(part.sign_ok for part in self.parts))


def make_test(pid: str, build, min_pairs: int, arms: Sequence[Arm] = ()) -> Hypothesis:
    """``build()`` → list of parts; an arm of ``arms`` without summaries, a part with fewer
    than ``min_pairs`` pairs, or a ValueError from missing data (too few common seeds, a
    missing series) makes the test not testable (its p counts as 1 in Holm)."""
    empty = [arm.spec for arm in arms if not arm]
    if empty:
        return Hypothesis(pid, [], False, f"not testable: no summaries for {', '.join(empty)}")
    try:
        parts = build()
    except ValueError as err:
        return Hypothesis(pid, [], False, f"not testable: {err}")
    small = [f"{p.label} ({p.n})" for p in parts if p.n < min_pairs]
    if small:
        return Hypothesis(pid, parts, False, f"not testable: < {min_pairs} pairs: {', '.join(small)}")
    return Hypothesis(pid, parts)


def apply_holm(tests: Sequence[Hypothesis]) -> None:
    """Set each test's Holm-adjusted p over the family ``tests`` (untestable ones count as 1)."""
    for test, adjusted in zip(tests, ps.holm([t.p for t in tests])):
        test.p_holm = float(adjusted)


def verdict(rule: str, tests: Sequence[Hypothesis], conditions: Sequence[Tuple[str, Optional[bool]]]
            ) -> str:
    """The verdict under a pre-registered rule (PREREGISTRATION.md Sec. 4).

    ``"main"``: reproduced if every test passes and every condition holds; mixed if the first
    test passes; else not reproduced ("contradicted" added if the first test is significant in
    the opposite direction). ``"parts"``: reproduced if every test and condition holds, mixed
    if some do, not reproduced if none. A condition None (not computable) counts as failed.
    Any untestable test: "not testable".
    """
    if any(not t.testable for t in tests):
        return "not testable"
    items = [t.passed for t in tests] + [bool(c) for _, c in conditions]
    if all(items):
        return "reproduced"
    if rule == "main":
        if tests[0].passed:
            return "mixed"
        return "not reproduced (contradicted)" if tests[0].contradicted else "not reproduced"
    if rule == "parts":
        return "mixed" if any(items) else "not reproduced"
    raise ValueError(f"rule must be 'main' or 'parts', got {rule!r}")


def explodes(arm: Arm, seed: int, factor: float = 100.0) -> bool:
    """PREREGISTRATION.md D1: a non-finite gradient count or train/loss, or ``abs_q100`` at some
    epoch ≥ 2 above ``factor`` × its epoch-1 value (total and data-loss gradient)."""
    series = arm.records[seed]["series"]

    def values(tag):
        return np.asarray(series[tag]["value"], dtype=np.float64) if tag in series else np.zeros(0)

    for prefix in (GRAD, GRAD_DATA):
        if np.any(values(prefix + "nonfinite_count") > 0):
            return True
        gmax = values(prefix + "abs_q100")
        if gmax.size and (not np.all(np.isfinite(gmax)) or np.any(gmax[1:] > factor * gmax[0])):
            return True
    return not np.all(np.isfinite(values("train/loss")))
