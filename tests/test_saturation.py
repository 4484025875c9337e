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


def test_activations_are_looked_up_once_per_epoch(tmp_path, monkeypatch):
    from lightning_sig.lightning import saturation_monitor as module

    class Swap(pl.Callback):  # epoch 1: the last layer's input goes through a new Softsign
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                pl_module.model[2] = nn.Sequential(nn.Softsign(), nn.Linear(2, 3))

    walks = []
    real = module.monitored_activations
    monkeypatch.setattr(module, "monitored_activations", lambda m: walks.append(1) or real(m))
    x = torch.tensor([[1.0, 1.0], [0.1, 3.0], [-2.0, 0.5], [0.0, 0.0]])
    data = DataLoader(TensorDataset(x, torch.zeros(4, dtype=torch.long)), batch_size=1)
    logger = RecordingLogger()
    pl.Trainer(callbacks=[Swap(), SaturationMonitor()], logger=logger, max_epochs=2,
               log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, default_root_dir=tmp_path).fit(TinyModule(), data)
    acts = [(s, sorted(k for k in m if k.endswith("saturated_frac"))) for s, m in logger.records
            if any(k.startswith("act/") for k in m)]
    assert [s for s, _ in acts] == list(range(8)) and len(walks) == 2  # 8 logging steps
    assert all(names == ["act/global/saturated_frac", "act/model.1/saturated_frac"]
               for s, names in acts if s < 4)
    assert all(names == ["act/global/saturated_frac", "act/model.1/saturated_frac",
                         "act/model.2.0/saturated_frac"] for s, names in acts if s >= 4)


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


def _folded_reference(model, x, eps=0.01):
    """Per activation layer of the folded net: (saturated fraction, mean f_α′) from the plain
    layer-by-layer forward's pre-activations z (float64 closed forms, as saturation_sums)."""
    out, h = {}, x
    layers = [*model.net.features, *model.net.classifier]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            if isinstance(layer, ScaledActivation):
                name = "net." + ("features" if i < len(model.net.features) else "classifier") \
                    + f".{i if i < len(model.net.features) else i - len(model.net.features)}"
                sums = saturation_sums(layer, h.double(), eps)
                out[name] = means_of(sums)
            h = layer(h)
    return out


@pytest.mark.parametrize("backend", ["fused", "torch"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "arctan", "softsign", "logsigmoid"])
def test_tap_in_the_training_forward_equals_the_plain_forward(tmp_path, activation, backend):
    """The activation tap (no second forward) reports every layer: the fused kernels' outputs
    for tanh and the logistic sigmoid ("post"), pre-activations elsewhere ("pre").

    Reference: the plain layer-by-layer forward in float64. Tolerances: with these weights
    (U[-3, 3)) any float32 forward of the 9 layers deviates from the float64 one by up to
    ~5e-5 relative in the mean f' (measured: torch's own float32 forward too, 1.7e-5 for tanh;
    the fused kernels sum in another order and use a tanh within 2 ulp), so the mean is checked
    to rel 1e-4; a saturated count may differ by one pre-activation at the threshold. With the
    torch backend the tap reads the very tensors a float32 plain forward computes: rel 1e-6."""
    from lightning_sig.nn.fused import kernels_available
    if backend == "fused" and not kernels_available():
        pytest.skip("the fused kernels could not be built here")
    torch.manual_seed(0)
    model = CombinedNet(activation=activation, alpha=2.0, init="uniform", init_scale=3.0,
                        backend=backend)
    x, _ = next(iter(_loader()))
    plain32 = _folded_reference(model, x)
    wide = CombinedNet(activation=activation, alpha=2.0, backend="torch")
    wide.load_state_dict(model.state_dict())
    plain64 = _folded_reference(wide.double(), x.double())
    logger = RecordingLogger()
    _trainer(tmp_path, logger, log_every_n_steps=1, max_epochs=1).fit(model, _loader())
    first = next(m for _, m in logger.records if "act/global/saturated_frac" in m)
    assert {k.split("/")[1] for k in first} == set(plain64) | {"global"}
    for name, (frac, mean) in plain64.items():
        count = x.shape[0] * _width(model, name)
        assert first[f"act/{name}/saturated_frac"] == pytest.approx(frac, abs=1.0 / count)
        assert first[f"act/{name}/mean_derivative"] == pytest.approx(mean, rel=1e-4)
        if backend == "torch":
            assert first[f"act/{name}/mean_derivative"] == pytest.approx(plain32[name][1],
                                                                         rel=1e-6)
    assert any(0 < first[f"act/{n}/saturated_frac"] < 1 for n in plain64)


def _width(model, name):
    """Pre-activations per example of the activation layer ``name`` (e.g. net.features.1)."""
    _, part, index = name.split(".")
    h = torch.zeros(1, 3, 32, 32)
    layers = [*model.net.features, *model.net.classifier]
    stop = int(index) + (0 if part == "features" else len(model.net.features))
    with torch.no_grad():
        for layer in layers[:stop]:
            h = layer(h)
    return h.numel()


def test_monitor_falls_back_to_a_separate_forward_when_the_tap_sees_nothing(tmp_path,
                                                                            monkeypatch):
    """A training forward that never reports (as a compiled net's): one warning, nothing logged
    at that step, and from the next logging step on the values of a separate forward."""
    import lightning_sig.nn.folding as folding
    import lightning_sig.nn.fused.conv as fused_conv
    monkeypatch.setattr(folding, "current_taps", lambda: ())
    monkeypatch.setattr(fused_conv, "current_taps", lambda: ())
    torch.manual_seed(0)
    model = CombinedNet(alpha=2.0, init="uniform", init_scale=3.0)
    logger = RecordingLogger()
    with pytest.warns(UserWarning, match="did not report the folded net's pre-activations"):
        _trainer(tmp_path, logger, log_every_n_steps=1, max_epochs=1).fit(model, _loader())
    steps = [s for s, m in logger.records if "act/global/saturated_frac" in m]
    assert steps and steps[0] == 1  # step 0 was the tapped one that saw nothing


def test_two_monitors_both_read_the_training_forward_and_leave_no_tap(tmp_path):
    """Taps are added and removed by identity: two monitors (two eps) both see the training
    forward (no fallback warning), log their own values, and nothing stays tapped."""
    import warnings
    from lightning_sig.nn.activation_tap import current_taps
    torch.manual_seed(0)
    model = CombinedNet(alpha=2.0, init="uniform", init_scale=3.0)
    x, _ = next(iter(_loader()))
    wide = CombinedNet(alpha=2.0, backend="torch")
    wide.load_state_dict(model.state_dict())
    strict, loose = SaturationMonitor(eps=0.01), SaturationMonitor(eps=0.1)
    loggers = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "did not report" fallback
        warnings.filterwarnings("ignore", message=".*(val_dataloader|num_workers|LeafSpec).*")
        logger = RecordingLogger()
        pl.Trainer(callbacks=[strict, loose], logger=logger, max_steps=1, log_every_n_steps=1,
                   enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path).fit(model, _loader())
    assert current_taps() == ()
    firsts = [m for _, m in logger.records if "act/global/saturated_frac" in m]
    assert len(firsts) == 2  # one event per monitor at step 0
    for eps, metrics in zip((0.01, 0.1), firsts):
        frac, _ = _folded_reference(wide.double(), x.double(), eps)["net.features.1"]
        count = x.shape[0] * _width(model, "net.features.1")
        assert metrics["act/net.features.1/saturated_frac"] == pytest.approx(frac, abs=1 / count)
    assert firsts[0]["act/global/saturated_frac"] < firsts[1]["act/global/saturated_frac"]


def test_no_tap_left_when_the_batch_end_hook_is_skipped(tmp_path):
    """A module whose on_train_batch_start returns -1 on a logging step ends the epoch without
    on_train_batch_end: the monitor still removes its tap (epoch end, train end, teardown)."""
    from lightning_sig.nn.activation_tap import current_taps

    class StopAtSecondBatch(CombinedNet):
        def on_train_batch_start(self, batch, batch_idx):
            return -1 if batch_idx == 1 else None

    _trainer(tmp_path, RecordingLogger(), log_every_n_steps=1, max_epochs=1).fit(
        StopAtSecondBatch(), _loader())
    assert current_taps() == ()


def test_a_skipped_training_step_does_not_switch_to_the_separate_forward(tmp_path):
    """training_step returning None on a logging step (no forward ran) is not taken for a
    forward without the fold plan: no warning, and the next logging step is tapped."""
    import warnings

    class SkipFirst(CombinedNet):
        def training_step(self, batch, batch_idx):
            return None if batch_idx == 0 else super().training_step(batch, batch_idx)

    monitor = SaturationMonitor()
    logger = RecordingLogger()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pl.Trainer(callbacks=[monitor], logger=logger, max_steps=2, log_every_n_steps=1,
                   enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path).fit(SkipFirst(),
                                                                              _loader())
    assert not any("did not report" in str(w.message) for w in caught)
    assert not monitor._separate_forward
    assert any("act/global/saturated_frac" in m for _, m in logger.records)


@pytest.mark.numerics  # .ci/run reruns it under each ATEN_CPU_CAPABILITY (the torch reference)
@pytest.mark.parametrize("family", ["tanh", "sigmoid"])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 98_311])
def test_one_pass_sums_equal_the_torch_ops(family, n):
    """The compiled one-pass sums of the fused kernels' outputs (saturation_sums.cpp) against
    the torch ops they replace (d = 1 − y² or y·(1 − y) in float32, d < limit, Σd in float64):
    the counts are equal, including values whose d lies exactly at the threshold (a sweep of
    200,001 outputs near saturation) and NaN; the float64 sum adds the same float32 values in
    another order, so it may differ by rounding only: at most (n − 1)·2⁻⁵³·Σ|d| for a sum of n
    terms, below 1e-11 relative here, checked at 1e-10."""
    from lightning_sig.gradients.radix_build import load_radix_kernel
    from lightning_sig.gradients.saturation import _FROM_OUTPUT, _sums
    kernel = load_radix_kernel()
    if kernel is None:
        pytest.skip("the compiled kernel could not be built here")
    torch.manual_seed(n)
    y = torch.rand(n) * 2 - 1 if family == "tanh" else torch.rand(n)
    near = torch.linspace(0.99, 1.0, 200_001) if family == "tanh" else \
        torch.linspace(0.0, 0.003, 200_001)
    limit = 0.01 if family == "tanh" else 0.25 * 0.01
    for values in (y, near, torch.cat([y, torch.tensor([math.nan, 1.0, -1.0, 0.0])])):
        reference = _sums(_FROM_OUTPUT[family](values), limit)
        got = kernel.saturation_sums_from_output(values, family == "tanh", limit)
        assert got.dtype == torch.float64 and got.shape == (3,)
        assert got[:2].tolist() == reference[:2].tolist()
        if math.isnan(reference[2]):
            assert math.isnan(got[2])
        else:
            assert got[2].item() == pytest.approx(reference[2].item(), rel=1e-10, abs=0.0)
    assert 0 < _sums(_FROM_OUTPUT[family](near), limit)[1] < near.numel()  # the sweep straddles


@pytest.mark.numerics
def test_folded_sums_take_the_one_pass_kernel_for_contiguous_float32_outputs():
    """folded_saturation_sums returns the kernel's sums for a contiguous float32 CPU output and
    the torch ops' for others (a strided view): the same counts, hand-checked."""
    from lightning_sig.gradients.saturation import folded_saturation_sums
    act = ScaledActivation("tanh", alpha=2.0)
    y = torch.tensor([[0.0, 0.999, -0.9999], [0.5, 1.0, -0.2]])  # 1 − y²: 1, 0.002, 0.0002, ...
    for t in (y, y.t()):  # contiguous, then a transposed view
        count, saturated, total = folded_saturation_sums(act, t, "post", 0.01).tolist()
        assert (count, saturated) == (6.0, 3.0)  # 0.999, −0.9999 and 1.0 are below 0.01
        d = 1.0 - y.double().float().square()
        assert total == pytest.approx(d.double().sum().item(), rel=1e-12)
