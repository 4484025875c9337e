"""``python -m lightning_sig.inspect_run``: the command; the code is :mod:`lightning_sig.experiments.inspect_run`."""
from lightning_sig.experiments.inspect_run import main

if __name__ == "__main__":
    main()
