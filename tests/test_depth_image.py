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
    # the layer axis kept while the layers stay, the value axis redrawn on it when the decades
    # change (log over one decade with minor labels, two or more without, linear with nothing
    # positive, and back), a new figure when the layers change
    drawer = DepthProfileDrawer()
    ramp = [k + 1.0 for k in range(6)]
    cases = [(LAYERS, [1e-3 * k for k in ramp], "epoch 0"),    # 1e-3..6e-3: (1e-3, 1e-2)
             (LAYERS, [2e-3 * k for k in ramp], "epoch 1"),    # ..1.2e-2: (1e-3, 1e-1)
             (LAYERS, [3e-3 * k for k in ramp], "epoch 2"),    # ..1.8e-2: the same decades
             (LAYERS, [1e-6, 1e-4, math.nan, 0.0, 1e-2, 1e-1], "epoch 3"),  # new decades
             (LAYERS, [0.0, math.nan, -1.0, 0.0, 0.0, 0.0], "epoch 4"),  # linear, empty
             (LAYERS, [1e-3 * k for k in ramp], "epoch 5"),    # back to epoch 0's axis
             (LAYERS[:4], [1e-3, 2e-3, 3e-3, 4e-3], "epoch 6"),  # other layers
             (LAYERS[:4], [0.0, math.nan, -1.0, 0.0], "epoch 7")]  # nothing to draw
    assert [decade_limits(c[1]) for c in cases[:6]] == [
        (1e-3, 1e-2), (1e-3, 1e-1), (1e-3, 1e-1), (1e-6, 1e-1), None, (1e-3, 1e-2)]
    images = [drawer.draw(*case) for case in cases]
    for case, image in zip(cases, images):
        assert image.dtype == np.uint8 and image.shape == (3, 288, 512)
        assert np.array_equal(image, depth_profile_image(*case))
    assert not np.array_equal(images[1], images[2])  # the line moved
    assert not np.array_equal(images[0][:, :, :80], images[1][:, :, :80])  # the y labels moved
    assert np.array_equal(images[0][:, :, :80], images[5][:, :, :80])  # and came back


def test_prepared_layer_axis_gives_the_same_image():
    # prepare() draws the layer axis ahead (the callback: at train start); a prepared drawer,
    # one prepared for other layers, and a new one give the same pixels
    case = (LAYERS, [1e-3, 2e-2, 5e-3, 1e-1, 3e-2, 4e-4], "epoch 0")
    prepared, other = DepthProfileDrawer(), DepthProfileDrawer()
    prepared.prepare(LAYERS)
    other.prepare(LAYERS[:3])
    expected = depth_profile_image(*case)
    assert np.array_equal(prepared.draw(*case), expected)
    assert np.array_equal(other.draw(*case), expected)


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
            x, y = axes.transData.transform((i + 1, 2e-3))  # no marker: the line is 70 px above
            assert np.abs(image[:, height - int(round(y)), int(round(x))] - blue).sum() > 60
            continue
        x, y = axes.transData.transform((i + 1, v))
        pixel = image[:, height - int(round(y)), int(round(x))]
        assert np.abs(pixel.astype(int) - blue).sum() <= 12, (i, v, pixel)
