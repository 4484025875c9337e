"""``lightning-sig <command> ...``: the package's commands behind one console script
(``[project.scripts]`` in pyproject.toml, installed by ``pip install -e .``), beside their
``python -m`` forms, which keep working:

=========================  =================================================
``lightning-sig sweep``     ``python -m lightning_sig.sweep``
``lightning-sig figures``   ``python -m lightning_sig.figures``
``lightning-sig inspect``   ``python -m lightning_sig.inspect_run``
``lightning-sig verdicts``  ``python -m lightning_sig.experiments.verdict_report``
=========================  =================================================

Each command gets the rest of the line and answers as its ``python -m`` form does (same
options, output and exit status). Its module is imported only when it is called, so
``lightning-sig --help`` starts fast. ``python -m lightning_sig <command>`` is the same.
"""
from __future__ import annotations

import importlib
import sys
from typing import Dict, Optional, Sequence, Tuple

__all__ = ["COMMANDS", "main", "usage"]

PROG = "lightning-sig"
#: command → (module with a ``main(argv)``, one line of help)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "sweep": ("lightning_sig.experiments.sweep_cli",
              "run every arm of the paper's figures for a list of seeds"),
    "figures": ("lightning_sig.experiments.figure_cli",
                "draw Figures 1-4 and the runtime table from a sweep or its summaries"),
    "inspect": ("lightning_sig.experiments.run_inspect",
                "print what a TensorBoard run directory holds"),
    "verdicts": ("lightning_sig.experiments.verdict_report",
                 "print the pre-registered verdicts from a summaries folder"),
}


def usage() -> str:
    """The help text: the commands and what each does."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [options]  ({PROG} <command> --help for its options)",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``argv[0]``'s command with the rest of ``argv`` (default: ``sys.argv[1:]``).

    Returns the command's exit status (0 when its ``main`` returns None); 0 for ``--help``,
    2 (usage on stderr) for no command or an unknown one, naming the valid ones.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command {argv[0]!r}" if argv else "no command given"
        print(f"{usage()}\n\nerror: {given}; valid commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    status = module.main(argv[1:])
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
