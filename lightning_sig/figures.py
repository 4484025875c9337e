"""``python -m lightning_sig.figures``: the command; the code is :mod:`lightning_sig.experiments.figure_cli`."""
import sys

from lightning_sig.experiments.figure_cli import main

if __name__ == "__main__":
    sys.exit(main())
