"""The depth profile of a figure: median |g| per layer, in forward order, one line per epoch.

Which source of vanishing gradients (Sec. 2.2 vs 2.3): in the many-layers regime (Theorem 2)
the gradient shrinks by a factor per layer from the output back to the input, so the profile
is a slope on a log scale; with large parameters (Theorem 1) it is low in every layer that
saturates. Data: the GradientQuantileCallback's per-layer epoch means
``grad_epoch/<layer>/abs_q50`` (``grad_data_epoch/...`` for the data-loss gradient), in the
order the callback writes them (the model's parameter order, which for our sequential nets is
the forward order; an assumption for other models). Written by the figures command as
``<figure>_depth.png`` and ``<figure>_depth.csv`` (figure, arm, layer_index, layer, epoch,
n_seeds, mean) when the runs logged per-layer statistics.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lightning_sig.experiments.figure_data import aggregate  # noqa: E402
from lightning_sig.gradients.tag_groups import canonical_names  # noqa: E402

__all__ = ["layer_tags", "depth_rows", "plot_depth_profile", "DEPTH_COLUMNS"]

DEPTH_COLUMNS = ("figure", "arm", "layer_index", "layer", "epoch", "n_seeds", "mean")


def layer_tags(path: Path, prefix: str = "grad_epoch", stat: str = "abs_q50") -> List[str]:
    """``<prefix>/<layer>/<stat>`` of every layer (not ``global``) in one run's event files, in
    the order they were first written (the callback writes the layers in parameter order)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 1})
    accumulator.Reload()
    tags = canonical_names(accumulator.Tags().get("scalars", []))  # plain names, in order
    return [t for t in tags
            if t.startswith(prefix + "/") and t.endswith("/" + stat)
            and t.split("/")[1] != "global" and t.count("/") == 2]


def depth_rows(figure: str, runs: Sequence, tags: Sequence[str]) -> List[dict]:
    """Rows (figure, arm, layer_index, layer, epoch, n_seeds, mean over seeds) of each layer
    tag, layer_index 0 = first layer in forward order."""
    rows = []
    for index, tag in enumerate(tags):
        for arm, points in aggregate(runs, tag).items():
            rows += [{"figure": figure, "arm": arm, "layer_index": index,
                      "layer": tag.split("/")[1], "epoch": p["epoch"], "n_seeds": p["n_seeds"],
                      "mean": p["mean"]} for p in points]
    return rows


def plot_depth_profile(figure: str, rows: Sequence[dict], source: str, path: Path) -> None:
    """One panel per arm: median |g| (mean over seeds) against layer index, log scale, one
    line per epoch (light to dark)."""
    arms = sorted({r["arm"] for r in rows})
    fig, axes = plt.subplots(1, len(arms), sharey=True, squeeze=False,
                             figsize=(3.2 * len(arms) + 1.0, 3.6))
    for ax, arm in zip(axes[0], arms):
        by_epoch: Dict[int, List[dict]] = {}
        for r in rows:
            if r["arm"] == arm:
                by_epoch.setdefault(r["epoch"], []).append(r)
        cmap = plt.get_cmap("viridis")
        for k, (epoch, points) in enumerate(sorted(by_epoch.items())):
            points.sort(key=lambda r: r["layer_index"])
            ax.plot([r["layer_index"] for r in points], [r["mean"] for r in points],
                    color=cmap(k / max(1, len(by_epoch) - 1)), label=f"epoch {epoch}")
        ax.set_yscale("log", nonpositive="mask")
        ax.set_title(arm, fontsize="small")
        ax.set_xlabel("layer (forward order)")
    axes[0][0].set_ylabel(f"median |g| per layer ({source})")
    axes[0][-1].legend(fontsize="x-small")
    fig.suptitle(f"{figure}: depth profile", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
