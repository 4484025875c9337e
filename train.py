"""Train, validate or test a paper network: ``python train.py fit --config configs/<fig>/<arm>.yaml``."""
from lightning_sig.lightning.cli import main

if __name__ == "__main__":
    main()
