"""Benchmark: the GradientQuantileCallback's per-epoch depth image
(:class:`~lightning_sig.gradients.depth_image.DepthProfileDrawer`) against a new figure per image.

The Table 3 net's 10 layers, median |g| values over the decades (1e-3, 1e-1). Times, in ms per
image, after one untimed image (fonts and matplotlib's caches of the process):

- a new figure per image (:func:`~lightning_sig.gradients.depth_image.depth_profile_image`);
- a reused drawer: ``prepare`` (the layer axis, drawn once per list of layers: the callback does
  it at train start), its first image (the value axis and the line), ``--images`` images on the
  same decades (the line only), and ``--images`` images whose decades change at every image (the
  value axis redrawn each time; the worst case).

Run: ``python benchmarks/bench_depth_image.py [--images 10]``.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, List

import numpy as np

from lightning_sig.gradients.depth_image import DepthProfileDrawer, depth_profile_image, \
    import_drawing

LAYERS = [f"net.features.{i}" for i in range(10)]


def values(k: int, low: float = -3.0) -> List[float]:
    """Image k's medians: 10 log-spaced values from 10^low to 10^-1.5, scaled by 1 + 0.1·k."""
    return list(np.logspace(low, -1.5, len(LAYERS)) * (1 + 0.1 * k))


def ms_per_call(function: Callable[[int], object], calls: int = 1) -> float:
    start = time.perf_counter()
    for k in range(calls):
        function(k)
    return (time.perf_counter() - start) / calls * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10)
    n = parser.parse_args(argv).images
    import_drawing()
    depth_profile_image(LAYERS, values(0), "warm-up")
    new = ms_per_call(lambda k: depth_profile_image(LAYERS, values(k), f"epoch {k}"), n)
    drawer = DepthProfileDrawer()
    prepare = ms_per_call(lambda k: drawer.prepare(LAYERS))
    first = ms_per_call(lambda k: drawer.draw(LAYERS, values(0), "epoch 0"))
    same = ms_per_call(lambda k: drawer.draw(LAYERS, values(k), f"epoch {k}"), n)
    changing = ms_per_call(lambda k: drawer.draw(  # (1e-4, 1e-1) and (1e-3, 1e-1) in turn
        LAYERS, values(k, -4.0 if k % 2 == 0 else -3.0), f"epoch {k}"), n)
    print(f"new figure per image: {new:.1f} ms")
    print(f"reused drawer: layer axis (prepare, once per list of layers) {prepare:.1f} ms; "
          f"first image (value axis + line) {first:.1f} ms; same decades {same:.2f} ms; "
          f"decades changing at every image {changing:.1f} ms")


if __name__ == "__main__":
    main()
