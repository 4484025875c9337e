"""The sweep's plan: a table of every run asked for with its state, and the tasks that run the
unfinished ones.

Stage 2 of ``python -m lightning_sig.sweep`` (parse → **plan** → launch → summarise): the CLI
(:mod:`lightning_sig.experiments.sweep_cli`) lists the runs (:func:`plan_runs`: figures × arms
× seeds of ``configs/``), :func:`plan_sweep` reads which are done and cuts the others into
tasks, and a launcher (:mod:`~lightning_sig.experiments.sweep_local`,
:mod:`~lightning_sig.experiments.sweep_submitit`) runs the :class:`Plan`'s tasks. Planning
reads ``DONE`` markers and summaries and writes nothing.

The unit is the run (a cell of the table): a run with a ``DONE`` marker in ``<out>`` or a
summary in ``--summaries`` is done and is never rerun, whatever ``--members`` is; the tasks are
the unfinished runs cut into groups of at most ``--members`` seeds of one arm
(:func:`plan_groups`), so a group's seeds need not be consecutive (``members_3+7+12-14``).
"""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lightning_sig.experiments.summary import read_summary, summary_path
from lightning_sig.experiments.sweep_commands import group_command
from lightning_sig.experiments.sweep_layout import RunSpec, read_marker, run_dir

__all__ = ["DEFAULT_CONFIG_DIR", "MACHINE_OVERRIDES", "DONE", "TODO", "Cell", "Plan",
           "list_figures", "plan_runs", "plan_groups", "portable_overrides", "check_finished",
           "summarized", "plan_sweep"]

#: The paper configs: package data ``lightning_sig.configs`` (the repository's ``configs/``).
DEFAULT_CONFIG_DIR = Path(str(importlib.resources.files("lightning_sig.configs")))
#: Overrides that name where data and devices are on a machine, not what is trained: ignored
#: when a summary made elsewhere is compared with this sweep (an assumption: they do not
#: change a run's results beyond float rounding).
MACHINE_OVERRIDES = ("--data.data_dir", "--data.num_workers", "--data.pin_memory",
                     "--data.download", "--trainer.accelerator", "--trainer.devices",
                     "--trainer.num_nodes", "--trainer.strategy")
DONE, TODO = "done", "todo"  # the states of a cell
Group = Tuple[RunSpec, ...]


@dataclass(frozen=True)
class Cell:
    """One run of the plan and its state: :data:`DONE` (a ``DONE`` marker in ``<out>`` or a
    summary in ``--summaries``) or :data:`TODO`."""

    spec: RunSpec
    state: str


@dataclass(frozen=True)
class Plan:
    """What a sweep will do: its settings, every run with its state (in plan order: figure,
    arm, seed) and the tasks (``groups``: the unfinished runs, up to ``members`` seeds of one
    arm per process). Made by :func:`plan_sweep`; launchers take it as it is."""

    out: Path
    epochs: int
    overrides: Tuple[str, ...]
    members: int
    summaries: Optional[Path]
    cells: Tuple[Cell, ...]
    groups: Tuple[Group, ...]

    @property
    def specs(self) -> List[RunSpec]:
        """Every run of the plan."""
        return [c.spec for c in self.cells]

    @property
    def done(self) -> List[RunSpec]:
        """The runs that are done."""
        return [c.spec for c in self.cells if c.state == DONE]

    @property
    def n_todo(self) -> int:
        """How many runs the tasks train."""
        return sum(len(g) for g in self.groups)

    def arm_counts(self) -> List[Tuple[str, str, int, int]]:
        """``(figure, arm, runs done, runs to do)`` per arm, in plan order."""
        counts: Dict[Tuple[str, str], List[int]] = {}
        for cell in self.cells:
            counts.setdefault((cell.spec.figure, cell.spec.arm), [0, 0])[cell.state == TODO] += 1
        return [(figure, arm, d, t) for (figure, arm), (d, t) in counts.items()]

    def commands(self) -> List[List[str]]:
        """argv of each task's process, in task order."""
        return [group_command(g, self.out, self.epochs, self.overrides) for g in self.groups]

    def status_lines(self) -> List[str]:
        """``N of M runs done, K to run in P process(es)``, then ``figure/arm: d done, t to do``
        per arm (the first lines of ``--dry-run``)."""
        n_done = len(self.cells) - self.n_todo
        return ([f"{n_done} of {len(self.cells)} runs done, {self.n_todo} to run in "
                 f"{len(self.groups)} process(es)"]
                + [f"{f}/{a}: {d} done, {t} to do" for f, a, d, t in self.arm_counts()])

    def header(self, how: str, threads: int) -> str:
        """The launcher's first line; ``how`` says how the tasks run (``with 2 job(s)``)."""
        n_runs = len(self.cells)
        return (f"sweep {self.out}: {n_runs} runs, {n_runs - self.n_todo} already finished, "
                f"{self.n_todo} to run {how} x {threads} thread(s), {self.epochs} epoch(s) each"
                + (f", in {len(self.groups)} process(es) of <= {self.members} seeds"
                   if self.members > 1 else ""))


def list_figures(config_dir: Path = DEFAULT_CONFIG_DIR) -> Dict[str, List[str]]:
    """Figures (sub-folders of ``config_dir`` holding ``*.yaml``) → sorted arm names (file stems).

    Raises:
        ValueError: ``config_dir`` is not a folder or holds no figure.
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ValueError(f"config_dir={str(config_dir)!r} is not a folder (expected configs/ with "
                         f"one sub-folder of *.yaml arms per figure)")
    figures = {d.name: sorted(p.stem for p in d.glob("*.yaml"))
               for d in sorted(config_dir.iterdir()) if d.is_dir()}
    figures = {name: arms for name, arms in figures.items() if arms}
    if not figures:
        raise ValueError(f"config_dir={str(config_dir)!r} holds no <figure>/*.yaml configs")
    return figures


def plan_runs(figures: Sequence[str], seeds: Sequence[int], config_dir: Path = DEFAULT_CONFIG_DIR,
              arms: Optional[Sequence[str]] = None) -> List[RunSpec]:
    """Every (figure, arm, seed), figure-major then arm then seed; ``arms`` restricts the arms.

    Raises:
        ValueError: an unknown figure (lists the valid ones), no figure, an arm in none of the
            figures (lists the valid ones), or a negative seed.
    """
    available = list_figures(config_dir)
    unknown = [f for f in figures if f not in available]
    if unknown or not figures:
        raise ValueError(f"unknown figure(s) {unknown or '(none given)'}; valid figures in "
                         f"{config_dir}: {', '.join(available)}")
    if any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds {list(seeds)} must be integers >= 0")
    valid_arms = sorted({a for f in figures for a in available[f]})
    if arms is not None and (not arms or set(arms) - set(valid_arms)):
        raise ValueError(f"unknown arm(s) {sorted(set(arms) - set(valid_arms)) or '(none given)'}"
                         f"; valid arms of {', '.join(figures)}: {', '.join(valid_arms)}")
    return [RunSpec(f, a, Path(config_dir) / f / f"{a}.yaml", s)
            for f in dict.fromkeys(figures) for a in available[f]
            if arms is None or a in arms for s in seeds]


def plan_groups(specs: Sequence[RunSpec], members: int) -> List[Group]:
    """``specs`` cut into groups of at most ``members`` consecutive seeds of one (figure, arm),
    in plan order: seeds 0-4 with ``members = 2`` give (0, 1), (2, 3), (4,) per arm. The groups
    depend only on the seed list and ``members``, so a resumed sweep finds the same groups.

    Raises:
        ValueError: ``members`` not an integer >= 1.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"--members {members!r} must be an integer >= 1 (1 = one process per "
                         f"seed, K > 1 = up to K seeds of an arm per process)")
    groups: List[Group] = []
    for spec in specs:
        last = groups[-1] if groups else ()
        same_arm = bool(last) and (last[0].figure, last[0].arm) == (spec.figure, spec.arm)
        if same_arm and len(last) < members:
            groups[-1] = last + (spec,)
        else:
            groups.append((spec,))
    return groups


def portable_overrides(overrides: Sequence[str]) -> List[str]:
    """``overrides`` without the :data:`MACHINE_OVERRIDES` (``--k v`` and ``--k=v`` forms)."""
    kept, skip = [], False
    for i, token in enumerate(overrides):
        if skip:
            skip = False
            continue
        key = token.split("=", 1)[0]
        if key in MACHINE_OVERRIDES:
            nxt = overrides[i + 1] if i + 1 < len(overrides) else None
            skip = "=" not in token and nxt is not None and not nxt.startswith("--")
            continue
        kept.append(token)
    return kept


def check_finished(specs: Sequence[RunSpec], out: Path, epochs: int,
                   overrides: Sequence[str], check: bool = True) -> List[RunSpec]:
    """The runs of ``specs`` with a ``DONE`` marker in ``out``; with ``check``, their markers
    must match ``epochs`` and ``overrides``.

    Raises:
        ValueError: (``check``) a finished run was made with another epoch budget or other
            overrides (mixing them would silently mix experiments); names the run and both
            settings.
    """
    finished = []
    for spec in specs:
        marker = read_marker(run_dir(out, spec.figure, spec.arm, spec.seed))
        if marker is None:
            continue
        old = (marker.get("epochs", epochs), marker.get("overrides", list(overrides)))
        if check and old != (epochs, list(overrides)):
            raise ValueError(f"{spec.label} in {out} finished with epochs={old[0]}, overrides="
                             f"{old[1]}; this sweep asks epochs={epochs}, overrides="
                             f"{list(overrides)}. Use another --out (finished runs are never "
                             f"deleted).")
        finished.append(spec)
    return finished


def summarized(specs: Sequence[RunSpec], summaries: Path, epochs: int,
               overrides: Sequence[str], check: bool = True) -> List[RunSpec]:
    """The runs of ``specs`` that have a summary in ``summaries`` (done for the sweep); with
    ``check`` each summary is read and must match ``epochs`` and ``overrides``, else the file's
    presence counts.

    Raises:
        ValueError: (``check``) a summary was made with another epoch budget or other overrides
            (like :func:`check_finished`, but :data:`MACHINE_OVERRIDES` such as
            ``--data.data_dir`` may differ), naming the run and both settings; or a file is not
            a summary.
    """
    done = []
    for spec in specs:
        path = summary_path(summaries, spec.figure, spec.arm, spec.seed)
        if not path.is_file():
            continue
        marker = read_summary(path).get("marker", {}) if check else {}
        old = (marker.get("epochs", epochs), marker.get("overrides", list(overrides)))
        if (old[0], portable_overrides(old[1])) != (epochs, portable_overrides(overrides)):
            raise ValueError(f"{spec.label} has a summary in {summaries} made with epochs="
                             f"{old[0]}, overrides={old[1]}; this sweep asks epochs={epochs}, "
                             f"overrides={list(overrides)}. Use another --summaries folder.")
        done.append(spec)
    return done


def plan_sweep(specs: Sequence[RunSpec], out: Path, epochs: int, overrides: Sequence[str] = (),
               members: int = 1, summaries: Optional[Path] = None, check: bool = True) -> Plan:
    """The :class:`Plan` of ``specs``: a run is done when it has a ``DONE`` marker in ``out``
    or a summary in ``summaries``; the others are cut into tasks by :func:`plan_groups`.
    Reads markers and summaries, writes nothing. ``check=False`` (``--dry-run``) counts
    markers and summary files as they are, without comparing their settings.

    Raises:
        ValueError: (``check``) as :func:`check_finished` and :func:`summarized`; ``members``
            not an integer >= 1.
    """
    out = Path(out)
    done = set(check_finished(specs, out, epochs, overrides, check))
    if summaries is not None:
        done |= set(summarized(specs, Path(summaries), epochs, overrides, check))
    groups = plan_groups([s for s in specs if s not in done], members)
    cells = tuple(Cell(s, DONE if s in done else TODO) for s in specs)
    return Plan(out, epochs, tuple(overrides), members,
                None if summaries is None else Path(summaries), cells, tuple(groups))
