"""The depth image's drawer (lightning_sig.gradients.depth_image): y-limits over whole decades,
a reused figure that gives the same pixels as a new one, and markers where the values are."""
import math

import numpy as np
import pytest

from lightning_sig.gradients.depth_image import DepthProfileDrawer, decade_limits, \
    depth_profile_image

LAYERS = [f"net.features.{i}" for i in range(6)]


@pytest.mark.parametrize("values, expected", [
    ([0.003, 0.05], (1e-3, 1e-1)),          # floor(log10 .003) = -3, ceil(log10 .05) = -1
    ([0.01], (1e-2, 1e-1)),                 # an exact power: one decade upwards
    ([0.0, math.nan, -1.0, 2e-5, math.inf, 1e-5], (1e-5, 1e-4)),  # only positive finite
    ([0.0, math.nan], None),
    ([3.0, 250.0], (1.0, 1e3)),
])
def test_decade_limits_by_hand(values, expected):
    assert decade_limits(values) == expected


def test_reused_drawer_equals_a_new_one_pixel_for_pixel():
    # the background kept across images, redrawn when the decades or the layers change
    drawer = DepthProfileDrawer()
    cases = [(LAYERS, [1e-3 * (k + 1) for k in range(6)], "epoch 0"),
             (LAYERS, [2e-3 * (k + 1) for k in range(6)], "epoch 1"),   # same decades
             (LAYERS, [1e-6, 1e-4, math.nan, 0.0, 1e-2, 1e-1], "epoch 2"),  # new decades
             (LAYERS[:4], [1e-3, 2e-3, 3e-3, 4e-3], "epoch 3"),  # other layers
             (LAYERS[:4], [0.0, math.nan, -1.0, 0.0], "epoch 4")]  # nothing to draw
    images = [drawer.draw(*case) for case in cases]
    for case, image in zip(cases, images):
        assert image.dtype == np.uint8 and image.shape == (3, 288, 512)
        assert np.array_equal(image, depth_profile_image(*case))
    assert not np.array_equal(images[0], images[1])  # the line moved


def test_markers_are_drawn_at_the_values():
    # each marker's centre, from the axes' own data-to-pixel transform, is the line's colour
    # (matplotlib's first colour, tab:blue); a left-out value (NaN) has no marker
    drawer = DepthProfileDrawer()
    values = [2e-3, 5e-3, math.nan, 3e-2, 7e-3, 1e-2]
    image = drawer.draw(LAYERS, values, "t")  # (3, H, W)
    axes = drawer.axes
    height = image.shape[1]
    blue = np.array([31, 119, 180])
    for i, v in enumerate(values):
        if math.isnan(v):
            x, y = axes.transData.transform((i + 1, 2e-3))  # no marker (the line passes 70 px above)
            assert np.abs(image[:, height - int(round(y)), int(round(x))] - blue).sum() > 60
            continue
        x, y = axes.transData.transform((i + 1, v))
        pixel = image[:, height - int(round(y)), int(round(x))]
        assert np.abs(pixel.astype(int) - blue).sum() <= 12, (i, v, pixel)
