"""``python -m lightning_sig.sweep``: the command; the code is :mod:`lightning_sig.experiments.sweep`."""
import sys

from lightning_sig.experiments.sweep import main

if __name__ == "__main__":
    sys.exit(main())
