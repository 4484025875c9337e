"""GradientQuantileCallback in real Trainer runs: values equal numpy on the gradients the
optimizer saw (captured by a second callback), per step, per layer, per epoch."""
import math
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.logger import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.lightning import grad_sources as gather_module
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


class RecordingLogger(Logger):
    """Keeps every log_metrics call: (step, {key: value})."""

    def __init__(self):
        super().__init__()
        self.records = []

    @property
    def name(self):
        return "rec"

    @property
    def version(self):
        return 0

    def log_metrics(self, metrics, step=None):
        self.records.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def grad_records(self, prefix="grad/"):
        return [(s, m) for s, m in self.records if any(k.startswith(prefix) for k in m)]


class GradRecorder(pl.Callback):
    """Copies the gradients seen at on_before_optimizer_step (runs after the callback)."""

    def __init__(self):
        self.steps = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append({n: p.grad.detach().double().clone() for n, p in pl_module.named_parameters()
                           if p.grad is not None})


def _numpy_stats(vec: np.ndarray, threshold=1e-8) -> dict:
    finite = vec[np.isfinite(vec)]
    a = np.abs(finite)
    out = {f"abs_q{int(q * 100)}": v for q, v in zip(LEVELS, np.quantile(a, LEVELS))}
    out.update(abs_mean=a.mean(), rms=math.sqrt((a**2).mean()), l2_norm=math.sqrt((a**2).sum()),
               vanishing_frac=(a <= threshold).mean(), nonfinite_count=vec.size - finite.size)
    return out


def _loader(n=16, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    return DataLoader(data, batch_size=batch)


def _fit(model, callback, tmp_path, logger=None, **trainer_kwargs):
    recorder = GradRecorder()
    logger = logger or RecordingLogger()
    kwargs = dict(max_epochs=1, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, default_root_dir=tmp_path, log_every_n_steps=1)
    kwargs.update(trainer_kwargs)
    pl.Trainer(callbacks=[callback, recorder], **kwargs).fit(model, _loader())
    return logger, recorder


def _check_record(metrics, grads, prefix="grad", rtol=1e-9):
    vec = np.concatenate([g.flatten().numpy() for g in grads.values()])
    for key, want in _numpy_stats(vec).items():
        assert metrics[f"{prefix}/global/{key}"] == pytest.approx(want, rel=rtol, abs=0), key
    layers = {}
    for name, g in grads.items():
        layers.setdefault(name.rpartition(".")[0], []).append(g.flatten().numpy())
    for layer, parts in layers.items():
        for key, want in _numpy_stats(np.concatenate(parts)).items():
            assert metrics[f"{prefix}/{layer}/{key}"] == pytest.approx(want, rel=rtol, abs=0), (layer, key)


@pytest.mark.parametrize("force_big_path", [False, True])
def test_every_step_equals_numpy_global_and_per_layer(tmp_path, force_big_path, monkeypatch):
    if force_big_path:  # the tensor-by-tensor copy used for models above FLAT_MAX_NUMEL
        monkeypatch.setattr(gather_module, "FLAT_MAX_NUMEL", 10)
    torch.manual_seed(0)
    model = CombinedNet(alpha=2.0, l2_strength=0.01, init="default")
    logger, recorder = _fit(model, GradientQuantileCallback(layer_statistics="all"), tmp_path)
    records = logger.grad_records()
    assert [s for s, _ in records] == [0, 1, 2, 3] and len(recorder.steps) == 4
    for (_, metrics), grads in zip(records, recorder.steps):
        _check_record(metrics, grads)
    assert "grad/net.features.0/abs_q50" in records[0][1]
    assert not any(k.endswith("/numel") for k in records[0][1])


def test_statistics_are_of_regularized_objective(tmp_path):
    torch.manual_seed(0)
    model = CombinedNet(l2_strength=0.5, init="default")
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    logger, _ = _fit(model, GradientQuantileCallback(layer_statistics="all", per_layer=False), tmp_path, max_steps=1)
    x, y = next(iter(_loader()))
    fresh = CombinedNet(l2_strength=0.5, init="default")
    fresh.load_state_dict({("net." + k.partition(".")[2]): v for k, v in start.items()})
    loss = F.cross_entropy(fresh(x), y) + 0.25 * sum((p**2).sum() for p in fresh.parameters())
    grad = torch.autograd.grad(loss, list(fresh.parameters()))
    norm = torch.sqrt(sum((g.double()**2).sum() for g in grad)).item()
    assert logger.grad_records()[0][1]["grad/global/l2_norm"] == pytest.approx(norm, rel=1e-5)


def test_accumulation_one_record_per_optimizer_step(tmp_path):
    torch.manual_seed(0)
    model = CombinedNet(init="default")
    logger, recorder = _fit(model, GradientQuantileCallback(layer_statistics="all"), tmp_path, accumulate_grad_batches=2)
    records = logger.grad_records()
    assert [s for s, _ in records] == [0, 1] and len(recorder.steps) == 2  # 4 batches / 2
    for (_, metrics), grads in zip(records, recorder.steps):
        _check_record(metrics, grads)


def test_bf16_mixed_matches_fp32_step(tmp_path):
    results = []
    for precision in ("32-true", "bf16-mixed"):
        torch.manual_seed(0)
        logger, _ = _fit(CombinedNet(init="default"), GradientQuantileCallback(layer_statistics="all", per_layer=False),
                         tmp_path, max_steps=1, precision=precision)
        results.append(logger.grad_records()[0][1])
    for key in ("grad/global/abs_q50", "grad/global/l2_norm", "grad/global/abs_mean"):
        assert results[1][key] == pytest.approx(results[0][key], rel=0.05), key


class NaNGradNet(CombinedNet):
    def on_after_backward(self):
        self.net.classifier[1].weight.grad[0, :5] = float("nan")
        self.net.classifier[1].weight.grad[1, 0] = float("inf")


def test_nonfinite_gradients_counted_not_crashing(tmp_path):
    torch.manual_seed(0)
    tb = TensorBoardLogger(tmp_path, name="tb")
    cb = GradientQuantileCallback(layer_statistics="all", histogram_every_n_steps=1)
    logger, recorder = _fit(NaNGradNet(init="default", lr=1e-6), cb, tmp_path, logger=tb, max_steps=2)
    rec = RecordingLogger()
    torch.manual_seed(0)
    _fit(NaNGradNet(init="default", lr=1e-6), GradientQuantileCallback(layer_statistics="all", histograms=False), tmp_path,
         logger=rec, max_steps=1)
    metrics = rec.grad_records()[0][1]
    assert metrics["grad/global/nonfinite_count"] == 6
    assert metrics["grad/net.classifier.1/nonfinite_count"] == 6
    assert metrics["grad/net.features.0/nonfinite_count"] == 0
    assert math.isfinite(metrics["grad/global/abs_q50"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(tb.log_dir, size_guidance={"histograms": 0})
    ea.Reload()
    hist = ea.Histograms(tensorboard_tag("grad_hist/net.classifier.1/log10_abs"))
    # Step 1: Adam turned the NaN gradient into NaN weights, so every gradient is NaN; there is
    # nothing finite to draw and the histogram is skipped instead of crashing TensorBoard.
    assert [h.step for h in hist] == [0]
    assert [h.step for h in ea.Histograms(tensorboard_tag("grad_hist/global/log10_abs"))] == [0]
    assert hist[0].histogram_value.num == 8 * 48 + 8 - 6  # finite coordinates of weight + bias
    assert ea.Scalars(tensorboard_tag("grad/global/nonfinite_count"))[1].value == sum(p.numel() for p in recorder.steps[1].values())


def test_frozen_parameters_skipped_and_no_gradient_warns_once(tmp_path):
    torch.manual_seed(0)
    model = CombinedNet(init="default")
    model.net.features[0].requires_grad_(False)
    logger, _ = _fit(model, GradientQuantileCallback(layer_statistics="all"), tmp_path, max_steps=1)
    keys = logger.grad_records()[0][1]
    assert "grad/net.features.0/abs_q50" not in keys and "grad/net.features.2/abs_q50" in keys

    class NoGrad(CombinedNet):
        def on_after_backward(self):
            for p in self.parameters():
                p.grad = None

    rec = RecordingLogger()
    with pytest.warns(UserWarning, match="no trainable parameter has a gradient") as caught:
        _fit(NoGrad(init="default"), GradientQuantileCallback(layer_statistics="all"), tmp_path, logger=rec, max_steps=3)
    assert sum("no trainable parameter" in str(w.message) for w in caught) == 1
    assert rec.grad_records() == [] and rec.grad_records("grad_epoch/") == []


def test_epoch_aggregates_are_means_of_steps(tmp_path):
    torch.manual_seed(0)
    logger, recorder = _fit(CombinedNet(init="default"), GradientQuantileCallback(layer_statistics="all", log_every_n_steps=3),
                            tmp_path, max_epochs=2)
    assert [s for s, _ in logger.grad_records()] == [2, 5]  # (step + 1) % 3 == 0, as Lightning
    epoch = logger.grad_records("grad_epoch/")
    assert [s for s, _ in epoch] == [4, 8]
    for e, (_, metrics) in enumerate(epoch):
        per_step = []
        for grads in recorder.steps[4 * e:4 * e + 4]:
            vec = np.concatenate([g.flatten().numpy() for g in grads.values()])
            per_step.append(_numpy_stats(vec))
        for key in ("abs_q50", "l2_norm", "vanishing_frac"):
            want = np.mean([s[key] for s in per_step])
            assert metrics[f"grad_epoch/global/{key}"] == pytest.approx(want, rel=1e-9)


def test_other_logger_gets_scalars_and_one_histogram_warning(tmp_path):
    torch.manual_seed(0)
    csv = CSVLogger(tmp_path, name="csv")
    with pytest.warns(UserWarning, match="histograms need a TensorBoardLogger") as caught:
        _fit(CombinedNet(init="default"), GradientQuantileCallback(layer_statistics="all", histogram_every_n_steps=1),
             tmp_path, logger=csv, max_steps=3)
    assert sum("histograms need" in str(w.message) for w in caught) == 1
    import csv as csvlib
    rows = list(csvlib.DictReader(open(f"{csv.log_dir}/metrics.csv")))
    assert [r["step"] for r in rows if r.get("grad/global/abs_q50")] == ["0", "1", "2"]


def test_signed_quantiles(tmp_path):
    torch.manual_seed(0)
    logger, recorder = _fit(CombinedNet(init="default"), GradientQuantileCallback(layer_statistics="all", signed=True, quantiles=(0.1, 0.5)),
                            tmp_path, max_steps=1)
    metrics = logger.grad_records()[0][1]
    vec = np.concatenate([g.flatten().numpy() for g in recorder.steps[0].values()])
    assert metrics["grad/global/q10"] == pytest.approx(np.quantile(vec, 0.1), rel=1e-9)
    assert metrics["grad/global/abs_q50"] == pytest.approx(np.quantile(np.abs(vec), 0.5), rel=1e-9)


@pytest.mark.parametrize("kwargs,match", [
    ({"quantiles": (0.5, 1.5)}, "1.5"),
    ({"quantiles": (-0.1,)}, "-0.1"),
    ({"vanishing_threshold": -1.0}, "-1.0"),
    ({"log_every_n_steps": 0}, "log_every_n_steps must be a positive integer or None, got 0"),
    ({"histogram_every_n_steps": -5}, "got -5"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientQuantileCallback(layer_statistics="all", **kwargs)


def test_members_get_their_own_statistics_in_their_own_runs(tmp_path, fake_cifar):
    """num_members=2: member s's statistics are of its own gradient slice, in seed_<s>/."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lightning_sig import CIFAR10DataModule

    class MemberGrads(pl.Callback):
        def __init__(self):
            self.steps = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.steps.append([np.concatenate([p.grad[s].detach().double().flatten().numpy()
                                               for p in pl_module.parameters() if p.grad is not None])
                               for s in range(2)])

    pl.seed_everything(0)
    model = CombinedNet(init="default", num_members=2, member_seeds=[3, 4])
    recorder = MemberGrads()
    tb = TensorBoardLogger(tmp_path, name="tb", version=0)
    callback = GradientQuantileCallback(layer_statistics="all", histogram_every_n_steps=1)
    trainer = pl.Trainer(max_steps=2, logger=tb, callbacks=[callback, recorder],
                         log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, CIFAR10DataModule(str(fake_cifar), batch_size=8))
    for s, seed in enumerate([3, 4]):
        ea = EventAccumulator(str(tmp_path / "tb" / "version_0" / f"seed_{seed}"))
        ea.Reload()
        for step, grads in enumerate(recorder.steps):
            want = _numpy_stats(grads[s])
            got = {e.step: e.value for e in ea.Scalars(tensorboard_tag("grad/global/abs_q50"))}
            assert got[step] == pytest.approx(want["abs_q50"], rel=1e-6)
        assert tensorboard_tag("grad/net.features.0/l2_norm") in ea.Tags()["scalars"]
        assert tensorboard_tag("grad_hist/global/log10_abs") in ea.Tags()["histograms"]
    assert not np.allclose(recorder.steps[0][0], recorder.steps[0][1])  # members differ
