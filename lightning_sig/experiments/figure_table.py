"""Runtime table in the form of the paper's Table 4: wall time per arm and its ratio to the plain arm.

The paper (Ven & Lederer, arXiv 2106.02260, Table 4) reports that the remedies cost little time:
the run time of the regularized and α-scaled network relative to the plain one (+31 % for tanh,
+36 % for relu in their TensorFlow runs). Here, per figure and arm: the number of finished runs,
the mean over seeds of the process wall time recorded in the sweep's DONE markers (Python
startup and data loading included), the mean fit time from the TensorBoard timestamps (first
event, when Lightning sets up its logger, to the last ``val/acc``: training and validation,
startup excluded), and two ratios of mean wall times:

* ``ratio_same_act``: to the plain arm of the same activation in the same figure (the paper's
  comparison: tanh+remedies / tanh, relu+r / relu);
* ``ratio_plain_sigmoid``: to the figure's plain sigmoid-type arm (fig1 ``unregularized``,
  fig2 ``unscaled``, fig3 ``tanh``, fig4 ``sigmoid``).

An arm is *plain* when its run's hparams have r = ``l2_strength`` = 0, α = ``alpha`` = 1 and no
learnable α; sigmoid-type means tanh, logistic, arctan or softsign. A ratio is left empty when
its baseline is absent or ambiguous. Wall times of runs made several at a time (``--jobs``) share
the CPUs, and seeds trained as members of one process (``--members K``) count 1/K of their
group's wall time (:func:`seed_wall_time`): compare ratios within one sweep.
"""
from __future__ import annotations

import csv
import io
from typing import Dict, List, Optional, Sequence

import numpy as np

from lightning_sig.experiments.figure_data import ACC_TAG, RunLog

__all__ = ["SIGMOID_TYPE", "arm_settings", "baselines", "runtime_rows", "rows_to_csv",
           "runtime_markdown"]

SIGMOID_TYPE = frozenset({"tanh", "sigmoid", "arctan", "softsign"})
COLUMNS = ("figure", "arm", "activation", "alpha", "r", "n_runs", "wall_time_s",
           "fit_time_s", "baseline_same_act", "ratio_same_act", "baseline_plain_sigmoid",
           "ratio_plain_sigmoid")


def arm_settings(runs: Sequence[RunLog]) -> Dict[str, dict]:
    """Arm → ``{"activation", "alpha", "r", "plain"}`` from the first run with hparams (absent
    arms had none). ``plain``: r = 0, α = 1 and α not learnable."""
    settings: Dict[str, dict] = {}
    for run in runs:
        h = run.hparams
        if run.arm in settings or "activation" not in h:
            continue
        try:
            from lightning_sig.nn.activations import resolve_family  # torch: only when used
            activation = resolve_family(h["activation"])
        except ValueError:
            activation = str(h["activation"])
        alpha, r = float(h.get("alpha", 1.0)), float(h.get("l2_strength", 0.0))
        settings[run.arm] = {"activation": activation, "alpha": alpha, "r": r,
                             "plain": r == 0.0 and alpha == 1.0
                             and not h.get("learnable_alpha", False)}
    return settings


def _only(names: List[str]) -> Optional[str]:
    return names[0] if len(names) == 1 else None


def baselines(settings: Dict[str, dict]) -> Dict[str, tuple]:
    """Arm → (plain arm of the same activation, plain sigmoid-type arm); None where there is no
    such arm or more than one."""
    plain = {a: s for a, s in settings.items() if s["plain"]}
    sigmoid = _only(sorted(a for a, s in plain.items() if s["activation"] in SIGMOID_TYPE))
    return {arm: (_only(sorted(a for a, p in plain.items()
                               if p["activation"] == s["activation"])), sigmoid)
            for arm, s in settings.items()}


def _fit_time(run: RunLog) -> Optional[float]:
    points = run.series.get(ACC_TAG, [])
    if not points or run.start_wall_time is None:
        return None
    return points[-1].wall_time - run.start_wall_time


def _mean(values: List[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def seed_wall_time(marker: dict) -> float:
    """Wall time (s) of one seed from its DONE marker: the run's, or for members trained together
    (``sweep --members K``, marker field ``members``) the group's divided by the group's size."""
    return float(marker["wall_time_s"]) / max(1, len(marker.get("members") or ()))


def runtime_rows(runs: Sequence[RunLog]) -> List[dict]:
    """One row per (figure, arm) with the :data:`COLUMNS` (see the module docstring); only runs
    with a DONE marker holding ``wall_time_s`` count. Times in seconds."""
    rows = []
    for figure in dict.fromkeys(r.figure for r in runs):
        mine = [r for r in runs if r.figure == figure and (r.marker or {}).get("wall_time_s")]
        settings = arm_settings([r for r in runs if r.figure == figure])
        base = baselines(settings)
        walls = {arm: _mean([seed_wall_time(r.marker) for r in mine if r.arm == arm])
                 for arm in dict.fromkeys(r.arm for r in mine)}
        for arm, wall in walls.items():
            s = settings.get(arm, {})
            same, sigmoid = base.get(arm, (None, None))
            rows.append({
                "figure": figure, "arm": arm, "activation": s.get("activation"),
                "alpha": s.get("alpha"), "r": s.get("r"),
                "n_runs": sum(r.arm == arm for r in mine), "wall_time_s": wall,
                "fit_time_s": _mean([_fit_time(r) for r in mine if r.arm == arm]),
                "baseline_same_act": same, "ratio_same_act": _ratio(wall, walls.get(same)),
                "baseline_plain_sigmoid": sigmoid,
                "ratio_plain_sigmoid": _ratio(wall, walls.get(sigmoid))})
    return rows


def _ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    return value / base if value is not None and base else None


def rows_to_csv(rows: Sequence[dict], columns: Sequence[str] = COLUMNS) -> str:
    """CSV text of ``rows`` (empty cells for None)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in columns}
                     for row in rows)
    return buffer.getvalue()


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def runtime_markdown(rows: Sequence[dict]) -> str:
    """Markdown table of :func:`runtime_rows` (Table 4 analog) with a note on what is timed."""
    head = ("| figure | arm | activation | α | r | runs | wall time (s) | fit time (s) | "
            "× plain, same activation | × plain sigmoid-type arm |")
    lines = [head, "|" + "---|" * 10]
    for row in rows:
        same = f"{_fmt(row['ratio_same_act'])} (vs {row['baseline_same_act']})" \
            if row["ratio_same_act"] is not None else "–"
        sigmoid = f"{_fmt(row['ratio_plain_sigmoid'])} (vs {row['baseline_plain_sigmoid']})" \
            if row["ratio_plain_sigmoid"] is not None else "–"
        lines.append(f"| {row['figure']} | {row['arm']} | {_fmt(row['activation'])} | "
                     f"{_fmt(row['alpha'], 3)} | {_fmt(row['r'], 3)} | {row['n_runs']} | "
                     f"{_fmt(row['wall_time_s'], 1)} | {_fmt(row['fit_time_s'], 1)} | "
                     f"{same} | {sigmoid} |")
    lines.append("")
    lines.append("Wall time: mean over seeds of each run's whole process (startup included), "
                 "from the sweep's DONE markers; fit time: mean over seeds of the time from the "
                 "run's first TensorBoard event to its last validation. Ratios use the mean wall "
                 "times. Runs made several at a time (--jobs) share the CPUs.")
    return "\n".join(lines) + "\n"
