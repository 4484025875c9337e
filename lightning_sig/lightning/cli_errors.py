"""How our CLI reports bad input: one ``error:`` line, not a traceback; no option abbreviations.

A ``ValueError`` or ``FileNotFoundError`` raised by this package's code (a bad argument, a
truncated batch file, ``val_split`` too large) prints as ``error: <message>`` plus the usual tip
and exits with status 2, like jsonargparse's own parse errors (which are unchanged); other
errors keep their traceback. Option names must be spelt out: argparse's prefix matching is off
(``--trainer.max_step 50`` is an error, not ``max_steps``).
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Optional

__all__ = ["no_abbreviations", "own_error", "exit_with_error"]

_SUBCOMMANDS = ("fit", "validate", "test", "predict")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def no_abbreviations() -> dict:
    """LightningCLI ``parser_kwargs``: argparse's ``allow_abbrev=False`` for the main parser
    and every subcommand's (``--trainer.max_step`` must not be read as ``max_steps``)."""
    return {"allow_abbrev": False, **{name: {"allow_abbrev": False} for name in _SUBCOMMANDS}}


def own_error(err: Optional[BaseException]) -> Optional[BaseException]:
    """The first ValueError/FileNotFoundError in ``err``'s chain (itself, then its
    ``__cause__``/``__context__``, as jsonargparse wraps errors of a class's ``__init__``)
    whose innermost traceback frame is in the lightning_sig package; None if there is none."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        frames = traceback.extract_tb(err.__traceback__)
        if isinstance(err, (ValueError, FileNotFoundError)) and frames and \
                os.path.abspath(frames[-1].filename).startswith(_PACKAGE_DIR + os.sep):
            return err
        err = err.__cause__ or err.__context__
    return None


def exit_with_error(err: BaseException, args) -> None:
    """Print ``err`` as one ``error:`` line and the usual tip (stderr); exit with status 2.

    Raises:
        SystemExit: always, with status 2.
    """
    script = os.path.basename(sys.argv[0])  # "-c" for the sweep's children
    prog = f"python {script}" if script.endswith(".py") and script != "__main__.py" else \
        "python train.py"
    command = next((a for a in (args or []) if isinstance(a, str) and a in _SUBCOMMANDS), "")
    message = " ".join(str(err).split())  # one line
    print(" ".join(f"tip: For details of accepted options run: {prog} {command}".split())
          + f" --help\nerror: {message}", file=sys.stderr)
    raise SystemExit(2)
