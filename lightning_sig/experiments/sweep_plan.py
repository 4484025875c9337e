"""What a sweep runs: figures and arms from ``configs/``, seeds, run directories, commands, markers.

Kept apart from the scheduler in :mod:`lightning_sig.experiments.sweep` so the naming and the resume rule are
testable without training anything, and so the figure code (:mod:`lightning_sig.experiments.figure_data`)
reads runs with the same names it was written with.

Layout of a sweep directory ``<out>``::

    <out>/<figure>/sweep.json              figures' manifest: arms, seeds, epochs asked for
    <out>/<figure>/<arm>/seed_<s>/         one LightningCLI run = TensorBoardLogger log_dir
    <out>/<figure>/<arm>/seed_<s>/DONE     JSON written after the run exited 0 (wall time, command)
    <out>/<figure>/<arm>/seed_<s>/train.log   the run's stdout and stderr
    <out>/<figure>/<arm>/members_<a>-<b>/  with ``--members K > 1``: the Lightning run of the
                                           process training seeds a..b at once (checkpoints,
                                           config.yaml, train.log); its members write into
                                           their own seed_<s>/ (ignored by the figure code)

A figure is a folder of ``configs/`` (e.g. ``fig1_large_params``), an arm one ``*.yaml`` in it
(e.g. ``regularized``). :func:`run_dir` is the only place that names a run's directory and
:func:`group_dir` the only place that names a member group's (``num_members``, see
:mod:`lightning_sig.experiments.sweep_members`).
"""
from __future__ import annotations

import importlib.resources
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["DEFAULT_CONFIG_DIR", "DONE_NAME", "LOG_NAME", "MANIFEST_NAME", "RESERVED_OVERRIDES",
           "SEED_DIR_PATTERN", "RunSpec", "list_figures", "parse_seeds", "plan_runs", "run_dir",
           "seed_dir_name", "split_overrides", "check_overrides", "train_command", "read_marker",
           "write_marker", "update_manifest", "has_hpc_checkpoint", "MEMBER_KEYS", "plan_groups", "group_dir",
           "group_dir_name", "group_command", "check_member_overrides"]

#: The paper configs: package data ``lightning_sig.configs`` (the repository's ``configs/``).
DEFAULT_CONFIG_DIR = Path(str(importlib.resources.files("lightning_sig.configs")))
DONE_NAME = "DONE"
LOG_NAME = "train.log"
MANIFEST_NAME = "sweep.json"
SEED_DIR_TEMPLATE = "seed_{seed}"
SEED_DIR_PATTERN = re.compile(r"^seed_(\d+)$")
#: Keys the sweep sets itself; passing them through would break the run layout.
RESERVED_OVERRIDES = ("--config", "--seed_everything", "--trainer.max_epochs",
                      "--trainer.logger", "--trainer.default_root_dir")
#: Module/DataModule options that ``--members K > 1`` sets itself (see :func:`group_command`).
MEMBER_KEYS = ("num_members", "member_seeds", "member_log_dir")
#: = python train.py from any directory, then provenance.json into the log dir (argv[1])
_CHILD = "import sys; from lightning_sig.experiments.provenance import child_main; child_main(sys.argv.pop(1))"


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: ``config`` (a ``configs/<figure>/<arm>.yaml``) trained with ``seed``."""

    figure: str
    arm: str
    config: Path
    seed: int

    @property
    def label(self) -> str:
        """``<figure>/<arm>/seed_<s>``, for progress lines."""
        return f"{self.figure}/{self.arm}/{seed_dir_name(self.seed)}"


def seed_dir_name(seed: int) -> str:
    """``seed_<s>``: the TensorBoardLogger version of a run with ``seed_everything = s``."""
    return SEED_DIR_TEMPLATE.format(seed=seed)


def run_dir(out: Path, figure: str, arm: str, seed: int) -> Path:
    """``<out>/<figure>/<arm>/seed_<s>``: the run's TensorBoard log_dir and marker location."""
    return Path(out) / figure / arm / seed_dir_name(seed)


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


def parse_seeds(tokens: Sequence[str]) -> List[int]:
    """Seeds from tokens ``"3"`` or ranges ``"0-24"`` (inclusive); sorted, duplicates removed.

    Raises:
        ValueError: a token that is not a non-negative integer or a range ``a-b`` with a <= b.
    """
    seeds = set()
    for token in tokens:
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(token))
        if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise ValueError(f"seed {token!r} is not a non-negative integer or a range a-b with "
                             f"0 <= a <= b (valid e.g.: 0 1 2, 0-24)")
        low = int(match.group(1))
        seeds.update(range(low, int(match.group(2) or low) + 1))
    if not seeds:
        raise ValueError("no seeds given (valid e.g.: --seeds 0 1 2 or --seeds 0-24)")
    return sorted(seeds)


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


def split_overrides(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split ``argv`` into the sweep's own arguments and LightningCLI overrides passed through.

    Passed through: everything after a bare ``--``, and before it every option whose name holds a
    dot (``--data.data_dir X``, ``--trainer.limit_train_batches=5``), with its value when the next
    token does not start with ``--``. The sweep's own options have no dots.
    """
    argv = list(argv)
    tail = argv[argv.index("--") + 1:] if "--" in argv else []
    head = argv[:argv.index("--")] if "--" in argv else argv
    own: List[str] = []
    passed: List[str] = []
    i = 0
    while i < len(head):
        token = head[i]
        if token.startswith("--") and "." in token.split("=", 1)[0]:
            takes_value = "=" not in token and i + 1 < len(head) and not head[i + 1].startswith("--")
            passed.extend(head[i:i + 1 + takes_value])
            i += 1 + takes_value
        else:
            own.append(token)
            i += 1
    return own, passed + tail


def check_overrides(overrides: Sequence[str]) -> None:
    """Raise ValueError if an override sets what the sweep sets (:data:`RESERVED_OVERRIDES`)."""
    for token in overrides:
        key = token.split("=", 1)[0]
        if any(key == r or key.startswith(r + ".") for r in RESERVED_OVERRIDES):
            raise ValueError(f"override {token!r} is set by the sweep itself; use the sweep's "
                             f"--seeds, --epochs and --out instead (reserved: "
                             f"{', '.join(RESERVED_OVERRIDES)})")


def train_command(spec: RunSpec, out: Path, epochs: int, overrides: Sequence[str] = ()) -> List[str]:
    """argv of the LightningCLI run of ``spec`` (``python train.py fit ...`` from any directory).

    The logger's save_dir/name/version put the TensorBoard files in :func:`run_dir`, and
    ``default_root_dir`` is that folder too (where Lightning's SLURM auto-requeue saves and
    looks for ``hpc_ckpt_<n>.ckpt``; the default, the working directory, would be shared by all
    runs); the progress bar is off (the sweep prints progress) unless an override turns it on.
    """
    return _command(spec, out, epochs, seed_dir_name(spec.seed), overrides)


def _command(spec: RunSpec, out: Path, epochs: int, version: str,
             overrides: Sequence[str]) -> List[str]:
    log_dir = Path(out).resolve() / spec.figure / spec.arm / version
    return [sys.executable, "-c", _CHILD, str(log_dir), "fit",
            "--config", str(Path(spec.config).resolve()),
            "--seed_everything", str(spec.seed), "--trainer.max_epochs", str(epochs),
            "--trainer.default_root_dir", str(log_dir),
            "--trainer.logger.init_args.save_dir", str(Path(out).resolve()),
            "--trainer.logger.init_args.name", f"{spec.figure}/{spec.arm}",
            "--trainer.logger.init_args.version", version,
            "--trainer.enable_progress_bar", "false", *overrides]


def plan_groups(specs: Sequence[RunSpec], members: int) -> List[Tuple[RunSpec, ...]]:
    """``specs`` cut into groups of at most ``members`` consecutive seeds of one (figure, arm),
    in plan order: seeds 0-4 with ``members = 2`` give (0, 1), (2, 3), (4,) per arm. The groups
    depend only on the seed list and ``members``, so a resumed sweep finds the same groups.

    Raises:
        ValueError: ``members`` not an integer >= 1.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"--members {members!r} must be an integer >= 1 (1 = one process per "
                         f"seed, K > 1 = up to K seeds of an arm per process)")
    groups: List[Tuple[RunSpec, ...]] = []
    for spec in specs:
        last = groups[-1] if groups else ()
        same_arm = bool(last) and (last[0].figure, last[0].arm) == (spec.figure, spec.arm)
        if same_arm and len(last) < members:
            groups[-1] = last + (spec,)
        else:
            groups.append((spec,))
    return groups


def group_dir_name(seeds: Sequence[int]) -> str:
    """The TensorBoardLogger version of a member group's process: ``members_<a>-<b>`` for the
    consecutive seeds a..b, else its runs of consecutive seeds joined by ``+``
    (``members_3+7+12-14``: the group of the unfinished seeds 3, 7, 12, 13, 14)."""
    runs: List[List[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return "members_" + "+".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def group_dir(out: Path, group: Sequence[RunSpec]) -> Path:
    """``<out>/<figure>/<arm>/members_<a>-<b>``: log_dir of the process training ``group``."""
    first = group[0]
    return Path(out) / first.figure / first.arm / group_dir_name([s.seed for s in group])


def group_command(group: Sequence[RunSpec], out: Path, epochs: int,
                  overrides: Sequence[str] = ()) -> List[str]:
    """argv of the one process that trains the seeds of ``group`` as ``num_members`` members.

    A group of one seed is :func:`train_command` (the module refuses ``member_seeds`` for one
    network). Otherwise the Lightning run (checkpoints, config.yaml) goes to :func:`group_dir`
    with ``seed_everything`` = the first seed, and member s writes its metrics into
    :func:`run_dir` of seed s (``member_log_dir``: an absolute path, braces in it escaped).
    The member options come after ``overrides`` (a later ``--model`` class cannot drop them).
    """
    if len(group) == 1:
        return train_command(group[0], out, epochs, overrides)
    seeds = [s.seed for s in group]
    arm_dir = str(Path(out).resolve() / group[0].figure / group[0].arm)
    template = os.path.join(arm_dir.replace("{", "{{").replace("}", "}}"), SEED_DIR_TEMPLATE)
    return [*_command(group[0], out, epochs, group_dir_name(seeds), overrides),
            "--model.init_args.num_members", str(len(seeds)),
            "--model.init_args.member_seeds", str(seeds),
            "--model.init_args.member_log_dir", template]


def check_member_overrides(overrides: Sequence[str], members: int) -> None:
    """With ``members > 1``, refuse overrides naming what the sweep sets per group process.

    Raises:
        ValueError: a token of ``overrides`` mentions one of :data:`MEMBER_KEYS` (as an option
            such as ``--model.init_args.num_members=5`` or inside a dict value), naming it.
    """
    if members == 1:
        return
    for token in overrides:
        if any(key in token for key in MEMBER_KEYS):
            raise ValueError(f"override {token!r} conflicts with --members {members}, which sets "
                             f"{', '.join(MEMBER_KEYS)} of every group process itself; drop the "
                             f"override or use --members 1")


def has_hpc_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds Lightning's SLURM requeue checkpoint ``hpc_ckpt_<n>.ckpt``:
    an interrupted run that Lightning resumes by itself, so the sweep restarts it in place
    (its folder kept, its train.log appended) instead of from scratch."""
    return any(Path(directory).glob("hpc_ckpt_*.ckpt"))


def read_marker(directory: Path) -> Optional[dict]:
    """The DONE marker's JSON of a run directory, or None if the run is not finished."""
    path = Path(directory) / DONE_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # finished (the marker exists) but its content is unreadable


def write_marker(directory: Path, record: dict) -> None:
    """Write the DONE marker atomically (a crash never leaves a half-written marker)."""
    tmp = Path(directory) / (DONE_NAME + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, Path(directory) / DONE_NAME)


def update_manifest(out: Path, figure: str, arms: Sequence[str], seeds: Sequence[int],
                    epochs: int) -> None:
    """Merge arms and seeds into ``<out>/<figure>/sweep.json`` (what the figures expect to find)."""
    path = Path(out) / figure / MANIFEST_NAME
    old = json.loads(path.read_text()) if path.is_file() else {}
    record = {"arms": sorted(set(old.get("arms", [])) | set(arms)),
              "seeds": sorted(set(old.get("seeds", [])) | set(seeds)), "epochs": epochs}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
