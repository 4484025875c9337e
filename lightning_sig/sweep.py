"""``python -m lightning_sig.sweep``: the command; the code is :mod:`lightning_sig.experiments.sweep_cli`."""
import sys

from lightning_sig.experiments.sweep_cli import main

if __name__ == "__main__":
    sys.exit(main())
