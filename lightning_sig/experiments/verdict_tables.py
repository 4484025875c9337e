"""The arms of a summaries folder and the Markdown table rows of the verdict report, shared by
the report (:mod:`lightning_sig.experiments.verdict_report`) and its exploratory tables
(:mod:`lightning_sig.experiments.verdict_exploratory`), which both import them from here (they
imported each other before)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from lightning_sig.experiments.verdict_parts import Arm, Part, load_arm
from lightning_sig.experiments.verdicts import Claim

__all__ = ["Arms", "fmt_p", "fmt_effect", "test_lines"]


class Arms:
    """Lazy cache of the arms of a summaries folder; ``min_seed`` keeps seeds ≥ it only;
    ``paper_only`` reads no arm beyond the paper (``beyond/…``: an empty arm instead)."""

    def __init__(self, folder: Path, min_seed: int = 0, paper_only: bool = False):
        self.folder, self.min_seed, self._cache = Path(folder), min_seed, {}
        self.paper_only = paper_only

    def get(self, spec: str) -> Arm:
        if spec not in self._cache:
            if self.paper_only and spec.startswith("beyond/"):
                self._cache[spec] = Arm(spec, {})
                return self._cache[spec]
            arm = load_arm(self.folder, spec)
            self._cache[spec] = Arm(spec, {s: r for s, r in arm.records.items()
                                           if s >= self.min_seed})
        return self._cache[spec]


def fmt_p(p: float) -> str:
    """A p-value for a table: two significant digits, ``1.2e-05`` below 0.001, ``–`` for NaN."""
    return "–" if p != p else f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def fmt_effect(part: Part) -> str:
    """``effect [low, high]`` of a part: a ratio to 3 digits, else a signed difference (2
    decimals for epochs, 3 otherwise)."""
    if part.unit == "ratio":
        return f"{part.effect:.3g} [{part.low:.3g}, {part.high:.3g}]"
    digits = 2 if part.unit == "epochs" else 3
    return f"{part.effect:+.{digits}f} [{part.low:+.{digits}f}, {part.high:+.{digits}f}]"


def test_lines(claims: Sequence[Claim], holm: bool = True) -> List[str]:
    """The Markdown table of the tests of ``claims``: one row per part (the test's p, Holm p
    and outcome on its first row); ``holm=False`` prints ``–`` for the Holm p."""
    lines = ["| test | claim | comparison | n | effect [BCa 95 % CI] | A>B / A<B / = | p | "
             "test p (IUT) | Holm p | passes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for claim in claims:
        for test in claim.tests:
            if not test.parts:
                lines.append(f"| {test.pid} | {claim.cid} | {test.note} | | | | | 1 | "
                             f"{fmt_p(test.p_holm)} | no |")
            for k, part in enumerate(test.parts):
                tail = (f"{fmt_p(test.p)} | {fmt_p(test.p_holm) if holm else '–'} | "
                        f"{'yes' if test.passed else 'no'}{' (' + test.note + ')' if test.note else ''}"
                        if k == 0 else '″ | ″ | ″')
                note = f"; {part.note}" if part.note else ""
                dropped = f"; seeds dropped: {list(part.dropped)}" if part.dropped else ""
                lines.append(f"| {test.pid} | {claim.cid} | {part.label}{note}{dropped} | {part.n} | "
                             f"{fmt_effect(part)} | {'/'.join(map(str, part.counts))} | "
                             f"{fmt_p(part.p)} | {tail} |")
    return lines
