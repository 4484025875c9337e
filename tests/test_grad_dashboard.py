"""What the dashboard shows: the log10 band tags (``|g|/...``, drawn by the custom-scalars
charts on a log scale) and the per-layer statistics a user opts into (``layer_statistics``)."""

import numpy as np
import pytest
import torch

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.gradients.histograms import HISTOGRAM_FLOOR_LOG10
from lightning_sig.gradients.layout import custom_scalars_layout, layout_tags
from lightning_sig.gradients.log10_band import log10_band_tag, log10_band_values
from tests.test_grad_callback import _fit

pytestmark = pytest.mark.numerics


def test_log10_band_tags_are_log10_of_the_quartiles(tmp_path):
    torch.manual_seed(0)
    logger, _ = _fit(CombinedNet(alpha=2.0, l2_strength=0.01, init="default"),
                     GradientQuantileCallback(), tmp_path, max_steps=2)
    steps = {}
    for step, metrics in logger.records:  # one log_metrics call per gradient and step
        steps.setdefault(step, {}).update(metrics)
    for metrics in (steps[0], steps[1]):
        for source in ("grad", "grad_data"):
            for group in ("global", "net.features.0", "net.classifier.1"):
                for q in (25, 50, 75):
                    linear = metrics[f"{source}/{group}/abs_q{q}"]
                    got = metrics[log10_band_tag(source, group, q / 100)]
                    assert got == np.log10(linear), (source, group, q)
    epoch = steps[2]
    assert epoch["|g|/grad_epoch/global/log10_q50"] == np.log10(
        epoch["grad_epoch/global/abs_q50"])
    assert "|g|/grad_data_epoch/net.features.0/log10_q75" in epoch


def test_zero_quantiles_sit_at_the_histogram_floor():
    got = log10_band_values(np.array([0.0, 1e-3, 100.0, np.nan]))
    assert got[0] == HISTOGRAM_FLOOR_LOG10 and got[1] == -3.0 and got[2] == 2.0
    assert np.isnan(got[3])


def test_layer_statistics_choose_what_layers_log(tmp_path):
    torch.manual_seed(0)
    callback = GradientQuantileCallback(layer_statistics=["abs_q50", "l2_norm"], log10_band=False)
    logger, _ = _fit(CombinedNet(init="default"), callback, tmp_path, max_steps=2)
    (_, metrics), _ = logger.grad_records()
    layer = {k.rpartition("/")[2] for k in metrics if k.startswith("grad/net.features.0/")}
    assert layer == {"abs_q50", "l2_norm"}
    assert {k.rpartition("/")[2] for k in metrics if k.startswith("grad/global/")} == set(
        callback.names)
    assert not any(k.startswith("|g|/") for k in metrics)
    (_, epoch), = logger.grad_records("grad_epoch/")
    assert {k.rpartition("/")[2] for k in epoch if "net.features.0" in k} == {"abs_q50",
                                                                               "l2_norm"}
    for bad in (["abs_q99"], [], "rms "):
        with pytest.raises(ValueError, match="layer_statistics must be 'default', 'all' or names"):
            GradientQuantileCallback(layer_statistics=bad)


def test_log_scale_layout_draws_the_log10_tags():
    levels = (0.0, 0.25, 0.5, 0.75, 1.0)
    layout = custom_scalars_layout(["global", "net.0"], levels, data=True, activations=[],
                                   log10=True)
    charts = layout["gradient |g|: global"]
    titles = list(charts)  # TensorBoard shows them last first: log10, grad first
    assert titles[-1] == "grad global median log10|g| (band: quartiles)"
    assert titles[0] == "grad_data_epoch global median |g| (band: quartiles)"
    assert charts[titles[-1]] == ["Margin", ["|g|/grad/global/log10_q50",
                                            "|g|/grad/global/log10_q25",
                                            "|g|/grad/global/log10_q75"]]
    assert charts["grad global median |g| (band: quartiles)"][1][0] == "grad/global/abs_q50"
    assert layout["gradient |g|: layers"]["grad_epoch net.0"][1] == [
        "|g|/grad_epoch/net.0/log10_q50", "|g|/grad_epoch/net.0/log10_q25",
        "|g|/grad_epoch/net.0/log10_q75"]
    assert all(t.startswith(("|g|/", "grad")) for t in layout_tags(layout))
    # without the quartiles there is no band: multiline charts of the linear tags
    assert "Multiline" in str(custom_scalars_layout(["global"], (0.5,), False, [], log10=True))


def test_layers_log_the_median_and_quartiles_by_default(tmp_path):
    torch.manual_seed(0)
    callback = GradientQuantileCallback(log10_band=False)
    logger, _ = _fit(CombinedNet(init="default"), callback, tmp_path, max_steps=2)
    (_, metrics), _ = logger.grad_records()
    layer = {k.rpartition("/")[2] for k in metrics if k.startswith("grad/net.features.0/")}
    assert layer == {"abs_q25", "abs_q50", "abs_q75"}
    assert {k.rpartition("/")[2] for k in metrics if k.startswith("grad/global/")} == set(
        callback.names) and len(callback.names) == 10  # 5 quantiles + 5 other statistics
    # levels without the quartiles: what is logged of the default set, else every statistic
    assert GradientQuantileCallback(quantiles=(0.5,)).layer_statistics == ("abs_q50",)
    assert GradientQuantileCallback(quantiles=(0.1, 0.9)).layer_statistics == "all"
    assert GradientQuantileCallback(layer_statistics="all").layer_statistics == "all"
