"""The custom-scalars layout of the GradientQuantileCallback (lightning_sig.gradients.layout)."""
from lightning_sig.gradients.layout import custom_scalars_layout, layout_tags
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag


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


def test_depth_profile_image_per_epoch_in_tensorboard(tmp_path):
    # grad_depth/abs_q50: one image per epoch at the epoch-end step, built from the epoch means
    # of each layer's abs_q50 in model order (the values checked against the grad_epoch tags).
    import numpy as np
    import pytest
    import pytorch_lightning as pl
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lightning_sig import GradientQuantileCallback
    from lightning_sig.gradients.depth_image import depth_profile, depth_profile_image

    class Deep(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(3)])

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).square().mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(16, 4))
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="d", version=0)
    trainer = pl.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[GradientQuantileCallback(layer_statistics="all")])
    trainer.fit(Deep(), torch.utils.data.DataLoader(data, batch_size=4))
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Images(tensorboard_tag("grad_depth/abs_q50"))] == [4, 8]
    names = ["global", "net.0", "net.1", "net.2"]
    stats = ["abs_q0", "abs_q50"]
    means = [float(acc.Scalars(tensorboard_tag(f"grad_epoch/{n}/{s}"))[-1].value) for n in names for s in stats]
    layers, values = depth_profile(names, means, stats)
    assert layers == ["net.0", "net.1", "net.2"]
    assert values == [acc.Scalars(tensorboard_tag(f"grad_epoch/{n}/abs_q50"))[-1].value for n in layers]
    image = depth_profile_image(layers, values, "t")
    assert image.dtype == np.uint8 and image.shape[0] == 3 and image.shape[1] > 100
    with pytest.raises(ValueError, match=r"statistic 'abs_q99' is not logged; valid: \['abs_q0'"):
        depth_profile(names, means, stats, "abs_q99")
