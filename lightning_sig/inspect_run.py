"""``python -m lightning_sig.inspect_run``: the command; the code is :mod:`lightning_sig.experiments.run_inspect`."""
from lightning_sig.experiments.run_inspect import main

if __name__ == "__main__":
    main()
