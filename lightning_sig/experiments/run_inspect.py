"""Print what a TensorBoard run directory holds, read with TensorBoard's own EventAccumulator.

``python -m lightning_sig.inspect_run runs/fig3_combined/tanh_reg_scaled/version_0`` (or
``lightning-sig inspect ...``) lists the scalar tags (grouped by their first two path
components), the histogram tags, and the last values of the main tags: a quick check, without a
browser, that a run logged what it should.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import List, Optional

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig.gradients.tag_groups import canonical_names

__all__ = ["load_run", "main"]

DEFAULT_TAGS = ["val/acc", "val/loss", "train/loss", "grad/global/abs_q50",
                "grad_epoch/global/abs_q50", "grad/global/vanishing_frac"]


def load_run(logdir: str) -> EventAccumulator:
    """Load every scalar and histogram event of ``logdir`` (no sampling).

    Raises:
        FileNotFoundError: ``logdir`` holds no ``events.out.tfevents.*`` file.
    """
    if not list(Path(logdir).glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"No TensorBoard event file in {logdir!r}.")
    accumulator = EventAccumulator(logdir, size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m lightning_sig.inspect_run",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("logdir", help="a run directory holding events.out.tfevents.* files")
    parser.add_argument("--tags", nargs="*", default=DEFAULT_TAGS, help="tags to print values of")
    parser.add_argument("--last", type=int, default=3, help="how many last values to print")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.logdir)
    except FileNotFoundError as error:
        parser.error(str(error))  # one line and exit status 2, no traceback
    tags = run.Tags()
    groups = Counter("/".join(t.split("/")[:2]) for t in tags["scalars"])
    print(f"{len(tags['scalars'])} scalar tags:")
    for group, n in sorted(groups.items()):
        print(f"  {group}/* ({n})" if n > 1 else f"  {group}")
    print(f"{len(tags['histograms'])} histogram tags: {', '.join(sorted(tags['histograms']))}")
    written = canonical_names(tags["scalars"])  # plain -> in the file
    for tag in args.tags:
        name = tag if tag in tags["scalars"] else written.get(tag)  # either name works
        if name is not None:
            events = run.Scalars(name)
            shown = ", ".join(f"step {e.step}: {e.value:.6g}" for e in events[-args.last:])
            print(f"{tag} ({len(events)} points): {shown}")
        else:
            print(f"{tag}: not logged")


if __name__ == "__main__":
    main()
