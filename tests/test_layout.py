"""The custom-scalars layout of the GradientQuantileCallback (lightning_sig.gradients.layout)."""
from lightning_sig.gradients.layout import custom_scalars_layout, layout_tags


def test_margin_charts_per_layer_and_source_with_prefix():
    layout = custom_scalars_layout(["global", "net.0"], (0.0, 0.25, 0.5, 0.75, 1.0), data=True,
                                   activations=["net.1"], tag=lambda t: "p-" + t)
    layers = layout["gradient |g|: layers"]
    assert list(layers) == ["grad net.0", "grad_data net.0", "grad_epoch net.0",
                            "grad_data_epoch net.0"]
    assert layers["grad_data net.0"] == ["Margin", ["p-grad_data/net.0/abs_q50",
                                                    "p-grad_data/net.0/abs_q25",
                                                    "p-grad_data/net.0/abs_q75"]]
    assert len(layout_tags(layout)) == 3 * 4 * 2  # (value, lower, upper) × sources × groups
    assert layout["activation saturation"]["mean f'(z)"] == ["Multiline",
                                                             [r"p\-act/.*/mean_derivative"]]


def test_without_quartile_levels_multiline_and_no_optional_parts():
    layout = custom_scalars_layout(["global"], (0.1, 0.9), data=False, activations=[],
                                   epoch=False)
    assert layout == {"gradient |g|: global": {
        "grad global quantiles of |g|": ["Multiline", [r"grad/global/abs_q.*"]]}}
