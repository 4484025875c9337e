"""Reading provenance: the ``provenance`` of a run summary, and the
check that the arms compared in one figure or verdict ran the same code (issue 20, part 3).

Schema ``lightning_sig.run_summary/2`` adds a top-level ``provenance`` object to a summary
(:mod:`lightning_sig.experiments.summary`): ``commit`` (40 hex digits), ``dirty``, ``torch``,
``lightning``, ``cpu``, ``isa``, ``denormals`` (``"ftz"`` or ``"ieee"``), ``threads``,
``backend``, ``started_at``, ``finished_at``. Schema ``/1`` summaries (the 10-seed pilot) have
none. Arms that ran on different commits or denormal modes are not comparable by default: the
differences could come from the code, not the arm (the pilot's Figure 2 and Figure 3 tanh arms
ran seeds 0–4 and 5–9 on different kernels). Readers call :func:`provenance_of` only, so that a
renamed field is one edit here.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

__all__ = ["MIXED_CODE_FLAG", "MixedCodeError", "provenance_of", "code_mode", "mixed_code_problems",
           "missing_provenance", "mixed_modes", "check_same_code", "UNKNOWN_NOTE", "figure_code_note"]

#: the command-line flag that lets figures and verdicts compare runs of different code.
MIXED_CODE_FLAG = "--allow-mixed-code"


class MixedCodeError(ValueError):
    """Arms to be compared ran on different commits or denormal modes, or lack provenance."""


def provenance_of(record) -> Optional[dict]:
    """The ``provenance`` dict of a run summary (a parsed JSON dict, or any object with a
    ``provenance`` attribute such as a ``RunLog``), None if it has none (schema /1)."""
    value = record.get("provenance") if isinstance(record, dict) else getattr(record, "provenance", None)
    return value if isinstance(value, dict) and value else None


def code_mode(provenance: Optional[dict]) -> Optional[Tuple[str, str]]:
    """(commit, denormal mode) of a provenance dict; None if it is None. Missing fields read
    ``"?"`` (so two runs missing the same field still count as the same)."""
    if provenance is None:
        return None
    return str(provenance.get("commit", "?")), str(provenance.get("denormals", "?"))


def _seed_ranges(seeds) -> str:
    seeds, parts, i = sorted(seeds), [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


def mixed_code_problems(label: str, arms: Mapping[str, Mapping[int, Optional[dict]]]) -> List[str]:
    """Why the runs of ``arms`` (arm → seed → provenance or None) are not one code and mode.

    Returns an empty list if every run has provenance with one (commit, denormals) pair; else
    one line per problem, naming ``label`` (the figure or comparison), the arms, their commits
    (12 hex digits) and modes with the seeds of each, or the arms and seeds without provenance.
    """
    return missing_provenance(arms) + mixed_modes(label, arms)


def missing_provenance(arms: Mapping[str, Mapping[int, Optional[dict]]]) -> List[str]:
    """One line per arm with runs without provenance (arm → seed → provenance or None)."""
    return [f"{arm}: provenance missing (schema lightning_sig.run_summary/1?) for seeds "
            f"{_seed_ranges(seeds)}" for arm, by_seed in arms.items()
            if (seeds := [s for s, p in by_seed.items() if p is None])]


def mixed_modes(label: str, arms: Mapping[str, Mapping[int, Optional[dict]]]) -> List[str]:
    """One line (or none) naming the arms' commits and modes if the runs with provenance have
    more than one (commit, denormals) pair."""
    problems = []
    modes: Dict[str, Dict[Tuple[str, str], List[int]]] = {}
    for arm, by_seed in arms.items():
        for seed, prov in by_seed.items():
            if prov is not None:
                modes.setdefault(arm, {}).setdefault(code_mode(prov), []).append(seed)
    distinct = {mode for by_mode in modes.values() for mode in by_mode}
    if len(distinct) > 1:
        problems.append(f"{label}: mixed code: " + "; ".join(
            f"{arm} " + ", ".join(f"commit {c[:12]} {d} (seeds {_seed_ranges(s)})"
                                  for (c, d), s in sorted(by_mode.items()))
            for arm, by_mode in modes.items()))
    return problems


def check_same_code(label: str, arms: Mapping[str, Mapping[int, Optional[dict]]],
                    allow_mixed: bool = False) -> List[str]:
    """The warning lines to print about ``arms`` (see :func:`mixed_code_problems`).

    Returns [] when the runs share one commit and denormal mode; with ``allow_mixed`` the
    problems, each prefixed "WARNING (--allow-mixed-code):".

    Raises:
        MixedCodeError: problems and not ``allow_mixed``; the message names them and the flag.
    """
    problems = mixed_code_problems(label, arms)
    if problems and not allow_mixed:
        raise MixedCodeError("refusing to compare runs of different code or without provenance:\n"
                             + "\n".join(problems) + f"\n(pass {MIXED_CODE_FLAG} to compare "
                             "them anyway; the output then says so)")
    return [f"WARNING ({MIXED_CODE_FLAG}): {p}" for p in problems]


#: the note a figure carries when none of its runs records provenance (schema /1, event files).
UNKNOWN_NOTE = "code provenance unknown (runs without provenance)"


def figure_code_note(figure: str, runs, allow_mixed: bool = False) -> Optional[str]:
    """The note to write on a figure about the code of its runs (``RunLog`` objects), or None.

    None: every run records provenance with one (commit, denormals) pair. :data:`UNKNOWN_NOTE`:
    no run records provenance (schema /1 summaries, TensorBoard sweeps), so nothing can be
    checked (our choice: drawn, with this note and a warning by the caller, as the figures of
    the 10-seed pilot). Otherwise (different pairs, or only some runs with provenance) the
    figure is refused, or with ``allow_mixed`` drawn with a "MIXED CODE" note naming the pairs.

    Raises:
        MixedCodeError: mixed code and not ``allow_mixed`` (names arms, commits and modes).
    """
    arms: Dict[str, Dict[int, Optional[dict]]] = {}
    for run in runs:
        arms.setdefault(run.arm, {})[run.seed] = provenance_of(run)
    known = [p for by_seed in arms.values() for p in by_seed.values() if p is not None]
    if not known:
        return UNKNOWN_NOTE if arms else None
    check_same_code(figure, arms, allow_mixed)  # raises unless allow_mixed
    modes = sorted({code_mode(p) for p in known})
    if len(modes) == 1 and len(known) == sum(len(b) for b in arms.values()):
        return None
    missing = " and runs without provenance" if len(known) < sum(len(b) for b in arms.values()) else ""
    return (f"MIXED CODE ({MIXED_CODE_FLAG}): " + ", ".join(f"{c[:12]} {d}" for c, d in modes)
            + missing)

