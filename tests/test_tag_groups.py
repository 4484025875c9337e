"""Where the callbacks' tags sit in TensorBoard (lightning_sig.gradients.tag_groups): one group
each, sorted after the user's metrics, mapped back to the plain names by every reader."""
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig import CombinedNet, GradientQuantileCallback, SaturationMonitor
from lightning_sig.experiments.figure_data import read_run
from lightning_sig.gradients.tag_groups import ACTIVATION_GROUP, GRADIENT_GROUP, \
    canonical_names, canonical_tag, tensorboard_tag
from tests.test_grad_callback import _loader

PLAIN = ["grad/global/abs_q50", "grad_data/net.features.0/rms", "grad_epoch/global/l2_norm",
         "grad_data_epoch/global/abs_q25", "grad_epoch_steps/global/every_k",
         "grad_hist/global/log10_abs", "grad_depth/abs_q50", "act/global/saturated_frac",
         "act/net.features.1/mean_derivative"]


def test_plain_tags_round_trip_and_others_are_unchanged():
    for tag in PLAIN:
        written = tensorboard_tag(tag)
        group = ACTIVATION_GROUP if tag.startswith("act/") else GRADIENT_GROUP
        assert written == f"{group}/{tag}" and canonical_tag(written) == tag
        assert tensorboard_tag(written) == written  # already in its group
    for tag in ["train/loss", "val/acc", "epoch", "gradient/x", "|g|/grad/global/log10_q50",
                "activity/x", "grad", "|g|/train/loss"]:
        assert tensorboard_tag(tag) == tag and canonical_tag(tag) == tag
    assert tensorboard_tag("act/") == "|f'|/act/"  # a prefix, for the layout's regexes
    assert canonical_names(["|g|/grad/a/rms", "val/acc"]) == {"grad/a/rms": "|g|/grad/a/rms",
                                                              "val/acc": "val/acc"}


def test_groups_sort_after_the_users_metrics():
    """TensorBoard orders groups by name (code points): both groups after any lowercase name,
    e.g. a user's ``train``, ``val``, ``test``, ``zz``."""
    for group in (GRADIENT_GROUP, ACTIVATION_GROUP):
        assert all(group > name for name in ("train", "val", "test", "zz", "epoch", "lr-Adam"))


def test_tensorboard_files_hold_the_groups_other_loggers_the_plain_names(tmp_path):
    torch.manual_seed(0)
    tb = TensorBoardLogger(tmp_path, name="tb", version=0)
    csv = CSVLogger(tmp_path, name="csv", version=0)
    pl.Trainer(max_steps=3, logger=[tb, csv], log_every_n_steps=1, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False,
               callbacks=[GradientQuantileCallback(histogram_every_n_steps=1),
                          SaturationMonitor()]).fit(CombinedNet(alpha=2.0, l2_strength=0.01),
                                                    _loader())
    acc = EventAccumulator(tb.log_dir, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    groups = {t.split("/")[0] for t in scalars}
    assert groups == {"train", "epoch", "hp_metric", GRADIENT_GROUP, ACTIVATION_GROUP}, groups
    # what TensorBoard opens first: Lightning's epoch and hp_metric, then the module's train
    assert sorted(groups) == ["epoch", "hp_metric", "train", ACTIVATION_GROUP, GRADIENT_GROUP]
    assert {t.split("/")[0] for t in acc.Tags()["histograms"]} == {GRADIENT_GROUP}
    header = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    columns = header.split(",")
    assert "grad/global/abs_q50" in columns and "act/global/saturated_frac" in columns
    assert not any(c.startswith("|f'|/") or c.startswith("|g|/") and "/log10_q" not in c
                   for c in columns)  # only the log10 band has the |g| group everywhere
    # the same values under both names
    series = read_run(tb.log_dir, ["grad/global/abs_q50", "act/global/saturated_frac"])[0]
    assert [p.step for p in series["grad/global/abs_q50"]] == [0, 1, 2]
    assert [p.value for p in series["grad/global/abs_q50"]] == pytest.approx(
        [e.value for e in acc.Scalars("|g|/grad/global/abs_q50")], rel=0, abs=0)


def test_readers_take_runs_written_before_and_after_the_groups(tmp_path):
    """A run written with the plain names (before this change) and one with the TensorBoard
    groups read the same through the figures' reader and the depth profile's."""
    from torch.utils.tensorboard import SummaryWriter
    from lightning_sig.experiments.depth_profile import layer_tags
    series = {}
    for name, tag_of in (("old", str), ("new", tensorboard_tag)):
        with SummaryWriter(str(tmp_path / name)) as writer:
            for step, value in ((9, 0.25), (19, 0.125)):
                writer.add_scalar(tag_of("grad_epoch/global/abs_q50"), value, step)
                writer.add_scalar(tag_of("grad_epoch/net.0/abs_q50"), 2 * value, step)
        series[name] = read_run(tmp_path / name, ["grad_epoch/global/abs_q50"])[0]
        assert layer_tags(tmp_path / name) == ["grad_epoch/net.0/abs_q50"]
    assert [(p.step, p.value) for p in series["new"]["grad_epoch/global/abs_q50"]] == \
        [(p.step, p.value) for p in series["old"]["grad_epoch/global/abs_q50"]] == \
        [(9, 0.25), (19, 0.125)]
