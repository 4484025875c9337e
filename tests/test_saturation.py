"""SaturationMonitor and its maths against hand computations on known pre-activations."""
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig import CombinedNet, ScaledActivation
from lightning_sig.gradients.saturation import check_epsilon, means_of, monitored_activations, \
    saturation_sums
from lightning_sig import SaturationMonitor
from tests.test_grad_callback import RecordingLogger, _loader


def test_scaled_tanh_hand_computed():
    act = ScaledActivation("tanh", alpha=2.0)
    z = torch.tensor([0.0, 2.0, 20.0, -20.0, 6.0])
    # f_2'(z) = 1 − tanh²(z/2): 1, 1 − tanh²(1) = 0.42, ~1.8e-8, ~1.8e-8, 1 − tanh²(3) = 0.00987
    want = [1 - math.tanh(v / 2) ** 2 for v in z.tolist()]
    frac, mean = means_of(saturation_sums(act, z, 0.01))
    assert frac == 3 / 5 and mean == pytest.approx(sum(want) / 5, rel=1e-6)


@pytest.mark.parametrize("module,z,frac,mean", [
    (nn.Sigmoid(), [0.0, 5.0, 6.0, -6.0], 2 / 4,  # s(6)s(−6) = 0.00247 < 0.01·0.25
     (0.25 + 2 * 0.0024665 + 0.0066481) / 4),
    (nn.Hardtanh(), [-2.0, -0.5, 0.5, 1.0], 2 / 4, 0.5),  # f' = 1 strictly inside (−1, 1)
    (nn.Softsign(), [9.0, 10.0, 0.0], 1 / 3, (0.01 + 1 / 121 + 1.0) / 3),  # 1/(1+|z|)²
    (nn.Tanh(), [0.0, 3.0], 1 / 2, (1.0 + 1 - math.tanh(3.0) ** 2) / 2),
    (ScaledActivation("sigmoid", alpha=4.0), [24.0, 20.0], 1 / 2,  # f'(z/4): s(6)s(−6), s(5)s(−5)
     (0.0024665 + 0.0066481) / 2),
])
def test_other_activations_hand_computed(module, z, frac, mean):
    got_frac, got_mean = means_of(saturation_sums(module, torch.tensor(z), 0.01))
    assert got_frac == frac and got_mean == pytest.approx(mean, rel=1e-4)


def test_monitored_layers_and_bad_eps():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), ScaledActivation("relu"), nn.ReLU6(),
                          ScaledActivation("arctan", 2.0), nn.Hardtanh(0.0, 1.0), nn.Softsign())
    assert [n for n, _ in monitored_activations(model)] == ["1", "4", "6"]
    for bad in (0.0, -1.0, 1.5, math.nan, "0.1", True):
        with pytest.raises(ValueError, match="eps"):
            check_epsilon(bad)
    with pytest.raises(ValueError, match="eps"):
        SaturationMonitor(eps=2.0)


class TinyModule(pl.LightningModule):
    """Linear(2, 2) with known weights, then tanh: z = (x0·10, x1·0.1)."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 3))
        with torch.no_grad():
            self.model[0].weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 0.1]]))
            self.model[0].bias.zero_()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(tmp_path, logger, **kwargs):
    return pl.Trainer(callbacks=[SaturationMonitor()], logger=logger, max_steps=2,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


def test_monitor_in_users_training_forward(tmp_path):
    x = torch.tensor([[1.0, 1.0], [0.1, 3.0], [-2.0, 0.5], [0.0, 0.0]])
    data = DataLoader(TensorDataset(x, torch.zeros(4, dtype=torch.long)), batch_size=4)
    logger = RecordingLogger()
    _trainer(tmp_path, logger, log_every_n_steps=2).fit(TinyModule(), data)
    (step, metrics), = [(s, m) for s, m in logger.records if "act/model.1/saturated_frac" in m]
    z = (x * torch.tensor([10.0, 0.1])).numpy().astype(np.float64)  # the hook's input
    d = 1 - np.tanh(z) ** 2  # z = 10, −20 saturated (< 0.01); 1 and 0 not
    assert step == 1 and metrics["act/model.1/saturated_frac"] == (d < 0.01).mean() == 0.25
    assert metrics["act/model.1/mean_derivative"] == pytest.approx(d.mean(), rel=1e-6)
    assert metrics["act/global/saturated_frac"] == 0.25


def test_monitor_sees_folded_nets_preactivations(tmp_path):
    torch.manual_seed(0)
    model = CombinedNet(alpha=2.0, init="uniform", init_scale=3.0)
    x, _ = next(iter(_loader()))
    with torch.no_grad():
        z = model.net.features[0](x).double()  # pre-activations of the first tanh layer
    d = (1 - torch.tanh(z / 2) ** 2).numpy()
    logger = RecordingLogger()
    _trainer(tmp_path, logger, log_every_n_steps=1, max_epochs=1).fit(model, _loader())
    first = next(m for _, m in logger.records if "act/net.features.1/saturated_frac" in m)
    assert first["act/net.features.1/saturated_frac"] == pytest.approx((d < 0.01).mean(), rel=1e-7)  # logged as float32
    assert 0 < first["act/net.features.1/saturated_frac"] < 1
    assert first["act/net.features.1/mean_derivative"] == pytest.approx(d.mean(), rel=1e-5)
    assert sum(k.endswith("/saturated_frac") for k in first) == 1 + 6 + 3  # global, convs, dense
