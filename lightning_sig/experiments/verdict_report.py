"""Print the pre-registered verdicts of ``reproduction/PREREGISTRATION.md`` as Markdown:
``python -m lightning_sig.experiments.verdict_report [SUMMARIES] [--allow-mixed-code]
[--min-pairs N] [--no-exploratory] [--primary-only]`` (run by
``reproduction/verdict_numbers.sh``).

Reads a summaries folder (default ``reproduction/study``; schema ``lightning_sig.run_summary/1``
or ``/2``), pairs arms by seed, runs the primary tests P1–P16 and the secondary S1, S3–S5, applies
Holm within each family, applies the decision rules (:mod:`lightning_sig.experiments.verdicts`)
and prints the descriptive criteria and the exploratory tables (raw p-values, no verdicts).

Refuses (exit status 3, naming the arms, commits and denormal modes) when the arms of a
comparison ran on different commits or denormal modes, or lack provenance (schema /1, the
10-seed pilot), unless ``--allow-mixed-code``; then every such comparison is listed in a
WARNING line at the top. ``--min-pairs`` below the pre-registered 20 (e.g. 10 for the pilot) is
printed as a deviation. ``--primary-only`` computes the paper's claims (primary family, D1–D3)
and reads no arm beyond the paper: the secondary family, S2 and the exploratory tables of the new
arms are left out, with a line that says so (the pre-registration computes each family's
verdicts once, after all its runs have finished). Other errors (unreadable summaries, a missing
folder) exit non-zero too.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from lightning_sig.experiments import summary
from lightning_sig.experiments.provenance_check import (MIXED_CODE_FLAG, MixedCodeError, code_mode,
                                                  missing_provenance, mixed_modes)
from lightning_sig.experiments.verdict_exploratory import PAIRS, exploratory_lines
from lightning_sig.experiments.verdict_parts import apply_holm, verdict
from lightning_sig.experiments.verdict_tables import Arms, test_lines
from lightning_sig.experiments.verdicts import (ALL_ARMS, GROUPS, MIN_PAIRS, Claim,
                                                descriptive_claims, primary_claims,
                                                secondary_claims)

__all__ = ["Arms", "check_code", "evaluate", "report", "main"]

SECONDARY_WORDS = {"reproduced": "supported", "mixed": "partly supported",
                   "not reproduced": "not supported",
                   "not reproduced (contradicted)": "not supported (contradicted)"}


def check_code(arms: Arms, groups: Sequence[Sequence[str]], allow_mixed: bool) -> List[str]:
    """Provenance check of every group of compared arms (those with summaries), deduplicated.

    Raises:
        MixedCodeError: naming every offending group, unless ``allow_mixed``.
    """
    present_groups = dict.fromkeys(tuple(sorted(s for s in g if arms.get(s))) for g in groups)
    specs = dict.fromkeys(s for g in present_groups for s in g)
    problems = dict.fromkeys(missing_provenance({s: arms.get(s).provenances() for s in specs}))
    for group in present_groups:
        present = {spec: arms.get(spec).provenances() for spec in group}
        problems.update(dict.fromkeys(mixed_modes(" vs ".join(group), present)))
    if problems and not allow_mixed:
        raise MixedCodeError("refusing to compare runs of different code or without provenance:\n"
                             + "\n".join(problems) + f"\n(pass {MIXED_CODE_FLAG} to compare "
                             "them anyway; the output then says so)")
    return [f"WARNING ({MIXED_CODE_FLAG}): {p}" for p in problems]


def evaluate(arms: Arms, min_pairs: Optional[int] = None) -> Dict[str, List[Claim]]:
    """family → claims with Holm-adjusted p-values and outcomes set (with ``arms.paper_only``:
    no secondary claims and no S2)."""
    out = {"primary": primary_claims(arms.get, min_pairs or MIN_PAIRS["primary"]),
           "secondary": [] if arms.paper_only else
           secondary_claims(arms.get, min_pairs or MIN_PAIRS["secondary"]),
           "descriptive": [c for c in descriptive_claims(arms.get)
                           if not (arms.paper_only and c.cid.startswith("S"))]}
    for claim in out["descriptive"]:
        if claim.cid.startswith("S"):  # S2: a secondary claim without a p-value
            claim.outcome = SECONDARY_WORDS.get(claim.outcome, claim.outcome)
    for family in ("primary", "secondary"):
        apply_holm([t for c in out[family] for t in c.tests])
        for claim in out[family]:
            claim.outcome = verdict(claim.rule, claim.tests, claim.conditions)
            if family == "secondary":
                claim.outcome = SECONDARY_WORDS.get(claim.outcome, claim.outcome)
    return out


def claim_lines(claims: Sequence[Claim]) -> List[str]:
    lines = ["| claim | the paper | tests | conditions | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        conds = "; ".join(f"{t}: {'yes' if v else 'no' if v is not None else '–'}"
                          for t, v in c.conditions) or "–"
        tests = ", ".join(f"{t.pid} {'passes' if t.passed else 'fails'}" for t in c.tests) or "–"
        lines.append(f"| {c.cid} | \"{c.quote}\" | {tests} | {conds} | **{c.outcome}** |")
    return lines


def _header(folder: Path, arms: Arms, warnings: List[str], min_pairs: Optional[int]) -> List[str]:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    modes: Dict[str, set] = {}
    for spec in ALL_ARMS:
        for prov in arms.get(spec).provenances().values():
            modes.setdefault(spec.rsplit("/", 1)[0], set()).add(
                "no provenance" if prov is None else "{} {}".format(*code_mode(prov)))
    lines = [f"# Pre-registered verdicts (reproduction/PREREGISTRATION.md) from {folder}",
             "", f"{now} UTC, code {summary.code_version()}. Runs' code: " + "; ".join(
                 f"{fig}: {', '.join(sorted(m))}" for fig, m in modes.items()) + "."]
    if min_pairs is not None and min_pairs < MIN_PAIRS["primary"]:
        lines.append(f"\nDEVIATION: --min-pairs {min_pairs} (pre-registered: "
                     f"{MIN_PAIRS['primary']} primary, {MIN_PAIRS['secondary']} secondary).")
    if warnings:
        lines += ["", "Not the pre-registered analysis: the compared runs are not one code."]
        lines += [f"- {w}" for w in warnings]
    return lines


def report(folder: Path, allow_mixed: bool = False, min_pairs: Optional[int] = None,
           exploratory: bool = True, primary_only: bool = False) -> str:
    """The whole Markdown report (see the module docstring).

    Raises:
        ValueError: ``folder`` holds no run summaries, or a file is not a run summary.
        MixedCodeError: see :func:`check_code`.
    """
    folder = Path(folder)
    if not summary.is_summary_dir(folder):
        raise ValueError(f"{folder} holds no run summaries (<figure>/<arm>/seed_<s>.json)")
    arms = Arms(folder, paper_only=primary_only)
    warnings = check_code(arms, list(GROUPS) + (list(PAIRS) if exploratory else []),
                          allow_mixed)
    claims = evaluate(arms, min_pairs)
    n_primary = sum(len(c.tests) for c in claims["primary"])
    out = _header(folder, arms, warnings, min_pairs)
    out += ["", f"## Primary family: {n_primary} tests, Holm, α = 0.05", ""]
    out += claim_lines(claims["primary"]) + [""] + test_lines(claims["primary"])
    out += ["", "## Descriptive criteria (no p-value)", ""] + claim_lines(claims["descriptive"])
    out += ["", "## Secondary family (new arms; own Holm)", ""]
    if primary_only:
        out += ["Not computed (--primary-only): no arm beyond the paper was read; the secondary "
                "verdicts (S1–S5) are computed once, after all their runs have finished."]
    else:
        out += claim_lines(claims["secondary"]) + [""] + test_lines(claims["secondary"])
    if exploratory:
        out += ["", "## Exploratory (raw p-values; no verdicts)"] + exploratory_lines(arms)
    return "\n".join(out) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the report; exit 0, 2 on bad input, 3 on mixed code (message on stderr)."""
    parser = argparse.ArgumentParser(prog="python -m lightning_sig.experiments.verdict_report",
                                     description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("reproduction/study"))
    parser.add_argument(MIXED_CODE_FLAG, dest="allow_mixed", action="store_true",
                        help="compare runs of different commits/denormal modes or without "
                             "provenance (the output says so)")
    parser.add_argument("--min-pairs", type=int, default=None,
                        help="complete seed pairs a test needs (pre-registered: 20 primary, 8 "
                             "secondary)")
    parser.add_argument("--no-exploratory", dest="exploratory", action="store_false")
    parser.add_argument("--primary-only", action="store_true",
                        help="the paper's claims only; read no arm beyond the paper (secondary "
                             "family, S2 and the new arms' exploratory tables left out)")
    args = parser.parse_args(argv)
    try:
        text = report(args.folder, args.allow_mixed, args.min_pairs, args.exploratory,
                      args.primary_only)
    except MixedCodeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
