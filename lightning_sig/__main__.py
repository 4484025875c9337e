"""``python -m lightning_sig <command> ...``: the same as the ``lightning-sig`` console script
(:mod:`lightning_sig.commands`)."""
import sys

from lightning_sig.commands import main

if __name__ == "__main__":
    sys.exit(main())
